r"""Euclidean projections onto convex sets, over whole pytrees.

Each function returns the point of a set closest to its input,

.. math:: P_C(x) = \underset{y \in C}{\operatorname{argmin}}\ \|x - y\|_2^2,

with the pytree taken as one flat vector. Projected gradient descent,
:math:`w \leftarrow P_C(w - \eta \nabla f(w))`, is gradient descent (notes
000) kept inside a constraint set ``C``; the notes themselves optimize
without constraints, so these sit beside their families, not in one. The
sets: the non-negative orthant, boxes and hypercubes, the simplex, l1, l2
and l-infinity balls and spheres, a line through a vector, a hyperplane and
a halfspace. Boyd & Vandenberghe, *Convex Optimization*, 2004, sec. 8.1;
Parikh & Boyd, "Proximal Algorithms", 2014, sec. 6.2.

Same names, signatures and numbers as optax 0.2.8's ``optax.projections``
(exposed as :mod:`jaxopt_notes.projections`). Deliberate differences, each
in its docstring: a scalar bound of :func:`projection_box` and
:func:`projection_hypercube` applies to every leaf (optax raises for a
tree of more than one leaf), and radii must be positive.

May import: :mod:`jaxopt_notes.core`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import flatten_util

from jaxopt_notes.core import tree_math, validation

__all__ = [
    "projection_box",
    "projection_halfspace",
    "projection_hypercube",
    "projection_hyperplane",
    "projection_l1_ball",
    "projection_l1_sphere",
    "projection_l2_ball",
    "projection_l2_sphere",
    "projection_linf_ball",
    "projection_non_negative",
    "projection_simplex",
    "projection_vector",
]


def _check_radius(name: str, value: Any) -> None:
  # A zero radius divides by zero in the simplex and the l1/l2 formulas.
  validation.check_that(name, value, lambda v: np.isfinite(v) & (v > 0), "a finite number > 0")


def projection_non_negative(tree: Any) -> Any:
  r"""Onto the non-negative orthant: :math:`P(x) = \max(x, 0)` elementwise.

  Same as ``optax.projections.projection_non_negative``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.projection_non_negative({"w": jnp.array([-1.0, 2.0])})
    {'w': Array([0., 2.], dtype=float32)}
  """
  return jax.tree.map(jax.nn.relu, tree)


def _bound_tree(bound: Any, tree: Any) -> Any:
  if jax.tree_util.treedef_is_leaf(jax.tree.structure(bound)):
    return jax.tree.map(lambda _: bound, tree)
  return bound


def projection_box(tree: Any, lower: Any, upper: Any) -> Any:
  r"""Onto the box :math:`\{y : l \le y \le u\}`: :math:`P(x) = \min(\max(x, l), u)` elementwise.

  ``lower`` and ``upper`` are each a scalar (for every leaf) or a tree
  structured like ``tree``. Same as ``optax.projections.projection_box``;
  difference: optax takes a scalar bound only when ``tree`` is one array.

  Args:
    tree: the pytree to project.
    lower: the lower bound :math:`l`.
    upper: the upper bound :math:`u`.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.projection_box({"w": jnp.array([-1.0, 0.5, 3.0])}, 0.0, 2.0)
    {'w': Array([0. , 0.5, 2. ], dtype=float32)}
  """
  return jax.tree.map(jnp.clip, tree, _bound_tree(lower, tree), _bound_tree(upper, tree))


def projection_hypercube(tree: Any, scale: Any = 1) -> Any:
  r"""Onto the hypercube :math:`\{y : 0 \le y \le s\}` (default :math:`s = 1`: the unit cube).

  :func:`projection_box` with ``lower=0``, ``upper=scale`` (a scalar or a
  tree). Same as ``optax.projections.projection_hypercube``; difference: a
  tree of several leaves works (optax's scalar bound raises for it).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.projection_hypercube({"a": jnp.array([-1.0, 0.5]), "b": jnp.array([3.0])})
    {'a': Array([0. , 0.5], dtype=float32), 'b': Array([1.], dtype=float32)}
  """
  return projection_box(tree, lower=0, upper=scale)


@jax.custom_jvp
def _unit_simplex(values: Any) -> jax.Array:
  """Sort-based projection of a vector onto ``{p >= 0, sum p = 1}``."""
  count = values.shape[0]
  ordered = jnp.sort(values)[::-1]
  running = jnp.cumsum(ordered)
  rank = jnp.arange(count) + 1
  # The support is the largest k with u_k + (1 - sum_{j<=k} u_j) / k > 0.
  support = jnp.count_nonzero(1 / rank + (ordered - running / rank) > 0)
  return jax.nn.relu(1 / support + (values - running[support - 1] / support))


@_unit_simplex.defjvp
def _unit_simplex_jvp(primals, tangents):
  (values,), (values_dot,) = primals, tangents
  projected = _unit_simplex(values)
  # On its support S the projection is the affine map x -> x - mean_S(x) + 1/|S|.
  inside = projected > 0
  size = jnp.count_nonzero(inside)
  return projected, inside * values_dot - (jnp.dot(inside, values_dot) / size) * inside


def projection_simplex(tree: Any, scale: jax.typing.ArrayLike = 1) -> Any:
  r"""Onto the simplex :math:`\{y \ge 0,\ \textstyle\sum_i y_i = s\}` (default :math:`s = 1`).

  .. math:: P(x)_i = \max(x_i - \tau, 0), \quad \tau \text{ such that } \textstyle\sum_i P(x)_i = s

  with :math:`\tau` found by sorting (Held, Wolfe & Crowder, 1974; Duchi et
  al., "Efficient projections onto the l1-ball for learning in high
  dimensions", ICML 2008). All leaves form one vector (``ravel_pytree``).
  Its derivative is the exact one of the piecewise-affine map (a custom
  JVP). Same as ``optax.projections.projection_simplex``; ``scale`` must be
  positive.

  Args:
    tree: the pytree to project.
    scale: :math:`s`, the sum of the result (default 1).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.projection_simplex(jnp.array([2.0, 1.0, -1.0]))
    Array([1., 0., 0.], dtype=float32)
  """
  _check_radius("scale", scale)
  values, unravel = flatten_util.ravel_pytree(tree)
  return unravel(jnp.asarray(scale * _unit_simplex(values / scale)))


def projection_l1_sphere(tree: Any, scale: jax.typing.ArrayLike = 1) -> Any:
  r"""Onto the l1 sphere :math:`\{y : \|y\|_1 = s\}`: :math:`P(x) = \mathrm{sign}(x) \odot P_{\Delta_s}(|x|)`.

  The simplex projection of :math:`|x|` with the signs put back. Same as
  ``optax.projections.projection_l1_sphere``; ``scale`` must be positive.

  Args:
    tree: the pytree to project.
    scale: :math:`s`, the radius (default 1).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.projection_l1_sphere(jnp.array([0.25, -0.25]))
    Array([ 0.5, -0.5], dtype=float32)
  """
  _check_radius("scale", scale)
  magnitudes = projection_simplex(jax.tree.map(jnp.abs, tree), scale)
  return tree_math.tree_mul(jax.tree.map(jnp.sign, tree), magnitudes)


def projection_l1_ball(tree: Any, scale: jax.typing.ArrayLike = 1) -> Any:
  r"""Onto the l1 ball :math:`\{y : \|y\|_1 \le s\}`: ``x`` if inside, else :func:`projection_l1_sphere`.

  The constraint set of the lasso (Tibshirani, 1996); Duchi et al., ICML
  2008. A ``lax.cond``, so it runs under ``jit``. Same as
  ``optax.projections.projection_l1_ball``; ``scale`` must be positive.

  Args:
    tree: the pytree to project.
    scale: :math:`s`, the radius (default 1).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.projection_l1_ball(jnp.array([2.0, -1.0]))
    Array([ 1., -0.], dtype=float32)
  """
  _check_radius("scale", scale)
  inside = tree_math.tree_norm(tree, ord=1) <= scale
  return jax.lax.cond(inside, lambda t: t, lambda t: projection_l1_sphere(t, scale), tree)


def projection_l2_sphere(tree: Any, scale: jax.typing.ArrayLike = 1) -> Any:
  r"""Onto the l2 sphere :math:`\{y : \|y\|_2 = s\}`: :math:`P(x) = s\, x / \|x\|_2`.

  Same as ``optax.projections.projection_l2_sphere``; ``scale`` must be
  positive.

  Args:
    tree: the pytree to project (not zero: every point of the sphere is
      then closest, and the formula gives NaN).
    scale: :math:`s`, the radius (default 1).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.projection_l2_sphere({"w": jnp.array([3.0, 4.0])})
    {'w': Array([0.6, 0.8], dtype=float32)}
  """
  _check_radius("scale", scale)
  return tree_math.tree_scale(scale / tree_math.tree_norm(tree), tree)


def projection_l2_ball(tree: Any, scale: jax.typing.ArrayLike = 1) -> Any:
  r"""Onto the l2 ball :math:`\{y : \|y\|_2 \le s\}`: :math:`P(x) = x \cdot s / \max(\|x\|_2, s)`.

  Clipping by global norm (``clip_by_global_norm``) is this projection of
  the gradient. Same as ``optax.projections.projection_l2_ball`` (the
  maximum taken on squares, so ``x = 0`` has a finite gradient); ``scale``
  must be positive.

  Args:
    tree: the pytree to project.
    scale: :math:`s`, the radius (default 1).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.projection_l2_ball({"w": jnp.array([3.0, 4.0])}, 2.5)
    {'w': Array([1.5, 2. ], dtype=float32)}
  """
  _check_radius("scale", scale)
  squared = tree_math.tree_norm(tree, squared=True)
  return tree_math.tree_scale(scale / jnp.sqrt(jnp.maximum(squared, scale**2)), tree)


def projection_linf_ball(tree: Any, scale: jax.typing.ArrayLike = 1) -> Any:
  r"""Onto the l-infinity ball :math:`\{y : \|y\|_\infty \le s\}`: :math:`P(x) = \min(\max(x, -s), s)`.

  The bounds are made in each leaf's dtype first (as optax does). Same as
  ``optax.projections.projection_linf_ball``; ``scale`` must be
  non-negative.

  Args:
    tree: the pytree to project.
    scale: :math:`s`, the radius (default 1).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.projection_linf_ball({"w": jnp.array([-3.0, 0.5])})
    {'w': Array([-1. ,  0.5], dtype=float32)}
  """
  validation.check_that("scale", scale, lambda v: np.isfinite(v) & (v >= 0), "a finite number >= 0")
  lower = jax.tree.map(lambda x: jnp.full_like(x, -scale), tree)  # type: ignore[operator]  # a number
  upper = jax.tree.map(lambda x: jnp.full_like(x, scale), tree)
  return projection_box(tree, lower=lower, upper=upper)


def _inner(x: Any, y: Any) -> Any:
  return tree_math.tree_vdot(x, y)


def projection_vector(x: Any, a: Any) -> Any:
  r"""Onto the line through ``a``: :math:`P(x) = \frac{\langle x, a\rangle}{\langle a, a\rangle}\, a`.

  Same as ``optax.projections.projection_vector``.

  Args:
    x: the pytree to project.
    a: the direction, structured like ``x`` (not zero).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.projection_vector({"w": jnp.array([2.0, 1.0])}, {"w": jnp.array([1.0, 0.0])})
    {'w': Array([2., 0.], dtype=float32)}
  """
  return tree_math.tree_scale(_inner(x, a) / _inner(a, a), a)


def projection_hyperplane(x: Any, a: Any, b: jax.typing.ArrayLike) -> Any:
  r"""Onto the hyperplane :math:`\{y : \langle a, y\rangle = b\}`.

  .. math:: P(x) = x + \frac{b - \langle a, x\rangle}{\langle a, a\rangle}\, a

  Same as ``optax.projections.projection_hyperplane``.

  Args:
    x: the pytree to project.
    a: the normal, structured like ``x`` (not zero).
    b: the offset, a scalar.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.projection_hyperplane(jnp.array([2.0, 3.0]), jnp.array([1.0, 1.0]), 1.0)
    Array([0., 1.], dtype=float32)
  """
  step = (b - _inner(x, a)) / _inner(a, a)
  return tree_math.tree_add_scale(x, step, a)


def projection_halfspace(x: Any, a: Any, b: jax.typing.ArrayLike) -> Any:
  r"""Onto the halfspace :math:`\{y : \langle a, y\rangle \le b\}`: the hyperplane's step, only when outside.

  .. math:: P(x) = x + \frac{\min(b - \langle a, x\rangle, 0)}{\langle a, a\rangle}\, a

  Same as ``optax.projections.projection_halfspace``.

  Args:
    x: the pytree to project.
    a: the normal, structured like ``x`` (not zero).
    b: the offset, a scalar.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.projection_halfspace(jnp.array([2.0, 3.0]), jnp.array([1.0, 1.0]), 10.0)
    Array([2., 3.], dtype=float32)
  """
  step = (b - _inner(x, a)) / _inner(a, a)
  return tree_math.tree_add_scale(x, jnp.clip(step, max=0), a)
