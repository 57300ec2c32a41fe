"""The notes' optimizers, each a visible ``chain`` of building blocks.

Signatures, defaults and numbers are optax 0.2.x's (``optax.sgd``,
``optax.adam``, ...), so these are drop-in replacements. Extra keyword-only
arguments give the notes' own forms; their defaults keep optax's behaviour.
The one deliberate difference: :func:`adadelta` with ``learning_rate=None``
descends (optax's climbs, see its docstring).
"""

from __future__ import annotations

from typing import Any, Optional

import jax

from jaxopt_notes import adam_family
from jaxopt_notes import adaptive
from jaxopt_notes import base
from jaxopt_notes import combine
from jaxopt_notes import fused
from jaxopt_notes import masking
from jaxopt_notes import moments
from jaxopt_notes import scaling
from jaxopt_notes import validation

__all__ = [
    "adadelta",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "amsgrad",
    "nadam",
    "nadamw",
    "radam",
    "rmsprop",
    "sgd",
]

LR = base.ScalarOrSchedule
Num = jax.typing.ArrayLike


def sgd(
    learning_rate: LR,
    momentum: Optional[Num] = None,
    nesterov: bool = False,
    accumulator_dtype: Optional[Any] = None,
    *,
    average_momentum: bool = False,
) -> base.GradientTransformationExtraArgs:
  r"""Stochastic gradient descent, with optional (Nesterov) momentum.

  .. math::
     v_t = \rho v_{t-1} + g_t, \qquad w_t = w_{t-1} - \eta\, v_t

  (plain SGD ``w -= eta g`` when ``momentum`` is ``None``; Nesterov uses
  ``g_t + rho v_t``). Notes 000/003: ``v = rho v + dw; w -= lr v``.
  ``average_momentum=True`` is note 004's EMA form
  ``v = beta v + (1-beta) dw`` (see :func:`trace`). Chain:
  ``trace(momentum)`` (if any) then ``scale_by_learning_rate``. Same as
  ``optax.sgd``.

  Args:
    learning_rate: ``eta``, a float or a schedule.
    momentum: ``rho`` in ``[0, 1)``, or ``None`` for no momentum.
    nesterov: Nesterov momentum (default ``False``).
    accumulator_dtype: dtype of the momentum buffer.
    average_momentum: the EMA form of momentum (default ``False``).
  """
  # Checked even without momentum, where they would be silently ignored.
  validation.check_flags(nesterov=nesterov, average_momentum=average_momentum)
  validation.check_dtype("accumulator_dtype", accumulator_dtype)
  lr_tx = scaling.scale_by_learning_rate(learning_rate)
  if momentum is None:
    return fused.attach(combine.chain(base.identity(), lr_tx), fused.sgd_rule(lr_tx))
  validation.check_unit_interval("momentum", momentum)
  direction = moments.trace(
      decay=momentum, nesterov=nesterov, accumulator_dtype=accumulator_dtype,
      average=average_momentum,
  )
  tx = combine.chain(direction, lr_tx)
  # The averaged form has its own multiply-add pattern; it keeps the reference path.
  return tx if average_momentum else fused.attach(tx, fused.momentum_rule(momentum, nesterov, lr_tx))


def adagrad(
    learning_rate: LR,
    initial_accumulator_value: Num = 0.1,
    eps: Num = 1e-7,
    *,
    eps_in_sqrt: bool = True,
) -> base.GradientTransformationExtraArgs:
  r"""AdaGrad: per-coordinate steps shrinking with the sum of squared gradients.

  .. math:: G_t = G_{t-1} + g_t^2, \qquad w_t = w_{t-1} - \eta\, g_t / \sqrt{G_t + \epsilon}

  Notes 000 (``w -= lr * dw / (sqrt(g2) + 1e-7)``: pass ``eps_in_sqrt=False``)
  and 003. Chain: :func:`scale_by_rss` then ``scale_by_learning_rate``. Same as
  ``optax.adagrad`` by default.
  """
  lr_tx = scaling.scale_by_learning_rate(learning_rate)
  tx = combine.chain(
      adaptive.scale_by_rss(initial_accumulator_value, eps, eps_in_sqrt=eps_in_sqrt), lr_tx,
  )
  return fused.attach(tx, fused.rss_rule(eps, lr_tx)) if eps_in_sqrt and not _is_one(learning_rate) else tx


def adadelta(
    learning_rate: Optional[LR] = None,
    rho: Num = 0.9,
    eps: Num = 1e-6,
    weight_decay: LR = 0.0,
    weight_decay_mask: Optional[masking.Mask] = None,
) -> base.GradientTransformationExtraArgs:
  r"""Adadelta: RMSProp with the step size taken from past steps' RMS.

  .. math:: w_t = w_{t-1} - \eta\, \frac{\sqrt{H_{t-1} + \epsilon}}{\sqrt{G_t + \epsilon}}\, g_t

  Notes 003 give it without a learning rate (``eta = 1``). Chain:
  ``add_decayed_weights`` (L2), :func:`scale_by_adadelta`, then the step.

  **Deliberate difference from optax.** ``optax.adadelta()`` with the default
  ``learning_rate=None`` applies no scaling at all, and so also no sign flip:
  its updates point up the gradient and the loss climbs (optax 0.2.8). Here
  ``learning_rate=None`` means ``eta = 1`` with the sign flipped, which is
  Zeiler's algorithm and descends. With a learning rate given, the numbers
  equal optax's.
  """
  step = scaling.scale(-1.0) if learning_rate is None else scaling.scale_by_learning_rate(learning_rate)
  tx = combine.chain(
      scaling.add_decayed_weights(weight_decay, mask=weight_decay_mask),
      adaptive.scale_by_adadelta(rho=rho, eps=eps),
      step,
  )
  if weight_decay_mask is not None or callable(weight_decay):
    return tx
  neg_one = learning_rate is None or _is_one(learning_rate)
  # The bfloat16 kernel takes a Python-number step (JAX rounds it to bfloat16).
  python_lr = validation.is_python_number(learning_rate)
  bf16_step = -1.0 if learning_rate is None else (-learning_rate if python_lr else None)
  return fused.attach(tx, fused.adadelta_rule(rho, eps, weight_decay, step, neg_one, bf16_step))


def rmsprop(
    learning_rate: LR,
    decay: Num = 0.9,
    eps: Num = 1e-8,
    initial_scale: Num = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: Optional[Num] = None,
    nesterov: bool = False,
    bias_correction: bool = False,
) -> base.GradientTransformationExtraArgs:
  r"""RMSProp, plain or centred, with optional momentum.

  .. math:: S_t = \gamma S_{t-1} + (1-\gamma) g_t^2, \qquad w_t = w_{t-1} - \eta\, g_t / \sqrt{S_t + \epsilon}

  Notes 000/003/004. ``centered`` divides by the running standard deviation
  (:func:`scale_by_stddev`); ``momentum`` adds a :func:`trace` after the
  learning rate, as optax does. Same as ``optax.rmsprop``.
  """
  validation.check_flags(centered=centered, nesterov=nesterov)
  if momentum is not None:
    validation.check_unit_interval("momentum", momentum)
  scaler = adaptive.scale_by_stddev if centered else adaptive.scale_by_rms
  lr_tx = scaling.scale_by_learning_rate(learning_rate)
  tx = combine.chain(
      scaler(
          decay=decay, eps=eps, initial_scale=initial_scale,
          eps_in_sqrt=eps_in_sqrt, bias_correction=bias_correction,
      ),
      lr_tx,
      moments.trace(decay=momentum, nesterov=nesterov) if momentum is not None else base.identity(),
  )
  plain = (not centered and momentum is None and eps_in_sqrt and not bias_correction
           and not _is_one(learning_rate))
  return fused.attach(tx, fused.rms_rule(decay, eps, lr_tx)) if plain else tx


def adam(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-8,
    eps_root: Num = 0.0,
    mu_dtype: Optional[Any] = None,
    *,
    nesterov: bool = False,
    nu_dtype: Optional[Any] = None,
    bias_correction: bool = True,
) -> base.GradientTransformationExtraArgs:
  r"""Adam: bias-corrected momentum divided by a bias-corrected RMS.

  .. math:: w_t = w_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}

  Notes 000/003/004; defaults b1 0.9, b2 0.999, eps 1e-8 as there.
  ``bias_correction=False`` is note 000's "almost Adam". Chain:
  :func:`scale_by_adam` then the step. Same as ``optax.adam``.
  """
  lr_tx = scaling.scale_by_learning_rate(learning_rate)
  tx = combine.chain(
      adam_family.scale_by_adam(
          b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype,
          nesterov=nesterov, nu_dtype=nu_dtype, bias_correction=bias_correction,
      ),
      lr_tx,
  )
  return _with_adam_kernel(tx, b1, b2, eps, eps_root, nesterov, bias_correction, None, lr_tx)


def adamw(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-8,
    eps_root: Num = 0.0,
    mu_dtype: Optional[Any] = None,
    weight_decay: LR = 1e-4,
    mask: Optional[masking.Mask] = None,
    *,
    nesterov: bool = False,
    nu_dtype: Optional[Any] = None,
    bias_correction: bool = True,
) -> base.GradientTransformationExtraArgs:
  r"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

  .. math:: w_t = w_{t-1} - \eta \left(\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon} + \lambda w_{t-1}\right)

  The decay is added after Adam's scaling, so it is not divided by
  ``sqrt(v)`` (notes 001 name AdamW). Chain: :func:`scale_by_adam`,
  :func:`add_decayed_weights`, the step. Same as ``optax.adamw``.
  """
  lr_tx = scaling.scale_by_learning_rate(learning_rate)
  tx = combine.chain(
      adam_family.scale_by_adam(
          b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype,
          nesterov=nesterov, nu_dtype=nu_dtype, bias_correction=bias_correction,
      ),
      scaling.add_decayed_weights(weight_decay, mask),
      lr_tx,
  )
  if mask is not None or callable(weight_decay):
    return tx
  return _with_adam_kernel(tx, b1, b2, eps, eps_root, nesterov, bias_correction, weight_decay, lr_tx)


def _is_one(learning_rate) -> bool:
  """A constant step of exactly 1: XLA folds its -1 into a product's sign.

  ``p + (-1) * (r * g)`` then compiles to ``fma(r, -g, p)``; the RMSProp and
  AdaGrad kernels round ``r * g`` first, so those keep the reference path.
  """
  return validation.is_concrete_one(learning_rate)


def _with_adam_kernel(tx, b1, b2, eps, eps_root, nesterov, bias_correction, weight_decay, lr_tx):
  """Attaches the fused Adam(W) kernel to the plain configurations (no NAdam)."""
  if nesterov or not bias_correction:
    return tx
  if weight_decay is not None and scaling.skips_weight_decay(weight_decay):
    # add_decayed_weights(0.0) skips the add entirely: so does plain Adam's kernel.
    weight_decay = None
  return fused.attach(tx, fused.adam_rule(b1, b2, eps, eps_root, weight_decay, lr_tx))


def nadam(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-8,
    eps_root: Num = 0.0,
    mu_dtype: Optional[Any] = None,
    *,
    nu_dtype: Optional[Any] = None,
) -> base.GradientTransformationExtraArgs:
  r"""NAdam: Adam with Nesterov momentum (Dozat, 2016).

  .. math:: w_t = w_{t-1} - \eta\, \frac{\beta_1 \hat m_{t+1} + (1-\beta_1)\hat g_t}{\sqrt{\hat v_t} + \epsilon}

  Notes 000's Nesterov look-ahead applied to Adam's first moment. Same as
  ``optax.nadam`` (``adam(..., nesterov=True)``).
  """
  return adam(learning_rate, b1, b2, eps, eps_root, mu_dtype, nesterov=True, nu_dtype=nu_dtype)


def nadamw(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-8,
    eps_root: Num = 0.0,
    mu_dtype: Optional[Any] = None,
    weight_decay: LR = 1e-4,
    mask: Optional[masking.Mask] = None,
    *,
    nu_dtype: Optional[Any] = None,
) -> base.GradientTransformationExtraArgs:
  r"""NAdamW: NAdam with decoupled weight decay; see :func:`nadam`, :func:`adamw`.

  Same as ``optax.nadamw`` (``adamw(..., nesterov=True)``).
  """
  return adamw(
      learning_rate, b1, b2, eps, eps_root, mu_dtype, weight_decay, mask,
      nesterov=True, nu_dtype=nu_dtype,
  )


def radam(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-8,
    eps_root: Num = 0.0,
    threshold: Num = 5.0,
    *,
    nesterov: bool = False,
) -> base.GradientTransformationExtraArgs:
  r"""RAdam: Adam whose adaptive step is rectified while ``v`` is unreliable.

  .. math:: w_t = w_{t-1} - \eta\, r_t\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}\ \ (\rho_t \ge 5),\ \text{else}\ w_{t-1} - \eta\, \hat m_t

  Notes 001 name RAdam. See :func:`scale_by_radam`. Same as ``optax.radam``.
  """
  return combine.chain(
      adam_family.scale_by_radam(b1, b2, eps, eps_root, threshold, nesterov=nesterov),
      scaling.scale_by_learning_rate(learning_rate),
  )


def amsgrad(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-8,
    eps_root: Num = 0.0,
    mu_dtype: Optional[Any] = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    *,
    nu_dtype: Optional[Any] = None,
) -> base.GradientTransformationExtraArgs:
  r"""AMSGrad: Adam with the running maximum of the second moment.

  .. math:: w_t = w_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{\max_{s\le t} \hat v_s} + \epsilon}

  See :func:`scale_by_amsgrad`. Same as ``optax.amsgrad``.
  """
  return combine.chain(
      adam_family.scale_by_amsgrad(
          b1, b2, eps, eps_root, mu_dtype, bias_correction_mu, bias_correction_nu,
          nu_dtype=nu_dtype,
      ),
      scaling.scale_by_learning_rate(learning_rate),
  )


def adamax(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-8,
) -> base.GradientTransformationExtraArgs:
  r"""Adamax: Adam with an infinity-norm second moment.

  .. math:: w_t = w_{t-1} - \eta\, \hat m_t / \max(\beta_2 u_{t-1}, |g_t| + \epsilon)

  See :func:`scale_by_adamax`. Same as ``optax.adamax``.
  """
  return combine.chain(
      adam_family.scale_by_adamax(b1, b2, eps),
      scaling.scale_by_learning_rate(learning_rate),
  )
