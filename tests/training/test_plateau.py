"""Tests for jaxopt_notes.plateau.reduce_on_plateau against optax.contrib."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_notes import adam
from jaxopt_notes.core.combine import chain
from jaxopt_notes.training.plateau import ReduceLROnPlateauState, reduce_on_plateau


def _plateauing_losses(steps, seed=0):
  # Falls, then levels off at 0.2 with noise: plateaus that trigger reductions.
  t = np.arange(steps)
  noise = np.random.default_rng(seed).normal(size=steps)
  return (np.maximum(np.exp(-t / 40.0), 0.2) + 0.02 * noise).astype(np.float32)


CONFIGS = [
    dict(),
    dict(factor=0.5, patience=5),
    dict(factor=0.5, patience=3, cooldown=4),
    dict(factor=0.3, patience=2, accumulation_size=5, min_scale=0.01),
    dict(factor=0.5, patience=4, rtol=0.0, atol=1e-3),
    dict(factor=0.9, patience=1, rtol=0.05, cooldown=2, accumulation_size=3),
]


def _config_id(config):
  return ",".join(f"{k}={v}" for k, v in config.items()) or "defaults"


@pytest.mark.parametrize("config", CONFIGS, ids=_config_id)
def test_matches_optax_after_adam(config):
  steps = 400
  params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
  ours = chain(adam(1e-2), reduce_on_plateau(**config))
  theirs = optax.chain(optax.adam(1e-2), optax.contrib.reduce_on_plateau(**config))
  grads = jax.tree.map(
      lambda p: jax.random.normal(jax.random.key(1), (steps,) + p.shape), params
  )
  values = jnp.asarray(_plateauing_losses(steps))

  def run(tx):
    def body(state, xs):
      g, v = xs
      updates, state = tx.update(g, state, params, value=v)
      return state, (updates, state[1])
    return jax.lax.scan(body, tx.init(params), (grads, values))[1]

  (u1, s1), (u2, s2) = jax.jit(lambda: run(ours))(), jax.jit(lambda: run(theirs))()
  assert s1._fields == s2._fields
  chex.assert_trees_all_equal(tuple(s1), tuple(s2))
  chex.assert_trees_all_equal(u1, u2)
  # The run exercised reductions (the test could not pass vacuously).
  scale = np.asarray(s1.scale)
  assert scale[0] == 1.0 and scale[-1] < 1.0
  if config.get("cooldown"):
    assert np.asarray(s1.cooldown_count).max() > 0


@pytest.mark.parametrize("patience", [1, 3, 7])
def test_constant_loss_reduces_every_patience_steps(patience):
  # Independent count: the first value improves on +inf; after it every
  # `patience` equal values are a plateau, so after k values the scale is
  # factor ** floor((k - 1) / patience).
  factor, steps = 0.5, 30
  tx = reduce_on_plateau(factor=factor, patience=patience)
  params = jnp.zeros(4)
  state = tx.init(params)
  update = jax.jit(tx.update)
  for k in range(1, steps + 1):
    updates, state = update(jnp.ones(4), state, params, value=jnp.float32(3.0))
    expected = factor ** ((k - 1) // patience)
    np.testing.assert_allclose(float(state.scale), expected, rtol=1e-6)
    np.testing.assert_allclose(updates, np.full(4, expected), rtol=1e-6)


def test_min_scale_floors_the_scale():
  tx = reduce_on_plateau(factor=0.1, patience=1, min_scale=0.05)
  state, update = tx.init(jnp.zeros(2)), jax.jit(tx.update)
  for _ in range(6):
    _, state = update(jnp.ones(2), state, None, value=1.0)
  assert float(state.scale) == pytest.approx(0.05)


def test_improving_loss_keeps_scale():
  tx = reduce_on_plateau(factor=0.1, patience=1)
  state, update = tx.init(jnp.zeros(2)), jax.jit(tx.update)
  for k in range(20):
    _, state = update(jnp.ones(2), state, None, value=1.0 / (k + 1))
  assert float(state.scale) == 1.0 and int(state.plateau_count) == 0
  assert float(state.best_value) == pytest.approx(1.0 / 20)


def test_state_dtypes_follow_params_like_optax():
  params = {"a": jnp.zeros(2, jnp.bfloat16), "b": jnp.zeros(2, jnp.float32)}
  ours = reduce_on_plateau().init(params)
  theirs = optax.contrib.reduce_on_plateau().init(params)
  assert isinstance(ours, ReduceLROnPlateauState)
  for f in ours._fields:
    assert getattr(ours, f).dtype == getattr(theirs, f).dtype, f
  assert ours.scale.dtype == jnp.bfloat16 and ours.best_value.dtype == jnp.float32
  updates, _ = reduce_on_plateau().update(params, ours, params, value=1.0)
  assert updates["a"].dtype == jnp.bfloat16


def test_needs_value():
  tx = reduce_on_plateau()
  with pytest.raises(ValueError, match="value=loss"):
    tx.update(jnp.ones(2), tx.init(jnp.zeros(2)), None)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(factor=1.0), "factor"),
        (dict(factor=0.0), "factor"),
        (dict(rtol=-1.0), "rtol"),
        (dict(rtol=1.5), "rtol"),
        (dict(rtol=0.0, atol=0.0), "atol"),
        (dict(patience=0), "patience"),
        (dict(accumulation_size=0), "accumulation_size"),
        (dict(cooldown=-1), "cooldown"),
        (dict(cooldown=1.5), "cooldown"),
        (dict(min_scale=-0.1), "min_scale"),
    ],
)
def test_bad_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    reduce_on_plateau(**kwargs)
