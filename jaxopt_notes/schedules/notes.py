"""The decays of lecture note 004 that optax lacks.

Note 004 (Deep Learning Specialization, week 10, "Learning rate decay"):
:func:`inverse_time_decay`, :func:`inverse_sqrt_decay`, :func:`step_decay`,
and :func:`per_epoch`, which turns a schedule written in epochs into one in
steps.

Epochs: the notes number epochs from 1 (``alpha0 = 0.2``, ``decay_rate = 1``
gives 0.1 in epoch 1). ``per_epoch(s, steps_per_epoch, first_epoch=1)`` calls
``s`` with exactly that number, so the notes' table is::

    per_epoch(inverse_time_decay(0.2, decay_rate=1.0), n, first_epoch=1)
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from jaxopt_notes.core import validation
from jaxopt_notes.core.base import Schedule
from jaxopt_notes.schedules.curves import _check_schedule, _clip_toward

__all__ = ["inverse_sqrt_decay", "inverse_time_decay", "per_epoch", "step_decay"]

ArrayLike = jax.typing.ArrayLike


def inverse_time_decay(
    init_value: ArrayLike, decay_rate: ArrayLike, decay_steps: ArrayLike = 1,
    staircase: bool = False,
) -> Schedule:
  r"""Note 004's learning-rate decay :math:`\alpha_0 / (1 + r\,t / s)`.

  .. math::
    v(t) = \frac{\alpha_0}{1 + r\, p}, \qquad
    p = \frac{t}{s} \text{ or, if staircase, } \left\lfloor \frac{t}{s}
    \right\rfloor

  with :math:`\alpha_0` = ``init_value``, :math:`r` = ``decay_rate`` and
  :math:`s` = ``decay_steps`` (default 1, ``staircase=False``). :math:`t` is
  the count the schedule is called with; ``v(0) = init_value``. The notes
  write it per epoch, numbered from 1, so their table (0.1, 0.067, 0.05, 0.04
  for epochs 1..4 at ``alpha0=0.2``, ``decay_rate=1``) is
  ``per_epoch(inverse_time_decay(0.2, 1.0), steps_per_epoch, first_epoch=1)``.
  Negative counts are treated as 0.

  Source: lecture note 004, "Learning rate decay"; not in optax. Reference:
  Ng, Deep Learning Specialization, course 2 week 2; Keras
  ``InverseTimeDecay`` (same formula per step).

  Examples:
    >>> import jaxopt_notes as jn
    >>> sched = jn.inverse_time_decay(0.2, decay_rate=1.0)
    >>> [round(float(sched(t)), 4) for t in (0, 1, 2, 3)]
    [0.2, 0.1, 0.0667, 0.05]
    >>> stairs = jn.inverse_time_decay(0.2, 1.0, decay_steps=2, staircase=True)
    >>> [round(float(stairs(t)), 4) for t in (0, 1, 2, 3, 4)]
    [0.2, 0.2, 0.1, 0.1, 0.0667]
  """
  validation.check_that("decay_rate", decay_rate, lambda v: v >= 0, "a non-negative rate")
  validation.check_steps("decay_steps", decay_steps)

  def schedule(count):
    # join_schedules also evaluates a piece before its boundary (negative
    # count); clamping keeps that unused branch, and its gradient, finite.
    t = jnp.maximum(count, 0)
    p = jnp.floor_divide(t, decay_steps) if staircase else t / decay_steps
    return init_value / (1 + decay_rate * p)

  return schedule


def inverse_sqrt_decay(
    init_value: ArrayLike, k: ArrayLike = 1.0, warmup_steps: ArrayLike = 1
) -> Schedule:
  r"""Note 004's :math:`k / \sqrt{t} \cdot \alpha_0`, held flat until warm-up.

  .. math::
    v(t) = \frac{k}{\sqrt{\max(t, W)}}\, \alpha_0

  with :math:`\alpha_0` = ``init_value``, ``k=1.0`` and :math:`W` =
  ``warmup_steps`` (default 1, must be positive). :math:`t` is the count the
  schedule is called with, unshifted: for :math:`t \ge W` the value is exactly
  the notes' :math:`k\alpha_0/\sqrt{t}`. Before that the warm-up is a *hold*
  at the value of step :math:`W` (not a ramp from 0), which is what keeps step
  0 finite: with the default, steps 0 and 1 both give :math:`k\alpha_0`.

  Counting: optimizers call a schedule with ``t = 0`` for the first update.
  The notes count from 1 (epoch 1, iteration 1); ``per_epoch(s, n,
  first_epoch=1)`` gives their epoch number and ``per_epoch(s, 1,
  first_epoch=1)`` their iteration number, with which the hold never applies.

  Source: lecture note 004, "Other learning rate decay methods"; not in
  optax. Reference: Ng, Deep Learning Specialization, course 2 week 2; the
  hold form is T5's ``1 / sqrt(max(n, k))`` (Raffel et al., JMLR 2020).

  Examples:
    >>> import jaxopt_notes as jn
    >>> sched = jn.inverse_sqrt_decay(0.1, warmup_steps=4)  # held at 0.1 / sqrt(4) until step 4
    >>> [round(float(sched(t)), 4) for t in (0, 4, 16, 100)]
    [0.05, 0.05, 0.025, 0.01]
  """
  validation.check_that("k", k, lambda v: v > 0, "positive")
  validation.check_steps("warmup_steps", warmup_steps)

  def schedule(count):
    t = jnp.maximum(count, warmup_steps)
    return k / jnp.sqrt(t) * init_value

  return schedule


def step_decay(
    init_value: ArrayLike, factor: ArrayLike, every_steps: ArrayLike,
    end_value: Optional[ArrayLike] = None,
) -> Schedule:
  r"""Note 004's discrete staircase: multiply by ``factor`` every few steps.

  .. math::
    v(t) = \alpha_0 \cdot f^{\lfloor t / n \rfloor}

  with :math:`\alpha_0` = ``init_value``, :math:`f` = ``factor`` (0.5 halves)
  and :math:`n` = ``every_steps``. ``end_value`` (default ``None``) is a floor
  when :math:`f < 1` and a ceiling otherwise, as in
  :func:`exponential_decay`. Negative counts are treated as 0. Wrap in
  :func:`per_epoch` for "halve every few epochs".

  Source: lecture note 004, "discrete staircase"; optax's
  ``exponential_decay(..., staircase=True)`` is the same rule in float
  arithmetic. Reference: Ng, Deep Learning Specialization, course 2 week 2;
  Krizhevsky et al., "ImageNet Classification with Deep Convolutional Neural
  Networks", 2012 (divide by 10 on plateaus).

  Examples:
    >>> import jaxopt_notes as jn
    >>> sched = jn.step_decay(1.0, factor=0.5, every_steps=3, end_value=0.2)
    >>> [round(float(sched(t)), 4) for t in (0, 2, 3, 6, 9)]
    [1.0, 1.0, 0.5, 0.25, 0.2]
  """
  validation.check_that("factor", factor, lambda v: v > 0, "a positive factor")
  validation.check_steps("every_steps", every_steps)

  def schedule(count):
    # Integer floor division: exact at every boundary, unlike floor(t / n).
    n = jnp.floor_divide(jnp.maximum(count, 0), every_steps)
    # A concrete integer exponent sends eager jnp.power down repeated
    # squaring (error grows with n); as a float it takes pow, as under jit.
    n = jnp.asarray(n, dtype=jnp.result_type(float))
    value = init_value * jnp.power(factor, n)
    if end_value is not None:
      value = _clip_toward(value, end_value, factor)
    return value

  return schedule


def per_epoch(
    schedule: Schedule, steps_per_epoch: ArrayLike, first_epoch: int = 0
) -> Schedule:
  r"""Turn a schedule written in epochs into one in steps.

  .. math::
    v(t) = s\left(\left\lfloor t / n \right\rfloor + e_0\right)

  with :math:`n` = ``steps_per_epoch`` (1 epoch = 1 pass through the data)
  and :math:`e_0` = ``first_epoch``, the number given to the epoch containing
  step 0. The default 0 matches optax's counting (the first epoch sees the
  schedule's value at 0); ``first_epoch=1`` is the notes' numbering, in which
  ``alpha0 / (1 + decay_rate * epoch)`` is 0.1 during the first epoch at
  ``alpha0=0.2``, ``decay_rate=1``.

  A non-callable ``schedule`` raises ``TypeError``; ``steps_per_epoch <= 0``
  or ``first_epoch < 0`` raise ``ValueError``. Source: lecture note 004,
  "1 epoch = 1 pass through data". Reference: Ng, Deep Learning
  Specialization, course 2 week 2.

  Examples:
    >>> import jaxopt_notes as jn
    >>> sched = jn.per_epoch(jn.inverse_time_decay(0.2, 1.0), steps_per_epoch=10, first_epoch=1)
    >>> [round(float(sched(t)), 4) for t in (0, 9, 10, 25, 35)]  # the notes' table, epochs 1 to 4
    [0.1, 0.1, 0.0667, 0.05, 0.04]
  """
  _check_schedule("schedule", schedule)
  validation.check_steps("steps_per_epoch", steps_per_epoch)
  validation.check_that("first_epoch", first_epoch, lambda v: v >= 0,
           "a non-negative epoch number")

  def stepped(count):
    return schedule(count // steps_per_epoch + first_epoch)

  return stepped
