"""Finding, replacing and making leaves of pytrees (optimizer states above all).

An optimizer state is a tree of NamedTuples (``ScaleByAdamState(count, mu,
nu)``) inside tuples and dicts. These helpers reach into it by name:

* :func:`tree_get_all_with_path` / :func:`tree_get` find the values under a
  dict key, a NamedTuple field, or a NamedTuple's class name;
* :func:`tree_set` returns a copy with such values replaced;
* :func:`tree_map_params` maps a function over every copy of the params
  tree inside a state (the moments), for example to build sharding specs;
* :func:`tree_dtype`, :func:`tree_random_like`, :func:`tree_split_key_like`
  and :func:`tree_unwrap_random_key_data` read dtypes and make random trees.

Paths are tuples of ``jax.tree_util`` key entries, except that a step into
a NamedTuple field is a :class:`NamedTupleKey`, which also names the tuple's
class, so ``mu`` of Adam's state and ``mu`` of another state can be told
apart. Same names (without ``tree_``, under :mod:`jaxopt_notes.tree`),
signatures, paths and results as optax 0.2.8's ``optax.tree``.

May import: :mod:`jaxopt_notes.core.validation` only.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any, Callable, Optional, Union

import jax
import jax.numpy as jnp

from jaxopt_notes.core import validation

__all__ = [
    "NamedTupleKey",
    "tree_dtype",
    "tree_get",
    "tree_get_all_with_path",
    "tree_map_params",
    "tree_random_like",
    "tree_set",
    "tree_split_key_like",
    "tree_unwrap_random_key_data",
]

KeyPath = tuple[Any, ...]
Filtering = Callable[[KeyPath, Any], bool]


@dataclasses.dataclass(frozen=True)
class NamedTupleKey:
  """A path entry for field ``name`` of a NamedTuple of class ``tuple_name``.

  Prints as ``tuple_name.name``, so ``jax.tree_util.keystr`` of a path reads
  ``ScaleByAdamState.mu['w']``. Same fields as ``optax.tree_utils.NamedTupleKey``.
  """

  tuple_name: str
  name: str

  def __str__(self) -> str:
    return f"{self.tuple_name}.{self.name}"


def _is_named_tuple(node: Any) -> bool:
  return isinstance(node, tuple) and hasattr(node, "_fields")


def _named_leaves(tree: Any, is_leaf: Optional[Callable[[Any], bool]] = None) -> list[tuple[KeyPath, Any]]:
  """``jax.tree_util.tree_leaves_with_path``, stepping into NamedTuples with :class:`NamedTupleKey`."""
  stop = is_leaf or (lambda _: False)
  found = []
  for path, node in jax.tree_util.tree_leaves_with_path(tree, is_leaf=lambda x: stop(x) or _is_named_tuple(x)):
    if stop(node) or not _is_named_tuple(node):
      found.append((path, node))
      continue
    for field in node._fields:
      entry = NamedTupleKey(type(node).__name__, field)
      found += [((*path, entry, *sub), leaf) for sub, leaf in _named_leaves(getattr(node, field), is_leaf)]
  return found


def _has_any_key(node: Any, keys: tuple[Any, ...]) -> bool:
  """``node`` is a dict holding one of ``keys``, or a NamedTuple with one as a field or as its class name."""
  if _is_named_tuple(node):
    return type(node).__name__ in keys or any(key in node._fields for key in keys)
  return isinstance(node, dict) and any(key in node for key in keys)


def _children(path: KeyPath, node: Any) -> list[tuple[KeyPath, Any]]:
  if _is_named_tuple(node):
    name = type(node).__name__
    return [((*path, NamedTupleKey(name, f)), getattr(node, f)) for f in node._fields]
  if isinstance(node, dict):
    return [((*path, jax.tree_util.DictKey(k)), v) for k, v in node.items()]
  raise ValueError(f"only dicts and NamedTuples have children by key; got {type(node)}")


def _entry(path: KeyPath, node: Any, key: Any) -> tuple[KeyPath, Any]:
  """The value of ``node`` that ``key`` names, with its path (the node itself for a class name)."""
  if _is_named_tuple(node):
    if key == type(node).__name__:
      return path, node
    return (*path, NamedTupleKey(type(node).__name__, key)), getattr(node, key)
  if isinstance(node, dict) and key in node:
    return (*path, jax.tree_util.DictKey(key)), node[key]
  return path, node


def _find_all(tree: Any, key: Any) -> list[tuple[KeyPath, Any]]:
  has_key = functools.partial(_has_any_key, keys=(key,))
  holders = [(p, n) for p, n in _named_leaves(tree, has_key) if has_key(n)]
  found = [_entry(p, n, key) for p, n in holders]
  # A holder's own values may hold the key again (a state inside a state).
  for path, node in holders:
    for child_path, child in _children(path, node):
      found += [((*child_path, *sub), value) for sub, value in _find_all(child, key)]
  return found


def tree_get_all_with_path(tree: Any, key: Any, filtering: Optional[Filtering] = None) -> list[tuple[KeyPath, Any]]:
  """Every ``(path, value)`` of ``tree`` under ``key``: a dict key, a NamedTuple field or class name.

  Outer matches come first (in leaf order), then matches inside them. With
  ``filtering``, only pairs where ``filtering(path, value)`` holds are kept.
  Same as ``optax.tree.get_all_with_path``.

  Args:
    tree: the pytree to search (an optimizer state, say).
    key: the dict key, field name or NamedTuple class name to find.
    filtering: optional ``(path, value) -> bool`` (default ``None``).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> state = jn.adam(1e-3).init({"w": jnp.zeros(2)})
    >>> [jax.tree_util.keystr(p) for p, _ in jn.tree.get_all_with_path(state, "mu")]
    ['[0]ScaleByAdamState.mu']
  """
  found = _find_all(tree, key)
  if filtering:
    found = [(path, value) for path, value in found if filtering(path, value)]
  return found


def tree_get(tree: Any, key: Any, default: Optional[Any] = None, filtering: Optional[Filtering] = None) -> Any:
  """The one value of ``tree`` under ``key`` (see :func:`tree_get_all_with_path`), or ``default``.

  Same as ``optax.tree.get``.

  Args:
    tree: the pytree to search.
    key: the dict key, field name or NamedTuple class name to find.
    default: returned when nothing matches (default ``None``).
    filtering: optional ``(path, value) -> bool`` (default ``None``).

  Raises:
    KeyError: if more than one value matches.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> state = jn.adam(1e-3).init({"w": jnp.zeros(2)})
    >>> jn.tree.get(state, "count")
    Array(0, dtype=int32)
  """
  found = tree_get_all_with_path(tree, key, filtering=filtering)
  if len(found) > 1:
    raise KeyError(f"Found multiple values for '{key}' in {tree}.")
  return found[0][1] if found else default


def _plain_key(entry: Any) -> Union[int, str]:
  if isinstance(entry, jax.tree_util.DictKey):
    if isinstance(entry.key, (str, int)):
      return entry.key
    raise KeyError(f"only str and int dict keys can be set by name; got {entry.key!r}")
  if isinstance(entry, (jax.tree_util.FlattenedIndexKey, jax.tree_util.SequenceKey)):
    return entry.key if isinstance(entry, jax.tree_util.FlattenedIndexKey) else entry.idx
  if isinstance(entry, (jax.tree_util.GetAttrKey, NamedTupleKey)):
    return entry.name
  raise KeyError(f"Tree key '{entry}' of type '{type(entry)}' not valid.")


def tree_set(tree: Any, filtering: Optional[Filtering] = None, /, **kwargs: Any) -> Any:
  """A copy of ``tree`` with the values under each key of ``kwargs`` replaced.

  A key names a dict key, a NamedTuple field, or a NamedTuple's class name
  (which replaces the whole tuple). ``filtering(path, value)`` restricts
  which matches are replaced. Inside a matched dict or NamedTuple the search
  goes on through dicts and tuples, not lists (as in optax). Same as
  ``optax.tree.set``.

  Args:
    tree: the pytree to copy.
    filtering: optional ``(path, value) -> bool``, positional (default ``None``).
    **kwargs: ``key=new_value`` for each value to replace.

  Raises:
    KeyError: if some key matches nothing (given ``filtering``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> state = jn.adam(1e-3).init({"w": jnp.zeros(2)})
    >>> jn.tree.get(jn.tree.set(state, count=jnp.asarray(7)), "count")
    Array(7, dtype=int32, weak_type=True)
  """
  for key in kwargs:
    if not tree_get_all_with_path(tree, key, filtering):
      given = " given the filtering operation" if filtering else ""
      raise KeyError(f"Found no values matching '{key}'{given} in {tree}")
  has_any = functools.partial(_has_any_key, keys=tuple(kwargs))
  wanted = lambda path, value: filtering is None or filtering(path, value)

  def replace(path: KeyPath, node: Any) -> Any:
    if not has_any(node):
      return node
    if _is_named_tuple(node) and type(node).__name__ in kwargs and wanted(path, node):
      return kwargs[type(node).__name__]
    new: dict[Any, Any] = {}
    for child_path, child in _children(path, node):
      key = _plain_key(child_path[-1])
      if key in kwargs and wanted(child_path, child):
        new[key] = kwargs[key]
      elif isinstance(child, (dict, list, tuple)):
        new[key] = replace(child_path, child)
      else:
        new[key] = child
    return node._replace(**new) if _is_named_tuple(node) else new

  treedef = jax.tree.structure(tree, is_leaf=has_any)
  return jax.tree.unflatten(treedef, [replace(path, node) for path, node in _named_leaves(tree, has_any)])


@jax.tree_util.register_pytree_node_class
class _ParamsSlot:
  """Stands for the params in a state built by ``init``: a pytree node without leaves."""

  def tree_flatten(self):
    return (), None

  @classmethod
  def tree_unflatten(cls, aux, children):
    del aux, children
    return cls()


def tree_map_params(
    initable: Any,
    f: Callable[..., Any],
    state: Any,
    /,
    *rest: Any,
    transform_non_params: Optional[Callable[..., Any]] = None,
    is_leaf: Optional[Callable[[Any], bool]] = None,
) -> Any:
  """Applies ``f`` to every copy of the params tree inside an optimizer ``state``.

  ``initable`` (a transform with ``init``, or an ``init`` function) is run
  on a stand-in for the params; wherever the stand-in lands in its state,
  the same place of ``state`` holds a params-shaped tree (a moment), and is
  replaced by ``jax.tree.map(f, that, *rest, is_leaf=is_leaf)``. Every other
  leaf (step counts, ...) goes through ``transform_non_params`` if given,
  else is kept. Same as ``optax.tree.map_params``.

  Args:
    initable: a ``GradientTransformation`` (anything with ``init``) or a
      callable ``params -> state``.
    f: applied leafwise to each params-shaped subtree and ``*rest``.
    state: the state to map over, made by ``initable``'s init.
    *rest: more trees shaped like the params, passed to ``f``.
    transform_non_params: optional function for the other leaves.
    is_leaf: passed to ``jax.tree.map`` over the params trees.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.adam(1e-3)
    >>> state = tx.init({"w": jnp.zeros(2)})
    >>> specs = jn.tree.map_params(tx, lambda x: x.shape, state, transform_non_params=lambda _: None)
    >>> specs[0].mu, specs[0].count
    ({'w': (2,)}, None)
  """
  if not hasattr(initable, "init"):
    validation.check_callable("initable", initable, "a transform with `init` or an init function")
  validation.check_callable("f", f)
  init = initable.init if hasattr(initable, "init") else initable
  slots = init(_ParamsSlot())

  def visit(slot_or_value, value):
    if isinstance(slot_or_value, _ParamsSlot):
      return jax.tree.map(f, value, *rest, is_leaf=is_leaf)
    return value if transform_non_params is None else transform_non_params(value)

  return jax.tree.map(visit, slots, state, is_leaf=lambda v: isinstance(v, _ParamsSlot))


def _leaf_dtype(x: Any) -> Any:
  return jnp.asarray(x).dtype


def _lower(a: Any, b: Any) -> Any:
  """The one of two dtypes the other promotes from (``a <= b`` iff ``promote(a, b) == b``)."""
  joined = jnp.promote_types(a, b)
  if joined == a:
    return b
  if joined == b:
    return a
  raise ValueError(f"dtypes {a} and {b} are not ordered: neither promotes to the other (they join at {joined})")


def _higher(a: Any, b: Any) -> Any:
  return b if _lower(a, b) == a else a


def tree_dtype(tree: Any, mixed_dtype_handler: Optional[str] = None) -> Any:
  """The dtype of a tree's leaves.

  ``mixed_dtype_handler`` says what to do when the leaves disagree: ``None``
  (default) raises, ``"promote"`` gives ``jnp.promote_types`` of them all,
  ``"highest"`` / ``"lowest"`` the greatest / least under "promotes to"
  (raising for dtypes neither of which promotes to the other, such as
  ``int32`` and ``uint32``). A tree without leaves gives JAX's default float
  dtype. Same as ``optax.tree.dtype``.

  Args:
    tree: a pytree.
    mixed_dtype_handler: ``None``, ``"promote"``, ``"highest"`` or ``"lowest"``.

  Raises:
    ValueError: for mixed dtypes with ``None`` (naming each path), for
      unordered dtypes, or for another ``mixed_dtype_handler``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tree = {"a": jnp.ones(2, jnp.float16), "b": jnp.ones(2, jnp.float32)}
    >>> jn.tree.dtype(tree, "lowest"), jn.tree.dtype(tree, "highest")
    (dtype('float16'), dtype('float32'))
  """
  leaves = jax.tree.leaves(tree)
  if not leaves:
    return jnp.asarray(leaves).dtype
  dtypes = [_leaf_dtype(x) for x in leaves]
  if mixed_dtype_handler is None:
    first = dtypes[0]
    wrong = [
        f"Expected dtype={first} for {jax.tree_util.keystr(path)} but got {_leaf_dtype(x)}."
        for path, x in jax.tree_util.tree_leaves_with_path(tree) if _leaf_dtype(x) != first
    ]
    if wrong:
      raise ValueError("\n".join(wrong))
    return first
  pick = {"promote": jnp.promote_types, "highest": _higher, "lowest": _lower}.get(mixed_dtype_handler)
  if pick is None:
    raise ValueError(
        f"`mixed_dtype_handler` must be None, 'promote', 'highest' or 'lowest'; got {mixed_dtype_handler!r}"
    )
  return functools.reduce(pick, dtypes)


def tree_split_key_like(rng_key: jax.Array, target_tree: Any) -> Any:
  """One fresh key per leaf of ``target_tree``: ``jax.random.split`` into a tree shaped like it.

  Same as ``optax.tree.split_key_like``.

  Examples:
    >>> import jax
    >>> import jaxopt_notes as jn
    >>> keys = jn.tree.split_key_like(jax.random.key(0), {"a": 1.0, "b": (2.0, 3.0)})
    >>> jax.tree.structure(keys)
    PyTreeDef({'a': *, 'b': (*, *)})
  """
  treedef = jax.tree.structure(target_tree)
  return jax.tree.unflatten(treedef, jax.random.split(rng_key, len(jax.tree.leaves(target_tree))))


def _takes_out_sharding(sampler: Callable[..., Any]) -> bool:
  try:
    return "out_sharding" in inspect.signature(sampler).parameters
  except (TypeError, ValueError):  # a builtin or C callable without a signature
    return False


def tree_random_like(
    rng_key: jax.Array,
    target_tree: Any,
    sampler: Callable[..., Any] = jax.random.normal,
    dtype: Optional[Any] = None,
) -> Any:
  r"""Random leaves shaped like ``target_tree``'s: ``sampler(key_i, leaf.shape, dtype)``.

  Leaf ``i`` gets key ``i`` of :func:`tree_split_key_like`, the dtype
  ``dtype`` or else the leaf's, and (when ``sampler`` takes
  ``out_sharding``) the leaf's sharding. The perturbation of noisy-gradient
  methods, :math:`g + \sigma \xi`. Same as ``optax.tree.random_like``.

  Args:
    rng_key: a PRNG key.
    target_tree: the tree to imitate; its leaves must be arrays.
    sampler: ``(key, shape, dtype) -> array`` (default ``jax.random.normal``).
    dtype: dtype of the samples (default ``None``: each leaf's).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> noise = jn.tree.random_like(jax.random.key(0), {"w": jnp.zeros((2, 3))})
    >>> noise["w"].shape, noise["w"].dtype
    ((2, 3), dtype('float32'))
  """
  validation.check_callable("sampler", sampler, "a sampler (key, shape, dtype) -> array")
  keys = tree_split_key_like(rng_key, target_tree)
  if _takes_out_sharding(sampler):
    draw = lambda leaf, key: sampler(key, leaf.shape, dtype or leaf.dtype, out_sharding=jax.typeof(leaf).sharding)
  else:
    draw = lambda leaf, key: sampler(key, leaf.shape, dtype or leaf.dtype)
  return jax.tree.map(draw, target_tree, keys)


def tree_unwrap_random_key_data(input_tree: Any) -> Any:
  """Typed PRNG key leaves replaced by their raw ``jax.random.key_data`` (for comparing states).

  Other leaves are kept. Same as ``optax.tree.unwrap_random_key_data``.

  Examples:
    >>> import jax
    >>> import jaxopt_notes as jn
    >>> jn.tree.unwrap_random_key_data({"key": jax.random.key(0), "x": 1.0})
    {'key': Array([0, 0], dtype=uint32), 'x': 1.0}
  """

  def unwrap(x):
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      return jax.random.key_data(x)
    return x

  return jax.tree.map(unwrap, input_tree)
