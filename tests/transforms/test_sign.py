"""scale_by_sign and scale_by_lion: 100-step trajectories equal to optax's
(every Lion mode, mu_dtype), each mode's formula on recorded steps, and the
argument checks."""

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


class TestScaleBySign(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_matches_optax(self, dtype):
    """The sign of every coordinate, stateless, as optax.scale_by_sign."""
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.scale_by_sign()),
        lambda: _then_sgd(optax, optax.scale_by_sign()),
        dtype,
    )
    # Every non-zero coordinate moved by exactly the step, whatever its gradient.
    steps = np.abs(np.concatenate([np.ravel(u) for u in jax.tree.leaves(ours.updates)]))
    assert set(np.unique(steps)) <= {0.0, np.dtype(dtype).type(0.02)}
    assert ours.state[0] == jn.EmptyState()

  def test_zero_stays_zero_and_magnitude_is_dropped(self):
    tx = jn.scale_by_sign()
    g = {"w": jnp.array([-3.0, -1e-30, 0.0, -0.0, 2e-30, 7.0])}
    out, _ = tx.update(g, tx.init(g), g)
    np.testing.assert_array_equal(out["w"], [-1.0, -1.0, 0.0, 0.0, 1.0, 1.0])

  def test_integer_params_are_refused_at_init(self):
    with pytest.raises(TypeError, match=r"params\['w'\] has dtype int32"):
      jn.scale_by_sign().init({"w": jnp.arange(3)})


_LION_CASES = {
    "hard-defaults": dict(),
    "hard-b1-b2": dict(b1=0.5, b2=0.9),
    "smooth-beta": dict(b1=0.7, mode="smooth", smooth_beta=3.0),
    "refined": dict(b2=0.95, mode="refined"),
}


# The defaults in both dtypes; each other option in one of them.
_LION_CASE_DTYPES = [
    ("hard-defaults", "float32"), ("hard-defaults", "float64"), ("hard-b1-b2", "float64"),
    ("smooth-beta", "float32"), ("refined", "float64"),
]


class TestScaleByLion(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("case, dtype", _LION_CASE_DTYPES)
  def test_matches_optax(self, case, dtype):
    """Each mode (and non-default b1, b2, smooth_beta) against optax.scale_by_lion."""
    kw = _LION_CASES[case]
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.scale_by_lion(**kw)),
        lambda: _then_sgd(optax, optax.scale_by_lion(**kw)),
        dtype,
    )
    assert int(ours.state[0].count) == tj.STEPS
    if kw.get("mode") == "refined":
      # Both branches occurred: a linear |u| < step and a saturated |u| == step.
      steps = np.abs(np.concatenate([np.ravel(u) for u in jax.tree.leaves(ours.updates)]))
      assert np.any(steps == np.dtype(dtype).type(0.02)) and np.any((steps > 0) & (steps < 0.019))

  @chex.variants(with_jit=True, without_jit=True)
  def test_mu_dtype_bfloat16_matches_optax(self):
    """The momentum stored in bfloat16, rounded every step as optax rounds it."""
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.scale_by_lion(mu_dtype=jnp.bfloat16)),
        lambda: _then_sgd(optax, optax.scale_by_lion(mu_dtype=jnp.bfloat16)),
    )
    assert _dtypes(ours.state[0].mu) == {jnp.dtype(jnp.bfloat16)}
    assert _dtypes(ours.last_updates) == {jnp.dtype(jnp.float32)}

  @pytest.mark.parametrize("mode", ["hard", "smooth", "refined"])
  def test_each_mode_is_its_formula(self, mode):
    """optax's property test, on states from a real run: u = f((1-b1) g + b1 m_prev),
    m = b2 m_prev + (1-b2) g, with f the mode's map (sign, tanh(beta x), clipped identity)."""
    b1, b2, beta = 0.5, 0.9, 2.0
    tx = jn.scale_by_lion(b1, b2, mode=mode, smooth_beta=beta)
    f = {"hard": np.sign, "smooth": lambda x: np.tanh(beta * x),
         "refined": lambda x: np.where(np.abs(x) < 1.0, x, np.sign(x))}[mode]
    rng = np.random.default_rng(3)
    params = {"w": jnp.zeros(50)}
    state = tx.init(params)
    for _ in range(4):
      g = {"w": jnp.asarray(rng.normal(scale=2.0, size=50), jnp.float32)}
      m_prev = np.asarray(state.mu["w"], np.float64)
      out, state = tx.update(g, state, params)
      gw = np.asarray(g["w"], np.float64)
      np.testing.assert_allclose(out["w"], f((1 - b1) * gw + b1 * m_prev), rtol=1e-6, atol=1e-7)
      np.testing.assert_allclose(state.mu["w"], b2 * m_prev + (1 - b2) * gw, rtol=1e-6, atol=1e-7)

  def test_sign_is_taken_before_the_momentum_update(self):
    """With b1 = 0 the step is sign(g) even when m points the other way."""
    tx = jn.scale_by_lion(b1=0.0, b2=0.5)
    p = {"w": jnp.zeros(2)}
    _, state = tx.update({"w": jnp.array([-4.0, 4.0])}, tx.init(p), p)
    out, state = tx.update({"w": jnp.array([1.0, -1.0])}, state, p)
    np.testing.assert_array_equal(out["w"], [1.0, -1.0])
    np.testing.assert_array_equal(state.mu["w"], [-0.5, 0.5])

  def test_bad_mode_is_refused_when_built(self):
    """optax builds scale_by_lion(mode="invalid") and raises only at update; we refuse it at once."""
    theirs = optax.scale_by_lion(mode="invalid")
    g = jnp.array([0.1, -0.2])
    with pytest.raises(ValueError):
      theirs.update(g, theirs.init(g))
    with pytest.raises(ValueError, match="`mode` must be one of 'hard', 'smooth', 'refined'"):
      jn.scale_by_lion(mode="invalid")


@pytest.mark.parametrize(
    "kwargs, error, named",
    [
        (dict(b1=1.0), ValueError, "`b1`"),
        (dict(b1=-0.1), ValueError, "`b1`"),
        (dict(b2=1.5), ValueError, "`b2`"),
        (dict(b2="0.9"), TypeError, "`b2`"),
        (dict(mu_dtype="notadtype"), TypeError, "`mu_dtype`"),
        (dict(mode="Hard"), ValueError, "`mode`"),
        (dict(mode=3), ValueError, "`mode`"),
        (dict(mode=None), ValueError, "`mode`"),
        (dict(smooth_beta=float("nan")), ValueError, "`smooth_beta`"),
        (dict(smooth_beta="2"), TypeError, "`smooth_beta`"),
    ],
)
def test_lion_bad_arguments_name_the_argument(kwargs, error, named):
  with pytest.raises(error, match=named):
    jn.scale_by_lion(**kwargs)


def test_lion_traced_decays_work():
  """b1, b2 and smooth_beta may be traced (inside jit or inject_hyperparams)."""
  p = {"w": jnp.array([1.0, -2.0])}

  def step(b1, b2, beta):
    tx = jn.scale_by_lion(b1, b2, mode="smooth", smooth_beta=beta)
    return tx.update(p, tx.init(p), p)[0]

  out = jax.jit(step)(0.9, 0.99, 1.0)
  np.testing.assert_allclose(out["w"], np.tanh(0.1 * np.array([1.0, -2.0])), rtol=1e-6)
