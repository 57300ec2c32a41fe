"""Gradient clipping: the notes' guard against cliffs and exploding gradients."""

from __future__ import annotations

from typing import Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib

__all__ = [
    "AdaptiveGradClipState",
    "adaptive_grad_clip",
    "clip",
    "clip_by_block_rms",
    "clip_by_global_norm",
]


def clip(max_delta: jax.typing.ArrayLike) -> base.GradientTransformation:
  r"""Clips every coordinate to ``[-max_delta, max_delta]``.

  .. math:: u_i = \min(\max(g_i, -\delta), \delta)

  Notes 002 ("cliffs and exploding gradients"): a step taken on a
  cliff can throw the parameters far away; bounding it keeps them near.
  Stateless. Same as ``optax.clip``.

  Args:
    max_delta: ``delta >= 0``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.clip(1.0)
    >>> updates, _ = tx.update({"w": jnp.array([0.5, -3.0, 2.0])}, tx.init({"w": jnp.zeros(3)}))
    >>> print(np.asarray(updates["w"]).round(4))
    [ 0.5 -1.   1. ]
  """
  validation.check_non_negative("max_delta", max_delta)

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params)
    del params
    return jax.tree.map(lambda g: jnp.clip(g, -max_delta, max_delta), updates), state

  return base.GradientTransformation(base.init_empty_state, update_fn)


def clip_by_global_norm(max_norm: jax.typing.ArrayLike) -> base.GradientTransformation:
  r"""Rescales all updates together when their joint L2 norm exceeds ``max_norm``.

  .. math:: u = g \cdot \min\!\left(1, \frac{c}{\lVert g \rVert_2}\right)

  Unlike :func:`clip` it keeps the direction of the step and only shortens it
  (Pascanu et al., 2013), the clipping heuristic of notes 002. Stateless.
  Same as ``optax.clip_by_global_norm``.

  Args:
    max_norm: ``c > 0``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.clip_by_global_norm(1.0)
    >>> updates, _ = tx.update({"a": jnp.array([3.0]), "b": jnp.array([4.0])}, tx.init(None))
    >>> print(np.asarray(updates["a"]).round(4), np.asarray(updates["b"]).round(4))  # norm 5 -> 1
    [0.6] [0.8]
  """
  # max_norm = 0 would turn a zero gradient into 0/0 = NaN.
  validation.check_positive("max_norm", max_norm)

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params)
    del params
    norm = tree_lib.global_norm(updates)
    within = jnp.squeeze(norm < max_norm)
    # select, not a multiply by min(1, c/norm): a zero gradient must stay 0,
    # never 0 * inf.
    updates = jax.tree.map(
        lambda t: jax.lax.select(within, t, (t / norm.astype(t.dtype)) * max_norm), updates
    )
    return updates, state

  return base.GradientTransformation(base.init_empty_state, update_fn)


def clip_by_block_rms(threshold: jax.typing.ArrayLike) -> base.GradientTransformation:
  r"""Shrinks each leaf whose root mean square exceeds ``threshold`` back to it.

  .. math:: u = \frac{g}{\max\!\big(1,\ \mathrm{rms}(g) / \tau\big)}, \qquad
     \mathrm{rms}(g) = \sqrt{\tfrac{1}{n}\textstyle\sum_i |g_i|^2}

  :func:`clip_by_global_norm` applied to every params leaf (a "block": a
  weight matrix, a bias) on its own, measured by the RMS so that the bound
  does not grow with the leaf's size. Adafactor's update clipping (Shazeer &
  Stern, ICML 2018, arXiv:1804.04235, threshold ``d = 1``): it caps the
  occasional huge step when the slow second-moment estimate lags behind the
  gradients, notes 002's cliff guard per layer. Stateless. Same as
  ``optax.clip_by_block_rms``.

  Args:
    threshold: the largest RMS ``tau > 0`` a leaf keeps.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.clip_by_block_rms(1.0)
    >>> grads = {"w": jnp.array([3.0, -3.0]), "b": jnp.array([0.5, 0.0])}
    >>> updates, _ = tx.update(grads, tx.init(grads))
    >>> updates["w"], updates["b"]
    (Array([ 1., -1.], dtype=float32), Array([0.5, 0. ], dtype=float32))
  """
  # threshold = 0 would turn a zero leaf into 0 / max(1, 0/0) = NaN.
  validation.check_positive("threshold", threshold)

  def shrink(g):
    return g / jnp.maximum(1.0, jnp.sqrt(jnp.mean(tree_lib.abs_sq(g))) / threshold)

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params)
    del params
    return jax.tree.map(shrink, updates), state

  return base.GradientTransformation(base.init_empty_state, update_fn)


# optax's name for the (empty) state of adaptive_grad_clip.
AdaptiveGradClipState = base.EmptyState

Axis = Optional[Union[int, tuple[int, ...]]]

# Default unit of each rank: the axes summed over, so that one norm remains
# per output unit (a column of an (in, out) matrix, an output channel of an
# HWIO or DHWIO kernel, a head of an (in, heads, out) projection).
_UNIT_AXES = {2: (0,), 3: (0,), 4: (0, 1, 2), 5: (0, 1, 2, 3)}


def _unitwise_norm(x: jax.Array, axis: Axis) -> jax.Array:
  """The L2 norm of each unit of ``x``, broadcast back to ``x.shape``."""
  if axis is not None:
    axes = axis
  elif jnp.squeeze(x).ndim <= 1:
    axes = None  # a scalar or a vector (also (1, n)): one unit, the whole leaf
  elif x.ndim in _UNIT_AXES:
    axes = _UNIT_AXES[x.ndim]
  else:
    raise ValueError(
        f"adaptive_grad_clip: a params leaf of shape {x.shape} has no default unit "
        "(ranks 0-5 do); pass `axis` to say which axes one unit's norm sums over."
    )
  squared = jnp.sum(tree_lib.abs_sq(x), axis=axes, keepdims=True)
  return jnp.broadcast_to(jnp.sqrt(squared), x.shape)


def adaptive_grad_clip(
    clipping: jax.typing.ArrayLike,
    eps: jax.typing.ArrayLike = 1e-3,
    axis: Axis = None,
) -> base.GradientTransformation:
  r"""Adaptive gradient clipping (AGC): caps each unit's gradient norm at a
  fraction of that unit's weight norm.

  .. math::
     u_i = \begin{cases} g_i & \lVert g_i \rVert < \lambda \max(\lVert w_i \rVert, \epsilon) \\
     g_i\, \dfrac{\lambda \max(\lVert w_i \rVert, \epsilon)}{\max(\lVert g_i \rVert, 10^{-6})} & \text{otherwise}
     \end{cases}

  per unit ``i`` (Brock, De, Smith & Simonyan, ICML 2021, arXiv:2102.06171,
  the NFNets' replacement for batch normalisation). A unit is one output
  neuron: by default the whole leaf for scalars and vectors, a column of a
  matrix (axis 0 summed), the first axis of a rank-3 leaf, the first three of
  an HWIO conv kernel and the first four of a DHWIO one; ``axis`` chooses
  the summed axes instead (needed for rank 6 and above, which raise
  ``ValueError`` at the first update). Like :func:`clip_by_global_norm`
  (notes 002's cliff guard) it keeps each unit's direction, but the bound is
  relative to the weights, so it needs ``params``; ``eps`` keeps
  zero-initialised units from being clipped to nothing. Stateless
  (:data:`AdaptiveGradClipState`). Same as ``optax.adaptive_grad_clip``.

  Args:
    clipping: the largest ratio ``lambda > 0`` of gradient norm to weight norm.
    eps: floor ``epsilon >= 0`` of the weight norm (default 1e-3).
    axis: an axis or a tuple of axes to sum one unit's norm over (default
      ``None``: by rank, as above).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.adaptive_grad_clip(0.1)
    >>> params = {"w": jnp.array([3.0, 4.0])}
    >>> updates, _ = tx.update({"w": jnp.array([0.0, 2.0])}, tx.init(params), params)
    >>> updates["w"]  # norm 2 cut to 0.1 * 5
    Array([0. , 0.5], dtype=float32)
  """
  validation.check_positive("clipping", clipping)
  validation.check_non_negative("eps", eps)
  if axis is not None:
    for a in axis if isinstance(axis, tuple) else (axis,):
      validation.check_that(
          "axis", a, lambda v: np.issubdtype(v.dtype, np.integer) and v.ndim == 0,
          "None, an int or a tuple of ints",
      )

  def clip_unit(g, p):
    g_norm, p_norm = _unitwise_norm(g, axis), _unitwise_norm(p, axis)
    max_norm = clipping * jnp.maximum(p_norm, eps)
    # The 1e-6 only guards 0/0 when max_norm is 0 too; otherwise g_norm >= max_norm > 0 here.
    clipped = g * (max_norm / jnp.maximum(g_norm, 1e-6))
    return jnp.where(g_norm < max_norm, g, clipped)

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(base.NO_PARAMS_MSG)
    combine.check_updates_match_params(updates, params)
    return jax.tree.map(clip_unit, updates, params), state

  return base.GradientTransformation(base.init_empty_state, update_fn)
