"""Per-coordinate adaptive scalings: AdaGrad, RMSProp (plain and centred) and
Adadelta.

Each divides the gradient by a running measure of its own size, so that steep
coordinates take small steps and flat ones large steps: the notes' cure for the
zig-zag of SGD on a poorly conditioned loss (notes 000, 001, 003, 004).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib

__all__ = [
    "ScaleByAdaDeltaState",
    "ScaleByRStdDevState",
    "ScaleByRStdDevWithCountState",
    "ScaleByRmsState",
    "ScaleByRmsWithCountState",
    "ScaleByRssState",
    "scale_by_adadelta",
    "scale_by_rms",
    "scale_by_rss",
    "scale_by_stddev",
]


def _inverse_root(eps, eps_in_sqrt: bool):
  """``1 / sqrt(n + eps)`` or ``1 / (sqrt(n) + eps)``: the two eps placements."""
  if eps_in_sqrt:
    return lambda n: jax.lax.rsqrt(n + eps)
  return lambda n: 1 / (jnp.sqrt(n) + eps)


def _check_rms_args(decay, eps, initial_scale, eps_in_sqrt, bias_correction) -> None:
  validation.check_flags(eps_in_sqrt=eps_in_sqrt, bias_correction=bias_correction)
  validation.check_unit_interval("decay", decay)
  validation.check_non_negative("eps", eps)
  validation.check_non_negative("initial_scale", initial_scale)


class ScaleByRssState(NamedTuple):
  """State of :func:`scale_by_rss`: the sum of squared gradients so far."""

  sum_of_squares: base.Updates


def scale_by_rss(
    initial_accumulator_value: jax.typing.ArrayLike = 0.1,
    eps: jax.typing.ArrayLike = 1e-7,
    *,
    eps_in_sqrt: bool = True,
) -> base.GradientTransformation:
  r"""AdaGrad's scaling: divide by the root of the sum of all squared gradients.

  .. math::
     G_t = G_{t-1} + g_t^2, \qquad u_t = \frac{g_t}{\sqrt{G_t + \epsilon}}
     \quad(\text{or } \frac{g_t}{\sqrt{G_t} + \epsilon}\text{ with eps\_in\_sqrt=False})

  Notes 000: ``g2 += dw*dw; w -= lr * dw / (sqrt(g2) + 1e-7)`` (eps outside the
  root: ``eps_in_sqrt=False``), and notes 003: ``W <- W - eta / sqrt(G + eps) g``
  (eps inside: the default, as in optax). The step shrinks as ``G`` grows, so
  AdaGrad stalls on long runs. With eps inside, a coordinate whose ``G`` is
  still 0 gets a 0 update, not ``0 / sqrt(eps)``. Same state and numbers as
  ``optax.scale_by_rss`` by default (Duchi et al., 2011).

  Args:
    initial_accumulator_value: starting ``G`` (default 0.1), ``>= 0``.
    eps: stabiliser (default 1e-7), ``>= 0``.
    eps_in_sqrt: add ``eps`` under the root (default) or after it (note 000).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_rss()
    >>> updates, state = tx.update({"w": jnp.array([2.0, -1.0])}, tx.init({"w": jnp.zeros(2)}))
    >>> print(np.asarray(updates["w"]).round(4))  # g / sqrt(0.1 + g^2)
    [ 0.9877 -0.9535]
  """
  validation.check_non_negative("initial_accumulator_value", initial_accumulator_value)
  validation.check_non_negative("eps", eps)
  validation.check_flags(eps_in_sqrt=eps_in_sqrt)

  def init_fn(params):
    validation.check_float_params(params)
    return ScaleByRssState(
        sum_of_squares=tree_lib.tree_full_like(params, initial_accumulator_value)
    )

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params, state=state.sum_of_squares, state_name="state.sum_of_squares")
    del params
    sums = tree_lib.tree_map_checked(
        lambda g, s: tree_lib.abs_sq(g) + s, updates, state.sum_of_squares
    )
    if eps_in_sqrt:
      inv = jax.tree.map(lambda s: jnp.where(s > 0, jax.lax.rsqrt(s + eps), 0.0), sums)
    else:
      inv = jax.tree.map(_inverse_root(eps, False), sums)
    updates = jax.tree.map(lambda i, g: i * g, inv, updates)
    return updates, ScaleByRssState(
        sum_of_squares=tree_lib.tree_cast_like(sums, state.sum_of_squares)
    )

  return base.GradientTransformation(init_fn, update_fn)


class ScaleByRmsState(NamedTuple):
  """State of :func:`scale_by_rms`: EMA of squared gradients."""

  nu: base.Updates


class ScaleByRmsWithCountState(NamedTuple):
  """State of :func:`scale_by_rms` with bias correction."""

  count: jax.Array  # type: ignore[assignment]  # named like tuple.count, as optax's; int32 scalar
  nu: base.Updates


def scale_by_rms(
    decay: jax.typing.ArrayLike = 0.9,
    eps: jax.typing.ArrayLike = 1e-8,
    initial_scale: jax.typing.ArrayLike = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> base.GradientTransformation:
  r"""RMSProp's scaling: divide by the root of an EMA of squared gradients.

  .. math::
     \nu_t = \gamma\, \nu_{t-1} + (1 - \gamma)\, g_t^2, \qquad
     u_t = \frac{g_t}{\sqrt{\hat\nu_t + \epsilon}}

  with :math:`\hat\nu_t = \nu_t / (1 - \gamma^t)` when ``bias_correction``
  else :math:`\nu_t`; ``eps_in_sqrt=False`` puts ``eps`` after the root.
  Notes 000/003/004: ``S = b2 S + (1-b2) dw^2; w -= alpha dw / sqrt(S + eps)``.
  Replacing AdaGrad's sum by an average keeps the step from stalling
  (Tieleman & Hinton, 2012). Same state and numbers as ``optax.scale_by_rms``.

  Args:
    decay: ``gamma`` in ``[0, 1)`` (default 0.9).
    eps: stabiliser (default 1e-8).
    initial_scale: starting ``nu`` (default 0.0).
    eps_in_sqrt: ``eps`` inside the root (default ``True``).
    bias_correction: divide ``nu`` by ``1 - gamma^t`` (default ``False``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_rms()
    >>> updates, state = tx.update({"w": jnp.array([2.0, -1.0])}, tx.init({"w": jnp.zeros(2)}))
    >>> print(np.asarray(updates["w"]).round(4))  # g / sqrt(0.1 g^2) = sign(g) sqrt(10)
    [ 3.1623 -3.1623]
  """
  _check_rms_args(decay, eps, initial_scale, eps_in_sqrt, bias_correction)
  inv_root = _inverse_root(eps, eps_in_sqrt)

  def init_fn(params):
    validation.check_float_params(params)
    nu = tree_lib.tree_full_like(params, initial_scale)
    if bias_correction:
      return ScaleByRmsWithCountState(count=jnp.zeros([], jnp.int32), nu=nu)
    return ScaleByRmsState(nu=nu)

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params, state=state.nu, state_name="state.nu")
    del params
    nu = tree_lib.tree_update_moment_per_elem_norm(updates, state.nu, decay, 2)
    if bias_correction:
      count = tree_lib.safe_increment(state.count)
      nu_hat = tree_lib.bias_correction(nu, decay, count)
    else:
      nu_hat = nu
    updates = jax.tree.map(lambda n, g: inv_root(n) * g, nu_hat, updates)
    # The stored dtype is init's: a strongly typed float32 `decay` (traced or
    # injected) would otherwise promote a bfloat16 state between steps.
    nu = tree_lib.tree_cast_like(nu, state.nu)
    if bias_correction:
      return updates, ScaleByRmsWithCountState(count=count, nu=nu)
    return updates, ScaleByRmsState(nu=nu)

  return base.GradientTransformation(init_fn, update_fn)


class ScaleByRStdDevState(NamedTuple):
  """State of :func:`scale_by_stddev`: EMAs of the gradient and its square."""

  mu: base.Updates
  nu: base.Updates


class ScaleByRStdDevWithCountState(NamedTuple):
  """State of :func:`scale_by_stddev` with bias correction."""

  count: jax.Array  # type: ignore[assignment]  # named like tuple.count, as optax's; int32 scalar
  mu: base.Updates
  nu: base.Updates


def scale_by_stddev(
    decay: jax.typing.ArrayLike = 0.9,
    eps: jax.typing.ArrayLike = 1e-8,
    initial_scale: jax.typing.ArrayLike = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> base.GradientTransformation:
  r"""Centred RMSProp's scaling: divide by a running standard deviation.

  .. math::
     \mu_t = \gamma \mu_{t-1} + (1-\gamma) g_t, \quad
     \nu_t = \gamma \nu_{t-1} + (1-\gamma) g_t^2, \quad
     u_t = \frac{g_t}{\sqrt{\hat\nu_t - \hat\mu_t^2 + \epsilon}}

  The variance ``nu - mu^2`` replaces the raw second moment of
  :func:`scale_by_rms` (Graves, 2013), an RMSProp variant beyond the notes'
  formulas. Same state and numbers as ``optax.scale_by_stddev``.

  Args:
    decay: ``gamma`` in ``[0, 1)`` (default 0.9).
    eps: stabiliser (default 1e-8).
    initial_scale: starting ``nu`` (default 0.0).
    eps_in_sqrt: ``eps`` inside the root (default ``True``).
    bias_correction: divide both moments by ``1 - gamma^t`` (default ``False``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_stddev()
    >>> updates, state = tx.update({"w": jnp.array([2.0, -1.0])}, tx.init({"w": jnp.zeros(2)}))
    >>> print(np.asarray(updates["w"]).round(4))  # g / sqrt(0.1 g^2 - (0.1 g)^2)
    [ 3.3333 -3.3333]
  """
  _check_rms_args(decay, eps, initial_scale, eps_in_sqrt, bias_correction)
  inv_root = _inverse_root(eps, eps_in_sqrt)

  def init_fn(params):
    validation.check_float_params(params)
    mu = tree_lib.tree_zeros_like(params)
    nu = tree_lib.tree_full_like(params, initial_scale)
    if bias_correction:
      return ScaleByRStdDevWithCountState(count=jnp.zeros([], jnp.int32), mu=mu, nu=nu)
    return ScaleByRStdDevState(mu=mu, nu=nu)

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params, state=state.mu, state_name="state.mu")
    del params
    mu = tree_lib.tree_update_moment(updates, state.mu, decay, 1)
    nu = tree_lib.tree_update_moment_per_elem_norm(updates, state.nu, decay, 2)
    if bias_correction:
      count = tree_lib.safe_increment(state.count)
      mu_hat = tree_lib.bias_correction(mu, decay, count)
      nu_hat = tree_lib.bias_correction(nu, decay, count)
    else:
      mu_hat, nu_hat = mu, nu
    updates = jax.tree.map(
        lambda m, n, g: inv_root(n - tree_lib.abs_sq(m)) * g, mu_hat, nu_hat, updates
    )
    mu, nu = tree_lib.tree_cast_like(mu, state.mu), tree_lib.tree_cast_like(nu, state.nu)
    if bias_correction:
      return updates, ScaleByRStdDevWithCountState(count=count, mu=mu, nu=nu)
    return updates, ScaleByRStdDevState(mu=mu, nu=nu)

  return base.GradientTransformation(init_fn, update_fn)


class ScaleByAdaDeltaState(NamedTuple):
  """State of :func:`scale_by_adadelta`: EMAs of squared gradients and steps."""

  e_g: base.Updates
  e_x: base.Updates


def scale_by_adadelta(
    rho: jax.typing.ArrayLike = 0.9,
    eps: jax.typing.ArrayLike = 1e-6,
) -> base.GradientTransformation:
  r"""Adadelta's scaling: a ratio of running RMS of steps to that of gradients.

  .. math::
     G_t = \rho G_{t-1} + (1-\rho) g_t^2, \quad
     \Delta_t = \frac{\sqrt{H_{t-1} + \epsilon}}{\sqrt{G_t + \epsilon}}\, g_t, \quad
     H_t = \rho H_{t-1} + (1-\rho) \Delta_t^2

  Notes 003: ``G = gamma G + (1-gamma) g^2; dW = -sqrt(H + eps) / sqrt(G + eps) g;
  H = gamma H + (1-gamma) dW^2`` — units-consistent, so no learning rate is
  needed (Zeiler, 2012). This returns ``+Delta``; the sign flip that makes it
  descend comes from :func:`~jaxopt_notes.adadelta`. Same state and numbers as
  ``optax.scale_by_adadelta``.

  Args:
    rho: ``gamma`` in ``[0, 1)`` (default 0.9).
    eps: stabiliser (default 1e-6).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_adadelta()
    >>> updates, state = tx.update({"w": jnp.array([2.0, -1.0])}, tx.init({"w": jnp.zeros(2)}))
    >>> print(np.asarray(updates["w"]).round(4))  # sqrt(eps) / sqrt(0.1 g^2) g: H starts at 0
    [ 0.0032 -0.0032]
  """
  validation.check_unit_interval("rho", rho)
  validation.check_non_negative("eps", eps)

  def init_fn(params):
    validation.check_float_params(params)
    return ScaleByAdaDeltaState(
        e_g=tree_lib.tree_zeros_like(params), e_x=tree_lib.tree_zeros_like(params)
    )

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params, state=state.e_g, state_name="state.e_g")
    del params
    e_g = tree_lib.tree_update_moment(updates, state.e_g, rho, 2)
    updates = jax.tree.map(
        lambda g, eg, ex: (jnp.sqrt(ex + eps) / jnp.sqrt(eg + eps)) * g,
        updates, e_g, state.e_x,
    )
    e_x = tree_lib.tree_update_moment(updates, state.e_x, rho, 2)
    return updates, ScaleByAdaDeltaState(
        e_g=tree_lib.tree_cast_like(e_g, state.e_g),
        e_x=tree_lib.tree_cast_like(e_x, state.e_x),
    )

  return base.GradientTransformation(init_fn, update_fn)
