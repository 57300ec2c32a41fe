"""``torch.optim``'s optimizers, each a chain of the library's blocks in torch's order."""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.schedules.torch_style import _float_dtype
from jaxopt_notes.torch_compat._common import LR, Betas, Num, Tx, check_betas, check_lr, is_zero
from jaxopt_notes.torch_compat.transforms import (
  scale_by_torch_amsgrad,
  scale_by_torch_nadam,
  scale_by_torch_radam,
  torch_momentum,
)
from jaxopt_notes.transforms import adam_family, adaptive, scaling

__all__ = ["adadelta", "adagrad", "adam", "adamax", "adamw", "nadam", "radam", "rmsprop", "sgd"]


def _torch_chain(core: Sequence[base.GradientTransformation], lr: LR, *, maximize: bool,
                 weight_decay: Num, decoupled: bool = False) -> Tx:
  """``[-g if maximize] [+ wd p] core [+ wd p if decoupled] * -lr``, torch's order.

  torch's decoupled decay multiplies the params by ``1 - lr wd`` before the
  step: an update of ``-lr wd p``, which the link before the lr gives.
  """
  validation.check_bool("maximize", maximize)
  validation.check_bool("decoupled_weight_decay", decoupled)
  validation.check_non_negative("weight_decay", weight_decay)
  links = [scaling.scale(-1.0)] if maximize else []
  decay = [] if is_zero(weight_decay) else [scaling.add_decayed_weights(weight_decay)]
  links += ([] if decoupled else decay) + list(core) + (decay if decoupled else [])
  links.append(scaling.scale_by_learning_rate(lr))
  return combine.chain(*links)


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

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.torch_compat as tc
    >>> tx = tc.sgd(lr=0.1, momentum=0.9, dampening=0.5)
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> state = tx.init(params)
    >>> u1, state = tx.update({"w": jnp.array([0.5, -1.0])}, state, params)
    >>> u2, state = tx.update({"w": jnp.array([1.0, 1.0])}, state, params)
    >>> [round(float(x), 4) for x in u1["w"]], [round(float(x), 4) for x in u2["w"]]  # b_1 = g_1, undamped
    ([-0.05, 0.1], [-0.095, 0.04])
  """
  check_lr(lr)
  validation.check_non_negative("momentum", momentum)
  validation.check_unit_interval("dampening", dampening, closed_right=True)
  validation.check_bool("nesterov", nesterov)
  if nesterov and (is_zero(momentum) or not is_zero(dampening)):
    raise ValueError(
        "`nesterov=True` requires a `momentum` > 0 and `dampening` == 0 (as in "
        f"torch.optim.SGD); got momentum={momentum!r}, dampening={dampening!r}"
    )
  core = [] if is_zero(momentum) else [torch_momentum(momentum, dampening, nesterov)]
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

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.torch_compat as tc
    >>> tx = tc.adagrad(lr=0.1)
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> state = tx.init(params)
    >>> u1, state = tx.update({"w": jnp.array([0.5, -1.0])}, state, params)  # G_0 = 0: a step of lr
    >>> u2, state = tx.update({"w": jnp.array([1.0, 1.0])}, state, params)
    >>> [round(float(x), 4) for x in u1["w"]], [round(float(x), 4) for x in u2["w"]]
    ([-0.1, 0.1], [-0.0894, -0.0707])
  """
  check_lr(lr)
  validation.check_non_negative("lr_decay", lr_decay)
  validation.check_non_negative("initial_accumulator_value", initial_accumulator_value)
  validation.check_non_negative("eps", eps)
  if not is_zero(lr_decay):
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

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.torch_compat as tc
    >>> tx = tc.adadelta()  # lr=1.0: the first steps are about sqrt(eps / (1 - rho))
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> updates, state = tx.update({"w": jnp.array([0.5, -1.0])}, tx.init(params), params)
    >>> [round(float(x), 4) for x in updates["w"]]
    [-0.0032, 0.0032]
  """
  check_lr(lr)
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

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.torch_compat as tc
    >>> tx = tc.rmsprop(lr=0.01)  # alpha=0.99: the first step is lr / sqrt(1 - alpha) = 10 lr
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> updates, state = tx.update({"w": jnp.array([0.5, -1.0])}, tx.init(params), params)
    >>> [round(float(x), 4) for x in updates["w"]]
    [-0.1, 0.1]
  """
  check_lr(lr)
  validation.check_unit_interval("alpha", alpha)
  validation.check_non_negative("eps", eps)
  validation.check_non_negative("momentum", momentum)
  validation.check_bool("centered", centered)
  scaler = adaptive.scale_by_stddev if centered else adaptive.scale_by_rms
  core = [scaler(decay=alpha, eps=eps, eps_in_sqrt=False)]
  if not is_zero(momentum):
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

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.torch_compat as tc
    >>> tx = tc.adam(lr=0.1)
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> state = tx.init(params)
    >>> u1, state = tx.update({"w": jnp.array([0.5, -1.0])}, state, params)
    >>> u2, state = tx.update({"w": jnp.array([1.0, 1.0])}, state, params)
    >>> [round(float(x), 4) for x in u1["w"]], [round(float(x), 4) for x in u2["w"]]
    ([-0.1, 0.1], [-0.0965, -0.0053])
  """
  check_lr(lr)
  b1, b2 = check_betas(betas)
  validation.check_non_negative("eps", eps)
  validation.check_bool("amsgrad", amsgrad)
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

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.torch_compat as tc
    >>> tx = tc.adamw(lr=0.1, weight_decay=0.1)
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> updates, state = tx.update({"w": jnp.array([0.5, -1.0])}, tx.init(params), params)
    >>> [round(float(x), 4) for x in updates["w"]]  # Adam's -lr sign(g), plus -lr wd w
    [-0.11, 0.12]
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

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.torch_compat as tc
    >>> tx = tc.nadam(lr=0.1)
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> updates, state = tx.update({"w": jnp.array([0.5, -1.0])}, tx.init(params), params)
    >>> [round(float(x), 4) for x in updates["w"]]
    [-0.1056, 0.1056]
  """
  check_lr(lr)
  b1, b2 = check_betas(betas)
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

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.torch_compat as tc
    >>> tx = tc.radam(lr=0.1)
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> updates, state = tx.update({"w": jnp.array([0.5, -1.0])}, tx.init(params), params)
    >>> [round(float(x), 4) for x in updates["w"]]  # rho_1 <= 5: a plain momentum step, -lr m_hat
    [-0.05, 0.1]
  """
  check_lr(lr)
  b1, b2 = check_betas(betas)
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

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.torch_compat as tc
    >>> tx = tc.adamax(lr=0.1)
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> state = tx.init(params)
    >>> u1, state = tx.update({"w": jnp.array([0.5, -1.0])}, state, params)
    >>> u2, state = tx.update({"w": jnp.array([1.0, 1.0])}, state, params)
    >>> [round(float(x), 4) for x in u1["w"]], [round(float(x), 4) for x in u2["w"]]
    ([-0.1, 0.1], [-0.0763, -0.0053])
  """
  check_lr(lr)
  b1, b2 = check_betas(betas)
  validation.check_non_negative("eps", eps)
  core = adam_family.scale_by_adamax(b1, b2, eps)
  return _torch_chain([core], lr, maximize=maximize, weight_decay=weight_decay)

