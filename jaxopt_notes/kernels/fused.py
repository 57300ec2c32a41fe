r"""Fused optimizer steps: one pass over params, grads and state, in place.

An optimizer step is memory-bound. Adam reads params, grads and both moments
and writes params and moments: 28 bytes per float32 parameter at best. XLA:CPU
compiles the reference path (``tx.update`` then :func:`apply_updates`) into one
loop per output, each re-reading its inputs, and on many small leaves it pays a
fixed cost per leaf and per loop. :func:`apply_step` instead runs one C++
kernel (built by ``pip install`` from ``jaxopt_notes/_kernels/step_kernels.cc``
against the XLA FFI headers that ship with jaxlib, and called through
``jax.ffi``) that visits every element of every leaf once, splits big leaves
over XLA's CPU thread pool, and writes the new params and state into the
donated input buffers.

Which optimizers: :func:`~jaxopt_notes.sgd` (plain, momentum, Nesterov),
:func:`~jaxopt_notes.adam`, :func:`~jaxopt_notes.adamw` (constant weight decay,
no mask), :func:`~jaxopt_notes.rmsprop` (plain: not centred, no momentum, eps
inside the root), :func:`~jaxopt_notes.adagrad` (eps inside the root) and
:func:`~jaxopt_notes.adadelta` (constant weight decay, no mask; x86 with FMA,
where XLA's rsqrt is reproduced), with a
constant or scheduled learning rate, when every param, grad and state leaf is
float32. Plain SGD is already a single loop in XLA, so by default it takes
the kernel only up to 2**20 parameters, where the per-call overhead is what
the kernel saves. Where XLA's simplifier rewrites the reference arithmetic
for a hyper-parameter it sees as a constant (a decay of 0.5, Adam's or
Adadelta's eps of 0, a step of +-1 for RMSProp, AdaGrad and Adadelta, also
from a schedule whose value ignores the count; see ``rules.py``), around
``flatten`` of a single leaf of two or more dimensions, on a leaf of two or
more dimensions with a dimension of size 1 (RMSProp, AdaGrad, Adadelta) or
with a last dimension of 3 (RMSProp, AdaGrad: XLA compiles those loops'
roots and multiply-adds otherwise, measured), the reference path is kept.
A state not laid out as ``tx.init(params)`` lays it out is left to the
reference path, which rejects it. The kernel survives pickling
(cloudpickle) and copying of the optimizer.
Adadelta also has a bfloat16 kernel, for every leaf bfloat16 and Python-number
hyper-parameters: there XLA rounds every operation to bfloat16, and so does
the kernel (any host; arrays or a schedule make XLA compute in float32, and
keep the reference path). It saves the bf16 temporary XLA holds (peak 1.25x
params + grads + state).

Flat state: ``apply_step`` on :func:`~jaxopt_notes.flatten` of one of those
optimizers keeps the params (and grads) per leaf and the state as one vector
per moment over the concatenated leaves (optax.flatten's layout); the kernel
steps each leaf against its slice of those vectors, so nothing is
concatenated or split. A jitted step over many small leaves then passes a
few state buffers instead of one per leaf and moment (a jitted call pays
microseconds per buffer), with the same numbers as the per-leaf kernel.

When: ``apply_step(tx, grads, state, params)`` takes the kernel when ``tx`` is
one of those, the kernel was built, JAX's default backend is the CPU with a
single device, and the dtypes fit; otherwise it runs the reference path,
silently. ``fused=False`` (or the environment variable
``JAXOPT_NOTES_FUSED=0``) always takes the reference path; ``fused=True``
raises, saying why, where the kernel cannot run. :func:`fused_status` says
whether the kernel was built. On GPU and TPU XLA already emits one kernel per
leaf for these steps, and the reference path is used.

Numbers: the kernel does, per element, the same floating-point operations as the
code XLA:CPU emits for the reference path, including where XLA contracts a
multiply and an add into one fused multiply-add, its reciprocal for a
division by the bias correction, its flushing of denormals and its rsqrt
(the hardware estimate refined by Newton steps; which variant XLA uses on this
CPU is checked once, at load, against ``jax.lax.rsqrt``). Params and state are
therefore bitwise equal to ``tx.update`` + ``apply_updates`` for SGD,
momentum, RMSProp, AdaGrad, Adadelta and single-leaf Adam/AdamW. With several leaves,
XLA's simplifier rewrites Adam's ``(m / bc1) / (sqrt(v / bc2) + eps)``
differently (as one division by a product), so there the params agree to a
few ulp per step (the state stays bitwise equal): the same size as the
difference between two XLA programs computing one formula. On a lone 0-d
leaf XLA merges the divisions the same way; there the reference path runs. Around
``flatten`` the reference step is on one vector, and Adam is bitwise equal
too; the flat-state kernel's params are bitwise those of the per-leaf kernel.

Trade-offs: the kernel is a custom call, so XLA cannot fuse it with the
gradient computation, and under ``jit`` on several devices it would gather
sharded operands (auto-selection therefore needs one device). It is not
differentiable itself: derivatives (``jax.grad`` through a step, for
meta-learning) are taken through the reference path by a ``custom_jvp``.
Under ``vmap`` it runs once per batch element.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import importlib.util
import math
import os
import pathlib
import weakref
from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.core import base
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.kernels import rules

__all__ = ["apply_step", "fused_status", "FusedStatus", "kernel_library_path"]

_TARGETS = {
    "adam": "JonAdamStep",
    "momentum": "JonMomentumStep",
    "sgd": "JonSgdStep",
    "rms": "JonRmsStep",
    "rss": "JonRssStep",
    "adadelta": "JonAdadeltaStep",
    "adadelta_bf16": "JonAdadeltaBf16Step",
    "stream": "JonStreamStep",
}


class FusedStatus(NamedTuple):
  """Whether the fused kernels can run here, and why not."""

  available: bool
  library: Optional[str]  # path of the built kernel library
  host_fma: bool  # the kernel (like XLA:CPU) uses fused multiply-adds
  reason: str  # empty when available
  # Newton steps after the hardware estimate that reproduce jax.lax.rsqrt
  # here (RMSProp, AdaGrad); 0: none does, and the kernel divides exactly.
  rsqrt_steps: int = 0


@functools.lru_cache(maxsize=None)
def fused_status() -> FusedStatus:
  """Loads and registers the fused CPU kernels once; says whether that worked.

  The kernel library is compiled by ``pip install`` (``setup.py``); where no
  C++ compiler was found the install still succeeds and everything runs on
  the reference path, which this status then explains.

  Examples:
    >>> import jaxopt_notes as jn
    >>> status = jn.fused_status()
    >>> status.available or bool(status.reason)  # built here, or a reason why not
    True
  """
  path = kernel_library_path()
  if path is None:
    return FusedStatus(False, None, False, "the kernel library was not built at install time "
                       "(no C++ compiler?); reinstall with one to enable it")
  try:
    lib = ctypes.CDLL(path)
    for name, symbol in _TARGETS.items():
      jax.ffi.register_ffi_target(
          f"jaxopt_notes_{name}", jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu"
      )
    fma = bool(lib.JonHostHasFma())
    steps = _rsqrt_steps(lib) if fma else 0
  except (OSError, AttributeError, TypeError, ValueError) as e:
    return FusedStatus(False, path, False, f"loading {path} failed: {e}")
  return FusedStatus(True, path, fma, "", steps)


def _rsqrt_steps(lib) -> int:
  """How XLA:CPU computes float32 rsqrt here, as a number of Newton steps.

  XLA:CPU refines the hardware estimate (whose bits differ between CPU
  vendors) by one or two Newton steps, depending on the CPU and its version.
  Running jax.lax.rsqrt and the kernel's loop on the same probe values finds
  the variant to use; where none matches bit for bit, 0 (exact 1 / sqrt).
  """
  rng = np.random.default_rng(0)
  x = np.abs(rng.standard_normal(4099)).astype(np.float32)
  x *= (10.0 ** rng.uniform(-40, 38, x.size)).astype(np.float32)
  x[:8] = [0.0, 1e-40, 1.17549435e-38, 1.0, 4.0, np.inf, np.nan, -1.0]
  with jax.ensure_compile_time_eval():  # may run first inside a jit trace
    # On XLA:CPU, whatever the default backend: that is the code the kernels copy.
    want = np.asarray(jax.jit(jax.lax.rsqrt)(jax.device_put(x, jax.devices("cpu")[0])))
  lib.JonRsqrtProbe.restype = ctypes.c_int
  lib.JonRsqrtProbe.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int]
  for steps in (2, 1):
    got = np.empty_like(x)
    if not lib.JonRsqrtProbe(x.ctypes.data, got.ctypes.data, x.size, steps):
      return 0
    if np.array_equal(got.view(np.uint32), want.view(np.uint32)) or (
        np.array_equal(got, want, equal_nan=True)):
      return steps
  return 0


def kernel_library_path() -> Optional[str]:
  """The built kernel library: next to this package, else in the installed one.

  The second case is a source checkout imported ahead of the installed
  package (``python -m pytest`` in the repository puts the checkout first on
  ``sys.path``) while ``pip install .`` built the kernel into site-packages.
  """
  spec = importlib.util.find_spec("jaxopt_notes.kernels._step_kernels")
  if spec is not None and spec.origin is not None:
    return spec.origin
  # Every installed copy on sys.path: the checkout's own egg-info, left by an
  # in-tree build, lists sources only.
  files = [f for d in importlib.metadata.distributions(name="jaxopt_notes") for f in d.files or []]
  for f in files:
    if f.name.startswith("_step_kernels.") and f.suffix in (".so", ".pyd", ".dylib"):
      located = pathlib.Path(str(f.locate()))
      if located.exists():
        return str(located)
  return None


# The rule constructors the optimizers attach (defined in rules.py).
adam_rule = rules.adam_rule
momentum_rule = rules.momentum_rule
sgd_rule = rules.sgd_rule
rms_rule = rules.rms_rule
rss_rule = rules.rss_rule
adadelta_rule = rules.adadelta_rule
_Rule = rules.Rule
_Prepared = rules.Prepared

_MARK = "__jaxopt_notes_fused__"


class _Attached:
  """What :func:`attach` stores on an optimizer's update function.

  It travels with the function: cloudpickle (which pickles a closure by value,
  its ``__dict__`` included) and ``copy`` keep the kernel. ``fn`` tells the
  function it was attached to from a wrapper that copied the attribute
  (``functools.wraps`` copies ``__dict__``), which must not inherit it.
  """

  __slots__ = ("fn", "rule")

  def __init__(self, fn: Callable, rule: _Rule):
    self.fn, self.rule = fn, rule


# Update functions that take no attribute (a builtin, a bound method): keyed
# weakly by identity, so a dropped optimizer leaves nothing behind; such a
# function loses its kernel when pickled.
_RULES: "weakref.WeakKeyDictionary[Callable, _Rule]" = weakref.WeakKeyDictionary()


def attach(tx: base.GradientTransformation, rule: _Rule):
  """Marks ``tx`` as steppable by ``rule``'s kernel; returns ``tx``."""
  try:
    setattr(tx.update, _MARK, _Attached(tx.update, rule))
  except (AttributeError, TypeError):
    _RULES[tx.update] = rule
  return tx


def rule_of(tx: base.GradientTransformation) -> Optional[_Rule]:
  """The fused rule attached to ``tx``, or ``None``."""
  try:
    fn = tx[1]  # a plain (init, update) tuple has no .update
  except (TypeError, IndexError, KeyError):
    return None
  mark = getattr(fn, "__dict__", {}).get(_MARK)
  if isinstance(mark, _Attached) and mark.fn is fn:
    return mark.rule
  try:
    return _RULES.get(fn)
  except TypeError:  # not weakly referenceable
    return None


# The most leaves one custom call takes (see call_kernel).
_GROUP = 64


def call_kernel(kernel: str, flag: bool, scalars: jax.Array, params: Sequence[jax.Array],
                grads: Sequence[jax.Array], moments: Sequence[Sequence[jax.Array]],
                *, flat_state: bool = False):
  """Runs one kernel over lists of leaves; returns ``(params, moments)``.

  ``moments`` holds, per state array, its leaves (laid out like ``params``)
  or, with ``flat_state``, one vector over the concatenated leaves. Every
  params and moment input is aliased to its output, so a donated buffer is
  updated in place.
  """
  n = len(params)
  if not flat_state and n > _GROUP:
    # XLA's compile time grows faster than linearly in the aliased buffers of one custom
    # call (1000 leaves: about a minute); calls of at most _GROUP leaves each keep it linear
    # and every buffer still in place. Each leaf's arithmetic is the same in any group.
    new_params: list = []
    new_moments: list[list] = [[] for _ in moments]
    for lo in range(0, n, _GROUP):
      group = slice(lo, lo + _GROUP)
      p, ms = call_kernel(kernel, flag, scalars, params[group], grads[group], [m[group] for m in moments])
      new_params += p
      for acc, m in zip(new_moments, ms):
        acc += m
    return new_params, new_moments
  flat_moments = [leaf for m in moments for leaf in m]
  k = len(flat_moments) // len(moments) if moments else 0  # buffers per moment
  shapes = [jax.ShapeDtypeStruct(x.shape, x.dtype) for x in (*params, *flat_moments)]
  aliases = {1 + i: i for i in range(n)}
  aliases.update({1 + 2 * n + j: n + j for j in range(len(flat_moments))})
  call = jax.ffi.ffi_call(
      f"jaxopt_notes_{kernel}", shapes, input_output_aliases=aliases, vmap_method="sequential",
  )
  outs = call(scalars, *params, *grads, *flat_moments, flag=bool(flag),
              flat_state=bool(flat_state))
  return outs[:n], [outs[n + s * k:n + (s + 1) * k] for s in range(len(moments))]


# The kernels that reproduce XLA's rsqrt (RMSProp, AdaGrad, float32 Adadelta).
_RSQRT_KERNELS = ("rms", "rss", "adadelta")


def _why_not(tx, rule: Optional[_Rule], grads, state, params, auto: bool) -> str:
  """Why the kernel cannot take this step ('' when it can)."""
  if rule is None:
    return ("this optimizer has no fused kernel (sgd, adam, adamw, rmsprop, adagrad and "
            "adadelta built by jaxopt_notes, in their plain configurations, alone or inside "
            "jaxopt_notes.flatten, have one)")
  status = fused_status()
  if not status.available:
    return status.reason
  if rule.needs_xla_rsqrt and status.rsqrt_steps == 0:
    return f"the {rule.kernel} kernel needs XLA's rsqrt reproduced on this CPU (fused_status().rsqrt_steps)"
  if jax.default_backend() != "cpu":
    return f"the fused kernels run on the CPU; the default backend is {jax.default_backend()}"
  if auto and jax.device_count() > 1:
    return "several devices: the kernel would gather sharded operands (pass fused=True to force)"
  if params is None:
    return "apply_step needs params"
  p_leaves, treedef = jax.tree.flatten(params)
  if not p_leaves:
    return "params have no leaves"
  if jax.tree.structure(grads) != treedef:  # type: ignore[operator]
    return "grads and params differ in structure"
  try:
    # Laid out as tx.init(params) lays it out: the rule reads only some of the
    # state (adam's rule would take and return an adamw state), the
    # reference path checks it all.
    want = jax.tree.structure(jax.eval_shape(tx.init, params))
    if jax.tree.structure(state) != want:  # type: ignore[operator]
      return f"the state is not this optimizer's: expected {want}, got {jax.tree.structure(state)}"
    # Shapes only: the step's scalars are computed once, on the fused path.
    moments = jax.eval_shape(lambda s: rule.prepare(s).moments, state)
  except (TypeError, ValueError, AttributeError, IndexError, KeyError) as e:
    return f"the state is not this optimizer's ({e})"
  refused = rule.refuse(state) if rule.refuse is not None else ""
  if refused:
    return refused
  nonempty = [p for p in p_leaves if math.prod(jnp.shape(p))]
  if rule.kernel in _RSQRT_KERNELS and any(jnp.ndim(p) > 1 and 1 in jnp.shape(p) for p in nonempty):
    # Measured: on (1, 9) and (1, 1, 9) leaves XLA's rsqrt differs from the
    # kernel's by an ulp in the last element (not on (9,), same values).
    return ("a leaf of two or more dimensions with a dimension of size 1: XLA compiles its "
            "root differently from the kernel")
  if (rule.kernel in ("rms", "rss") and not rule.flat_state
      and any(jnp.ndim(p) > 1 and jnp.shape(p)[-1] == 3 for p in nonempty)):
    # Measured (the randomized test found it): with a run-time learning rate XLA's loop over a
    # (n, 3) leaf leaves the last multiply-add of RMSProp's and AdaGrad's step uncontracted in
    # about 1% of elements (not for a last dimension of 1, 2, 4-21 or on one vector).
    return ("rmsprop or adagrad with a leaf of two or more dimensions whose last is 3: XLA "
            "contracts its multiply-adds differently from the kernel")
  if rule.kernel == "adam" and len(nonempty) == 1 and jnp.ndim(nonempty[0]) == 0:
    # Measured (CI found it): on a lone 0-d leaf XLA folds m / bc1 / (sqrt(v / bc2) + eps)
    # into one division, off by an ulp in about one step in ten; alone or inside flatten.
    return ("adam on a single 0-d leaf: XLA folds its two divisions into one, which the "
            "kernel does not")
  if rule.flat_state and len(nonempty) == 1 and jnp.ndim(nonempty[0]) > 1:
    # flatten's concatenation is then a reshape, which XLA moves through the
    # step and compiles otherwise (measured: Adam's division, Adadelta's roots).
    return ("flatten around a single leaf of two or more dimensions: XLA compiles the "
            "reshaped step differently from the kernel")
  if rule.flat_state:
    total = sum(math.prod(jnp.shape(p)) for p in p_leaves)
    for m in moments:
      if not (isinstance(m, jax.ShapeDtypeStruct) and m.dtype == rule.dtype
              and m.shape == (total,)):
        return (f"the flattened state must be {jnp.dtype(rule.dtype).name} vectors over the "
                "concatenated params; "
                f"got {jax.tree.map(lambda x: (x.dtype, x.shape), m)}")
    moments = ()
  trees = [("params", params), ("grads", grads)] + [("state", m) for m in moments]
  for name, tree in trees:
    leaves, td = jax.tree.flatten(tree)
    if td != treedef:  # type: ignore[operator]
      return f"{name} is not laid out like params"
    for leaf, p in zip(leaves, p_leaves):
      if jnp.result_type(leaf) != rule.dtype or jnp.shape(leaf) != jnp.shape(p):
        return (f"{name} leaves must be {_dtype_names(rule)} arrays shaped like params; got "
                f"{jnp.result_type(leaf)}")
  # Around flatten the alternative concatenates every leaf: the kernel always wins.
  limit = None if rule.flat_state else rule.auto_max_params
  if auto and limit is not None and sum(math.prod(jnp.shape(p)) for p in p_leaves) > limit:
    return f"{rule.kernel} on more than {limit} params: XLA's own loop is as fast"
  return ""


def _dtype_names(rule: _Rule) -> str:
  names = [jnp.dtype(rule.dtype).name] + ([] if rule.bf16 is None else ["bfloat16"])
  return " or all ".join(names)


def _for_dtype(rule: Optional[_Rule], params) -> Optional[_Rule]:
  """The rule's bfloat16 variant where it has one and every param is bfloat16."""
  if rule is None or rule.bf16 is None:
    return rule
  leaves = jax.tree.leaves(params)
  if leaves and all(jnp.result_type(x) == jnp.bfloat16 for x in leaves):
    return rule.bf16._replace(flat_state=rule.flat_state)
  return rule


def _fused_path(rule: _Rule, grads, state, params):
  prep = rule.prepare(state)
  p_leaves, treedef = jax.tree.flatten(params)
  # Python scalars (allowed as leaves) become arrays with a shape.
  leaves = lambda tree: [jnp.asarray(x) for x in jax.tree.leaves(tree)]  # pylint: disable=unnecessary-lambda-assignment
  new_p, new_m = call_kernel(
      rule.kernel, rule.flag, prep.scalars, leaves(params), leaves(grads),
      [leaves(m) for m in prep.moments], flat_state=rule.flat_state,
  )
  unflatten = functools.partial(jax.tree.unflatten, treedef)
  if rule.flat_state:
    return unflatten(new_p), prep.rebuild(*(m[0] for m in new_m))
  return unflatten(new_p), prep.rebuild(*map(unflatten, new_m))


def _reference_path(tx, grads, state, params, **extra_args):
  updates, state = tx.update(grads, state, params, **extra_args)
  return tree_lib.apply_updates(params, updates), state


def apply_step(
    tx: base.GradientTransformation,
    grads: base.Updates,
    state: base.OptState,
    params: base.Params,
    *,
    fused: Optional[bool] = None,
    **extra_args: Any,
) -> tuple[base.Params, base.OptState]:
  r"""One optimizer step: ``params, state = apply_step(tx, grads, state, params)``.

  .. math:: (w_t, s_t) = \mathrm{apply\_updates}(w_{t-1}, \mathrm{update}(g_t, s_{t-1}, w_{t-1}))

  The same result as ``updates, state = tx.update(grads, state, params)``
  followed by ``params = apply_updates(params, updates)`` (notes 000's
  ``w -= lr * dw``, in whatever form ``tx`` gives it), taken in one fused
  in-place pass where a kernel exists (see the module docstring for which
  optimizers, when, and the numbers). Call it inside ``jax.jit`` with params
  and state donated (``donate_argnums``) so the pass writes into their
  buffers. optax has no such function.

  Args:
    tx: any transform (ours, optax's, a chain).
    grads: gradients, laid out like ``params``.
    state: ``tx``'s state.
    params: current parameters.
    fused: ``None`` (default) picks the kernel where it applies, ``True``
      requires it (``ValueError`` saying why where it cannot run), ``False``
      never uses it. ``JAXOPT_NOTES_FUSED=0`` in the environment turns the
      default off.
    **extra_args: passed to ``tx.update`` on the reference path.

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.sgd(0.1, momentum=0.9)
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> state = tx.init(params)
    >>> for _ in range(2):  # the same numbers with or without the kernel
    ...   params, state = jn.apply_step(tx, {"w": jnp.ones(2)}, state, params)
    >>> print(np.asarray(params["w"]).round(4))  # -0.1, then -0.1 * (1 + 0.9)
    [ 0.71 -2.29]
  """
  if fused is not None and not isinstance(fused, bool):
    raise TypeError(f"`fused` must be None, True or False; got {fused!r}")
  if fused is None and os.environ.get("JAXOPT_NOTES_FUSED", "1") == "0":
    fused = False
  if fused is False:
    return _reference_path(tx, grads, state, params, **extra_args)
  rule = _for_dtype(rule_of(tx), params)
  reason = _why_not(tx, rule, grads, state, params, auto=fused is None)
  if reason:
    if fused:
      raise ValueError(f"apply_step(fused=True) cannot use the fused kernel: {reason}")
    return _reference_path(tx, grads, state, params, **extra_args)

  @jax.custom_jvp
  def step(g, s, p):
    return _fused_path(rule, g, s, p)

  # Derivatives through a step (meta-learning) follow the reference path.
  step.defjvp(lambda primals, tangents: jax.jvp(
      lambda g, s, p: _reference_path(tx, g, s, p), primals, tangents))
  return step(grads, state, params)
