"""What the optimizer modules share: argument types and the kernel-selection test."""

from __future__ import annotations

import jax

from jaxopt_notes.core import base, validation

LR = base.ScalarOrSchedule
Num = jax.typing.ArrayLike


def is_one(learning_rate) -> bool:
  """A constant step of exactly 1: XLA folds its -1 into a product's sign.

  ``p + (-1) * (r * g)`` then compiles to ``fma(r, -g, p)``; the RMSProp and
  AdaGrad kernels round ``r * g`` first, so those keep the reference path.
  """
  return validation.is_concrete_one(learning_rate)
