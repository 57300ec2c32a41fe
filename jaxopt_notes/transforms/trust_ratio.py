"""Layer-wise scalings: each params leaf (a layer's weight matrix, a bias
vector) gets one factor computed from the norms of that whole leaf.

The per-coordinate scalings of :mod:`~jaxopt_notes.transforms.adaptive`
(AdaGrad, RMSProp: notes 000/003/004) look at each coordinate alone. These
look at a block: the *trust ratio* of LARS and LAMB makes every layer's step
a fixed fraction of that layer's weight norm, whatever the gradient's scale;
the parameter-scale factors of Adafactor make the step relative to the size
of the weights it changes. All three are stateless and need ``params``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib

__all__ = [
    "ScaleByTrustRatioState",
    "scale_by_param_block_norm",
    "scale_by_param_block_rms",
    "scale_by_trust_ratio",
]

# optax names the (empty) state of scale_by_trust_ratio too.
ScaleByTrustRatioState = base.EmptyState


def _floored_norm(x: jax.Array, floor: jax.typing.ArrayLike) -> jax.Array:
  """``max(||x||_2, floor)`` over the whole array, with a finite gradient at 0.

  The norm's gradient ``x / ||x||`` is 0/0 at ``x = 0``, and ``jnp.maximum``
  differentiates both branches, so the floored branch would still be NaN:
  where the floor wins, the norm is taken of ones instead. Same numbers as
  ``optax.safe_norm(x, floor)``.
  """
  norm = jnp.linalg.norm(x)
  floored = norm <= floor
  safe_x = jnp.where(floored, jnp.ones_like(x), x)
  return jnp.where(floored, floor, jnp.linalg.norm(safe_x))


def _floored_rms(x: jax.Array, floor: jax.typing.ArrayLike) -> jax.Array:
  """``max(sqrt(mean |x|^2), floor)``, gradient-safe as :func:`_floored_norm`.

  Same numbers as ``optax.safe_root_mean_squares(x, floor)``.
  """
  rms = jnp.sqrt(jnp.mean(tree_lib.abs_sq(x)))
  floored = rms <= floor
  safe_x = jnp.where(floored, jnp.ones_like(x), x)
  return jnp.where(floored, floor, jnp.sqrt(jnp.mean(tree_lib.abs_sq(safe_x))))


def _checked_empty_init(params) -> base.EmptyState:
  # A per-leaf factor on an integer leaf would be truncated by apply_updates.
  validation.check_float_params(params)
  return base.EmptyState()


def _scale_by_params(factor_of) -> base.GradientTransformation:
  """``u = g * factor_of(g, w)`` leaf by leaf; needs ``params``."""

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(base.NO_PARAMS_MSG)
    combine.check_updates_match_params(updates, params)
    updates = jax.tree.map(lambda g, p: g * factor_of(g, p), updates, params)
    return updates, state

  return base.GradientTransformation(_checked_empty_init, update_fn)


def scale_by_trust_ratio(
    min_norm: jax.typing.ArrayLike = 0.0,
    trust_coefficient: jax.typing.ArrayLike = 1.0,
    eps: jax.typing.ArrayLike = 0.0,
) -> base.GradientTransformation:
  r"""Scales each leaf's update by its trust ratio ``||w|| / ||u||``.

  .. math::
     r = \frac{c\, \max(\lVert w \rVert_2, n_{min})}{\max(\lVert u \rVert_2, n_{min}) + \epsilon},
     \qquad u \leftarrow r\, u \quad (r = 1 \text{ if either norm is } 0)

  with one ratio per params leaf (a layer). After it every layer's update
  has norm ``c ||w||``: the step is relative to the weights it moves, so
  layers whose gradients are tiny or huge train at the same relative speed.
  That is what lets LARS (You, Gitman & Ginsburg, 2017, arXiv:1708.03888)
  and LAMB (You et al., ICLR 2020, arXiv:1904.00962) keep large-batch
  training stable. A per-layer, not per-coordinate, rescaling: beyond the
  notes' adaptive families (notes 000/003/004), on top of their momentum
  (LARS) or Adam (LAMB) direction. A zero weight or zero update leaves the
  update as it is (ratio 1), so zero-initialised layers still move. Stateless
  (:data:`ScaleByTrustRatioState` is the empty state); needs ``params``.
  Same as ``optax.scale_by_trust_ratio``.

  Args:
    min_norm: floor ``n_min >= 0`` for both norms (default 0.0, no floor).
    trust_coefficient: ``c >= 0``, the multiplier of the ratio (default 1.0).
    eps: ``epsilon >= 0`` added to the denominator (default 0.0).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_trust_ratio()
    >>> params = {"w": jnp.array([3.0, 4.0])}
    >>> updates, _ = tx.update({"w": jnp.array([0.0, 0.1])}, tx.init(params), params)
    >>> updates["w"]  # the norm of the params, 5, in the update's direction
    Array([0., 5.], dtype=float32)
  """
  validation.check_non_negative("min_norm", min_norm)
  validation.check_non_negative("trust_coefficient", trust_coefficient)
  validation.check_non_negative("eps", eps)

  def ratio(g, p):
    param_norm = _floored_norm(p, min_norm)
    update_norm = _floored_norm(g, min_norm)
    trust = trust_coefficient * param_norm / (update_norm + eps)
    degenerate = jnp.logical_or(param_norm == 0.0, update_norm == 0.0)
    return jnp.where(degenerate, jnp.array(1.0, dtype=p.dtype), trust)

  return _scale_by_params(ratio)


def scale_by_param_block_norm(
    min_scale: jax.typing.ArrayLike = 1e-3,
) -> base.GradientTransformation:
  r"""Multiplies each leaf's update by the L2 norm of that leaf's params.

  .. math:: u \leftarrow \max(\lVert w \rVert_2, s_{min})\, u

  One factor per params leaf: a step given in units of the weights' own size
  (a relative step, as in Adafactor, Shazeer & Stern, ICML 2018,
  arXiv:1804.04235), floored so that zero-initialised leaves still move.
  Layer-wise, beyond the notes' per-coordinate families (notes 000/003/004).
  Stateless; needs ``params``. Same as ``optax.scale_by_param_block_norm``.

  Args:
    min_scale: the floor ``s_min >= 0`` (default 1e-3).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_param_block_norm()
    >>> params = {"w": jnp.array([3.0, 4.0]), "b": jnp.zeros(2)}
    >>> grads = {"w": jnp.ones(2), "b": jnp.ones(2)}
    >>> updates, _ = tx.update(grads, tx.init(params), params)
    >>> updates["w"], updates["b"]
    (Array([5., 5.], dtype=float32), Array([0.001, 0.001], dtype=float32))
  """
  validation.check_non_negative("min_scale", min_scale)
  return _scale_by_params(lambda g, p: _floored_norm(p, min_scale))


def scale_by_param_block_rms(
    min_scale: jax.typing.ArrayLike = 1e-3,
) -> base.GradientTransformation:
  r"""Multiplies each leaf's update by the root mean square of that leaf's params.

  .. math:: u \leftarrow \max\!\Big(\sqrt{\tfrac{1}{n}\textstyle\sum_i w_i^2},\ s_{min}\Big)\, u

  Adafactor's ``multiply_by_parameter_scale`` (Shazeer & Stern, ICML 2018,
  arXiv:1804.04235, "relative step size"): the RMS, unlike the norm of
  :func:`scale_by_param_block_norm`, does not grow with the layer's size.
  Layer-wise, beyond the notes' per-coordinate families (notes 000/003/004).
  Stateless; needs ``params``. Same as ``optax.scale_by_param_block_rms``.

  Args:
    min_scale: the floor ``s_min >= 0`` (default 1e-3).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_param_block_rms()
    >>> params = {"w": jnp.array([1.0, -1.0, 1.0, -1.0]) * 2.0}
    >>> updates, _ = tx.update({"w": jnp.ones(4)}, tx.init(params), params)
    >>> updates["w"]
    Array([2., 2., 2., 2.], dtype=float32)
  """
  validation.check_non_negative("min_scale", min_scale)
  return _scale_by_params(lambda g, p: _floored_rms(p, min_scale))
