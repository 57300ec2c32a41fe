"""What the line searches and L-BFGS share: inner products over pytrees and
the plumbing of ``value_fn``'s extra arguments.

The arithmetic is written once here so that the backtracking and zoom line
searches and :func:`~jaxopt_notes.scale_by_lbfgs` round alike (and as
``optax.tree``'s helpers do: inner products at ``Precision.HIGHEST``, partial
sums folded leaf by leaf from 0).
"""

from __future__ import annotations

import inspect
import operator
from typing import Any, Callable

import jax
import jax.numpy as jnp

__all__ = [
    "cast_like",
    "cond_print",
    "find_unique",
    "split_value_fn_kwargs",
    "tree_add_scale",
    "tree_real_vdot",
    "tree_scale",
    "tree_sq_norm",
    "tree_where",
    "value_dtype",
]


def _vdot(a, b):
  # HIGHEST: a bfloat16 pass on accelerators would make the curvature pairs useless.
  return jnp.vdot(jnp.asarray(a), jnp.asarray(b), precision=jax.lax.Precision.HIGHEST)


def tree_real_vdot(x: Any, y: Any, *, conj_y: bool = False) -> jax.Array:
  r"""``Re <x, y>`` over whole pytrees, :math:`\mathrm{Re} \sum_i \bar x_i\, y_i`.

  ``conj_y`` conjugates ``y`` first (the backtracking search's slope does).
  """
  if conj_y:
    y = jax.tree.map(jnp.conj, y)
  dots = jax.tree.map(_vdot, x, y)
  return jnp.real(jax.tree.reduce(operator.add, dots, initializer=0))


def tree_add_scale(x: Any, scalar: Any, y: Any) -> Any:
  """``x + scalar * y`` leaf by leaf; ``None`` leaves of ``x`` stay ``None``."""
  scalar = jnp.asarray(scalar)
  return jax.tree.map(
      lambda a, b: None if a is None else a + scalar * b, x, y, is_leaf=lambda a: a is None
  )


def tree_scale(scalar: Any, tree: Any) -> Any:
  """``scalar * tree`` leaf by leaf."""
  return jax.tree.map(lambda x: scalar * x, tree)


def tree_where(pred: Any, on_true: Any, on_false: Any) -> Any:
  """``jnp.where(pred, t, f)`` leaf by leaf (dtypes promote, unlike ``select_tree``)."""
  return jax.tree.map(lambda t, f: jnp.where(pred, t, f), on_true, on_false)


def tree_sq_norm(tree: Any) -> jax.Array:
  """``sum |x|^2`` over every leaf (complex leaves count ``re^2 + im^2``)."""
  squares = jax.tree.map(lambda x: jnp.square(x.real) + jnp.square(x.imag), tree)
  sums = jax.tree.map(jnp.sum, squares)
  return jnp.array(jax.tree.reduce(operator.add, sums, initializer=0))


def cast_like(tree: Any, other: Any) -> Any:
  """Casts each leaf of ``tree`` to the dtype of the matching leaf of ``other``.

  Leaves of ``other`` without a dtype (Python numbers) leave ``tree``'s as
  they are: the loop states below start from such numbers.
  """
  return jax.tree.map(lambda t, o: t.astype(o.dtype) if hasattr(o, "dtype") else t, tree, other)


def value_dtype(params: Any, owner: str) -> Any:
  """The real dtype of the loss for ``params``: that of the first leaf (its real part)."""
  leaves = jax.tree.leaves(params)
  if not leaves:
    raise ValueError(f"{owner} needs params with at least one array leaf; got {params!r}")
  return jnp.real(jnp.empty((), jnp.asarray(leaves[0]).dtype)).dtype


def split_value_fn_kwargs(value_fn: Callable[..., Any], extra_args: dict, owner: str) -> dict:
  """The extra keyword arguments that ``value_fn`` names; any other one raises.

  Raises:
    TypeError: naming the arguments ``value_fn`` does not take (a typo in a
      batch argument would otherwise be dropped and the loss evaluated on
      the wrong data).
  """
  names = set(inspect.signature(value_fn).parameters)
  unused = sorted(k for k in extra_args if k not in names)
  if unused:
    raise TypeError(
        f"Unexpected keyword arguments passed to `{owner}.update`: {unused} are not "
        "parameters of `value_fn`. Pass only the extra inputs `value_fn` takes "
        "(e.g. `update(..., value_fn=loss, batch=batch)` for `loss(params, batch)`)."
    )
  return {k: v for k, v in extra_args.items() if k in names}


def _is_namedtuple(x: Any) -> bool:
  return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _holds(node: Any, key: str) -> bool:
  return (_is_namedtuple(node) and key in node._fields) or (isinstance(node, dict) and key in node)


def _children(node: Any) -> list:
  return [getattr(node, f) for f in node._fields] if _is_namedtuple(node) else list(node.values())


def _find_all(tree: Any, key: str) -> list:
  """Every value stored under the field or dict key ``key``, at any depth of ``tree``."""
  found = []
  stop = lambda x: _holds(x, key) or _is_namedtuple(x)
  for node in jax.tree_util.tree_leaves(tree, is_leaf=stop):
    if _holds(node, key):
      found.append(node[key] if isinstance(node, dict) else getattr(node, key))
    if _holds(node, key) or _is_namedtuple(node):
      for child in _children(node):
        found.extend(_find_all(child, key))
  return found


def find_unique(tree: Any, key: str) -> Any:
  """The one value stored under ``key`` in ``tree`` (as ``optax.tree.get``), or ``None``.

  Raises:
    KeyError: when ``key`` is stored more than once.
  """
  found = _find_all(tree, key)
  if len(found) > 1:
    raise KeyError(f"the state holds {len(found)} entries named {key!r}; expected at most one")
  return found[0] if found else None


def cond_print(condition: Any, message: str, **values: Any) -> None:
  """``jax.debug.print(message)`` when the traced ``condition`` holds."""
  jax.lax.cond(
      condition,
      lambda: jax.debug.print(message, **values, ordered=True),
      lambda: None,
  )
