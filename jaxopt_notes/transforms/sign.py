"""Sign-based directions: keep only which way each coordinate should move.

``sign(g)`` throws the gradient's magnitude away, so every coordinate takes
a step of the same size: the extreme of the notes' per-coordinate adaptive
scalings (notes 000/003/004), where RMSProp divides ``g`` by its own running
size, ``g / sqrt(E[g^2])`` (a sign when the gradient does not vary).

* :func:`scale_by_sign` ``u = sign(g)`` (signSGD);
* :func:`scale_by_lion` ``u = sign((1 - b1) g + b1 m)``, ``m <- b2 m + (1 - b2) g``
  (Lion: the notes' momentum EMA, read through a sign).
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib

__all__ = ["ScaleByLionState", "scale_by_lion", "scale_by_sign"]

_LION_MODES = ("hard", "smooth", "refined")


def scale_by_sign() -> base.GradientTransformation:
  r"""The sign of every gradient coordinate: :math:`u_t = \operatorname{sign}(g_t)`.

  signSGD (Bernstein et al., 2018, arXiv:1802.04434) moves each coordinate by
  the same amount whatever its gradient's size: a per-coordinate adaptive
  scaling in the sense of notes 000/003/004 taken to its limit (RMSProp's
  ``g / sqrt(E[g^2])`` is ``sign(g)`` when ``g`` does not vary). A zero
  coordinate stays 0, a NaN stays NaN, and an infinite gradient gives a
  finite step of ``±1``. Stateless; same as ``optax.scale_by_sign``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_sign()
    >>> params = {"w": jnp.zeros(3)}
    >>> updates, _ = tx.update({"w": jnp.array([-2.0, 0.0, 0.5])}, tx.init(params), params)
    >>> updates["w"]
    Array([-1.,  0.,  1.], dtype=float32)
  """

  def init_fn(params):
    # A sign step on an integer leaf would be truncated by apply_updates.
    validation.check_float_params(params)
    return base.EmptyState()

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params)
    del params
    return jax.tree.map(jnp.sign, updates), state

  return base.GradientTransformation(init_fn, update_fn)


class ScaleByLionState(NamedTuple):
  """State of :func:`scale_by_lion`: steps taken and the momentum EMA."""

  count: jax.Array  # type: ignore[assignment]  # named like tuple.count, as optax's; int32 scalar
  mu: base.Updates


def _lion_direction(mode: str, smooth_beta):
  """The map applied to the interpolated momentum ``c``, by ``mode``."""
  if mode == "hard":
    return jnp.sign
  if mode == "smooth":
    return lambda c: jnp.tanh(smooth_beta * c)
  # "refined": the identity inside [-1, 1], the sign outside it.
  return lambda c: jnp.where(jnp.abs(c) < 1.0, c, jnp.sign(c))


def scale_by_lion(
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.99,
    mu_dtype: Optional[Any] = None,
    *,
    mode: Literal["hard", "smooth", "refined"] = "hard",
    smooth_beta: float = 1.0,
) -> base.GradientTransformation:
  r"""Lion's direction: the sign of an interpolation of momentum and gradient.

  .. math::
     c_t = (1 - \beta_1)\, g_t + \beta_1 m_{t-1}, \qquad
     u_t = \operatorname{sign}(c_t), \qquad
     m_t = \beta_2 m_{t-1} + (1 - \beta_2)\, g_t

  Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms",
  arXiv:2302.06675). ``m`` is the notes' EMA form of momentum (notes
  000/003/004, ``v = beta v + (1 - beta) g``), but the step reads it with a
  different weight ``b1`` and then keeps only its sign, so every coordinate
  moves by the learning rate (as :func:`scale_by_sign`). The sign is taken
  before ``m`` is updated. ``mode="smooth"`` uses :math:`\tanh(\beta_s c_t)`
  and ``mode="refined"`` keeps :math:`c_t` where :math:`|c_t| < 1` and its
  sign elsewhere. An infinite gradient gives a finite ``±1`` step (in
  ``"hard"`` and ``"refined"`` modes), though ``m`` keeps the Inf. Same state
  and numbers as ``optax.scale_by_lion``; a bad ``mode`` is refused here when
  built (optax raises at the first update).

  Args:
    b1: weight of the momentum in the step's direction, in ``[0, 1)``
      (default 0.9).
    b2: decay of the momentum EMA, in ``[0, 1)`` (default 0.99).
    mu_dtype: dtype of the stored momentum (default: the params').
    mode: ``"hard"`` (the sign, default), ``"smooth"`` or ``"refined"``.
    smooth_beta: the slope :math:`\beta_s` of ``"smooth"`` (default 1.0).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_lion()
    >>> params = {"w": jnp.zeros(3)}
    >>> updates, state = tx.update({"w": jnp.array([-2.0, 0.0, 0.5])}, tx.init(params), params)
    >>> updates["w"]
    Array([-1.,  0.,  1.], dtype=float32)
    >>> state.mu["w"]
    Array([-0.02 ,  0.   ,  0.005], dtype=float32)
  """
  validation.check_unit_interval("b1", b1)
  validation.check_unit_interval("b2", b2)
  mu_dtype = validation.check_dtype("mu_dtype", mu_dtype)
  validation.check_that(
      "mode", mode, lambda v: v.dtype.kind == "U" and str(v) in _LION_MODES,
      "one of " + ", ".join(repr(m) for m in _LION_MODES),
  )
  validation.check_finite("smooth_beta", smooth_beta)
  direction = _lion_direction(mode, smooth_beta)

  def init_fn(params):
    validation.check_float_params(params)
    return ScaleByLionState(
        count=jnp.zeros([], jnp.int32), mu=tree_lib.tree_zeros_like(params, dtype=mu_dtype)
    )

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params, state=state.mu, state_name="state.mu")
    del params
    steps = tree_lib.tree_map_checked(
        lambda g, m: direction((1.0 - b1) * g + b1 * m), updates, state.mu
    )
    mu = tree_lib.tree_update_moment(updates, state.mu, b2, 1)
    return steps, ScaleByLionState(
        count=tree_lib.safe_increment(state.count), mu=tree_lib.tree_cast_like(mu, state.mu)
    )

  return base.GradientTransformation(init_fn, update_fn)
