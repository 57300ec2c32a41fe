"""Adadelta: RMSProp whose step size comes from past steps' RMS (note 003)."""

from __future__ import annotations

from typing import Optional, cast

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.kernels import fused
from jaxopt_notes.optimizers._common import LR, Num
from jaxopt_notes.transforms import adaptive, masking, scaling

__all__ = ["adadelta"]

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
  equal optax's. Defaults ``rho=0.9``, ``eps=1e-6``, no weight decay (Zeiler, 2012).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.adadelta()
    >>> grad = jax.grad(lambda p: jnp.sum(p["w"] ** 2))
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> state = tx.init(params)
    >>> for _ in range(3):
    ...   updates, state = tx.update(grad(params), state, params)
    ...   params = jn.apply_updates(params, updates)
    >>> print(np.asarray(params["w"]).round(4))  # small first steps: the RMS of past steps starts at 0
    [ 0.9903 -1.9903]
  """
  step = scaling.scale(-1.0) if learning_rate is None else scaling.scale_by_learning_rate(learning_rate)
  tx = combine.chain(
      scaling.add_decayed_weights(weight_decay, mask=weight_decay_mask),
      adaptive.scale_by_adadelta(rho=rho, eps=eps),
      step,
  )
  if weight_decay_mask is not None or callable(weight_decay):
    return tx
  # The bfloat16 kernel takes a Python-number step (JAX rounds it to bfloat16).
  python_lr = validation.is_python_number(learning_rate)
  bf16_step = -1.0 if learning_rate is None else (-cast(float, learning_rate) if python_lr else None)
  return fused.attach(tx, fused.adadelta_rule(rho, eps, weight_decay, step, bf16_step))

