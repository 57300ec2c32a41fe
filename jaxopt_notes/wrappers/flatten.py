"""flatten: run an inner transform on all leaves concatenated into one vector."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.kernels import fused

__all__ = ["flatten"]


def _concat_leaves(tree: Any) -> jax.Array:
  leaves = jax.tree.leaves(tree)
  if not leaves:
    return jnp.zeros([0])
  return jnp.concatenate([jnp.reshape(x, [-1]) for x in leaves])


def _split_like(template: Any, flat: jax.Array) -> Any:
  """Cuts ``flat`` into pieces shaped like the leaves of ``template``."""
  leaves, treedef = jax.tree.flatten(template)
  sizes = [int(np.size(x)) for x in leaves]
  cuts = np.cumsum(sizes)[:-1].tolist()
  pieces = jnp.split(flat, cuts) if leaves else []
  return jax.tree.unflatten(
      treedef, [jnp.reshape(p, np.shape(x)) for p, x in zip(pieces, leaves)]
  )


def flatten(inner: base.GradientTransformation) -> base.GradientTransformationExtraArgs:
  r"""Runs ``inner`` on all leaves concatenated into one vector.

  .. math:: u = \operatorname{unvec}\big(T(\operatorname{vec}(g))\big)

  ``vec`` ravels every leaf (in pytree order) and concatenates them, so a
  model with hundreds of small arrays costs the inner transform a few vector
  operations per step instead of a few per array (the design card's "jit-
  compiled for GPU/TPU": fewer, larger kernels), for one extra copy of the
  gradient. Transforms that act per coordinate or on the global norm give
  the same numbers as unflattened; one that looks at array shapes or
  per-array norms sees a single long vector instead. Mixed dtypes are
  promoted by the concatenation, and the updates come back promoted.

  Same state layout (the inner state of one vector) and numbers as
  ``optax.flatten``; an empty params tree gives an empty float32 vector where
  optax raises. Reference: optax documentation, "flatten".

  With :func:`~jaxopt_notes.apply_step`, an ``inner`` that has a fused kernel
  (plain sgd, adam, adamw, rmsprop, adagrad, adadelta) steps per-leaf params
  with its flat state in one pass, with no concatenation at all: a jitted
  step then passes a few state buffers instead of one per leaf, which is
  what makes many small leaves fast (optax has no such path).

  Args:
    inner: the transform to run on the flat vector.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.flatten(jn.scale_by_adam())
    >>> params = {"b": jnp.zeros(2), "w": jnp.ones((2, 2))}
    >>> state = tx.init(params)
    >>> state.mu.shape  # one vector for all six entries
    (6,)
    >>> updates, state = tx.update({"b": jnp.array([1.0, -1.0]), "w": jnp.full((2, 2), 0.5)}, state, params)
    >>> updates["w"].shape, [round(float(x), 4) for x in updates["b"]]
    ((2, 2), [1.0, -1.0])
  """
  inner = base.as_transform(inner, "inner")
  rule = fused.rule_of(inner)
  inner = base.with_extra_args_support(inner)

  def init_fn(params):
    # The concatenation would promote an integer leaf to float and hide it.
    validation.check_float_params(params)
    return inner.init(_concat_leaves(params))

  def update_fn(updates, state, params=None, **extra_args):
    # Once concatenated, a mismatch could only be reported as vector lengths.
    combine.check_updates_match_params(updates, params)
    flat_params = None if params is None else _concat_leaves(params)
    flat_updates, state = inner.update(
        _concat_leaves(updates), state, flat_params, **extra_args
    )
    return _split_like(updates, flat_updates), state

  tx = base.GradientTransformationExtraArgs(init_fn, update_fn)
  return tx if rule is None else fused.attach(tx, rule._replace(flat_state=True))
