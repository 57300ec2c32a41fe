"""Tests for jaxopt_notes.gradcheck.gradient_check."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_digits

from jaxopt_notes.training.gradcheck import MAX_FULL_COORDS, GradientCheckError, gradient_check


@pytest.fixture(scope="module")
def batch():
  x, y = load_digits(return_X_y=True)
  x = (x[:64] / 16.0).astype(np.float32)
  return jnp.asarray(x), jnp.asarray(y[:64].astype(np.int32))


def _xent(logits, labels):
  return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1))


def _mlp_params(hidden=16):
  k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
  return {
      "w1": jax.random.normal(k1, (64, hidden)) / 8, "b1": 0.1 * jax.random.normal(k3, (hidden,)),
      "w2": jax.random.normal(k2, (hidden, 10)) / 4, "b2": 0.1 * jax.random.normal(k4, (10,)),
  }


def _mlp_loss(params, batch, act=jnp.tanh):
  x, y = batch
  return _xent(act(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"], y)


def test_passes_on_an_mlp(batch):
  params = _mlp_params()
  errors = gradient_check(lambda p: _mlp_loss(p, batch), params)
  assert jax.tree.structure(errors) == jax.tree.structure(params)
  assert all(isinstance(e, float) and 0.0 <= e <= 1e-3 for e in jax.tree.leaves(errors))


def test_passes_on_logistic_regression(batch):
  params = {"w": 0.1 * jax.random.normal(jax.random.key(1), (64, 10)), "b": jnp.zeros(10)}
  loss = lambda p: _xent(batch[0] @ p["w"] + p["b"], batch[1]) + 1e-3 * jnp.sum(p["w"] ** 2)
  errors = gradient_check(loss, params)
  assert max(jax.tree.leaves(errors)) <= 1e-3


@jax.custom_vjp
def _buggy_square(x):
  return x**2


def _buggy_square_fwd(x):
  return x**2, x


def _buggy_square_bwd(x, g):
  # Planted bug: d(x^2)/dx is 2x, not 3x.
  return (3.0 * x * g,)


_buggy_square.defvjp(_buggy_square_fwd, _buggy_square_bwd)


def test_catches_a_planted_wrong_gradient_and_names_the_leaf(batch):
  params = _mlp_params()
  loss = lambda p: _mlp_loss(p, batch) + jnp.sum(_buggy_square(p["b1"]))
  with pytest.raises(GradientCheckError, match=r"params\['b1'\]") as info:
    gradient_check(loss, params)
  err = info.value
  assert isinstance(err, AssertionError)
  assert err.path == "params['b1']"
  # The other leaves are right; only b1 is reported as failing.
  assert "params['w1']" not in str(err) and "params['w2']" not in str(err)
  assert err.errors["b1"] > 1e-3
  assert max(err.errors["w1"], err.errors["w2"], err.errors["b2"]) <= 1e-3
  # The reported values are jax.grad's and an independent central difference.
  (i,) = err.index
  np.testing.assert_allclose(err.analytic, float(jax.grad(loss)(params)["b1"][i]), rtol=1e-5)
  with jax.enable_x64(True):
    p64 = jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), params)
    h = 1e-3
    up = dict(p64, b1=p64["b1"].at[i].add(h))
    down = dict(p64, b1=p64["b1"].at[i].add(-h))
    numeric = float((loss(up) - loss(down)) / (2 * h))
  np.testing.assert_allclose(err.numeric, numeric, rtol=1e-6)


def test_worst_coordinate_is_reported():
  wrong_at = (2, 1)

  @jax.custom_vjp
  def f(w):
    return jnp.sum(jnp.sin(w))

  f.defvjp(lambda w: (f(w), w),
           lambda w, g: (g * jnp.cos(w).at[wrong_at].multiply(1.5),))
  w = jnp.linspace(-1.0, 1.0, 12).reshape(3, 4)
  with pytest.raises(GradientCheckError) as info:
    gradient_check(lambda p: f(p["w"]), {"w": w, "ok": jnp.ones(3)})
  assert info.value.index == wrong_at
  assert "1 of 12 probed" in str(info.value)


def test_the_difference_is_central():
  # f = sum(exp(w)) at w = 0: the central difference is sinh(h) / h exactly,
  # off by h^2 / 6; the one-sided form of note 000 would be off by h / 2.
  h, rtol, atol = 1e-2, 1e-3, 1e-5
  errors = gradient_check(lambda p: jnp.sum(jnp.exp(p)), jnp.zeros(3), eps=h, rtol=rtol, atol=atol)
  numeric = math.sinh(h) / h
  expected = (numeric - 1.0) / (numeric + atol / rtol)
  np.testing.assert_allclose(errors, expected, rtol=1e-6)
  assert errors < h / 2 / 100


def test_float64_mode_and_float32_mode():
  seen = []

  def f(p):
    seen.append(p.dtype)
    return jnp.sum(jnp.sin(p) ** 2)

  w = jnp.linspace(-2.0, 2.0, 5)
  assert w.dtype == jnp.float32 and not jax.config.jax_enable_x64
  gradient_check(f, w)
  assert set(seen) == {jnp.dtype("float64")}
  assert not jax.config.jax_enable_x64  # the mode was left again
  seen.clear()
  errors = gradient_check(f, w, dtype=None, eps=1e-2, rtol=1e-2)
  assert set(seen) == {jnp.dtype("float32")} and errors <= 1e-2


def test_huge_leaf_needs_max_coords():
  big = jnp.zeros(MAX_FULL_COORDS + 1)
  with pytest.raises(ValueError, match="max_coords"):
    gradient_check(lambda p: jnp.sum(p["emb"] ** 2), {"emb": big})


def test_max_coords_samples_and_still_catches_bugs():
  w = jnp.linspace(-1.0, 1.0, 5000)
  assert gradient_check(lambda p: jnp.sum(jnp.cos(p)), w, max_coords=50) <= 1e-3

  @jax.custom_vjp
  def g(w):
    return jnp.sum(jnp.cos(w))

  g.defvjp(lambda w: (g(w), w), lambda w, ct: (ct * jnp.sin(w),))  # sign bug
  with pytest.raises(GradientCheckError, match="of 50 probed"):
    gradient_check(g, w, max_coords=50)


def test_bad_inputs():
  with pytest.raises(TypeError, match="scalar"):
    gradient_check(lambda p: p * 2, jnp.ones(3))
  with pytest.raises(TypeError, match=r"params\['n'\]"):
    gradient_check(lambda p: jnp.sum(p["w"]), {"w": jnp.ones(2), "n": jnp.arange(3)})
  with pytest.raises(ValueError, match="eps"):
    gradient_check(lambda p: jnp.sum(p), jnp.ones(3), eps=0.0)
  with pytest.raises(ValueError, match="rtol"):
    gradient_check(lambda p: jnp.sum(p), jnp.ones(3), rtol=0.0)
  with pytest.raises(TypeError, match="dtype"):
    gradient_check(lambda p: jnp.sum(p), jnp.ones(3), dtype=jnp.int32)
