"""apply_every: 100-step trajectories equal to optax's, the sum of k updates
every k-th step, recovery after a NaN (where optax's accumulator stays NaN),
and bad arguments named."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj


class TestTrajectories(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("k", [1, 3])
  def test_adam_then_apply_every_matches_optax(self, k, dtype):
    """chain(adam, apply_every(k)): params every step, updates and ApplyEvery state."""
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: jn.chain(jn.adam(0.05), jn.apply_every(k)),
        lambda: optax.chain(optax.adam(0.05), optax.apply_every(k)),
        dtype,
    )
    assert int(ours.state[1].count) == tj.STEPS % k

  @chex.variants(with_jit=True, without_jit=True)
  def test_sgd_sum_of_k_steps(self, dtype="float32"):
    """Every k-th update is the sum of the last k scaled gradients, the others zero."""
    k = 4
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: jn.chain(jn.scale(-0.1), jn.apply_every(k)),
        lambda: optax.chain(optax.scale(-0.1), optax.apply_every(k)),
        dtype,
    )
    for g, u in zip(jax.tree.leaves(ours.grads), jax.tree.leaves(ours.updates)):
      steps = np.arange(tj.STEPS)
      emitting = steps % k == k - 1
      assert np.all(u[~emitting] == 0)
      window_sums = -0.1 * g.reshape((tj.STEPS // k, k) + g.shape[1:]).sum(axis=1)
      np.testing.assert_allclose(u[emitting], window_sums, rtol=1e-5, atol=1e-7)


def test_nan_spoils_only_its_window():
  """A NaN update poisons its own window only; optax's 0 * NaN keeps its accumulator NaN."""
  k = 2
  grads = [1.0, np.nan, 1.0, 2.0, 3.0, 4.0]
  ours, theirs = jn.apply_every(k), optax.apply_every(k)
  params = jnp.zeros(1)
  s, r = ours.init(params), theirs.init(params)
  out, ref = [], []
  for g in grads:
    u, s = ours.update(jnp.array([g]), s)
    v, r = theirs.update(jnp.array([g]), r)
    out.append(float(u[0]))
    ref.append(float(v[0]))
  np.testing.assert_array_equal(out[:2], [0.0, np.nan])
  np.testing.assert_array_equal(out[2:], [0.0, 3.0, 0.0, 7.0])  # the next windows are clean
  assert np.all(np.isnan(ref[1:]))  # optax: NaN for good


def test_k_may_be_traced():
  """k injected by inject_hyperparams (a traced int) gives optax's numbers."""
  ours = jn.inject_hyperparams(jn.apply_every)(k=3)
  theirs = optax.inject_hyperparams(optax.apply_every)(k=3)
  params = {"w": jnp.zeros(2)}
  s, r = ours.init(params), theirs.init(params)
  step = jax.jit(ours.update)
  for t in range(7):
    g = {"w": jnp.array([t, -2.0 * t])}
    u, s = step(g, s)
    v, r = theirs.update(g, r)
    chex.assert_trees_all_close(u, v)
  tj.assert_states_close(s.inner_state, r.inner_state)


@pytest.mark.parametrize(
    "k, error",
    [(0, ValueError), (-1, ValueError), (2.5, ValueError), ("2", TypeError), (True, TypeError),
     (float("nan"), ValueError)],
)
def test_bad_k_is_named(k, error):
  with pytest.raises(error, match="`k`"):
    jn.apply_every(k)


def test_state_layout():
  assert jn.ApplyEvery._fields == optax.ApplyEvery._fields
  state = jn.apply_every(2).init({"w": jnp.ones(3)})
  assert state.count.dtype == jnp.int32 and state.grad_acc["w"].shape == (3,)
