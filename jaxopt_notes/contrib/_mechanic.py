"""Mechanic: a learned scale for any base optimizer's updates.

The wrapper keeps the base optimizer's summed updates as a direction
``Delta`` away from the first params ``x_0`` and learns, online, how far to
go along it: ``x_t = x_0 + s_t Delta_t``. The scale ``s`` is the sum of
several coin-betting "wealth" estimates, one per decay ``beta`` in
``1 - 10^-k``, so no learning rate needs tuning (a schedule of the base
optimizer's learning rate around 1 still shapes the run).
"""

from __future__ import annotations

from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib

__all__ = ["MechanicState", "mechanize"]


class MechanicState(NamedTuple):
  """State of :func:`mechanize` (fields, order and dtypes as optax's)."""

  base_optimizer_state: base.OptState  # the wrapped optimizer's own state
  count: jax.Array  # type: ignore[assignment]  # int32 scalar, steps taken (named as optax's)
  r: jax.Array  # (num_betas,) the per-beta wealth increments, decayed
  m: jax.Array  # (num_betas,) the running max of |h|, decayed (clips h)
  v: jax.Array  # (num_betas,) the decayed sum of h^2
  s: jax.Array  # (num_betas,) the per-beta scales; their sum multiplies Delta
  x0: base.Params  # x_0: the params of the first update (not init's)


def mechanize(
    base_optimizer: base.GradientTransformation,
    weight_decay: jax.typing.ArrayLike = 1e-2,
    eps: jax.typing.ArrayLike = 1e-8,
    s_init: jax.typing.ArrayLike = 1e-6,
    num_betas: int = 6,
) -> base.GradientTransformationExtraArgs:
  r"""Mechanic: wraps ``base_optimizer`` and learns the scale of its updates.

  With :math:`u_t` the base optimizer's update, :math:`S_t = \sum_i s_{t,i}`
  and :math:`\beta_i = 1 - 10^{-i}` (:math:`i = 1..n`, ``num_betas``):

  .. math::
     \Delta_{t-1} = \frac{x_0 - x_t}{S_{t-1} + \epsilon}, \quad
     \tilde g_t = g_t + \lambda S_{t-1} \frac{\|g_t\|}{\|x_t\| + \epsilon} x_t, \quad
     h_t = \langle \tilde g_t, \Delta_{t-1} \rangle

     m_t = \max(\beta m_{t-1}, |h_t| + \epsilon), \quad
     v_t = \beta^2 v_{t-1} + h_t^2, \quad
     r_t = \beta r_{t-1} + \mathrm{clip}(h_t, -m_{t-1}, m_{t-1})\, s_{t-1}

     s_t = \frac{\frac{s_{init}}{n} m_t + \max(0, r_t)}{\sqrt{v_t} + \epsilon}, \quad
     x_{t+1} = x_0 - S_t (\Delta_{t-1} - u_t)

  (elementwise in the :math:`n` betas). ``x_0`` is the params seen by the
  first ``update``, not by ``init`` (so weights loaded after ``init`` count).
  Cutkosky, Defazio & Mehta, "Mechanic: A Learning Rate Tuner", NeurIPS 2023
  (arXiv:2306.00144). Defaults: ``weight_decay=1e-2``, ``eps=1e-8``,
  ``s_init=1e-6``, ``num_betas=6``. The state keeps a copy of the params and
  the base state; ``update`` needs ``params`` and passes extra keyword
  arguments on to the base optimizer. The scale state takes the lowest
  float dtype of the params.

  Checked against ``optax.contrib.mechanize`` (optax 0.2.8) wrapped around
  our and optax's ``adam`` and ``sgd``: 50-step trajectories and states
  bitwise equal, jitted and op by op, float32 and float64. Unlike optax, the
  arguments are checked when it is built, ``init`` refuses integer params
  and ``update`` refuses updates shaped unlike the params.

  Args:
    base_optimizer: the optimizer whose updates are scaled (ours or optax's).
    weight_decay: :math:`\lambda \ge 0`, Mechanic's own decay on the
      gradient it sees (not the base optimizer's); default 1e-2.
    eps: :math:`\epsilon \ge 0` (default 1e-8).
    s_init: :math:`s_{init} > 0`, the first scale, split over the betas
      (default 1e-6).
    num_betas: :math:`n \ge 1`, how many decays :math:`1 - 10^{-i}` run side
      by side (default 6).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> from jaxopt_notes.contrib import mechanize
    >>> f = lambda x: jnp.sum(x ** 2)
    >>> tx = mechanize(jn.adam(1.0))
    >>> x = jnp.array([1.0, 2.0, 3.0])
    >>> state = tx.init(x)
    >>> for _ in range(50):
    ...   u, state = tx.update(jax.grad(f)(x), state, x)
    ...   x = jn.apply_updates(x, u)
    >>> print(round(float(f(x)), 4))  # from 14
    1.51
  """
  base_optimizer = base.with_extra_args_support(base.as_transform(base_optimizer, "base_optimizer"))
  validation.check_non_negative("weight_decay", weight_decay)
  validation.check_non_negative("eps", eps)
  # A zero first scale keeps every s at zero: the params would never move.
  validation.check_positive("s_init", s_init)
  num_betas = validation.check_int("num_betas", num_betas)

  def init_fn(params):
    validation.check_float_params(params)
    # The lowest dtype, so that the scale never promotes the params' updates.
    dtype = tree_lib.dtype(params, "lowest")
    return MechanicState(
        base_optimizer_state=base_optimizer.init(params),
        count=jnp.zeros([], jnp.int32),
        r=jnp.zeros([num_betas], dtype=dtype),
        m=jnp.zeros([num_betas], dtype=dtype),
        v=jnp.zeros([num_betas], dtype=dtype),
        s=jnp.ones([num_betas], dtype=dtype) * s_init,
        x0=params,
    )

  def update_fn(updates, state, params=None, **extra_args: Any):
    if params is None:
      raise ValueError(base.NO_PARAMS_MSG)
    combine.check_updates_match_params(updates, params)
    count = tree_lib.safe_increment(state.count)
    base_updates, base_state = base_optimizer.update(updates, state.base_optimizer_state, params, **extra_args)
    x0 = jax.lax.cond(state.count == 0, lambda: params, lambda: state.x0)

    s_sum = jnp.sum(state.s)
    grad_norm = tree_lib.norm(updates)
    param_norm = tree_lib.norm(params)
    # Operation order as optax's (left to right), so the rounding is the same.
    decayed = jax.tree.map(
        lambda g, p: g + weight_decay * s_sum * grad_norm / (param_norm + eps) * p, updates, params
    )
    # Delta is recomputed from x_t rather than stored: one params-sized
    # buffer fewer, as in optax.
    delta_prev = jax.tree.map(lambda x, x_0: (x_0 - x) / (s_sum + eps), params, x0)
    # The base updates point downhill (sign flipped), so Delta subtracts them.
    delta = jax.tree.map(lambda d, u: d - u, delta_prev, base_updates)

    h = tree_lib.vdot(decayed, delta_prev)
    clipped_h = jax.lax.clamp(-state.m, jnp.ones_like(state.m) * h, state.m)
    betas = jnp.array([1.0 - 0.1**i for i in range(1, num_betas + 1)], dtype=state.s.dtype)
    m = jnp.maximum(betas * state.m, jnp.abs(h) + eps)
    v = (betas**2) * state.v + h**2
    r = betas * state.r + clipped_h * state.s
    wealth = (s_init / jnp.size(betas)) * m + jnp.maximum(0.0, r)
    s = cast(jax.Array, wealth / (jnp.sqrt(v) + eps))

    new_params = jax.tree.map(lambda x_0, d: x_0 - jnp.sum(s) * d, x0, delta)
    new_updates = jax.tree.map(lambda n, p: n - p, new_params, params)
    return new_updates, MechanicState(
        base_optimizer_state=base_state, count=count, r=r, m=m, v=v, s=s, x0=x0
    )

  return base.GradientTransformationExtraArgs(init_fn, update_fn)
