"""SGD, with optional heavy-ball or Nesterov momentum (notes 000, 003, 004)."""

from __future__ import annotations

from typing import Any, Optional

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.kernels import fused
from jaxopt_notes.optimizers._common import LR, Num, descent_step
from jaxopt_notes.transforms import moments

__all__ = ["sgd"]

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
  lr_tx = descent_step(learning_rate)
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

