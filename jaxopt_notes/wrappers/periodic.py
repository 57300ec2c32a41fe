"""apply_every: sum the updates of ``k`` steps and release them together.

The cheap cousin of :class:`MultiSteps` (gradient accumulation, note 004's
"mini-batch" trade-off between batch size and steps): it sits inside a chain
and turns every ``k``-th update into the sum of the last ``k``, the others into
zeros, while the transforms before it still step every time.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib

__all__ = ["ApplyEvery", "apply_every"]


class ApplyEvery(NamedTuple):
  """State of :func:`apply_every`.

  Attributes:
    count: position in the current window of ``k`` steps, ``0 .. k-1``
      (int32 scalar).
    grad_acc: the sum of the window's updates so far, shaped like the params.
  """

  count: jax.Array  # type: ignore[assignment]  # named like tuple.count, as optax's
  grad_acc: base.Updates


def apply_every(k: jax.typing.ArrayLike = 1) -> base.GradientTransformation:
  r"""Accumulates ``k`` updates and emits their sum every ``k``-th step.

  .. math::
     a_t = \begin{cases} g_t & t \equiv 0 \pmod k \\ a_{t-1} + g_t & \text{otherwise}\end{cases},
     \qquad
     u_t = \begin{cases} a_t & t \equiv k - 1 \pmod k \\ 0 & \text{otherwise}\end{cases}

  (``t`` counts from 0). Gradient accumulation for a batch ``k`` times the
  one that fits in memory (note 004's mini-batch size). Placed after the
  learning rate it sums ``k`` plain SGD steps (notes 000); transforms before
  it still update their state every step, so with momentum or Adam this is
  not the same as a ``k``-times larger batch: use :class:`MultiSteps` for
  that. Same state and numbers as ``optax.apply_every``, except that a
  window starts from the new update itself rather than from ``0 * a +
  g``: a NaN or Inf update then spoils only its own window, where optax's
  accumulator stays NaN for good (``0 * inf`` is NaN).

  Args:
    k: the window, an integer ``>= 1`` (default 1: every update passes).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.apply_every(k=2)
    >>> params = {"w": jnp.zeros(2)}
    >>> state = tx.init(params)
    >>> u1, state = tx.update({"w": jnp.array([1.0, 2.0])}, state)
    >>> u2, state = tx.update({"w": jnp.array([0.5, 0.5])}, state)
    >>> u1["w"], u2["w"]
    (Array([0., 0.], dtype=float32), Array([1.5, 2.5], dtype=float32))
  """
  validation.check_positive_int("k", k)

  def init_fn(params):
    return ApplyEvery(count=jnp.zeros([], jnp.int32), grad_acc=tree_lib.tree_zeros_like(params))

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params, state=state.grad_acc, state_name="state.grad_acc")
    del params
    position = state.count % k
    continuing = position != 0
    emit = position == (k - 1)
    grad_acc = tree_lib.tree_map_checked(
        lambda g, a: jnp.where(continuing, a + g, g), updates, state.grad_acc,
        names=("updates", "state.grad_acc"),
    )
    out = jax.tree.map(lambda a: jnp.where(emit, a, jnp.zeros_like(a)), grad_acc)
    return out, ApplyEvery(count=tree_lib.safe_increment(state.count) % k, grad_acc=grad_acc)

  return base.GradientTransformation(init_fn, update_fn)
