"""scale_by_adam, scale_by_amsgrad, scale_by_adamax and scale_by_radam:
100-step trajectories equal to optax's; our extra flags (nu_dtype,
bias_correction=False) checked on their own terms."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj


def _then_sgd(lib, inner, lr=0.02):
  """``inner`` followed by a descent step of size ``lr``."""
  return lib.chain(inner, lib.scale(-lr))


def _dtypes(tree):
  return {x.dtype for x in jax.tree.leaves(tree)}


class TestScaleByAdam(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("nesterov", [False, True])
  @pytest.mark.parametrize("eps_root", [0.0, 1e-8])
  def test_matches_optax(self, eps_root, nesterov, dtype):
    """Adam (and NAdam's look-ahead first moment), with and without eps_root."""
    tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.scale_by_adam(eps_root=eps_root, nesterov=nesterov)),
        lambda: _then_sgd(optax, optax.scale_by_adam(eps_root=eps_root, nesterov=nesterov)),
        dtype,
    )

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_other_hyperparameters_match_optax(self, dtype):
    """Non-default b1, b2 and a large eps, passed positionally as in optax."""
    args = (0.5, 0.9, 1e-2)
    tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.scale_by_adam(*args)),
        lambda: _then_sgd(optax, optax.scale_by_adam(*args)),
        dtype,
    )

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("nesterov", [False, True])
  def test_mu_dtype_bfloat16_matches_optax(self, nesterov):
    """mu stored in bfloat16 (rounded every step exactly as optax rounds it)."""
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.scale_by_adam(mu_dtype=jnp.bfloat16, nesterov=nesterov)),
        lambda: _then_sgd(optax, optax.scale_by_adam(mu_dtype=jnp.bfloat16, nesterov=nesterov)),
    )
    assert _dtypes(ours.state[0].mu) == {jnp.dtype(jnp.bfloat16)}
    assert _dtypes(ours.state[0].nu) == {jnp.dtype(jnp.float32)}

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("nesterov", [False, True])
  def test_nu_dtype_float32_on_float32_is_optax(self, nesterov):
    """nu_dtype=float32 on float32 params changes nothing: optax's numbers."""
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.scale_by_adam(nesterov=nesterov, nu_dtype=jnp.float32)),
        lambda: _then_sgd(optax, optax.scale_by_adam(nesterov=nesterov)),
    )
    assert _dtypes(ours.state[0].nu) == {jnp.dtype(jnp.float32)}

  @chex.variants(with_jit=True, without_jit=True)
  def test_nu_dtype_is_the_stored_dtype(self):
    """nu_dtype=bfloat16 stores nu in bfloat16 (mu and the updates untouched),
    and the stored nu is the float32 second moment rounded to bfloat16."""
    with tj.precision("float32"):
      params = tj.make_params(0, "float32")
      tx = jn.scale_by_adam(nu_dtype=jnp.bfloat16)
      state = tx.init(params)
      assert _dtypes(state.nu) == {jnp.dtype(jnp.bfloat16)}
      run = tj.run_trajectories(self.variant, [_then_sgd(jn, tx)], params, 5)[0]
    final = run.state[0]
    assert _dtypes(final.nu) == {jnp.dtype(jnp.bfloat16)}
    assert _dtypes(final.mu) == {jnp.dtype(jnp.float32)}
    assert _dtypes(run.last_updates) == {jnp.dtype(jnp.float32)}
    chex.assert_tree_all_finite(run.history)

    # One step from the final state, recomputed by hand in float32.
    g = jax.tree.map(lambda x: x[-1], run.grads)
    _, new = self.variant(tx.update)(g, final)
    expected_nu = jax.tree.map(
        lambda g, v: (0.001 * np.float32(g) ** 2 + np.float32(0.999) * np.asarray(v, np.float32)),
        g, final.nu,
    )
    chex.assert_trees_all_close(
        jax.tree.map(lambda v: np.asarray(v, np.float32), new.nu), expected_nu,
        rtol=2 ** -8,  # bfloat16 keeps 8 significant bits
    )

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("nesterov", [False, True])
  def test_no_bias_correction_matches_numpy(self, nesterov, dtype):
    """bias_correction=False (note 000's "almost Adam"):
    m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; u = m / (sqrt(v) + eps),
    with Nesterov u = (b1 m + (1-b1) g) / (sqrt(v) + eps)."""
    b1, b2, eps = 0.9, 0.99, 1e-7
    with tj.precision(dtype):
      params = tj.make_params(7, dtype)
      tx = _then_sgd(jn, jn.scale_by_adam(b1, b2, eps, nesterov=nesterov, bias_correction=False))
      run = tj.run_trajectories(self.variant, [tx], params)[0]
    f = np.dtype(dtype).type
    one, b1_, b2_, eps_ = f(1), f(b1), f(b2), f(eps)

    def step(g, mv, t):
      m, v = mv
      m = (one - b1_) * g + b1_ * m
      v = (one - b2_) * g**2 + b2_ * v
      m_hat = b1_ * m + (one - b1_) * g if nesterov else m
      return f(-0.02) * (m_hat / (np.sqrt(v) + eps_)), (m, v)

    expected_updates, (expected_mu, expected_nu) = tj.replay_numpy(
        run.grads, step, lambda g0: (np.zeros_like(g0), np.zeros_like(g0))
    )
    tol = tj.formula_tolerance(dtype)
    chex.assert_tree_all_finite(run.history)
    chex.assert_trees_all_close(run.updates, expected_updates, **tol)
    chex.assert_trees_all_close(run.state[0].mu, expected_mu, **tol)
    chex.assert_trees_all_close(run.state[0].nu, expected_nu, **tol)
    assert int(run.state[0].count) == tj.STEPS
    # Not Adam: optax's bias-corrected updates on the same gradients differ.
    with tj.precision(dtype):
      adam = _then_sgd(optax, optax.scale_by_adam(b1, b2, eps, nesterov=nesterov))
      _, adam_updates = jax.lax.scan(
          lambda s, g: adam.update(g, s)[::-1], adam.init(params), run.grads
      )
    assert not np.allclose(jax.tree.leaves(adam_updates)[0], jax.tree.leaves(run.updates)[0])


# bias_correction_mu x bias_correction_nu, each with and without eps_root.
_AMSGRAD_FLAGS = list(itertools.product([True, False], [True, False]))


class TestScaleByAmsgrad(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("bias_correction_mu,bias_correction_nu", _AMSGRAD_FLAGS)
  def test_matches_optax(self, bias_correction_mu, bias_correction_nu, dtype):
    """Both bias-correction flags (positional, as in optax), nu_max included."""
    args = (0.9, 0.99, 1e-8, 0.0, None, bias_correction_mu, bias_correction_nu)
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.scale_by_amsgrad(*args)),
        lambda: _then_sgd(optax, optax.scale_by_amsgrad(*args)),
        dtype,
    )
    # nu_max bounds the last (possibly corrected) second moment from above.
    st = ours.state[0]
    correction = (1 - 0.99**tj.STEPS) if bias_correction_nu else 1.0
    for m, v in zip(jax.tree.leaves(st.nu_max), jax.tree.leaves(st.nu)):
      assert np.all(np.asarray(m) >= np.asarray(v) / correction * (1 - 1e-6))

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_eps_root_and_defaults_match_optax(self, dtype):
    """Default b1/b2/eps with a positive eps_root."""
    tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.scale_by_amsgrad(eps_root=1e-6)),
        lambda: _then_sgd(optax, optax.scale_by_amsgrad(eps_root=1e-6)),
        dtype,
    )

  @chex.variants(with_jit=True, without_jit=True)
  def test_mu_dtype_bfloat16_matches_optax(self):
    """mu stored in bfloat16 as in optax."""
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.scale_by_amsgrad(mu_dtype=jnp.bfloat16)),
        lambda: _then_sgd(optax, optax.scale_by_amsgrad(mu_dtype=jnp.bfloat16)),
    )
    assert _dtypes(ours.state[0].mu) == {jnp.dtype(jnp.bfloat16)}

  @chex.variants(with_jit=True, without_jit=True)
  def test_nu_dtype_float32_on_float32_is_optax(self):
    """Our nu_dtype=float32 on float32 params gives optax's numbers."""
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.scale_by_amsgrad(nu_dtype=jnp.float32)),
        lambda: _then_sgd(optax, optax.scale_by_amsgrad()),
    )
    assert _dtypes(ours.state[0].nu_max) == {jnp.dtype(jnp.float32)}


class TestScaleByAdamax(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("b1,b2,eps", [(0.9, 0.999, 1e-8), (0.5, 0.9, 1e-3)])
  def test_matches_optax(self, b1, b2, eps, dtype):
    """Adamax's infinity-norm second moment and bias-corrected first moment."""
    tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.scale_by_adamax(b1, b2, eps)),
        lambda: _then_sgd(optax, optax.scale_by_adamax(b1, b2, eps)),
        dtype,
    )


class TestScaleByRadam(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("nesterov", [False, True])
  @pytest.mark.parametrize("threshold", [5.0, 20.0])
  def test_matches_optax(self, threshold, nesterov, dtype):
    """Both branches (rho_t below/above the threshold) and Nesterov.

    With b2 = 0.99, rho_t passes 5 at step 6 and 20 at step ~25, so both the
    plain-momentum and the rectified steps occur within 100 steps.
    """
    args = (0.9, 0.99, 1e-8, 0.0, threshold)
    tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.scale_by_radam(*args, nesterov=nesterov)),
        lambda: _then_sgd(optax, optax.scale_by_radam(*args, nesterov=nesterov)),
        dtype,
    )

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_defaults_and_eps_root_match_optax(self, dtype):
    """optax's defaults (b2 = 0.999: rectified from step 6 on) plus eps_root."""
    tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.scale_by_radam(eps_root=1e-6)),
        lambda: _then_sgd(optax, optax.scale_by_radam(eps_root=1e-6)),
        dtype,
    )

  @chex.variants(with_jit=True, without_jit=True)
  def test_threshold_switches_branch(self):
    """Below the threshold the update is the bias-corrected momentum itself."""
    with tj.precision("float32"):
      params = tj.make_params(2, "float32")
      tx = _then_sgd(jn, jn.scale_by_radam(0.9, 0.99, threshold=1e9))
      run = tj.run_trajectories(self.variant, [tx], params, 10)[0]
      ema = optax.ema(0.9, debias=True)
      _, expected = jax.lax.scan(lambda s, g: ema.update(g, s)[::-1], ema.init(params), run.grads)
    chex.assert_trees_all_close(
        run.updates, jax.tree.map(lambda u: -0.02 * u, expected), **tj.tolerance("float32")
    )
