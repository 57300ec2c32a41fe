"""Shared harness: run a transform for many steps and compare it with optax.

Every trajectory test follows the same recipe:

1. build a random, seeded params pytree (nested dict/list/tuple with a
   scalar, vectors, matrices and a ``None`` leaf) in float32 or float64
   (:func:`make_params`, :func:`precision`);
2. minimise a convex quadratic whose gradient depends on the current params
   plus a deterministic per-step perturbation (:func:`make_problem`), so each
   library follows its own trajectory;
3. run ``STEPS`` updates of our transform and of optax's
   (:func:`run_trajectories`, with the update function wrapped by
   ``self.variant`` so chex runs it jitted and op by op);
4. compare the params after every step, every step's updates and the final
   state field by field, plus structures and dtypes
   (:func:`assert_trajectories_close`, :func:`assert_states_close`).

For our flags that optax lacks, :func:`replay_numpy` feeds the gradients a
run saw to a numpy formula (compare with :func:`formula_tolerance`).

:func:`compare_with_optax` does all four in one call.

Importing: ``tests`` and its subfolders are packages and the repository root
is on ``sys.path`` (``pythonpath`` in pyproject.toml), so test modules write::

  from tests import _trajectory as tj

Test classes that use ``@chex.variants`` together with
``@pytest.mark.parametrize`` inherit from :class:`VariantsTest` (a plain
pytest class; ``chex.TestCase`` is a ``unittest.TestCase`` and pytest cannot
parametrize those).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "DTYPES",
    "LR_KINDS",
    "STEPS",
    "Trajectory",
    "VariantsTest",
    "assert_states_close",
    "assert_trajectories_close",
    "compare_with_optax",
    "formula_tolerance",
    "replay_numpy",
    "is_jit",
    "learning_rate",
    "loss_grad",
    "make_params",
    "make_problem",
    "precision",
    "run_trajectories",
    "run_trajectory",
    "to_plain",
    "tolerance",
]

STEPS = 100
DTYPES = ("float32", "float64")
LR_KINDS = ("float", "lambda", "optax_schedule")

# float32: the required rtol 1e-6, plus an atol of about one float32 ulp at
# the params' scale (O(1)) so that coordinates crossing zero are not judged
# by a relative error. float64: the same idea at float64 precision.
_TOLERANCES = {
    "float32": dict(rtol=1e-6, atol=1e-7),
    "float64": dict(rtol=1e-12, atol=1e-14),
}


def tolerance(dtype: Any) -> dict:
  """``rtol``/``atol`` keyword arguments for comparing results in ``dtype``."""
  return dict(_TOLERANCES[np.dtype(dtype).name])


# For our flags checked against a numpy formula (not against optax): numpy
# rounds after every operation, while XLA fuses a step's arithmetic into one
# kernel (and may contract ``a * b + c`` into an FMA), so float32 results
# differ by an ulp here and there, which the moment recurrences then carry
# through 100 steps (observed up to ~2e-6 relative). float32 therefore gets
# rtol 1e-5 for formula checks; the flags' own effects are orders larger.
_FORMULA_TOLERANCES = {
    "float32": dict(rtol=1e-5, atol=1e-7),
    "float64": dict(rtol=1e-12, atol=1e-14),
}


def formula_tolerance(dtype: Any) -> dict:
  """``rtol``/``atol`` for comparing with an independent numpy formula."""
  return dict(_FORMULA_TOLERANCES[np.dtype(dtype).name])


# ---------------------------------------------------------------------------
# chex variants inside plain pytest classes


def _is_variants_generator(obj: Any) -> bool:
  # chex.variants returns a chex._src.variants.VariantsTestCaseGenerator;
  # matched by name so that no private module is imported.
  return type(obj).__name__ == "VariantsTestCaseGenerator" and hasattr(obj, "__iter__")


class VariantsTest:
  """Base for pytest test classes whose methods use ``@chex.variants``.

  ``chex.variants`` turns a test method into a generator of one method per
  variant (``test_x__with_jit``, ``test_x__without_jit``), each of which sets
  ``self.variant`` before running the body. ``chex.TestCase`` unrolls those
  generators through absl's metaclass; this base does the same when a
  subclass is created, so the methods stay ordinary pytest methods and keep
  their ``pytest.mark.parametrize`` marks (put ``@chex.variants`` outermost).
  """

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    for name, attr in list(vars(cls).items()):
      if _is_variants_generator(attr):
        delattr(cls, name)
        for test in attr:
          if test.__name__ in vars(cls):
            raise TypeError(f"duplicate generated test name {test.__name__}")
          setattr(cls, test.__name__, test)

  def variant(self, *args, **kwargs):
    raise RuntimeError("self.variant is set by @chex.variants only")


def is_jit(variant: Any) -> bool:
  """Whether the chex ``variant`` jits the functions it wraps."""
  return variant.type is chex.ChexVariantType.WITH_JIT


# ---------------------------------------------------------------------------
# Params, problem and learning rates


@contextlib.contextmanager
def precision(dtype: Any):
  """Enables ``jax_enable_x64`` for float64 (float32: leaves the flag as is).

  Create the params, the transforms and run the trajectory inside the
  context: dtypes given to transforms are canonicalised when they are built.
  """
  if np.dtype(dtype) == np.float64:
    with jax.enable_x64(True):
      yield
  else:
    yield


def make_params(seed: int = 0, dtype: Any = "float32", *, large: bool = False) -> Any:
  """A seeded random params pytree with nested dict/list/tuple and a ``None``.

  The default tree has a matrix, a scalar and a vector (and ``None``) inside
  a dict of a list of a tuple and a dict of a dict; ``large=True`` has more,
  more deeply nested leaves. Every leaf costs compile time (jitted runs) or
  dispatch time (op-by-op runs) in each test, so the trajectory tests use
  the default.
  """
  rng = np.random.default_rng(seed)

  def arr(*shape):
    return jnp.asarray(rng.normal(size=shape), dtype=dtype)

  if not large:
    return {"layer": [arr(2, 3), (arr(), None)], "out": {"b": arr(3)}}
  return {
      "dense": [{"w": arr(3, 4), "b": arr(4)}, (arr(), None)],
      "head": ({"w": arr(4, 2)}, [arr(2)]),
      "temperature": arr(),
  }


class Problem(NamedTuple):
  """``loss(p, t) = sum 0.5 h (p - c)^2 + d_t p`` per leaf."""

  curvature: Any  # h > 0, a random diagonal per leaf
  target: Any  # c
  drift: Any  # d_t = a sin(0.3 t + phi), stacked over the steps


def make_problem(params: Any, seed: int = 1, steps: int = STEPS) -> Problem:
  """A convex quadratic with a per-leaf random diagonal, shaped like ``params``.

  Its gradient ``h (p - c) + a sin(0.3 t + phi)`` depends on the current
  params (so each library follows its own trajectory) and on the step ``t``
  (a deterministic perturbation that keeps the gradients from vanishing, so
  the adaptive scalings see changing signs and magnitudes). The perturbation
  is tabulated here for ``steps`` steps (numpy, not compiled into every
  test's loop: XLA's sin is slow to compile).
  """
  rng = np.random.default_rng(seed)

  def draw(fn):
    return jax.tree.map(lambda p: np.asarray(fn(np.shape(p)), dtype=p.dtype), params)

  curvature = draw(lambda s: rng.uniform(0.5, 2.0, s))
  target = draw(lambda s: rng.normal(size=s))
  amplitude = draw(lambda s: rng.uniform(0.05, 0.2, s))
  phase = draw(lambda s: rng.uniform(0.0, 2 * np.pi, s))
  t = np.arange(steps)

  def drift(a, phi):
    t_ = t.reshape((steps,) + (1,) * np.ndim(a))
    return (a * np.sin(0.3 * t_ + phi)).astype(a.dtype)

  return Problem(curvature, target, jax.tree.map(drift, amplitude, phase))


def _loss(problem: Problem, params: Any, t: jax.Array) -> jax.Array:
  def leaf(h, c, d, p):
    return jnp.sum(0.5 * h * (p - c) ** 2 + d[t] * p)

  terms = jax.tree.map(leaf, *problem, params)
  return sum(jax.tree.leaves(terms))


# ``loss_grad(problem, params, t)``: jitted once per tree structure and dtype.
loss_grad = _grad = jax.jit(jax.grad(_loss, argnums=1))
_apply_updates = jax.jit(optax.apply_updates)


def learning_rate(kind: str, value: float = 0.05) -> Any:
  """A learning rate of the given kind, the same object for both libraries.

  ``"float"``: ``value``; ``"lambda"``: a jit-safe lambda schedule starting
  at ``value``; ``"optax_schedule"``: ``optax.exponential_decay``.
  """
  if kind == "float":
    return value
  if kind == "lambda":
    return lambda t: value / (1 + 0.01 * t)
  if kind == "optax_schedule":
    return optax.exponential_decay(value, transition_steps=10, decay_rate=0.9)
  raise ValueError(f"unknown learning-rate kind {kind!r}")


# ---------------------------------------------------------------------------
# Running


class Trajectory(NamedTuple):
  """What :func:`run_trajectory` returns.

  ``history``, ``grads`` and ``updates`` are stacked over the steps (leading
  axis of length ``steps``, numpy arrays); ``history[i]`` is the params after
  step ``i``.
  """

  params: Any
  history: Any
  grads: Any
  updates: Any
  last_updates: Any
  state: Any


def _stack(trees):
  return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


def run_trajectory(
    update_fn: Callable,
    state: Any,
    params: Any,
    steps: int = STEPS,
    *,
    problem: Optional[Problem] = None,
    grad_params: Callable[[Any], Any] = lambda p: p,
    grads_fn: Optional[Callable[[int, Any], Any]] = None,
) -> Trajectory:
  """Runs ``steps`` updates of ``update_fn`` from ``(state, params)``.

  Args:
    update_fn: the transform's ``update``, typically wrapped by
      ``self.variant`` (jitted once, then called every step; or op by op).
    state: the initial state (``tx.init(params)``).
    params: the initial params.
    steps: number of updates.
    problem: the loss (default: ``make_problem(grad_params(params))``).
    grad_params: which part of ``params`` the gradient is taken at
      (``lambda p: p.fast`` for lookahead).
    grads_fn: ``(step, params) -> grads`` overriding the loss gradient (for
      hand-made gradient streams, e.g. all zeros).
  """
  if grads_fn is None:
    if problem is None:
      problem = make_problem(grad_params(params), steps=steps)
    grads_fn = lambda t, p: _grad(problem, grad_params(p), np.int32(t))
  history, grads_seen, updates_seen = [], [], []
  updates = None
  for t in range(steps):
    grads = grads_fn(t, params)
    updates, state = update_fn(grads, state, params)
    params = _apply_updates(params, updates)
    history.append(params)
    grads_seen.append(grads)
    updates_seen.append(updates)
  return Trajectory(
      params=params,
      history=_stack(history),
      grads=_stack(grads_seen),
      updates=_stack([to_plain(u) for u in updates_seen]),
      last_updates=updates,
      state=state,
  )


def run_trajectories(
    variant: Any,
    transforms: Any,
    params: Any,
    steps: int = STEPS,
    *,
    problem: Optional[Problem] = None,
    grad_params: Callable[[Any], Any] = lambda p: p,
    grads_fn: Optional[Callable[[Any, Any], Any]] = None,
    wrap_params: Optional[Any] = None,
) -> list[Trajectory]:
  """Runs every transform in ``transforms`` for ``steps`` updates from ``params``.

  Each transform's ``variant(tx.update)`` (jitted once, or op by op) runs in
  :func:`run_trajectory`'s Python loop; the loss gradient and
  ``apply_updates`` are jitted once per process and shared by all tests.
  (Measured: this compiles less per test than a ``lax.scan`` over the whole
  loop, whose fixed cost dominates for the small trees used here.)
  Arguments are as in :func:`run_trajectory`; ``wrap_params``: one function
  per transform turning the plain ``params`` into that transform's params
  (e.g. ours and optax's ``LookaheadParams.init_synced``); the problem is
  built from the plain ``params``.
  """
  if grads_fn is None:
    if problem is None:
      problem = make_problem(params, steps=steps)
    if len(jax.tree.leaves(problem.drift)[0]) < steps:
      raise ValueError(f"the problem is tabulated for fewer than {steps} steps")
    grads_fn = lambda t, p: _grad(problem, grad_params(p), np.int32(t))
  if wrap_params is None:
    wrap_params = [lambda p: p] * len(transforms)
  runs = []
  for tx, wrap in zip(transforms, wrap_params):
    start = wrap(params)
    runs.append(run_trajectory(
        variant(tx.update), tx.init(start), start, steps, grads_fn=grads_fn
    ))
  return runs


def replay_numpy(
    grads: Any,
    step: Callable[[np.ndarray, Any, int], tuple[np.ndarray, Any]],
    init: Callable[[np.ndarray], Any],
) -> tuple[Any, Any]:
  """Feeds a recorded gradient stream to a numpy formula, leaf by leaf.

  For teacher-forced checks of our flags that optax lacks: the formula sees
  exactly the gradients our run saw, so only its own arithmetic is compared.

  Args:
    grads: stacked gradients (``Trajectory.grads``), leading axis = steps.
    step: ``(g, state, t) -> (update, state)`` in numpy, ``t`` = 1, 2, ...
    init: ``g0 -> state`` (``g0`` is the first gradient, for shape/dtype).

  Returns:
    ``(updates, final_states)``: the stacked updates and the final states,
    shaped like ``grads``' tree (a tuple of such trees when the per-leaf
    state is a tuple).
  """
  leaves, treedef = jax.tree.flatten(grads)
  all_updates, finals = [], []
  for g_seq in leaves:
    g_seq = np.asarray(g_seq)
    state = init(g_seq[0])
    outs = []
    for t, g in enumerate(g_seq, start=1):
      u, state = step(g, state, t)
      outs.append(np.asarray(u, g_seq.dtype))
    all_updates.append(np.stack(outs))
    finals.append(state)
  if finals and isinstance(finals[0], tuple):
    states = tuple(
        treedef.unflatten([f[i] for f in finals]) for i in range(len(finals[0]))
    )
  else:
    states = treedef.unflatten(finals)
  return treedef.unflatten(all_updates), states


# ---------------------------------------------------------------------------
# Comparing


def _is_namedtuple(x: Any) -> bool:
  return isinstance(x, tuple) and hasattr(type(x), "_fields")


def to_plain(tree: Any) -> Any:
  """``tree`` as nested dicts, lists and tuples of arrays.

  A NamedTuple becomes a one-entry dict ``{"<fields f1,f2,...>": {f1: ...}}``
  so that two NamedTuples of different classes compare equal exactly when
  their ``_fields`` (names and order) agree and their entries do; the class
  itself (ours vs optax's) is ignored. OrderedDicts become dicts.
  """
  if _is_namedtuple(tree):
    key = "<fields " + ",".join(tree._fields) + ">"
    return {key: {f: to_plain(getattr(tree, f)) for f in tree._fields}}
  if isinstance(tree, dict):
    return {k: to_plain(v) for k, v in tree.items()}
  if isinstance(tree, list):
    return [to_plain(v) for v in tree]
  if isinstance(tree, tuple):
    return tuple(to_plain(v) for v in tree)
  if tree is None:
    return None
  if isinstance(tree, (jax.Array, np.ndarray, np.generic, int, float, bool)):
    return tree
  raise TypeError(f"to_plain: unexpected node {type(tree).__name__}: {tree!r:.80}")


def assert_states_close(ours: Any, ref: Any, **tol) -> None:
  """Checks two states field by field.

  Recursively: NamedTuples must have the same ``_fields`` (the classes may
  differ), dicts the same keys, lists/tuples the same type and length, and
  every leaf the same shape and dtype and values allclose (``tol``: rtol,
  atol; default the float32 tolerance).
  """
  tol = tol or tolerance("float32")
  a, b = to_plain(ours), to_plain(ref)
  chex.assert_trees_all_equal_structs(a, b)
  chex.assert_trees_all_equal_shapes_and_dtypes(a, b)
  chex.assert_trees_all_close(a, b, **tol)


def assert_trajectories_close(
    ours: Trajectory,
    ref: Trajectory,
    dtype: Any = "float32",
    *,
    initial_params: Any = None,
    **tol,
) -> None:
  """Every step's params, the last updates and the final state agree.

  Also checks that params and updates have the same structures and dtypes,
  that our trajectory is finite and, when ``initial_params`` is given, that
  it moved away from them (a transform that returns zeros would otherwise
  match a broken reference trivially).
  """
  tol = tol or tolerance(dtype)
  chex.assert_trees_all_equal_structs(to_plain(ours.params), to_plain(ref.params))
  chex.assert_trees_all_equal_structs(
      to_plain(ours.last_updates), to_plain(ref.last_updates)
  )
  chex.assert_trees_all_equal_dtypes(to_plain(ours.last_updates), to_plain(ref.last_updates))
  chex.assert_trees_all_equal_dtypes(to_plain(ours.params), to_plain(ref.params))
  chex.assert_tree_all_finite(ours.history)
  chex.assert_trees_all_close(to_plain(ours.history), to_plain(ref.history), **tol)
  chex.assert_trees_all_close(ours.updates, ref.updates, **tol)
  assert_states_close(ours.state, ref.state, **tol)
  if initial_params is not None:
    moved = jax.tree.leaves(jax.tree.map(
        lambda p, q: bool(np.any(np.asarray(p) != np.asarray(q))),
        to_plain(ours.params), to_plain(initial_params),
    ))
    assert any(moved), "the params never moved: the comparison would be vacuous"


def compare_with_optax(
    variant: Any,
    make_ours: Callable[[], Any],
    make_ref: Callable[[], Any],
    dtype: Any = "float32",
    *,
    steps: int = STEPS,
    seed: int = 0,
    wrap_params: Optional[tuple[Callable[[Any], Any], Callable[[Any], Any]]] = None,
    grad_params: Callable[[Any], Any] = lambda p: p,
    grads_fn: Optional[Callable[[int, Any], Any]] = None,
    expect_moved: bool = True,
    **tol,
) -> tuple[Trajectory, Trajectory]:
  """Runs ``make_ours()`` and ``make_ref()`` (optax) from the same params.

  Under :func:`precision` of ``dtype``, builds both transforms and random
  params (:func:`make_params` with ``seed``; ``wrap_params = (ours,
  optax's)`` may wrap them, e.g. in each library's ``LookaheadParams``),
  runs ``steps`` updates of each (:func:`run_trajectories`) and asserts
  :func:`assert_trajectories_close`. Returns both trajectories for further
  checks.
  """
  with precision(dtype):
    params = make_params(seed, dtype)
    problem = None if grads_fn is not None else make_problem(params, seed + 1, steps)
    ours, ref = run_trajectories(
        variant, [make_ours(), make_ref()], params, steps,
        problem=problem, grad_params=grad_params, grads_fn=grads_fn,
        wrap_params=wrap_params,
    )
    start = params if wrap_params is None else wrap_params[0](params)
    assert_trajectories_close(
        ours, ref, dtype, initial_params=start if expect_moved else None, **tol
    )
  return ours, ref
