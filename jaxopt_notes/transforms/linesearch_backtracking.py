r"""Backtracking line search: shrink the step until the loss drops enough (Armijo).

A direction ``u`` from the earlier links of a chain is scaled by the largest
tried step ``eta`` (``eta_0 = min(increase_factor * eta_prev, max)``, then
``eta <- decrease_factor * eta``) with

.. math:: f(w + \eta u) \le (1 + \delta) f(w) + c\, \eta\, \langle u, \nabla f(w) \rangle + \epsilon .

Notes 000 pick the learning rate by hand and notes 004 decay it on a
schedule; a line search instead measures the loss along the step and picks
the rate each iteration.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, tree_math, validation
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.transforms import _linesearch_common as common

__all__ = [
    "BacktrackingLinesearchInfo",
    "ScaleByBacktrackingLinesearchState",
    "scale_by_backtracking_linesearch",
]


class BacktrackingLinesearchInfo(NamedTuple):
  """What the last search did, for debugging.

  ``decrease_error > 0`` means no tried step decreased the loss enough (the
  step taken is then the last one tried, or 0 when every value was NaN/Inf).
  """

  num_linesearch_steps: jax.Array  # int: loss evaluations in the last search
  decrease_error: jax.Array  # float: max(0, Armijo left side - right side)


class ScaleByBacktrackingLinesearchState(NamedTuple):
  """State of :func:`scale_by_backtracking_linesearch`.

  ``value`` (and ``grad`` with ``store_grad=True``, else ``None``) is the loss
  at the accepted step, i.e. at the next params: read it back with
  :func:`value_and_grad_from_state` to save one evaluation per iteration.
  """

  learning_rate: jax.Array  # the accepted step, next search starts from it
  value: jax.Array
  grad: Optional[base.Updates]
  info: BacktrackingLinesearchInfo


class _Trial(NamedTuple):
  """The carry of the search loop."""

  learning_rate: jax.Array
  new_value: jax.Array
  new_grad: base.Updates
  decrease_error: jax.Array
  iter_num: jax.Array


def _check_args(max_backtracking_steps, slope_rtol, decrease_factor, increase_factor,
                max_learning_rate, atol, rtol, store_grad, verbose) -> None:
  validation.check_int("max_backtracking_steps", max_backtracking_steps, minimum=0)
  validation.check_unit_interval("slope_rtol", slope_rtol)
  validation.check_that("decrease_factor", decrease_factor, lambda v: (v > 0) & (v < 1), "a number in (0, 1)")
  # inf is allowed: every search then starts from max_learning_rate.
  validation.check_that("increase_factor", increase_factor, lambda v: v >= 1, "a number >= 1 (inf allowed)")
  validation.check_that(
      "max_learning_rate", max_learning_rate, lambda v: (v > 0) & (v < jnp.inf), "a finite number > 0"
  )
  validation.check_non_negative("atol", atol)
  validation.check_non_negative("rtol", rtol)
  validation.check_flags(store_grad=store_grad, verbose=verbose)


def scale_by_backtracking_linesearch(
    max_backtracking_steps: int,
    slope_rtol: jax.typing.ArrayLike = 1e-4,
    decrease_factor: jax.typing.ArrayLike = 0.8,
    increase_factor: jax.typing.ArrayLike = 1.5,
    max_learning_rate: jax.typing.ArrayLike = 1.0,
    atol: jax.typing.ArrayLike = 0.0,
    rtol: jax.typing.ArrayLike = 0.0,
    store_grad: bool = False,
    verbose: bool = False,
) -> base.GradientTransformationExtraArgs:
  r"""Scales the update ``u`` by a step that passes the sufficient-decrease test.

  .. math::
     \eta_0 = \min(\gamma_{\uparrow}\, \eta_{prev},\ \eta_{max}),\quad
     \eta_{k+1} = \gamma_{\downarrow}\, \eta_k \ \text{until}\
     f(w + \eta u) \le (1 + \delta) f(w) + c\, \eta \langle u, \nabla f(w)\rangle + \epsilon,
     \qquad u \leftarrow \eta\, u

  Armijo's rule (Armijo, 1966; Nocedal & Wright, *Numerical Optimization*,
  1999, sec. 3.1) restarted each iteration from a slightly larger step, as
  in Vaswani et al., "Painless Stochastic Gradient", NeurIPS 2019
  (arXiv:1905.09997). Notes 000/004 tune or decay the learning rate by hand;
  this measures the loss along the step instead. Put it after a *descent*
  direction (``sgd(1.0)``, :func:`scale_by_lbfgs` then ``scale(-1)``): for
  ``<u, grad> >= 0`` no positive step passes. If the loss is NaN/Inf at every
  tried step the step is 0. Same as
  ``optax.scale_by_backtracking_linesearch`` (state, numbers and extra
  arguments).

  ``update(updates, state, params, *, value, grad, value_fn, **extra)``
  needs the loss ``value`` and gradient ``grad`` at ``params`` and
  ``value_fn(params, **extra)``; every other keyword must be an argument of
  ``value_fn`` (a batch), or the call raises ``TypeError`` naming it.

  Args:
    max_backtracking_steps: most shrinkings per search (the loss is
      evaluated at most this plus one times), an integer ``>= 0``.
    slope_rtol: ``c`` in ``[0, 1)`` (default 1e-4).
    decrease_factor: ``gamma_down`` in ``(0, 1)`` (default 0.8).
    increase_factor: ``gamma_up >= 1`` (default 1.5); ``math.inf`` restarts
      every search from ``max_learning_rate``.
    max_learning_rate: ``eta_max > 0`` (default 1.0).
    atol: ``epsilon >= 0`` (default 0.0).
    rtol: ``delta >= 0`` (default 0.0).
    store_grad: also compute the gradient at the accepted step and keep it
      in the state (default ``False``), for :func:`value_and_grad_from_state`.
    verbose: print a diagnosis when a search fails (default ``False``).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> fn = lambda w: jnp.sum(w ** 2)
    >>> tx = jn.chain(jn.sgd(1.0), jn.scale_by_backtracking_linesearch(15, store_grad=True))
    >>> params = jnp.array([1.0, 2.0, 3.0])
    >>> state = tx.init(params)
    >>> value_and_grad = jn.value_and_grad_from_state(fn)
    >>> for _ in range(3):
    ...   value, grad = value_and_grad(params, state=state)
    ...   updates, state = tx.update(grad, state, params, value=value, grad=grad, value_fn=fn)
    ...   params = jn.apply_updates(params, updates)
    >>> print(f"{fn(params):.2E}")
    6.53E-01
  """
  _check_args(max_backtracking_steps, slope_rtol, decrease_factor, increase_factor,
              max_learning_rate, atol, rtol, store_grad, verbose)

  def init_fn(params):
    validation.check_float_params(params)
    dtype = common.value_dtype(params, "scale_by_backtracking_linesearch")
    return ScaleByBacktrackingLinesearchState(
        learning_rate=jnp.array(1.0, dtype=dtype),
        value=jnp.array(jnp.inf, dtype=dtype),
        grad=tree_lib.tree_zeros_like(params) if store_grad else None,
        info=BacktrackingLinesearchInfo(
            num_linesearch_steps=jnp.asarray(0),
            decrease_error=jnp.array(jnp.inf, dtype=dtype),
        ),
    )

  def decrease_error_at(stepsize, slope, value, new_value):
    err = new_value - (1.0 + rtol) * value - stepsize * slope_rtol * slope
    # A NaN loss is no decrease at all.
    err = jnp.where(jnp.isnan(err), jnp.inf, err)
    return jnp.maximum(err, 0.0)

  def update_fn(updates, state, params=None, *, value=None, grad=None, value_fn=None, **extra_args):
    common.require_loss("scale_by_backtracking_linesearch", value, grad, value_fn)
    if params is None:
      raise ValueError(base.NO_PARAMS_MSG + " The line search evaluates the loss along the step from them.")
    combine.check_updates_match_params(updates, params)
    fn_kwargs = common.split_value_fn_kwargs(value_fn, extra_args, "scale_by_backtracking_linesearch")
    loss = functools.partial(value_fn, **fn_kwargs)
    # d/d eta f(w + eta u) at eta = 0: negative for a descent direction.
    slope = common.tree_real_vdot(updates, grad, conj_y=True)

    def keep_going(trial):
      return (~(trial.decrease_error <= atol)) & (trial.iter_num <= max_backtracking_steps)

    def try_step(trial):
      lr = jnp.where(trial.iter_num > 0, decrease_factor * trial.learning_rate, trial.learning_rate)
      candidate = tree_math.tree_add_scale(params, lr, updates)
      new_grad = trial.new_grad
      if store_grad:
        # linearize gives the value now and the gradient (its transpose)
        # later, only for the step that ends the search.
        new_value, jvp = jax.linearize(loss, candidate)
        err = decrease_error_at(lr, slope, value, new_value)
        new_grad = jax.lax.cond(
            (err <= atol) | (trial.iter_num == max_backtracking_steps),
            lambda p: jax.linear_transpose(jvp, p)(1.0)[0],
            lambda *_: new_grad,
            candidate,
        )
      else:
        new_value = loss(candidate)
        err = decrease_error_at(lr, slope, value, new_value)
      out = _Trial(lr, new_value, new_grad, err, trial.iter_num + 1)
      return tree_lib.tree_cast_like(out, trial)

    first = _Trial(
        learning_rate=jnp.minimum(increase_factor * state.learning_rate, max_learning_rate),
        new_value=value,
        new_grad=tree_lib.tree_zeros_like(params),
        decrease_error=jnp.array(jnp.inf),
        iter_num=0,
    )
    last = jax.lax.while_loop(keep_going, try_step, first)
    # Inf left means every tried loss was NaN/Inf: do not step there.
    lr = jnp.where(jnp.isinf(last.decrease_error), 0.0, last.learning_rate)
    if verbose:
      common.cond_print(
          last.decrease_error > atol,
          "INFO: scale_by_backtracking_linesearch found no step with sufficient decrease.\n"
          "Value at current params: {value}\nSlope along the update: {slope}\n"
          "Last step tried: {stepsize}\nDecrease error: {decrease_error}",
          value=value, slope=slope, stepsize=last.learning_rate, decrease_error=last.decrease_error,
      )
      common.cond_print(jnp.isinf(last.decrease_error), "Every tried value was NaN or Inf: using a step of 0.")
    new_state = ScaleByBacktrackingLinesearchState(
        learning_rate=lr,
        value=last.new_value,
        grad=last.new_grad if store_grad else None,
        info=BacktrackingLinesearchInfo(num_linesearch_steps=last.iter_num, decrease_error=last.decrease_error),
    )
    return tree_math.tree_scale(lr, updates), tree_lib.tree_cast_like(new_state, state)

  return base.GradientTransformationExtraArgs(init_fn, update_fn)
