"""lookahead around sgd and adam: 100-step trajectories (fast and slow
weights) equal to optax's; LookaheadParams.init_synced."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj

_FAST = {
    "sgd": lambda lib: lib.sgd(0.05, momentum=0.9),
    "adam": lambda lib: lib.adam(0.05),
}

_WRAP = (jn.LookaheadParams.init_synced, optax.LookaheadParams.init_synced)


def _fast(p):
  return p.fast


class TestLookahead(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize(
      "reset_state,dtype", [(False, "float32"), (True, "float32"), (True, "float64")]
  )
  @pytest.mark.parametrize("sync_period,slow_step_size", [(1, 0.5), (5, 0.5), (5, 1.0)])
  @pytest.mark.parametrize("fast", sorted(_FAST))
  def test_matches_optax(self, fast, sync_period, slow_step_size, reset_state, dtype):
    """Fast and slow weights, fast state and sync counter follow optax's.

    Gradients are taken at the fast weights; ours runs inside our
    LookaheadParams, optax's inside its own.
    """
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: jn.lookahead(_FAST[fast](jn), sync_period, slow_step_size, reset_state),
        lambda: optax.lookahead(_FAST[fast](optax), sync_period, slow_step_size, reset_state),
        dtype, wrap_params=_WRAP, grad_params=_fast,
    )
    assert isinstance(ours.params, jn.LookaheadParams)
    assert int(ours.state.steps_since_sync) == tj.STEPS % sync_period
    # 100 is a multiple of the period, so the last step synced: fast was
    # reset onto slow. One step earlier, with a period > 1, fast ran ahead.
    chex.assert_trees_all_close(ours.params.fast, ours.params.slow, **tj.tolerance(dtype))
    before = jax.tree.map(lambda h: h[-2], ours.history)
    lagging = [
        not np.allclose(f, s)
        for f, s in zip(jax.tree.leaves(before.fast), jax.tree.leaves(before.slow))
    ]
    assert any(lagging) == (sync_period > 1)

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_period_not_dividing_steps(self, dtype):
    """sync_period 7 (100 = 14 * 7 + 2): ends mid-period, fast ahead of slow."""
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: jn.lookahead(_FAST["adam"](jn), 7, 0.3),
        lambda: optax.lookahead(_FAST["adam"](optax), 7, 0.3),
        dtype, wrap_params=_WRAP, grad_params=_fast,
    )
    assert int(ours.state.steps_since_sync) == 2
    fast, slow = jax.tree.leaves(ours.params.fast), jax.tree.leaves(ours.params.slow)
    assert not np.allclose(fast[0], slow[0])


class TestLookaheadParams:

  @pytest.mark.parametrize("lib", [jn, optax], ids=["ours", "optax"])
  def test_init_synced(self, lib):
    """init_synced puts equal params in fast and slow, fields in optax's order."""
    params = tj.make_params(0)
    ours = jn.LookaheadParams.init_synced(params)
    ref = lib.LookaheadParams.init_synced(params)
    assert ours._fields == optax.LookaheadParams._fields == ("fast", "slow")
    assert ours.fast is params
    # Deliberately not optax's shared buffers: see test_donated_step_after_init_synced.
    assert not any(s is f for s, f in zip(jax.tree.leaves(ours.slow), jax.tree.leaves(params)))
    tj.assert_states_close(ours, ref)

  def test_donated_step_after_init_synced(self):
    """A jitted step donating LookaheadParams from init_synced runs (no buffer donated twice)."""
    params = {"w": jnp.arange(4.0), "b": jnp.ones(())}
    tx = jn.lookahead(jn.sgd(0.1), sync_period=2, slow_step_size=0.5)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(lp, state):
      updates, state = tx.update(jax.tree.map(jnp.ones_like, lp.fast), state, lp)
      return jn.apply_updates(lp, updates), state

    # fast is the very buffers passed in, so give it its own copy to donate.
    lp = jn.LookaheadParams.init_synced(jax.tree.map(jnp.copy, params))
    state = tx.init(lp)
    for _ in range(4):
      lp, state = step(lp, state)
    # Reference: optax's lookahead, stepped without donation.
    ref_tx = optax.lookahead(optax.sgd(0.1), sync_period=2, slow_step_size=0.5)
    ref = optax.LookaheadParams.init_synced(params)
    ref_state = ref_tx.init(ref)
    for _ in range(4):
      updates, ref_state = ref_tx.update(jax.tree.map(jnp.ones_like, ref.fast), ref_state, ref)
      ref = optax.apply_updates(ref, updates)
    chex.assert_trees_all_close(tuple(lp), tuple(ref), rtol=1e-6)

  def test_state_fields_match_optax(self):
    """LookaheadState has optax's fields, in order."""
    assert jn.LookaheadState._fields == optax.LookaheadState._fields


class TestLookaheadNaNGuard:
  """A NaN gradient between syncs leaves the slow weights untouched (deliberate difference)."""

  @pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
  def test_nan_gradient_off_sync_does_not_reach_slow_weights(self, jit):
    params = jn.LookaheadParams.init_synced({"w": jnp.array([1.0, -2.0, 3.0])})
    tx = jn.lookahead(jn.sgd(0.1), 3, 0.5)
    ref = optax.lookahead(optax.sgd(0.1), 3, 0.5)
    update = jax.jit(tx.update) if jit else tx.update
    state = tx.init(params)
    ref_params = optax.LookaheadParams(fast=params.fast, slow=params.slow)
    ref_state = ref.init(ref_params)
    good = {"w": jnp.array([0.5, 0.5, -1.0])}
    # One clean step: optax's numbers, slow not moved.
    u, state = update(good, state, params)
    params = jn.apply_updates(params, u)
    ru, ref_state = ref.update(good, ref_state, ref_params)
    ref_params = optax.apply_updates(ref_params, ru)
    chex.assert_trees_all_close(params.fast, ref_params.fast, rtol=1e-6)
    chex.assert_trees_all_close(params.slow, ref_params.slow, rtol=1e-6)
    slow_before = params.slow
    # A NaN gradient on the second (non-sync) step.
    bad = {"w": jnp.array([jnp.nan, 0.5, -1.0])}
    u, state = update(bad, state, params)
    params = jn.apply_updates(params, u)
    ru, _ = ref.update(bad, ref_state, ref_params)
    # optax's slow weights turn NaN at once; ours stay exactly as they were.
    assert bool(jnp.isnan(optax.apply_updates(ref_params, ru).slow["w"][0]))
    chex.assert_trees_all_equal(params.slow, slow_before)
    assert int(state.steps_since_sync) == 2
