"""Learning-rate-free AdamW: D-Adaptation and Prodigy.

Both run AdamW with a step ``d * eta_t`` whose scale ``d`` is an estimate of
the distance from the initial point to a solution, grown from ``estim_lr0``
as the run reveals it: a weighted sum of ``<g_k, x_0 - x_k>`` (Prodigy) or of
``<g_k, s_k / sqrt(v_k)>`` (D-Adaptation) over the l1 norm of an EMA of the
gradients. ``d`` never decreases. ``eta_t`` (``learning_rate``) is a
schedule around 1.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib

__all__ = ["DAdaptAdamWState", "ProdigyCappedState", "ProdigyState", "dadapt_adamw", "prodigy"]


class ProdigyState(NamedTuple):
  """State of :func:`prodigy`."""

  exp_avg: base.Updates  # EMA of d * g
  exp_avg_sq: base.Updates  # EMA of (d * g)^2
  grad_sum: base.Updates  # s: beta3-discounted sum of the weighted d * g
  params0: base.Updates  # x_0, the params given to init
  estim_lr: jax.typing.ArrayLike  # d, scalar in the params' lowest dtype
  numerator_weighted: jax.typing.ArrayLike  # r: discounted sum of <g, x_0 - x>, scalar
  count: jax.typing.ArrayLike  # type: ignore[assignment]  # named like tuple.count, as optax's; steps taken, int32 scalar


class ProdigyCappedState(NamedTuple):
  """State of :func:`prodigy` with a finite ``growth_rate``."""

  inner: ProdigyState  # optax's state; its estim_lr is the capped d
  estim_lr_max: jax.typing.ArrayLike  # the largest estimate of d so far, d_0 at first


class DAdaptAdamWState(NamedTuple):
  """State of :func:`dadapt_adamw`."""

  exp_avg: base.Updates  # EMA of d * eta * g
  exp_avg_sq: base.Updates  # EMA of g^2
  grad_sum: base.Updates  # s: EMA (decay sqrt(b2)) of d * eta * g
  estim_lr: jax.typing.ArrayLike  # d, scalar in the params' lowest dtype
  numerator_weighted: jax.typing.ArrayLike  # EMA of d * eta * <g, s / (sqrt(v) + eps)>, scalar
  count: jax.typing.ArrayLike  # type: ignore[assignment]  # named like tuple.count, as optax's; steps taken, int32 scalar


def _check_common(learning_rate: Any, betas: Any, eps: Any, estim_lr0: Any, weight_decay: Any) -> None:
  validation.check_learning_rate(learning_rate)
  if not isinstance(betas, (tuple, list)) or len(betas) != 2:
    raise ValueError(f"`betas` must be a pair (beta1, beta2); got {betas!r}")
  validation.check_unit_interval("betas[0]", betas[0])
  validation.check_unit_interval("betas[1]", betas[1])
  validation.check_non_negative("eps", eps)
  # estim_lr0 divides Prodigy's weights and is d's floor: 0 would give 0/0.
  validation.check_positive("estim_lr0", estim_lr0)
  validation.check_finite("weight_decay", weight_decay)


def _reference_flags(reference: Any, bias_correction: Any) -> bool:
  """Whether Adam's bias correction is on: optax's form always has it, the
  authors' packages default to ``use_bias_correction=False``."""
  validation.check_flags(reference=reference)
  if bias_correction is None:
    return not reference
  validation.check_flags(bias_correction=bias_correction)
  return bias_correction


def _growth_limited(growth_rate: Any) -> bool:
  """Checks ``growth_rate``; whether it caps ``d`` (left out when a Python inf, so the default is optax's program)."""
  validation.check_that("growth_rate", growth_rate, lambda v: v >= 1, "a number >= 1 (inf: no limit)")
  return not (validation.is_python_number(growth_rate) and growth_rate == math.inf)


def _adam_step_count(learning_rate: Any, count: jax.Array, b1: Any, b2: Any, bias_correction: bool):
  """``(eta_t, c_t, t + 1)``: the schedule read at the count before the increment, Adam's correction."""
  eta = learning_rate(count) if callable(learning_rate) else learning_rate
  count = tree_lib.safe_increment(count)
  # 1.0 when off: d * eta * 1.0 rounds as d * eta does.
  correction = ((1 - b2**count) ** 0.5) / (1 - b1**count) if bias_correction else 1.0
  return eta, correction, count


def _init_scalars(params: Any, estim_lr0: Any):
  validation.check_float_params(params)
  dtype = tree_lib.dtype(params, "lowest")
  return jnp.asarray(estim_lr0, dtype=dtype), jnp.zeros((), dtype), jnp.zeros((), jnp.int32)


def prodigy(
    learning_rate: base.ScalarOrSchedule = 1.0,
    betas: tuple[jax.typing.ArrayLike, jax.typing.ArrayLike] = (0.9, 0.999),
    beta3: Optional[jax.typing.ArrayLike] = None,
    eps: jax.typing.ArrayLike = 1e-8,
    estim_lr0: jax.typing.ArrayLike = 1e-6,
    estim_lr_coef: jax.typing.ArrayLike = 1.0,
    weight_decay: jax.typing.ArrayLike = 0.0,
    safeguard_warmup: bool = False,
    *,
    reference: bool = False,
    bias_correction: Optional[bool] = None,
    growth_rate: jax.typing.ArrayLike = float("inf"),
) -> base.GradientTransformationExtraArgs:
  r"""Prodigy: AdamW whose step scale ``d`` estimates the distance to a solution.

  With :math:`\eta_t` the schedule, :math:`c_t = \sqrt{1-\beta_2^t}/(1-\beta_1^t)`
  and :math:`\lambda_t = d_t \eta_t c_t`:

  .. math::
     m_t = \beta_1 m_{t-1} + (1-\beta_1) d_t g_t, \quad
     v_t = \beta_2 v_{t-1} + (1-\beta_2) d_t^2 g_t^2, \\
     s_t = \beta_3 s_{t-1} + \frac{\lambda_t d_t}{d_0} g_t, \quad
     r_t = \beta_3 r_{t-1} + \frac{d_t}{d_0} \lambda_t \langle g_t, x_0 - x_t\rangle, \\
     d_{t+1} = \max\Big(d_t, \gamma \frac{r_t}{\|s_t\|_1}\Big), \quad
     u_t = -\lambda_t \Big(\frac{m_t}{\sqrt{v_t} + d_{t+1}\epsilon} + w\, x_t\Big)

  (``safeguard_warmup=True`` drops :math:`\eta_t c_t` from :math:`s_t`'s
  weight, so a warm-up schedule does not shrink the denominator.)
  Mishchenko & Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free
  Learner", ICML 2024 (arXiv:2306.06101): D-Adaptation with weights that
  favour recent gradients, so ``d`` grows faster. Defaults: ``betas=(0.9,
  0.999)``, ``beta3 = sqrt(beta2)``, ``eps=1e-8``, ``d_0 = 1e-6``, ``gamma =
  1``, no decay. ``update`` needs ``params``. Same as ``optax.contrib.prodigy``
  (state fields, dtypes and numbers, bitwise); unlike optax, the arguments are
  checked when it is built, and while every gradient so far is zero (``s = 0``)
  ``d`` stays as it is where optax's becomes ``0 / 0 = NaN`` for good (the
  authors' package skips such a step).

  ``reference=True`` is the authors' ``prodigyopt.Prodigy`` (1.1.2): its one
  difference from optax's form is that Adam's correction :math:`c_t` is off
  by default there (``use_bias_correction=False``, i.e. :math:`c_t = 1`);
  ``bias_correction`` sets it in either form (``None``: the form's default),
  so ``Prodigy(use_bias_correction=True)`` is the optax form. Checked in
  lockstep against it (50 steps, a matrix, a vector, a scalar) with its
  defaults and its README's options (decoupled decay, ``d_coef``,
  ``safeguard_warmup`` with a warm-up, ``use_bias_correction``, ``betas``,
  ``d0``, ``beta3``, ``growth_rate``, cosine and warm-up ``LambdaLR``
  schedules): float64 within rtol 1e-11 (measured worst 1.9e-12 relative),
  except while ``d`` grows fast (``d_coef=2``), where rounding grows ~3x a
  step, to 6.5e-10; float32 within rtol 1e-4 (measured 7e-6: the package
  keeps ``d`` in Python float64, here it is in the params' dtype). Its ``decouple=False``
  (L2 decay) is ``chain(add_decayed_weights(w), prodigy(...))``. Its
  ``growth_rate`` :math:`\kappa` is offered in both forms: with
  :math:`\bar d_t` the running max of the estimates
  :math:`\gamma r_t / \|s_t\|_1` (from :math:`d_0`), :math:`d_{t+1} =
  \min(\bar d_t, \kappa d_t)`, except that the first rise from :math:`d_0`
  is free; a finite :math:`\kappa` keeps :math:`\bar d` in a
  :class:`ProdigyCappedState` around optax's state (default inf: optax's
  state and program). Not offered: ``slice_p`` (an approximation that
  subsamples ``s`` and ``x_0``), per parameter-group rates.

  Args:
    learning_rate: :math:`\eta_t`, a number or a schedule, best around 1
      (e.g. a linear decay from 1 with a short warm-up); default 1.0.
    betas: ``(beta1, beta2)``, Adam's decays in ``[0, 1)``.
    beta3: decay of ``s`` and ``r`` in ``[0, 1)``; ``None``: ``sqrt(beta2)``.
    eps: added to the root, times ``d`` (default 1e-8).
    estim_lr0: :math:`d_0 > 0`, the initial under-estimate (default 1e-6).
    estim_lr_coef: :math:`\gamma`, scales every estimate of ``d`` (default 1.0).
    weight_decay: :math:`w`, decoupled (AdamW) decay (default 0.0).
    safeguard_warmup: leave :math:`\eta_t c_t` out of ``s`` (default ``False``).
    reference: ``prodigyopt``'s defaults (default ``False``: optax's).
    bias_correction: whether :math:`c_t` applies; ``None`` (default): yes,
      or no with ``reference=True``.
    growth_rate: :math:`\kappa \geq 1`, the most ``d`` may grow in a step
      after its first rise (default inf).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from jaxopt_notes.contrib import prodigy
    >>> f = lambda x: jnp.sum((x - 3.0) ** 2)
    >>> tx = prodigy()
    >>> x = jnp.zeros(2)
    >>> state = tx.init(x)
    >>> for _ in range(100):
    ...   u, state = tx.update(jax.grad(f)(x), state, x)
    ...   x = x + u
    >>> print(round(float(state.estim_lr), 2), round(float(f(x)), 3))  # d grew from 1e-6; f(0) = 18
    1.52 0.007
  """
  _check_common(learning_rate, betas, eps, estim_lr0, weight_decay)
  if beta3 is not None:
    validation.check_unit_interval("beta3", beta3)
  validation.check_finite("estim_lr_coef", estim_lr_coef)
  validation.check_flags(safeguard_warmup=safeguard_warmup)
  corrected = _reference_flags(reference, bias_correction)
  capped = _growth_limited(growth_rate)
  b1, b2 = betas
  b3 = b2**0.5 if beta3 is None else beta3

  def init_fn(params):
    estim_lr, numerator, count = _init_scalars(params, estim_lr0)
    zeros = lambda: tree_lib.tree_zeros_like(params)
    state = ProdigyState(zeros(), zeros(), zeros(), params, estim_lr, numerator, count)
    return ProdigyCappedState(state, estim_lr) if capped else state

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    if params is None:
      raise ValueError(base.NO_PARAMS_MSG)
    combine.check_updates_match_params(updates, params)
    outer, state = (state, state.inner) if capped else (None, state)
    d = state.estim_lr
    eta, correction, count = _adam_step_count(learning_rate, state.count, b1, b2, corrected)
    step = jnp.asarray(d * eta * correction, dtype=d.dtype)
    dg = jax.tree.map(lambda g: d * g, updates)
    progress = tree_lib.vdot(updates, tree_lib.sub(state.params0, params))
    exp_avg = jax.tree.map(lambda m, x: b1 * m + (1 - b1) * x, state.exp_avg, dg)
    exp_avg_sq = jax.tree.map(lambda v, x: b2 * v + (1 - b2) * x * x, state.exp_avg_sq, dg)
    weight = d if safeguard_warmup else step
    grad_sum = jax.tree.map(lambda s, x: b3 * s + weight * x / estim_lr0, state.grad_sum, dg)
    numerator = b3 * state.numerator_weighted
    numerator += (d / estim_lr0) * step * progress
    l1 = tree_lib.sum(jax.tree.map(jnp.abs, grad_sum))
    # All gradients so far zero: 0 / 0, and optax's d turns NaN for good; the
    # authors' packages skip the step there, and d is kept (a deliberate difference).
    estimate = jnp.where(l1 > 0, estim_lr_coef * numerator / l1, d)
    if capped:
      # prodigyopt's rule: the first rise from d_0 is free, later ones at most a factor growth_rate.
      estim_lr_max = jnp.maximum(outer.estim_lr_max, estimate)
      new_d = jnp.minimum(estim_lr_max, jnp.where(d == estim_lr0, jnp.maximum(d, estimate), d) * growth_rate)
    else:
      new_d = jnp.maximum(d, estimate)
    new_updates = jax.tree.map(
        lambda m, v, p: -weight_decay * step * p - step * m / (jnp.sqrt(v) + new_d * eps),
        exp_avg, exp_avg_sq, params,
    )
    state = ProdigyState(exp_avg, exp_avg_sq, grad_sum, state.params0, new_d, numerator, count)
    return new_updates, ProdigyCappedState(state, estim_lr_max) if capped else state

  return base.GradientTransformationExtraArgs(init_fn, update_fn)


def dadapt_adamw(
    learning_rate: base.ScalarOrSchedule = 1.0,
    betas: tuple[jax.typing.ArrayLike, jax.typing.ArrayLike] = (0.9, 0.999),
    eps: jax.typing.ArrayLike = 1e-8,
    estim_lr0: jax.typing.ArrayLike = 1e-6,
    weight_decay: jax.typing.ArrayLike = 0.0,
    *,
    reference: bool = False,
    bias_correction: Optional[bool] = None,
    growth_rate: jax.typing.ArrayLike = float("inf"),
) -> base.GradientTransformationExtraArgs:
  r"""D-Adaptation for AdamW: the step scale ``d`` is a lower bound on the distance to a solution.

  With :math:`\eta_t` the schedule, :math:`c_t = \sqrt{1-\beta_2^t}/(1-\beta_1^t)`,
  :math:`\lambda_t = d_t \eta_t c_t` and :math:`\rho = \sqrt{\beta_2}`:

  .. math::
     r_t = \rho\, r_{t-1} + (1-\rho) \lambda_t
       \Big\langle g_t, \frac{s_{t-1}}{\sqrt{v_{t-1}} + \epsilon}\Big\rangle, \quad
     s_t = \rho\, s_{t-1} + (1-\rho) \lambda_t g_t, \\
     m_t = \beta_1 m_{t-1} + (1-\beta_1) \lambda_t g_t, \quad
     v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \\
     d_{t+1} = \max\Big(d_t, \frac{r_t}{(1-\rho)\|s_t\|_1}\Big), \quad
     u_t = -\frac{m_t}{\sqrt{v_t} + \epsilon} - w \lambda_t x_t

  Defazio & Mishchenko, "Learning-Rate-Free Learning by D-Adaptation",
  ICML 2023 (arXiv:2301.07733). Defaults: ``betas=(0.9, 0.999)``,
  ``eps=1e-8``, ``d_0 = 1e-6``, no decay. ``update`` needs ``params`` (for
  the decay). Same as ``optax.contrib.dadapt_adamw`` (state fields, dtypes
  and numbers, bitwise); unlike optax, the arguments are checked when it is
  built, and while every gradient so far is zero ``d`` stays as it is (optax's
  becomes NaN for good; the authors' package skips such a step).

  ``reference=True`` is the authors' ``dadaptation.DAdaptAdam`` (3.2) with
  ``decouple=True`` (the AdamW form): as for :func:`prodigy`, Adam's
  correction :math:`c_t` is off by default there, which ``bias_correction``
  sets in either form. ``growth_rate`` :math:`\kappa` is the package's cap
  :math:`d_{t+1} = \max(d_t, \min(\hat d_t, \kappa d_t))`, with
  :math:`\hat d_t` the estimate above (default inf: none, optax's program).
  Checked in lockstep against it (50 steps, a matrix, a vector, a scalar)
  with its defaults and its README's options
  (decoupled and coupled decay, ``growth_rate`` with ``d0``, ``betas``,
  ``eps``, ``use_bias_correction``, a cosine ``LambdaLR``): float64 within
  rtol 1e-11 (measured worst 6.2e-14 relative), float32 within rtol 1e-4
  (measured 1.3e-5: the package's ``d`` is Python float64). Its default
  ``decouple=False`` (L2 decay) is ``chain(add_decayed_weights(w),
  dadapt_adamw(...))``. Not offered: ``layer_scale`` (per parameter-group
  scales).

  Args:
    learning_rate: :math:`\eta_t`, a number or a schedule, best around 1;
      default 1.0.
    betas: ``(beta1, beta2)``, Adam's decays in ``[0, 1)``.
    eps: added to the root (default 1e-8).
    estim_lr0: :math:`d_0 > 0`, the initial under-estimate (default 1e-6).
    weight_decay: :math:`w`, decoupled (AdamW) decay (default 0.0).
    reference: ``dadaptation``'s defaults (default ``False``: optax's).
    bias_correction: whether :math:`c_t` applies; ``None`` (default): yes,
      or no with ``reference=True``.
    growth_rate: :math:`\kappa \geq 1`, the most ``d`` may grow in a step
      (default inf).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from jaxopt_notes.contrib import dadapt_adamw
    >>> f = lambda x: jnp.sum((x - 3.0) ** 2)
    >>> tx = dadapt_adamw()
    >>> x = jnp.zeros(2)
    >>> state = tx.init(x)
    >>> for _ in range(100):
    ...   u, state = tx.update(jax.grad(f)(x), state, x)
    ...   x = x + u
    >>> print(round(float(state.estim_lr), 2), round(float(f(x)), 3))  # d grew from 1e-6; f(0) = 18
    3.48 0.004
  """
  _check_common(learning_rate, betas, eps, estim_lr0, weight_decay)
  corrected = _reference_flags(reference, bias_correction)
  limited = _growth_limited(growth_rate)
  b1, b2 = betas

  def init_fn(params):
    estim_lr, numerator, count = _init_scalars(params, estim_lr0)
    zeros = lambda: tree_lib.tree_zeros_like(params)
    return DAdaptAdamWState(zeros(), zeros(), zeros(), estim_lr, numerator, count)

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    if params is None:
      raise ValueError(base.NO_PARAMS_MSG)
    combine.check_updates_match_params(updates, params)
    rho = b2 ** (0.5)
    eta, correction, count = _adam_step_count(learning_rate, state.count, b1, b2, corrected)
    step = (state.estim_lr * eta * correction).astype(state.numerator_weighted.dtype)
    normalised = jax.tree.map(lambda s, v: s / (jnp.sqrt(v) + eps), state.grad_sum, state.exp_avg_sq)
    progress = tree_lib.vdot(updates, normalised)
    exp_avg = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * step * g, state.exp_avg, updates)
    exp_avg_sq = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state.exp_avg_sq, updates)
    grad_sum = jax.tree.map(lambda s, g: rho * s + (1 - rho) * step * g, state.grad_sum, updates)
    l1 = tree_lib.sum(jax.tree.map(jnp.abs, grad_sum))
    numerator = rho * state.numerator_weighted + (1 - rho) * step * progress
    # As in prodigy: d kept where every gradient so far is zero (optax: NaN).
    estimate = jnp.where(l1 > 0, numerator / ((1 - rho) * l1), state.estim_lr)
    if limited:
      estimate = jnp.minimum(estimate, growth_rate * state.estim_lr)
    new_d = jnp.maximum(state.estim_lr, estimate)
    new_updates = jax.tree.map(
        lambda m, v, p: -weight_decay * step * p - m / (jnp.sqrt(v) + eps),
        exp_avg, exp_avg_sq, params,
    )
    return new_updates, DAdaptAdamWState(exp_avg, exp_avg_sq, grad_sum, new_d, numerator, count)

  return base.GradientTransformationExtraArgs(init_fn, update_fn)
