"""Memory-light adaptive optimizers: Adafactor and SM3 (notes 000/003/004).

Both keep RMSProp's or AdaGrad's per-coordinate scaling with a second
moment stored per row and per column of each weight matrix
(:mod:`jaxopt_notes.transforms.factored`).
"""

from __future__ import annotations

from typing import Any, Optional

import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.optimizers._common import LR, Num, descent_step
from jaxopt_notes.transforms import clipping, masking, moments, scaling, trust_ratio
from jaxopt_notes.transforms import factored as factored_module  # `factored` is adafactor's flag

__all__ = ["adafactor", "sm3"]


def adafactor(
    learning_rate: Optional[LR] = None,
    min_dim_size_to_factor: int = 128,
    decay_rate: Num = 0.8,
    decay_offset: Num = 0,
    multiply_by_parameter_scale: bool = True,
    clipping_threshold: Optional[Num] = 1.0,
    momentum: Optional[Num] = None,
    dtype_momentum: Any = jnp.float32,
    weight_decay_rate: Optional[LR] = None,
    eps: Num = 1e-30,
    factored: bool = True,
    weight_decay_mask: masking.Mask = None,
) -> base.GradientTransformationExtraArgs:
  r"""Adafactor: a factored RMS scaling, clipped, relative to the weights' scale.

  .. math::
     \hat u_t = \frac{g_t}{\sqrt{\hat V_t}}, \quad
     \tilde u_t = \frac{\hat u_t}{\max(1, \mathrm{rms}(\hat u_t) / d)}, \quad
     w_t = w_{t-1} - \eta\, \max(\mathrm{rms}(w_{t-1}), 10^{-3})\, \tilde u_t

  per params leaf, where :math:`\hat V_t` is the factored (row x column)
  second moment of :func:`scale_by_factored_rms` for leaves whose two
  largest dimensions are both at least ``min_dim_size_to_factor``, and the
  full one otherwise. RMSProp's scaling (notes 000/003/004) in sublinear
  memory, with an increasing decay ``1 - t^{-0.8}``, update clipping ``d``
  and a step relative to each layer's RMS: Shazeer & Stern, "Adafactor:
  Adaptive Learning Rates with Sublinear Memory Cost", ICML 2018
  (arXiv:1804.04235). Chain: :func:`scale_by_factored_rms`,
  [:func:`clip_by_block_rms`], [``scale_by_learning_rate(lr,
  flip_sign=False)``], [:func:`scale_by_param_block_rms`], [:func:`ema`
  momentum, not debiased], [:func:`add_decayed_weights`], ``scale(-1)``: the
  bracketed links are left out when their argument is ``None``/``False``.
  Same as ``optax.adafactor``; as there (and unlike the other optimizers
  here), ``learning_rate=None`` is allowed: the sign flip is the final
  ``scale(-1)``, so it still descends, with a step of the weights' RMS.

  Args:
    learning_rate: ``eta``, a float, a schedule or ``None`` (default: no
      scaling besides the parameter scale).
    min_dim_size_to_factor: factor a leaf when its second largest dimension
      is at least this (default 128).
    decay_rate: the decay's exponent (default 0.8).
    decay_offset: an integer subtracted from the step count for the decay
      (default 0; the count a fine-tuning run resumes from).
    multiply_by_parameter_scale: scale each leaf's step by its params' RMS
      (floored at 1e-3; default ``True``).
    clipping_threshold: ``d > 0`` for :func:`clip_by_block_rms` (default
      1.0), or ``None`` for no clipping.
    momentum: EMA decay in ``[0, 1)`` of the scaled updates, or ``None``
      (default: no momentum, no extra memory).
    dtype_momentum: dtype of the momentum buffer (default float32).
    weight_decay_rate: decay added after the scaling (a finite number or a
      schedule), or ``None`` (default) for none.
    eps: added to ``g^2`` (default 1e-30).
    factored: use factored second moments at all (default ``True``).
    weight_decay_mask: which leaves to decay (default ``None``: all).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.adafactor(0.1, min_dim_size_to_factor=2)
    >>> params = {"w": jnp.full((2, 3), 2.0), "b": jnp.zeros(3)}
    >>> grads = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}
    >>> state = tx.init(params)
    >>> state[0].v_row["w"].shape, state[0].v_col["w"].shape, state[0].v["w"].shape
    ((2,), (3,), (1,))
    >>> updates, state = tx.update(grads, state, params)
    >>> updates["w"][0], updates["b"]  # 0.1 * rms(w) = 0.2; 0.1 * 1e-3 for the zero bias
    (Array([-0.2, -0.2, -0.2], dtype=float32), Array([-0.0001, -0.0001, -0.0001], dtype=float32))
  """
  validation.check_flags(multiply_by_parameter_scale=multiply_by_parameter_scale, factored=factored)
  validation.check_non_negative("eps", eps)
  factored_module.check_step_offset("decay_offset", decay_offset)
  if clipping_threshold is not None:
    validation.check_positive("clipping_threshold", clipping_threshold)
  if momentum is not None:
    validation.check_unit_interval("momentum", momentum)
  dtype_momentum = validation.check_dtype("dtype_momentum", dtype_momentum)
  if weight_decay_rate is not None:
    if callable(weight_decay_rate):
      validation.check_callable("weight_decay_rate", weight_decay_rate)
    else:
      validation.check_finite("weight_decay_rate", weight_decay_rate)
  if weight_decay_mask is not None and not callable(weight_decay_mask):
    # Checked without a decay too, where a bad mask would be silently ignored.
    masking.check_mask_leaves(weight_decay_mask)

  links: list[base.GradientTransformation] = [
      factored_module.scale_by_factored_rms(factored, decay_rate, decay_offset, min_dim_size_to_factor, eps)
  ]
  if clipping_threshold is not None:
    links.append(clipping.clip_by_block_rms(clipping_threshold))
  if learning_rate is not None:
    links.append(scaling.scale_by_learning_rate(learning_rate, flip_sign=False))
  if multiply_by_parameter_scale:
    links.append(trust_ratio.scale_by_param_block_rms())
  if momentum is not None:
    links.append(moments.ema(momentum, debias=False, accumulator_dtype=dtype_momentum))
  if weight_decay_rate is not None:
    links.append(scaling.add_decayed_weights(weight_decay_rate, mask=weight_decay_mask))
  # The descent's sign flip, kept apart from the learning rate so that None still descends.
  links.append(scaling.scale(-1))
  return combine.chain(*links)


def sm3(learning_rate: LR, momentum: Num = 0.9) -> base.GradientTransformationExtraArgs:
  r"""SM3: AdaGrad with per-row and per-column accumulators, plus momentum.

  .. math::
     \nu_t(i) = g_t(i)^2 + \min_a \mu^{(a)}_{t-1}(i_a), \quad
     m_t = \beta m_{t-1} + (1 - \beta)\, \frac{g_t}{\sqrt{\nu_t + 10^{-8}}}, \quad
     w_t = w_{t-1} - \eta\, m_t

  with :math:`\mu^{(a)}_t` the maxima of :math:`\nu_t` along each axis (see
  :func:`scale_by_sm3`). AdaGrad of notes 000/003, whose steps it never
  exceeds, in ``O(sum of dims)`` memory for the second moment; the momentum
  is that of notes 004's EMA form. Anil, Gupta, Koren & Singer,
  "Memory-Efficient Adaptive Optimization", NeurIPS 2019 (arXiv:1901.11150).
  Chain: :func:`scale_by_sm3` (``b1=momentum``), the step. Same as
  ``optax.sm3``; a schedule is also accepted for ``learning_rate`` (optax's
  takes a number only), and scalar params work (optax's raise).

  Args:
    learning_rate: ``eta``, a float or a schedule.
    momentum: ``beta`` in ``[0, 1)`` (default 0.9).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.sm3(1.0)
    >>> params = {"w": jnp.ones((2, 3))}
    >>> updates, _ = tx.update({"w": jnp.full((2, 3), -3.0)}, tx.init(params), params)
    >>> updates["w"][0]  # 1.0 * (1 - 0.9) * sign(g) on the first step
    Array([0.1, 0.1, 0.1], dtype=float32)
  """
  validation.check_unit_interval("momentum", momentum)
  return combine.chain(factored_module.scale_by_sm3(momentum), descent_step(learning_rate))
