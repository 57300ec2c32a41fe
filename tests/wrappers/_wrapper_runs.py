"""Shared harness for the wrapper tests: short scanned runs compared with optax.

Used by the tests of ``inject_hyperparams``, ``partition``/``freeze``,
``apply_if_finite``/``flatten`` and ``MultiSteps``. Unlike
:mod:`tests._trajectory` (a Python loop over one update per step, compared
within a tolerance), a run here is one jitted ``lax.scan`` (or eager steps
under a chex ``variant``) and the comparison is exact unless told otherwise:

1. each test module builds its own small params tree and per-step inputs,
   usually seeded Gaussian noise (:func:`noise`);
2. the gradient at each step depends on the params
   (:func:`noisy_grads`, or a module's own ``grads`` function), so a run is
   a trajectory;
3. :func:`trajectory` runs one transform, :func:`run_pair` ours (with
   ``jn.apply_updates``) and optax's (with ``optax.apply_updates``) on the
   same inputs;
4. :func:`assert_same_state` checks pytree layout, dtypes and values;
   :func:`compare` does all of it for a long jitted or a short eager run.

Importing: as ``tests/_trajectory.py`` (see its docstring)::

  from tests.wrappers import _wrapper_runs as wr
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
import optax

import jaxopt_notes as jn
from tests import _trajectory as tj

__all__ = [
    "EAGER_RTOL",
    "SELECT_RTOL",
    "assert_same_state",
    "compare",
    "is_jit",
    "noise",
    "noisy_grads",
    "run_pair",
    "trajectory",
]

# Eager float32 code may round differently from compiled code.
EAGER_RTOL = 1e-5
# apply_if_finite and MultiSteps: ours selects where optax branches with
# lax.cond; XLA then fuses the inner step differently, which moves float32
# results by an ulp or so.
SELECT_RTOL = 2e-6


def is_jit(variant: Any) -> bool:
  """Whether a run under ``variant`` is jitted (``None``: plain ``jax.jit``)."""
  return variant is None or tj.is_jit(variant)


def noise(params: Any, steps: int, seed: int = 0, dtype: Any = None) -> Any:
  """Seeded standard-normal noise shaped like ``params``, stacked over ``steps``.

  ``dtype``: of every leaf (default: each param's dtype).
  """
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda p: rng.standard_normal((steps,) + p.shape).astype(dtype or p.dtype), params
  )


def noisy_grads(noise: Any, params: Any) -> Any:
  """``noise + 0.3 * params``: depends on the params, so a run is a trajectory."""
  return jax.tree.map(lambda n, p: n + 0.3 * p, noise, params)


def trajectory(
    tx: Any,
    apply: Callable,
    params: Any,
    xs: Any,
    variant: Any = None,
    *,
    grads: Callable[[Any, Any], Any] = noisy_grads,
) -> tuple[Any, Any]:
  """Runs ``tx`` from ``params`` over the per-step inputs ``xs``.

  One jitted ``lax.scan`` (``variant`` ``None`` or with jit), or eager steps
  under ``variant``. ``xs``: a pytree with a leading axis of steps; step
  ``t``'s gradient is ``grads(xs[t], params)``; ``apply``: the library's
  ``apply_updates``. Returns the final ``(params, state)``.
  """

  def step(carry, x):
    params, state = carry
    updates, state = tx.update(grads(x, params), state, params)
    return (apply(params, updates), state), None

  carry = (params, tx.init(params))
  if is_jit(variant):
    carry, _ = (variant or jax.jit)(lambda c, x: jax.lax.scan(step, c, x))(carry, xs)
    return carry
  step = variant(step)
  for t in range(len(jax.tree.leaves(xs)[0])):
    carry, _ = step(carry, jax.tree.map(lambda x: x[t], xs))
  return carry


def run_pair(
    ours: Any,
    theirs: Any,
    params: Any,
    xs: Any,
    variant: Any = None,
    *,
    grads: Callable[[Any, Any], Any] = noisy_grads,
) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
  """:func:`trajectory` of ours (under ``variant``) and of optax's (jitted).

  Returns ``((params_a, state_a), (params_b, state_b))``.
  """
  return (
      trajectory(ours, jn.apply_updates, params, xs, variant, grads=grads),
      trajectory(theirs, optax.apply_updates, params, xs, grads=grads),
  )


def assert_same_state(ours: Any, theirs: Any, rtol: float = 0.0) -> None:
  """Same pytree layout (node types, NamedTuple and field names) and leaves.

  Leaves: same dtype, and allclose with ``rtol`` and ``atol = rtol * 1e-2``
  (default: equal).
  """
  assert str(jax.tree.structure(ours)) == str(jax.tree.structure(theirs))
  flat_ours = jax.tree_util.tree_flatten_with_path(ours)[0]
  for (path, a), b in zip(flat_ours, jax.tree.leaves(theirs)):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype, jax.tree_util.keystr(path)
    np.testing.assert_allclose(
        a, b, rtol=rtol, atol=rtol * 1e-2, err_msg=jax.tree_util.keystr(path)
    )


def compare(
    ours: Any,
    theirs: Any,
    params: Any,
    inputs: Callable[[int], Any],
    variant: Any = None,
    *,
    long: int,
    short: int,
    rtol: float = 0.0,
    grads: Callable[[Any, Any], Any] = noisy_grads,
) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
  """Ours (jitted or eager, per ``variant``) against optax's, jitted.

  Checks the initial states, then runs both (:func:`run_pair`) over
  ``inputs(steps)`` for ``long`` steps (jitted; ``rtol``) or ``short`` steps
  (eager; at least :data:`EAGER_RTOL`) and checks the final states and
  params. Returns both final ``(params, state)`` pairs.
  """
  jit = is_jit(variant)
  steps = long if jit else short
  rtol = rtol if jit else max(rtol, EAGER_RTOL)
  assert_same_state(ours.init(params), theirs.init(params))
  (params_a, state_a), (params_b, state_b) = run_pair(
      ours, theirs, params, inputs(steps), variant, grads=grads
  )
  assert_same_state(state_a, state_b, rtol)
  assert_same_state(params_a, params_b, rtol)
  return (params_a, state_a), (params_b, state_b)
