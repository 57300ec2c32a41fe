"""scale_by_rss, scale_by_rms, scale_by_stddev and scale_by_adadelta:
100-step trajectories equal to optax's; scale_by_rss(eps_in_sqrt=False)
against a numpy formula."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj


def _then_sgd(lib, inner, lr=0.05):
  """``inner`` followed by a descent step of size ``lr``."""
  return lib.chain(inner, lib.scale(-lr))


class TestScaleByRss(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("initial_accumulator_value", [0.1, 0.0])
  def test_matches_optax(self, initial_accumulator_value, dtype):
    """Default eps placement (inside the root, with the G > 0 guard) is optax's."""
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.scale_by_rss(initial_accumulator_value)),
        lambda: _then_sgd(optax, optax.scale_by_rss(initial_accumulator_value)),
        dtype,
    )
    # The accumulator is the sum of squares of all gradients seen. Summed
    # here in float64, so float32 runs differ by their own rounding over 100
    # additions (~1e-6 relative): rtol 1e-5 for this independent check only.
    expected = jax.tree.map(
        lambda g: initial_accumulator_value + np.sum(g.astype(np.float64) ** 2, axis=0),
        ours.grads,
    )
    chex.assert_trees_all_close(ours.state[0].sum_of_squares, expected, rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_eps_matches_optax(self, dtype):
    """A large eps (0.5) inside the root is applied exactly as in optax."""
    tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.scale_by_rss(0.0, 0.5, eps_in_sqrt=True)),
        lambda: _then_sgd(optax, optax.scale_by_rss(0.0, 0.5)),
        dtype,
    )

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_zero_gradient_coordinates_get_zero_update(self, dtype):
    """With G = 0 (no initial value, zero gradients) the update is 0, as in optax."""
    with tj.precision(dtype):
      zeros = lambda t, p: jax.tree.map(jnp.zeros_like, p)
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.scale_by_rss(0.0)),
        lambda: _then_sgd(optax, optax.scale_by_rss(0.0)),
        dtype, steps=3, grads_fn=zeros, expect_moved=False,
    )
    for u in jax.tree.leaves(ours.updates):
      np.testing.assert_array_equal(u, 0)

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("eps", [1e-7, 0.5])
  @pytest.mark.parametrize("initial_accumulator_value", [0.1, 0.0])
  def test_eps_outside_sqrt_matches_numpy(self, initial_accumulator_value, eps, dtype):
    """eps_in_sqrt=False: G += g^2; u = g / (sqrt(G) + eps) (note 000's AdaGrad)."""
    with tj.precision(dtype):
      params = tj.make_params(5, dtype)
      tx = _then_sgd(jn, jn.scale_by_rss(initial_accumulator_value, eps, eps_in_sqrt=False))
      run = tj.run_trajectories(self.variant, [tx], params)[0]
    np_dtype = np.dtype(dtype).type

    def step(g, acc, t):
      acc = g * g + acc
      return g / (np.sqrt(acc) + np_dtype(eps)), acc

    expected_updates, expected_acc = tj.replay_numpy(
        run.grads, step, lambda g0: np.full_like(g0, initial_accumulator_value)
    )
    tol = tj.formula_tolerance(dtype)
    chex.assert_tree_all_finite(run.history)
    # The chain's updates are -0.05 times the scaled gradient.
    chex.assert_trees_all_close(
        run.updates, jax.tree.map(lambda u: np_dtype(-0.05) * u, expected_updates), **tol
    )
    chex.assert_trees_all_close(run.state[0].sum_of_squares, expected_acc, **tol)
    # ... and it is not the default placement.
    default = tj.replay_numpy(
        run.grads,
        lambda g, acc, t: (g / np.sqrt(g * g + acc + np_dtype(eps)), g * g + acc),
        lambda g0: np.full_like(g0, initial_accumulator_value),
    )[0]
    if eps == 0.5:
      assert not np.allclose(jax.tree.leaves(expected_updates)[0], jax.tree.leaves(default)[0])


# Every combination of the two flags and two initial scales: 8 per class.
_RMS_COMBOS = list(itertools.product([True, False], [False, True], [0.0, 0.5]))
# Centred, eps outside the root, bias-corrected, from nu = 0: at step 1
# nu_hat - mu_hat^2 is g^2 - g^2 up to rounding and can be slightly
# negative, so sqrt gives NaN in optax and in ours alike (checked in
# test_ill_defined_first_step_as_optax). A tiny initial nu keeps it defined.
_STDDEV_COMBOS = [
    (e, b, 1e-4 if (not e and b and s == 0.0) else s) for e, b, s in _RMS_COMBOS
]


class TestScaleByRms(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("eps_in_sqrt,bias_correction,initial_scale", _RMS_COMBOS)
  def test_matches_optax(self, eps_in_sqrt, bias_correction, initial_scale, dtype):
    """Both eps placements x bias correction x initial nu: state and trajectory."""
    kwargs = dict(
        decay=0.9, eps=1e-3, initial_scale=initial_scale,
        eps_in_sqrt=eps_in_sqrt, bias_correction=bias_correction,
    )
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.scale_by_rms(**kwargs), 0.02),
        lambda: _then_sgd(optax, optax.scale_by_rms(**kwargs), 0.02),
        dtype,
    )
    assert ("count" in ours.state[0]._fields) == bias_correction

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_defaults_match_optax(self, dtype):
    """The default arguments (decay 0.9, eps 1e-8, ...) are optax's."""
    tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.scale_by_rms(), 0.02),
        lambda: _then_sgd(optax, optax.scale_by_rms(), 0.02),
        dtype,
    )


class TestScaleByStddev(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("eps_in_sqrt,bias_correction,initial_scale", _STDDEV_COMBOS)
  def test_matches_optax(self, eps_in_sqrt, bias_correction, initial_scale, dtype):
    """Centred RMS: both eps placements x bias correction x initial nu."""
    kwargs = dict(
        decay=0.9, eps=1e-3, initial_scale=initial_scale,
        eps_in_sqrt=eps_in_sqrt, bias_correction=bias_correction,
    )
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.scale_by_stddev(**kwargs), 0.02),
        lambda: _then_sgd(optax, optax.scale_by_stddev(**kwargs), 0.02),
        dtype,
    )
    assert ours.state[0]._fields == (
        ("count", "mu", "nu") if bias_correction else ("mu", "nu")
    )

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_defaults_match_optax(self, dtype):
    """The default arguments are optax's."""
    tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.scale_by_stddev(), 0.02),
        lambda: _then_sgd(optax, optax.scale_by_stddev(), 0.02),
        dtype,
    )


  @chex.variants(with_jit=True, without_jit=True)
  def test_ill_defined_first_step_as_optax(self):
    """From nu = 0 with eps outside the root and bias correction, the first
    update has NaNs exactly where optax's has them and equal values elsewhere."""
    kwargs = dict(initial_scale=0.0, eps_in_sqrt=False, bias_correction=True)
    with tj.precision("float64"):
      params = tj.make_params(0, "float64")
      grads = jax.tree.map(lambda p: p * 1.7 - 0.3, params)
      outs = []
      for lib in (jn, optax):
        tx = lib.scale_by_stddev(**kwargs)
        outs.append(self.variant(tx.update)(grads, tx.init(params))[0])
    ours, ref = (jax.tree.leaves(o) for o in outs)
    for a, b in zip(ours, ref):
      np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
      np.testing.assert_array_equal(np.where(np.isnan(a), 0, a), np.where(np.isnan(b), 0, b))


class TestScaleByAdadelta(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("rho,eps", [(0.9, 1e-6), (0.5, 1e-2)])
  def test_matches_optax(self, rho, eps, dtype):
    """Adadelta's ratio of running RMS of steps and gradients, and e_g/e_x."""
    tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.scale_by_adadelta(rho, eps), 1.0),
        lambda: _then_sgd(optax, optax.scale_by_adadelta(rho, eps), 1.0),
        dtype,
    )
