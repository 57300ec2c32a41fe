"""scale_by_trust_ratio, scale_by_param_block_norm and scale_by_param_block_rms:
100-step trajectories equal to optax's, the per-layer norms they impose, the
zero-norm guard, finite gradients at zero params, and bad arguments."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj

LR = 0.05


def _then_sgd(lib, inner):
  """``inner`` followed by a descent step of size ``LR``."""
  return lib.chain(inner, lib.scale(-LR))


def _norm(x, axis=None):
  return np.sqrt(np.sum(np.asarray(x, np.float64) ** 2, axis=axis))


def _params_before_each_step(run, params):
  """Stacked params each update was computed at (the start, then history[:-1])."""
  return jax.tree.map(
      lambda p0, h: np.concatenate([np.asarray(p0)[None], h[:-1]]), params, run.history
  )


def _per_step_norms(stacked):
  """Per-leaf, per-step L2 norm of a stacked pytree (leading axis = steps)."""
  return [_norm(x, axis=tuple(range(1, np.ndim(x)))) for x in jax.tree.leaves(stacked)]


# id -> (lib -> transform). Each case changes the math: the floor of both
# norms (0.5 binds for the scalar leaf and for small updates), the trust
# coefficient and the eps in the denominator.
_TRUST_CASES = {
    "default": lambda lib: lib.scale_by_trust_ratio(),
    "min_norm": lambda lib: lib.scale_by_trust_ratio(min_norm=0.5),
    "coefficient-eps": lambda lib: lib.scale_by_trust_ratio(trust_coefficient=0.3, eps=1e-2),
}


class TestScaleByTrustRatio(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("case", sorted(_TRUST_CASES))
  def test_matches_optax(self, case, dtype):
    make = _TRUST_CASES[case]
    tj.compare_with_optax(
        self.variant, lambda: _then_sgd(jn, make(jn)), lambda: _then_sgd(optax, make(optax)), dtype
    )

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("coefficient", [1.0, 0.3])
  def test_each_layer_step_is_a_fraction_of_its_weight_norm(self, coefficient):
    """Without floor or eps, every leaf's update has norm c ||w|| (times the step)."""
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.scale_by_trust_ratio(trust_coefficient=coefficient)),
        lambda: _then_sgd(optax, optax.scale_by_trust_ratio(trust_coefficient=coefficient)),
    )
    before = _params_before_each_step(ours, tj.make_params())
    for got, weights in zip(_per_step_norms(ours.updates), _per_step_norms(before)):
      np.testing.assert_allclose(got, LR * coefficient * weights, rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_zero_norms_leave_the_update_unchanged(self):
    """Ratio 1 where the params or the update are all zero, as in optax."""
    params = {"zero_w": jnp.zeros(3), "w": jnp.array([3.0, 4.0]), "w2": jnp.array([1.0, 2.0])}
    grads = {"zero_w": jnp.array([1.0, -2.0, 0.5]), "w": jnp.zeros(2), "w2": jnp.array([0.0, 0.5])}
    for lib in (jn, optax):
      tx = lib.scale_by_trust_ratio()
      updates, _ = self.variant(tx.update)(grads, tx.init(params), params)
      np.testing.assert_array_equal(updates["zero_w"], grads["zero_w"])
      np.testing.assert_array_equal(updates["w"], 0.0)
      np.testing.assert_allclose(updates["w2"], [0.0, np.sqrt(5.0)], rtol=1e-6)

  @pytest.mark.parametrize("name", [
      "scale_by_trust_ratio", "scale_by_param_block_norm", "scale_by_param_block_rms",
  ])
  def test_gradient_through_the_update_is_finite_at_zero_params(self, name):
    """The norms differentiate to finite values at w = 0 (a bare norm gives 0/0 = NaN there)."""
    tx = getattr(jn, name)()

    def total(w):
      updates, _ = tx.update({"w": jnp.ones(3)}, tx.init({"w": w}), {"w": w})
      return jnp.sum(updates["w"])

    grad = jax.grad(total)(jnp.zeros(3))
    assert np.all(np.isfinite(grad)), grad
    bare = jax.grad(lambda w: jnp.linalg.norm(w))(jnp.zeros(3))
    assert not np.all(np.isfinite(bare))  # what the guard is for


def _block_cases():
  # min_scale 1.5 binds for some leaves (the params' norms and RMS are O(1)), 1e-3 never.
  return [
      ("norm", 1e-3), ("norm", 1.5), ("rms", 1e-3), ("rms", 1.5),
  ]


class TestParamBlockScaling(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("kind,min_scale", _block_cases())
  def test_matches_optax(self, kind, min_scale, dtype):
    name = f"scale_by_param_block_{kind}"
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, getattr(jn, name)(min_scale)),
        lambda: _then_sgd(optax, getattr(optax, name)(min_scale)),
        dtype,
    )
    # The factor is the floored norm (or RMS) of the params the step started from.
    with tj.precision(dtype):
      before = _params_before_each_step(ours, tj.make_params(0, dtype))
    for g, u, w in zip(*map(jax.tree.leaves, (ours.grads, ours.updates, before))):
      axes = tuple(range(1, np.ndim(w)))
      size = np.prod(np.shape(w)[1:])
      scale = _norm(w, axes) if kind == "norm" else _norm(w, axes) / np.sqrt(size)
      scale = np.maximum(scale, min_scale).reshape((-1,) + (1,) * len(axes))
      np.testing.assert_allclose(u, -LR * g * scale, **tj.formula_tolerance(dtype))
    if min_scale > 1:
      floors = [np.any(s <= min_scale) for s in _per_step_norms(before)]
      assert any(floors)  # the floor is exercised


@pytest.mark.parametrize("name", [
    "scale_by_trust_ratio", "scale_by_param_block_norm", "scale_by_param_block_rms",
])
def test_needs_params_and_refuses_integer_params(name):
  tx = getattr(jn, name)()
  g = {"w": jnp.ones(2)}
  with pytest.raises(ValueError, match="params"):
    tx.update(g, tx.init(g), None)
  with pytest.raises(TypeError, match=r"params\['w'\]"):
    tx.init({"w": jnp.ones(2, jnp.int32)})


def test_state_is_optax_empty_state():
  assert jn.ScaleByTrustRatioState is jn.EmptyState
  tx = jn.scale_by_trust_ratio()
  assert tx.init({"w": jnp.ones(2)}) == jn.EmptyState()


@pytest.mark.parametrize("factory,arg,value,error", [
    (jn.scale_by_trust_ratio, "min_norm", -1.0, ValueError),
    (jn.scale_by_trust_ratio, "min_norm", float("nan"), ValueError),
    (jn.scale_by_trust_ratio, "trust_coefficient", -0.1, ValueError),
    (jn.scale_by_trust_ratio, "trust_coefficient", "1", TypeError),
    (jn.scale_by_trust_ratio, "eps", float("inf"), ValueError),
    (jn.scale_by_param_block_norm, "min_scale", -1e-3, ValueError),
    (jn.scale_by_param_block_norm, "min_scale", True, TypeError),
    (jn.scale_by_param_block_rms, "min_scale", -1e-3, ValueError),
    (jn.scale_by_param_block_rms, "min_scale", None, TypeError),
])
def test_bad_argument_names_it(factory, arg, value, error):
  with pytest.raises(error, match=f"`{arg}`"):
    factory(**{arg: value})
