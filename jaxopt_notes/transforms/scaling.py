"""Plain scalings: by a constant, by the learning rate, by a schedule, and
weight decay.

These are the last links of every optimizer chain: the notes' gradient
descent step ``w -= lr * dw`` (note 000) is ``scale_by_learning_rate(lr)``
after whatever direction the earlier links computed.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.transforms import masking

__all__ = [
    "AddDecayedWeightsState",
    "ScaleByScheduleState",
    "add_decayed_weights",
    "scale",
    "scale_by_learning_rate",
    "scale_by_schedule",
]


def _checked_empty_init(params) -> base.EmptyState:
  # A learning-rate step on an integer leaf truncates (see check_float_params).
  validation.check_float_params(params)
  return base.EmptyState()


def scale(step_size: jax.typing.ArrayLike) -> base.GradientTransformation:
  r"""Multiplies every update by a constant: :math:`u = s\, g`.

  Stateless. Same as ``optax.scale``. Notes 000's step ``w -= lr * dw`` is
  ``scale(-lr)``.

  Args:
    step_size: the scalar ``s``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale(-0.5)
    >>> updates, _ = tx.update({"w": jnp.array([1.0, -2.0])}, tx.init({"w": jnp.zeros(2)}))
    >>> print(np.asarray(updates["w"]).round(4))
    [-0.5  1. ]
  """
  validation.check_learning_rate(step_size, "step_size")
  if callable(step_size):
    raise TypeError("`step_size` of scale() is a number; use scale_by_schedule for a schedule")

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params)
    del params
    return jax.tree.map(lambda g: step_size * g, updates), state

  return base.GradientTransformation(_checked_empty_init, update_fn)


class ScaleByScheduleState(NamedTuple):
  """State of :func:`scale_by_schedule`: the step count fed to the schedule."""

  count: jax.Array  # type: ignore[assignment]  # named like tuple.count, as optax's; int32 scalar


def scale_by_schedule(step_size_fn: base.Schedule) -> base.GradientTransformation:
  r"""Multiplies the updates by a schedule of the step: :math:`u_t = s(t)\, g_t`.

  ``t`` starts at 0 for the first update, so ``s(0)`` scales the first step
  (the notes' decay formulas, notes 004, are schedules of this kind). The
  factor is cast to each update's dtype. Same as ``optax.scale_by_schedule``.

  Args:
    step_size_fn: ``step -> factor``, jit-safe.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_schedule(lambda count: 0.5**count)
    >>> state = tx.init({"w": jnp.zeros(1)})
    >>> factors = []
    >>> for _ in range(3):
    ...   updates, state = tx.update({"w": jnp.ones(1)}, state)
    ...   factors.append(float(updates["w"][0]))
    >>> factors  # s(0), s(1), s(2)
    [1.0, 0.5, 0.25]
  """
  validation.check_callable("step_size_fn", step_size_fn)

  def init_fn(params):
    validation.check_float_params(params)
    return ScaleByScheduleState(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params)
    del params
    factor = step_size_fn(state.count)
    updates = jax.tree.map(lambda g: jnp.array(factor, dtype=g.dtype) * g, updates)
    return updates, ScaleByScheduleState(count=tree_lib.safe_increment(state.count))

  return base.GradientTransformation(init_fn, update_fn)


def scale_by_learning_rate(
    learning_rate: Optional[base.ScalarOrSchedule] = None,
    *,
    flip_sign: bool = True,
) -> base.GradientTransformation:
  r"""The descent step: :math:`u = -\eta\, g` (``flip_sign=False``: :math:`+\eta g`).

  Notes 000: ``w -= lr * dw``. ``learning_rate`` may be a number or a schedule
  ``step -> eta``; ``None`` means no scaling at all (the identity, as in optax,
  which also skips the sign flip). Same as ``optax.scale_by_learning_rate``.

  Args:
    learning_rate: ``eta`` as a float or a schedule, or ``None``.
    flip_sign: negate, so that ``apply_updates`` descends (default ``True``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_learning_rate(lambda count: 0.1 / (1 + count))  # note 004's 1 / (1 + t) decay
    >>> state = tx.init({"w": jnp.zeros(1)})
    >>> steps = []
    >>> for _ in range(3):
    ...   updates, state = tx.update({"w": jnp.ones(1)}, state)
    ...   steps.append(round(float(updates["w"][0]), 4))
    >>> steps
    [-0.1, -0.05, -0.0333]
  """
  validation.check_flags(flip_sign=flip_sign)
  if learning_rate is None:
    return base.identity()
  validation.check_learning_rate(learning_rate)
  sign = -1 if flip_sign else 1
  if callable(learning_rate):
    return scale_by_schedule(lambda count: sign * learning_rate(count))
  return scale(sign * learning_rate)


def skips_weight_decay(rate: Any) -> bool:
  """Whether :func:`add_decayed_weights` leaves the updates untouched.

  Only a Python number 0 skips the add; an array 0 still adds ``0 * w``
  (which turns a ``-0`` update into ``+0``), as in optax.
  """
  return isinstance(rate, (int, float)) and rate == 0.0


class AddDecayedWeightsState(NamedTuple):
  """State of :func:`add_decayed_weights` with a scheduled decay."""

  count: jax.Array  # type: ignore[assignment]  # named like tuple.count, as optax's; int32 scalar


def add_decayed_weights(
    weight_decay: jax.typing.ArrayLike | base.Schedule = 0.0,
    mask: Optional[masking.Mask] = None,
) -> base.GradientTransformation:
  r"""Adds the gradient of an L2 penalty: :math:`u = g + \lambda\, w`.

  Note 003: the parameter-norm penalty ``loss + alpha/2 ||W||^2``
  has gradient ``alpha W``. Placed before an adaptive scaling it is L2
  regularisation; placed after it (as in :func:`adamw`) it is decoupled
  weight decay (Loshchilov & Hutter, 2019). Same state and numbers as
  ``optax.add_decayed_weights``; with a schedule, ``lambda`` is evaluated at
  the step count before the increment.

  ``lambda`` may be negative, as in optax: :func:`~jaxopt_notes.fromage`
  adds ``(1/sqrt(1 + eta^2) - 1) w``, a negative rate that shrinks the
  weights, through this transform. NaN, infinities and bools are refused.

  Args:
    weight_decay: ``lambda`` as a finite number (default 0.0) or a schedule.
    mask: which leaves to decay (a pytree of booleans or a function of the
      params); ``None`` decays all.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.add_decayed_weights(0.5)
    >>> params = {"w": jnp.array([2.0, -4.0])}
    >>> updates, _ = tx.update({"w": jnp.ones(2)}, tx.init(params), params)
    >>> updates["w"]
    Array([ 2., -1.], dtype=float32)
  """
  if callable(weight_decay):
    validation.check_callable("weight_decay", weight_decay)
  else:
    validation.check_finite("weight_decay", weight_decay)

  def init_fn(params):
    del params
    if callable(weight_decay):
      return AddDecayedWeightsState(count=jnp.zeros([], jnp.int32))
    return base.EmptyState()

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(base.NO_PARAMS_MSG)
    combine.check_updates_match_params(updates, params)
    if callable(weight_decay):
      rate = weight_decay(state.count)
      state = AddDecayedWeightsState(count=tree_lib.safe_increment(state.count))
    else:
      rate = weight_decay
      if skips_weight_decay(rate):
        return updates, state
    updates = tree_lib.tree_map_checked(
        lambda g, p: None if g is None else g + rate * p,
        updates, params, names=("updates", "params"), is_leaf=lambda x: x is None,
    )
    return updates, state

  tx = base.GradientTransformation(init_fn, update_fn)
  return tx if mask is None else masking.masked(tx, mask)
