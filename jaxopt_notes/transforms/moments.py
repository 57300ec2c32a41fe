"""Moving averages of gradients: the EMA and momentum's trace.

Both keep one accumulator per parameter. They differ only in whether the new
gradient is damped by ``1 - beta``:

* :func:`ema`   ``v <- beta v + (1 - beta) g``  (notes 004: "exponentially
  weighted average", optionally bias-corrected by ``1 - beta^t``);
* :func:`trace` ``v <- beta v + g``              (notes 000/003: momentum,
  "friction" ``rho``).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.core.tree import bias_correction

__all__ = ["EmaState", "TraceState", "bias_correction", "ema", "trace"]


class EmaState(NamedTuple):
  """State of :func:`ema`: steps taken and the running average."""

  count: jax.Array  # type: ignore[assignment]  # int32 scalar, number of updates folded in (optax's name)
  ema: base.Updates


def ema(
    decay: jax.typing.ArrayLike,
    debias: bool = True,
    accumulator_dtype: Optional[Any] = None,
) -> base.GradientTransformation:
  r"""Exponential moving average of the updates, optionally bias-corrected.

  .. math::
     v_t = \beta\, v_{t-1} + (1 - \beta)\, g_t, \qquad
     u_t = \frac{v_t}{1 - \beta^{t}} \ \text{(debias)} \ \text{or}\ v_t

  Notes 004: ``V_t = beta V_{t-1} + (1 - beta) theta_t`` averages
  roughly the last ``1 / (1 - beta)`` values (0.9: 10, 0.98: 50, 0.5: 2), and
  ``V_t / (1 - beta^t)`` fixes its low early estimates. Same state and numbers
  as ``optax.ema``.

  Args:
    decay: ``beta`` in ``[0, 1)``.
    debias: divide by ``1 - beta^t`` (default ``True``).
    accumulator_dtype: dtype of the stored average (default: the params').

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.ema(0.9)
    >>> state = tx.init({"w": jnp.zeros(1)})
    >>> for g in [1.0, 3.0]:
    ...   updates, state = tx.update({"w": jnp.array([g])}, state)
    >>> print(np.asarray(state.ema["w"]).round(4), np.asarray(updates["w"]).round(4))  # 0.39 / (1 - 0.81)
    [0.39] [2.0526]
  """
  validation.check_unit_interval("decay", decay)
  validation.check_flags(debias=debias)
  accumulator_dtype = validation.check_dtype("accumulator_dtype", accumulator_dtype)

  def init_fn(params):
    validation.check_float_params(params)
    return EmaState(
        count=jnp.zeros([], jnp.int32),
        ema=tree_lib.tree_zeros_like(params, dtype=accumulator_dtype),
    )

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params, state=state.ema, state_name="state.ema")
    del params
    new_ema = tree_lib.tree_update_moment(updates, state.ema, decay, 1)
    count = tree_lib.safe_increment(state.count)
    out = bias_correction(new_ema, decay, count) if debias else new_ema
    # Cast back to the stored dtype: a strongly typed float32 `decay` (traced,
    # or injected) would otherwise promote a bfloat16 state between steps.
    return out, EmaState(count=count, ema=tree_lib.tree_cast_like(new_ema, state.ema))

  return base.GradientTransformation(init_fn, update_fn)


class TraceState(NamedTuple):
  """State of :func:`trace`: the momentum buffer."""

  trace: base.Params


def trace(
    decay: jax.typing.ArrayLike,
    nesterov: bool = False,
    accumulator_dtype: Optional[Any] = None,
    *,
    average: bool = False,
) -> base.GradientTransformation:
  r"""Momentum: a decaying sum of past updates, with a Nesterov option.

  .. math::
     v_t = \beta\, v_{t-1} + g_t, \qquad
     u_t = v_t \ \text{or, with Nesterov,}\ u_t = g_t + \beta\, v_t

  Notes 000/003: SGD+Momentum ``v = rho v + dw; w -= lr v`` with
  ``rho`` 0.9 or 0.99. Nesterov's look-ahead ``grad(x + rho v)`` becomes, after
  the notes' change of variables ``x~ = x + rho v``, the update
  ``g + rho v_t`` on the shifted iterate, which is what ``nesterov=True``
  returns. Same state and numbers as ``optax.trace`` by default.

  ``average=True`` gives the notes' other form (note 004),
  ``v_t = beta v_{t-1} + (1 - beta) g_t`` (and, with Nesterov,
  ``u_t = beta v_t + (1 - beta) g_t``): the same direction as the default with
  the learning rate rescaled by ``1 - beta``. optax has no such flag.

  ``decay=1.0`` is allowed: ``v_t = sum_s g_s``, a plain running sum (as
  optax, whose own tests use it); with ``average=True`` it would never move
  off zero, so it is refused there.

  Args:
    decay: ``beta`` (``rho``) in ``[0, 1]`` (``[0, 1)`` with ``average``).
    nesterov: return the Nesterov look-ahead update (default ``False``).
    accumulator_dtype: dtype of the stored buffer (default: the params').
    average: damp the incoming gradient by ``1 - beta`` (default ``False``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> for nesterov in [False, True]:
    ...   tx = jn.trace(0.9, nesterov=nesterov)
    ...   state = tx.init({"w": jnp.zeros(1)})
    ...   for _ in range(2):
    ...     updates, state = tx.update({"w": jnp.ones(1)}, state)
    ...   print(np.asarray(updates["w"]).round(4))  # v_2 = 1 + 0.9, then 1 + 0.9 v_2
    [1.9]
    [2.71]
  """
  validation.check_flags(nesterov=nesterov, average=average)
  validation.check_unit_interval("decay", decay, closed_right=not average)
  accumulator_dtype = validation.check_dtype("accumulator_dtype", accumulator_dtype)
  scale_in = (1 - decay) if average else 1

  def init_fn(params):
    validation.check_float_params(params)
    return TraceState(trace=tree_lib.tree_zeros_like(params, dtype=accumulator_dtype))

  def step(g, t):
    return g + decay * t if not average else scale_in * g + decay * t

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params, state=state.trace, state_name="state.trace")
    del params
    new_trace = tree_lib.tree_map_checked(
        lambda g, t: None if g is None else step(g, t),
        updates, state.trace, is_leaf=lambda x: x is None,
    )
    out = jax.tree.map(step, updates, new_trace) if nesterov else new_trace
    return out, TraceState(trace=tree_lib.tree_cast_like(new_trace, state.trace))

  return base.GradientTransformation(init_fn, update_fn)
