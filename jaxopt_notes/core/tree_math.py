r"""Arithmetic and reductions over whole pytrees: the ``optax.tree`` vocabulary.

Every optimizer here is written leaf by leaf, but the notes write their
rules on one vector ``w``: ``w - eta g``, ``<g, d>``, ``||g||``. These
helpers are those vector operations on a pytree, leaf for leaf:

* elementwise: :func:`tree_add`, :func:`tree_sub`, :func:`tree_mul`,
  :func:`tree_div`, :func:`tree_scale`, :func:`tree_add_scale`
  (``x + a y``), :func:`tree_clip`, :func:`tree_where`, :func:`tree_conj`,
  :func:`tree_real`, :func:`tree_batch_shape`;
* reductions to one scalar: :func:`tree_vdot` (``<x, y>``),
  :func:`tree_sum`, :func:`tree_max`, :func:`tree_min`, :func:`tree_size`,
  :func:`tree_norm` (``||x||_1``, ``||x||_2``, ``||x||_inf``),
  :func:`tree_allclose`.

Same names (without ``tree_``, under :mod:`jaxopt_notes.tree`), signatures
and numbers as optax 0.2.8's ``optax.tree``. ``None`` leaves are empty
subtrees, as in ``jax.tree.map``: they stay ``None`` and count for nothing.

May import: nothing of jaxopt_notes (:mod:`jaxopt_notes.core.tree`
re-exports this module's functions, so it cannot import that one).
"""

from __future__ import annotations

import functools
import operator
from typing import Any, Optional

import jax
import jax.numpy as jnp

__all__ = [
    "tree_add",
    "tree_add_scale",
    "tree_allclose",
    "tree_batch_shape",
    "tree_clip",
    "tree_conj",
    "tree_div",
    "tree_max",
    "tree_min",
    "tree_mul",
    "tree_norm",
    "tree_real",
    "tree_scale",
    "tree_size",
    "tree_sub",
    "tree_sum",
    "tree_vdot",
    "tree_where",
]


def tree_add(tree_x: Any, tree_y: Any, *other_trees: Any) -> Any:
  r"""Leafwise sum of two or more pytrees, :math:`x + y + \dots`.

  Same as ``optax.tree.add`` (each sum starts from ``0``, as Python's
  ``sum``: boolean leaves add up to integers).

  Args:
    tree_x: first pytree.
    tree_y: second pytree, structured like ``tree_x``.
    *other_trees: more pytrees to add, structured alike.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.tree.add({"a": jnp.array([1.0, 2.0])}, {"a": jnp.array([0.5, 0.5])}, {"a": 1.0})
    {'a': Array([2.5, 3.5], dtype=float32)}
  """
  return jax.tree.map(lambda *leaves: sum(leaves), tree_x, tree_y, *other_trees)


def tree_sub(tree_x: Any, tree_y: Any) -> Any:
  r"""Leafwise difference :math:`x - y`. Same as ``optax.tree.sub``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.tree.sub({"a": jnp.array([1.0, 2.0])}, {"a": jnp.array([0.5, 0.5])})
    {'a': Array([0.5, 1.5], dtype=float32)}
  """
  return jax.tree.map(operator.sub, tree_x, tree_y)


def tree_mul(tree_x: Any, tree_y: Any) -> Any:
  r"""Leafwise (Hadamard) product :math:`x \odot y`. Same as ``optax.tree.mul``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.tree.mul({"a": jnp.array([1.0, 2.0])}, {"a": jnp.array([3.0, 0.5])})
    {'a': Array([3., 1.], dtype=float32)}
  """
  return jax.tree.map(operator.mul, tree_x, tree_y)


def tree_div(tree_x: Any, tree_y: Any) -> Any:
  r"""Leafwise quotient :math:`x / y`. Same as ``optax.tree.div``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.tree.div({"a": jnp.array([1.0, 2.0])}, {"a": jnp.array([4.0, 0.5])})
    {'a': Array([0.25, 4.  ], dtype=float32)}
  """
  return jax.tree.map(operator.truediv, tree_x, tree_y)


def tree_scale(scalar: jax.typing.ArrayLike, tree: Any) -> Any:
  r"""Every leaf times one scalar, :math:`a\, x`. Same as ``optax.tree.scale``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.tree.scale(0.5, {"a": jnp.array([1.0, -4.0])})
    {'a': Array([ 0.5, -2. ], dtype=float32)}
  """
  return jax.tree.map(lambda leaf: scalar * leaf, tree)


def tree_add_scale(tree_x: Any, scalar: jax.typing.ArrayLike, tree_y: Any) -> Any:
  r"""The step of every first-order rule, :math:`x + a\, y`, leaf by leaf.

  ``x - eta g`` of gradient descent (notes 000) is ``add_scale(x, -eta, g)``.
  ``scalar`` is made an array first, so a Python float and a float32 array
  give the same dtype; a ``None`` leaf of ``tree_x`` stays ``None``. Same as
  ``optax.tree.add_scale``.

  Args:
    tree_x: the pytree added to.
    scalar: the factor :math:`a`.
    tree_y: the pytree scaled, structured like ``tree_x``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.tree.add_scale({"w": jnp.array([1.0, 2.0])}, -0.1, {"w": jnp.array([10.0, -10.0])})
    {'w': Array([0., 3.], dtype=float32)}
  """
  scalar = jnp.asarray(scalar)
  return jax.tree.map(
      lambda x, y: None if x is None else x + scalar * y,
      tree_x, tree_y, is_leaf=lambda x: x is None,
  )


def _leaf_vdot(a: Any, b: Any) -> jax.Array:
  a, b = jnp.asarray(a), jnp.asarray(b)
  if a.shape != b.shape:
    raise ValueError(f"tree_vdot needs leaves of equal shapes; got {a.shape} and {b.shape}")
  if jnp.iscomplexobj(a) or jnp.iscomplexobj(b):
    # optax 0.2.8 takes jnp.vdot on JAX >= 0.10 (it compares version strings);
    # a tensordot rounds complex products differently, so these keep vdot's.
    return jnp.vdot(a, b, precision=jax.lax.Precision.HIGHEST)
  # Real leaves: a contraction over every axis instead of ravel + dot, the
  # same numbers without the reshape that gathers a sharded leaf.
  mesh = jax.typeof(a).sharding.mesh
  replicated = jax.sharding.NamedSharding(mesh, jax.P()) if not mesh.empty and mesh.are_all_axes_explicit else None
  return jnp.tensordot(a, b, a.ndim, precision=jax.lax.Precision.HIGHEST, out_sharding=replicated)


def tree_vdot(tree_x: Any, tree_y: Any) -> jax.typing.ArrayLike:
  r"""The inner product of two pytrees, :math:`\langle x, y\rangle = \sum_i \bar x_i y_i`.

  The quantity of notes 002's second-order expansion,
  ``f(x - eps g) ~ f(x) - eps <g, g> + ...``. Complex leaves of ``tree_x``
  are conjugated; each leaf's product runs at ``Precision.HIGHEST`` and the
  leaves' products are added in leaf order from ``0``. Same as
  ``optax.tree.vdot``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.tree.vdot({"a": jnp.array([1.0, 2.0]), "b": 3.0}, {"a": jnp.array([-1.0, 1.0]), "b": 2.0})
    Array(7., dtype=float32)
  """
  products = jax.tree.map(_leaf_vdot, tree_x, tree_y)
  return jax.tree.reduce(operator.add, products, initializer=0)


def tree_sum(tree: Any, associative_reduction: bool = False) -> jax.typing.ArrayLike:
  r"""Sum of every element of every leaf, :math:`\sum_i \sum_j x_{ij}`.

  Each leaf is summed, then the leaf sums are added in leaf order from ``0``
  (an empty tree gives ``0``). ``associative_reduction=True`` adds them as a
  balanced tree instead (``jax.tree.reduce_associative``), which compiles
  faster for very many leaves and may round differently. Same as
  ``optax.tree.sum``.

  Args:
    tree: a pytree.
    associative_reduction: add the leaf sums as a tree (default ``False``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.tree.sum({"a": jnp.array([1.0, 2.0]), "b": jnp.ones((2, 2))})
    Array(7., dtype=float32)
  """
  sums = jax.tree.map(jnp.sum, tree)
  if not associative_reduction:
    return jax.tree.reduce(operator.add, sums, initializer=0)
  if not hasattr(jax.tree, "reduce_associative"):
    raise ValueError(
        "`associative_reduction=True` needs jax.tree.reduce_associative (JAX >= 0.6.0); "
        "upgrade JAX or pass associative_reduction=False"
    )
  return jax.tree.reduce_associative(operator.add, sums, identity=0)


def _extreme(tree: Any, leaf_fn, combine, start: float) -> jax.typing.ArrayLike:
  # Empty leaves have no max: they drop out (None is an empty subtree).
  per_leaf = jax.tree.map(lambda x: None if jnp.size(x) == 0 else leaf_fn(x), tree)
  return jax.tree.reduce(combine, per_leaf, initializer=start)


def tree_max(tree: Any) -> jax.typing.ArrayLike:
  r"""Largest element of the whole pytree, :math:`\max_{ij} x_{ij}`.

  Empty leaves are skipped; an empty tree gives ``-inf``. Same as
  ``optax.tree.max``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.tree.max({"a": jnp.array([1.0, 5.0]), "b": jnp.array(-2.0)})
    Array(5., dtype=float32)
  """
  return _extreme(tree, jnp.max, jnp.maximum, -float("inf"))


def tree_min(tree: Any) -> jax.typing.ArrayLike:
  r"""Smallest element of the whole pytree, :math:`\min_{ij} x_{ij}`.

  Empty leaves are skipped; an empty tree gives ``inf``. Same as
  ``optax.tree.min``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.tree.min({"a": jnp.array([1.0, 5.0]), "b": jnp.array(-2.0)})
    Array(-2., dtype=float32)
  """
  return _extreme(tree, jnp.min, jnp.minimum, float("inf"))


def tree_size(tree: Any) -> int:
  r"""Number of elements in all leaves together (a Python int). Same as ``optax.tree.size``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.tree.size({"w": jnp.ones((3, 4)), "b": jnp.ones(4), "frozen": None})
    16
  """
  return sum(jnp.size(leaf) for leaf in jax.tree.leaves(tree))


def tree_conj(tree: Any) -> Any:
  r"""Leafwise complex conjugate :math:`\bar x`. Same as ``optax.tree.conj``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.tree.conj({"z": jnp.array([1.0 + 2.0j])})
    {'z': Array([1.-2.j], dtype=complex64)}
  """
  return jax.tree.map(jnp.conj, tree)


def tree_real(tree: Any) -> Any:
  r"""Leafwise real part :math:`\mathrm{Re}\, x`. Same as ``optax.tree.real``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.tree.real({"z": jnp.array([1.0 + 2.0j])})
    {'z': Array([1.], dtype=float32)}
  """
  return jax.tree.map(jnp.real, tree)


def _abs_sq(leaf: Any) -> Any:
  return jnp.square(leaf.real) + jnp.square(leaf.imag)


def tree_norm(
    tree: Any,
    ord: int | str | float | None = None,
    squared: bool = False,
) -> jax.Array:
  r"""The vector norm of all leaves together, as if they were one flat vector.

  .. math::
     \|x\|_2 = \Big(\sum_i |x_i|^2\Big)^{1/2}, \quad
     \|x\|_1 = \sum_i |x_i|, \quad \|x\|_\infty = \max_i |x_i|

  ``ord`` is ``None`` or ``2`` (default, the global norm of gradient
  clipping), ``1``, or ``inf`` (also ``"inf"``, ``"infinity"``);
  ``squared=True`` returns the norm's square (for ``ord=2`` without the
  square root, so without its rounding). Complex leaves count
  :math:`|x|^2 = \mathrm{Re}^2 + \mathrm{Im}^2`. Same as ``optax.tree.norm``.

  Args:
    tree: a pytree.
    ord: which norm (default ``None``: 2).
    squared: return the square (default ``False``).

  Raises:
    ValueError: for another ``ord``, naming it.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> g = {"a": jnp.array([3.0, -4.0]), "b": jnp.array(12.0)}
    >>> jn.tree.norm(g), jn.tree.norm(g, ord=1), jn.tree.norm(g, ord="inf")
    (Array(13., dtype=float32), Array(19., dtype=float32), Array(12., dtype=float32))
  """
  if ord is None or ord == 2:
    total = tree_sum(jax.tree.map(_abs_sq, tree))
    return jnp.array(total if squared else jnp.sqrt(total))
  if ord == 1:
    value = tree_sum(jax.tree.map(jnp.abs, tree))
  elif ord == jnp.inf or ord in ("inf", "infinity"):
    value = tree_max(jax.tree.map(jnp.abs, tree))
  else:
    raise ValueError(f"`ord` must be None, 1, 2, inf, 'inf' or 'infinity'; got {ord!r}")
  return jnp.array(_abs_sq(value) if squared else value)


def tree_batch_shape(tree: Any, shape: tuple[int, ...] = ()) -> Any:
  r"""Each leaf broadcast to ``(*shape, *leaf.shape)``: a batch of copies.

  Same as ``optax.tree.batch_shape``.

  Args:
    tree: a pytree.
    shape: the leading batch dimensions to add (default ``()``: none).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.tree.batch_shape({"w": jnp.ones(3)}, (2,))["w"].shape
    (2, 3)
  """
  return jax.tree.map(lambda x: jnp.broadcast_to(x, (*shape, *jnp.shape(x))), tree)


def tree_clip(
    tree: Any,
    min_value: Optional[jax.typing.ArrayLike] = None,
    max_value: Optional[jax.typing.ArrayLike] = None,
) -> Any:
  r"""Every element clamped to :math:`[\text{min}, \text{max}]`.

  A ``None`` bound leaves that side open. The box projection of
  :mod:`jaxopt_notes.projections` with scalar bounds. Same as
  ``optax.tree.clip``.

  Args:
    tree: a pytree.
    min_value: lower bound (default ``None``: none).
    max_value: upper bound (default ``None``: none).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.tree.clip({"a": jnp.array([-2.0, 0.5, 3.0])}, -1.0, 1.0)
    {'a': Array([-1. ,  0.5,  1. ], dtype=float32)}
  """
  return jax.tree.map(lambda x: jnp.clip(x, min_value, max_value), tree)


def tree_where(condition: Any, tree_x: Any, tree_y: Any) -> Any:
  r"""Leafwise ``jnp.where(condition, x, y)``: ``x`` where ``condition`` holds, else ``y``.

  ``condition`` is one boolean (or an array broadcasting against every
  leaf). Same as ``optax.tree.where``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.tree.where(jnp.array(False), {"a": jnp.ones(2)}, {"a": jnp.zeros(2)})
    {'a': Array([0., 0.], dtype=float32)}
  """
  return jax.tree.map(lambda x, y: jnp.where(condition, x, y), tree_x, tree_y)


def tree_allclose(
    a: Any,
    b: Any,
    rtol: jax.typing.ArrayLike = 1e-05,
    atol: jax.typing.ArrayLike = 1e-08,
    equal_nan: bool = False,
) -> Any:
  r"""``jnp.allclose`` on every pair of leaves, all of them: :math:`|a - b| \le \text{atol} + \text{rtol}\,|b|`.

  Returns a boolean array (``True`` for trees without leaves). Same as
  ``optax.tree.allclose``.

  Args:
    a: a pytree.
    b: a pytree structured like ``a``.
    rtol: relative tolerance (default 1e-5).
    atol: absolute tolerance (default 1e-8).
    equal_nan: count NaN as equal to NaN (default ``False``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> bool(jn.tree.allclose({"a": jnp.array([1.0, 2.0])}, {"a": jnp.array([1.0, 2.0 + 1e-6])}))
    True
  """
  close = jax.tree.map(
      lambda x, y: jnp.allclose(x, y, rtol=rtol, atol=atol, equal_nan=equal_nan), a, b
  )
  return functools.reduce(operator.and_, jax.tree.leaves(close), True)
