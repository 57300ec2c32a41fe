"""noisy_sgd: 100-step trajectories equal to optax's, random numbers included
(jit and op by op, float32 and float64, float and schedule learning rates,
each option that changes the math), optax's key handling, bad arguments
naming themselves, and descent on a convex quadratic."""

import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj

# A float learning rate in both dtypes, each schedule in one of them.
_LR_AND_DTYPE = [
    ("float", "float32"), ("float", "float64"),
    ("lambda", "float32"), ("optax_schedule", "float64"),
]


def _compare(variant, make_ours, make_ref, dtype):
  """compare_with_optax, the states' typed keys compared through their key data."""
  unwrap = lambda run: run._replace(state=optax.tree.unwrap_random_key_data(run.state))
  with tj.precision(dtype):
    params = tj.make_params(0, dtype)
    ours, ref = tj.run_trajectories(variant, [make_ours(), make_ref()], params,
                                    problem=tj.make_problem(params, 1))
    tj.assert_trajectories_close(unwrap(ours), unwrap(ref), dtype, initial_params=params)
  return ours, ref


class TestNoisySgd(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("lr_kind,dtype", _LR_AND_DTYPE)
  def test_matches_optax(self, lr_kind, dtype):
    """Default eta and gamma, an int key: params, updates, count and key every step."""
    lr = tj.learning_rate(lr_kind, 0.05)
    ours, _ = _compare(
        self.variant, lambda: jn.noisy_sgd(lr, key=0), lambda: optax.noisy_sgd(lr, key=0), dtype
    )
    noise_state, lr_state = ours.state
    assert int(noise_state.count) == tj.STEPS
    if lr_kind != "float":
      assert int(lr_state.count) == tj.STEPS

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_eta_gamma_and_typed_key_match_optax(self, dtype):
    make = lambda lib: lib.noisy_sgd(0.05, eta=0.1, gamma=1.0, key=jax.random.key(11))
    ours, _ = _compare(self.variant, lambda: make(jn), lambda: make(optax), dtype)
    # The noise is there: every step's update is off plain SGD's -0.05 g.
    for u, g in zip(jax.tree.leaves(ours.updates), jax.tree.leaves(ours.grads)):
      assert np.all(np.abs(u + 0.05 * g) > 0)


def test_key_handling_is_optax_s():
  """seed= is a deprecated key=; no key warns and is seed 0; both raise."""
  params = {"w": jnp.ones(4)}

  def first_update(tx):
    return tx.update(params, tx.init(params), params)[0]

  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for kwargs in ({"seed": 3}, {}, {"key": jax.random.key(5)}):
      chex.assert_trees_all_equal(first_update(jn.noisy_sgd(0.1, **kwargs)),
                                  first_update(optax.noisy_sgd(0.1, **kwargs)))
  with pytest.warns(DeprecationWarning, match="`seed`"):
    by_seed = first_update(jn.noisy_sgd(0.1, seed=3))
  chex.assert_trees_all_equal(by_seed, first_update(jn.noisy_sgd(0.1, key=3)))
  with pytest.warns(UserWarning, match="`key`"):
    jn.noisy_sgd(0.1)
  with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="`key`"):
    jn.noisy_sgd(0.1, key=1, seed=1)


def test_descends_a_convex_quadratic():
  """f(w) = sum h (w - c)^2 / 2: with annealed noise the loss still falls 100-fold."""
  h = jnp.array([0.5, 1.0, 2.0])
  c = jnp.array([1.0, -2.0, 3.0])
  f = lambda w: 0.5 * jnp.sum(h * (w - c) ** 2)
  tx = jn.noisy_sgd(0.1, eta=0.01, key=0)
  params = jnp.zeros(3)
  state = tx.init(params)
  step = jax.jit(lambda p, s: tx.update(jax.grad(f)(p), s, p))
  start = float(f(params))
  for _ in range(200):
    updates, state = step(params, state)
    params = jn.apply_updates(params, updates)
  assert float(f(params)) < start / 100


NAN = float("nan")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("arg, value, error", [
    ("learning_rate", NAN, ValueError), ("learning_rate", None, TypeError),
    ("learning_rate", "0.1", TypeError),
    ("eta", -0.01, ValueError), ("eta", NAN, ValueError), ("eta", "0.01", TypeError),
    ("gamma", -0.5, ValueError), ("gamma", float("inf"), ValueError),
    ("key", 1.5, TypeError), ("key", -3, ValueError), ("key", jax.random.PRNGKey(0), TypeError),
    ("seed", "3", TypeError),
])
def test_bad_argument_raises_naming_it(arg, value, error):
  kwargs = {"learning_rate": 0.1, "key": 0}
  if arg == "seed":
    del kwargs["key"]
  with pytest.raises(error, match=f"`{arg}`"):
    jn.noisy_sgd(**{**kwargs, arg: value})


def test_checkpoint_round_trip_keeps_the_key_and_the_noise(tmp_path):
  """The typed key in the state survives save/restore: the resumed step draws the same noise."""
  pytest.importorskip("orbax.checkpoint")
  from jaxopt_notes.training import checkpoint as ckpt

  make = lambda: jn.noisy_sgd(0.1, key=jax.random.key(4, impl="rbg"))
  tx = make()
  params = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
  state = tx.init(params)
  for _ in range(2):
    updates, state = tx.update(params, state, params)
    params = jn.apply_updates(params, updates)
  ckpt.save_checkpoint(tmp_path, 2, params, state)
  r_params, r_state, step = ckpt.restore_checkpoint(tmp_path, jax.tree.map(jnp.zeros_like, params), make())
  assert step == 2 and str(jax.random.key_impl(r_state[0].rng_key)) == str(jax.random.key_impl(state[0].rng_key))
  np.testing.assert_array_equal(jax.random.key_data(r_state[0].rng_key), jax.random.key_data(state[0].rng_key))
  chex.assert_trees_all_equal(tx.update(params, state, params)[0], tx.update(r_params, r_state, r_params)[0])
