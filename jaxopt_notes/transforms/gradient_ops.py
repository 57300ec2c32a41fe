"""Small stateless edits of the gradient: centre it, normalise it, guard it.

* :func:`centralize`              ``u = g - mean(g)`` over each weight matrix's fan-in;
* :func:`normalize_by_update_norm` ``u = s g / (||g|| + eps)`` (a unit-length step);
* :func:`keep_params_nonnegative` ``u`` shortened so that ``w + u >= 0``;
* :func:`zero_nans`               ``u = 0`` where ``g`` is NaN, with a flag per leaf;
* :func:`scale_gradient`          not a transform: the identity forward, ``s`` times
  the cotangent backward (a gradient reversal layer with ``s = -1``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib

__all__ = [
    "NonNegativeParamsState",
    "ZeroNansState",
    "centralize",
    "keep_params_nonnegative",
    "normalize_by_update_norm",
    "scale_gradient",
    "zero_nans",
]


def _subtract_fan_in_mean(g: jax.Array) -> jax.Array:
  # A vector or scalar has no fan-in axes: centring it would zero a bias.
  if g.ndim < 2:
    return g
  return g - g.mean(axis=tuple(range(1, g.ndim)), keepdims=True)


def centralize() -> base.GradientTransformation:
  r"""Gradient centralisation: remove each output unit's mean gradient.

  .. math:: u_{i,\cdot} = g_{i,\cdot} - \frac{1}{n}\sum_j g_{i,j}

  for every leaf of rank 2 or more, the mean taken over all axes but the
  first; vectors and scalars pass unchanged. Yong et al., 2020, "Gradient
  Centralization: A New Optimization Technique for Deep Neural Networks"
  (arXiv:2004.01461). It projects the step onto the hyperplane of zero-mean
  weights, a constraint beside the notes' families; chain it before a
  momentum (notes 000/003) or adaptive (notes 000/003/004) rule. Stateless.
  Same as ``optax.centralize``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.centralize()
    >>> g = {"w": jnp.array([[1.0, 2.0, 3.0], [4.0, 6.0, 8.0]]), "b": jnp.array([1.0, 2.0])}
    >>> updates, _ = tx.update(g, tx.init(g))
    >>> updates["w"]
    Array([[-1.,  0.,  1.],
           [-2.,  0.,  2.]], dtype=float32)
    >>> updates["b"]
    Array([1., 2.], dtype=float32)
  """

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params)
    del params
    return jax.tree.map(_subtract_fan_in_mean, updates), state

  return base.GradientTransformation(base.init_empty_state, update_fn)


def normalize_by_update_norm(
    scale_factor: jax.typing.ArrayLike = 1.0,
    eps: jax.typing.ArrayLike = 1e-6,
) -> base.GradientTransformation:
  r"""Rescales the whole update to a fixed length ``scale_factor``.

  .. math:: u = \frac{s}{\lVert g \rVert_2 + \epsilon}\, g

  with the global L2 norm over all leaves. Normalised gradient descent
  (Hazan, Levy & Shalev-Shwartz, 2015, "Beyond Convexity: Stochastic
  Quasi-Convex Optimization", NeurIPS): the direction of plain SGD (notes
  000) with a step length that no longer shrinks near a minimum nor blows up
  on a cliff (notes 002), so it must be paired with a decaying learning rate
  to converge. Stateless. Same as ``optax.normalize_by_update_norm``; unlike
  optax a ``scale_factor`` of 0 (every update 0, or NaN for an infinite
  gradient) is refused.

  Args:
    scale_factor: ``s``, the length of the result (default 1.0); finite and
      non-zero, negative to descend (``-1.0`` with no learning rate after it).
    eps: ``epsilon >= 0`` added to the norm (default 1e-6), so a zero
      gradient gives a zero update.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.normalize_by_update_norm(scale_factor=2.0, eps=0.0)
    >>> g = {"w": jnp.array([3.0, 4.0])}
    >>> updates, _ = tx.update(g, tx.init(g))
    >>> updates["w"]
    Array([1.2, 1.6], dtype=float32)
  """
  validation.check_that(
      "scale_factor", scale_factor, lambda v: np.isfinite(v) & (v != 0), "a finite, non-zero number"
  )
  validation.check_non_negative("eps", eps)

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params)
    del params
    # Divide by (norm + eps) / s, not multiply by s / (norm + eps): optax's rounding.
    divisor = (tree_lib.global_norm(updates) + eps) / scale_factor
    return jax.tree.map(lambda g: g / divisor, updates), state

  return base.GradientTransformation(base.init_empty_state, update_fn)


NonNegativeParamsState = base.EmptyState


def keep_params_nonnegative() -> base.GradientTransformation:
  r"""Shortens the update wherever it would push a parameter below zero.

  .. math:: u_i = \begin{cases} -w_i & w_i + g_i < 0 \\ g_i & \text{otherwise}\end{cases}

  so that ``w + u >= 0`` after :func:`apply_updates`: a projection onto the
  non-negative orthant, the simplest projected-gradient method (Goldstein,
  1964; Levitin & Polyak, 1966), for
  parameters that must stay non-negative (variances, mixture weights,
  non-negative matrix factorisation). It sits outside the notes' families and
  goes last in a chain, after the learning rate. A parameter that is already
  negative is moved to 0. Stateless (``NonNegativeParamsState`` is
  :class:`EmptyState`); needs ``params``. Same as
  ``optax.keep_params_nonnegative``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.keep_params_nonnegative()
    >>> params = {"w": jnp.array([1.0, 0.5, 2.0])}
    >>> updates, _ = tx.update({"w": jnp.array([-3.0, 0.25, -1.0])}, tx.init(params), params)
    >>> updates["w"]
    Array([-1.  ,  0.25, -1.  ], dtype=float32)
  """

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(base.NO_PARAMS_MSG)
    combine.check_updates_match_params(updates, params)
    updates = tree_lib.tree_map_checked(
        lambda p, u: None if p is None else jnp.where((p + u) < 0.0, -p, u),
        params, updates, names=("params", "updates"), is_leaf=lambda x: x is None,
    )
    return updates, state

  return base.GradientTransformation(base.init_empty_state, update_fn)


class ZeroNansState(NamedTuple):
  """State of :func:`zero_nans`.

  Attributes:
    found_nan: shaped like the params, a bool scalar per leaf: whether the
      last update's leaf held a NaN (which was replaced by 0).
  """

  found_nan: Any


def zero_nans() -> base.GradientTransformation:
  r"""Replaces every NaN in the updates by 0 and records where it did.

  .. math:: u_i = \begin{cases} 0 & g_i = \text{NaN} \\ g_i & \text{otherwise}\end{cases}

  A guard for note 002's "inexact gradients" (a NaN from a log of 0 or an
  overflow would otherwise spread through every moment of an adaptive rule,
  notes 000/003/004); unlike :func:`apply_if_finite` it keeps the finite
  coordinates of a partly bad step, and it leaves ``inf`` as it is. The state
  is only a report (``found_nan``, one flag per leaf). Same as
  ``optax.zero_nans``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.zero_nans()
    >>> params = {"a": jnp.zeros(2), "b": jnp.zeros(2)}
    >>> g = {"a": jnp.array([1.0, jnp.nan]), "b": jnp.array([2.0, 3.0])}
    >>> updates, state = tx.update(g, tx.init(params))
    >>> updates["a"]
    Array([1., 0.], dtype=float32)
    >>> bool(state.found_nan["a"]), bool(state.found_nan["b"])
    (True, False)
  """

  def init_fn(params):
    return ZeroNansState(found_nan=jax.tree.map(lambda _: jnp.array(False, jnp.bool_), params))

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params)
    del params
    # One flag per leaf: the state has the updates' structure, not their shapes.
    found = tree_lib.tree_map_checked(
        lambda g, _: jnp.any(jnp.isnan(g)), updates, state.found_nan, names=("updates", "state.found_nan")
    )
    updates = jax.tree.map(lambda g: jnp.where(jnp.isnan(g), jnp.zeros_like(g), g), updates)
    return updates, ZeroNansState(found_nan=found)

  return base.GradientTransformation(init_fn, update_fn)


@jax.custom_vjp
def _scaled_backward(inputs: Any, scale: jax.typing.ArrayLike) -> Any:
  del scale  # read by the backward rule only
  return inputs


def _scaled_backward_fwd(inputs, scale):
  return inputs, scale


def _scaled_backward_bwd(scale, cotangent):
  # No cotangent for `scale`: it is a constant of the model, not a parameter.
  return jax.tree.map(lambda c: c * scale, cotangent), None


_scaled_backward.defvjp(_scaled_backward_fwd, _scaled_backward_bwd)


def _concrete_scalar(value: Any):
  """``value`` as a Python float when it is known now, else ``None`` (traced)."""
  if isinstance(value, jax.core.Tracer):
    return None
  return float(np.asarray(value))


def scale_gradient(inputs: Any, scale: jax.typing.ArrayLike) -> Any:
  r"""The identity on the way forward; multiplies the gradient by ``scale`` on the way back.

  .. math:: y = x, \qquad \frac{\partial L}{\partial x} = s\, \frac{\partial L}{\partial y}

  A tool for building losses, not an optimizer transform: it changes how
  much of the gradient (notes 000's backpropagation) flows through one branch
  of a model. ``scale=0`` is ``jax.lax.stop_gradient`` and ``scale=-1`` the
  gradient reversal layer of domain-adversarial training (Ganin & Lempitsky,
  2015, "Unsupervised Domain Adaptation by Backpropagation", ICML). A known
  ``scale`` of 1 or 0 takes the short cut (no custom rule); a traced one
  always uses the rule. Same as ``optax.scale_gradient``.

  Args:
    inputs: a pytree of arrays.
    scale: ``s``, a finite scalar (may be traced).

  Returns:
    ``inputs`` unchanged, with the scaled backward rule attached.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> f = lambda x: jnp.sum(jn.scale_gradient(x, -0.5) ** 2)
    >>> f(jnp.array([1.0, 2.0]))
    Array(5., dtype=float32)
    >>> jax.grad(f)(jnp.array([1.0, 2.0]))
    Array([-1., -2.], dtype=float32)
  """
  validation.check_finite("scale", scale)
  known = _concrete_scalar(scale)
  if known == 1.0:
    return inputs
  if known == 0.0:
    return jax.lax.stop_gradient(inputs)
  return _scaled_backward(inputs, scale)
