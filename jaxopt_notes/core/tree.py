"""Pytree helpers shared by every transform.

The moment updates here are the notes' formulas written once, over whole
pytrees (notes 000 and 004):

* exponentially weighted average, ``V_t = beta V_{t-1} + (1 - beta) theta_t``
  (:func:`tree_update_moment`),
* its bias correction ``V_t / (1 - beta^t)`` (:func:`bias_correction`),
* the running maximum used by Adamax (:func:`tree_update_infinity_moment`).

Every multi-tree map goes through :func:`tree_map_checked`, so a caller whose
``updates``, ``state`` or ``params`` disagree in structure gets one error that
names the first differing path instead of a bare tree-structure mismatch.

This module is also the namespace :mod:`jaxopt_notes.tree`, with every name
of ``optax.tree`` (optax 0.2.8): ``jn.tree.add``, ``jn.tree.norm``,
``jn.tree.get``, ... The arithmetic lives in :mod:`jaxopt_notes.core.tree_math`,
the look-ups in :mod:`jaxopt_notes.core.tree_access`; both are bound here at
the end under optax's short names. Four of those names (``sum``, ``max``,
``min``, ``set``) are builtins, so no code in this module calls the builtins
of those names (a test checks it).
"""

from __future__ import annotations

import functools
import numbers
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.shard_alike import shard_alike as _shard_alike

from jaxopt_notes.core import tree_access, tree_math

__all__ = [
    "abs_sq",
    "apply_updates",
    "bias_correction",
    "check_params_tree",
    "check_tree_like",
    "describe_difference",
    "global_norm",
    "placed_like",
    "safe_increment",
    "safe_int32_increment",
    "tree_bias_correction",
    "tree_cast",
    "tree_cast_like",
    "tree_full_like",
    "tree_map_checked",
    "tree_ones_like",
    "tree_update_infinity_moment",
    "tree_update_moment",
    "tree_update_moment_per_elem_norm",
    "tree_zeros_like",
    # optax.tree's names (bound at the end of this module)
    "NamedTupleKey",
    "add", "add_scale", "allclose", "batch_shape", "cast", "cast_like", "clip",
    "conj", "div", "dtype", "full_like", "get", "get_all_with_path",
    "map_params", "max", "min", "mul", "norm", "ones_like", "random_like",
    "real", "scale", "set", "size", "split_key_like", "sub", "sum",
    "unwrap_random_key_data", "update_infinity_moment", "update_moment",
    "update_moment_per_elem_norm", "vdot", "where", "zeros_like",
]


def _is_none(x: Any) -> bool:
  return x is None


def _is_array_like(x: Any) -> bool:
  if isinstance(x, (jax.Array, np.ndarray, np.generic, numbers.Number)):
    return True
  # jax.ShapeDtypeStruct and other abstract arrays (eval_shape, sharding).
  return hasattr(x, "shape") and hasattr(x, "dtype")


def check_params_tree(tree: Any, name: str = "params") -> None:
  """Raises ``TypeError`` unless every leaf of ``tree`` is an array or number.

  Containers (dict, list, tuple, NamedTuple, registered pytree nodes) and
  ``None`` (an empty subtree) are accepted anywhere. The error names the path
  of the first bad leaf, so a stray string or custom object is easy to find.
  """
  leaves = jax.tree_util.tree_leaves_with_path(tree)
  for path, leaf in leaves:
    if not _is_array_like(leaf):
      where = jax.tree_util.keystr(path) or "<root>"
      raise TypeError(
          f"`{name}` must be a pytree whose leaves are arrays or numbers; the "
          f"leaf at {name}{where if where != '<root>' else ''} is a "
          f"{type(leaf).__name__} ({leaf!r:.60}). Register custom classes "
          "with jax.tree_util.register_pytree_node or convert them to arrays."
      )


def describe_difference(a: Any, b: Any, is_leaf=None) -> str:
  """Describes where two pytrees first differ in structure (for error messages)."""
  pa = jax.tree_util.tree_flatten_with_path(a, is_leaf=is_leaf)[0]
  pb = jax.tree_util.tree_flatten_with_path(b, is_leaf=is_leaf)[0]
  for (ka, _), (kb, _) in zip(pa, pb):
    if ka != kb:
      return (
          f"first difference at {jax.tree_util.keystr(ka) or '<root>'} "
          f"vs {jax.tree_util.keystr(kb) or '<root>'}"
      )
  if len(pa) != len(pb):
    shorter, longer, which = (pa, pb, 1) if len(pa) < len(pb) else (pb, pa, 0)
    extra = jax.tree_util.keystr(longer[len(shorter)][0]) or "<root>"
    return f"{'the first' if which == 0 else 'the second'} tree has an extra leaf at {extra}"
  ta = jax.tree.structure(a, is_leaf=is_leaf)
  tb = jax.tree.structure(b, is_leaf=is_leaf)
  return f"same leaf paths but different node types: {ta} vs {tb}"


def _shape(x: Any) -> tuple[int, ...]:
  return tuple(x.shape) if hasattr(x, "shape") else np.shape(x)


def first_shape_difference(tree: Any, other: Any, is_leaf=None) -> Optional[tuple[str, Any, Any]]:
  """``(path, shape in tree, shape in other)`` of the first leaf whose shapes differ.

  For two trees of the same structure; ``None`` leaves are skipped, and
  ``None`` is returned when every shape agrees.
  """
  leaves = jax.tree_util.tree_leaves_with_path(tree, is_leaf=is_leaf)
  for (path, a), b in zip(leaves, jax.tree.leaves(other, is_leaf=is_leaf)):
    if a is None or b is None:
      continue
    if _shape(a) != _shape(b):
      return jax.tree_util.keystr(path), _shape(a), _shape(b)
  return None


def check_tree_like(
    tree: Any, reference: Any, names: Sequence[str] = ("updates", "params"),
) -> None:
  """Raises ``ValueError`` unless ``tree`` has the structure and leaf shapes of ``reference``.

  The one check every update path runs on the incoming updates, against
  the params when given or else the transform's own state (its moments):
  a ``(1,)`` gradient against a ``(3,)`` moment would otherwise broadcast
  silently, and a ``(2,)`` one fail with a bare JAX ``TypeError``. ``None``
  leaves (empty subtrees) must sit at the same places in both trees. The
  error names the first differing path and, for a shape, both shapes.
  Only shapes and structure are read, so it works on tracers and costs
  nothing in a compiled step.
  """
  first, second = names
  if jax.tree.structure(tree, is_leaf=_is_none) != jax.tree.structure(reference, is_leaf=_is_none):  # type: ignore[operator]
    raise ValueError(
        f"`{first}` does not have the pytree structure of `{second}` "
        f"({describe_difference(reference, tree, _is_none)}). Gradients must be "
        "shaped like the params they update."
    )
  diff = first_shape_difference(tree, reference, _is_none)
  if diff is not None:
    where, got, want = diff
    raise ValueError(
        f"`{first}{where}` has shape {got} but `{second}{where}` has shape "
        f"{want}. Gradients must be shaped like the params they update (a "
        "mismatch would broadcast silently or fail inside the arithmetic)."
    )


def tree_map_checked(
    f: Callable[..., Any],
    tree: Any,
    *rest: Any,
    names: Sequence[str] = ("updates", "state"),
    is_leaf: Optional[Callable[[Any], bool]] = None,
) -> Any:
  """``jax.tree.map`` with an error that names the trees and the bad path.

  Costs nothing when the structures agree: the check runs only after
  ``jax.tree.map`` has failed.
  """
  try:
    return jax.tree.map(f, tree, *rest, is_leaf=is_leaf)
  except (ValueError, TypeError) as err:
    for i, other in enumerate(rest, start=1):
      if jax.tree.structure(tree, is_leaf=is_leaf) != jax.tree.structure(  # type: ignore[operator]
          other, is_leaf=is_leaf
      ):
        first = names[0] if names else "the first tree"
        second = names[i] if i < len(names) else f"tree #{i}"
        raise ValueError(
            f"`{second}` does not have the pytree structure of `{first}` "
            f"({describe_difference(tree, other, is_leaf)}). They must match "
            "leaf for leaf: pass the same params to `init` and `update`, and "
            "gradients shaped like the params."
        ) from err
    for i, other in enumerate(rest, start=1):
      diff = first_shape_difference(tree, other, is_leaf)
      if diff is not None:
        first = names[0] if names else "the first tree"
        second = names[i] if i < len(names) else f"tree #{i}"
        where, a, b = diff
        raise ValueError(
            f"`{first}{where}` has shape {a} but `{second}{where}` has shape "
            f"{b}: they must be shaped alike ({err})."
        ) from err
    raise


def safe_increment(count: jax.typing.ArrayLike) -> jax.Array:
  """``count + 1``, saturating at the dtype's maximum instead of wrapping.

  An int32 step counter that wraps to ``-2^31`` would turn ``beta**count`` in
  bias correction into an overflow; saturating keeps the last value instead.
  Same numbers as ``optax.safe_increment``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.safe_increment(jnp.array(3)), jn.safe_increment(jnp.array(2**31 - 1, jnp.int32))
    (Array(4, dtype=int32), Array(2147483647, dtype=int32))
  """
  count = jnp.asarray(count)
  if jnp.issubdtype(count.dtype, jnp.integer):
    top: jax.typing.ArrayLike = jnp.iinfo(count.dtype).max
  elif jnp.issubdtype(count.dtype, jnp.floating):
    top = jnp.finfo(count.dtype).max
  else:
    raise ValueError(
        f"`count` must have an integer or floating dtype; got {count.dtype}"
    )
  top = jnp.asarray(top, count.dtype)
  return jnp.where(count < top, count + jnp.asarray(1, count.dtype), top)


safe_int32_increment = safe_increment


def abs_sq(x: jax.typing.ArrayLike) -> jax.Array:
  """``|x|^2``, real for complex ``x`` (``conj(x) * x``)."""
  x = jnp.asarray(x)
  return (x.conj() * x).real


def placed_like(x: Any, value: jax.Array) -> jax.Array:
  """``value`` (shaped like ``x``) given the sharding of ``x``, also under ``jit``.

  Eagerly, ``jnp.zeros_like`` and friends already copy a committed array's
  sharding. Under ``jit`` on a mesh with auto axes (``jax.sharding.Mesh``'s
  default) a tracer carries no sharding, and a constant such as ``zeros``
  depends on no input, so XLA leaves it unsharded: with params split over
  such a mesh, ``jax.jit(optax.adam(lr).init)`` puts every moment whole on
  one device. ``shard_alike`` ties the two values into one sharding group,
  which XLA's propagation resolves to the params' sharding. It is a sharding
  annotation only: no arithmetic on ``x``, so NaN or Inf params give exact
  zeros (unlike ``0 * x``), and it compiles to nothing. On a mesh with
  explicit axes (``jax.make_mesh``'s default) the sharding is part of the
  tracer's type and ``value`` is resharded to it.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> x = jnp.ones(3)
    >>> jax.jit(lambda p: jn.placed_like(p, jnp.zeros_like(p)))(x).sharding == x.sharding
    True
  """
  if not isinstance(x, jax.core.Tracer) or jax.sharding.get_abstract_mesh().manual_axes:
    # Eager arrays need nothing here. Inside a partially manual shard_map
    # the sharding group fails to compile (jax 0.10), and there the values
    # are per-device blocks anyway.
    return value
  sharding = jax.typeof(x).sharding
  if not sharding.mesh.empty and sharding.mesh.explicit_axes:
    value = jax.sharding.reshard(value, sharding)
  _, value = _shard_alike(x, value)
  return value


def tree_zeros_like(tree: Any, dtype: Optional[Any] = None) -> Any:
  """Zeros shaped like every leaf of ``tree`` (``dtype`` overrides).

  Each leaf keeps the sharding of its ``tree`` leaf, eagerly and under
  ``jit`` (see :func:`placed_like`), so optimizer moments are split over a
  mesh exactly like the params they track (``optax.tree.zeros_like`` loses
  it under ``jit`` on an auto-axes mesh).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.tree_zeros_like({"w": jnp.ones(2), "b": jnp.ones(())}, jnp.int32)
    {'b': Array(0, dtype=int32), 'w': Array([0, 0], dtype=int32)}
  """
  return tree_full_like(tree, 0, dtype)


def tree_ones_like(tree: Any, dtype: Optional[Any] = None) -> Any:
  """Ones shaped like every leaf of ``tree`` (``dtype`` overrides), placed alike.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.tree_ones_like({"w": jnp.zeros(2)})
    {'w': Array([1., 1.], dtype=float32)}
  """
  return tree_full_like(tree, 1, dtype)


def tree_full_like(
    tree: Any, fill_value: jax.typing.ArrayLike, dtype: Optional[Any] = None
) -> Any:
  """``fill_value`` shaped and sharded like every leaf of ``tree``.

  The sharding follows each leaf under ``jit`` too (see :func:`placed_like`).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.tree_full_like({"w": jnp.zeros(2)}, 0.5)  # AdaGrad's starting sum, for one
    {'w': Array([0.5, 0.5], dtype=float32)}
  """
  check_params_tree(tree)
  return jax.tree.map(
      lambda x: placed_like(x, jnp.full_like(x, fill_value, dtype=dtype)), tree
  )


def tree_cast(tree: Any, dtype: Optional[Any]) -> Any:
  """Casts every leaf to ``dtype``; ``dtype=None`` leaves the tree as it is.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.tree_cast({"w": jnp.ones(2)}, jnp.bfloat16)
    {'w': Array([1, 1], dtype=bfloat16)}
  """
  if dtype is None:
    return tree
  return jax.tree.map(lambda t: t.astype(dtype), tree)


def tree_cast_like(tree: Any, other_tree: Any) -> Any:
  """Casts every leaf of ``tree`` to the dtype of the matching leaf of ``other_tree``.

  A leaf of ``other_tree`` without a dtype (a Python number) leaves its leaf
  of ``tree`` as it is. Same as ``optax.tree.cast_like``, with an error that
  names the first path where the two trees differ.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.tree.cast_like({"m": jnp.ones(2)}, {"m": jnp.zeros(2, jnp.bfloat16)})
    {'m': Array([1, 1], dtype=bfloat16)}
  """
  return tree_map_checked(
      lambda t, o: t.astype(o.dtype) if hasattr(o, "dtype") else t, tree, other_tree,
      names=("moment", "state"),
  )


def tree_update_moment(
    updates: Any, moments: Any, decay: jax.typing.ArrayLike, order: int
) -> Any:
  r"""Exponentially weighted average of ``g^order``.

  .. math:: m_t = \beta\, m_{t-1} + (1 - \beta)\, g_t^{k}

  The notes' ``V_t = beta V_{t-1} + (1 - beta) theta_t`` (notes 004) for
  ``k = 1``, and RMSProp/Adam's second moment for ``k = 2``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> m = jn.tree_update_moment({"w": jnp.array([2.0])}, {"w": jnp.array([1.0])}, 0.9, 2)
    >>> print(np.asarray(m["w"]).round(4))  # 0.9 * 1 + 0.1 * 2**2
    [1.3]
  """
  return tree_map_checked(
      lambda g, t: None if g is None else (1 - decay) * (g**order) + decay * t,
      updates, moments, is_leaf=_is_none,
  )


def tree_update_moment_per_elem_norm(
    updates: Any, moments: Any, decay: jax.typing.ArrayLike, order: int
) -> Any:
  r"""Like :func:`tree_update_moment` with ``|g|^order`` (complex-safe).

  .. math:: m_t = \beta\, m_{t-1} + (1 - \beta)\, |g_t|^{k}

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> m = jn.tree_update_moment_per_elem_norm({"w": jnp.array([3 + 4j])}, {"w": jnp.zeros(1)}, 0.9, 2)
    >>> print(np.asarray(m["w"]).round(4))  # 0.1 |3 + 4i|^2, real
    [2.5]
  """

  def norm_power(g):
    if jnp.isrealobj(g):
      return g**order
    half = order / 2
    # An integer exponent compiles to multiplications, a float one to pow.
    return abs_sq(g) ** (int(half) if float(half).is_integer() else half)

  return tree_map_checked(
      lambda g, t: None if g is None else (1 - decay) * norm_power(g) + decay * t,
      updates, moments, is_leaf=_is_none,
  )


def tree_update_infinity_moment(
    updates: Any, moments: Any, decay: jax.typing.ArrayLike,
    eps: jax.typing.ArrayLike,
) -> Any:
  r"""Exponentially weighted infinity norm (Adamax).

  .. math:: u_t = \max(\beta\, u_{t-1},\ |g_t| + \epsilon)

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> u = jn.tree_update_infinity_moment({"w": jnp.array([-3.0, 0.5])}, {"w": jnp.array([1.0, 2.0])}, 0.9, 0.0)
    >>> print(np.asarray(u["w"]).round(4))
    [3.  1.8]
  """
  return tree_map_checked(
      lambda g, t: None if g is None else jnp.maximum(jnp.abs(g) + eps, decay * t),
      updates, moments, is_leaf=_is_none,
  )


# Compiled (and inlined into an enclosing jit) so that eager and jitted runs
# compute ``1 - beta**t`` identically, as optax's does; an eager power rounds
# differently and drifts ~1e-5 from the jitted result after a few steps.
@functools.partial(jax.jit, inline=True)
def bias_correction(
    moment: Any, decay: jax.typing.ArrayLike, count: jax.Array
) -> Any:
  r"""Removes the zero-initialisation bias of an exponential moving average.

  .. math:: \hat m_t = \frac{m_t}{1 - \beta^{t}}

  The notes' fix for an EMA whose first values are far too low (notes 004,
  "Bias correction ``V_t / (1 - beta^t)``"; note 000's "full Adam"). ``count``
  is the number of updates folded into ``moment`` so far (1 after the first).
  Same numbers as ``optax.tree.bias_correction``.

  Args:
    moment: pytree of moving averages.
    decay: the EMA's ``beta``.
    count: step number ``t >= 1`` (an integer array).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> m = {"w": jnp.array([0.1, -0.2])}  # an EMA one step from zero: 0.1 g
    >>> print(np.asarray(jn.bias_correction(m, 0.9, jnp.array(1))["w"]).round(4))
    [ 1. -2.]
  """
  correction = bias_correction_factor(decay, count)
  return jax.tree.map(lambda t: t / correction.astype(t.dtype), moment)


def bias_correction_factor(decay: jax.typing.ArrayLike, count: jax.Array) -> jax.Array:
  """``1 - decay**count``, the divisor of :func:`bias_correction`.

  Formed in the count's precision and only cast to the moment's dtype by the
  caller: in bfloat16 ``beta**t`` would round to 1 and divide by zero. The
  fused kernels (:mod:`jaxopt_notes.kernels.fused`) take this same scalar.
  """
  return 1 - decay**count  # type: ignore[return-value]  # an ndarray decay defers to Array.__rpow__


tree_bias_correction = bias_correction


def global_norm(tree: Any) -> jax.Array:
  r"""The L2 norm of all leaves together, :math:`\sqrt{\sum_i \|x_i\|^2}`.

  Same numbers as ``optax.tree.norm(tree)`` (and the deprecated
  ``optax.global_norm``); complex leaves count ``|x|^2``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> float(jn.global_norm({"a": jnp.array([3.0]), "b": jnp.array([[4.0]])}))
    5.0
  """
  squares = jax.tree.map(lambda x: jnp.sum(jnp.square(x.real) + jnp.square(x.imag)), tree)
  total = jax.tree.reduce(lambda a, b: a + b, squares, initializer=0)
  return jnp.sqrt(jnp.asarray(total))


def apply_updates(params: Any, updates: Any) -> Any:
  """``params + updates`` leaf by leaf, keeping each param's dtype.

  A bfloat16 param updated by a float32 step stays bfloat16; ``None`` params
  stay ``None``. Same as ``optax.apply_updates``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.apply_updates({"w": jnp.ones(2, jnp.bfloat16)}, {"w": jnp.array([0.5, -0.25])})
    {'w': Array([1.5, 0.75], dtype=bfloat16)}
  """
  return tree_map_checked(
      lambda p, u: None if p is None else jnp.asarray(p + u).astype(jnp.asarray(p).dtype),
      params, updates, names=("params", "updates"), is_leaf=_is_none,
  )


def select_tree(pred: jax.Array, on_true: Any, on_false: Any) -> Any:
  """``on_true`` where the scalar ``pred`` holds, else ``on_false``, leaf by leaf.

  Leaves keep ``on_false``'s dtype (the state being carried). Shared by the
  wrappers here and :class:`~jaxopt_notes.MultiSteps`.
  """
  # A select, unlike `pred * t + (1 - pred) * f`, returns `on_false` bit for
  # bit even when `on_true` holds NaN or Inf (0 * NaN is NaN).
  return tree_map_checked(
      lambda t, f: _cast_if_needed(jnp.where(pred, t, f), jnp.asarray(f).dtype),
      on_true, on_false, names=("selected tree", "kept tree"),
  )


def _cast_if_needed(x: jax.Array, dtype: Any) -> jax.Array:
  # Typed PRNG keys (noisy_sgd's state) have no `astype`; they never need one.
  return x if x.dtype == dtype else x.astype(dtype)


# optax.tree's short names. `sum`, `max`, `min` and `set` shadow the builtins
# in this module's globals, so nothing above calls those builtins.
NamedTupleKey = tree_access.NamedTupleKey
add = tree_math.tree_add
add_scale = tree_math.tree_add_scale
allclose = tree_math.tree_allclose
batch_shape = tree_math.tree_batch_shape
cast = tree_cast
cast_like = tree_cast_like
clip = tree_math.tree_clip
conj = tree_math.tree_conj
div = tree_math.tree_div
dtype = tree_access.tree_dtype
full_like = tree_full_like
get = tree_access.tree_get
get_all_with_path = tree_access.tree_get_all_with_path
map_params = tree_access.tree_map_params
max = tree_math.tree_max  # noqa: A001
min = tree_math.tree_min  # noqa: A001
mul = tree_math.tree_mul
norm = tree_math.tree_norm
ones_like = tree_ones_like
random_like = tree_access.tree_random_like
real = tree_math.tree_real
scale = tree_math.tree_scale
set = tree_access.tree_set  # noqa: A001
size = tree_math.tree_size
split_key_like = tree_access.tree_split_key_like
sub = tree_math.tree_sub
sum = tree_math.tree_sum  # noqa: A001
unwrap_random_key_data = tree_access.tree_unwrap_random_key_data
update_infinity_moment = tree_update_infinity_moment
update_moment = tree_update_moment
update_moment_per_elem_norm = tree_update_moment_per_elem_norm
vdot = tree_math.tree_vdot
where = tree_math.tree_where
zeros_like = tree_zeros_like
