"""MoMo and MoMo-Adam: momentum with a Polyak-type step from a model of the loss.

Both keep EMAs of the loss ``f``, of the gradient ``d`` and of ``<g, x>``, which
together give a lower model of the loss around the current point; the step
is the largest one (at most the learning rate) that does not go below a known
lower bound of the loss. ``update`` takes the loss as ``value=``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxopt_notes.core import base, validation
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.optimizers._common import LR, Num

__all__ = ["MomoAdamState", "MomoState", "momo", "momo_adam"]

# Below this squared norm of the momentum no step is taken (optax's bound, the
# float64 machine epsilon, whatever the params' dtype).
_TINY = float(jnp.finfo(float).eps)


def _check_common(learning_rate, lower_bound, weight_decay, adapt_lower_bound) -> None:
  validation.check_learning_rate(learning_rate)
  validation.check_finite("lower_bound", lower_bound)
  validation.check_non_negative("weight_decay", weight_decay)
  validation.check_bool("adapt_lower_bound", adapt_lower_bound)


def _scalar_init(params, lower_bound):
  validation.check_float_params(params)
  dtype = tree_lib.dtype(params, "lowest")
  return jnp.zeros([], dtype), jnp.zeros([], dtype), jnp.array(lower_bound, dtype=dtype)


def _needs(params, value) -> None:
  if params is None:
    raise ValueError(base.NO_PARAMS_MSG)
  if value is None:
    raise ValueError(
        "`value` must be the loss at the current params: call "
        "update(grads, state, params, value=loss)"
    )


def _lifted(cap, scale, lb, lower_bound):
  del lb
  return jnp.maximum(cap / (2 * scale), lower_bound)


def _kept(cap, scale, lb, lower_bound):
  del cap, scale, lower_bound
  return lb


class MomoState(NamedTuple):
  """State of :func:`momo` (optax's field names and order)."""

  exp_avg: base.Updates  # EMA d of the gradient
  barf: jax.Array  # EMA of the loss, a scalar in the params' lowest dtype
  gamma: jax.Array  # EMA of <g, x>, same dtype
  lb: jax.Array  # current lower bound of the loss, same dtype
  count: jax.Array  # type: ignore[assignment]  # int32 scalar, steps taken


def momo(
    learning_rate: LR = 1.0,
    beta: Num = 0.9,
    lower_bound: Num = 0.0,
    weight_decay: Num = 0.0,
    adapt_lower_bound: bool = False,
) -> base.GradientTransformationExtraArgs:
  r"""MoMo: SGD with momentum and a truncated Polyak step size.

  .. math::
     \bar f_t = \beta \bar f_{t-1} + (1-\beta) f(x_t), \quad
     d_t = \beta d_{t-1} + (1-\beta) g_t, \quad
     \gamma_t = \beta \gamma_{t-1} + (1-\beta)\langle g_t, x_t\rangle,

  .. math::
     \tau_t = \min\Big(\alpha_t, \frac{\big((1+\alpha_t\lambda)(\bar f_t - f_* - \gamma_t)
       + \langle d_t, x_t\rangle\big)_+}{\|d_t\|^2}\Big), \quad
     x_{t+1} = x_t - \frac{\alpha_t\lambda}{1+\alpha_t\lambda} x_t - \tau_t d_t

  with all EMAs started at their first value (``beta`` is 0 on the first
  step), ``f_* = lower_bound`` and no step when ``||d||^2`` is below the
  float64 epsilon. ``adapt_lower_bound`` lowers or raises ``f_*`` online
  from the model (the paper's MoMo*). Schaipp, Ohana, Eickenberg, Defazio &
  Gower, "MoMo: Momentum Models for Adaptive Learning Rates", ICML 2024
  (arXiv:2305.07583). ``update(grads, state, params, value=loss)``. Same as
  ``optax.contrib.momo``; a missing ``value`` raises a ``ValueError`` naming
  it.

  Args:
    learning_rate: ``alpha``, the largest step, a float or a schedule
      (default 1.0).
    beta: momentum in ``[0, 1)`` (default 0.9).
    lower_bound: ``f_*``, a known lower bound of the loss (default 0.0).
    weight_decay: ``lambda >= 0`` (default 0.0).
    adapt_lower_bound: estimate ``f_*`` online (default ``False``).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.contrib as mm
    >>> f = lambda x: jnp.sum(x ** 2)
    >>> tx = mm.momo()
    >>> params = jnp.array([1.0, 2.0, 3.0])
    >>> state = tx.init(params)
    >>> for _ in range(10):
    ...   loss, grad = jax.value_and_grad(f)(params)
    ...   updates, state = tx.update(grad, state, params, value=loss)
    ...   params = params + updates
    >>> print(f"{float(f(params)):.3f}")  # from 14
    2.081
  """
  _check_common(learning_rate, lower_bound, weight_decay, adapt_lower_bound)
  validation.check_unit_interval("beta", beta)

  def init_fn(params):
    barf, gamma, lb = _scalar_init(params, lower_bound)
    return MomoState(tree_lib.tree_zeros_like(params), barf, gamma, lb, jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None, *, value=None, **extra_args):
    del extra_args
    _needs(params, value)
    count = state.count
    b = jnp.where(count == 0, 0.0, beta)
    barf = b * state.barf + (1 - b) * jnp.asarray(value, dtype=state.barf.dtype)
    exp_avg = tree_lib.tree_map_checked(lambda d, g: b * d + (1 - b) * g, state.exp_avg, updates)
    gamma = b * state.gamma + (1 - b) * tree_lib.vdot(updates, params)
    sq_norm = tree_lib.norm(exp_avg, squared=True)
    iprod = tree_lib.vdot(exp_avg, params)
    alpha = learning_rate(count) if callable(learning_rate) else learning_rate
    scale = 1 + alpha * weight_decay
    lb = state.lb
    if adapt_lower_bound:
      cap = scale * (barf - gamma) + iprod
      lb = lax.cond(cap < scale * state.lb, _lifted, _kept, cap, scale, state.lb, lower_bound)
    t1 = jnp.maximum(scale * (barf - lb - gamma) + iprod, 0.0) / sq_norm
    t1 = jnp.where(sq_norm <= _TINY, 0.0, t1)
    tau = jnp.minimum(alpha, t1)
    out = jax.tree.map(
        lambda d, p: -(alpha * weight_decay) / scale * p - tau * d, exp_avg, params
    )
    new_lb = state.lb
    if adapt_lower_bound:
      new_lb = jnp.maximum((barf + iprod - gamma) - (1 / 2) * tau * sq_norm, lower_bound)
    return out, MomoState(exp_avg, barf, gamma, new_lb, tree_lib.safe_increment(count))

  return base.GradientTransformationExtraArgs(init_fn, update_fn)


class MomoAdamState(NamedTuple):
  """State of :func:`momo_adam` (optax's field names and order)."""

  exp_avg: base.Updates  # EMA d of the gradient (decay b1)
  exp_avg_sq: base.Updates  # EMA of g^2 (decay b2)
  barf: jax.Array  # EMA of the loss (decay b1), the params' lowest dtype
  gamma: jax.Array  # EMA of <g, x> (decay b1)
  lb: jax.Array  # current lower bound of the loss
  count: jax.Array  # type: ignore[assignment]  # int32 scalar, steps taken


def momo_adam(
    learning_rate: LR = 1e-2,
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-8,
    lower_bound: Num = 0.0,
    weight_decay: Num = 0.0,
    adapt_lower_bound: bool = False,
) -> base.GradientTransformationExtraArgs:
  r"""MoMo-Adam: MoMo's truncated Polyak step in Adam's preconditioned metric.

  .. math::
     D_t = \epsilon + \sqrt{v_t / (1-\beta_2^t)}, \quad
     \tau_t = \min\Big(\frac{\alpha_t}{\rho_t}, \frac{\big((1+\alpha_t\lambda)
       (\bar f_t - \rho_t f_* - \gamma_t) + \langle d_t, x_t\rangle\big)_+}
       {\langle d_t, d_t / D_t\rangle}\Big),

  .. math::
     x_{t+1} = x_t - \frac{\alpha_t\lambda}{1+\alpha_t\lambda} x_t - \tau_t \frac{d_t}{D_t}

  with :math:`\rho_t = 1 - \beta_1^t`, ``d, f, gamma`` zero-started EMAs with
  decay ``b1`` and ``v`` Adam's second moment. Schaipp et al., ICML 2024
  (arXiv:2305.07583). ``update(grads, state, params, value=loss)``. Same as
  ``optax.contrib.momo_adam``; a missing ``value`` raises a ``ValueError``
  naming it.

  Args:
    learning_rate: ``alpha``, a float or a schedule (default 1e-2).
    b1: decay of the momentum and of the loss EMAs in ``[0, 1)`` (default 0.9).
    b2: decay of the second moment in ``[0, 1)`` (default 0.999).
    eps: added after the root (default 1e-8).
    lower_bound: ``f_*`` (default 0.0).
    weight_decay: ``lambda >= 0`` (default 0.0).
    adapt_lower_bound: estimate ``f_*`` online (default ``False``).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.contrib as mm
    >>> f = lambda x: jnp.sum(x ** 2)
    >>> tx = mm.momo_adam(0.5)
    >>> params = jnp.array([1.0, 2.0, 3.0])
    >>> state = tx.init(params)
    >>> for _ in range(10):
    ...   loss, grad = jax.value_and_grad(f)(params)
    ...   updates, state = tx.update(grad, state, params, value=loss)
    ...   params = params + updates
    >>> print(f"{float(f(params)):.3f}")  # from 14
    1.115
  """
  _check_common(learning_rate, lower_bound, weight_decay, adapt_lower_bound)
  validation.check_unit_interval("b1", b1)
  validation.check_unit_interval("b2", b2)
  validation.check_non_negative("eps", eps)

  def init_fn(params):
    barf, gamma, lb = _scalar_init(params, lower_bound)
    zeros = lambda: tree_lib.tree_zeros_like(params)
    return MomoAdamState(zeros(), zeros(), barf, gamma, lb, jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None, *, value=None, **extra_args):
    del extra_args
    _needs(params, value)
    count = state.count
    count_inc = tree_lib.safe_increment(count)
    barf = b1 * state.barf + (1 - b1) * jnp.asarray(value, dtype=state.barf.dtype)
    exp_avg = tree_lib.tree_map_checked(lambda d, g: b1 * d + (1 - b1) * g, state.exp_avg, updates)
    exp_avg_sq = tree_lib.tree_map_checked(
        lambda v, g: b2 * v + (1 - b2) * g * g, state.exp_avg_sq, updates
    )
    bc2 = jnp.asarray(1 - b2**count_inc, dtype=barf.dtype)
    precond = jax.tree.map(lambda v: eps + jnp.sqrt(v / bc2), exp_avg_sq)
    weighted = jax.tree.map(lambda d, D: d / D, exp_avg, precond)
    sq_norm = tree_lib.vdot(exp_avg, weighted)
    gamma = b1 * state.gamma + (1 - b1) * tree_lib.vdot(updates, params)
    iprod = tree_lib.vdot(exp_avg, params)
    alpha = learning_rate(count) if callable(learning_rate) else learning_rate
    bc1 = jnp.asarray(1 - b1**count_inc, dtype=barf.dtype)
    scale = 1 + alpha * weight_decay
    lb = state.lb
    if adapt_lower_bound:
      cap = scale * (barf - gamma) + iprod
      lb = jnp.where(
          cap < scale * bc1 * state.lb,
          jnp.maximum(cap / (2 * bc1 * scale), lower_bound),
          state.lb,
      )
    t1 = jnp.maximum(scale * (barf - bc1 * lb - gamma) + iprod, 0.0) / sq_norm
    t1 = jnp.where(sq_norm <= _TINY, 0.0, t1)
    tau = jnp.minimum(alpha / bc1, t1)
    out = jax.tree.map(
        lambda d, D, p: -(alpha * weight_decay) / scale * p - tau * d / D,
        exp_avg, precond, params,
    )
    new_lb = state.lb
    if adapt_lower_bound:
      new_lb = jnp.maximum(((barf + iprod - gamma) - (1 / 2) * tau * sq_norm) / bc1, lower_bound)
    return out, MomoAdamState(exp_avg, exp_avg_sq, barf, gamma, new_lb, count_inc)

  return base.GradientTransformationExtraArgs(init_fn, update_fn)
