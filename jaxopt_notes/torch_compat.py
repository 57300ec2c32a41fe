"""``torch.optim`` equivalents: torch's argument names, defaults and numbers.

For porting a PyTorch training loop to JAX, where optax's "same" optimizer
(and so :mod:`jaxopt_notes.optimizers`) often is not torch's: eps placement,
initial accumulators, SGD's dampening and first-step buffer, L2 vs decoupled
decay, AMSGrad's max, NAdam's and RAdam's formulas. Each function reproduces
``torch.optim.X`` (torch 2.x, default for-loop implementation) step for step;
its docstring says what differs from ``jaxopt_notes.X``/``optax.X``.

Usage mirrors torch's, with the params left out::

    from jaxopt_notes import torch_compat as tc

    tx = tc.adamw(lr=tc.cosine_annealing_lr(1e-3, T_max=1000), weight_decay=0.05)
    state = tx.init(params)
    updates, state = tx.update(grads, state, params)
    params = jaxopt_notes.apply_updates(params, updates)

``update`` needs ``params`` whenever ``weight_decay`` is non-zero. ``lr``
may be a number or a schedule ``t -> lr`` (such as the torch-scheduler
equivalents re-exported here from :mod:`jaxopt_notes.torch_schedules`);
``t`` counts updates already applied. Arguments are checked when the
optimizer is built and errors name the argument, as torch's constructors do.
torch's implementation switches (``foreach``, ``fused``, ``capturable``,
``differentiable``) do not change the math and are not taken; nor are
Tensor-valued hyper-parameters or per-parameter-group options (wrap a
transform in :func:`~jaxopt_notes.masked` to apply it to part of the params).

Step-dependent scalars are computed in the default float dtype (float64
only under ``jax.enable_x64``), as torch uses its default dtype for them.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from jaxopt_notes import adam_family
from jaxopt_notes import adaptive
from jaxopt_notes import base
from jaxopt_notes import combine
from jaxopt_notes import scaling
from jaxopt_notes import tree as tree_lib
from jaxopt_notes import validation
from jaxopt_notes.torch_schedules import _float_dtype, _one_minus_power
from jaxopt_notes.torch_schedules import (  # re-exported: one import for a port
    cosine_annealing_lr, exponential_lr, linear_lr, multi_step_lr, one_cycle_lr,
    polynomial_lr, step_lr,
)

__all__ = [
    # optimizers, named like torch.optim's classes
    "adadelta", "adagrad", "adam", "adamax", "adamw", "nadam", "radam", "rmsprop", "sgd",
    # the transforms whose math differs from the library's
    "TorchMomentumState", "TorchNAdamState", "scale_by_torch_amsgrad",
    "scale_by_torch_nadam", "scale_by_torch_radam", "torch_momentum",
    # schedules, from torch_schedules
    "cosine_annealing_lr", "exponential_lr", "linear_lr", "multi_step_lr",
    "one_cycle_lr", "polynomial_lr", "step_lr",
]

LR = base.ScalarOrSchedule
Num = jax.typing.ArrayLike
Tx = base.GradientTransformationExtraArgs
Betas = tuple[Num, Num]


def _check_lr(lr: Any) -> None:
  if not callable(lr):
    validation.check_non_negative("lr", lr)


def _check_flag(name: str, value: Any) -> None:
  if not isinstance(value, bool):
    raise TypeError(f"`{name}` must be True or False; got {value!r}")


def _check_betas(betas: Any) -> tuple[Num, Num]:
  if isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence) or len(betas) != 2:
    raise TypeError(f"`betas` must be a pair (beta1, beta2); got {betas!r}")
  validation.check_unit_interval("betas[0]", betas[0])
  validation.check_unit_interval("betas[1]", betas[1])
  return betas[0], betas[1]


def _check_adam_args(b1: Any, b2: Any, eps: Any) -> None:
  validation.check_unit_interval("b1", b1)
  validation.check_unit_interval("b2", b2)
  validation.check_non_negative("eps", eps)


def _is_zero(value: Any) -> bool:
  # A traced or array value may be non-zero: keep its transform in the chain.
  return isinstance(value, (int, float)) and value == 0


def _torch_chain(core: Sequence[base.GradientTransformation], lr: LR, *, maximize: bool,
                 weight_decay: Num, decoupled: bool = False) -> Tx:
  """``[-g if maximize] [+ wd p] core [+ wd p if decoupled] * -lr``, torch's order.

  torch's decoupled decay multiplies the params by ``1 - lr wd`` before the
  step: an update of ``-lr wd p``, which the link before the lr gives.
  """
  _check_flag("maximize", maximize)
  _check_flag("decoupled_weight_decay", decoupled)
  validation.check_non_negative("weight_decay", weight_decay)
  links = [scaling.scale(-1.0)] if maximize else []
  decay = [] if _is_zero(weight_decay) else [scaling.add_decayed_weights(weight_decay)]
  links += ([] if decoupled else decay) + list(core) + (decay if decoupled else [])
  links.append(scaling.scale_by_learning_rate(lr))
  return combine.chain(*links)


class TorchMomentumState(NamedTuple):
  """State of :func:`torch_momentum`: updates seen and the momentum buffer."""

  count: jax.Array  # int32 scalar
  momentum_buffer: base.Updates


def torch_momentum(
    momentum: Num, dampening: Num = 0.0, nesterov: bool = False
) -> base.GradientTransformation:
  r"""torch's momentum buffer: the first gradient, then damped accumulation.

  .. math::
     b_1 = g_1, \qquad b_t = \mu\, b_{t-1} + (1 - \tau)\, g_t, \qquad
     u_t = b_t \ \text{or, with Nesterov,}\ u_t = g_t + \mu\, b_t

  (``mu`` = ``momentum``, ``tau`` = ``dampening``). The buffer used by
  ``torch.optim.SGD`` and, with ``tau = 0``, ``torch.optim.RMSprop`` (whose
  zero-initialised buffer gives the same ``b_1``). :func:`~jaxopt_notes.trace`
  (optax's) starts from ``b_0 = 0`` and has no dampening, so it agrees only
  when ``dampening = 0``; it also rejects ``momentum >= 1``, which torch
  allows. Notes 000/003's momentum ``v = rho v + dw`` (Sutskever et al., 2013).

  Args:
    momentum: ``mu >= 0``.
    dampening: ``tau`` in ``[0, 1]`` (default 0.0; torch does not check it);
      it does not touch the first step.
    nesterov: return ``g + mu b`` (default ``False``).
  """
  validation.check_non_negative("momentum", momentum)
  validation.check_unit_interval("dampening", dampening, closed_right=True)
  _check_flag("nesterov", nesterov)

  def init_fn(params):
    return TorchMomentumState(
        count=jnp.zeros([], jnp.int32), momentum_buffer=tree_lib.tree_zeros_like(params)
    )

  def update_fn(updates, state, params=None):
    del params
    first = state.count == 0

    def accumulate(g, b):
      return jnp.where(first, g, momentum * b + (1 - dampening) * g).astype(b.dtype)

    buf = tree_lib.tree_map_checked(accumulate, updates, state.momentum_buffer)
    out = jax.tree.map(lambda g, b: g + momentum * b, updates, buf) if nesterov else buf
    return out, TorchMomentumState(count=tree_lib.safe_increment(state.count), momentum_buffer=buf)

  return base.GradientTransformation(init_fn, update_fn)


def _moments(updates, state, b1, b2):
  """Adam's two EMAs and the new count, from the library's moment helpers."""
  mu = tree_lib.tree_update_moment(updates, state.mu, b1, 1)
  nu = tree_lib.tree_update_moment_per_elem_norm(updates, state.nu, b2, 2)
  return mu, nu, tree_lib.safe_increment(state.count)


def _scaled(factor: jax.Array, leaf: jax.Array) -> jax.Array:
  return factor.astype(leaf.dtype) * leaf


def scale_by_torch_amsgrad(
    b1: Num = 0.9, b2: Num = 0.999, eps: Num = 1e-8
) -> base.GradientTransformation:
  r"""torch's AMSGrad (``Adam(amsgrad=True)``): max of the raw ``v``, then correct.

  .. math::
     \tilde v_t = \max(\tilde v_{t-1}, v_t), \qquad
     u_t = \frac{m_t / (1 - \beta_1^t)}{\sqrt{\tilde v_t / (1 - \beta_2^t)} + \epsilon}

  with Adam's EMAs ``m``, ``v``. :func:`~jaxopt_notes.scale_by_amsgrad`
  (optax's) takes the max of the already corrected ``v_hat``; since
  ``1 - beta2^t`` grows with ``t`` the two differ whenever ``v`` has shrunk.
  Same state layout as ``scale_by_amsgrad``. Reddi et al., "On the
  Convergence of Adam and Beyond", ICLR 2018.

  Args:
    b1, b2: torch's ``betas``, each in ``[0, 1)`` (defaults 0.9, 0.999).
    eps: added after the root (default 1e-8).
  """
  _check_adam_args(b1, b2, eps)

  def init_fn(params):
    zeros = tree_lib.tree_zeros_like
    return adam_family.ScaleByAmsgradState(
        jnp.zeros([], jnp.int32), zeros(params), zeros(params), zeros(params)
    )

  def update_fn(updates, state, params=None):
    del params
    mu, nu, count = _moments(updates, state, b1, b2)
    nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)
    c1, c2 = _one_minus_power(b1, count), _one_minus_power(b2, count)
    updates = jax.tree.map(
        lambda m, v: (m / c1.astype(m.dtype)) / (jnp.sqrt(v / c2.astype(v.dtype)) + eps),
        mu, nu_max,
    )
    return updates, adam_family.ScaleByAmsgradState(count=count, mu=mu, nu=nu, nu_max=nu_max)

  return base.GradientTransformation(init_fn, update_fn)


class TorchNAdamState(NamedTuple):
  """State of :func:`scale_by_torch_nadam`: Adam's plus the product of the mus."""

  count: jax.Array  # int32 scalar
  mu_product: jax.Array  # scalar, the default float dtype
  mu: base.Updates
  nu: base.Updates


def scale_by_torch_nadam(
    b1: Num = 0.9, b2: Num = 0.999, eps: Num = 1e-8, momentum_decay: Num = 4e-3
) -> base.GradientTransformation:
  r"""torch's NAdam scaling, with Dozat's momentum schedule.

  .. math::
     \mu_t = \beta_1\big(1 - \tfrac12\, 0.96^{t\psi}\big), \quad
     \Pi_t = \prod_{s \le t} \mu_s, \quad
     u_t = \frac{\frac{1-\mu_t}{1-\Pi_t}\, g_t + \frac{\mu_{t+1}}{1-\Pi_t\mu_{t+1}}\, m_t}
                {\sqrt{v_t / (1-\beta_2^t)} + \epsilon}

  (``psi`` = ``momentum_decay``; ``m``, ``v`` Adam's EMAs). The update of
  ``torch.optim.NAdam``. :func:`~jaxopt_notes.nadam` (optax's) has no
  momentum schedule: it uses ``mu_t = beta1`` throughout and corrects with
  ``1 - beta1^t``; ``momentum_decay=0`` here gives ``mu_t = beta1 / 2``, not
  optax's rule either. ``Pi`` is stored like torch's ``mu_product``, in the
  default float dtype. Dozat, "Incorporating Nesterov Momentum into Adam",
  ICLR 2016 workshop.

  Args:
    b1, b2: torch's ``betas``, each in ``[0, 1)`` (defaults 0.9, 0.999).
    eps: added after the root (default 1e-8).
    momentum_decay: ``psi >= 0`` (default 4e-3).
  """
  _check_adam_args(b1, b2, eps)
  validation.check_non_negative("momentum_decay", momentum_decay)

  def mu_at(step):
    return b1 * (1.0 - 0.5 * jnp.power(0.96, step * momentum_decay))

  def init_fn(params):
    zeros = tree_lib.tree_zeros_like
    return TorchNAdamState(
        jnp.zeros([], jnp.int32), jnp.ones([], _float_dtype()), zeros(params), zeros(params)
    )

  def update_fn(updates, state, params=None):
    del params
    mu, nu, count = _moments(updates, state, b1, b2)
    step = count.astype(state.mu_product.dtype)
    mu_now, mu_next = mu_at(step), mu_at(step + 1)
    product = (state.mu_product * mu_now).astype(state.mu_product.dtype)
    coef_g = (1.0 - mu_now) / (1.0 - product)
    coef_m = mu_next / (1.0 - product * mu_next)
    c2 = _one_minus_power(b2, count)
    updates = jax.tree.map(
        lambda g, m, v: (_scaled(coef_g, g) + _scaled(coef_m, m))
        / (jnp.sqrt(v / c2.astype(v.dtype)) + eps),
        updates, mu, nu,
    )
    return updates, TorchNAdamState(count=count, mu_product=product, mu=mu, nu=nu)

  return base.GradientTransformation(init_fn, update_fn)


# 2 B_n / n! for the even Bernoulli numbers B_2 .. B_10.
_RHO_SERIES = tuple(
    (n, 2.0 * b / math.factorial(n))
    for n, b in ((2, 1 / 6), (4, -1 / 30), (6, 1 / 42), (8, -1 / 30), (10, 5 / 66))
)


def _radam_rho(count: jax.Array, b2: Any, c2: jax.Array, rho_inf: Any) -> jax.Array:
  r"""RAdam's :math:`\rho_t = \rho_\infty - 2 t \beta_2^t / (1 - \beta_2^t)`.

  Early on the two terms are ~2000 and ~1994 for ``beta2 = 0.999``, and
  their float32 difference is off by ~4e-4, i.e. 1e-4 of ``r_t`` at ``t = 6``.
  With ``L = -log(beta2)`` and ``x = t L``, expanding ``y / (e^y - 1)`` in
  Bernoulli numbers gives the difference directly:
  :math:`\rho_t = t + \sum_n \frac{2 B_n}{n!}(L^{n-1} - x^n / L)`, used while
  ``x < 1/2`` (truncation below 1e-9); past that there is little to cancel.
  """
  t = count.astype(c2.dtype)
  direct = rho_inf - 2.0 * t * (1.0 - c2) / c2
  if isinstance(b2, jax.core.Tracer) or not 0.0 < float(b2) < 1.0:
    return direct
  log_b = -math.log(float(b2))
  x = t * log_b
  series = t + sum(k * (log_b ** (n - 1) - x**n / log_b) for n, k in _RHO_SERIES)
  return jnp.where(x < 0.5, series, direct)


def scale_by_torch_radam(
    b1: Num = 0.9, b2: Num = 0.999, eps: Num = 1e-8
) -> base.GradientTransformation:
  r"""torch's RAdam scaling: rectified Adam once ``rho_t > 5``.

  .. math::
     \rho_\infty = \tfrac{2}{1-\beta_2} - 1, \quad
     \rho_t = \rho_\infty - \tfrac{2 t \beta_2^t}{1-\beta_2^t}, \quad
     r_t = \sqrt{\tfrac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}}

  .. math::
     u_t = \hat m_t\, r_t\, \frac{\sqrt{1-\beta_2^t}}{\sqrt{v_t} + \epsilon}
     \ \ (\rho_t > 5), \qquad u_t = \hat m_t \ \ \text{otherwise}

  The update of ``torch.optim.RAdam``. :func:`~jaxopt_notes.scale_by_radam`
  (optax's) divides by ``sqrt(v_hat) + eps`` instead, i.e. uses
  ``eps * sqrt(1 - beta2^t)`` where torch uses ``eps`` (an eps-sized
  difference, seen only when ``sqrt(v)`` is not much larger than ``eps``),
  and switches at ``rho_t >= 5``. ``1 - beta2^t`` and ``rho_t`` are formed
  without the cancellations that, in float32, cost optax's form about 1% of
  ``r_t`` at ``t = 6`` (200% for ``beta2 = 0.9999``). Same state layout as
  ``scale_by_radam``. Liu et al., ICLR 2020.

  Args:
    b1, b2: torch's ``betas``, each in ``[0, 1)`` (defaults 0.9, 0.999).
    eps: added after the root (default 1e-8).
  """
  _check_adam_args(b1, b2, eps)
  rho_inf = 2.0 / (1.0 - b2) - 1.0
  rect_den = (rho_inf - 4.0) * (rho_inf - 2.0)

  def init_fn(params):
    zeros = tree_lib.tree_zeros_like
    return adam_family.ScaleByAdamState(jnp.zeros([], jnp.int32), zeros(params), zeros(params))

  def update_fn(updates, state, params=None):
    del params
    mu, nu, count = _moments(updates, state, b1, b2)
    c1, c2 = _one_minus_power(b1, count), _one_minus_power(b2, count)
    rho = _radam_rho(count, b2, c2, rho_inf)
    rectify = rho > 5.0
    safe_rho = jnp.where(rectify, rho, 6.0)  # keeps the unused branch finite
    factor = jnp.sqrt((safe_rho - 4.0) * (safe_rho - 2.0) * rho_inf / (rect_den * safe_rho))
    factor = factor * jnp.sqrt(c2)

    def direction(m, v):
      m_hat = m / c1.astype(m.dtype)
      return jnp.where(rectify, _scaled(factor, m_hat) / (jnp.sqrt(v) + eps), m_hat)

    updates = jax.tree.map(direction, mu, nu)
    return updates, adam_family.ScaleByAdamState(count=count, mu=mu, nu=nu)

  return base.GradientTransformation(init_fn, update_fn)


def sgd(
    lr: LR = 1e-3, momentum: Num = 0.0, dampening: Num = 0.0, weight_decay: Num = 0.0,
    nesterov: bool = False, *, maximize: bool = False,
) -> Tx:
  r"""``torch.optim.SGD``: SGD with torch's momentum, dampening and L2 decay.

  .. math::
     g_t \leftarrow \pm g_t + \lambda w_{t-1}, \quad
     b_1 = g_1,\ b_t = \mu b_{t-1} + (1-\tau) g_t, \quad
     w_t = w_{t-1} - \eta\, (b_t \text{ or } g_t + \mu b_t)

  (no buffer when ``momentum == 0``). Chain: ``[scale(-1)]``,
  ``[add_decayed_weights]``, :func:`torch_momentum`, the lr. Differs from
  :func:`jaxopt_notes.sgd` (optax's): the buffer starts at the first gradient
  rather than at 0 (for ``dampening=0`` the numbers coincide), ``dampening``
  and ``weight_decay`` (L2, added to the gradient) exist, and the momentum
  argument is ``0`` rather than ``None`` when off. torch's defaults
  (``lr=1e-3`` in torch 2.x). Sutskever et al., ICML 2013.

  Raises:
    ValueError: as torch, for ``nesterov=True`` without a positive
      ``momentum`` or with a non-zero ``dampening``.
  """
  _check_lr(lr)
  validation.check_non_negative("momentum", momentum)
  validation.check_unit_interval("dampening", dampening, closed_right=True)
  _check_flag("nesterov", nesterov)
  if nesterov and (_is_zero(momentum) or not _is_zero(dampening)):
    raise ValueError(
        "`nesterov=True` requires a `momentum` > 0 and `dampening` == 0 (as in "
        f"torch.optim.SGD); got momentum={momentum!r}, dampening={dampening!r}"
    )
  core = [] if _is_zero(momentum) else [torch_momentum(momentum, dampening, nesterov)]
  return _torch_chain(core, lr, maximize=maximize, weight_decay=weight_decay)


def adagrad(
    lr: LR = 1e-2, lr_decay: Num = 0.0, weight_decay: Num = 0.0,
    initial_accumulator_value: Num = 0.0, eps: Num = 1e-10, *, maximize: bool = False,
) -> Tx:
  r"""``torch.optim.Adagrad``: eps outside the root, a zero start, ``lr_decay``.

  .. math::
     G_t = G_{t-1} + g_t^2, \qquad
     w_t = w_{t-1} - \frac{\eta_t}{1 + (t-1)\,\delta}\, \frac{g_t}{\sqrt{G_t} + \epsilon}

  (``delta`` = ``lr_decay``, ``t`` from 1; ``g`` negated under ``maximize``
  and with the L2 term added). Chain: ``[scale(-1)]``,
  ``[add_decayed_weights]``, :func:`~jaxopt_notes.scale_by_rss` with
  ``eps_in_sqrt=False``, the lr divided by the ``lr_decay`` factor. Differs
  from :func:`jaxopt_notes.adagrad` (optax's: ``G_0 = 0.1``, ``eps = 1e-7``
  under the root, no ``lr_decay``, no weight decay): ``G_0 = 0`` and
  ``eps = 1e-10`` outside the root, as notes 000 write AdaGrad. torch's
  defaults (``lr=1e-2``). Duchi et al., JMLR 2011.
  """
  _check_lr(lr)
  validation.check_non_negative("lr_decay", lr_decay)
  validation.check_non_negative("initial_accumulator_value", initial_accumulator_value)
  validation.check_non_negative("eps", eps)
  if not _is_zero(lr_decay):
    base_lr = lr

    def lr(count):
      rate = base_lr(count) if callable(base_lr) else base_lr
      return rate / (1 + jnp.asarray(count, _float_dtype()) * lr_decay)

  core = [adaptive.scale_by_rss(initial_accumulator_value, eps, eps_in_sqrt=False)]
  return _torch_chain(core, lr, maximize=maximize, weight_decay=weight_decay)


def adadelta(
    lr: LR = 1.0, rho: Num = 0.9, eps: Num = 1e-6, weight_decay: Num = 0.0, *,
    maximize: bool = False,
) -> Tx:
  r"""``torch.optim.Adadelta``: Adadelta times ``lr``, with L2 decay.

  .. math::
     G_t = \rho G_{t-1} + (1-\rho) g_t^2, \quad
     \Delta_t = \frac{\sqrt{H_{t-1} + \epsilon}}{\sqrt{G_t + \epsilon}} g_t, \quad
     H_t = \rho H_{t-1} + (1-\rho)\Delta_t^2, \quad
     w_t = w_{t-1} - \eta \Delta_t

  Chain: ``[scale(-1)]``, ``[add_decayed_weights]``,
  :func:`~jaxopt_notes.scale_by_adadelta` (the math is identical), the lr.
  Differs from :func:`jaxopt_notes.adadelta` only in argument names and
  defaults (``lr=1.0``, ``maximize``). torch accepts ``rho = 1`` (a frozen,
  zero average: plain SGD); here ``rho`` must lie in ``[0, 1)``. Zeiler, 2012.
  """
  _check_lr(lr)
  validation.check_unit_interval("rho", rho)
  validation.check_non_negative("eps", eps)
  core = [adaptive.scale_by_adadelta(rho=rho, eps=eps)]
  return _torch_chain(core, lr, maximize=maximize, weight_decay=weight_decay)


def rmsprop(
    lr: LR = 1e-2, alpha: Num = 0.99, eps: Num = 1e-8, weight_decay: Num = 0.0,
    momentum: Num = 0.0, centered: bool = False, *, maximize: bool = False,
) -> Tx:
  r"""``torch.optim.RMSprop``: eps outside the root, ``alpha = 0.99``.

  .. math::
     S_t = \alpha S_{t-1} + (1-\alpha) g_t^2, \quad
     d_t = \frac{g_t}{\sqrt{S_t - [\bar g_t^2]} + \epsilon}, \quad
     b_t = \mu b_{t-1} + d_t, \quad w_t = w_{t-1} - \eta\, b_t

  (``bar g`` the EMA of ``g``, subtracted when ``centered``; ``b_t = d_t``
  when ``momentum == 0``). Chain: ``[scale(-1)]``, ``[add_decayed_weights]``,
  :func:`~jaxopt_notes.scale_by_rms` or :func:`~jaxopt_notes.scale_by_stddev`
  with ``eps_in_sqrt=False``, ``[torch_momentum]``, the lr. Differs from
  :func:`jaxopt_notes.rmsprop` (optax's: ``decay=0.9``, ``eps`` under the
  root, momentum applied after the lr): ``alpha=0.99``, ``eps`` after the
  root, ``lr=1e-2``, the momentum buffer accumulates the step before the lr
  (same numbers for a constant lr, not for a schedule), L2 ``weight_decay``.
  torch accepts any ``alpha >= 0``; here it must lie in ``[0, 1)``.
  Tieleman & Hinton, 2012; Graves, 2013 (centred).
  """
  _check_lr(lr)
  validation.check_unit_interval("alpha", alpha)
  validation.check_non_negative("eps", eps)
  validation.check_non_negative("momentum", momentum)
  _check_flag("centered", centered)
  scaler = adaptive.scale_by_stddev if centered else adaptive.scale_by_rms
  core = [scaler(decay=alpha, eps=eps, eps_in_sqrt=False)]
  if not _is_zero(momentum):
    core.append(torch_momentum(momentum))
  return _torch_chain(core, lr, maximize=maximize, weight_decay=weight_decay)


def adam(
    lr: LR = 1e-3, betas: Betas = (0.9, 0.999), eps: Num = 1e-8, weight_decay: Num = 0.0,
    amsgrad: bool = False, *, maximize: bool = False, decoupled_weight_decay: bool = False,
) -> Tx:
  r"""``torch.optim.Adam``: Adam with L2 (or decoupled) decay and torch's AMSGrad.

  .. math::
     w_t = w_{t-1} - \eta\, \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon}
     \;[-\ \eta \lambda w_{t-1}\ \text{if decoupled}]

  with ``g`` negated under ``maximize`` and ``lambda w`` added to it unless
  the decay is decoupled; ``amsgrad`` replaces ``v_t`` by its running max
  (:func:`scale_by_torch_amsgrad`). Chain: ``[scale(-1)]``,
  ``[add_decayed_weights]``, :func:`~jaxopt_notes.scale_by_adam` (identical
  math), ``[add_decayed_weights]``, the lr. Differs from
  :func:`jaxopt_notes.adam` (optax's) in ``weight_decay`` and ``maximize``,
  and in ``amsgrad``: ``jaxopt_notes.amsgrad``/``optax.amsgrad`` take the max
  of the bias-corrected ``v``, torch of the raw one. Kingma & Ba, ICLR 2015.
  """
  _check_lr(lr)
  b1, b2 = _check_betas(betas)
  validation.check_non_negative("eps", eps)
  _check_flag("amsgrad", amsgrad)
  if amsgrad:
    core = scale_by_torch_amsgrad(b1, b2, eps)
  else:
    core = adam_family.scale_by_adam(b1=b1, b2=b2, eps=eps)
  return _torch_chain([core], lr, maximize=maximize, weight_decay=weight_decay,
                      decoupled=decoupled_weight_decay)


def adamw(
    lr: LR = 1e-3, betas: Betas = (0.9, 0.999), eps: Num = 1e-8, weight_decay: Num = 1e-2,
    amsgrad: bool = False, *, maximize: bool = False,
) -> Tx:
  r"""``torch.optim.AdamW``: :func:`adam` with decoupled decay, ``weight_decay=1e-2``.

  .. math::
     w_t = (1 - \eta\lambda)\, w_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}

  torch shrinks the params by ``1 - lr * weight_decay`` before the Adam step,
  i.e. adds ``-lr * wd * w_{t-1}`` to the update, with the current
  (scheduled) lr. That is also where :func:`jaxopt_notes.adamw` and
  ``optax.adamw`` put it (``-lr * (adam + wd * w)``), so with the same
  arguments the numbers agree; the differences are the default
  ``weight_decay`` (1e-2 here and in torch, 1e-4 in optax), optax's ``mask``
  (use :func:`~jaxopt_notes.masked`), ``maximize``, and ``amsgrad``, which
  follows torch (:func:`scale_by_torch_amsgrad`). Loshchilov & Hutter, ICLR 2019.
  """
  return adam(lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
              decoupled_weight_decay=True)


def nadam(
    lr: LR = 2e-3, betas: Betas = (0.9, 0.999), eps: Num = 1e-8, weight_decay: Num = 0.0,
    momentum_decay: Num = 4e-3, decoupled_weight_decay: bool = False, *, maximize: bool = False,
) -> Tx:
  r"""``torch.optim.NAdam``: NAdam with the ``momentum_decay`` mu-schedule.

  .. math::
     w_t = w_{t-1} - \eta\, \frac{\frac{1-\mu_t}{1-\Pi_t} g_t + \frac{\mu_{t+1}}{1-\Pi_{t+1}} m_t}
                               {\sqrt{v_t/(1-\beta_2^t)} + \epsilon}
     \;[-\ \eta \lambda w_{t-1}\ \text{if decoupled}]

  with ``mu_t = beta1 (1 - 0.96^(t psi) / 2)`` and ``Pi_t`` their product
  (:func:`scale_by_torch_nadam`). Chain: ``[scale(-1)]``,
  ``[add_decayed_weights]``, :func:`scale_by_torch_nadam`,
  ``[add_decayed_weights]``, the lr. Differs from :func:`jaxopt_notes.nadam`
  (optax's constant ``mu = beta1``, ``lr`` required) in the momentum schedule,
  ``lr=2e-3``, and both kinds of weight decay (``decoupled_weight_decay=True``
  is torch's NAdamW). Dozat, 2016.
  """
  _check_lr(lr)
  b1, b2 = _check_betas(betas)
  core = scale_by_torch_nadam(b1, b2, eps, momentum_decay)
  return _torch_chain([core], lr, maximize=maximize, weight_decay=weight_decay,
                      decoupled=decoupled_weight_decay)


def radam(
    lr: LR = 1e-3, betas: Betas = (0.9, 0.999), eps: Num = 1e-8, weight_decay: Num = 0.0,
    decoupled_weight_decay: bool = False, *, maximize: bool = False,
) -> Tx:
  r"""``torch.optim.RAdam``: rectified Adam with torch's formulas.

  .. math::
     w_t = w_{t-1} - \eta\, \hat m_t\, r_t \frac{\sqrt{1-\beta_2^t}}{\sqrt{v_t}+\epsilon}
     \ \ (\rho_t > 5), \quad\text{else}\quad w_{t-1} - \eta\, \hat m_t

  plus ``-eta lambda w`` if decoupled (see :func:`scale_by_torch_radam`).
  Chain: ``[scale(-1)]``, ``[add_decayed_weights]``,
  :func:`scale_by_torch_radam`, ``[add_decayed_weights]``, the lr. Differs
  from :func:`jaxopt_notes.radam` (optax's) in where ``eps`` enters (see
  :func:`scale_by_torch_radam`), ``rho_t > 5`` rather than ``>= threshold``,
  and weight decay (``decoupled_weight_decay=True`` is RAdamW). Liu et al.,
  ICLR 2020.
  """
  _check_lr(lr)
  b1, b2 = _check_betas(betas)
  core = scale_by_torch_radam(b1, b2, eps)
  return _torch_chain([core], lr, maximize=maximize, weight_decay=weight_decay,
                      decoupled=decoupled_weight_decay)


def adamax(
    lr: LR = 2e-3, betas: Betas = (0.9, 0.999), eps: Num = 1e-8, weight_decay: Num = 0.0,
    *, maximize: bool = False,
) -> Tx:
  r"""``torch.optim.Adamax``: Adam with an infinity norm, eps inside the max.

  .. math::
     u_t = \max(\beta_2 u_{t-1},\ |g_t| + \epsilon), \qquad
     w_t = w_{t-1} - \frac{\eta}{1-\beta_1^t}\, \frac{m_t}{u_t}

  Chain: ``[scale(-1)]``, ``[add_decayed_weights]``,
  :func:`~jaxopt_notes.scale_by_adamax` (identical math), the lr. Differs
  from :func:`jaxopt_notes.adamax` (optax's) only in ``lr=2e-3``,
  ``weight_decay`` (L2) and ``maximize``. Kingma & Ba, ICLR 2015, sec. 7.
  """
  _check_lr(lr)
  b1, b2 = _check_betas(betas)
  validation.check_non_negative("eps", eps)
  core = adam_family.scale_by_adamax(b1, b2, eps)
  return _torch_chain([core], lr, maximize=maximize, weight_decay=weight_decay)

