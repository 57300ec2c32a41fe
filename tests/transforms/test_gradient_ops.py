"""centralize, normalize_by_update_norm, keep_params_nonnegative, zero_nans:
100-step trajectories equal to optax's; scale_gradient's forward and backward
against optax's and against the chain rule; bad arguments named."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj

# id -> lib -> transform. Each changes the math of the step it sits in.
_CASES = {
    "centralize-sgd": lambda lib: lib.chain(lib.centralize(), lib.sgd(0.05)),
    "normalize-default": lambda lib: lib.chain(lib.normalize_by_update_norm(), lib.scale(-0.02)),
    "normalize-scale-eps": lambda lib: lib.normalize_by_update_norm(scale_factor=-0.03, eps=0.5),
    "nonnegative-sgd": lambda lib: lib.chain(lib.sgd(0.3), lib.keep_params_nonnegative()),
    "zero_nans-adam": lambda lib: lib.chain(lib.zero_nans(), lib.adam(0.02)),
}

_PROBLEMS = {}


def _grads_with_nans(t, params):
  """The harness's loss gradient, with NaNs in some coordinates at some steps (the last included)."""
  key = jax.tree.leaves(params)[0].dtype
  if key not in _PROBLEMS:
    _PROBLEMS[key] = tj.make_problem(params, 1)
  grads = tj.loss_grad(_PROBLEMS[key], params, np.int32(t))
  if t % 7 in (3, 6) or t == tj.STEPS - 1:
    matrix = grads["layer"][0]
    grads["layer"][0] = matrix.at[t % 2, t % 3].set(jnp.nan)
  return grads


class TestTrajectories(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("case", sorted(_CASES))
  def test_matches_optax(self, case, dtype):
    """Params at every step, every step's updates and the final state equal optax's."""
    make = _CASES[case]
    grads_fn = _grads_with_nans if case.startswith("zero_nans") else None
    ours, _ = tj.compare_with_optax(
        self.variant, lambda: make(jn), lambda: make(optax), dtype, grads_fn=grads_fn
    )
    if case == "centralize-sgd":
      # The matrix's steps have zero row means; the vector's are not centred.
      np.testing.assert_allclose(ours.updates["layer"][0].mean(axis=2), 0.0, atol=1e-6)
      assert np.all(np.abs(ours.updates["out"]["b"].mean(axis=1)) > 0)
    if case.startswith("nonnegative"):
      for leaf in jax.tree.leaves(ours.history):
        assert np.all(np.asarray(leaf) >= 0)
      assert any(np.any(np.asarray(leaf) == 0) for leaf in jax.tree.leaves(ours.params))  # the bound was hit
    if case.startswith("zero_nans"):
      found = ours.state[0].found_nan
      assert bool(found["layer"][0]) and not bool(found["out"]["b"])  # the last step had a NaN
    if case == "normalize-scale-eps":
      norms = np.sqrt(sum(np.sum(u.astype(np.float64) ** 2, axis=tuple(range(1, u.ndim)))
                          for u in jax.tree.leaves(ours.updates)))
      assert np.all(norms < 0.03)


def test_centralize_removes_row_means_only():
  """Rank >= 2 leaves get zero means over all but the first axis; vectors pass unchanged."""
  rng = np.random.default_rng(0)
  g = {"w": jnp.asarray(rng.normal(size=(3, 4, 2))), "b": jnp.asarray(rng.normal(size=4)), "s": jnp.float32(2.0)}
  u, _ = jn.centralize().update(g, jn.EmptyState())
  np.testing.assert_allclose(np.asarray(u["w"]).mean(axis=(1, 2)), 0.0, atol=1e-6)
  np.testing.assert_array_equal(u["b"], g["b"])
  np.testing.assert_array_equal(u["s"], g["s"])


def test_normalize_gives_unit_length_and_zero_for_zero():
  g = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([[4.0]])}
  u, _ = jn.normalize_by_update_norm(eps=0.0).update(g, jn.EmptyState())
  np.testing.assert_allclose(float(jn.global_norm(u)), 1.0, rtol=1e-6)
  zero = jax.tree.map(jnp.zeros_like, g)
  u, _ = jn.normalize_by_update_norm().update(zero, jn.EmptyState())
  assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(u))


def test_keep_params_nonnegative_needs_params():
  tx = jn.keep_params_nonnegative()
  with pytest.raises(ValueError, match="params"):
    tx.update({"w": jnp.ones(2)}, tx.init({"w": jnp.ones(2)}))


def test_zero_nans_keeps_inf_and_flags_each_leaf():
  """Only NaNs are zeroed (an Inf passes, as in optax); the flags match optax's state."""
  g = {"a": jnp.array([jnp.nan, jnp.inf, 1.0]), "b": jnp.array([1.0, 2.0])}
  ours, theirs = jn.zero_nans(), optax.zero_nans()
  u, s = ours.update(g, ours.init(g))
  ru, rs = theirs.update(g, theirs.init(g))
  np.testing.assert_array_equal(u["a"], [0.0, np.inf, 1.0])
  chex.assert_trees_all_equal(u, ru)
  tj.assert_states_close(s, rs)
  tj.assert_states_close(ours.init(g), theirs.init(g))


class TestScaleGradient(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("scale", [-1.0, 0.0, 0.5, 1.0, 3.0])
  def test_matches_optax(self, scale):
    """Forward: the identity; backward: scale times the gradient, as optax's."""
    params = tj.make_params(0)

    def loss(lib, p):
      q = lib.scale_gradient(p, scale)
      return sum(jnp.sum(jnp.sin(x) * x) for x in jax.tree.leaves(q))

    ours = self.variant(jax.value_and_grad(lambda p: loss(jn, p)))(params)
    ref = jax.value_and_grad(lambda p: loss(optax, p))(params)
    plain = jax.grad(lambda p: sum(jnp.sum(jnp.sin(x) * x) for x in jax.tree.leaves(p)))(params)
    chex.assert_trees_all_close(ours, ref, rtol=1e-6)
    chex.assert_trees_all_close(ours[1], jax.tree.map(lambda g: scale * g, plain), rtol=1e-6)

  def test_traced_scale(self):
    """A scale traced under jit uses the rule (optax's compares it with 1.0 and cannot trace)."""
    x = jnp.array([1.0, -2.0])
    grad = jax.jit(jax.grad(lambda x, s: jnp.sum(jn.scale_gradient(x, s) ** 2)))
    np.testing.assert_allclose(grad(x, jnp.float32(-0.5)), -0.5 * 2 * x)
    np.testing.assert_allclose(grad(x, jnp.float32(0.0)), 0.0 * x)
    np.testing.assert_allclose(grad(x, jnp.float32(1.0)), 2 * x)


@pytest.mark.parametrize(
    "build, error, name",
    [
        (lambda: jn.normalize_by_update_norm(scale_factor=0.0), ValueError, "scale_factor"),
        (lambda: jn.normalize_by_update_norm(scale_factor=float("nan")), ValueError, "scale_factor"),
        (lambda: jn.normalize_by_update_norm(scale_factor="1"), TypeError, "scale_factor"),
        (lambda: jn.normalize_by_update_norm(eps=-1.0), ValueError, "eps"),
        (lambda: jn.normalize_by_update_norm(eps=float("inf")), ValueError, "eps"),
        (lambda: jn.scale_gradient(jnp.ones(2), float("nan")), ValueError, "scale"),
        (lambda: jn.scale_gradient(jnp.ones(2), "2"), TypeError, "scale"),
        (lambda: jn.scale_gradient(jnp.ones(2), jnp.ones(2)), TypeError, "scale"),
    ],
)
def test_bad_arguments_are_named(build, error, name):
  with pytest.raises(error, match=f"`{name}`"):
    build()


def test_traced_normalize_arguments():
  """scale_factor and eps may be traced (inside jit or injected)."""
  g = {"w": jnp.array([3.0, 4.0])}

  @jax.jit
  def step(s, e):
    return jn.normalize_by_update_norm(s, e).update(g, jn.EmptyState())[0]

  ref = optax.normalize_by_update_norm(2.0, 0.1).update(g, optax.EmptyState())[0]
  chex.assert_trees_all_close(step(jnp.float32(2.0), jnp.float32(0.1)), ref)
