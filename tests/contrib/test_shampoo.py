"""shampoo against pytorch_optimizer.Shampoo (4.1.0): 50-step trajectories
on a small model's shapes (a square and a tall matrix, a vector, a scalar, a
conv kernel), every option, float64 and float32, jitted (one op-by-op run);
jit, inject_hyperparams and MultiSteps; init state; bad arguments.

The inverse roots come from an SVD of a positive definite sum, a function of
the matrix alone, so no basis choice enters (unlike soap's eigenvectors).
The lockstep runner is soap's (tests/contrib/test_soap.py).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from pytorch_optimizer import Shampoo

import jaxopt_notes as jn
from jaxopt_notes.contrib import _shampoo as ours
from tests.contrib import _common as cm
from tests.contrib.test_soap import assert_close, precision, run_both

SHAPES = {"w": (4, 4), "t": (6, 3), "b": (5,), "k": (4, 3, 3, 3), "s": ()}

CASES = {
    "defaults": dict(lr=1e-2),
    "momentum": dict(lr=1e-2, momentum=0.9),
    "momentum-low-coupled-decay": dict(lr=1e-2, momentum=0.3, weight_decay=0.1),
    "decoupled-decay": dict(lr=1e-2, weight_decay=0.1, weight_decouple=True),
    # With roots only every 3 steps, the vector's first root (at step 3) is
    # of a rank-3 sum: its other directions, scaled by matrix_eps^(-1/2), blow
    # the vector up to ~200 in both libraries (and float32's rounding with it);
    # a larger matrix_eps keeps the run meaningful.
    "fixed-decay-every-3": dict(
        lr=1e-2, weight_decay=0.01, weight_decouple=True, fixed_decay=True, preconditioning_compute_steps=3,
        matrix_eps=1e-3,
    ),
}

# float64: rounding only (two SVDs, two matmul orders; measured worst over the
# cases, 50 steps: 1.1e-13 absolute, 3.6e-13 relative, the vector with
# momentum). float32: the vector's early sums are rank deficient, so its
# roots' matrix_eps directions (scaled by 1e3) carry the SVDs' float32
# rounding (measured worst 7e-5 absolute, 1.8e-4 relative; 2e-6 on the rest).
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-3, atol=3e-4)}


def _run(kw, dtype, **opts):
  with precision(dtype):
    return run_both(kw, SHAPES, dtype, torch_cls=Shampoo, factory=ours.shampoo, **opts)


@pytest.mark.parametrize("case", sorted(CASES))
def test_float64_matches_torch(case):
  got, want, _, init = _run(CASES[case], "float64")
  assert_close(got, want, init, TOL["float64"], first_step_moves=True)


# float32 reaches every option the same way; two cases cover its own paths.
@pytest.mark.parametrize("case", ["momentum", "fixed-decay-every-3"])
def test_float32_matches_torch(case):
  got, want, _, init = _run(CASES[case], "float32")
  assert_close(got, want, init, TOL["float32"], first_step_moves=True)


def test_op_by_op_matches_torch():
  """Eager dispatch is slow: 6 steps."""
  kw = dict(CASES["momentum-low-coupled-decay"], lr=0.05)
  got, want, _, init = _run(kw, "float64", jit=False, steps=6)
  assert_close(got, want, init, TOL["float64"], first_step_moves=True)


def test_init_state():
  params = {"w": jnp.ones((4, 3)), "b": jnp.ones(5), "k": jnp.ones((4, 3, 3, 2)), "s": jnp.ones(())}
  state = ours.shampoo(matrix_eps=0.5).init(params)
  assert isinstance(state, ours.ShampooState)
  assert state._fields == ("count", "momentum", "preconditioners", "inverse_roots")
  assert state.count.dtype == jnp.int32 and int(state.count) == 0
  chex.assert_trees_all_equal(state.momentum, jax.tree.map(jnp.zeros_like, params))
  for k, p in params.items():
    assert tuple(m.shape for m in state.preconditioners[k]) == tuple((d, d) for d in p.shape)
    for m in state.preconditioners[k]:
      np.testing.assert_array_equal(m, 0.5 * np.eye(m.shape[0]))
    for m in state.inverse_roots[k]:
      np.testing.assert_array_equal(m, np.zeros_like(m))
  assert state.preconditioners["s"] == ()


def test_inject_hyperparams_and_schedule_equal_the_plain_run():
  params, grads = cm.random_grads(1, 6)
  kw = dict(momentum=0.5, weight_decay=0.1, weight_decouple=True, preconditioning_compute_steps=2)
  plain = cm.run_steps(ours.shampoo(0.05, **kw), params, grads)
  injected = optax.inject_hyperparams(ours.shampoo)(learning_rate=0.05, **kw)
  chex.assert_trees_all_close(cm.run_steps(injected, params, grads), plain, rtol=1e-6, atol=1e-7)
  chex.assert_trees_all_equal(cm.run_steps(ours.shampoo(lambda count: 0.05, **kw), params, grads), plain)
  state = injected.init(params)
  state.hyperparams["learning_rate"] = jnp.asarray(0.025)
  halved = cm.run_steps(injected, params, grads, state)
  chex.assert_trees_all_close(halved, cm.run_steps(ours.shampoo(0.025, **kw), params, grads), rtol=1e-6, atol=1e-7)
  assert not np.allclose(np.asarray(halved["w"]), np.asarray(plain["w"]))


def test_multi_steps_equals_shampoo_on_the_mean_gradients():
  params, grads = cm.random_grads(3, 8)
  kw = dict(learning_rate=0.05, momentum=0.5)
  cm.assert_multi_steps_is_the_mean_gradients_step(lambda: ours.shampoo(**kw), params, grads)


def test_update_needs_params_only_with_weight_decay():
  cm.assert_update_needs_params(ours.shampoo(weight_decay=0.1))
  tx = ours.shampoo()
  params = {"w": jnp.ones((2, 2))}
  u, _ = tx.update({"w": jnp.ones((2, 2))}, tx.init(params), None)
  assert cm.finite(u) and float(jnp.max(jnp.abs(u["w"]))) > 0


NAN = float("nan")


@pytest.mark.parametrize("kwargs, error, name", [
    (dict(learning_rate=NAN), ValueError, "learning_rate"),
    (dict(learning_rate=None), TypeError, "learning_rate"),
    (dict(momentum=1.0), ValueError, "momentum"),
    (dict(momentum=-0.1), ValueError, "momentum"),
    (dict(weight_decay=-1e-2), ValueError, "weight_decay"),
    (dict(weight_decouple="yes"), TypeError, "weight_decouple"),
    (dict(fixed_decay=1), TypeError, "fixed_decay"),
    (dict(preconditioning_compute_steps=0), ValueError, "preconditioning_compute_steps"),
    (dict(preconditioning_compute_steps=1.5), ValueError, "preconditioning_compute_steps"),
    (dict(matrix_eps=-1.0), ValueError, "matrix_eps"),
])
def test_bad_arguments_raise_naming_the_argument(kwargs, error, name):
  cm.assert_raises_naming(ours.shampoo, kwargs, error, name)


def test_a_sum_whose_eps_drowns_in_float32_gives_finite_steps():
  """A vector whose gradient never has a third component: its sum is eps in
  that direction, which float32 rounds to a zero singular value (the reference's
  formula then takes 0^(-1/2)); ours raises it to eps and keeps going."""
  end = jnp.array([1.0, -1.0, 1.0])
  objective = lambda p: jnp.sum((p - end) ** 2)
  tx = ours.shampoo(0.3)
  p = jnp.array([-1.0, 10.0, 1.0])
  state = tx.init(p)
  step = jax.jit(lambda p, s: tx.update(jax.grad(objective)(p), s, p))
  for _ in range(2000):
    u, state = step(p, state)
    p = jn.apply_updates(p, u)
  _, s, _ = jnp.linalg.svd(state.preconditioners[0])
  assert float(jnp.min(s)) < 1e-6  # the case is real: the eps direction is lost to rounding
  assert bool(jnp.all(jnp.isfinite(p))) and bool(jnp.all(jnp.isfinite(state.inverse_roots[0])))
  assert float(jnp.max(jnp.abs(p - end))) < 0.1
  np.testing.assert_array_equal(np.asarray(p)[2], 1.0)  # no step where no gradient ever was


def test_zero_eps_gives_no_step_along_a_zero_singular_value():
  root = ours._inverse_root(jnp.diag(jnp.array([4.0, 0.0])), 2, 0.0)
  np.testing.assert_allclose(np.asarray(root), np.diag([0.5, 0.0]), rtol=1e-6)
