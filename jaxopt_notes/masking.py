"""Applying a transform to part of a pytree only."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Union

import jax

from jaxopt_notes import base
from jaxopt_notes import tree as tree_lib

__all__ = ["MaskedNode", "MaskedState", "masked"]

Mask = Union[Any, Callable[[base.Params], Any]]


class MaskedState(NamedTuple):
  """State of :func:`masked`: the inner transform's state on the kept leaves."""

  inner_state: Any


class MaskedNode(NamedTuple):
  """Stands in for a masked-out subtree: an empty node with no leaves.

  The inner transform never sees, and stores no state for, those leaves.
  """


def _is_callable_mask(mask: Mask) -> bool:
  flags = jax.tree.leaves(jax.tree.map(callable, mask))
  return bool(flags) and all(flags)


def masked(
    inner: base.GradientTransformation,
    mask: Mask,
) -> base.GradientTransformationExtraArgs:
  r"""Applies ``inner`` where ``mask`` is ``True`` and passes the rest through.

  .. math:: u_i = \begin{cases} T(g)_i & m_i \\ g_i & \text{otherwise}\end{cases}

  The standard use is weight decay that skips biases and norms
  (``add_decayed_weights(1e-4, mask=...)``; note 003's norm penalty
  ``alpha/2 ||W||^2`` on weights only). State is kept only for the masked-in
  leaves. Same state layout and numbers as ``optax.masked``.

  Args:
    inner: the transform to apply.
    mask: a pytree of booleans with the structure of the params (or a prefix
      of it), or a function ``params -> such a pytree``.
  """
  inner = base.with_extra_args_support(base.as_transform(inner, "inner"))
  is_fn = _is_callable_mask(mask)

  def mask_tree_for(tree):
    return mask(tree) if is_fn else mask

  def keep(tree, mask_tree, name):
    return tree_lib.tree_map_checked(
        lambda m, x: x if m else MaskedNode(), mask_tree, tree,
        names=("mask", name),
    )

  def init_fn(params):
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
