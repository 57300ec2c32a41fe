"""What the torch_compat modules share: argument checks in torch's terms."""

from __future__ import annotations

from typing import Any, Sequence

import jax

from jaxopt_notes.core import base, validation

LR = base.ScalarOrSchedule
Num = jax.typing.ArrayLike
Tx = base.GradientTransformationExtraArgs
Betas = tuple[Num, Num]


def check_lr(lr: Any) -> None:
  if not callable(lr):
    validation.check_non_negative("lr", lr)


def check_betas(betas: Any) -> tuple[Num, Num]:
  if isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence) or len(betas) != 2:
    raise TypeError(f"`betas` must be a pair (beta1, beta2); got {betas!r}")
  validation.check_unit_interval("betas[0]", betas[0])
  validation.check_unit_interval("betas[1]", betas[1])
  return betas[0], betas[1]


def is_zero(value: Any) -> bool:
  # A traced or array value may be non-zero: keep its transform in the chain.
  return isinstance(value, (int, float)) and value == 0
