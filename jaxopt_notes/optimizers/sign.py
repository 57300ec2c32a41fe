"""Sign-based optimizers: signSGD, Signum and Lion.

Each step moves every coordinate by the learning rate in the direction of a
sign (of the gradient, of its EMA, or of Lion's interpolated momentum): the
per-coordinate adaptive scalings of notes 000/003/004 pushed to their limit.
Each is a ``chain`` of :mod:`jaxopt_notes.transforms.sign` blocks and the step.
"""

from __future__ import annotations

from typing import Any, Optional

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.optimizers._common import LR, Num, descent_step
from jaxopt_notes.transforms import masking, moments, scaling, sign

__all__ = ["lion", "sign_sgd", "signum"]


def sign_sgd(learning_rate: LR) -> base.GradientTransformationExtraArgs:
  r"""signSGD: step by the learning rate against the sign of each gradient coordinate.

  .. math:: w_t = w_{t-1} - \eta_t \operatorname{sign}(g_t)

  Bernstein et al., 2018 ("signSGD: Compressed Optimisation for Non-Convex
  Problems", arXiv:1802.04434); Balles et al., 2020 (arXiv:2002.08056). Notes
  000's ``w -= lr * dw`` with only one bit of ``dw`` per coordinate, the
  limit of notes 000/003/004's per-coordinate scalings. Every step has the
  same length, so it hovers within ``eta`` of a minimum unless the learning
  rate decays. Chain: :func:`scale_by_sign`, the step. Same as
  ``optax.sign_sgd``.

  Args:
    learning_rate: ``eta``, a float or a schedule.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.sign_sgd(0.1)
    >>> params = {"w": jnp.ones(3)}
    >>> updates, state = tx.update({"w": jnp.array([3.0, -0.5, 0.0])}, tx.init(params), params)
    >>> updates["w"]
    Array([-0.1,  0.1, -0. ], dtype=float32)
  """
  return combine.chain(sign.scale_by_sign(), descent_step(learning_rate))


def signum(
    learning_rate: LR,
    beta: Num = 0.9,
    accumulator_dtype: Optional[Any] = None,
) -> base.GradientTransformationExtraArgs:
  r"""Signum: signSGD on an EMA of the gradients (sign momentum).

  .. math::
     m_t = \beta m_{t-1} + (1-\beta) g_t, \qquad
     w_t = w_{t-1} - \eta_t \operatorname{sign}(m_t)

  Bernstein et al., 2018 (arXiv:1802.04434); Zhao et al., 2024
  (arXiv:2407.07972). ``m`` is the EMA form of notes 000/003/004's momentum;
  it is not bias-corrected, as a positive factor does not change a sign.
  Chain: :func:`ema` (``debias=False``), :func:`scale_by_sign`, the step.
  Same as ``optax.signum``.

  Args:
    learning_rate: ``eta``, a float or a schedule.
    beta: EMA decay in ``[0, 1)`` (default 0.9).
    accumulator_dtype: dtype of the stored EMA (default: the params').

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.signum(0.1)
    >>> params = {"w": jnp.ones(2)}
    >>> updates, state = tx.update({"w": jnp.array([3.0, -0.5])}, tx.init(params), params)
    >>> updates["w"]
    Array([-0.1,  0.1], dtype=float32)
  """
  # Checked here so that the error names this function's argument, not ema's `decay`.
  validation.check_unit_interval("beta", beta)
  return combine.chain(
      moments.ema(beta, debias=False, accumulator_dtype=accumulator_dtype),
      sign.scale_by_sign(),
      descent_step(learning_rate),
  )


def lion(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.99,
    mu_dtype: Optional[Any] = None,
    weight_decay: LR = 1e-3,
    mask: Optional[masking.Mask] = None,
) -> base.GradientTransformationExtraArgs:
  r"""Lion: the sign of interpolated momentum, with decoupled weight decay.

  .. math::
     c_t = (1-\beta_1) g_t + \beta_1 m_{t-1}, \quad
     w_t = w_{t-1} - \eta_t \big(\operatorname{sign}(c_t) + \lambda w_{t-1}\big), \quad
     m_t = \beta_2 m_{t-1} + (1-\beta_2) g_t

  Chen et al., 2023 ("Symbolic Discovery of Optimization Algorithms",
  arXiv:2302.06675). Keeps only a momentum (half of Adam's memory; notes
  000/003/004's momentum family), and the sign makes every step as long as
  the learning rate, so a learning rate 3-10x below AdamW's and a weight
  decay 3-10x above it keep ``eta * lambda`` similar. The decay is added
  after the sign, as in AdamW, and is multiplied by the learning rate.
  Chain: :func:`scale_by_lion`, :func:`add_decayed_weights` (``mask``), the
  step. Same as ``optax.lion``.

  Checked in lockstep against the ``lion-pytorch`` package's ``Lion``
  (0.2.5, ``use_triton=False``; 50 steps, a matrix, a vector, a scalar):
  its defaults and its README's rates, ``betas=(0.95, 0.98)`` and decays, a
  cosine ``LambdaLR``; float64 within rtol 1e-11 (measured worst 1.3e-14
  absolute), float32 within rtol 1e-4 (measured 1e-5 relative). Its
  ``weight_decay`` is this one (both times the rate), but its default is 0,
  here 1e-3 (optax's); its ``decoupled_weight_decay=True`` (decay not
  times the rate: it divides by the initial rate ``lr_0``) is
  ``weight_decay=wd / lr_0`` here, a schedule of the rate included.

  Args:
    learning_rate: ``eta``, a float or a schedule.
    b1: momentum weight in the step's direction, in ``[0, 1)`` (default 0.9).
    b2: decay of the momentum EMA, in ``[0, 1)`` (default 0.99).
    mu_dtype: dtype of the stored momentum (default: the params').
    weight_decay: ``lambda``, a number ``>= 0`` or a schedule (default 1e-3).
    mask: which leaves to decay (a pytree of booleans or a function of the
      params); ``None`` decays all (default).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.lion(1e-3)
    >>> params = {"w": jnp.ones(3)}
    >>> updates, state = tx.update({"w": jnp.array([3.0, -0.5, 0.0])}, tx.init(params), params)
    >>> print(np.asarray(updates["w"]).round(7))  # -eta (sign(g) + lambda w)
    [-1.001e-03  9.990e-04 -1.000e-06]
  """
  return combine.chain(
      sign.scale_by_lion(b1, b2, mu_dtype),
      scaling.add_decayed_weights(weight_decay, mask),
      descent_step(learning_rate),
  )
