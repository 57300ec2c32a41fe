"""Gradient clipping: the notes' guard against cliffs and exploding gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib

__all__ = ["clip", "clip_by_global_norm"]


def clip(max_delta: jax.typing.ArrayLike) -> base.GradientTransformation:
  r"""Clips every coordinate to ``[-max_delta, max_delta]``.

  .. math:: u_i = \min(\max(g_i, -\delta), \delta)

  Notes 002 (SEEDS.md, "cliffs and exploding gradients"): a step taken on a
  cliff can throw the parameters far away; bounding it keeps them near.
  Stateless. Same as ``optax.clip``.

  Args:
    max_delta: ``delta >= 0``.
  """
  validation.check_non_negative("max_delta", max_delta)

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params)
    del params
    return jax.tree.map(lambda g: jnp.clip(g, -max_delta, max_delta), updates), state

  return base.GradientTransformation(base.init_empty_state, update_fn)


def clip_by_global_norm(max_norm: jax.typing.ArrayLike) -> base.GradientTransformation:
  r"""Rescales all updates together when their joint L2 norm exceeds ``max_norm``.

  .. math:: u = g \cdot \min\!\left(1, \frac{c}{\lVert g \rVert_2}\right)

  Unlike :func:`clip` it keeps the direction of the step and only shortens it
  (Pascanu et al., 2013), the clipping heuristic of notes 002. Stateless.
  Same as ``optax.clip_by_global_norm``.

  Args:
    max_norm: ``c > 0``.
  """
  # max_norm = 0 would turn a zero gradient into 0/0 = NaN.
  validation.check_positive("max_norm", max_norm)

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params)
    del params
    norm = tree_lib.global_norm(updates)
    within = jnp.squeeze(norm < max_norm)
    # select, not a multiply by min(1, c/norm): a zero gradient must stay 0,
    # never 0 * inf.
    updates = jax.tree.map(
        lambda t: jax.lax.select(within, t, (t / norm.astype(t.dtype)) * max_norm), updates
    )
    return updates, state

  return base.GradientTransformation(base.init_empty_state, update_fn)
