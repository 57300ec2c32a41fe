"""Reduce the step size when the loss stops improving (a plateau).

Note 002 names plateaus among the challenges of optimization, and
note 004 decays the learning rate by hand ("manual decay") once progress
stalls. :func:`reduce_on_plateau` automates that manual decay: it watches the
loss it is given and multiplies every later update by ``factor`` after
``patience`` steps without improvement. Chained after an optimizer, it scales
that optimizer's steps, which is the same as scaling its learning rate for
plain SGD and for Adam's step.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.core import base, validation
from jaxopt_notes.core import tree as tree_lib

__all__ = ["ReduceLROnPlateauState", "reduce_on_plateau"]


class ReduceLROnPlateauState(NamedTuple):
  """State of :func:`reduce_on_plateau`; same fields as optax.contrib's."""

  scale: jax.Array  # factor applied to the updates, starts at 1
  best_value: jax.Array  # best averaged value seen so far
  plateau_count: jax.Array  # int32: windows since the last improvement
  cooldown_count: jax.Array  # int32: windows left before plateaus count again
  count: jax.Array  # type: ignore[assignment]  # int32: values folded into avg_value so far (optax's name)
  avg_value: jax.Array  # running mean of the current window's values


def _dtype_extreme(params: Any, highest: bool) -> Any:
  """The highest (or lowest) dtype among the leaves, by promotion."""
  dtypes = {jnp.asarray(x).dtype for x in jax.tree.leaves(params)}
  if not dtypes:
    return jnp.asarray([]).dtype

  def pick(a, b):
    promoted = jnp.promote_types(a, b)
    if promoted not in (a, b):
      raise ValueError(
          f"params mix dtypes {a} and {b}, which do not promote to one of "
          "them; reduce_on_plateau cannot choose its state dtype"
      )
    return promoted if highest else (b if promoted == a else a)

  return functools.reduce(pick, sorted(dtypes, key=str))


def _check_args(factor, rtol, atol, patience, cooldown, accumulation_size, min_scale) -> None:
  concrete = lambda v: None if isinstance(v, jax.core.Tracer) else float(np.asarray(v))
  f = concrete(factor)
  if f is not None and not 0.0 < f < 1.0:
    raise ValueError(f"`factor` must lie in (0, 1): new_scale = scale * factor; got {factor!r}")
  validation.check_non_negative("rtol", rtol)
  validation.check_non_negative("atol", atol)
  r, a = concrete(rtol), concrete(atol)
  if r is not None and r > 1.0:
    raise ValueError(f"`rtol` must be <= 1 (a relative improvement); got {rtol!r}")
  if r == 0.0 and a == 0.0:
    raise ValueError(
        "at least one of `rtol` and `atol` must be > 0, else any rounding "
        "noise counts as improvement"
    )
  validation.check_positive_int("patience", patience)
  validation.check_positive_int("accumulation_size", accumulation_size)
  validation.check_non_negative("cooldown", cooldown)
  c = concrete(cooldown)
  if c is not None and c != math.floor(c):
    raise ValueError(f"`cooldown` must be an integer number of windows; got {cooldown!r}")
  validation.check_non_negative("min_scale", min_scale)


def reduce_on_plateau(
    factor: float = 0.1,
    patience: int = 10,
    rtol: float = 1e-4,
    atol: float = 0.0,
    cooldown: int = 0,
    accumulation_size: int = 1,
    min_scale: float = 0.0,
) -> base.GradientTransformationExtraArgs:
  r"""Scales the updates by ``factor`` each time the loss plateaus.

  Every ``accumulation_size`` calls, the mean ``\bar v`` of the values passed
  as ``update(..., value=loss)`` is compared with the best mean so far:

  .. math::
     \text{improved} \iff \bar v < (1 - \mathrm{rtol})\, v_{best} - \mathrm{atol}

  An improvement resets the plateau counter ``c``; otherwise ``c`` grows, and
  when ``c = patience`` the scale becomes
  ``s <- max(factor * s, min_scale)``, ``c`` resets and the next ``cooldown``
  windows are ignored. Each update is ``u = s * g``.

  Note 004's manual learning-rate decay ("reduce it when progress stalls")
  made automatic, for note 002's plateaus. Same state fields, defaults and
  numbers as ``optax.contrib.reduce_on_plateau`` (Keras's
  ``ReduceLROnPlateau``, counted in updates rather than epochs). Pass
  ``value`` as the validation loss, or as the batch loss with an
  ``accumulation_size`` of about one epoch's steps. :func:`fit` passes the
  batch loss to every update.

  Args:
    factor: multiplier in ``(0, 1)`` applied on a plateau (default 0.1).
    patience: windows without improvement before a reduction (default 10).
    rtol: relative improvement that counts, in ``[0, 1]`` (default 1e-4).
    atol: absolute improvement that counts (default 0.0).
    cooldown: windows to wait after a reduction before counting again
      (default 0).
    accumulation_size: values averaged into one window (default 1).
    min_scale: the scale never drops below this (default 0.0).

  Returns:
    A ``GradientTransformationExtraArgs`` whose ``update`` requires the
    keyword argument ``value``.

  Reference: Keras ``ReduceLROnPlateau``; optax.contrib.reduce_on_plateau.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.reduce_on_plateau(factor=0.5, patience=2)
    >>> params = {"w": jnp.ones(1)}
    >>> state, scales = tx.init(params), []
    >>> for loss in (3.0, 2.0, 2.0, 2.0, 2.0, 2.0):  # improves once, then stalls
    ...   updates, state = tx.update({"w": jnp.ones(1)}, state, params, value=loss)
    ...   scales.append(float(state.scale))
    >>> scales, float(updates["w"][0])
    ([1.0, 1.0, 1.0, 0.5, 0.5, 0.25], 0.25)
  """
  _check_args(factor, rtol, atol, patience, cooldown, accumulation_size, min_scale)

  def init_fn(params):
    tree_lib.check_params_tree(params)
    # The scale takes the narrowest param dtype so that u = s * g never
    # promotes a bfloat16 update; the values are kept in the widest.
    low, high = _dtype_extreme(params, False), _dtype_extreme(params, True)
    return ReduceLROnPlateauState(
        scale=jnp.asarray(1.0, low),
        best_value=jnp.asarray(jnp.inf, high),
        plateau_count=jnp.zeros([], jnp.int32),
        cooldown_count=jnp.zeros([], jnp.int32),
        count=jnp.zeros([], jnp.int32),
        avg_value=jnp.asarray(0.0, high),
    )

  def end_window(state):
    mean = state.avg_value
    improved = mean < (1 - rtol) * state.best_value - atol
    best = jnp.where(improved, mean.astype(state.best_value.dtype), state.best_value)
    waited = jnp.where(improved, 0, tree_lib.safe_increment(state.plateau_count))
    cooling = state.cooldown_count > 0
    reduce = jnp.logical_and(jnp.logical_not(cooling), waited == patience)
    scale = jnp.maximum(jnp.where(reduce, state.scale * factor, state.scale), min_scale)
    return ReduceLROnPlateauState(
        scale=jnp.where(cooling, state.scale, scale).astype(state.scale.dtype),
        best_value=best.astype(state.best_value.dtype),
        # Plateaus seen while cooling down are forgiven.
        plateau_count=jnp.where(cooling | reduce, 0, waited).astype(jnp.int32),
        cooldown_count=jnp.where(
            cooling, state.cooldown_count - 1, jnp.where(reduce, cooldown, 0)
        ).astype(jnp.int32),
        count=jnp.zeros([], jnp.int32),
        avg_value=jnp.zeros([], mean.dtype),
    )

  def update_fn(updates, state, params=None, *, value=None, **extra_args):
    del params, extra_args
    if value is None:
      raise ValueError(
          "reduce_on_plateau watches a loss: call `update(updates, state, "
          "params, value=loss)` (fit does this for you)"
      )
    count = tree_lib.safe_increment(state.count)
    # A running mean, so a window of any size needs one scalar of memory.
    value = jnp.asarray(value).astype(state.avg_value.dtype)
    mean = (state.count * state.avg_value + value) / count
    state = state._replace(count=count, avg_value=mean.astype(state.avg_value.dtype))
    state = jax.lax.cond(count == accumulation_size, end_window, lambda s: s, state)
    return jax.tree.map(lambda g: state.scale * g, updates), state

  return base.GradientTransformationExtraArgs(init_fn, update_fn)
