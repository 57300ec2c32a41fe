"""ema and trace: 100-step trajectories equal to optax's, and trace's
``average=True`` form against a numpy formula."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj


def _then_sgd(tx_lib, inner):
  """``inner`` followed by a small descent step, so the params move sensibly."""
  return tx_lib.chain(inner, tx_lib.scale(-0.05))


class TestEma(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("debias", [True, False])
  def test_matches_optax(self, debias, dtype):
    """ema(decay, debias) gives optax.ema's params, updates and EmaState."""
    decay = 0.8
    tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.ema(decay, debias)),
        lambda: _then_sgd(optax, optax.ema(decay, debias)),
        dtype,
    )

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("debias", [True, False])
  def test_accumulator_dtype_matches_optax(self, debias):
    """A bfloat16 accumulator is stored as bfloat16 and rounds as optax's does."""
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.ema(0.9, debias, accumulator_dtype=jnp.bfloat16)),
        lambda: _then_sgd(optax, optax.ema(0.9, debias, accumulator_dtype=jnp.bfloat16)),
        "float32",
    )
    ema_state = ours.state[0]
    assert {x.dtype for x in jax.tree.leaves(ema_state.ema)} == {jnp.dtype(jnp.bfloat16)}
    assert ema_state.count.dtype == jnp.int32 and int(ema_state.count) == tj.STEPS

  @chex.variants(with_jit=True, without_jit=True)
  def test_accumulator_dtype_float64_under_x64(self):
    """accumulator_dtype=float64 on float32 params matches optax under x64."""
    with tj.precision("float64"):
      ours, _ = tj.compare_with_optax(
          self.variant,
          lambda: _then_sgd(jn, jn.ema(0.9, accumulator_dtype=jnp.float64)),
          lambda: _then_sgd(optax, optax.ema(0.9, accumulator_dtype=jnp.float64)),
          "float32",
      )
    assert {x.dtype for x in jax.tree.leaves(ours.state[0].ema)} == {jnp.dtype(jnp.float64)}


class TestTrace(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("nesterov", [False, True])
  def test_matches_optax(self, nesterov, dtype):
    """trace(decay, nesterov) gives optax.trace's params, updates and TraceState."""
    decay = 0.9
    tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.trace(decay, nesterov)),
        lambda: _then_sgd(optax, optax.trace(decay, nesterov)),
        dtype,
    )

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("nesterov", [False, True])
  def test_zero_decay_matches_optax(self, nesterov):
    """decay = 0: no memory (Nesterov then doubles the gradient), as optax."""
    tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.trace(0.0, nesterov)),
        lambda: _then_sgd(optax, optax.trace(0.0, nesterov)),
    )

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("nesterov", [False, True])
  def test_accumulator_dtype_matches_optax(self, nesterov):
    """A bfloat16 momentum buffer is stored as bfloat16 and matches optax."""
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.trace(0.9, nesterov, jnp.bfloat16)),
        lambda: _then_sgd(optax, optax.trace(0.9, nesterov, jnp.bfloat16)),
        "float32",
    )
    assert {x.dtype for x in jax.tree.leaves(ours.state[0].trace)} == {jnp.dtype(jnp.bfloat16)}

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", ["float32"])
  def test_average_false_is_default(self, dtype):
    """``average=False`` spelled out is optax.trace (the flag's default form)."""
    tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.trace(0.9, True, average=False)),
        lambda: _then_sgd(optax, optax.trace(0.9, True)),
        dtype,
    )

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("nesterov", [False, True])
  def test_average_matches_numpy_formula(self, nesterov, dtype):
    """``average=True``: v = b v + (1-b) g; u = v, or b v + (1-b) g with Nesterov.

    The numpy reference is fed the gradients our run saw (teacher forcing)
    and must reproduce every step's update and the final buffer.
    """
    decay = 0.8
    with tj.precision(dtype):
      params = tj.make_params(3, dtype)
      tx = jn.trace(decay, nesterov, average=True)
      run = tj.run_trajectories(self.variant, [tx], params)[0]

      one, beta = np.dtype(dtype).type(1), np.dtype(dtype).type(decay)

      def step(g, v, t):
        v = (one - beta) * g + beta * v
        return ((one - beta) * g + beta * v if nesterov else v), v

      expected_updates, expected_trace = tj.replay_numpy(
          run.grads, step, lambda g0: np.zeros_like(g0)
      )
    tol = tj.formula_tolerance(dtype)
    chex.assert_tree_all_finite(run.history)
    chex.assert_trees_all_close(run.updates, expected_updates, **tol)
    chex.assert_trees_all_close(run.state.trace, expected_trace, **tol)
    assert any(np.any(u[-1] != 0) for u in jax.tree.leaves(expected_updates))


class TestTraceRunningSum(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("nesterov", [False, True])
  def test_decay_one_matches_optax(self, nesterov, dtype):
    """decay = 1: the buffer is the plain sum of all updates (optax's own tests use it)."""
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: jn.chain(jn.trace(1.0, nesterov), jn.scale(-0.01)),
        lambda: optax.chain(optax.trace(1.0, nesterov), optax.scale(-0.01)),
        dtype,
        steps=30,
    )
    for g, v in zip(jax.tree.leaves(ours.grads), jax.tree.leaves(ours.state[0].trace)):
      np.testing.assert_allclose(v, g.sum(axis=0), **tj.formula_tolerance(dtype))


@pytest.mark.parametrize(
    "kwargs, error, hint",
    [
        (dict(decay=1.0, average=True), ValueError, "[0, 1)"),
        (dict(decay=1.5), ValueError, "[0, 1]"),
        (dict(decay=-0.1), ValueError, "[0, 1]"),
        (dict(decay=float("nan")), ValueError, "[0, 1]"),
        (dict(decay=True), TypeError, "number"),
        (dict(decay=np.bool_(True)), TypeError, "number"),
    ],
)
def test_trace_refuses_bad_decay(kwargs, error, hint):
  with pytest.raises(error, match="`decay`") as info:
    jn.trace(**kwargs)
  assert hint in str(info.value)
