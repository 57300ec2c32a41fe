"""dpsgd and differentially_private_aggregate: 50-step trajectories on
per-example gradients (a batch of 4, some clipped) bitwise equal to
optax.contrib's, noise included (jit and op by op, float32 and float64;
momentum, Nesterov, schedules, no clipping, no noise, every key form), init
states alike, optax's own checks (clipping, noise std, no-privacy limit),
batch axis required, bad arguments naming themselves."""

import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_notes.contrib import _privacy as ours
from tests import _trajectory as tj
from tests.contrib import _common as cm

BATCH = 4
# Example b's gradient is SCALES[b] times the loss gradient plus a fixed
# offset: with clip 1.0 the large ones are clipped, the small ones are not.
SCALES = (0.0, 0.3, 2.0, 6.0)


def _per_example(dtype):
  params = tj.make_params(0, dtype)
  problem = tj.make_problem(params, 1, cm.STEPS)
  rng = np.random.default_rng(7)
  offsets = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=(BATCH,) + p.shape) * 0.1, p.dtype), params)
  scales = jnp.asarray(SCALES, dtype)

  def grads_fn(t, p):
    g = tj.loss_grad(problem, p, np.int32(t))
    # Example 0 (scale 0) is all zeros: the clipping's 0/0 guard.
    return jax.tree.map(lambda gl, o: scales.reshape((BATCH,) + (1,) * gl.ndim) * (gl[None] + o), g, offsets)

  return grads_fn


def _dpsgd(**kw):
  def case(lib):
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", DeprecationWarning)  # optax's dpsgd passes the deprecated seed=
      return lib.dpsgd(**{"learning_rate": 0.05, "l2_norm_clip": 1.0, "noise_multiplier": 0.5, "seed": 3, **kw})
  return case


def _aggregate(**kw):
  def case(lib):
    agg = lib.differentially_private_aggregate(**{"l2_norm_clip": 1.0, "noise_multiplier": 0.3, **kw})
    return optax.chain(agg, optax.scale(-0.05))
  return case


_CASES = {
    "dpsgd-plain": _dpsgd(),
    "dpsgd-momentum-lambda-lr": _dpsgd(learning_rate=tj.learning_rate("lambda", 0.05), momentum=0.9),
    "dpsgd-nesterov-optax-schedule": _dpsgd(
        learning_rate=tj.learning_rate("optax_schedule", 0.05), momentum=0.8, nesterov=True),
    # A huge bound, not inf: inf * 0 noise is NaN noise (in optax too).
    "dpsgd-no-clip-no-noise": _dpsgd(learning_rate=0.01, l2_norm_clip=1e30, noise_multiplier=0.0),
    "dpsgd-all-positional": lambda lib: _quiet(lambda: lib.dpsgd(0.03, 2.0, 1.1, 11, 0.7, True)),
    "aggregate-int-key": _aggregate(key=5),
    "aggregate-typed-key": _aggregate(key=jax.random.key(9)),
}


def _quiet(f):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    return f()


def _key_data(tree):
  """PRNG keys as their raw words, so the state compares as arrays."""
  is_key = lambda x: isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)
  return jax.tree.map(lambda x: jax.random.key_data(x) if is_key(x) else x, tree)


class TestMatchesOptax(tj.VariantsTest):

  @chex.variants(with_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("case", sorted(_CASES))
  def test_trajectory(self, case, dtype):
    """Params every step, updates and the final state (the PRNG key) bitwise."""
    self._check(case, dtype)

  @chex.variants(without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("case", ["dpsgd-nesterov-optax-schedule", "aggregate-int-key"])
  def test_trajectory_op_by_op(self, case, dtype):
    """Op by op two cases suffice (eager runs are slow)."""
    self._check(case, dtype)

  def _check(self, case, dtype):
    with tj.precision(dtype):
      grads_fn = _per_example(dtype)
      params = tj.make_params(0, dtype)
      run, ref = tj.run_trajectories(
          self.variant, [_CASES[case](ours), _CASES[case](optax.contrib)], params, cm.STEPS, grads_fn=grads_fn)
      assert isinstance(run.state[0], ours.DifferentiallyPrivateAggregateState)
      run, ref = (r._replace(state=_key_data(r.state)) for r in (run, ref))
      tj.assert_trajectories_close(run, ref, dtype, initial_params=params, **cm.BITWISE)


@pytest.mark.parametrize("dtype", tj.DTYPES)
@pytest.mark.parametrize("case", ["dpsgd-plain", "dpsgd-nesterov-optax-schedule", "aggregate-typed-key"])
def test_init_state_like_optax(case, dtype):
  with tj.precision(dtype):
    params = tj.make_params(0, dtype)
    got, want = _CASES[case](ours).init(params), _CASES[case](optax.contrib).init(params)
  assert type(got[0]).__name__ == type(want[0]).__name__ == "DifferentiallyPrivateAggregateState"
  assert got[0]._fields == want[0]._fields
  tj.assert_states_close(_key_data(got), _key_data(want), **cm.BITWISE)


# optax's own tests, on its tree: example i's gradient is full of i's.
_PARAMS = {"key_a": (jnp.zeros((2, 3, 4)), jnp.zeros([])), "key_b": jnp.zeros((6, 7))}
_PER_EG = jax.tree.map(lambda p: jnp.moveaxis(jnp.arange(8) * jnp.ones(p.shape + (8,)), -1, 0), _PARAMS)


def test_no_privacy_is_the_mean():
  tx = ours.differentially_private_aggregate(jnp.finfo(jnp.float32).max, 0.0, key=0)
  state = tx.init(_PARAMS)
  for _ in range(3):
    updates, state = jax.jit(tx.update)(_PER_EG, state)
    chex.assert_trees_all_close(updates, jax.tree.map(lambda g: g.mean(0), _PER_EG))


@pytest.mark.parametrize("clip", [0.5, 10.0, 80.0])
def test_clipping_norm(clip):
  tx = ours.differentially_private_aggregate(clip, 0.0, key=42)
  norms = jnp.linalg.norm(jnp.stack(
      [jnp.linalg.norm(g.reshape(8, -1), axis=1) for g in jax.tree.leaves(_PER_EG)]), axis=0)
  expected = jnp.mean(jnp.arange(8) / jnp.maximum(norms / clip, 1.0))
  updates, _ = jax.jit(tx.update)(_PER_EG, tx.init(_PARAMS), _PARAMS)
  chex.assert_trees_all_close(updates, jax.tree.map(lambda p: jnp.broadcast_to(expected, p.shape), _PARAMS),
                              rtol=2e-7)


@pytest.mark.parametrize("clip, mult", [(3.0, 2.0), (1.0, 90.0)])
def test_noise_std(clip, mult):
  tx = ours.differentially_private_aggregate(clip, mult, key=1337)
  state = tx.init([jnp.zeros((100, 100))])
  for _ in range(2):
    updates, state = jax.jit(tx.update)([jnp.ones((1, 100, 100))], state)
    assert abs(float(jnp.std(updates[0])) - clip * mult) < 0.1 * clip * mult


def test_raw_prng_key_gives_the_typed_keys_stream():
  raw = ours.differentially_private_aggregate(1.0, 1.0, key=jax.random.PRNGKey(4))
  typed = optax.contrib.differentially_private_aggregate(1.0, 1.0, key=jax.random.key(4))
  grads = {"w": jnp.ones((2, 3))}
  got, _ = raw.update(grads, raw.init({"w": jnp.zeros(3)}))
  want, _ = typed.update(grads, typed.init({"w": jnp.zeros(3)}))
  chex.assert_trees_all_equal(got, want)


def test_key_none_and_seed_warn_like_optax():
  with pytest.warns(UserWarning, match="key"):
    tx = ours.differentially_private_aggregate(1.0, 1.0)
  np.testing.assert_array_equal(jax.random.key_data(tx.init(None).rng_key), jax.random.key_data(jax.random.key(0)))
  with pytest.warns(DeprecationWarning, match="seed"):
    tx = ours.differentially_private_aggregate(1.0, 1.0, seed=3)
  np.testing.assert_array_equal(jax.random.key_data(tx.init(None).rng_key), jax.random.key_data(jax.random.key(3)))
  with pytest.raises(ValueError, match="`seed`"), warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    ours.differentially_private_aggregate(1.0, 1.0, key=1, seed=3)


def test_dpsgd_does_not_warn():
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    ours.dpsgd(0.1, 1.0, 1.0, seed=0)


@pytest.mark.parametrize("tx", [ours.differentially_private_aggregate(0.1, 1.1, key=0), ours.dpsgd(0.1, 0.1, 1.1, 0)])
def test_aggregated_updates_as_input_fail(tx):
  """Without a common leading batch axis the update refuses (as optax)."""
  mean_grads = jax.tree.map(lambda g: g.mean(0), _PER_EG)
  with pytest.raises(ValueError, match="batch"):
    tx.update(mean_grads, tx.init(_PARAMS), _PARAMS)


NAN = float("nan")


@pytest.mark.parametrize("factory, kwargs, error, name", [
    (ours.dpsgd, dict(learning_rate=NAN, l2_norm_clip=1.0, noise_multiplier=1.0, seed=0), ValueError, "learning_rate"),
    (ours.dpsgd, dict(learning_rate=None, l2_norm_clip=1.0, noise_multiplier=1.0, seed=0), TypeError, "learning_rate"),
    (ours.dpsgd, dict(learning_rate=0.1, l2_norm_clip=-1.0, noise_multiplier=1.0, seed=0), ValueError, "l2_norm_clip"),
    (ours.dpsgd, dict(learning_rate=0.1, l2_norm_clip=NAN, noise_multiplier=1.0, seed=0), ValueError, "l2_norm_clip"),
    (ours.dpsgd, dict(learning_rate=0.1, l2_norm_clip=1.0, noise_multiplier=-1.0, seed=0), ValueError,
     "noise_multiplier"),
    (ours.dpsgd, dict(learning_rate=0.1, l2_norm_clip=1.0, noise_multiplier=1.0, seed=0.5), TypeError, "seed"),
    (ours.dpsgd, dict(learning_rate=0.1, l2_norm_clip=1.0, noise_multiplier=1.0, seed=0, momentum=1.5), ValueError,
     "momentum"),
    (ours.dpsgd, dict(learning_rate=0.1, l2_norm_clip=1.0, noise_multiplier=1.0, seed=0, momentum=0.9, nesterov=1),
     TypeError, "nesterov"),
    (ours.differentially_private_aggregate, dict(l2_norm_clip="a", noise_multiplier=1.0, key=0), TypeError,
     "l2_norm_clip"),
    (ours.differentially_private_aggregate, dict(l2_norm_clip=1.0, noise_multiplier=1.0, key="k"), TypeError, "key"),
])
def test_bad_arguments_name_themselves(factory, kwargs, error, name):
  cm.assert_raises_naming(factory, kwargs, error, name)
