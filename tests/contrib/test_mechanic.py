"""mechanize against optax.contrib.mechanize (optax 0.2.8).

50-step trajectories bitwise equal (params every step, updates, the final
state with the base optimizer's), jitted for every option in float32 and
float64 and op by op for a few, around our own adam and sgd (optax's
mechanize around optax's); also ours around optax's adam. Then optax's own
test (_mechanic_test.py) on ours: one step with a stateful inner SGD through
``tree.map_params``, whose m, v and s follow from the formulas (at the first
step h = 0). Also: x0 taken at the first update, extra arguments reaching
the base optimizer, the state's dtypes, bad arguments naming themselves.
"""

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

import jaxopt_notes as jn
from jaxopt_notes.contrib import _mechanic as ours
from tests import _trajectory as tj
from tests.contrib import _common as cm


def _core(lib):
  """The library's own base optimizers: optax's beside optax.contrib, ours beside ours."""
  return optax if lib is optax.contrib else jn


_CASES = {
    "adam-defaults": lambda lib: lib.mechanize(_core(lib).adam(0.1)),
    "sgd-defaults": lambda lib: lib.mechanize(_core(lib).sgd(0.1)),
    "adam-schedule": lambda lib: lib.mechanize(_core(lib).adam(tj.learning_rate("optax_schedule", 1.0))),
    "sgd-momentum-options": lambda lib: lib.mechanize(
        _core(lib).sgd(0.05, momentum=0.9), weight_decay=0.1, eps=1e-6, s_init=1e-4, num_betas=3
    ),
    "no-decay-one-beta": lambda lib: lib.mechanize(_core(lib).adam(0.5), weight_decay=0.0, num_betas=1),
    # 8 betas: 1 - 1e-8 rounds to 1 in float32, so the last ones never decay.
    "adam-positional": lambda lib: lib.mechanize(_core(lib).adam(1.0, b1=0.8), 0.05, 1e-10, 1e-8, 8),
}


class TestMatchesOptax(tj.VariantsTest):

  @chex.variants(with_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("case", sorted(_CASES))
  def test_trajectory(self, case, dtype):
    run, _ = cm.compare_case(self.variant, ours, _CASES[case], dtype)
    assert isinstance(run.state, ours.MechanicState)
    assert int(run.state.count) == cm.STEPS

  @chex.variants(without_jit=True)
  @pytest.mark.parametrize("case, dtype", [("adam-defaults", "float32"), ("sgd-momentum-options", "float64")])
  def test_trajectory_op_by_op(self, case, dtype):
    cm.compare_case(self.variant, ours, _CASES[case], dtype)

  @chex.variants(with_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_around_optax_adam(self, dtype):
    tj.compare_with_optax(
        self.variant, lambda: ours.mechanize(optax.adam(0.1)), lambda: optax.contrib.mechanize(optax.adam(0.1)),
        dtype, steps=cm.STEPS, **cm.BITWISE,
    )


@pytest.mark.parametrize("dtype", tj.DTYPES)
@pytest.mark.parametrize("case", ["adam-defaults", "sgd-momentum-options"])
def test_init_state_like_optax(case, dtype):
  cm.assert_init_like_optax(ours, _CASES[case], dtype)


def test_state_takes_the_lowest_params_dtype():
  state = ours.mechanize(jn.sgd(0.1)).init({"a": jnp.ones(2, jnp.bfloat16), "b": jnp.ones(2)})
  assert {state.r.dtype, state.m.dtype, state.v.dtype, state.s.dtype} == {jnp.dtype(jnp.bfloat16)}
  assert state.count.dtype == jnp.int32 and state.s.shape == (6,)


# --- optax's _mechanic_test.py, on ours ---------------------------------------


class _InnerState(NamedTuple):
  aggregate_grads: dict


def _inner_sgd(step_size):
  """SGD with a non-trivial state, checking that it is given the params."""

  def init_fn(params):
    return _InnerState(jax.tree.map(jnp.zeros_like, params))

  def update_fn(updates, state, params):
    chex.assert_trees_all_equal_shapes(updates, params)
    return jax.tree.map(lambda u: step_size * u, updates), _InnerState(jn.apply_updates(state.aggregate_grads, updates))

  return jn.GradientTransformation(init_fn, update_fn)


def test_one_step_with_a_stateful_inner_optimizer():
  grads = {"x": np.array(2.0), "y": np.array(-2.0)}
  params = {"x": np.array(3.0), "y": np.array(-3.0)}
  n, eps, s_init = 6, 1e-10, 1e-8
  results = []
  for lib in (ours, optax.contrib):
    tx = lib.mechanize(_inner_sgd(-0.1), weight_decay=1e-2, eps=eps, s_init=s_init, num_betas=n)
    state = jax.jit(tx.init)(params)
    state = jn.tree.map_params(tx.init, lambda v: v, state)  # a no-op, through the tree map
    updates, state = jax.jit(tx.update)(grads, state, params)
    results.append((jn.apply_updates(params, updates), state))
  (new_params, state), ref = results
  tj.assert_states_close(results[0], ref, **cm.BITWISE)
  # At the first step x = x0, so Delta = 0 and h = 0: m = eps, v = 0 and
  # s = (s_init / n) m / eps = s_init / n.
  np.testing.assert_allclose(state.m, np.full(n, eps, np.float32), rtol=1e-6)
  np.testing.assert_array_equal(state.v, np.zeros(n, np.float32))
  np.testing.assert_allclose(state.s, np.full(n, s_init / n, np.float32), rtol=1e-6)
  # The step is sum(s) * 0.1 * g = 2e-9: the params barely move.
  chex.assert_trees_all_close(new_params, params, atol=1e-8)
  assert cm.finite(results)


# --- ours ---------------------------------------------------------------------


def test_x0_is_the_params_of_the_first_update():
  tx = ours.mechanize(jn.adam(0.1))
  loaded = {"w": jnp.array([1.0, -2.0])}
  state = tx.init({"w": jnp.zeros(2)})
  _, state = tx.update({"w": jnp.array([0.5, 0.5])}, state, loaded)
  chex.assert_trees_all_equal(state.x0, loaded)
  _, state = tx.update({"w": jnp.array([0.5, 0.5])}, state, {"w": jnp.array([7.0, 7.0])})
  chex.assert_trees_all_equal(state.x0, loaded)


def test_extra_arguments_reach_the_base_optimizer():
  seen = []

  def update_fn(updates, state, params=None, **extra):
    seen.append(sorted(extra))
    return jax.tree.map(lambda u: -extra["factor"] * u, updates), state

  base_tx = jn.GradientTransformationExtraArgs(jn.init_empty_state, update_fn)
  tx = ours.mechanize(base_tx)
  params = {"w": jnp.ones(2)}
  got, _ = tx.update({"w": jnp.ones(2)}, tx.init(params), params, factor=0.5)
  assert seen == [["factor"]]
  sgd = ours.mechanize(jn.sgd(0.5))  # the same step, with the factor built in
  want, _ = sgd.update({"w": jnp.ones(2)}, sgd.init(params), params)
  chex.assert_trees_all_equal(got, want)
  # A base without extra arguments drops them.
  plain = ours.mechanize(jn.sgd(0.1))
  plain.update({"w": jnp.ones(2)}, plain.init(params), params, factor=0.5)


def test_update_needs_params():
  cm.assert_update_needs_params(ours.mechanize(jn.sgd(0.1)))


NAN = float("nan")


@pytest.mark.parametrize("kwargs, error, name", [
    (dict(base_optimizer=3), TypeError, "base_optimizer"),
    (dict(weight_decay=-1.0), ValueError, "weight_decay"),
    (dict(eps=NAN), ValueError, "eps"),
    (dict(s_init=0.0), ValueError, "s_init"),
    (dict(num_betas=0), ValueError, "num_betas"),
    (dict(num_betas=2.0), TypeError, "num_betas"),
])
def test_bad_arguments_name_themselves(kwargs, error, name):
  cm.assert_raises_naming(ours.mechanize, {"base_optimizer": jn.sgd(0.1), **kwargs}, error, name)


def test_traced_hyperparameters_pass_the_checks():
  # num_betas sizes the state: static (optax's mechanize cannot take it traced either).
  hp = dict(weight_decay=0.02, eps=1e-7, s_init=1e-5)
  injected = optax.inject_hyperparams(ours.mechanize, static_args=("num_betas",))(jn.sgd(0.1), **hp)
  plain = ours.mechanize(jn.sgd(0.1), **hp)
  params = {"w": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array(0.3)}
  grads = {"w": jnp.array([0.2, -0.1, 0.4]), "b": jnp.array(-0.5)}
  got_state, want_state = injected.init(params), plain.init(params)
  for _ in range(2):  # the second step is the first with h != 0
    got, got_state = jax.jit(injected.update)(grads, got_state, params)
    want, want_state = jax.jit(plain.update)(grads, want_state, params)
    chex.assert_trees_all_close(got, want, rtol=1e-6)
    params = jn.apply_updates(params, want)
