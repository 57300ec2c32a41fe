"""What the optimizer modules share: argument types and the kernel-selection test."""

from __future__ import annotations

import jax

from jaxopt_notes.core import base, validation
from jaxopt_notes.transforms import scaling

LR = base.ScalarOrSchedule
Num = jax.typing.ArrayLike


def is_one(learning_rate) -> bool:
  """A constant step of exactly 1: XLA folds its -1 into a product's sign.

  ``p + (-1) * (r * g)`` then compiles to ``fma(r, -g, p)``; the RMSProp and
  AdaGrad kernels round ``r * g`` first, so those keep the reference path.
  """
  return validation.is_concrete_one(learning_rate)


def descent_step(learning_rate) -> base.GradientTransformation:
  """``scale_by_learning_rate(learning_rate)``, refusing ``None``.

  optax's optimizers take ``learning_rate=None`` as "no scaling", which also
  drops the sign flip, so ``optax.adam(None)`` climbs the loss. Every
  optimizer here but :func:`adadelta` (which documents ``None`` as a
  descending ``eta = 1``) raises instead.

  Raises:
    TypeError: naming ``learning_rate`` when it is ``None``.
  """
  if learning_rate is None:
    raise TypeError(
        "`learning_rate` must be a number or a schedule, not None: optax reads "
        "None as no scaling and also skips the sign flip, so the step would "
        "climb the loss. Pass e.g. learning_rate=1e-3."
    )
  return scaling.scale_by_learning_rate(learning_rate)
