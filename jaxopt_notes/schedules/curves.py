"""optax's schedules: pure, jit-safe functions ``count -> value``.

A schedule is called with the number of updates already applied (``0`` for the
first update, as optax's ``scale_by_learning_rate`` calls it), as a Python int
or a traced ``int32``. Anywhere a learning rate is accepted, a schedule is too.

optax 0.2.8's names, argument order, defaults and float32 numbers, so
``jaxopt_notes.schedules.X`` can replace ``optax.X``. Intended difference: bad
arguments raise ``ValueError``/``TypeError`` at construction, naming the
argument, where optax logs a message and quietly returns another schedule
(each docstring says which); and :func:`polynomial_schedule` stays finite
under jit, where optax's can be NaN.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.core import validation
from jaxopt_notes.core.base import Schedule

__all__ = [
    "constant_schedule",
    "polynomial_schedule",
    "linear_schedule",
    "piecewise_constant_schedule",
    "exponential_decay",
    "cosine_decay_schedule",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
    "join_schedules",
    "sgdr_schedule",
    "cosine_onecycle_schedule",
]

ArrayLike = jax.typing.ArrayLike


def _traced(x: Any) -> bool:
  return isinstance(x, jax.core.Tracer)


def _check_values(**values: Any) -> None:
  """Every value a schedule returns or scales by is finite; ``None`` and traced ones pass.

  A NaN or infinite learning rate turns every update into NaN (or Inf), so
  it raises ``ValueError`` naming the argument, as a non-finite float
  learning rate does; a non-number raises ``TypeError``.
  """
  for name, value in values.items():
    if value is not None:
      validation.check_that(name, value, np.isfinite, "a finite number (or array of them)")


def _check_schedule(name: str, value: Any) -> None:
  validation.check_callable(name, value, "a schedule (a callable count -> value)")


def _clip_toward(value: jax.Array, end_value: ArrayLike, rate: float | jax.Array):
  # A decaying rate (< 1) stops at a floor, a growing one at a ceiling; a
  # traced rate cannot pick the side in Python, so both are computed.
  if _traced(rate):
    low, high = jnp.maximum(value, end_value), jnp.minimum(value, end_value)
    return jnp.where(rate < 1.0, low, high)
  return (jnp.maximum if rate < 1.0 else jnp.minimum)(value, end_value)


def constant_schedule(value: ArrayLike) -> Schedule:
  r"""The same value at every step: :math:`v(t) = c`.

  Source: ``optax.constant_schedule`` (``value`` is returned as given, not
  converted to an array). Difference: a callable ``value`` raises
  ``TypeError`` (optax would hand back the function itself as the value).
  Reference: optax documentation, "Schedules".

  Examples:
    >>> import jaxopt_notes as jn
    >>> sched = jn.constant_schedule(0.1)
    >>> [float(sched(t)) for t in (0, 10, 1000)]
    [0.1, 0.1, 0.1]
  """
  if callable(value):
    raise TypeError(
        "`value` must be a number or array, not a callable: a schedule can be "
        f"passed as the learning rate directly; got {value!r}"
    )
  _check_values(value=value)
  return lambda count: value


def polynomial_schedule(
    init_value: ArrayLike, end_value: ArrayLike, power: ArrayLike,
    transition_steps: int, transition_begin: int = 0,
) -> Schedule:
  r"""Polynomial transition from ``init_value`` (I) to ``end_value`` (E).

  .. math::
    v(t) = (I - E)\left(1 - \frac{\min(\max(t - B, 0), T)}{T}\right)^{P} + E

  with :math:`P` = ``power``, :math:`T` = ``transition_steps`` and
  :math:`B` = ``transition_begin`` (default 0): :math:`I` until step
  :math:`B`, :math:`E` from step :math:`B + T` on.

  Source: ``optax.polynomial_schedule``, same numbers. Differences: for
  ``transition_steps <= 0`` optax logs a message and returns the constant
  ``init_value``, and for ``transition_begin < 0`` it logs and uses 0; both
  raise ``ValueError`` here. Under ``jit`` optax returns NaN from step
  :math:`B + T` on when :math:`P` is not an integer; here the base is clamped
  at 0, which changes no eager value. Reference: Keras ``PolynomialDecay``.

  Examples:
    >>> import jaxopt_notes as jn
    >>> sched = jn.polynomial_schedule(1.0, 0.0, power=2, transition_steps=10, transition_begin=5)
    >>> [round(float(sched(t)), 4) for t in (0, 5, 10, 15, 20)]
    [1.0, 1.0, 0.25, 0.0, 0.0]
  """
  _check_values(init_value=init_value, end_value=end_value, power=power)
  validation.check_steps("transition_steps", transition_steps)
  validation.check_steps("transition_begin", transition_begin, allow_zero=True)

  def schedule(count):
    done = jnp.clip(count - transition_begin, 0, transition_steps)
    # Under jit, XLA's FMA with 1/T can put `1 - done / T` just below 0 at
    # done == T, and a fractional power of that is NaN (as in optax's jitted
    # schedule); eagerly the clamp never binds, so the numbers stay optax's.
    left = jnp.maximum(1 - done / transition_steps, 0)
    return (init_value - end_value) * (left**power) + end_value

  return schedule


def linear_schedule(
    init_value: ArrayLike, end_value: ArrayLike, transition_steps: int,
    transition_begin: int = 0,
) -> Schedule:
  r"""Linear ramp: :func:`polynomial_schedule` with ``power=1``.

  .. math::
    v(t) = (I - E)\left(1 - \frac{\min(\max(t - B, 0), T)}{T}\right) + E

  Source: ``optax.linear_schedule`` (``transition_begin=0``); the errors of
  :func:`polynomial_schedule` replace optax's logged fallbacks. Reference:
  Goyal et al., "Accurate, Large Minibatch SGD", 2017 (linear warm-up).

  Examples:
    >>> import jaxopt_notes as jn
    >>> sched = jn.linear_schedule(0.0, 1.0, transition_steps=4)
    >>> [round(float(sched(t)), 4) for t in (0, 1, 2, 4, 10)]
    [0.0, 0.25, 0.5, 1.0, 1.0]
  """
  return polynomial_schedule(
      init_value, end_value, 1, transition_steps, transition_begin
  )


def piecewise_constant_schedule(
    init_value: ArrayLike,
    boundaries_and_scales: Optional[Mapping[int, float]] = None,
) -> Schedule:
  r"""Multiply by ``scale_i`` from step ``b_i`` on.

  .. math:: v(t) = I \prod_{i:\, t \ge b_i} s_i

  ``boundaries_and_scales`` is ``{b_i: s_i}`` (default ``None``: constant).
  Source: ``optax.piecewise_constant_schedule``, same float32 products.
  Differences: optax sorts the boundaries silently; here they must already be
  strictly increasing (out of order is usually a typo), else ``ValueError``.
  Scales must be non-negative, as in optax. Reference: He et al., "Deep
  Residual Learning", CVPR 2016 (rate / 10 at fixed iterations).

  Examples:
    >>> import jaxopt_notes as jn
    >>> sched = jn.piecewise_constant_schedule(1.0, {3: 0.1, 6: 0.5})
    >>> [round(float(sched(t)), 4) for t in (0, 2, 3, 5, 6, 9)]
    [1.0, 1.0, 0.1, 0.1, 0.05, 0.05]
  """
  _check_values(init_value=init_value)
  if boundaries_and_scales is None:
    boundaries_and_scales = {}
  if not isinstance(boundaries_and_scales, Mapping):
    raise TypeError(
        "`boundaries_and_scales` must be a dict {step: scale}; got "
        f"{type(boundaries_and_scales).__name__}: {boundaries_and_scales!r}"
    )
  items = tuple(boundaries_and_scales.items())
  steps = [b for b, _ in items]
  for b, s in items:
    validation.check_that(f"boundaries_and_scales[{b!r}]", s, lambda v: v >= 0,
             "a non-negative scale")
  if any(not a < b for a, b in zip(steps, steps[1:])):
    raise ValueError(
        "`boundaries_and_scales` must list its boundaries in strictly "
        f"increasing order (optax sorts them silently); got keys {steps}"
    )
  if not items:
    return lambda count: init_value

  def schedule(count):
    # Start from an array so each product is rounded in float32, as optax's.
    value = jnp.asarray(init_value)
    for boundary, scale in items:
      value = jnp.where(count < boundary, value, value * scale)
    return value

  return schedule


def exponential_decay(
    init_value: ArrayLike, transition_steps: int, decay_rate: ArrayLike,
    transition_begin: int = 0, staircase: bool = False,
    end_value: Optional[ArrayLike] = None,
) -> Schedule:
  r"""Exponential decay, continuous or staircase.

  .. math::
    v(t) = I \cdot r^{p}, \quad p = \frac{t - B}{T}
    \ (\lfloor\cdot\rfloor \text{ if staircase}),
    \quad v(t) = I \text{ for } t \le B

  with :math:`r` = ``decay_rate``, :math:`T` = ``transition_steps``,
  :math:`B` = ``transition_begin`` (default 0), ``staircase=False``. An
  ``end_value`` (default ``None``) is a floor when :math:`r < 1` and a ceiling
  otherwise. Note 004's ``0.95**epoch * alpha0`` is
  ``per_epoch(exponential_decay(alpha0, 1, 0.95), n)``.

  Source: ``optax.exponential_decay``, same numbers. Differences: for
  ``transition_steps <= 0`` or ``decay_rate == 0`` optax logs a message and
  returns the constant ``init_value``, for ``transition_begin < 0`` it logs
  and uses 0; here these, and a negative ``decay_rate``, raise ``ValueError``.
  A traced ``decay_rate`` is accepted (optax needs a concrete one).
  Reference: Keras ``ExponentialDecay``; lecture note 004.

  Examples:
    >>> import jaxopt_notes as jn
    >>> smooth = jn.exponential_decay(1.0, transition_steps=10, decay_rate=0.5)
    >>> [round(float(smooth(t)), 4) for t in (0, 5, 10, 20)]
    [1.0, 0.7071, 0.5, 0.25]
    >>> stairs = jn.exponential_decay(1.0, 10, 0.5, staircase=True, end_value=0.3)
    >>> [round(float(stairs(t)), 4) for t in (0, 5, 10, 20)]
    [1.0, 1.0, 0.5, 0.3]
  """
  _check_values(init_value=init_value, end_value=end_value)
  validation.check_steps("transition_steps", transition_steps)
  validation.check_that("decay_rate", decay_rate, lambda v: v > 0, "a positive rate")
  validation.check_steps("transition_begin", transition_begin, allow_zero=True)

  def schedule(count):
    since = count - transition_begin
    p = since / transition_steps
    if staircase:
      p = jnp.floor(p)
    decayed = init_value * jnp.power(decay_rate, p)
    value = jnp.where(since <= 0, init_value, decayed)
    if end_value is not None:
      value = _clip_toward(value, end_value, decay_rate)
    return value

  return schedule


def cosine_decay_schedule(
    init_value: ArrayLike, decay_steps: int, alpha: ArrayLike = 0.0,
    exponent: ArrayLike = 1.0,
) -> Schedule:
  r"""Cosine decay from ``init_value`` to ``alpha * init_value``.

  .. math::
    v(t) = I\left[(1 - \alpha)\left(\tfrac12\left(1 + \cos\frac{\pi
    \min(t, T)}{T}\right)\right)^{p} + \alpha\right]

  with :math:`T` = ``decay_steps``, ``alpha=0.0`` and :math:`p` =
  ``exponent`` ``=1.0``; constant :math:`\alpha I` after step :math:`T`.

  Source: ``optax.cosine_decay_schedule``, same numbers (Python-int steps are
  turned into floats, as there, so ``pi * t`` cannot overflow int32).
  ``decay_steps <= 0`` raises ``ValueError`` here and in optax.
  Reference: Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with
  Warm Restarts", ICLR 2017.

  Examples:
    >>> import jaxopt_notes as jn
    >>> sched = jn.cosine_decay_schedule(1.0, decay_steps=10, alpha=0.1)
    >>> [round(float(sched(t)), 4) for t in (0, 5, 10, 20)]
    [1.0, 0.55, 0.1, 0.1]
  """
  _check_values(init_value=init_value, alpha=alpha, exponent=exponent)
  validation.check_steps("decay_steps", decay_steps)
  total = float(decay_steps) if isinstance(decay_steps, int) else decay_steps

  def schedule(count):
    if isinstance(count, int):
      count = float(count)
    t = jnp.minimum(count, total)
    cosine = 0.5 * (1 + jnp.cos(jnp.pi * t / total))
    return init_value * ((1 - alpha) * cosine**exponent + alpha)

  return schedule


def _warmup(init_value, peak_value, warmup_steps) -> Schedule:
  validation.check_steps("warmup_steps", warmup_steps, allow_zero=True)
  # optax accepts warmup_steps=0 (no warm-up) through its constant fallback.
  if not _traced(warmup_steps) and warmup_steps == 0:
    return constant_schedule(init_value)
  return linear_schedule(init_value, peak_value, warmup_steps)


def warmup_cosine_decay_schedule(
    init_value: ArrayLike, peak_value: ArrayLike, warmup_steps: int,
    decay_steps: int, end_value: ArrayLike = 0.0, exponent: ArrayLike = 1.0,
) -> Schedule:
  r"""Linear warm-up to ``peak_value``, then cosine decay to ``end_value``.

  .. math::
    v(t) = \begin{cases}
      I + (P - I)\,t / W & t < W \\
      \text{cosine\_decay}(P, D - W, \alpha = E / P, p)(t - W) & t \ge W
    \end{cases}

  with :math:`W` = ``warmup_steps`` (0 means no warm-up), :math:`D` =
  ``decay_steps`` (the total length, warm-up included), ``end_value=0.0``,
  ``exponent=1.0``; :math:`\alpha = 0` when :math:`P = 0`.

  Source: ``optax.warmup_cosine_decay_schedule``, same numbers. Differences:
  optax reports ``decay_steps <= warmup_steps`` as a non-positive
  ``decay_steps`` of its inner cosine; here the message names both. A traced
  ``peak_value`` is accepted. Reference: Goyal et al., 2017 (warm-up);
  Loshchilov & Hutter, ICLR 2017 (cosine).

  Examples:
    >>> import jaxopt_notes as jn
    >>> sched = jn.warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps=2, decay_steps=12, end_value=0.1)
    >>> [round(float(sched(t)), 4) for t in (0, 1, 2, 7, 12, 20)]
    [0.0, 0.5, 1.0, 0.55, 0.1, 0.1]
  """
  _check_values(init_value=init_value, peak_value=peak_value, end_value=end_value,
                exponent=exponent)
  validation.check_steps("decay_steps", decay_steps)
  if not (_traced(decay_steps) or _traced(warmup_steps)):
    validation.check_steps("warmup_steps", warmup_steps, allow_zero=True)
    if not decay_steps > warmup_steps:
      raise ValueError(
          "`decay_steps` is the total length, warm-up included, so it must "
          f"exceed `warmup_steps`; got {decay_steps=}, {warmup_steps=}"
      )
  if _traced(peak_value):
    safe_peak = jnp.where(peak_value == 0.0, 1.0, peak_value)
    alpha: ArrayLike = jnp.where(peak_value == 0.0, 0.0, end_value / safe_peak)
  else:
    alpha = 0.0 if peak_value == 0.0 else end_value / peak_value
  decay = cosine_decay_schedule(
      peak_value, decay_steps - warmup_steps, alpha, exponent
  )
  warmup = _warmup(init_value, peak_value, warmup_steps)
  return join_schedules([warmup, decay], [warmup_steps])


def warmup_exponential_decay_schedule(
    init_value: ArrayLike, peak_value: ArrayLike, warmup_steps: int,
    transition_steps: int, decay_rate: ArrayLike, transition_begin: int = 0,
    staircase: bool = False, end_value: Optional[ArrayLike] = None,
) -> Schedule:
  r"""Linear warm-up to ``peak_value``, then :func:`exponential_decay`.

  .. math::
    v(t) = \begin{cases}
      I + (P - I)\,t / W & t < W \\
      \text{exponential\_decay}(P, T, r, B, \text{staircase}, E)(t - W)
        & t \ge W
    \end{cases}

  Defaults ``transition_begin=0`` (counted after the warm-up),
  ``staircase=False``, ``end_value=None``; ``warmup_steps=0`` means no
  warm-up. Source: ``optax.warmup_exponential_decay_schedule``, same numbers;
  the errors of :func:`exponential_decay` replace optax's logged constant
  fallbacks. Reference: Goyal et al., 2017; Keras ``ExponentialDecay``.

  Examples:
    >>> import jaxopt_notes as jn
    >>> sched = jn.warmup_exponential_decay_schedule(0.0, 1.0, warmup_steps=2, transition_steps=4, decay_rate=0.5)
    >>> [round(float(sched(t)), 4) for t in (0, 1, 2, 6, 10)]
    [0.0, 0.5, 1.0, 0.5, 0.25]
  """
  _check_values(init_value=init_value, peak_value=peak_value, end_value=end_value)
  decay = exponential_decay(peak_value, transition_steps, decay_rate,
                            transition_begin, staircase, end_value)
  warmup = _warmup(init_value, peak_value, warmup_steps)
  return join_schedules([warmup, decay], [warmup_steps])


def join_schedules(
    schedules: Sequence[Schedule], boundaries: Sequence[int]
) -> Schedule:
  r"""Run ``schedules`` one after another, switching at ``boundaries``.

  .. math::
    v(t) = s_k(t - b_k) \quad \text{for } b_k \le t < b_{k+1},
    \qquad b_0 = 0 \text{ (} s_0 \text{ sees } t \text{ itself)}

  Each later schedule restarts its count at its boundary. Source:
  ``optax.join_schedules``, same numbers. Differences: optax checks nothing;
  here non-callable schedules raise ``TypeError``, and ``boundaries`` not of
  length ``len(schedules) - 1`` or not strictly increasing ``ValueError``.
  Reference: optax documentation, "Schedules".

  Examples:
    >>> import jaxopt_notes as jn
    >>> hold, ramp = jn.constant_schedule(1.0), jn.linear_schedule(1.0, 0.0, 4)
    >>> sched = jn.join_schedules([hold, ramp], boundaries=[3])  # the ramp starts its count at step 3
    >>> [round(float(sched(t)), 4) for t in (0, 2, 3, 5, 7, 9)]
    [1.0, 1.0, 1.0, 0.5, 0.0, 0.0]
  """
  schedules = list(schedules)
  boundaries = list(boundaries)
  if not schedules:
    raise ValueError("`schedules` must hold at least one schedule; got none")
  for i, s in enumerate(schedules):
    _check_schedule(f"schedules[{i}]", s)
  if len(boundaries) != len(schedules) - 1:
    raise ValueError(
        f"`boundaries` must have one entry fewer than `schedules` "
        f"({len(schedules) - 1}); got {len(boundaries)}: {boundaries!r}"
    )
  for a, b in zip(boundaries, boundaries[1:]):
    if not (_traced(a) or _traced(b)) and not a < b:
      raise ValueError(
          f"`boundaries` must be strictly increasing; got {boundaries!r}"
      )

  def schedule(count):
    value = schedules[0](count)
    for boundary, later in zip(boundaries, schedules[1:]):
      value = jnp.where(count < boundary, value, later(count - boundary))
    return value

  return schedule


def sgdr_schedule(cosine_kwargs: Iterable[Mapping[str, Any]]) -> Schedule:
  r"""SGD with warm restarts: warm-up-cosine cycles joined end to end.

  .. math::
    v(t) = c_k(t - D_0 - \dots - D_{k-1}) \quad \text{in cycle } k

  where cycle :math:`c_k` is ``warmup_cosine_decay_schedule(**kwargs_k)`` and
  :math:`D_k` its ``decay_steps``. Source: ``optax.sgdr_schedule``, same
  numbers. Differences: an empty ``cosine_kwargs`` or a cycle without
  ``decay_steps`` raises ``ValueError`` naming the cycle (optax raises an
  ``IndexError`` at the first call, or its inner ``TypeError``). Reference:
  Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm
  Restarts", ICLR 2017.

  Examples:
    >>> import jaxopt_notes as jn
    >>> cycle = dict(init_value=0.0, warmup_steps=2, decay_steps=6)
    >>> sched = jn.sgdr_schedule([dict(cycle, peak_value=1.0), dict(cycle, peak_value=0.5)])
    >>> [round(float(sched(t)), 4) for t in (0, 2, 4, 6, 8, 10)]
    [0.0, 1.0, 0.5, 0.0, 0.5, 0.25]
  """
  cycles = list(cosine_kwargs)
  if not cycles:
    raise ValueError("`cosine_kwargs` must hold at least one cycle; got none")
  schedules, boundaries, end = [], [], 0
  for i, kwargs in enumerate(cycles):
    if not isinstance(kwargs, Mapping) or "decay_steps" not in kwargs:
      raise ValueError(
          f"`cosine_kwargs[{i}]` must be a dict of warmup_cosine_decay_schedule"
          f" arguments with a `decay_steps` entry; got {kwargs!r}"
      )
    schedules.append(warmup_cosine_decay_schedule(**kwargs))
    end += kwargs["decay_steps"]
    boundaries.append(end)
  return join_schedules(schedules, boundaries[:-1])


def cosine_onecycle_schedule(
    transition_steps: int, peak_value: ArrayLike, pct_start: float = 0.3,
    div_factor: float = 25.0, final_div_factor: float = 1e4,
) -> Schedule:
  r"""One-cycle policy: cosine up to ``peak_value``, then cosine far down.

  With :math:`v_0 = P / d`, :math:`v_1 = v_0 d` (the peak) and
  :math:`v_2 = v_1 / (d f)`, switching at :math:`b_1 = \lfloor s T \rfloor`
  and :math:`b_2 = T`:

  .. math::
    v(t) = v_{k+1} + \frac{v_k - v_{k+1}}{2}
      \left(1 + \cos \pi \frac{t - b_k}{\max(b_{k+1} - b_k, 1)}\right)
    \ \text{ for } b_k \le t < b_{k+1}, \qquad v(t) = v_2 \text{ for } t \ge T

  (:math:`b_0 = 0`), with :math:`s` = ``pct_start`` ``=0.3``, :math:`d` =
  ``div_factor`` ``=25.0``, :math:`f` = ``final_div_factor`` ``=1e4``.

  Source: ``optax.cosine_onecycle_schedule``, same numbers (the values are
  multiplied in float32, so :math:`v_1` may differ from :math:`P` in the last
  bit, as in optax). Differences: ``pct_start`` must lie in ``[0, 1)`` and the
  factors must be positive, else ``ValueError``; with ``pct_start=1`` optax's
  two boundaries collide in its dict and the peak is silently dropped.
  Reference: Smith & Topin, "Super-Convergence: Very Fast Training of Neural
  Networks Using Large Learning Rates", 2017.

  Examples:
    >>> import jaxopt_notes as jn
    >>> sched = jn.cosine_onecycle_schedule(transition_steps=100, peak_value=1.0)
    >>> [round(float(sched(t)), 4) for t in (0, 15, 30, 65, 100)]  # from 1 / 25 up to 1, then down to 4e-6
    [0.04, 0.52, 1.0, 0.5, 0.0]
  """
  _check_values(peak_value=peak_value)
  validation.check_steps("transition_steps", transition_steps)
  validation.check_that("pct_start", pct_start, lambda v: (0 <= v) & (v < 1),
           "a fraction in [0, 1)")
  validation.check_that("div_factor", div_factor, lambda v: v > 0, "positive")
  validation.check_that("final_div_factor", final_div_factor, lambda v: v > 0, "positive")
  peak_step = int(pct_start * transition_steps)
  last_step = int(transition_steps)
  scales = (div_factor, 1.0 / (div_factor * final_div_factor))

  def half_cosine(count, lo, hi, start, end):
    frac = (count - lo) / max(hi - lo, 1)
    return end + (start - end) / 2.0 * (jnp.cos(jnp.pi * frac) + 1)

  def schedule(count):
    count = jnp.asarray(count)  # keep Python-int counts on the int32 path
    v0, v1, v2 = jnp.cumprod(jnp.stack((peak_value / div_factor,) + scales))
    rising = half_cosine(count, 0, peak_step, v0, v1)
    falling = half_cosine(count, peak_step, last_step, v1, v2)
    # optax's interpolation gives 0 before step 0; matched for negative counts.
    return jnp.select([count < 0, count < peak_step, count < last_step],
                      [jnp.zeros_like(v2), rising, falling], v2)

  return schedule
