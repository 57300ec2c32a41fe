"""snapshot, monitor and measure_with_ema: 100-step trajectories equal to optax's
(measurements included), the values are what they claim, the state keeps one
structure (optax's monitor does not: it cannot be a scan carry), bad arguments
named."""

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj


def _norm(lib):
  return jn.global_norm if lib is jn else optax.tree.norm


def _with_monitor(lib, debias):
  return lib.chain(
      lib.sgd(0.05, 0.9),
      lib.monitor({
          "norm": _norm(lib),
          "norm_ema": lib.measure_with_ema(_norm(lib), 0.9, debias),
          "clipped_ema": lib.measure_with_ema(lambda u: _norm(lib)(u) > 0.05, 0.8),
      }),
      lib.clip_by_global_norm(0.05),
  )


def _with_snapshot(lib):
  return lib.chain(
      lib.adam(0.05),
      lib.snapshot("before_clip", lambda u: jax.tree.map(jnp.abs, u)),
      lib.clip(0.02),
  )


class TestTrajectories(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("debias", [True, False])
  def test_monitor_matches_optax(self, debias, dtype):
    """Params every step, updates, and the measurements and EMA states at the end."""
    ours, _ = tj.compare_with_optax(
        self.variant, lambda: _with_monitor(jn, debias), lambda: _with_monitor(optax, debias), dtype
    )
    measured = ours.state[1].measurements
    # The recorded norm is that of the step before clipping: momentum of the gradients.
    assert float(measured["norm"]) > 0.05
    assert float(optax.tree.get(ours.state, "norm")) == float(measured["norm"])
    assert 0.0 < float(measured["clipped_ema"]) <= 1.0 + 1e-6

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_snapshot_matches_optax(self, dtype):
    ours, _ = tj.compare_with_optax(
        self.variant, lambda: _with_snapshot(jn), lambda: _with_snapshot(optax), dtype
    )
    before = ours.state[1].measurement["before_clip"]
    assert max(float(np.max(np.asarray(x))) for x in jax.tree.leaves(before)) > 0.02  # clipping was active


def test_measurements_are_what_they_claim():
  """norm = ||u_before||; the EMA follows v = b v + (1-b) m, debiased by 1 - b^t."""
  params = tj.make_params(0)
  before = jn.sgd(0.05, 0.9)
  tx = _with_monitor(jn, True)
  s_before, s = before.init(params), tx.init(params)
  v, decay = 0.0, 0.9
  for t in range(1, 6):
    g = jax.tree.map(lambda p: jnp.sin(t * p), params)
    u_before, s_before = before.update(g, s_before, params)
    u, s = tx.update(g, s, params)
    norm = float(jn.global_norm(u_before))
    np.testing.assert_allclose(float(s[1].measurements["norm"]), norm, rtol=1e-6)
    v = decay * v + (1 - decay) * norm
    np.testing.assert_allclose(float(s[1].measurements["norm_ema"]), v / (1 - decay**t), rtol=1e-5)
    params = jn.apply_updates(params, u)


def test_monitor_state_keeps_its_structure():
  """init stores zeros of each measurement's shape, so the state can be a scan carry.

  optax's init stores an empty dict, which lax.scan refuses (the carry changes structure).
  """
  params = {"w": jnp.ones(3), "b": jnp.zeros(2)}
  measures = lambda lib: {"norm": _norm(lib), "abs": lambda u: jax.tree.map(jnp.abs, u),
                          "ema": lib.measure_with_ema(_norm(lib), 0.5)}
  ours = jn.chain(jn.monitor(measures(jn)), jn.scale(-0.1))
  theirs = optax.chain(optax.monitor(measures(optax)), optax.scale(-0.1))

  def run(tx):
    def step(carry, _):
      p, s = carry
      u, s = tx.update(p, s, p)
      return (optax.apply_updates(p, u), s), None
    return jax.lax.scan(step, (params, tx.init(params)), None, length=5)[0]

  init = ours.init(params)[0].measurements
  assert float(init["norm"]) == 0.0 and init["abs"]["w"].shape == (3,) and float(init["ema"]) == 0.0
  p, s = run(ours)
  with pytest.raises(TypeError, match="structure"):
    run(theirs)
  # The same five steps taken one by one in optax.
  q, r = params, theirs.init(params)
  for _ in range(5):
    u, r = theirs.update(q, r, q)
    q = optax.apply_updates(q, u)
  chex.assert_trees_all_close(p, q, rtol=1e-6)
  tj.assert_states_close(s, r)


def test_measure_needing_extra_args_waits_for_the_first_update():
  """A measure that needs update's keyword arguments has no entry until the first update."""

  def update(updates, state, params=None, *, value):
    return value * jn.global_norm(updates), state

  needs_value = jn.GradientTransformationExtraArgs(lambda p: jn.EmptyState(), update)
  tx = jn.monitor({"scaled": needs_value, "norm": jn.global_norm})
  params = {"w": jnp.array([3.0, 4.0])}
  state = tx.init(params)
  assert set(state.measurements) == {"norm"}
  _, state = tx.update(params, state, params, value=2.0)
  assert float(state.measurements["scaled"]) == 10.0


def test_bool_measurement_ema_matches_optax():
  """A clip indicator's EMA: optax starts it as bools, ours as floats; the numbers agree."""
  params = {"w": jnp.ones(3)}
  ours = jn.measure_with_ema(lambda u: jn.global_norm(u) > 1.0, 0.9)
  theirs = optax.measure_with_ema(lambda u: optax.tree.norm(u) > 1.0, 0.9)
  s, r = ours.init(params), theirs.init(params)
  assert s[1].ema.dtype == jnp.float32 and r[1].ema.dtype == jnp.bool_
  for scale in (2.0, 0.1, 3.0, 0.1):
    g = {"w": scale * jnp.ones(3)}
    u, s = ours.update(g, s, params)
    v, r = theirs.update(g, r, params)
    np.testing.assert_allclose(u, v, rtol=1e-6)
  tj.assert_states_close(s, r)


@pytest.mark.parametrize(
    "build, error, name",
    [
        (lambda: jn.snapshot("x", 3), TypeError, "measure"),
        (lambda: jn.monitor([jn.global_norm]), TypeError, "measures"),
        (lambda: jn.monitor({"a": "norm"}), TypeError, "measures['a']"),
        (lambda: jn.measure_with_ema("norm", 0.9), TypeError, "measure"),
        (lambda: jn.measure_with_ema(jn.global_norm, 1.0), ValueError, "decay"),
        (lambda: jn.measure_with_ema(jn.global_norm, 0.9, "yes"), TypeError, "debias"),
        (lambda: jn.measure_with_ema(jn.global_norm, 0.9, True, "nodtype"), TypeError, "accumulator_dtype"),
    ],
)
def test_bad_arguments_are_named(build, error, name):
  with pytest.raises(error, match=re.escape(f"`{name}`")):
    build()


def test_state_layouts_match_optax():
  params = {"w": jnp.ones(2)}
  assert jn.MonitorState._fields == optax.MonitorState._fields
  assert jn.SnapshotState._fields == optax.SnapshotState._fields
  tj.assert_states_close(jn.snapshot("n", jn.global_norm).init(params),
                         optax.snapshot("n", optax.tree.norm).init(params))
  tj.assert_states_close(jn.measure_with_ema(jn.global_norm, 0.9).init(params),
                         optax.measure_with_ema(optax.tree.norm, 0.9).init(params))
