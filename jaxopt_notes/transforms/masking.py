"""Applying a transform to part of a pytree only."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Union

import jax
import numpy as np

from jaxopt_notes.core import base, tree_access
from jaxopt_notes.core import tree as tree_lib

__all__ = ["MaskedNode", "MaskedState", "masked"]

Mask = Union[Any, Callable[[base.Params], Any]]


class MaskedState(NamedTuple):
  """State of :func:`masked`: the inner transform's state on the kept leaves."""

  inner_state: Any


class MaskedNode(NamedTuple):
  """Stands in for a masked-out subtree: an empty node with no leaves.

  The inner transform never sees, and stores no state for, those leaves.
  """


def is_params_placeholder(tree: Any) -> bool:
  """``tree`` is the stand-in that ``map_params`` (ours or optax's) passes to ``init``.

  ``jn.tree.map_params`` and ``optax.tree.map_params`` call ``init`` on a
  leafless stand-in object to find where the params' copies sit in a state.
  Ours is matched by its class; optax's by its class name
  (``_ParamsPlaceholder``), so that this package never imports optax.
  """
  if isinstance(tree, tree_access._ParamsSlot):  # pylint: disable=protected-access
    return True
  return type(tree).__name__.endswith("ParamsPlaceholder") and not jax.tree.leaves(tree)


def _is_callable_mask(mask: Mask) -> bool:
  flags = jax.tree.leaves(jax.tree.map(callable, mask))
  return bool(flags) and all(flags)


def check_mask_leaves(mask_tree: Any) -> None:
  """Every mask leaf is a concrete bool; the error names the first that is not."""
  for path, m in jax.tree_util.tree_leaves_with_path(mask_tree):
    if isinstance(m, (bool, np.bool_)):
      continue
    where = jax.tree_util.keystr(path)
    if isinstance(m, jax.core.Tracer):
      raise TypeError(
          f"mask{where} is a traced value; a mask selects which transform runs "
          "on each leaf, so it must be made of Python bools known before jit"
      )
    if getattr(m, "dtype", None) == np.bool_ and np.ndim(m) == 0:
      continue
    raise TypeError(
        f"mask{where} must be True or False (one flag per params leaf or "
        f"subtree); got {type(m).__name__}: {m!r:.60}"
    )


def _mask_mismatch(mask_tree: Any, tree: Any, name: str) -> str:
  """Where ``mask_tree`` fails to be a prefix of ``tree`` (for the error)."""
  stop = lambda x: x is None or isinstance(x, MaskedNode)
  mask_paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(mask_tree)[0]]
  tree_paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(tree, is_leaf=stop)[0]]
  covers = lambda mp, tp: tuple(tp[: len(mp)]) == tuple(mp)
  for mp in mask_paths:
    if not any(covers(mp, tp) for tp in tree_paths):
      return f"mask{jax.tree_util.keystr(mp)} has no counterpart in `{name}`"
  for tp in tree_paths:
    if not any(covers(mp, tp) for mp in mask_paths):
      return f"`{name}{jax.tree_util.keystr(tp)}` has no entry in the mask"
  return tree_lib.describe_difference(mask_tree, tree)


def masked(
    inner: base.GradientTransformation,
    mask: Mask,
) -> base.GradientTransformationExtraArgs:
  r"""Applies ``inner`` where ``mask`` is ``True`` and passes the rest through.

  .. math:: u_i = \begin{cases} T(g)_i & m_i \\ g_i & \text{otherwise}\end{cases}

  The standard use is weight decay that skips biases and norms
  (``add_decayed_weights(1e-4, mask=...)``; note 003's norm penalty
  ``alpha/2 ||W||^2`` on weights only). State is kept only for the masked-in
  leaves. Same state layout and numbers as ``optax.masked``. Unlike optax,
  a mask leaf that is not a bool raises ``TypeError`` (``"yes"`` or an array
  would silently count as ``True``), and a mask that does not fit the params
  raises ``ValueError`` naming the first unmatched path. As in optax,
  ``init`` passes the stand-in of ``jn.tree.map_params`` (or of
  ``optax.tree.map_params``) to ``inner`` unmasked, so ``map_params`` works
  on a masked state (give it
  ``is_leaf=lambda v: isinstance(v, MaskedNode)`` when it maps extra trees
  alongside).

  Args:
    inner: the transform to apply.
    mask: a pytree of booleans with the structure of the params (or a prefix
      of it), or a function ``params -> such a pytree``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.masked(jn.add_decayed_weights(0.1), {"w": True, "b": False})  # no decay on the bias
    >>> params = {"w": jnp.array([1.0, 2.0]), "b": jnp.array([1.0])}
    >>> updates, _ = tx.update(jn.tree_zeros_like(params), tx.init(params), params)
    >>> print(np.asarray(updates["w"]).round(4), np.asarray(updates["b"]).round(4))
    [0.1 0.2] [0.]
  """
  inner = base.with_extra_args_support(base.as_transform(inner, "inner"))
  is_fn = _is_callable_mask(mask)
  if not is_fn:
    check_mask_leaves(mask)

  def mask_tree_for(tree):
    if not is_fn:
      return mask
    mask_tree = mask(tree)
    check_mask_leaves(mask_tree)
    return mask_tree

  def keep(tree, mask_tree, name):
    try:
      return jax.tree.map(lambda m, x: x if m else MaskedNode(), mask_tree, tree)
    except (ValueError, TypeError) as err:
      raise ValueError(
          f"the mask does not fit `{name}`: {_mask_mismatch(mask_tree, tree, name)}. "
          "A mask has the structure of the params (or a prefix of it) with a "
          "bool at each leaf."
      ) from err

  def init_fn(params):
    if is_params_placeholder(params):
      # No mask fits the placeholder; the inner state it yields is shaped
      # like an unmasked one, which map_params then maps over the real state.
      return MaskedState(inner_state=inner.init(params))
    mask_tree = mask_tree_for(params)
    return MaskedState(inner_state=inner.init(keep(params, mask_tree, "params")))

  def update_fn(updates, state, params=None, **extra_args):
    mask_tree = mask_tree_for(updates)
    kept_params = None if params is None else keep(params, mask_tree, "params")
    new_kept, inner_state = inner.update(
        keep(updates, mask_tree, "updates"), state.inner_state, kept_params,
        **extra_args,
    )
    merged = jax.tree.map(
        lambda m, new, old: new if m else old, mask_tree, new_kept, updates
    )
    return merged, MaskedState(inner_state=inner_state)

  return base.GradientTransformationExtraArgs(init_fn, update_fn)
