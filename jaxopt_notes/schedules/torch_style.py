"""Learning-rate schedules with the numbers of ``torch.optim.lr_scheduler``.

Each function returns a pure, jit-safe schedule ``t -> lr`` that any
``lr``/``learning_rate`` argument of this package accepts.

**Counting.** A torch scheduler counts "epochs": calls to ``scheduler.step()``.
Ours count the step index passed in, and are aligned so that::

    schedule(t) == torch lr after t calls of scheduler.step()

(``schedule(0)`` is the lr right after the scheduler is built). Inside an
optimizer the schedule is called with the number of updates already applied,
so calling ``scheduler.step()`` once per ``optimizer.step()`` in torch and
passing the schedule as ``lr`` here give the same lr at every update.

**Closed forms.** Most torch schedulers update the lr recursively (each
``get_lr`` multiplies the previous lr by a factor); these functions evaluate
the closed form the recursion telescopes to. For the arguments accepted here
the two agree to about 1e-12 in float64 (the tests check 1e-10 against torch
itself); the docstrings note where torch's recursion has a quirk.

**Built on the curves.** Where the curve is one of :mod:`.curves` or
:mod:`.notes`, the schedule is that curve with torch's arguments translated:
``step_lr`` is :func:`.notes.step_decay`, ``exponential_lr``
:func:`.curves.exponential_decay`, ``multi_step_lr``
:func:`.curves.piecewise_constant_schedule` and ``linear_lr``
:func:`.curves.linear_schedule`. ``cosine_annealing_lr``,
``polynomial_lr`` and ``one_cycle_lr`` keep their own arithmetic (below):
the curves' ``1 + cos`` and ``1 - t / T`` lose the float32 digits kept here.

**Precision.** torch forms these values in Python doubles. In float32 a
literal such as ``gamma = 0.95`` is rounded before ``gamma ** t`` and that
error grows with ``t``, and ``1 + cos(x)`` near its zero loses all its digits;
so for such a ``gamma`` powers are taken as ``exp(t * log(gamma))`` with the
logarithm in double (where ``gamma`` is exact in the float dtype, as every
float is under x64, the curve's own ``gamma ** t`` is used), and cosines are
written as squared sines of the distance to the end of the phase. Every
schedule stays within a few float32 ulps of torch's numbers.

Per-parameter-group lists of ``base_lr`` are not supported (build one schedule
per group), nor are ``last_epoch`` (shift ``t`` instead) and OneCycleLR's
``cycle_momentum``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.core import validation
from jaxopt_notes.core.base import Schedule
from jaxopt_notes.schedules import curves, notes

__all__ = [
    "cosine_annealing_lr",
    "exponential_lr",
    "linear_lr",
    "multi_step_lr",
    "one_cycle_lr",
    "polynomial_lr",
    "step_lr",
]

ArrayLike = jax.typing.ArrayLike


def _float_dtype() -> Any:
  # float64 only under jax x64, the way torch's scalars follow its default dtype.
  return jax.dtypes.canonicalize_dtype(jnp.float64)


def _exact(x: float) -> bool:
  """Whether the Python float ``x`` is exact in the float dtype (all are under x64)."""
  return float(np.asarray(x, _float_dtype())) == x


def _geometric(curve: Schedule | None, base_lr: float, gamma: float, exponent) -> Schedule:
  """``curve``, a ``base_lr * gamma ** exponent(t)`` curve, unless ``gamma`` is inexact.

  A ``gamma`` that the float dtype rounds (0.95 in float32) would be rounded
  before the curve's power, an error the exponent multiplies (4e-6 relative
  by ``t = 300`` at 0.95); :func:`_power` keeps it in double instead. Decided
  per call, as x64 may be switched on after the schedule is built.
  """

  def schedule(count: ArrayLike) -> ArrayLike:
    if curve is not None and _exact(gamma):
      return curve(count)
    # As the curves: a negative count is held at step 0.
    return base_lr * _power(gamma, exponent(jnp.maximum(_steps(count), 0)))

  return schedule


def _power(base: float, exponent: ArrayLike) -> jax.Array:
  """``base ** exponent`` for a Python ``base >= 0``, without rounding it first.

  ``exp(exponent * log(base))`` with ``log`` taken in double where ``base``
  is not exact in the float dtype: ``jnp.power`` would round it first (0.97
  becomes 0.97000003), an error that ``exponent`` multiplies.
  """
  exponent = jnp.asarray(exponent, _float_dtype())
  if _exact(base):
    # Exactly representable (0.5, 0.25, 0): nothing is rounded, and pow
    # avoids exp's error of |exponent * log(base)| ulps.
    return jnp.power(jnp.asarray(base, exponent.dtype), exponent)
  return jnp.exp(exponent * math.log(base))


def _one_minus_power(base: Any, exponent: ArrayLike) -> jax.Array:
  """``1 - base ** exponent`` as ``-expm1(exponent * log(base))``.

  Accurate to a few ulps even in float32, where ``1 - 0.999 ** t`` computed
  directly loses five digits; ``base`` may be traced.
  """
  exponent = jnp.asarray(exponent, _float_dtype())
  if isinstance(base, jax.core.Tracer):
    return -jnp.expm1(exponent * jnp.log(base))
  log_base = -math.inf if float(base) == 0.0 else math.log(float(base))
  return -jnp.expm1(exponent * log_base)


def _sin2_half_pi(x: jax.Array) -> jax.Array:
  """``sin(pi x / 2) ** 2``: ``(1 - cos(pi x)) / 2`` with no cancellation."""
  return jnp.square(jnp.sin((math.pi / 2) * x))


def _steps(count: ArrayLike) -> jax.Array:
  return jnp.asarray(count)


def _float_steps(count: ArrayLike) -> jax.Array:
  """The count in the float dtype, for the curves: under x64 JAX divides an
  ``int32`` count in float32, where torch's step-dependent scalars are double."""
  return _steps(count).astype(_float_dtype())


def step_lr(base_lr: float, step_size: int, gamma: float = 0.1) -> Schedule:
  r"""``torch.optim.lr_scheduler.StepLR``: decay by ``gamma`` every ``step_size`` steps.

  .. math:: \eta_t = \eta_0\, \gamma^{\lfloor t / s \rfloor}

  torch multiplies the current lr by ``gamma`` whenever ``t`` is a non-zero
  multiple of ``step_size``; this is the product in closed form. Built on
  the notes' "discrete staircase" decay (note 004),
  ``step_decay(base_lr, factor=gamma, every_steps=step_size)``, whose integer
  floor division is exact at every boundary (optax's
  ``exponential_decay(..., staircase=True)`` is the same rule with a float
  floor). A ``gamma`` that float32 rounds (0.97) is raised to the power in
  double instead, and ``gamma = 0`` (which ``step_decay`` refuses) too.

  Args:
    base_lr: the optimizer's initial lr, ``>= 0``.
    step_size: period of the decay in steps, an integer ``>= 1``.
    gamma: multiplicative factor, ``>= 0`` (default 0.1, as torch).

  Examples:
    >>> import jaxopt_notes.torch_compat as tc
    >>> sched = tc.step_lr(0.1, step_size=3, gamma=0.5)
    >>> [round(float(sched(t)), 4) for t in (0, 2, 3, 6)]
    [0.1, 0.1, 0.05, 0.025]
  """
  base_lr = validation.check_real("base_lr", base_lr)
  step_size = validation.check_int("step_size", step_size)
  gamma = validation.check_real("gamma", gamma)
  curve = notes.step_decay(base_lr, gamma, step_size) if gamma > 0 else None
  return _geometric(curve, base_lr, gamma, lambda t: t // step_size)


def multi_step_lr(
    base_lr: float, milestones: Iterable[int], gamma: float = 0.1
) -> Schedule:
  r"""``torch.optim.lr_scheduler.MultiStepLR``: decay by ``gamma`` at each milestone.

  .. math:: \eta_t = \eta_0\, \gamma^{\#\{m \in M : m \le t\}}

  A milestone listed ``k`` times multiplies by ``gamma^k``, as torch's
  ``Counter`` of milestones does; the order of ``milestones`` does not
  matter. Built on ``piecewise_constant_schedule(base_lr, {m: gamma**k})``
  over the distinct milestones ``m`` (``k`` their multiplicities, the scale
  formed in double), which multiplies in the float dtype as torch does in
  double.

  Args:
    base_lr: the optimizer's initial lr, ``>= 0``.
    milestones: step indices, integers ``>= 0``.
    gamma: multiplicative factor, ``>= 0`` (default 0.1).

  Examples:
    >>> import jaxopt_notes.torch_compat as tc
    >>> sched = tc.multi_step_lr(1.0, milestones=[2, 5], gamma=0.5)
    >>> [round(float(sched(t)), 4) for t in (0, 1, 2, 4, 5, 9)]
    [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
  """
  base_lr = validation.check_real("base_lr", base_lr)
  gamma = validation.check_real("gamma", gamma)
  if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Iterable):
    raise TypeError(f"`milestones` must be an iterable of integers; got {milestones!r}")
  marks = Counter(validation.check_int("milestones", m, minimum=0) for m in milestones)
  curve = curves.piecewise_constant_schedule(
      base_lr, {m: gamma**k for m, k in sorted(marks.items())}
  )
  # Without milestones the curve is the bare Python float; torch's is an lr.
  return lambda count: jnp.asarray(curve(count), _float_dtype())


def exponential_lr(base_lr: float, gamma: float) -> Schedule:
  r"""``torch.optim.lr_scheduler.ExponentialLR``: ``eta_t = eta_0 gamma^t``.

  torch multiplies by ``gamma`` at every step; this is the closed form.
  Built on ``exponential_decay(base_lr, transition_steps=1,
  decay_rate=gamma)``, the notes' ``0.95**epoch * alpha0`` (note 004).
  That curve rounds ``gamma`` to the float dtype before the power; where
  that rounding is inexact (0.95 in float32) the power is taken in double
  instead, and so is ``gamma = 0``, which ``exponential_decay`` refuses.
  ``gamma`` has no default, as in torch.

  Args:
    base_lr: the optimizer's initial lr, ``>= 0``.
    gamma: multiplicative factor per step, ``>= 0``.

  Examples:
    >>> import jaxopt_notes.torch_compat as tc
    >>> sched = tc.exponential_lr(1.0, gamma=0.9)
    >>> [round(float(sched(t)), 4) for t in (0, 1, 2, 10)]
    [1.0, 0.9, 0.81, 0.3487]
  """
  base_lr = validation.check_real("base_lr", base_lr)
  gamma = validation.check_real("gamma", gamma)
  decay = curves.exponential_decay(base_lr, 1, gamma) if gamma > 0 else None
  curve = decay and (lambda count: decay(_float_steps(count)))
  return _geometric(curve, base_lr, gamma, lambda t: t)


def cosine_annealing_lr(  # pylint: disable=invalid-name
    base_lr: float, T_max: int, eta_min: float = 0.0
) -> Schedule:
  r"""``torch.optim.lr_scheduler.CosineAnnealingLR`` (SGDR without restarts).

  .. math:: \eta_t = \eta_{min} + (\eta_0 - \eta_{min})\,
            \frac{1 + \cos(\pi t / T_{max})}{2}

  for every ``t``, including past ``T_max``: the lr then rises again and the
  curve is periodic with period ``2 T_max`` (no restart, no clamping). optax's
  ``cosine_decay_schedule`` instead holds ``alpha * init_value`` after
  ``decay_steps``; this one does not. Within ``[0, T_max]`` it is that curve
  (``alpha = eta_min / eta_0``), but it is not built on it: the curve's
  ``1 + cos`` cancels near ``T_max`` (5e-5 relative from torch at
  ``T_max = 100`` in float32, 3e-4 at 250), so this one keeps ``sin^2`` of the
  distance to ``T_max``, as :func:`one_cycle_lr`'s cosine phases do.

  torch computes this recursively (each step multiplies ``lr - eta_min`` by a
  ratio of cosines, with a special additive step at ``t = T_max + 1 mod
  2 T_max`` where the ratio would divide by zero). For a scheduler built with
  the default ``last_epoch=-1`` and stepped one at a time, that recursion
  telescopes to the formula above exactly, and torch's numbers agree with it
  to about 1e-12 relative at every ``t`` (checked up to ``6 T_max`` in the
  tests). It differs only if the optimizer's lr is changed by hand between
  steps (torch's recursion carries such a change forward; a schedule cannot)
  or when stepping with the deprecated ``scheduler.step(epoch)``.

  Args:
    base_lr: the optimizer's initial lr ``eta_0``, ``>= 0``.
    T_max: half-period in steps, an integer ``>= 1`` (torch's name).
    eta_min: the lr at ``t = T_max`` (default 0.0), ``>= 0``.

  Examples:
    >>> import jaxopt_notes.torch_compat as tc
    >>> sched = tc.cosine_annealing_lr(1.0, T_max=4, eta_min=0.2)
    >>> [round(float(sched(t)), 4) for t in (0, 2, 4, 6, 8)]  # down to eta_min at T_max, then up again
    [1.0, 0.6, 0.2, 0.6, 1.0]
  """
  base_lr = validation.check_real("base_lr", base_lr)
  T_max = validation.check_int("T_max", T_max)  # pylint: disable=invalid-name
  eta_min = validation.check_real("eta_min", eta_min)
  span = base_lr - eta_min

  def schedule(count: ArrayLike) -> jax.Array:
    phase = jnp.mod(_steps(count), 2 * T_max)
    # (1 + cos(pi p / T)) / 2 == sin^2(pi (T - p) / (2T)); T - p is exact.
    left = (T_max - phase).astype(_float_dtype()) / T_max
    return eta_min + span * _sin2_half_pi(left)

  return schedule


def linear_lr(
    base_lr: float,
    start_factor: float = 1.0 / 3,
    end_factor: float = 1.0,
    total_iters: int = 5,
) -> Schedule:
  r"""``torch.optim.lr_scheduler.LinearLR``: a linear ramp of the lr factor.

  .. math:: \eta_t = \eta_0 \Big(s + (e - s)\frac{\min(t, T)}{T}\Big)

  then constant at ``eta_0 * end_factor``. torch's defaults (a 5-step warm-up
  from a third of the lr). Built on ``linear_schedule(eta_0 s, eta_0 e, T)``
  (absolute values instead of factors); a rising ramp runs it backwards,
  from ``eta_0 e`` at ``T - t``, so that the smaller end is the one it adds
  to and a small start (``s = 0.01``) keeps its float32 digits.

  Args:
    base_lr: the optimizer's initial lr ``eta_0``, ``>= 0``.
    start_factor: ``s`` in ``(0, 1]``, as torch requires (default 1/3).
    end_factor: ``e`` in ``[0, 1]`` (default 1.0).
    total_iters: ``T``, steps of the ramp, an integer ``>= 1`` (default 5;
      torch also accepts 0, meaning a constant ``eta_0 * start_factor``).

  Examples:
    >>> import jaxopt_notes.torch_compat as tc
    >>> sched = tc.linear_lr(0.6, start_factor=0.5, total_iters=4)
    >>> [round(float(sched(t)), 4) for t in (0, 1, 2, 4, 10)]
    [0.3, 0.375, 0.45, 0.6, 0.6]
  """
  base_lr = validation.check_real("base_lr", base_lr)
  start_factor = validation.check_real("start_factor", start_factor, strict=True)
  end_factor = validation.check_real("end_factor", end_factor)
  if start_factor > 1.0:
    raise ValueError(f"`start_factor` must lie in (0, 1]; got {start_factor!r}")
  if end_factor > 1.0:
    raise ValueError(f"`end_factor` must lie in [0, 1]; got {end_factor!r}")
  total_iters = validation.check_int("total_iters", total_iters)
  start, end = base_lr * start_factor, base_lr * end_factor
  if end < start:
    ramp = curves.linear_schedule(start, end, total_iters)
    return lambda count: ramp(_float_steps(count))
  backwards = curves.linear_schedule(end, start, total_iters)
  return lambda count: backwards(_float_steps(total_iters - _steps(count)))


def polynomial_lr(base_lr: float, total_iters: int = 5, power: float = 1.0) -> Schedule:
  r"""``torch.optim.lr_scheduler.PolynomialLR``: polynomial decay to 0.

  .. math:: \eta_t = \eta_0 \Big(1 - \frac{\min(t, T)}{T}\Big)^{p}

  reaching exactly 0 at ``t = T`` and staying there. torch's defaults.
  optax's ``polynomial_schedule`` decays to an ``end_value`` with
  ``transition_steps``/``transition_begin``; with ``end_value=0`` and
  ``transition_steps=T`` it is the same curve, but it is not built on it:
  its base ``1 - t / T`` is rounded twice (7e-6 relative from torch at
  ``T = 150``, ``p = 2`` in float32) and under jit is not exactly 0 at
  ``t = T`` (``p = 0.5`` then gives 7e-5, not 0); ``(T - t) / T`` here is
  one rounding and exactly 0.

  Args:
    base_lr: the optimizer's initial lr, ``>= 0``.
    total_iters: ``T``, an integer ``>= 1`` (default 5).
    power: ``p >= 0`` (default 1.0, a linear decay).

  Examples:
    >>> import jaxopt_notes.torch_compat as tc
    >>> sched = tc.polynomial_lr(1.0, total_iters=4, power=2.0)
    >>> [round(float(sched(t)), 4) for t in (0, 1, 2, 4, 10)]
    [1.0, 0.5625, 0.25, 0.0, 0.0]
  """
  base_lr = validation.check_real("base_lr", base_lr)
  total_iters = validation.check_int("total_iters", total_iters)
  power = validation.check_real("power", power)

  def schedule(count: ArrayLike) -> jax.Array:
    left = (total_iters - jnp.minimum(_steps(count), total_iters)).astype(_float_dtype())
    return base_lr * (left / total_iters) ** power

  return schedule


def _anneal(start: float, end: float, strategy: str):
  """``f(done, left)``: from ``start`` (``done = 0``) to ``end`` (``left = 0``).

  ``done`` and ``left = 1 - done`` are both formed from the step directly;
  the formula is anchored at the smaller endpoint so that a tiny final lr is
  not the difference of two large numbers.
  """
  weight = (lambda x: x) if strategy == "linear" else _sin2_half_pi
  if end < start:
    return lambda done, left: end + (start - end) * weight(left)
  return lambda done, left: start + (end - start) * weight(done)


def one_cycle_lr(
    max_lr: float,
    total_steps: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> Schedule:
  r"""``torch.optim.lr_scheduler.OneCycleLR``: the 1cycle policy's lr.

  From ``initial = max_lr / div_factor`` up to ``max_lr`` over the first
  ``pct_start * total_steps - 1`` steps, then down to
  ``min = initial / final_div_factor`` at ``total_steps - 1``; with
  ``three_phase``, back down to ``initial`` by ``2 pct_start total_steps - 2``
  and only then to ``min``. Within a phase from ``a`` to ``b`` with progress
  ``p``, ``anneal_strategy="cos"`` gives
  :math:`b + (a - b)(1 + \cos \pi p) / 2` and ``"linear"`` gives
  :math:`a + (b - a) p`. Phase boundaries, including the ``- 1``/``- 2``
  offsets and fractional ends, are torch's, and so is the value at
  ``t = total_steps`` (one step past the end of the last phase).

  Differences from torch: torch raises once stepped past ``total_steps``; a
  jit-compiled schedule cannot, so ``t > total_steps`` returns the value at
  ``total_steps``. ``cycle_momentum`` (which rewrites the optimizer's
  momentum or ``betas[0]``) is not reproduced: only the lr. optax's
  ``cosine_onecycle_schedule`` differs in its phase boundaries (no ``- 1``
  offsets), its argument names, and has no linear or three-phase variant,
  so this is not built on it; nor are its phases built on
  ``linear_schedule``, whose ``1 - t / T`` (and the curve's ``1 + cos``)
  near the end of a phase cost the small final lr its float32 digits. The
  cosine phases share :func:`cosine_annealing_lr`'s ``sin^2`` form.
  Smith & Topin, "Super-Convergence", 2017.

  Args:
    max_lr: the peak lr, ``>= 0``.
    total_steps: length of the cycle; or give ``epochs`` and
      ``steps_per_epoch`` (``total_steps`` wins, as in torch).
    epochs: number of epochs, an integer ``>= 1``.
    steps_per_epoch: steps per epoch, an integer ``>= 1``.
    pct_start: fraction of the cycle spent increasing, in ``[0, 1]``
      (default 0.3).
    anneal_strategy: ``"cos"`` (default) or ``"linear"``.
    div_factor: ``initial = max_lr / div_factor``, ``> 0`` (default 25).
    final_div_factor: ``min = initial / final_div_factor``, ``> 0``
      (default 1e4).
    three_phase: use the symmetric three-phase cycle (default ``False``).

  Raises:
    ValueError: for bad arguments, and where torch itself would divide by
      zero: a first phase ending at step 0 (``pct_start * total_steps == 1``)
      or a last phase of zero length.

  Examples:
    >>> import jaxopt_notes.torch_compat as tc
    >>> sched = tc.one_cycle_lr(1.0, total_steps=100)
    >>> [round(float(sched(t)), 6) for t in (0, 29, 64, 99)]  # max_lr / 25, max_lr, halfway, max_lr / 25e4
    [0.04, 1.0, 0.500002, 4e-06]
  """
  max_lr = validation.check_real("max_lr", max_lr)
  if total_steps is not None:
    total_steps = validation.check_int("total_steps", total_steps)
  elif epochs is not None and steps_per_epoch is not None:
    total_steps = validation.check_int("epochs", epochs) * validation.check_int("steps_per_epoch", steps_per_epoch)
  else:
    raise ValueError("give `total_steps`, or both `epochs` and `steps_per_epoch`")
  pct_start = validation.check_real("pct_start", pct_start)
  if pct_start > 1.0:
    raise ValueError(f"`pct_start` must lie in [0, 1]; got {pct_start!r}")
  if anneal_strategy not in ("cos", "linear"):
    raise ValueError(f"`anneal_strategy` must be 'cos' or 'linear'; got {anneal_strategy!r}")
  div_factor = validation.check_real("div_factor", div_factor, strict=True)
  final_div_factor = validation.check_real("final_div_factor", final_div_factor, strict=True)
  if not isinstance(three_phase, bool):
    raise TypeError(f"`three_phase` must be a bool; got {three_phase!r}")

  initial = max_lr / div_factor
  low = initial / final_div_factor
  rise_end = pct_start * total_steps - 1.0
  if three_phase:
    ends = [rise_end, 2 * pct_start * total_steps - 2.0, total_steps - 1.0]
    levels = [(initial, max_lr), (max_lr, initial), (initial, low)]
  else:
    ends = [rise_end, total_steps - 1.0]
    levels = [(initial, max_lr), (max_lr, low)]
  starts = [0.0] + ends[:-1]
  if ends[0] == 0.0:
    raise ValueError(
        f"`pct_start` * `total_steps` == 1 ({pct_start!r} * {total_steps}) leaves the "
        "first phase no steps; torch's OneCycleLR divides by zero there"
    )
  if ends[-1] == starts[-1]:
    raise ValueError(
        f"`pct_start`={pct_start!r} leaves the last phase of the cycle no steps; "
        "torch's OneCycleLR divides by zero there"
    )
  curves = [_anneal(a, b, anneal_strategy) for a, b in levels]

  def schedule(count: ArrayLike) -> jax.Array:
    t = jnp.minimum(_steps(count), total_steps).astype(_float_dtype())

    def phase_value(i):
      length = ends[i] - starts[i]
      return curves[i]((t - starts[i]) / length, (ends[i] - t) / length)

    # torch takes the first phase whose end is >= t, else the last one.
    value = phase_value(len(ends) - 1)
    for i in reversed(range(len(ends) - 1)):
      value = jnp.where(t <= ends[i], phase_value(i), value)
    return value

  return schedule
