"""per_example_global_norm_clip and per_example_layer_norm_clip: equal to optax's
on random batches, every example bounded as the rule says, a 100-step DP-SGD
trajectory equal to optax's, and bad arguments named."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj

BATCH = 6


def _batch(dtype="float32", seed=0):
  """Per-example gradients: a nested tree whose leaves have a leading axis of BATCH."""
  rng = np.random.default_rng(seed)
  arr = lambda *shape: jnp.asarray(rng.normal(size=(BATCH,) + shape) * rng.uniform(0.1, 3.0), dtype)
  grads = {"w": arr(2, 3), "layers": [arr(4), (arr(), arr(1, 2))]}
  # One example with a zero gradient: 0 / 0 must count as unclipped.
  return jax.tree.map(lambda g: g.at[2].set(0), grads)


def _norms(grads):
  return np.sqrt(sum(np.sum(np.asarray(g, np.float64) ** 2, axis=tuple(range(1, g.ndim)))
                     for g in jax.tree.leaves(grads)))


class TestGlobalClip(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("bound", [0.0, 0.5, float("inf")])
  def test_matches_optax_and_bounds_each_example(self, bound, dtype):
    with tj.precision(dtype):
      grads = _batch(dtype)
      summed, clipped = self.variant(jn.per_example_global_norm_clip)(grads, bound)
      ref_summed, ref_clipped = optax.per_example_global_norm_clip(grads, bound)
      chex.assert_trees_all_close(summed, ref_summed, **tj.tolerance(dtype))
      chex.assert_trees_all_equal_dtypes(summed, ref_summed)
      assert int(clipped) == int(ref_clipped)
      norms = _norms(grads)
      assert int(clipped) == int(np.sum(norms > bound))
      # Each example alone: its clipped gradient has norm min(||g_b||, C).
      alone = jax.vmap(
          lambda g: jn.per_example_global_norm_clip(jax.tree.map(lambda x: x[None], g), bound)[0]
      )(grads)
      np.testing.assert_allclose(_norms(alone), np.minimum(norms, bound), rtol=1e-5)
      assert _norms(jax.tree.map(lambda g: g[None], summed))[0] <= BATCH * bound * (1 + 1e-5)


class TestLayerClip(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("uniform", [True, False])
  @pytest.mark.parametrize("bound", [1.5, float("inf")])
  def test_matches_optax_and_bounds_each_leaf(self, bound, uniform, dtype):
    with tj.precision(dtype):
      grads = _batch(dtype)
      summed, clipped = self.variant(lambda g, c: jn.per_example_layer_norm_clip(g, c, uniform))(grads, bound)
      ref_summed, ref_clipped = optax.per_example_layer_norm_clip(grads, bound, uniform)
      chex.assert_trees_all_close(summed, ref_summed, **tj.tolerance(dtype))
      chex.assert_trees_all_equal(clipped, ref_clipped)
      leaves = jax.tree.leaves(grads)
      sizes = np.array([g[0].size for g in leaves])
      bounds = bound * (np.full(len(leaves), 1 / len(leaves)) if uniform else sizes / sizes.sum()) ** 0.5
      if np.isfinite(bound):
        np.testing.assert_allclose(np.sum(bounds**2), bound**2)  # the whole example stays within C
      for g, c, n in zip(leaves, bounds, jax.tree.leaves(clipped)):
        norms = np.sqrt(np.sum(np.asarray(g, np.float64) ** 2, axis=tuple(range(1, g.ndim))))
        assert int(n) == int(np.sum(norms > c))

  def test_one_leaf_is_the_global_clip(self):
    grads = {"w": _batch()["w"]}
    layer, n_layer = jn.per_example_layer_norm_clip(grads, 1.0)
    whole, n_whole = jn.per_example_global_norm_clip(grads, 1.0)
    chex.assert_trees_all_close(layer, whole)
    assert int(n_layer["w"]) == int(n_whole)


class TestDpSgdTrajectory(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("kind", ["global", "layer"])
  def test_matches_optax(self, kind, dtype):
    """100 steps of clipped per-example gradients fed to Adam, ours against optax's."""
    with tj.precision(dtype):
      rng = np.random.default_rng(3)
      x = jnp.asarray(rng.normal(size=(tj.STEPS, BATCH, 3)), dtype)
      y = jnp.asarray(rng.normal(size=(tj.STEPS, BATCH)), dtype)
      params = {"w": jnp.zeros(3, dtype), "b": jnp.zeros((), dtype)}
      loss = lambda p, xb, yb: (xb @ p["w"] + p["b"] - yb) ** 2
      per_example = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0)))

      def run(lib, variant):
        clip = {"global": lambda g: lib.per_example_global_norm_clip(g, 0.5),
                "layer": lambda g: lib.per_example_layer_norm_clip(g, 0.5, False)}[kind]
        tx = lib.adam(0.05)

        def step(p, s, xb, yb):
          summed, _ = clip(per_example(p, xb, yb))
          u, s = tx.update(jax.tree.map(lambda g: g / BATCH, summed), s, p)
          return lib.apply_updates(p, u), s

        step = variant(step)
        p, s, history = params, tx.init(params), []
        for t in range(tj.STEPS):
          p, s = step(p, s, x[t], y[t])
          history.append(p)
        return history, s

      ours, ours_state = run(jn, self.variant)
      theirs, their_state = run(optax, jax.jit)
      chex.assert_trees_all_close(ours, theirs, **tj.tolerance(dtype))
      tj.assert_states_close(ours_state, their_state, **tj.tolerance(dtype))
      assert np.any(np.asarray(ours[-1]["w"]) != 0)


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda: jn.per_example_global_norm_clip(_batch(), -1.0), ValueError, "l2_norm_clip"),
        (lambda: jn.per_example_global_norm_clip(_batch(), float("nan")), ValueError, "l2_norm_clip"),
        (lambda: jn.per_example_global_norm_clip(_batch(), "1"), TypeError, "l2_norm_clip"),
        (lambda: jn.per_example_global_norm_clip({"a": jnp.ones((3, 2)), "b": jnp.ones(()),}, 1.0),
         ValueError, "grads"),
        (lambda: jn.per_example_global_norm_clip({"a": jnp.ones((3, 2)), "b": jnp.ones(4)}, 1.0),
         ValueError, "grads"),
        (lambda: jn.per_example_global_norm_clip({}, 1.0), ValueError, "grads"),
        (lambda: jn.per_example_layer_norm_clip(_batch(), -0.5), ValueError, "global_l2_norm_clip"),
        (lambda: jn.per_example_layer_norm_clip(_batch(), 1.0, "yes"), TypeError, "uniform"),
        (lambda: jn.per_example_layer_norm_clip([jnp.ones((2, 3)), jnp.ones((3,))], 1.0),
         ValueError, "grads"),
    ],
)
def test_bad_arguments_are_named(call, error, name):
  with pytest.raises(error, match=f"`{name}`"):
    call()


def test_traced_bound():
  """The bound may be traced (a DP noise multiplier schedule, say)."""
  grads = _batch()
  ours = jax.jit(jn.per_example_global_norm_clip)(grads, jnp.float32(0.7))
  ref = jax.jit(optax.per_example_global_norm_clip)(grads, jnp.float32(0.7))
  chex.assert_trees_all_close(ours, ref, rtol=1e-6)
