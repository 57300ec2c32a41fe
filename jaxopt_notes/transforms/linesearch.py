"""Line searches: pick the step along an update by evaluating the loss there.

* :func:`scale_by_backtracking_linesearch`: shrink the step until the loss
  decreases enough (Armijo), :mod:`~jaxopt_notes.transforms.linesearch_backtracking`;
* :func:`scale_by_zoom_linesearch`: a step meeting the strong Wolfe
  conditions (decrease and small curvature), the one :func:`lbfgs` uses,
  :mod:`~jaxopt_notes.transforms.linesearch_zoom`;
* :func:`value_and_grad_from_state`: ``jax.value_and_grad`` that reuses the
  loss and gradient a line search already computed at the new params.

Their ``update`` takes the extra keyword arguments ``value``, ``grad`` and
``value_fn`` (plus any inputs of ``value_fn``), which :func:`chain`
forwards. Same names, states and numbers as optax's.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, tree_access, validation
from jaxopt_notes.transforms.linesearch_backtracking import (
    BacktrackingLinesearchInfo,
    ScaleByBacktrackingLinesearchState,
    scale_by_backtracking_linesearch,
)
from jaxopt_notes.transforms.linesearch_zoom import (
    ScaleByZoomLinesearchState,
    ZoomLinesearchInfo,
    scale_by_zoom_linesearch,
)

__all__ = [
    "BacktrackingLinesearchInfo",
    "ScaleByBacktrackingLinesearchState",
    "ScaleByZoomLinesearchState",
    "ZoomLinesearchInfo",
    "scale_by_backtracking_linesearch",
    "scale_by_zoom_linesearch",
    "value_and_grad_from_state",
]


def value_and_grad_from_state(
    value_fn: Callable[..., jax.typing.ArrayLike],
) -> Callable[..., tuple[jax.typing.ArrayLike, base.Updates]]:
  r"""``jax.value_and_grad(value_fn)``, but read from the optimizer state when it is there.

  .. math:: (f(w_{t}), \nabla f(w_{t})) = \text{state.value, state.grad} \ \text{if finite, else computed}

  A line search evaluates the loss and its gradient at the step it accepts,
  which are the next iteration's ``f(w_t)`` and ``grad f(w_t)``: on a
  deterministic loss (full batch, notes 000's "full-batch GD") they can be
  reused, saving one evaluation per step. The returned function is called
  as ``f(params, *args, state=opt_state, **kwargs)``; it finds the state's
  single ``value`` and ``grad`` entries (as ``optax.tree.get`` does) and
  computes both with ``jax.value_and_grad`` while the stored value is Inf or
  NaN (the initial state). Do not use it on minibatches: the stored values
  belong to the previous batch. Same as ``optax.value_and_grad_from_state``.

  Args:
    value_fn: the loss, ``value_fn(params, *args, **kwargs) -> scalar``.

  Raises:
    ValueError: (when called) if the state holds no ``value`` or no ``grad``
      (e.g. :func:`scale_by_backtracking_linesearch` without ``store_grad``).
    KeyError: (when called) if it holds several.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> fn = lambda w: jnp.sum(w ** 2)
    >>> tx = jn.lbfgs()
    >>> params = jnp.array([1.0, 2.0, 3.0])
    >>> state = tx.init(params)
    >>> value_and_grad = jn.value_and_grad_from_state(fn)
    >>> for _ in range(2):
    ...   value, grad = value_and_grad(params, state=state)
    ...   updates, state = tx.update(grad, state, params, value=value, grad=grad, value_fn=fn)
    ...   params = jn.apply_updates(params, updates)
    ...   print(f"{fn(params):.2E}")
    7.52E+00
    7.46E-14
  """
  validation.check_callable("value_fn", value_fn, "the loss, a function of the params")

  def value_and_grad(params: Any, *fn_args: Any, state: Any, **fn_kwargs: Any):
    value = tree_access.tree_get(state, "value")
    grad = tree_access.tree_get(state, "grad")
    if value is None or grad is None:
      raise ValueError(
          "value_and_grad_from_state found no `value` or no `grad` in `state`: use it with a "
          "line search that stores both (scale_by_zoom_linesearch, lbfgs, or "
          "scale_by_backtracking_linesearch(..., store_grad=True))."
      )
    return jax.lax.cond(
        (~jnp.isinf(value)) & (~jnp.isnan(value)),
        lambda *_: (value, grad),
        lambda p, a, kw: jax.value_and_grad(value_fn)(p, *a, **kw),
        params, fn_args, fn_kwargs,
    )

  return value_and_grad
