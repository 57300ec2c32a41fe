"""clip, clip_by_global_norm, clip_by_block_rms and adaptive_grad_clip:
100-step trajectories equal to optax's, above and below the threshold (per
leaf and per unit, with conv kernels), on zero gradients, and bad arguments."""

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


def _rms_per_step(stacked):
  """Per-leaf, per-step root mean square of a stacked pytree."""
  return [
      np.sqrt(np.mean(np.asarray(x, np.float64) ** 2, axis=tuple(range(1, np.ndim(x)))))
      for x in jax.tree.leaves(stacked)
  ]


class TestClipByBlockRms(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("regime", ["always_clipped", "mixed", "never_clipped"])
  def test_matches_optax(self, regime, dtype):
    """Each leaf is shrunk to RMS threshold when above it, left alone below.

    The leaves' gradient RMS starts at 1-4 and settles around 0.1-0.5: 0.02
    clips every leaf at every step, 0.5 some, 1e3 none (checked below).
    """
    threshold = {"always_clipped": 0.02, "mixed": 0.5, "never_clipped": 1e3}[regime]
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.clip_by_block_rms(threshold)),
        lambda: _then_sgd(optax, optax.clip_by_block_rms(threshold)),
        dtype,
    )
    clipped_any = []
    for g_rms, u_rms in zip(_rms_per_step(ours.grads), _rms_per_step(ours.updates)):
      clipped = g_rms > threshold
      clipped_any.append(clipped)
      np.testing.assert_allclose(u_rms[clipped], 0.1 * threshold, rtol=1e-5)
      np.testing.assert_allclose(u_rms[~clipped], 0.1 * g_rms[~clipped], rtol=1e-5)
    clipped = np.concatenate(clipped_any)
    assert {"always_clipped": clipped.all(), "never_clipped": not clipped.any(),
            "mixed": 0 < clipped.sum() < len(clipped)}[regime]

  @chex.variants(with_jit=True, without_jit=True)
  def test_zero_gradient(self):
    """A zero leaf stays 0 (RMS 0 / threshold, never 0/0), as in optax."""
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.clip_by_block_rms(0.1)),
        lambda: _then_sgd(optax, optax.clip_by_block_rms(0.1)),
        steps=3, grads_fn=_zeros, expect_moved=False,
    )
    for u in jax.tree.leaves(ours.updates):
      np.testing.assert_array_equal(u, 0)


def _conv_params(dtype):
  """The harness's params plus an HWIO conv kernel and a DHWIO (conv3d) one."""
  params = tj.make_params(0, dtype)
  rng = np.random.default_rng(5)
  params["conv"] = jnp.asarray(rng.normal(size=(3, 3, 2, 4)), dtype)
  params["conv3d"] = jnp.asarray(rng.normal(size=(2, 2, 2, 3, 4)), dtype)
  return params


def _unit_norms(x, axes):
  """Per-step unit norms of a stacked leaf (leading axis = steps), broadcast to its shape."""
  return np.sqrt(np.sum(np.asarray(x, np.float64) ** 2, axis=axes, keepdims=True))


# The summed axes of each rank by default, shifted by one for the steps axis.
_DEFAULT_UNIT = {0: None, 1: (1,), 2: (1,), 4: (1, 2, 3), 5: (1, 2, 3, 4)}


class TestAdaptiveGradClip(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("clipping,eps,axis,dtype", [
      (0.05, 1e-3, None, "float32"), (0.05, 1e-3, None, "float64"), (0.5, 1e-3, None, "float64"),
      (0.3, 2.0, None, "float32"), (0.1, 1e-3, 0, "float64"), (0.2, 1e-3, (0, -1), "float32"),
  ])
  def test_matches_optax(self, clipping, eps, axis, dtype):
    """Unit-wise clipping relative to the weights, with conv kernels; eps 2.0 floors most units.

    An int ``axis`` (0) or a tuple with a negative one apply to every leaf
    (here only to leaves of the rank they fit: the harness's params).
    """
    with tj.precision(dtype):
      params = _conv_params(dtype) if axis is None else tj.make_params(0, dtype)
      if axis == (0, -1):
        params = {"m": params["layer"][0], "conv": _conv_params(dtype)["conv"]}
      if axis == 0:
        params = {"m": params["layer"][0], "v": params["out"]["b"]}
      runs = tj.run_trajectories(
          self.variant,
          [_then_sgd(jn, jn.adaptive_grad_clip(clipping, eps, axis)),
           _then_sgd(optax, optax.adaptive_grad_clip(clipping, eps, axis))],
          params, problem=tj.make_problem(params, 1),
      )
      tj.assert_trajectories_close(*runs, dtype, initial_params=params)
    ours = runs[0]
    before = jax.tree.map(lambda p0, h: np.concatenate([np.asarray(p0)[None], h[:-1]]), params, ours.history)
    clipped_steps = 0
    for g, u, w in zip(*map(jax.tree.leaves, (ours.grads, ours.updates, before))):
      if axis is None:
        axes = _DEFAULT_UNIT[np.ndim(g) - 1]
      else:
        axes = tuple(a + 1 if a >= 0 else a for a in (axis if isinstance(axis, tuple) else (axis,)))
      axes = tuple(range(1, np.ndim(g))) if axes is None else axes
      bound = clipping * np.maximum(_unit_norms(w, axes), eps)
      g_norm, u_norm = _unit_norms(g, axes), _unit_norms(u, axes) / 0.1
      assert np.all(u_norm <= bound * (1 + 1e-5))
      clip = g_norm >= bound
      np.testing.assert_allclose(u_norm, np.where(clip, bound, g_norm), rtol=1e-4)
      clipped_steps += int(clip.sum())
    assert clipped_steps > 0

  def test_rank_six_needs_an_axis(self):
    """Rank 6 has no default unit: ValueError naming `axis`; with one it runs (as in optax)."""
    params = {"w": jnp.ones((2,) * 6)}
    tx = jn.adaptive_grad_clip(0.5)
    with pytest.raises(ValueError, match="`axis`"):
      tx.update(params, tx.init(params), params)
    with pytest.raises(ValueError):
      optax.adaptive_grad_clip(0.5).update(params, None, params)
    for lib in (jn, optax):
      updates, _ = lib.adaptive_grad_clip(0.5, axis=(0, 1, 2)).update(
          jax.tree.map(lambda p: 2 * p, params), lib.EmptyState(), params
      )
      np.testing.assert_allclose(updates["w"], 0.5, rtol=1e-6)

  def test_zero_params_are_floored_by_eps(self):
    """A zero-initialised unit may still move, by at most clipping * eps."""
    params = {"w": jnp.zeros((3, 2))}
    grads = {"w": jnp.ones((3, 2))}
    for lib in (jn, optax):
      updates, _ = lib.adaptive_grad_clip(0.1, eps=1e-2).update(grads, lib.EmptyState(), params)
      np.testing.assert_allclose(np.linalg.norm(updates["w"], axis=0), 1e-3, rtol=1e-5)

  def test_needs_params_and_state_is_optax_empty_state(self):
    tx = jn.adaptive_grad_clip(0.1)
    g = {"w": jnp.ones(2)}
    with pytest.raises(ValueError, match="params"):
      tx.update(g, tx.init(g), None)
    assert jn.AdaptiveGradClipState is jn.EmptyState
    assert tx.init(g) == jn.EmptyState()


@pytest.mark.parametrize("factory,kwargs,arg,error", [
    (jn.clip_by_block_rms, {"threshold": 0.0}, "threshold", ValueError),
    (jn.clip_by_block_rms, {"threshold": float("nan")}, "threshold", ValueError),
    (jn.clip_by_block_rms, {"threshold": "1"}, "threshold", TypeError),
    (jn.adaptive_grad_clip, {"clipping": 0.0}, "clipping", ValueError),
    (jn.adaptive_grad_clip, {"clipping": -1.0}, "clipping", ValueError),
    (jn.adaptive_grad_clip, {"clipping": None}, "clipping", TypeError),
    (jn.adaptive_grad_clip, {"clipping": 0.1, "eps": -1e-3}, "eps", ValueError),
    (jn.adaptive_grad_clip, {"clipping": 0.1, "axis": 1.5}, "axis", ValueError),
    (jn.adaptive_grad_clip, {"clipping": 0.1, "axis": (0, "1")}, "axis", ValueError),
    (jn.adaptive_grad_clip, {"clipping": 0.1, "axis": True}, "axis", TypeError),
])
def test_bad_argument_names_it(factory, kwargs, arg, error):
  with pytest.raises(error, match=f"`{arg}`"):
    factory(**kwargs)
