"""RMSProp, plain or centred, with optional momentum (notes 000, 003, 004)."""

from __future__ import annotations

from typing import Optional

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.kernels import fused
from jaxopt_notes.optimizers._common import LR, Num, descent_step, is_one
from jaxopt_notes.transforms import adaptive, moments

__all__ = ["rmsprop"]

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
  learning rate, as optax does. Same as ``optax.rmsprop``. Defaults
  ``decay=0.9``, ``eps=1e-8`` inside the root, not centred, no momentum
  (Tieleman & Hinton, 2012).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.rmsprop(0.1)
    >>> grad = jax.grad(lambda p: jnp.sum(p["w"] ** 2))
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> state = tx.init(params)
    >>> for _ in range(3):
    ...   updates, state = tx.update(grad(params), state, params)
    ...   params = jn.apply_updates(params, updates)
    >>> print(np.asarray(params["w"]).round(4))
    [ 0.3692 -1.3087]
  """
  validation.check_flags(centered=centered, nesterov=nesterov)
  if momentum is not None:
    validation.check_unit_interval("momentum", momentum)
  scaler = adaptive.scale_by_stddev if centered else adaptive.scale_by_rms
  lr_tx = descent_step(learning_rate)
  tx = combine.chain(
      scaler(
          decay=decay, eps=eps, initial_scale=initial_scale,
          eps_in_sqrt=eps_in_sqrt, bias_correction=bias_correction,
      ),
      lr_tx,
      moments.trace(decay=momentum, nesterov=nesterov) if momentum is not None else base.identity(),
  )
  plain = (not centered and momentum is None and eps_in_sqrt and not bias_correction
           and not is_one(learning_rate))
  return fused.attach(tx, fused.rms_rule(decay, eps, lr_tx)) if plain else tx

