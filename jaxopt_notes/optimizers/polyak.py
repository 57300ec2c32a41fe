"""SGD with Polyak's step size, read off the loss value (beyond the notes; see notes 004)."""

from __future__ import annotations

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.optimizers._common import LR, Num
from jaxopt_notes.optimizers.sgd import sgd
from jaxopt_notes.transforms import step_size

__all__ = ["polyak_sgd"]


def polyak_sgd(
    max_learning_rate: Num = 1.0,
    scaling: LR = 1.0,
    f_min: Num = 0.0,
    eps: Num = 0.0,
    variant: str = "sps",
) -> base.GradientTransformationExtraArgs:
  r"""SGD whose step is Polyak's: the loss gap over the squared gradient norm, capped.

  .. math::
     v_t = -s_t\, g_t, \qquad
     w_{t+1} = w_t + \min\left(\frac{f(w_t) - f^\star}{\lVert v_t \rVert^2 + \epsilon},\
       \gamma_{\max}\right) v_t

  (a zero step where :math:`\lVert v_t\rVert^2 + \epsilon` is below float64's
  machine epsilon; ``variant="sps+"`` uses :math:`(f(w_t) - f^\star)_+`).
  The stochastic Polyak step (Loizou et al., 2021, AISTATS,
  arXiv:2002.10542; SPS+: Garrigos et al., 2023, arXiv:2307.14528). Notes 004
  shrink the learning rate by a fixed schedule; this one computes it from
  the loss each step, and so needs a lower bound ``f_min`` of the loss
  (0 for a model that can fit its data; a wrong one stalls or diverges).

  Chain: ``sgd(scaling)`` then :func:`scale_by_polyak`, so the norm is that
  of the already scaled step :math:`s_t g_t`. With ``s = 1`` (the default)
  this is the formula of the paper; with another ``s`` the uncapped step is
  :math:`(f - f^\star) g / (s \lVert g\rVert^2)` (``scaling`` divides) and
  the capped one :math:`\gamma_{\max} s\, g` (it multiplies), which is what
  optax computes, although optax's docstring writes
  :math:`s \min(\dots)`.

  ``update`` needs the loss: ``tx.update(grads, state, params, value=loss)``.
  Same as ``optax.polyak_sgd`` (signature, state, numbers); a bad
  ``variant`` is refused when built.

  Args:
    max_learning_rate: the cap :math:`\gamma_{\max} > 0` (default 1.0).
    scaling: :math:`s`, a number or a schedule (default 1.0).
    f_min: the lower bound :math:`f^\star` of the loss (default 0.0).
    eps: added to the squared norm, ``>= 0`` (default 0.0).
    variant: ``"sps"`` (default) or ``"sps+"``.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> f = lambda w: jnp.sum(w ** 2)
    >>> tx = jn.polyak_sgd()
    >>> params = jnp.array([1.0, 2.0, 3.0])
    >>> state = tx.init(params)
    >>> for _ in range(3):
    ...   value, grad = jax.value_and_grad(f)(params)
    ...   updates, state = tx.update(grad, state, params, value=value)
    ...   params = jn.apply_updates(params, updates)
    ...   print(f(params))
    3.5
    0.875
    0.21875
  """
  if scaling is None:
    raise TypeError("`scaling` must be a number or a schedule, not None (it would skip the sign flip).")
  validation.check_learning_rate(scaling, "scaling")
  return combine.chain(
      sgd(learning_rate=scaling),
      step_size.scale_by_polyak(
          f_min=f_min, max_learning_rate=max_learning_rate, eps=eps, variant=variant,
      ),
  )
