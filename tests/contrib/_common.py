"""Helpers shared by the learning-rate-free contrib tests (prodigy, dog, cocob).

Each test module names its cases as ``id -> lambda lib: lib.NAME(...)``,
where ``lib`` is our module or ``optax.contrib``; these helpers run a case
for :data:`tests._trajectory.STEPS` steps in both libraries and compare.
"""

from __future__ import annotations

import re
from typing import Any, Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj

Case = Callable[[Any], Any]

# Our arithmetic repeats optax's operation for operation (same association,
# same tree reductions), so XLA compiles the same program: bitwise, jitted
# and op by op, in both precisions.
BITWISE = dict(rtol=0.0, atol=0.0)
# The brief's minimum; 100 steps doubles the op-by-op runs' time for nothing
# new (the estimates have stopped growing by then).
STEPS = 50


def decay_mask(params: Any) -> Any:
  """Decay the matrices and vectors, not the scalars (a mask as a function)."""
  return jax.tree.map(lambda p: jnp.ndim(p) > 0, params)


def compare_case(variant: Any, ours_lib: Any, case: Case, dtype: str, **tol: Any):
  """Runs ``case`` with our module and with optax.contrib; bitwise by default."""
  return tj.compare_with_optax(
      variant, lambda: case(ours_lib), lambda: case(optax.contrib), dtype, steps=STEPS,
      **(tol or BITWISE)
  )


def assert_init_like_optax(ours_lib: Any, case: Case, dtype: str) -> None:
  """``init``'s state: same NamedTuple fields, structure, shapes, dtypes and values."""
  with tj.precision(dtype):
    params = tj.make_params(0, dtype)
    tj.assert_states_close(case(ours_lib).init(params), case(optax.contrib).init(params), **BITWISE)


# Jitted vs op by op, float64. XLA fuses a jitted step and may contract
# products into FMAs, so the two differ by rounding only, which the running
# sums and the max of the estimates then amplify (float32, 20 steps:
# prodigy's grad_sum 3.5e-6 relative, dadapt's estim_lr 2e-5; optax shows the
# same gaps, as ours equals it bitwise in each mode). In float64 the gap
# stays far below 1e-9.
JIT_EAGER_TOL = dict(rtol=1e-9, atol=1e-12)


def assert_jit_equals_eager(ours_lib: Any, case: Case, dtype: str = "float64", steps: int = 20) -> None:
  """Jitted and op-by-op ``update`` agree step after step (:data:`JIT_EAGER_TOL`).
  """
  with tj.precision(dtype):
    params = tj.make_params(0, dtype)
    tx = case(ours_lib)
    jitted, eager = tj.run_trajectories(
        lambda f: f, [tx._replace(update=jax.jit(tx.update)), tx], params, steps,
        problem=tj.make_problem(params, 1, steps),
    )
    tol = JIT_EAGER_TOL
    chex.assert_trees_all_close(jitted.history, eager.history, **tol)
    tj.assert_states_close(jitted.state, eager.state, **tol)


def assert_raises_naming(factory: Callable[..., Any], kwargs: dict, error: type, name: str) -> None:
  """``factory(**kwargs)`` raises ``error`` whose message names `` `name` ``."""
  with pytest.raises(error, match=re.escape(f"`{name}`")) as info:
    factory(**kwargs)
  assert "got" in str(info.value)


def assert_update_needs_params(tx: Any) -> None:
  params = {"w": jnp.ones(2)}
  with pytest.raises(ValueError, match="params"):
    tx.update({"w": jnp.ones(2)}, tx.init(params), None)


def finite(tree: Any) -> bool:
  return all(bool(np.all(np.isfinite(np.asarray(x)))) for x in jax.tree.leaves(tree))


def assert_injectable(factory: Callable[..., Any], **hparams: Any) -> None:
  """Under ``optax.inject_hyperparams`` (hyper-parameters traced inside ``jit``) the
  argument checks let the values through and the step equals the plain one."""
  params = {"w": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array(0.3)}
  grads = {"w": jnp.array([0.2, -0.1, 0.4]), "b": jnp.array(-0.5)}
  injected = optax.inject_hyperparams(factory)(**hparams)
  plain = factory(**hparams)
  got, _ = jax.jit(injected.update)(grads, injected.init(params), params)
  want, _ = jax.jit(plain.update)(grads, plain.init(params), params)
  chex.assert_trees_all_close(got, want, rtol=1e-6)


def run_steps(tx: Any, params: Any, grads: list, state: Any = None) -> Any:
  """The params after ``tx``'s jitted update over ``grads`` (from ``tx.init`` unless ``state``)."""
  update = jax.jit(tx.update)
  state = tx.init(params) if state is None else state
  for g in grads:
    u, state = update(g, state, params)
    params = jn.apply_updates(params, u)
  return params


def random_grads(seed: int, n: int, shapes: Any = None) -> tuple[dict, list]:
  """float32 params of ``shapes`` (default a 3 x 3 ``w`` and a 2-vector ``b``) and ``n`` random gradients."""
  rng = np.random.default_rng(seed)
  params = {k: jnp.asarray(rng.normal(size=s), jnp.float32) for k, s in (shapes or {"w": (3, 3), "b": (2,)}).items()}
  grads = [jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params) for _ in range(n)]
  return params, grads


def assert_multi_steps_is_the_mean_gradients_step(make: Callable[[], Any], params: Any, grads: list) -> None:
  """``MultiSteps(make(), 2)`` over ``grads`` equals ``make()`` over the pairs' mean gradients."""
  multi = optax.MultiSteps(make(), every_k_schedule=2)
  means = [jax.tree.map(lambda a, b: (a + b) / 2, grads[i], grads[i + 1]) for i in range(0, len(grads) - 1, 2)]
  chex.assert_trees_all_close(run_steps(multi, params, grads), run_steps(make(), params, means), rtol=1e-6)
