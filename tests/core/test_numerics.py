"""``jaxopt_notes.core.numerics`` against optax, and against the math each function claims.

optax's results are computed here (never pasted); where ours deliberately
differs (``matrix_inverse_pth_root`` for ``p`` not a power of two up to 8),
the test shows optax's result is not ``A^{-1/p}`` and ours is.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj


def _exact(ours, ref):
  chex.assert_trees_all_equal_structs(ours, ref)
  for o, r in zip(jax.tree.leaves(ours), jax.tree.leaves(ref)):
    assert jnp.asarray(o).dtype == jnp.asarray(r).dtype
    np.testing.assert_array_equal(np.asarray(o), np.asarray(r))


def _spd(rng, n, dtype, cond=50.0):
  q, _ = np.linalg.qr(rng.normal(size=(n, n)))
  eigs = np.geomspace(1.0, cond, n)
  return jnp.asarray((q * eigs) @ q.T, dtype), eigs


# --- safe norms --------------------------------------------------------------------------------

# (input, ord, axis, keepdims, min_norm); input 0 random, 1 zero, 2 tiny.
NORM_CASES = [
    (0, None, None, False, 0.0), (1, None, None, False, 0.5), (2, 1, None, False, 0.5),
    (0, 2, 0, True, 0.5), (1, np.inf, 1, False, 0.0), (2, "fro", None, False, 0.5),
    (0, "nuc", (0, 1), True, 0.5), (1, None, (0, 1), False, 0.5), (2, -np.inf, 0, False, 0.0),
]


def _safe_norms(lib, xs):
  """Every case's value and gradient, in one function (one compile under jit)."""
  out = []
  for i, ord_, axis, keepdims, min_norm in NORM_CASES:
    f = lambda y: lib.safe_norm(y, min_norm, ord=ord_, axis=axis, keepdims=keepdims)
    out.append((f(xs[i]), jax.grad(lambda y: jnp.sum(f(y)))(xs[i])))
  return out


@pytest.mark.parametrize("dtype, jit", [("float32", False), ("float32", True), ("float64", True)])
def test_safe_norm_values_and_gradients_match_optax(dtype, jit):
  rng = np.random.default_rng(0)
  with tj.precision(dtype):
    xs = [jnp.asarray(rng.normal(size=(3, 4)), dtype), jnp.zeros((3, 4), dtype),
          jnp.asarray(1e-3 * rng.normal(size=(3, 4)), dtype)]
    run = (lambda fn: jax.jit(fn)) if jit else (lambda fn: fn)
    ours = run(lambda x: _safe_norms(jn, x))(xs)
    _exact(ours, run(lambda x: _safe_norms(optax, x))(xs))
    assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in jax.tree.leaves(ours))
    # The floor holds, and below it the gradient is exactly zero.
    zero = jnp.zeros(5, dtype)
    assert float(jn.safe_norm(zero, 0.25)) == 0.25
    np.testing.assert_array_equal(jax.grad(lambda y: jn.safe_norm(y, 0.25))(zero), np.zeros(5))
    np.testing.assert_allclose(float(jn.safe_norm(xs[0], 0.5)), np.linalg.norm(np.asarray(xs[0])), rtol=1e-6)


@pytest.mark.parametrize("dtype", tj.DTYPES)
def test_safe_root_mean_squares_matches_optax(dtype):
  rng = np.random.default_rng(1)
  with tj.precision(dtype):
    complex_dtype = jnp.complex128 if dtype == "float64" else jnp.complex64
    for x in (jnp.asarray(rng.normal(size=(4, 3)), dtype), jnp.zeros((4,), dtype),
              jnp.asarray(rng.normal(size=3) + 1j * rng.normal(size=3), complex_dtype)):
      for min_rms in (0.0, 1e-3, 10.0):
        _exact(jn.safe_root_mean_squares(x, min_rms), optax.safe_root_mean_squares(x, min_rms))
        if not jnp.iscomplexobj(x):
          grad = lambda lib: jax.grad(lambda y: lib.safe_root_mean_squares(y, min_rms))(x)
          _exact(grad(jn), grad(optax))
    rms = jn.safe_root_mean_squares(jnp.asarray([3.0, -4.0], dtype), 0.0)
    np.testing.assert_allclose(float(rms), np.sqrt(12.5), rtol=1e-6)


# --- parameter averages ------------------------------------------------------------------------


class TestAverages(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_incremental_update_matches_optax_over_a_trajectory(self, dtype):
    with tj.precision(dtype):
      params = tj.make_params(0, dtype)
      average = jax.tree.map(lambda p: None if p is None else 0.0 * p, params, is_leaf=lambda x: x is None)
      ours_avg, ref_avg = average, average
      step, ref_step = self.variant(jn.incremental_update), self.variant(optax.incremental_update)
      for t in range(20):
        new = jax.tree.map(lambda p: None if p is None else p + 0.1 * t, params, is_leaf=lambda x: x is None)
        tau = jnp.asarray(1.0 / (t + 1), dtype)
        ours_avg, ref_avg = step(new, ours_avg, tau), ref_step(new, ref_avg, tau)
        _exact(ours_avg, ref_avg)
      # With tau = 1/(t + 1) the average is the plain mean of the 20 trees.
      mean = jax.tree.map(lambda p: p + 0.1 * np.mean(np.arange(20)), params)
      chex.assert_trees_all_close(ours_avg, mean, **tj.formula_tolerance(dtype))

  @chex.variants(with_jit=True, without_jit=True)
  def test_periodic_update_matches_optax(self):
    new, old = {"w": jnp.ones(3), "n": None}, {"w": jnp.zeros(3), "n": None}
    ours = self.variant(jn.periodic_update)
    for period in (1, 3, 5):
      for steps in range(12):
        got = ours(new, old, jnp.asarray(steps), period)
        _exact(got, optax.periodic_update(new, old, jnp.asarray(steps), period))
        assert float(got["w"][0]) == float(steps % period == 0)


def test_incremental_update_names_the_mismatch():
  with pytest.raises(ValueError, match="`old_tensors`"):
    jn.incremental_update({"a": jnp.ones(1)}, {"b": jnp.ones(1)}, 0.5)


# --- power iteration and matrix roots ----------------------------------------------------------


@pytest.mark.parametrize("dtype", tj.DTYPES)
def test_power_iteration_on_arrays_matches_optax_and_numpy(dtype):
  rng = np.random.default_rng(2)
  with tj.precision(dtype):
    a, eigs = _spd(rng, 6, dtype)
    options = ({}, {"key": jax.random.PRNGKey(3)}, {"num_iters": 5}, {"error_tolerance": 1e-2},
               {"v0": jnp.ones(6, dtype)}, {"precision": jax.lax.Precision.DEFAULT})
    for kwargs in options[:2]:
      _exact(jn.power_iteration(a, **kwargs), optax.power_iteration(a, **kwargs))
    every = lambda lib, m: [lib.power_iteration(m, **kw) for kw in options]
    _exact(jax.jit(lambda m: every(jn, m))(a), jax.jit(lambda m: every(optax, m))(a))
    eig, vec = jn.power_iteration(a, num_iters=1000, error_tolerance=1e-10)
    np.testing.assert_allclose(float(eig), eigs[-1], rtol=1e-4)
    np.testing.assert_allclose(np.asarray(a @ vec), float(eig) * np.asarray(vec), atol=1e-3 * eigs[-1])
    np.testing.assert_allclose(float(jnp.linalg.norm(vec)), 1.0, rtol=1e-5)


def test_power_iteration_on_a_pytree_matvec_matches_optax():
  # The Hessian of a small two-leaf quadratic, given only as a Hessian-vector product.
  rng = np.random.default_rng(4)
  a, _ = _spd(rng, 3, jnp.float32)
  loss = lambda p: 0.5 * p["x"] @ a @ p["x"] + 2.0 * jnp.sum(p["y"] ** 2)
  params = {"x": jnp.ones(3), "y": jnp.ones(2)}
  matvec = lambda v: jax.jvp(jax.grad(loss), (params,), (v,))[1]
  v0 = {"x": jnp.array([1.0, -1.0, 0.5]), "y": jnp.array([0.3, 0.2])}
  ours = jn.power_iteration(matvec, v0=v0, num_iters=500)
  _exact(ours, optax.power_iteration(matvec, v0=v0, num_iters=500))
  np.testing.assert_allclose(float(ours[0]), max(np.linalg.eigvalsh(np.asarray(a)).max(), 4.0), rtol=1e-4)


def _inverse_root(a, p):
  w, v = np.linalg.eigh(np.asarray(a, np.float64))
  return (v * w ** (-1.0 / p)) @ v.T


@pytest.mark.parametrize("p", [1, 2, 4, 8])
@pytest.mark.parametrize("dtype", tj.DTYPES)
def test_matrix_inverse_pth_root_matches_optax_for_powers_of_two(p, dtype):
  rng = np.random.default_rng(5)
  with tj.precision(dtype):
    a, _ = _spd(rng, 5, dtype, cond=20.0)
    ours = jn.matrix_inverse_pth_root(a, p)
    _exact(ours, optax.matrix_inverse_pth_root(a, p))
    np.testing.assert_allclose(np.asarray(ours[0]), _inverse_root(a, p), atol=1e-4)
    options = ({"ridge_epsilon": 0.0, "num_iters": 10}, {"error_tolerance": 1e-3})
    every = lambda lib, m: [lib.matrix_inverse_pth_root(m, p, **kw) for kw in options]
    _exact(jax.jit(lambda m: every(jn, m))(a), jax.jit(lambda m: every(optax, m))(a))
    one = jnp.asarray([[4.0]], dtype)
    _exact(jn.matrix_inverse_pth_root(one, p), optax.matrix_inverse_pth_root(one, p))


def test_matrix_inverse_pth_root_with_traced_p_follows_optax():
  a, _ = _spd(np.random.default_rng(6), 4, jnp.float32)
  for p in (2, 4):
    ours = jax.jit(lambda m, q: jn.matrix_inverse_pth_root(m, q))(a, jnp.asarray(p))
    _exact(ours, jax.jit(lambda m, q: optax.matrix_inverse_pth_root(m, q))(a, jnp.asarray(p)))


@pytest.mark.parametrize("p", [3, 5, 6, 16])
def test_matrix_inverse_pth_root_is_exact_where_optax_is_not(p):
  """optax computes X^p only for p in 1, 2, 4, 8: for other p its result is not A^(-1/p)."""
  a, _ = _spd(np.random.default_rng(7), 5, jnp.float32, cond=20.0)
  want = _inverse_root(a, p)
  ours, error = jn.matrix_inverse_pth_root(a, p)
  np.testing.assert_allclose(np.asarray(ours), want, atol=1e-4)
  assert float(error) < 1e-5
  ref, _ = optax.matrix_inverse_pth_root(a, p)
  assert np.abs(np.asarray(ref) - want).max() > 1e-2


# --- multi_normal ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", tj.DTYPES)
def test_multi_normal_matches_optax(dtype):
  rng = np.random.default_rng(8)
  with tj.precision(dtype):
    loc, log_scale = jnp.asarray(rng.normal(size=(2, 3)), dtype), jnp.asarray(rng.normal(size=(3,)), dtype)
    ours, ref = jn.multi_normal(loc, log_scale), optax.multi_normal(loc, log_scale)
    key = jax.random.key(9)
    for shape in ((), [2, 5]):
      _exact(ours.sample(shape, key), ref.sample(shape, key))
    x = ours.sample((7,), key)
    _exact(ours.log_prob(x), ref.log_prob(x))
    _exact(ours.params, ref.params)
    _exact(ours.log_scale, ref.log_scale)
    # log N(x; mu, sigma) summed over the six coordinates, from the formula.
    sigma = np.exp(np.asarray(log_scale, np.float64))
    z = (np.asarray(x, np.float64) - np.asarray(loc, np.float64)) / sigma
    want = np.sum(-0.5 * z**2 - np.log(sigma) - 0.5 * np.log(2 * np.pi), axis=(-2, -1))
    np.testing.assert_allclose(np.asarray(ours.log_prob(x)), want, **tj.formula_tolerance(dtype))
    grads = jax.grad(lambda p: jnp.sum(jn.multi_normal(*p).log_prob(x)))((loc, log_scale))
    ref_grads = jax.grad(lambda p: jnp.sum(optax.multi_normal(*p).log_prob(x)))((loc, log_scale))
    _exact(grads, ref_grads)


# --- the names and bad arguments ---------------------------------------------------------------

NAMES = ("safe_norm", "safe_root_mean_squares", "incremental_update", "periodic_update", "power_iteration",
         "matrix_inverse_pth_root", "multi_normal")


@pytest.mark.parametrize("name", NAMES)
def test_signature_matches_optax(name):
  import inspect

  def shape(fn):
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]

  assert shape(getattr(jn, name)) == shape(getattr(optax, name))
  assert name in jn.__all__ and getattr(jn, name).__doc__


@pytest.mark.parametrize("call, error, named", [
    (lambda: jn.periodic_update({}, {}, 3, 0), ValueError, "`update_period`"),
    (lambda: jn.periodic_update({}, {}, 3, -2), ValueError, "`update_period`"),
    (lambda: jn.power_iteration(lambda v: v), ValueError, "`v0`"),
    (lambda: jn.power_iteration(jnp.ones((2, 3))), ValueError, "`matrix`"),
    (lambda: jn.power_iteration(jnp.eye(2), num_iters=-1), ValueError, "`num_iters`"),
    (lambda: jn.power_iteration(jnp.eye(2), error_tolerance=-1e-3), ValueError, "`error_tolerance`"),
    (lambda: jn.matrix_inverse_pth_root(jnp.eye(2), 0), ValueError, "`p`"),
    (lambda: jn.matrix_inverse_pth_root(jnp.eye(2), 2.5), ValueError, "`p`"),
    (lambda: jn.matrix_inverse_pth_root(jnp.eye(2), "2"), TypeError, "`p`"),
    (lambda: jn.matrix_inverse_pth_root(jnp.ones(3), 2), ValueError, "`matrix`"),
    (lambda: jn.matrix_inverse_pth_root(jnp.eye(2), 2, num_iters=-5), ValueError, "`num_iters`"),
    (lambda: jn.matrix_inverse_pth_root(jnp.eye(2), 2, ridge_epsilon=-1.0), ValueError, "`ridge_epsilon`"),
    (lambda: jn.matrix_inverse_pth_root(jnp.eye(2), 2, error_tolerance=float("nan")), ValueError,
     "`error_tolerance`"),
])
def test_bad_arguments_name_the_argument(call, error, named):
  with pytest.raises(error, match=named):
    call()
