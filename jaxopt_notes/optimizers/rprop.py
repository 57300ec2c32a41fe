"""Rprop: per-coordinate steps driven by the gradient's sign (notes 000/003/004's adaptive family)."""

from __future__ import annotations

from jaxopt_notes.core import base, combine
from jaxopt_notes.optimizers._common import Num, descent_step
from jaxopt_notes.transforms import step_size

__all__ = ["rprop"]


def rprop(
    learning_rate: Num,
    eta_minus: Num = 0.5,
    eta_plus: Num = 1.2,
    min_step_size: Num = 1e-6,
    max_step_size: Num = 50.0,
) -> base.GradientTransformationExtraArgs:
  r"""Rprop: each coordinate steps by its own size, grown while the gradient's sign holds.

  .. math::
     \Delta_t = \operatorname{clip}\left(\eta^{\pm} \Delta_{t-1}\right)
       \ (\text{$\eta^+$ if } g_t g_{t-1} > 0,\ \eta^- \text{ if } < 0), \qquad
     w_{t+1} = w_t - \Delta \operatorname{sign}(g)

  iRprop- (Riedmiller & Braun, 1993, IEEE ICNN; Igel & Hüsken, 2003,
  Neurocomputing 50): the magnitude of the gradient is discarded, only its
  sign history sets each step, a per-coordinate adaptive scaling like notes
  000/003/004's AdaGrad and RMSProp (RMSProp began as a minibatch Rprop).
  ``learning_rate`` is the initial step size :math:`\Delta_0`, not a factor
  on every step, so it is a number (a schedule is refused).

  As in optax 0.2.8, each returned step is the *previous* step's
  :math:`\Delta_{t-1}\operatorname{sign}(g_{t-1})` (zeroed on a sign flip):
  the first update is zero and the rest lag by one step; see
  :func:`scale_by_rprop`. Chain: :func:`scale_by_rprop` then the sign flip.
  Same as ``optax.rprop`` (signature, state, numbers).

  Args:
    learning_rate: the initial step size :math:`\Delta_0 > 0`.
    eta_minus: shrink factor on a sign flip, in ``(0, 1]`` (default 0.5).
    eta_plus: growth factor while the sign holds, ``>= 1`` (default 1.2).
    min_step_size: smallest step size, ``>= 0`` (default 1e-6).
    max_step_size: largest step size, ``>= min_step_size`` (default 50.0).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.rprop(learning_rate=0.1)
    >>> params = {"w": jnp.array([1.0, -1.0])}
    >>> state = tx.init(params)
    >>> for _ in range(3):
    ...   updates, state = tx.update(params, state, params)  # the gradient of |w|^2 / 2
    ...   params = jn.apply_updates(params, updates)
    ...   print(params["w"])
    [ 1. -1.]
    [ 0.9 -0.9]
    [ 0.78 -0.78]
  """
  return combine.chain(
      step_size.scale_by_rprop(
          learning_rate=learning_rate, eta_minus=eta_minus, eta_plus=eta_plus,
          min_step_size=min_step_size, max_step_size=max_step_size,
      ),
      # The sign flip only: the step sizes live in the state.
      descent_step(1.0),
  )
