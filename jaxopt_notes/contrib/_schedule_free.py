r"""Schedule-Free: momentum replaced by interpolation and averaging.

Defazio, Yang, Mehta, Mishchenko, Khaled and Cutkosky, "The Road Less
Scheduled", 2024 (arXiv:2405.15682). The base optimizer steps a sequence
``z``; the gradient is taken at ``y``, an interpolation of ``z`` and the
running average ``x`` of the ``z`` iterates, which is what to evaluate:

.. math::
   y_t = (1-\beta_1) z_t + \beta_1 x_t, \qquad
   z_{t+1} = z_t + \mathrm{base}(\nabla f(y_t)), \qquad
   x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}

with :math:`c_{t+1} = w_{t+1} / \sum_{i \le t+1} w_i` and
:math:`w_t = t^r \, (\max_{i \le t} \eta_i)^{p}` (``r``, ``weight_lr_power``).
The params hold ``y``; ``x`` is recomputed from ``y`` and ``z`` by
:func:`schedule_free_eval_params`. optax.contrib's names, signatures and
numbers (0.2.8), plus the official ``schedulefree`` package's form
(``reference=True``).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.optimizers._common import LR, Num, descent_step
from jaxopt_notes.optimizers.sgd import sgd
from jaxopt_notes.schedules.interpolated import warmup_constant_schedule
from jaxopt_notes.transforms import adaptive, scaling

__all__ = [
    "ScheduleFreeState",
    "schedule_free",
    "schedule_free_adamw",
    "schedule_free_eval_params",
    "schedule_free_sgd",
]


class ScheduleFreeState(NamedTuple):
  """State of :func:`schedule_free` (optax's field names and order)."""

  b1: jax.Array  # beta_1 as a scalar of the params' lowest dtype: what eval needs to recover x
  weight_sum: jax.Array  # sum of the averaging weights w_i so far
  step_count: jax.Array  # int32 scalar, 1 + the steps taken (optax's count starts at 1)
  max_lr: jax.Array  # the largest learning rate read so far
  base_optimizer_state: base.OptState  # the base optimizer's own state
  z: base.Params  # the base optimizer's iterates, shaped like the params


def _x_from(y: Any, z: Any, b1: Any) -> Any:
  # y = b1 x + (1 - b1) z solved for x, in optax's rounding order.
  return jax.tree.map(lambda yi, zi: (yi - (1.0 - b1) * zi) / b1, y, z)


def schedule_free_eval_params(state: base.OptState, params: base.Params) -> base.Params:
  r"""The params to evaluate at: the average ``x`` behind the training params ``y``.

  .. math:: x = (y - (1 - \beta_1) z) / \beta_1

  Same as ``optax.contrib.schedule_free_eval_params``; also accepts the state
  of an ``inject_hyperparams`` or ``MultiSteps`` wrapping (it unwraps
  ``inner_state`` / ``inner_opt_state``). Checked bitwise against optax; on
  ``reference=True`` runs against ``schedulefree``'s ``optimizer.eval()``
  params (see :func:`schedule_free_adamw` for the tolerances).

  Args:
    state: a :class:`ScheduleFreeState` (or a wrapper's state holding one).
    params: the training params ``y``.

  Raises:
    ValueError: naming ``state`` when it holds no :class:`ScheduleFreeState`.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.contrib as jnc
    >>> tx = jnc.schedule_free_sgd(0.5)
    >>> params = jnp.array([2.0])
    >>> state = tx.init(params)
    >>> updates, state = tx.update(params, state, params)  # the gradient of x^2 / 2
    >>> y = params + updates
    >>> print(y, jnc.schedule_free_eval_params(state, y))  # y = 0.9 x + 0.1 z, x = z = 1
    [1.] [1.]
  """
  inner = state
  while not (hasattr(inner, "b1") and hasattr(inner, "z")):
    nested = getattr(inner, "inner_state", getattr(inner, "inner_opt_state", None))
    if nested is None:
      raise ValueError(
          "`state` must be a ScheduleFreeState (the state of schedule_free, "
          f"schedule_free_adamw or schedule_free_sgd); got {type(state).__name__}"
      )
    inner = nested
  return _x_from(params, inner.z, inner.b1)


def _check_wrapper_args(learning_rate, b1, weight_lr_power, state_dtype, r) -> None:
  validation.check_learning_rate(learning_rate)
  # x = (y - (1 - b1) z) / b1: b1 = 0 would leave x unrecoverable.
  validation.check_that("b1", b1, lambda v: (v > 0) & (v <= 1), "a number in (0, 1]")
  validation.check_non_negative("weight_lr_power", weight_lr_power)
  validation.check_dtype("state_dtype", state_dtype)
  validation.check_non_negative("r", r)


def _wrap(base_optimizer, learning_rate, b1, weight_lr_power, state_dtype, r, lr_offset):
  """:func:`schedule_free` reading a schedule at ``step_count - lr_offset``.

  optax reads it at ``step_count`` (1, 2, ...) although the base optimizer
  reads its own at 0, 1, ...; ``lr_offset=1`` reads both at the same step.
  """
  base_optimizer = base.with_extra_args_support(base.as_transform(base_optimizer, "base_optimizer"))
  state_dtype = validation.check_dtype("state_dtype", state_dtype)

  def init_fn(params):
    validation.check_float_params(params)
    # The lowest dtype: the scalars must not promote bfloat16 params' updates.
    dtype = tree_lib.dtype(params, "lowest")
    # A copy, so that z and the params can both be donated to a jitted step.
    z = jax.tree.map(lambda t: t.copy(), tree_lib.tree_cast(params, state_dtype))
    return ScheduleFreeState(
        b1=jnp.asarray(b1, dtype=dtype),
        weight_sum=jnp.zeros([], dtype=dtype),
        step_count=jnp.ones([], dtype=jnp.int32),
        max_lr=jnp.zeros([], dtype=dtype),
        base_optimizer_state=base_optimizer.init(params),
        z=z,
    )

  def update_fn(updates, state, params=None, **extra_args):
    if params is None:
      raise ValueError(base.NO_PARAMS_MSG)
    combine.check_updates_match_params(updates, params)
    lr = learning_rate
    if callable(learning_rate):
      lr = jnp.asarray(learning_rate(state.step_count - lr_offset), dtype=state.max_lr.dtype)
    max_lr = jnp.maximum(state.max_lr, lr)
    weight = jnp.asarray(state.step_count, state.max_lr.dtype) ** r * max_lr**weight_lr_power
    total = state.weight_sum + weight
    # 0 / 0 (a zero learning rate so far) is no averaging step, not a NaN.
    ck = jnp.where(
        jnp.isnan(weight) | jnp.isnan(total),
        jnp.full(weight.shape, jnp.nan, weight.dtype),
        jnp.nan_to_num(weight / total, nan=0.0, posinf=jnp.inf),
    )
    steps, base_state = base_optimizer.update(updates, state.base_optimizer_state, params, **extra_args)
    z = jax.tree.map(lambda zi, ui: jnp.asarray(zi + ui).astype(jnp.asarray(zi).dtype), state.z, steps)
    # x is recomputed, not stored: y may have been changed by a transform wrapped on top.
    x = jax.tree.map(lambda xi, zi: (1.0 - ck) * xi + ck * zi, _x_from(params, state.z, b1), z)
    y = jax.tree.map(lambda xi, zi: b1 * xi + (1.0 - b1) * zi, x, z)
    out = tree_lib.tree_cast_like(jax.tree.map(lambda new, old: new - old, y, params), params)
    return out, ScheduleFreeState(
        b1=state.b1, weight_sum=total, step_count=tree_lib.safe_increment(state.step_count),
        max_lr=max_lr, base_optimizer_state=base_state, z=z,
    )

  return base.GradientTransformationExtraArgs(init_fn, update_fn)


def schedule_free(
    base_optimizer: base.GradientTransformation,
    learning_rate: LR,
    b1: Num = 0.9,
    weight_lr_power: Num = 2.0,
    state_dtype: Optional[Any] = None,
    *,
    r: Num = 0.0,
) -> base.GradientTransformationExtraArgs:
  r"""Makes ``base_optimizer`` schedule-free: its steps move ``z``, the params hold ``y``.

  .. math::
     z_{t+1} = z_t + \mathrm{base}(g_t), \quad
     x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}, \quad
     y_{t+1} = \beta_1 x_{t+1} + (1 - \beta_1) z_{t+1}

  with :math:`c_{t+1} = w_{t+1} / \sum_{i \le t+1} w_i`,
  :math:`w_t = t^r \, (\max_{i \le t} \eta_i)^{p}` and ``learning_rate``
  read at ``t = step_count`` (1, 2, ...). Turn the base optimizer's own
  momentum off (e.g. ``adam(lr, b1=0)``); evaluate at
  :func:`schedule_free_eval_params`. Defazio et al., "The Road Less
  Scheduled", 2024 (arXiv:2405.15682). Defaults are optax's. Same as
  ``optax.contrib.schedule_free``, bitwise on 50-step trajectories (float32
  and float64), except: ``r`` (optax has none; ``r=0`` is optax), the
  update comes back in the params' dtypes (optax's NaN guard promotes a
  bfloat16 step to float32), and bad arguments raise here.

  Args:
    base_optimizer: the transform whose (negative) steps move ``z``.
    learning_rate: the rate the weights ``w`` are built from, a float or a
      schedule (give the base optimizer the same one).
    b1: :math:`\beta_1` in ``(0, 1]``, the interpolation weight (default 0.9).
    weight_lr_power: :math:`p >= 0` (default 2.0): down-weights the warm-up
      iterates in the average.
    state_dtype: dtype of ``z`` (default: the params').
    r: :math:`r >= 0`, polynomial weighting of the average (default 0.0).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> import jaxopt_notes.contrib as jnc
    >>> f = lambda x: jnp.sum(x ** 2)
    >>> tx = jnc.schedule_free(jn.sgd(0.1), 0.1)
    >>> params = jnp.array([1.0, 2.0, 3.0])
    >>> state = tx.init(params)
    >>> for _ in range(30):
    ...   updates, state = tx.update(jax.grad(f)(params), state, params)
    ...   params = params + updates
    >>> print(f"{float(f(jnc.schedule_free_eval_params(state, params))):.4f}")  # from 14
    0.0803
  """
  _check_wrapper_args(learning_rate, b1, weight_lr_power, state_dtype, r)
  return _wrap(base_optimizer, learning_rate, b1, weight_lr_power, state_dtype, r, lr_offset=0)


def _no_warmup(warmup_steps: Any) -> bool:
  if warmup_steps is None or isinstance(warmup_steps, jax.core.Tracer):
    return warmup_steps is None
  validation.check_steps("warmup_steps", warmup_steps, allow_zero=True)
  return float(np.asarray(warmup_steps)) == 0


def _scheduled(learning_rate: LR, warmup_steps: Any, reference: bool) -> LR:
  """The rate with its linear warm-up: optax's schedule, or the reference's ramp.

  optax's ``warmup_constant_schedule(0, lr, W)`` is read at ``t - 1`` by the
  base optimizer (0 at the first step) and at ``t`` by the weights; the
  reference's ``lr * min(k + 1, W) / W`` at ``k = t - 1`` by both.
  """
  validation.check_flags(reference=reference)
  if _no_warmup(warmup_steps):
    return learning_rate
  if not reference:
    if callable(learning_rate):
      raise TypeError(
          "`learning_rate` must be a number when `warmup_steps` is given (optax's form ramps a "
          f"constant); pass reference=True to ramp a schedule; got {learning_rate!r}"
      )
    return warmup_constant_schedule(0, learning_rate, warmup_steps)

  # (k + 1) / W as torch's Python float: in float64 whenever x64 is on (an
  # int32 count divides to float32 otherwise).
  real = jax.dtypes.canonicalize_dtype(jnp.float64)

  def ramped(count):
    rate = learning_rate(count) if callable(learning_rate) else learning_rate
    return rate * (jnp.minimum(jnp.asarray(count, real) + 1, warmup_steps) / warmup_steps)

  return ramped


def _check_decay(weight_decay: Any) -> None:
  if not callable(weight_decay):
    validation.check_non_negative("weight_decay", weight_decay)


def schedule_free_sgd(
    learning_rate: LR = 1.0,
    warmup_steps: Optional[int] = None,
    b1: Num = 0.9,
    weight_decay: Optional[Num] = None,
    weight_lr_power: Num = 2.0,
    state_dtype: Optional[Any] = None,
    *,
    reference: bool = False,
    r: Num = 0.0,
) -> base.GradientTransformationExtraArgs:
  r"""Schedule-Free SGD: :func:`schedule_free` over ``sgd``, weight decay at ``y``.

  .. math::
     z_{t+1} = z_t - \eta_t (g_t + \lambda y_t), \quad
     x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}, \quad
     y_{t+1} = \beta_1 x_{t+1} + (1 - \beta_1) z_{t+1}

  Defazio et al., 2024 (arXiv:2405.15682). Defaults are optax's (and
  ``SGDScheduleFree``'s: ``lr=1.0``, ``momentum=0.9``); ``warmup_steps``
  ramps the rate linearly from 0. Chain: ``add_decayed_weights`` (if
  ``weight_decay`` is not ``None``), ``sgd``, wrapped by
  :func:`schedule_free`.

  ``reference=False`` (default) is ``optax.contrib.schedule_free_sgd``,
  bitwise on 50-step trajectories; ``reference=True`` is
  ``schedulefree.SGDScheduleFree`` (1.4.1; ``SGDScheduleFreeReference`` is
  the same rule), checked in lockstep for 50 steps, every step's params, ``z``
  and the ``optimizer.eval()`` params, at rtol 1e-12 / atol 1e-13 in float64
  (measured worst 1.3e-14 relative) and rtol 1e-4 / atol 2e-5 in float32
  (measured worst 6e-7 absolute; torch builds its scalars in float64).
  The two forms differ in when the rate is read (see
  :func:`schedule_free_adamw`, which lists every difference); without
  warm-up and with a constant rate they are the same.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule (default 1.0).
    warmup_steps: length of the linear warm-up (default ``None``: none;
      ``0`` also means none, where optax would keep the rate at 0).
    b1: :math:`\beta_1` in ``(0, 1]`` (default 0.9).
    weight_decay: :math:`\lambda >= 0`, times the rate, at ``y``, or a
      schedule (default ``None``).
    weight_lr_power: :math:`p >= 0` of the averaging weights (default 2.0).
    state_dtype: dtype of ``z`` (default: the params').
    reference: the ``schedulefree`` package's form (default ``False``).
    r: :math:`r >= 0`, polynomial weighting of the average (default 0.0).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.contrib as jnc
    >>> f = lambda x: jnp.sum(x ** 2)
    >>> tx = jnc.schedule_free_sgd(0.1, warmup_steps=5, reference=True)
    >>> params = jnp.array([1.0, 2.0, 3.0])
    >>> state = tx.init(params)
    >>> for _ in range(30):
    ...   updates, state = tx.update(jax.grad(f)(params), state, params)
    ...   params = params + updates
    >>> print(f"{float(f(jnc.schedule_free_eval_params(state, params))):.4f}")  # from 14
    0.0476
  """
  _check_wrapper_args(learning_rate, b1, weight_lr_power, state_dtype, r)
  rate = _scheduled(learning_rate, warmup_steps, reference)
  optimizer = sgd(rate)
  if weight_decay is not None:
    _check_decay(weight_decay)
    optimizer = combine.chain(scaling.add_decayed_weights(weight_decay), optimizer)
  return _wrap(optimizer, rate, b1, weight_lr_power, state_dtype, r, lr_offset=int(reference))


def schedule_free_adamw(
    learning_rate: LR = 0.0025,
    warmup_steps: Optional[int] = None,
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-8,
    weight_decay: Num = 0.0,
    weight_lr_power: Num = 2.0,
    state_dtype: Optional[Any] = None,
    *,
    reference: bool = False,
    r: Num = 0.0,
) -> base.GradientTransformationExtraArgs:
  r"""Schedule-Free AdamW: RMS-scaled steps of ``z``, decoupled weight decay at ``y``.

  .. math::
     \nu_t = \beta_2 \nu_{t-1} + (1-\beta_2) g_t^2, \quad
     z_{t+1} = z_t - \eta_t \Big(\frac{g_t}{\sqrt{\nu_t / (1-\beta_2^t)} + \epsilon}
       + \lambda y_t\Big)

  then ``x`` and ``y`` as in :func:`schedule_free`. Defazio et al., "The
  Road Less Scheduled", 2024 (arXiv:2405.15682). Defaults are optax's and
  ``AdamWScheduleFree``'s (``lr=0.0025``, ``betas=(0.9, 0.999)``,
  ``eps=1e-8``). Chain: ``scale_by_rms(b2, eps, eps_in_sqrt=False,
  bias_correction=True)``, ``add_decayed_weights``, the step, wrapped by
  :func:`schedule_free`.

  ``reference=False`` (default) is ``optax.contrib.schedule_free_adamw``,
  bitwise on 50-step trajectories (float32, float64). ``reference=True`` is
  ``schedulefree.AdamWScheduleFree`` (1.4.1; ``AdamWScheduleFreeReference``
  is the same rule), checked in lockstep against it for 50 steps, every
  step's params, ``z`` and the ``optimizer.eval()`` params, at rtol 1e-12 /
  atol 1e-13 in float64 (measured worst 8e-15 relative) and rtol 1e-4 / atol
  2e-5 in float32 (measured worst 9e-6 absolute, 6e-5 relative: torch's
  float64 scalars, amplified by ``g / sqrt(nu)`` where ``g`` is small).
  Where optax's form differs from the reference:

  * the rate of the ``z`` step lags the weights' by one step: optax reads
    its warm-up ``warmup_constant_schedule(0, lr, W)`` (or a schedule) at
    ``k`` (0, 1, ...) in the base optimizer but at ``k + 1`` for
    ``max_lr`` and the weights; the first ``z`` step is therefore 0 and the
    peak is reached a step late. The reference uses
    :math:`\eta_k = \mathrm{lr}(k) \min(k+1, W) / W` for both
    (``reference=True`` does; a schedule is read at ``k``, as torch reads a
    ``LambdaLR``-set rate);
  * the reference weights :math:`w_t = t^r \eta_{max}^p`; optax has no
    ``r`` (here ``r`` is offered in both forms, default 0);
  * the reference starts ``lr_max`` at -1, optax at 0 (equal for rates >= 0);
  * the reference builds its scalars (weights, ``c``, ``1 - b2^t``) as Python
    float64 whatever the params' dtype; here they are in the params' dtype;
  * the same rule otherwise, arithmetic apart: bias correction of ``nu``
    (not of the rate), ``eps`` after the root, weight decay at ``y`` times
    the rate, ``y`` held in the params, ``x = (y - (1 - b1) z) / b1`` for
    evaluation (torch's ``eval()`` lerps). The reference's train/eval modes
    are :func:`schedule_free_eval_params` here: the params stay ``y``.
    ``AdamWScheduleFreePaper`` (the pre-1.3 rule: the rate times
    ``sqrt(1 - b2^t)``, which also enters the weights) is not offered.

  Both forms differ from optax in: ``warmup_steps=0`` means no warm-up
  (optax's schedule then stays at 0 and nothing trains), the update is in
  the params' dtypes, and bad arguments raise when built.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule (default 0.0025).
    warmup_steps: length of the linear warm-up (default ``None``: none).
    b1: :math:`\beta_1` in ``(0, 1]``, the interpolation weight (default 0.9).
    b2: :math:`\beta_2` in ``[0, 1)`` (default 0.999).
    eps: added after the root (default 1e-8).
    weight_decay: :math:`\lambda >= 0` at ``y``, or a schedule (default 0.0).
    weight_lr_power: :math:`p >= 0` of the averaging weights (default 2.0).
    state_dtype: dtype of ``z`` (default: the params').
    reference: the ``schedulefree`` package's form (default ``False``).
    r: :math:`r >= 0`, polynomial weighting of the average (default 0.0).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.contrib as jnc
    >>> f = lambda x: jnp.sum(x ** 2)
    >>> tx = jnc.schedule_free_adamw(0.5, warmup_steps=5, reference=True)
    >>> params = jnp.array([1.0, 2.0, 3.0])
    >>> state = tx.init(params)
    >>> for _ in range(30):
    ...   updates, state = tx.update(jax.grad(f)(params), state, params)
    ...   params = params + updates
    >>> print(f"{float(f(jnc.schedule_free_eval_params(state, params))):.4f}")  # from 14
    0.0495
  """
  _check_wrapper_args(learning_rate, b1, weight_lr_power, state_dtype, r)
  validation.check_unit_interval("b2", b2)
  validation.check_non_negative("eps", eps)
  _check_decay(weight_decay)
  rate = _scheduled(learning_rate, warmup_steps, reference)
  optimizer = combine.chain(
      adaptive.scale_by_rms(decay=b2, eps=eps, eps_in_sqrt=False, bias_correction=True),
      scaling.add_decayed_weights(weight_decay),
      descent_step(rate),
  )
  return _wrap(optimizer, rate, b1, weight_lr_power, state_dtype, r, lr_offset=int(reference))
