"""``jaxopt_notes.projections`` against ``optax.projections``, and against the definition.

Each projection must (1) equal optax's on random nested pytrees in float32
and float64, eagerly and under ``jit``; (2) land in its set; and (3) be the
closest point of the set: for a convex set ``C``, ``p = P(x)`` is the
projection exactly when ``<x - p, y - p> <= 0`` for every ``y`` in ``C``, that
is when the support function ``sigma_C(x - p) = max_{y in C} <x - p, y>``
(known in closed form for each set) equals ``<x - p, p>``; for the spheres,
``||x - p|| <= ||x - y||`` for many ``y`` on the sphere. The simplex also gets its KKT conditions.
"""

from __future__ import annotations

import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

import jaxopt_notes as jn
from tests import _trajectory as tj

P = jn.projections
NAMES = sorted(n for n in dir(optax.projections) if n.startswith("projection_"))


def _flat(tree):
  return np.asarray(ravel_pytree(tree)[0], np.float64)


def _tree(seed, dtype, scale=2.0):
  params = tj.make_params(seed, dtype)
  return jax.tree.map(lambda x: scale * x, params)


def _like(tree, flat):
  return ravel_pytree(tree)[1](jnp.asarray(flat, ravel_pytree(tree)[0].dtype))


# --- equal to optax -----------------------------------------------------------------------------


def _calls(lib, x, a, lower, upper):
  """Every projection, with optax's argument conventions, on one tree ``x``."""
  pr = lib.projections
  return [
      pr.projection_non_negative(x),
      pr.projection_box(x, lower, upper),
      pr.projection_box(x["out"]["b"], -0.5, 0.75),
      pr.projection_hypercube(x["out"]["b"]),
      pr.projection_hypercube(x["out"]["b"], 0.3),
      pr.projection_simplex(x),
      pr.projection_simplex(x, 2.5),
      pr.projection_l1_sphere(x),
      pr.projection_l1_sphere(x, 0.5),
      pr.projection_l1_ball(x),
      pr.projection_l1_ball(x, 100.0),
      pr.projection_l2_sphere(x, 1.5),
      pr.projection_l2_ball(x),
      pr.projection_l2_ball(x, 100.0),
      pr.projection_linf_ball(x),
      pr.projection_linf_ball(x, 0.25),
      pr.projection_vector(x, a),
      pr.projection_hyperplane(x, a, 0.5),
      pr.projection_halfspace(x, a, -1.0),
      pr.projection_halfspace(x, a, 1e3),
  ]


@pytest.mark.parametrize("dtype, jit", [("float32", False), ("float32", True), ("float64", False),
                                        ("float64", True)])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_optax(dtype, jit, seed):
  with tj.precision(dtype):
    x, a = _tree(seed, dtype), _tree(seed + 10, dtype, 1.0)
    lower = jax.tree.map(lambda t: -0.5 * jnp.abs(t), a)
    upper = jax.tree.map(lambda t: jnp.abs(t), a)
    run = jax.jit if jit else (lambda fn: fn)
    ours = run(lambda *t: _calls(jn, *t))(x, a, lower, upper)
    ref = run(lambda *t: _calls(optax, *t))(x, a, lower, upper)
    for i, (o, r) in enumerate(zip(ours, ref)):
      chex.assert_trees_all_equal_structs(o, r)
      for lo, le in zip(jax.tree.leaves(o), jax.tree.leaves(r)):
        assert lo.dtype == le.dtype == jnp.dtype(dtype), i
        np.testing.assert_array_equal(np.asarray(lo), np.asarray(le), err_msg=f"call {i}")


def test_simplex_jacobian_matches_optax_and_the_formula():
  x = jnp.array([0.5, 2.1, -3.5, 1.9, 0.0])
  ours = jax.jacobian(P.projection_simplex)(x)
  np.testing.assert_array_equal(np.asarray(ours), np.asarray(jax.jacobian(optax.projections.projection_simplex)(x)))
  support = np.asarray(P.projection_simplex(x) > 0, np.float64)
  want = np.diag(support) - np.outer(support, support) / support.sum()
  np.testing.assert_allclose(np.asarray(ours), want, atol=1e-7)
  # Reverse mode too, and under vmap.
  vjp = jax.grad(lambda v: P.projection_simplex(v) @ jnp.arange(5.0))(x)
  np.testing.assert_allclose(np.asarray(vjp), want.T @ np.arange(5.0), atol=1e-6)
  batch = jnp.stack([x, -x, 3 * x])
  np.testing.assert_array_equal(jax.vmap(P.projection_simplex)(batch),
                                jax.vmap(optax.projections.projection_simplex)(batch))


def test_ball_gradients_at_zero_are_finite_like_optax():
  zero = jnp.zeros(3)
  for name in ("projection_l2_ball", "projection_l1_ball"):
    ours = jax.jacobian(getattr(P, name))(zero)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(jax.jacobian(getattr(optax.projections, name))(zero)))
    assert np.all(np.isfinite(np.asarray(ours)))


# --- in the set, and the closest point of it ------------------------------------------------------


def _support(name, d, scale, a=None, b=None, lower=None, upper=None):
  """``max_{y in C} <d, y>``, the support function of the set (``inf`` where unbounded along ``d``)."""
  if name == "box":
    return np.sum(np.maximum(d * lower, d * upper))
  if name == "hypercube":
    return np.sum(np.maximum(d * scale, 0.0))
  if name == "simplex":
    return scale * d.max()
  if name == "l1_ball":
    return scale * np.abs(d).max()
  if name == "l2_ball":
    return scale * np.linalg.norm(d)
  if name == "linf_ball":
    return scale * np.abs(d).sum()
  if name == "non_negative":
    return 0.0 if np.all(d <= 1e-6 * (1 + np.abs(d).max())) else np.inf
  # The line {t a}, the hyperplane and the halfspace: bounded only along a (or orthogonal to it).
  along = (d @ a) / (a @ a)
  off = np.linalg.norm(d - along * a)
  tol = 1e-5 * (1 + np.linalg.norm(d))
  if name == "vector":
    return 0.0 if abs(d @ a) <= tol * np.linalg.norm(a) else np.inf
  if off > tol or (name == "halfspace" and along < -tol):
    return np.inf
  return along * b


def _sphere_points(rng, n, scale, norm):
  y = rng.normal(size=(2000, n)) * rng.uniform(0, 1, size=(2000, n)) ** 4  # many near the axes
  return scale * y / np.linalg.norm(y, ord=norm, axis=1, keepdims=True)


@pytest.mark.parametrize("dtype", tj.DTYPES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_results_lie_in_their_sets_and_are_the_closest_points(dtype, seed):
  """p = P_C(x) exactly when p is in C and <x - p, y - p> <= 0 for all y in C, i.e. sigma_C(x - p) = <x - p, p>."""
  rng = np.random.default_rng(seed)
  atol = 1e-5 if dtype == "float32" else 1e-12
  with tj.precision(dtype):
    x_tree, a_tree = _tree(seed, dtype, 2.0), _tree(seed + 5, dtype, 1.0)
    x, a = _flat(x_tree), _flat(a_tree)
    n = x.size
    lower, upper = -0.3 * np.abs(a), np.abs(a) + 0.1
    lower_tree, upper_tree = _like(x_tree, lower), _like(x_tree, upper)
    b = 0.7
    for scale in (0.5, 3.0, 50.0):
      cases = {
          "non_negative": (P.projection_non_negative(x_tree), lambda p: np.all(p >= 0)),
          "box": (P.projection_box(x_tree, lower_tree, upper_tree),
                  lambda p: np.all(p >= lower - atol) and np.all(p <= upper + atol)),
          "hypercube": (P.projection_hypercube(x_tree, scale), lambda p: np.all((p >= 0) & (p <= scale))),
          "simplex": (P.projection_simplex(x_tree, scale),
                      lambda p: np.all(p >= 0) and abs(p.sum() - scale) <= atol * n * scale),
          "l1_ball": (P.projection_l1_ball(x_tree, scale), lambda p: np.abs(p).sum() <= scale * (1 + n * atol)),
          "l2_ball": (P.projection_l2_ball(x_tree, scale), lambda p: np.linalg.norm(p) <= scale * (1 + n * atol)),
          "linf_ball": (P.projection_linf_ball(x_tree, scale), lambda p: np.abs(p).max() <= scale),
          "vector": (P.projection_vector(x_tree, a_tree),
                     lambda p: np.linalg.norm(p - (p @ a) / (a @ a) * a) <= atol * 10 * np.linalg.norm(p)),
          "hyperplane": (P.projection_hyperplane(x_tree, a_tree, b), lambda p: abs(p @ a - b) <= atol * 100),
          "halfspace": (P.projection_halfspace(x_tree, a_tree, b), lambda p: p @ a <= b + atol * 100),
      }
      for name, (p_tree, in_set) in cases.items():
        assert jax.tree.structure(p_tree) == jax.tree.structure(x_tree), name
        p = _flat(p_tree)
        assert in_set(p), (name, scale)
        d = x - p
        gap = _support(name, d, scale, a=a, b=b, lower=lower, upper=upper) - d @ p
        tol = 20 * atol * (1 + np.abs(x).sum() + np.abs(p).sum())
        assert -tol <= gap <= tol, (name, scale, gap, tol)
      # The spheres are not convex: no one of many points on them is closer.
      for norm, p_tree in ((1, P.projection_l1_sphere(x_tree, scale)), (2, P.projection_l2_sphere(x_tree, scale))):
        p = _flat(p_tree)
        np.testing.assert_allclose(np.linalg.norm(p, ord=norm), scale, rtol=n * atol)
        ys = _sphere_points(rng, n, scale, norm)
        assert np.linalg.norm(x - p) <= np.linalg.norm(ys - x, axis=1).min() * (1 + atol), (norm, scale)


def test_the_optimality_check_rejects_a_wrong_projection():
  """The support-function check above is not vacuous: near misses fail it."""
  x = _flat(_tree(0, "float32"))
  for name, wrong in (("simplex", np.maximum(x, 0) / np.maximum(x, 0).sum()),
                      ("l2_ball", np.clip(x, -0.2, 0.2)),
                      ("l1_ball", x / np.abs(x).sum())):
    d = x - wrong
    tol = 20 * 1e-5 * (1 + np.abs(x).sum() + np.abs(wrong).sum())  # the float32 tolerance above
    assert _support(name, d, 1.0) - d @ wrong > 10 * tol, name


@pytest.mark.parametrize("dtype", tj.DTYPES)
def test_simplex_kkt_conditions(dtype):
  """p = max(x - tau, 0) with sum p = s: one threshold tau, below which every x_i lies outside the support."""
  rng = np.random.default_rng(3)
  atol = 1e-5 if dtype == "float32" else 1e-12
  with tj.precision(dtype):
    for scale in (0.1, 1.0, 7.0):
      for spread in (0.1, 1.0, 10.0):
        x = jnp.asarray(spread * rng.normal(size=17), dtype)
        p = np.asarray(P.projection_simplex(x, scale), np.float64)
        xs = np.asarray(x, np.float64)
        support = p > 0
        assert support.any()
        taus = xs[support] - p[support]
        tau = taus.mean()
        np.testing.assert_allclose(taus, tau, atol=atol * max(1, spread) * 10)
        assert np.all(xs[~support] <= tau + atol * max(1, spread) * 10)
        np.testing.assert_allclose(p.sum(), scale, rtol=atol * 20)
    # A point of the simplex is its own projection.
    inside = jnp.asarray(rng.dirichlet(np.ones(6)), dtype)
    np.testing.assert_allclose(np.asarray(P.projection_simplex(inside)), np.asarray(inside), atol=atol * 10)


# --- deliberate differences, names, bad arguments ------------------------------------------------


def test_scalar_bounds_apply_to_every_leaf_where_optax_raises():
  tree = {"a": jnp.array([-1.0, 0.5, 2.0]), "b": (jnp.array(3.0), None), "c": [jnp.array([[-0.2, 0.9]])]}
  with pytest.raises(ValueError):
    optax.projections.projection_hypercube(tree)
  with pytest.raises(ValueError):
    optax.projections.projection_box(tree, 0.0, 1.0)
  for ours, (lo, hi) in ((P.projection_hypercube(tree), (0, 1)), (P.projection_hypercube(tree, 0.5), (0, 0.5)),
                         (P.projection_box(tree, -0.1, 0.8), (-0.1, 0.8))):
    chex.assert_trees_all_equal(ours, jax.tree.map(lambda x, lo=lo, hi=hi: jnp.clip(x, lo, hi), tree))
  # A tree of bounds works as in optax; one bound a scalar and the other a tree, too.
  upper = jax.tree.map(lambda x: jnp.full_like(x, 0.6), tree)
  chex.assert_trees_all_equal(P.projection_box(tree, 0.0, upper), P.projection_box(tree, 0.0, 0.6))


def test_namespace_and_flat_names_match_optax():
  assert NAMES and sorted(P.__all__) == NAMES
  assert jn.projections is P and "projections" in jn.__all__
  for name in NAMES:
    def shape(fn):
      return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]

    assert shape(getattr(P, name)) == shape(getattr(optax.projections, name)), name
    assert getattr(jn, name) is getattr(P, name) and name in jn.__all__
    assert getattr(P, name).__doc__


RADIUS = ["projection_simplex", "projection_l1_sphere", "projection_l1_ball", "projection_l2_sphere",
          "projection_l2_ball"]


@pytest.mark.parametrize("name", RADIUS)
@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_radius_must_be_positive_and_finite(name, bad):
  with pytest.raises(ValueError, match="`scale`"):
    getattr(P, name)(jnp.ones(3), bad)


@pytest.mark.parametrize("bad, error", [(-0.5, ValueError), (float("nan"), ValueError), ("1", TypeError)])
def test_linf_radius_must_be_non_negative(bad, error):
  with pytest.raises(error, match="`scale`"):
    P.projection_linf_ball(jnp.ones(3), bad)


def test_traced_radius_is_accepted():
  out = jax.jit(P.projection_l2_ball)(jnp.array([3.0, 4.0]), jnp.float32(1.0))
  np.testing.assert_allclose(np.asarray(out), [0.6, 0.8], rtol=1e-6)
