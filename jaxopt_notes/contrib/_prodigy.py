"""Learning-rate-free AdamW: D-Adaptation and Prodigy.

Both run AdamW with a step ``d * eta_t`` whose scale ``d`` is an estimate of
the distance from the initial point to a solution, grown from ``estim_lr0``
as the run reveals it: a weighted sum of ``<g_k, x_0 - x_k>`` (Prodigy) or of
``<g_k, s_k / sqrt(v_k)>`` (D-Adaptation) over the l1 norm of an EMA of the
gradients. ``d`` never decreases. ``eta_t`` (``learning_rate``) is a
schedule around 1.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib

__all__ = ["DAdaptAdamWState", "ProdigyState", "dadapt_adamw", "prodigy"]


class ProdigyState(NamedTuple):
  """State of :func:`prodigy`."""

  exp_avg: base.Updates  # EMA of d * g
  exp_avg_sq: base.Updates  # EMA of (d * g)^2
  grad_sum: base.Updates  # s: beta3-discounted sum of the weighted d * g
  params0: base.Updates  # x_0, the params given to init
  estim_lr: jax.typing.ArrayLike  # d, scalar in the params' lowest dtype
  numerator_weighted: jax.typing.ArrayLike  # r: discounted sum of <g, x_0 - x>, scalar
  count: jax.typing.ArrayLike  # type: ignore[assignment]  # named like tuple.count, as optax's; steps taken, int32 scalar


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


def _adam_step_count(learning_rate: Any, count: jax.Array):
  """``(eta_t, t + 1)``: the schedule read at the count before the increment."""
  eta = learning_rate(count) if callable(learning_rate) else learning_rate
  return eta, tree_lib.safe_increment(count)


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
  (state fields, dtypes and numbers); unlike optax, the arguments are checked
  when it is built.

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
  b1, b2 = betas
  b3 = b2**0.5 if beta3 is None else beta3

  def init_fn(params):
    estim_lr, numerator, count = _init_scalars(params, estim_lr0)
    zeros = lambda: tree_lib.tree_zeros_like(params)
    return ProdigyState(zeros(), zeros(), zeros(), params, estim_lr, numerator, count)

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    if params is None:
      raise ValueError(base.NO_PARAMS_MSG)
    combine.check_updates_match_params(updates, params)
    d = state.estim_lr
    eta, count = _adam_step_count(learning_rate, state.count)
    correction = ((1 - b2**count) ** 0.5) / (1 - b1**count)
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
    new_d = jnp.maximum(d, estim_lr_coef * numerator / l1)
    new_updates = jax.tree.map(
        lambda m, v, p: -weight_decay * step * p - step * m / (jnp.sqrt(v) + new_d * eps),
        exp_avg, exp_avg_sq, params,
    )
    return new_updates, ProdigyState(
        exp_avg, exp_avg_sq, grad_sum, state.params0, new_d, numerator, count
    )

  return base.GradientTransformationExtraArgs(init_fn, update_fn)


def dadapt_adamw(
    learning_rate: base.ScalarOrSchedule = 1.0,
    betas: tuple[jax.typing.ArrayLike, jax.typing.ArrayLike] = (0.9, 0.999),
    eps: jax.typing.ArrayLike = 1e-8,
    estim_lr0: jax.typing.ArrayLike = 1e-6,
    weight_decay: jax.typing.ArrayLike = 0.0,
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
  and numbers); unlike optax, the arguments are checked when it is built.

  Args:
    learning_rate: :math:`\eta_t`, a number or a schedule, best around 1;
      default 1.0.
    betas: ``(beta1, beta2)``, Adam's decays in ``[0, 1)``.
    eps: added to the root (default 1e-8).
    estim_lr0: :math:`d_0 > 0`, the initial under-estimate (default 1e-6).
    weight_decay: :math:`w`, decoupled (AdamW) decay (default 0.0).

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
    eta, count = _adam_step_count(learning_rate, state.count)
    correction = ((1 - b2**count) ** 0.5) / (1 - b1**count)
    step = (state.estim_lr * eta * correction).astype(state.numerator_weighted.dtype)
    normalised = jax.tree.map(lambda s, v: s / (jnp.sqrt(v) + eps), state.grad_sum, state.exp_avg_sq)
    progress = tree_lib.vdot(updates, normalised)
    exp_avg = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * step * g, state.exp_avg, updates)
    exp_avg_sq = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state.exp_avg_sq, updates)
    grad_sum = jax.tree.map(lambda s, g: rho * s + (1 - rho) * step * g, state.grad_sum, updates)
    l1 = tree_lib.sum(jax.tree.map(jnp.abs, grad_sum))
    numerator = rho * state.numerator_weighted + (1 - rho) * step * progress
    new_d = jnp.maximum(state.estim_lr, numerator / ((1 - rho) * l1))
    new_updates = jax.tree.map(
        lambda m, v, p: -weight_decay * step * p - m / (jnp.sqrt(v) + eps),
        exp_avg, exp_avg_sq, params,
    )
    return new_updates, DAdaptAdamWState(exp_avg, exp_avg_sq, grad_sum, new_d, numerator, count)

  return base.GradientTransformationExtraArgs(init_fn, update_fn)
