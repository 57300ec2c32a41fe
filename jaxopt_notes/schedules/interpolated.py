r"""optax's interpolated schedules: values that glide between levels instead of jumping.

:func:`piecewise_interpolate_schedule` is :func:`piecewise_constant_schedule`
with each jump spread over the interval before it (linearly or along half a
cosine); :func:`linear_onecycle_schedule` is the one-cycle policy built from
it, and :func:`warmup_constant_schedule` a linear warm-up that then holds.
Learning-rate decay is the subject of notes 004; these are the warm-up and
one-cycle shapes used with every optimizer of the notes.

optax 0.2.8's names, argument order, defaults and float32 numbers. As in
:mod:`jaxopt_notes.schedules.curves`, bad arguments raise at construction,
naming the argument, where optax quietly builds another schedule (each
docstring says which).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.core import validation
from jaxopt_notes.core.base import Schedule
from jaxopt_notes.schedules.curves import _check_values, linear_schedule

__all__ = [
    "linear_onecycle_schedule",
    "piecewise_interpolate_schedule",
    "warmup_constant_schedule",
]

ArrayLike = jax.typing.ArrayLike


def _linear(start, end, frac):
  return (end - start) * frac + start


def _cosine(start, end, frac):
  return end + (start - end) / 2.0 * (jnp.cos(jnp.pi * frac) + 1)


_INTERPOLATIONS = {"linear": _linear, "cosine": _cosine}


def piecewise_interpolate_schedule(
    interpolate_type: str,
    init_value: ArrayLike,
    boundaries_and_scales: Optional[Mapping[int, float]] = None,
) -> Schedule:
  r"""Levels :math:`v_k = I \prod_{j \le k} s_j`, reached at steps :math:`b_k` by gliding from :math:`v_{k-1}`.

  With :math:`b_0 = 0`, :math:`v_0 = I` and, for :math:`b_{k-1} \le t < b_k`,
  :math:`f = (t - b_{k-1}) / \max(b_k - b_{k-1}, 1)`:

  .. math::
     v(t) = \begin{cases}
       v_{k-1} + (v_k - v_{k-1})\, f & \text{linear} \\
       v_k + \tfrac12 (v_{k-1} - v_k)(1 + \cos \pi f) & \text{cosine}
     \end{cases}
     \qquad v(t) = v_K \ \text{for}\ t \ge b_K

  (and 0 for :math:`t < 0`). The scales multiply, as in
  :func:`piecewise_constant_schedule`: ``{4: 0.1, 8: 0.01}`` from 1 goes to
  0.1 at step 4 and 0.001 at step 8.

  Source: ``optax.piecewise_interpolate_schedule``, same numbers.
  Differences: optax sorts the boundaries silently; here they must already
  be strictly increasing and non-negative, else ``ValueError`` (as for
  :func:`piecewise_constant_schedule`). Scales must be non-negative, as in
  optax, and finite. Reference: optax documentation, "Schedules".

  Args:
    interpolate_type: ``"linear"`` or ``"cosine"``.
    init_value: :math:`I`, the value at step 0.
    boundaries_and_scales: ``{b_k: s_k}`` (default ``None``: constant).

  Examples:
    >>> import jaxopt_notes as jn
    >>> sched = jn.piecewise_interpolate_schedule("linear", 1.0, {4: 0.1, 8: 0.01})
    >>> [round(float(sched(t)), 6) for t in (0, 2, 4, 6, 8, 10)]
    [1.0, 0.55, 0.1, 0.0505, 0.001, 0.001]
  """
  interpolate = _INTERPOLATIONS.get(interpolate_type) if isinstance(interpolate_type, str) else None
  if interpolate is None:
    raise ValueError(f"`interpolate_type` must be 'linear' or 'cosine'; got {interpolate_type!r}")
  _check_values(init_value=init_value)
  if boundaries_and_scales is None:
    boundaries_and_scales = {}
  if not isinstance(boundaries_and_scales, Mapping):
    raise TypeError(
        "`boundaries_and_scales` must be a dict {step: scale}; got "
        f"{type(boundaries_and_scales).__name__}: {boundaries_and_scales!r}"
    )
  steps, scales = tuple(boundaries_and_scales), tuple(boundaries_and_scales.values())
  for b, s in boundaries_and_scales.items():
    validation.check_steps(f"boundaries_and_scales key {b!r}", b, allow_zero=True)
    validation.check_that(f"boundaries_and_scales[{b!r}]", s, lambda v: np.isfinite(v) & (v >= 0),
                          "a finite, non-negative scale")
  if any(not a < b for a, b in zip(steps, steps[1:])):
    raise ValueError(
        "`boundaries_and_scales` must list its boundaries in strictly increasing order "
        f"(optax sorts them silently); got keys {list(steps)}"
    )

  def schedule(count):
    knots = jnp.stack((0,) + steps)
    levels = jnp.cumprod(jnp.stack((init_value,) + scales))
    starts, ends = knots[:-1], knots[1:]
    frac = (count - starts) / jnp.maximum(ends - starts, 1)
    pieces = interpolate(levels[:-1], levels[1:], frac)
    # At most one piece holds `count`; none before step 0 or after the last knot.
    inside = jnp.logical_and(starts <= count, count < ends)
    return jnp.sum(jnp.where(inside, pieces, 0)) + jnp.where(knots[-1] <= count, levels[-1], 0)

  return schedule


def warmup_constant_schedule(init_value: ArrayLike, peak_value: ArrayLike, warmup_steps: int) -> Schedule:
  r"""Linear warm-up from ``init_value`` to ``peak_value`` over ``warmup_steps``, then constant.

  .. math:: v(t) = I + (P - I) \min(t, W) / W

  Source: ``optax.warmup_constant_schedule`` (a :func:`linear_schedule`),
  same numbers. Difference: ``warmup_steps <= 0`` raises ``ValueError``;
  optax logs a message and returns the constant ``init_value``, so a
  schedule meant to start at the peak never reaches it. Reference: Goyal et
  al., "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour", 2017,
  arXiv:1706.02677.

  Args:
    init_value: :math:`I`, the value at step 0.
    peak_value: :math:`P`, the value from step :math:`W` on.
    warmup_steps: :math:`W > 0`.

  Examples:
    >>> import jaxopt_notes as jn
    >>> sched = jn.warmup_constant_schedule(0.0, 1.0, 4)
    >>> [float(sched(t)) for t in (0, 2, 4, 100)]
    [0.0, 0.5, 1.0, 1.0]
  """
  _check_values(init_value=init_value, peak_value=peak_value)
  validation.check_steps("warmup_steps", warmup_steps)
  return linear_schedule(init_value=init_value, end_value=peak_value, transition_steps=warmup_steps)


def linear_onecycle_schedule(
    transition_steps: int,
    peak_value: ArrayLike,
    pct_start: float = 0.3,
    pct_final: float = 0.85,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Schedule:
  r"""One-cycle policy with straight lines: up to ``peak_value``, back down, then far down.

  With :math:`v_0 = P / d`, three linear pieces of
  :func:`piecewise_interpolate_schedule`:

  .. math::
     v_0 \to P \ \text{on}\ [0, \lfloor a T \rfloor], \quad
     P \to v_0 \ \text{on}\ [\lfloor a T \rfloor, \lfloor b T \rfloor], \quad
     v_0 \to v_0 / f \ \text{on}\ [\lfloor b T \rfloor, T]

  and :math:`v_0 / f` after :math:`T`, with :math:`T` = ``transition_steps``,
  :math:`a` = ``pct_start`` ``=0.3``, :math:`b` = ``pct_final`` ``=0.85``,
  :math:`d` = ``div_factor`` ``=25.0``, :math:`f` = ``final_div_factor``
  ``=1e4``.

  Source: ``optax.linear_onecycle_schedule``, same numbers (the levels are
  products in float32, as there). Differences: ``pct_start`` and
  ``pct_final`` must lie in ``[0, 1)`` with
  :math:`\lfloor a T \rfloor < \lfloor b T \rfloor`, and the factors must be
  positive, else ``ValueError``; where optax's boundaries collide its dict
  keeps the last scale and the peak is silently lost (e.g. the defaults
  with ``transition_steps=1``). Reference: Smith & Topin, "Super-Convergence:
  Very Fast Training of Neural Networks Using Large Learning Rates", 2017,
  arXiv:1708.07120.

  Args:
    transition_steps: :math:`T > 0`, the length of the cycle.
    peak_value: :math:`P`, the value at step :math:`\lfloor a T \rfloor`.
    pct_start: :math:`a`, the rising fraction of the cycle.
    pct_final: :math:`b`, where the fall back to :math:`v_0` ends.
    div_factor: :math:`d`, with :math:`v_0 = P / d`.
    final_div_factor: :math:`f`, with the final value :math:`v_0 / f`.

  Examples:
    >>> import jaxopt_notes as jn
    >>> sched = jn.linear_onecycle_schedule(100, 1.0)
    >>> [round(float(sched(t)), 4) for t in (0, 30, 85, 100)]
    [0.04, 1.0, 0.04, 0.0]
  """
  _check_values(peak_value=peak_value)
  validation.check_steps("transition_steps", transition_steps)
  validation.check_unit_interval("pct_start", pct_start)
  validation.check_unit_interval("pct_final", pct_final)
  validation.check_positive("div_factor", div_factor)
  validation.check_positive("final_div_factor", final_div_factor)
  peak_step, fall_step = int(pct_start * transition_steps), int(pct_final * transition_steps)
  if not peak_step < fall_step:
    raise ValueError(
        "`pct_start` * `transition_steps` and `pct_final` * `transition_steps` must round down to "
        f"increasing steps; got {peak_step} and {fall_step} ({pct_start=}, {pct_final=}, "
        f"{transition_steps=}). optax would silently drop the peak here."
    )
  levels: dict[Any, float] = {
      peak_step: div_factor,
      fall_step: 1.0 / div_factor,
      transition_steps: 1.0 / final_div_factor,
  }
  return piecewise_interpolate_schedule("linear", peak_value / div_factor, levels)
