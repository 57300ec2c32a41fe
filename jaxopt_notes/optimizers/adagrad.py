"""AdaGrad: steps divided by the root of the summed squared gradients (notes 000, 003)."""

from __future__ import annotations

from jaxopt_notes.core import base, combine
from jaxopt_notes.kernels import fused
from jaxopt_notes.optimizers._common import LR, Num, descent_step, is_one
from jaxopt_notes.transforms import adaptive

__all__ = ["adagrad"]

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
  ``optax.adagrad`` by default. Defaults ``initial_accumulator_value=0.1``,
  ``eps=1e-7`` (Duchi et al., 2011).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.adagrad(0.1)
    >>> grad = jax.grad(lambda p: jnp.sum(p["w"] ** 2))
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> state = tx.init(params)
    >>> for _ in range(3):
    ...   updates, state = tx.update(grad(params), state, params)
    ...   params = jn.apply_updates(params, updates)
    >>> print(np.asarray(params["w"]).round(4))
    [ 0.7823 -1.7763]
  """
  lr_tx = descent_step(learning_rate)
  tx = combine.chain(
      adaptive.scale_by_rss(initial_accumulator_value, eps, eps_in_sqrt=eps_in_sqrt), lr_tx,
  )
  return fused.attach(tx, fused.rss_rule(eps, lr_tx)) if eps_in_sqrt and not is_one(learning_rate) else tx

