"""clip and clip_by_global_norm: 100-step trajectories equal to optax's,
above and below the threshold and on zero gradients."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj


def _then_sgd(lib, inner, lr=0.1):
  """``inner`` followed by a descent step of size ``lr``."""
  return lib.chain(inner, lib.scale(-lr))


def _global_norms(stacked):
  """Per-step global norm of a stacked pytree."""
  return np.sqrt(sum(
      np.sum(np.asarray(x, np.float64) ** 2, axis=tuple(range(1, np.ndim(x))))
      for x in jax.tree.leaves(stacked)
  ))


def _zeros(t, params):
  return jax.tree.map(jnp.zeros_like, params)


class TestClip(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("max_delta", [0.3, 100.0])
  def test_matches_optax(self, max_delta, dtype):
    """Element-wise clipping, active (0.3) and never active (100)."""
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.clip(max_delta)),
        lambda: _then_sgd(optax, optax.clip(max_delta)),
        dtype,
    )
    biggest = max(np.max(np.abs(g)) for g in jax.tree.leaves(ours.grads))
    assert (biggest > max_delta) == (max_delta < 1)  # the case is exercised
    for u in jax.tree.leaves(ours.updates):
      assert np.all(np.abs(u) <= 0.1 * max_delta * (1 + 1e-6))

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_zero_gradient(self, dtype):
    """Zero gradients stay zero (no NaN), as in optax."""
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.clip(0.3)),
        lambda: _then_sgd(optax, optax.clip(0.3)),
        dtype, steps=3, grads_fn=_zeros, expect_moved=False,
    )
    for u in jax.tree.leaves(ours.updates):
      np.testing.assert_array_equal(u, 0)


class TestClipByGlobalNorm(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("regime", ["always_clipped", "mixed", "never_clipped"])
  def test_matches_optax(self, regime, dtype):
    """Rescaling by the joint norm above the threshold, identity below it.

    Along these trajectories the gradient norm starts at 3-7 and settles
    around 0.2-0.8, so max_norm = 1 gives both branches in one run (checked
    below), 0.05 clips every step and 1e3 none.
    """
    max_norm = {"always_clipped": 0.05, "mixed": 1.0, "never_clipped": 1e3}[regime]
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.clip_by_global_norm(max_norm)),
        lambda: _then_sgd(optax, optax.clip_by_global_norm(max_norm)),
        dtype,
    )
    norms = _global_norms(ours.grads)
    clipped = norms >= max_norm
    assert {"always_clipped": clipped.all(), "never_clipped": not clipped.any(),
            "mixed": 0 < clipped.sum() < len(clipped)}[regime]
    # Clipped steps have norm exactly max_norm (times the step size 0.1).
    update_norms = _global_norms(ours.updates)
    np.testing.assert_allclose(update_norms[clipped], 0.1 * max_norm, rtol=1e-5)
    np.testing.assert_allclose(update_norms[~clipped], 0.1 * norms[~clipped], rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_zero_gradient(self, dtype):
    """A zero gradient gives a zero update, never 0 * inf = NaN, as in optax."""
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.clip_by_global_norm(1.0)),
        lambda: _then_sgd(optax, optax.clip_by_global_norm(1.0)),
        dtype, steps=3, grads_fn=_zeros, expect_moved=False,
    )
    chex.assert_tree_all_finite(ours.updates)
    for u in jax.tree.leaves(ours.updates):
      np.testing.assert_array_equal(u, 0)
