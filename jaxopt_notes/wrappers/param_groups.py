"""Parameter groups: a different transform for each labelled part of the params.

Note 001 ends with "no algorithm is always best: try several and
tune them"; in one model that often means several at once: Adam on the
weights and plain SGD on the biases, a smaller learning rate for a
pre-trained backbone, or no training at all for a frozen embedding.
:func:`partition` routes each leaf to the transform of its label;
:func:`freeze` and :func:`selective_transform` hold parameters fixed.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, NamedTuple, Union

import jax

from jaxopt_notes.core import base, validation
from jaxopt_notes.core.base import set_to_zero
from jaxopt_notes.transforms import masking

__all__ = [
    "MultiTransformState",
    "PartitionState",
    "freeze",
    "multi_transform",
    "partition",
    "selective_transform",
    "set_to_zero",
]

Labels = Union[Any, Callable[[base.Params], Any]]


class PartitionState(NamedTuple):
  """State of :func:`partition`: ``label -> MaskedState`` of that label's transform."""

  inner_states: Mapping[Hashable, base.OptState]


MultiTransformState = PartitionState


def _check_labels(labels: Any, known: Mapping[Hashable, Any]) -> None:
  used = set(jax.tree.leaves(labels))
  missing = used - set(known)
  if missing:
    missing_txt = ", ".join(sorted(map(repr, missing)))
    known_txt = ", ".join(sorted(map(repr, known)))
    raise ValueError(
        f"`param_labels` uses labels with no transform: {missing_txt}. "
        f"`transforms` has keys {known_txt}; add a transform for each missing "
        "label (set_to_zero() to freeze it)."
    )


def _mask_extra_args(
    extra_args: dict[str, Any], updates: Any, mask: Any, enabled: bool
) -> dict[str, Any]:
  # Extra arguments shaped like the updates (per-parameter tags, say) are cut
  # down to the group's leaves, as the group's transform sees only those.
  if not enabled:
    return extra_args
  structure = jax.tree.structure(updates)
  return {
      name: jax.tree.map(lambda m, x: x if m else masking.MaskedNode(), mask, value)
      if jax.tree.structure(value) == structure else value  # type: ignore[operator]
      for name, value in extra_args.items()
  }


def partition(
    transforms: Mapping[Hashable, base.GradientTransformation],
    param_labels: Labels,
    *,
    mask_compatible_extra_args: bool = False,
) -> base.GradientTransformationExtraArgs:
  r"""Applies ``transforms[label]`` to the leaves labelled ``label``.

  .. math:: u_i = T_{\ell(i)}(g)_i

  where :math:`\ell(i)` is the label of leaf ``i``. Each transform sees only
  its own leaves (the others are :class:`MaskedNode`), so its state covers
  only them, and the groups do not interact. Example, Adam on weights and
  SGD on biases::

      labels = lambda p: jax.tree.map(lambda x: "w" if x.ndim > 1 else "b", p)
      tx = partition({"w": adam(1e-3), "b": sgd(1e-2)}, labels)

  Same signature, state layout (``PartitionState(inner_states={label:
  MaskedState(...)})``) and numbers as ``optax.partition`` (alias
  ``optax.multi_transform``). Differences: a label with no transform raises
  ``ValueError`` naming it already at construction when the labels are a
  pytree (optax: at ``init``); a callable's labels are checked at ``init``
  and ``update``.

  Args:
    transforms: ``label -> transform``. Labels that no leaf uses are allowed
      (their state is empty).
    param_labels: a pytree of labels with the structure of the params (or a
      prefix of it), or a function ``params -> such a pytree``.
    mask_compatible_extra_args: also restrict extra ``update`` arguments that
      have the updates' tree structure to each group's leaves (default
      ``False``).

  Raises:
    ValueError: naming the labels that have no transform.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.partition({"adam": jn.adam(0.1), "sgd": jn.sgd(0.1)}, {"w": "adam", "b": "sgd"})
    >>> params = {"w": jnp.ones(2), "b": jnp.zeros(1)}
    >>> state = tx.init(params)
    >>> updates, state = tx.update({"w": jnp.array([2.0, -3.0]), "b": jnp.array([2.0])}, state, params)
    >>> {k: [round(float(x), 4) for x in v] for k, v in updates.items()}, sorted(state.inner_states)
    ({'b': [-0.2], 'w': [-0.1, 0.1]}, ['adam', 'sgd'])
  """
  validation.check_flags(mask_compatible_extra_args=mask_compatible_extra_args)
  if not isinstance(transforms, Mapping):
    raise TypeError(
        f"`transforms` must be a mapping label -> transform; got "
        f"{type(transforms).__name__}: {transforms!r}"
    )
  transforms = {
      label: base.as_transform(tx, f"transforms[{label!r}]")
      for label, tx in transforms.items()
  }
  labels_are_fn = callable(param_labels)
  if not labels_are_fn:
    _check_labels(param_labels, transforms)

  def labels_for(tree):
    if not labels_are_fn:
      return param_labels
    labels = param_labels(tree)
    _check_labels(labels, transforms)
    return labels

  def group(label, labels):
    mask = jax.tree.map(lambda leaf_label: leaf_label == label, labels)
    return masking.masked(transforms[label], mask), mask

  def init_fn(params):
    labels = labels_for(params)
    return PartitionState(
        inner_states={label: group(label, labels)[0].init(params) for label in transforms}
    )

  def update_fn(updates, state, params=None, **extra_args):
    labels = labels_for(updates)
    inner_states = {}
    for label in transforms:
      # The masks are disjoint, so each group reads the original gradients of
      # its own leaves even though `updates` is rewritten group by group.
      tx, mask = group(label, labels)
      group_args = _mask_extra_args(extra_args, updates, mask, mask_compatible_extra_args)
      updates, inner_states[label] = tx.update(
          updates, state.inner_states[label], params, **group_args
      )
    return updates, PartitionState(inner_states=inner_states)

  return base.GradientTransformationExtraArgs(init_fn, update_fn)


multi_transform = partition


def freeze(mask: Union[bool, Any]) -> base.GradientTransformationExtraArgs:
  r"""Zero updates for the leaves where ``mask`` is ``True``; the rest pass.

  .. math:: u_i = \begin{cases} 0 & m_i \\ g_i & \text{otherwise}\end{cases}

  ``masked(set_to_zero(), mask)``: it keeps no state of its own. Chained in
  front of an optimizer, the frozen leaves reach it as zero gradients (so a
  stateful optimizer still keeps, zero, moments for them); use
  :func:`selective_transform` to keep no optimizer state for them at all.
  Same as ``optax.freeze``.

  Args:
    mask: ``True`` to freeze everything, or a pytree of booleans with the
      params' structure (or a prefix); must not depend on traced values.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.freeze({"w": False, "b": True})
    >>> params = {"w": jnp.ones(2), "b": jnp.zeros(1)}
    >>> updates, _ = tx.update({"w": jnp.array([2.0, -3.0]), "b": jnp.array([2.0])}, tx.init(params), params)
    >>> {k: [float(x) for x in v] for k, v in updates.items()}
    {'b': [0.0], 'w': [2.0, -3.0]}
  """
  return masking.masked(set_to_zero(), mask)


def selective_transform(
    optimizer: base.GradientTransformation,
    *,
    freeze_mask: Union[bool, Any],
) -> base.GradientTransformationExtraArgs:
  r"""Runs ``optimizer`` on the unfrozen leaves only; frozen ones get zeros.

  .. math:: u_i = \begin{cases} 0 & m_i \\ T(g)_i & \text{otherwise}\end{cases}

  ``partition({"train": optimizer, "freeze": set_to_zero()}, ...)`` with the
  labels taken from ``freeze_mask``: the optimizer stores no state for the
  frozen leaves. Same as ``optax.selective_transform``.

  Args:
    optimizer: the transform for the trained leaves.
    freeze_mask: ``True`` where a leaf is frozen (a bool or a pytree of them).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.selective_transform(jn.adam(0.1), freeze_mask={"w": False, "b": True})
    >>> params = {"w": jnp.ones(2), "b": jnp.zeros(1)}
    >>> state = tx.init(params)
    >>> updates, state = tx.update({"w": jnp.array([2.0, -3.0]), "b": jnp.array([2.0])}, state, params)
    >>> {k: [round(float(x), 4) for x in v] for k, v in updates.items()}
    {'b': [0.0], 'w': [-0.1, 0.1]}
  """
  masking.check_mask_leaves(freeze_mask)
  labels = jax.tree.map(lambda frozen: "freeze" if frozen else "train", freeze_mask)
  return partition({"train": optimizer, "freeze": set_to_zero()}, labels)
