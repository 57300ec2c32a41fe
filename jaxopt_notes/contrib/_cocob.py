"""COCOB-Backprop: SGD without a learning rate, by coin betting.

Each coordinate is a gambler betting a fraction of its winnings on the sign
of the negative gradient; the bet, not a step size, sets how far it moves
from its starting point.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.transforms import scaling

__all__ = ["COCOBState", "cocob", "scale_by_cocob"]


class COCOBState(NamedTuple):
  """State of :func:`scale_by_cocob`: per-coordinate trees shaped like the params."""

  init_particles: base.Updates  # x_0, the params given to init
  cumulative_gradients: base.Updates  # theta: the sum of -g
  scale: base.Updates  # L: the largest |g| so far (from eps)
  subgradients: base.Updates  # G: the sum of |g|
  reward: base.Updates  # R: the winnings, max(R - g (x - x_0), 0)


def scale_by_cocob(
    alpha: jax.typing.ArrayLike = 100.0, eps: jax.typing.ArrayLike = 1e-8
) -> base.GradientTransformation:
  r"""COCOB-Backprop's update: the move to ``x_0`` plus the coin-betting bet.

  Per coordinate, with :math:`L_0 = \epsilon`:

  .. math::
     L_t = \max(L_{t-1}, |g_t|), \quad G_t = G_{t-1} + |g_t|, \quad
     R_t = \max\big(R_{t-1} - g_t (x_t - x_0), 0\big), \quad
     \theta_t = \theta_{t-1} - g_t, \\
     u_t = x_0 + \frac{\theta_t}{L_t \max(G_t + L_t, \alpha L_t)} (L_t + R_t) - x_t

  so that ``x_t + u_t`` is the new iterate. Orabona & Tommasi, "Training
  Deep Networks without Learning Rates Through Coin Betting", NeurIPS 2017
  (arXiv:1705.07795), Algorithm 2. ``alpha`` caps the early bets (default
  100); ``eps`` is the starting ``L`` (default 1e-8). ``update`` needs
  ``params``. Same as ``optax.contrib.scale_by_cocob``; unlike optax,
  ``alpha`` and ``eps`` must be ``> 0`` (with ``eps = 0`` a coordinate whose
  first gradient is 0 divides 0 by 0).

  Args:
    alpha: the bet-capping constant, ``> 0`` (default 100.0).
    eps: the initial scale ``L_0 > 0`` (default 1e-8).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from jaxopt_notes.contrib import scale_by_cocob
    >>> tx = scale_by_cocob()
    >>> x = jnp.zeros(2)
    >>> u, state = tx.update(jnp.array([1.0, -2.0]), tx.init(x), x)
    >>> print(np.asarray(u).round(4))  # -g / (alpha |g|): a first bet of 1 / alpha against g
    [-0.01  0.01]
  """
  validation.check_positive("alpha", alpha)
  validation.check_positive("eps", eps)

  def init_fn(params):
    validation.check_float_params(params)
    zeros = tree_lib.tree_zeros_like(params)
    return COCOBState(
        init_particles=params,
        cumulative_gradients=zeros,
        # eps * ones(p) is exactly eps; a product of constants would be folded
        # and lose the params' placement under jit, so fill it directly.
        scale=tree_lib.tree_full_like(params, eps),
        subgradients=zeros,
        reward=zeros,
    )

  def bet(p, p0, theta, lmax, gsum, r):
    return -p + (p0 + theta / (lmax * jnp.maximum(gsum + lmax, alpha * lmax)) * (lmax + r))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(base.NO_PARAMS_MSG)
    combine.check_updates_match_params(updates, params)
    lmax = jax.tree.map(lambda m, g: jnp.maximum(m, jnp.abs(g)), state.scale, updates)
    gsum = jax.tree.map(lambda s, g: s + jnp.abs(g), state.subgradients, updates)
    reward = jax.tree.map(
        lambda r, g, p, p0: jnp.maximum(r - g * (p - p0), 0),
        state.reward, updates, params, state.init_particles,
    )
    theta = jax.tree.map(lambda c, g: c - g, state.cumulative_gradients, updates)
    new_updates = jax.tree.map(bet, params, state.init_particles, theta, lmax, gsum, reward)
    return new_updates, COCOBState(state.init_particles, theta, lmax, gsum, reward)

  return base.GradientTransformation(init_fn, update_fn)


def cocob(
    learning_rate: base.ScalarOrSchedule = 1.0,
    alpha: jax.typing.ArrayLike = 100.0,
    eps: jax.typing.ArrayLike = 1e-8,
    weight_decay: jax.typing.ArrayLike = 0.0,
    mask: Optional[Union[Any, Callable[[base.Params], Any]]] = None,
) -> base.GradientTransformation:
  r"""COCOB-Backprop: learning-rate-free SGD by coin betting.

  .. math::
     \tilde g_t = \eta_t (g_t + \lambda x_t), \qquad
     x_{t+1} = x_0 + \frac{\theta_t}{L_t \max(G_t + L_t, \alpha L_t)} (L_t + R_t)

  with :func:`scale_by_cocob`'s ``L, G, R, theta`` fed :math:`\tilde g`.
  Orabona & Tommasi, NeurIPS 2017 (arXiv:1705.07795), Algorithm 2.
  ``learning_rate`` multiplies the gradients (no sign flip: the bet
  already moves against them) and defaults to 1. Chain:
  :func:`add_decayed_weights` (``mask``), :func:`scale_by_learning_rate`
  without the flip, :func:`scale_by_cocob`. ``update`` needs ``params``.
  Same as ``optax.contrib.cocob`` (state layout, dtypes and numbers);
  unlike optax, ``alpha`` and ``eps`` must be ``> 0``.

  Args:
    learning_rate: :math:`\eta_t`, a number or a schedule (default 1.0).
    alpha: the bet-capping constant, ``> 0`` (default 100.0).
    eps: the initial scale ``L_0 > 0`` (default 1e-8).
    weight_decay: :math:`\lambda`, L2 rate added to the gradient (default 0.0).
    mask: which leaves to decay (a pytree of booleans or a function of the
      params); ``None``: all.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> from jaxopt_notes.contrib import cocob
    >>> f = lambda x: jnp.sum((x - 1.0) ** 2)
    >>> tx = cocob()
    >>> x = jnp.zeros(3)
    >>> state = tx.init(x)
    >>> for _ in range(200):
    ...   u, state = tx.update(jax.grad(f)(x), state, x)
    ...   x = jn.apply_updates(x, u)
    >>> print(round(float(f(x)), 4))  # from 3
    0.0
  """
  return combine.chain(
      scaling.add_decayed_weights(weight_decay, mask),
      scaling.scale_by_learning_rate(learning_rate, flip_sign=False),
      scale_by_cocob(alpha, eps),
  )
