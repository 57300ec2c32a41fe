r"""Zoom line search: a step satisfying the strong Wolfe conditions.

The step ``eta`` along ``u`` must both decrease the loss enough and flatten
the slope along ``u`` enough,

.. math::
   f(w + \eta u) \le f(w) + c_1 \eta \langle u, \nabla f(w)\rangle, \qquad
   |\langle u, \nabla f(w + \eta u)\rangle| \le c_2 |\langle u, \nabla f(w)\rangle| ,

found in two phases (Nocedal & Wright, *Numerical Optimization*, 1999,
algorithms 3.5 and 3.6): grow ``eta`` until an interval must contain such a
step, then shrink that interval by cubic, quadratic or bisection steps.
The curvature condition is what keeps L-BFGS's curvature pairs positive,
``<dw, dg> > 0``, so it is the line search :func:`lbfgs` uses by default.
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
    "FLAG_CURVATURE_COND_NOT_SATISFIED",
    "FLAG_INTERVAL_NOT_FOUND",
    "FLAG_INTERVAL_TOO_SMALL",
    "FLAG_NOT_A_DESCENT_DIRECTION",
    "FLAG_NO_STEPSIZE_FOUND",
    "ScaleByZoomLinesearchState",
    "ZoomLinesearchInfo",
    "scale_by_zoom_linesearch",
]

# Printed with verbose=True when a search fails. optax's exact sentences (its
# tests, and users' log filters, look for them), under optax's names.
FLAG_INTERVAL_NOT_FOUND = (
    "No interval satisfying curvature condition. "
    "Consider increasing maximal possible stepsize of the linesearch."
)
FLAG_INTERVAL_TOO_SMALL = "Length of searched interval has been reduced below threshold."
FLAG_CURVATURE_COND_NOT_SATISFIED = (
    "Returning stepsize with sufficient decrease but curvature condition not satisfied."
)
FLAG_NO_STEPSIZE_FOUND = "Linesearch failed, no stepsize satisfying sufficient decrease found."
FLAG_NOT_A_DESCENT_DIRECTION = (
    "The linesearch failed because the provided direction is not a descent direction. "
)


class ZoomLinesearchInfo(NamedTuple):
  """What the last search did, for debugging.

  A positive ``curvature_error`` alone is mild (``max_learning_rate`` may be
  too small); a positive ``decrease_error`` means the loss may not decrease.
  """

  num_linesearch_steps: jax.Array  # int: loss-and-gradient evaluations
  decrease_error: jax.Array  # float: >= 0, 0 when sufficient decrease holds
  curvature_error: jax.Array  # float: >= 0, 0 when small curvature holds


class ScaleByZoomLinesearchState(NamedTuple):
  """State of :func:`scale_by_zoom_linesearch`.

  ``value`` and ``grad`` are the loss and gradient at the accepted step,
  i.e. at the next params (read back by :func:`value_and_grad_from_state`).
  """

  learning_rate: jax.Array  # the accepted step
  value: jax.Array
  grad: base.Updates
  info: ZoomLinesearchInfo


class _Search(NamedTuple):
  """The carry of the search loop.

  ``low``/``high`` bracket a good step with ``value_low <= value_high``
  (``low`` may be the larger of the two); ``cubic_ref`` is the third point
  of the cubic fit; ``safe_*`` is the best step seen with sufficient
  decrease, returned when the curvature condition cannot be met.
  """

  count: jax.Array  # type: ignore[assignment]  # int: loss evaluations so far
  params: base.Params
  updates: base.Updates
  stepsize_guess: jax.Array
  stepsize: jax.Array
  value: jax.Array
  grad: base.Updates
  slope: jax.Array
  value_init: jax.Array
  slope_init: jax.Array
  decrease_error: jax.Array
  curvature_error: jax.Array
  error: jax.Array
  interval_found: jax.Array
  done: jax.Array
  failed: jax.Array
  low: jax.Array
  value_low: jax.Array
  slope_low: jax.Array
  high: jax.Array
  value_high: jax.Array
  slope_high: jax.Array
  cubic_ref: jax.Array
  value_cubic_ref: jax.Array
  safe_stepsize: jax.Array
  safe_value: jax.Array
  safe_grad: base.Updates


def _cubic_minimizer(a, fa, fpa, b, fb, c, fc):
  """Critical point of the cubic through ``(a, fa)``, ``(b, fb)``, ``(c, fc)`` with slope ``fpa`` at ``a``.

  NaN when the cubic has none (a negative radical); the caller then falls back.
  """
  db, dc = b - a, c - a
  denom = (db * dc) ** 2 * (db - dc)
  basis = jnp.array([[dc**2, -(db**2)], [-(dc**3), db**3]])
  rhs = jnp.array([fb - fa - fpa * db, fc - fa - fpa * dc])
  coef_a, coef_b = jnp.dot(basis, rhs, precision=jax.lax.Precision.HIGHEST) / denom
  radical = coef_b * coef_b - 3.0 * coef_a * fpa
  return a + (-coef_b + jnp.sqrt(radical)) / (3.0 * coef_a)


def _quadratic_minimizer(a, fa, fpa, b, fb):
  """Critical point of the parabola through ``(a, fa)``, ``(b, fb)`` with slope ``fpa`` at ``a``."""
  db = b - a
  curv = (fb - fa - fpa * db) / (db**2)
  return a - fpa / (2.0 * curv)


def _violation(err):
  """How far a test fails, ``max(err, 0)``; a NaN counts as failing by Inf."""
  err = jnp.maximum(err, 0.0)
  return jnp.where(jnp.isnan(err), jnp.inf, err)


def _check_args(max_linesearch_steps, max_learning_rate, tol, increase_factor, slope_rtol, curv_rtol,
                approx_dec_rtol, stepsize_precision, initial_guess_strategy, verbose) -> None:
  validation.check_int("max_linesearch_steps", max_linesearch_steps, minimum=1)
  if max_learning_rate is not None:
    validation.check_that("max_learning_rate", max_learning_rate, lambda v: v > 0, "a number > 0 or None")
  validation.check_non_negative("tol", tol)
  validation.check_that("increase_factor", increase_factor, lambda v: (v > 1) & (v < jnp.inf),
                        "a finite number > 1")
  validation.check_unit_interval("slope_rtol", slope_rtol)
  # inf switches the curvature test off (an Armijo search by interpolation).
  validation.check_that("curv_rtol", curv_rtol, lambda v: v >= 0, "a number >= 0 (inf allowed)")
  if approx_dec_rtol is not None:
    validation.check_non_negative("approx_dec_rtol", approx_dec_rtol)
  validation.check_non_negative("stepsize_precision", stepsize_precision)
  if initial_guess_strategy not in ("one", "keep"):
    raise ValueError(f"`initial_guess_strategy` must be 'one' or 'keep'; got {initial_guess_strategy!r}")
  validation.check_flags(verbose=verbose)


def scale_by_zoom_linesearch(
    max_linesearch_steps: int,
    max_learning_rate: Optional[jax.typing.ArrayLike] = None,
    tol: jax.typing.ArrayLike = 0.0,
    increase_factor: jax.typing.ArrayLike = 2.0,
    slope_rtol: jax.typing.ArrayLike = 1e-4,
    curv_rtol: jax.typing.ArrayLike = 0.9,
    approx_dec_rtol: Optional[jax.typing.ArrayLike] = 1e-6,
    stepsize_precision: jax.typing.ArrayLike = 1e-5,
    initial_guess_strategy: str = "keep",
    verbose: bool = False,
) -> base.GradientTransformationExtraArgs:
  r"""Scales the update ``u`` by a step meeting the strong Wolfe conditions.

  .. math::
     f(w + \eta u) \le f(w) + c_1 \eta \langle u, \nabla f(w)\rangle + \epsilon, \qquad
     |\langle u, \nabla f(w + \eta u)\rangle| \le c_2 |\langle u, \nabla f(w)\rangle| + \epsilon,
     \qquad u \leftarrow \eta\, u

  Nocedal & Wright, *Numerical Optimization*, 1999, algorithms 3.5 (grow
  the step, ``eta <- increase_factor * eta``, until an interval is
  bracketed) and 3.6 (zoom into it by cubic or quadratic interpolation, or
  bisection). Near a minimum, where ``f`` differences drown in rounding,
  the decrease test switches to Hager & Zhang's approximate form
  ``<u, grad f(w + eta u)> <= (2 c_1 - 1) <u, grad f(w)>`` once
  ``f(w + eta u) <= f(w) + c_3 |f(w)|`` (Hager & Zhang, "Algorithm 851:
  CG_DESCENT", ACM TOMS 2006). If no step passes, the best one with
  sufficient decrease is taken (or the last tried). The strong Wolfe step
  keeps :func:`scale_by_lbfgs`'s curvature pairs positive (notes 002's
  second-order family). Same as ``optax.scale_by_zoom_linesearch``.

  ``update(updates, state, params, *, value, grad, value_fn, **extra)``
  needs the loss and gradient at ``params`` and ``value_fn(params,
  **extra)``, differentiable; every other keyword must be an argument of
  ``value_fn``, or the call raises ``TypeError`` naming it.

  Args:
    max_linesearch_steps: most loss-and-gradient evaluations, an integer ``>= 1``.
    max_learning_rate: cap on ``eta`` (> 0), or ``None`` (default) for none.
    tol: ``epsilon >= 0`` (default 0.0).
    increase_factor: growth of ``eta`` while bracketing, ``> 1`` (default 2.0).
    slope_rtol: ``c_1`` in ``[0, 1)`` (default 1e-4).
    curv_rtol: ``c_2 >= 0`` (default 0.9); ``inf`` drops the curvature test.
    approx_dec_rtol: ``c_3 >= 0`` (default 1e-6), or ``None`` for Armijo only.
    stepsize_precision: stop zooming once the interval is shorter than this
      and a step with sufficient decrease is known (default 1e-5).
    initial_guess_strategy: first step tried: ``"keep"`` (default) the last
      accepted step, suited to SGD; ``"one"``, suited to (quasi-)Newton.
    verbose: print a diagnosis when a search fails (default ``False``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> fn = lambda w: jnp.sum(w ** 2)
    >>> tx = jn.chain(jn.sgd(1.0), jn.scale_by_zoom_linesearch(15))
    >>> params = jnp.array([1.0, 2.0, 3.0])
    >>> state = tx.init(params)
    >>> value_and_grad = jn.value_and_grad_from_state(fn)
    >>> value, grad = value_and_grad(params, state=state)
    >>> updates, state = tx.update(grad, state, params, value=value, grad=grad, value_fn=fn)
    >>> jn.apply_updates(params, updates), state[-1].learning_rate  # the exact minimizer along -grad
    (Array([0., 0., 0.], dtype=float32), Array(0.5, dtype=float32))
  """
  _check_args(max_linesearch_steps, max_learning_rate, tol, increase_factor, slope_rtol, curv_rtol,
              approx_dec_rtol, stepsize_precision, initial_guess_strategy, verbose)

  def on_line(value_and_grad_fn, fn_kwargs, params, stepsize, updates):
    """Loss, gradient and slope along ``updates`` at ``params + stepsize * updates``."""
    step = tree_math.tree_add_scale(params, stepsize, updates)
    value, grad = value_and_grad_fn(step, **fn_kwargs)
    slope = common.tree_real_vdot(jax.tree.map(jnp.conj, grad), updates)
    return value, grad, slope

  def errors(stepsize, value, slope, value_init, slope_init):
    """``(decrease_error, curvature_error)``, each >= 0 and Inf for NaN."""
    dec = value - value_init - slope_rtol * stepsize * slope_init  # Armijo, N&W (3.7a)
    if approx_dec_rtol is not None:
      # Hager & Zhang (23): resolves decreases below sqrt(machine eps), taken
      # only where the loss is already within c_3 |f(w)| of the start.
      approx = slope - (2 * slope_rtol - 1.0) * slope_init
      above = value - value_init - approx_dec_rtol * jnp.abs(value_init)
      dec = jnp.minimum(jnp.maximum(approx, above), dec)
    curv = jnp.abs(slope) - curv_rtol * jnp.abs(slope_init)  # N&W (3.7b)
    return _violation(dec), _violation(curv)

  def start(updates, params, value, grad, prev_stepsize):
    guess = jnp.asarray(1.0) if initial_guess_strategy == "one" else prev_stepsize
    slope = common.tree_real_vdot(updates, grad)
    dtype = common.value_dtype(params, "scale_by_zoom_linesearch")
    zero, inf = jnp.asarray(0.0), jnp.asarray(jnp.inf)
    return _Search(
        count=jnp.asarray(0), params=params, updates=updates, stepsize_guess=guess,
        stepsize=jnp.asarray(0.0, dtype=dtype), value=jnp.array(value, dtype=dtype),
        grad=grad, slope=slope, value_init=value, slope_init=slope,
        decrease_error=inf, curvature_error=inf, error=inf,
        interval_found=jnp.asarray(False), done=jnp.asarray(False), failed=jnp.asarray(False),
        low=zero, value_low=value, slope_low=slope, high=zero, value_high=value, slope_high=slope,
        cubic_ref=zero, value_cubic_ref=value, safe_stepsize=zero, safe_value=value, safe_grad=grad,
    )

  def bracket(s: _Search, value_and_grad_fn, fn_kwargs) -> _Search:
    """Algorithm 3.5: try a larger step until an interval holds a good one."""
    new = jnp.where(s.count == 0, s.stepsize_guess, increase_factor * s.stepsize)
    if max_learning_rate is not None:
      at_max = new >= max_learning_rate
      new = jnp.minimum(new, max_learning_rate)
    else:
      at_max = jnp.asarray(False)
    value, grad, slope = on_line(value_and_grad_fn, fn_kwargs, s.params, new, s.updates)
    dec, curv = errors(new, value, slope, s.value_init, s.slope_init)
    err = jnp.maximum(dec, curv)
    safe = tree_math.tree_where(dec <= tol, [new, value, grad], [s.safe_stepsize, s.safe_value, s.safe_grad])
    # A loss too high: a good step lies below `new`. A slope turned upward: one lies between the
    # previous step and `new`, which becomes the `low` end (its loss is the lower).
    new_is_high = (dec > 0.0) | ((value >= s.value) & (s.count > 0))
    new_is_low = (slope >= 0.0) & (~new_is_high)
    prev, cand = [s.stepsize, s.value, s.slope], [new, value, slope]
    low, value_low, slope_low, high, value_high, slope_high = tree_math.tree_where(
        new_is_low, cand + prev, prev + cand
    )
    interval_found = new_is_high | new_is_low | (err <= tol)
    # At the cap with no bracket the curvature test cannot be met: take the cap.
    done = (err <= tol) | (at_max & ~interval_found)
    if verbose:
      common.cond_print(
          at_max & ~interval_found,
          "INFO: scale_by_zoom_linesearch stopped at max_learning_rate = {stepsize} "
          "(decrease error {dec}, curvature error {curv}). " + FLAG_INTERVAL_NOT_FOUND + "\n"
          + FLAG_CURVATURE_COND_NOT_SATISFIED,
          stepsize=new, dec=dec, curv=curv,
      )
    failed = (s.count + 1 >= max_linesearch_steps) & (~done)
    out = s._replace(
        count=tree_lib.safe_increment(s.count), stepsize=new, value=value, grad=grad, slope=slope,
        decrease_error=dec, curvature_error=curv, error=err, interval_found=jnp.asarray(interval_found),
        done=jnp.asarray(done), failed=jnp.asarray(failed), low=low, value_low=value_low,
        slope_low=slope_low, high=high, value_high=value_high, slope_high=slope_high, cubic_ref=low,
        value_cubic_ref=value_low, safe_stepsize=safe[0], safe_value=safe[1], safe_grad=safe[2],
    )
    return tree_lib.tree_cast_like(out, s)

  def zoom(s: _Search, value_and_grad_fn, fn_kwargs) -> _Search:
    """Algorithm 3.6: try a point inside ``[low, high]`` and keep the half holding a good step."""
    delta = jnp.abs(s.high - s.low)
    left, right = jnp.minimum(s.high, s.low), jnp.maximum(s.high, s.low)
    # Interpolants too close to an end are refused (N&W's safeguards).
    cubic_margin, quad_margin = 0.2 * delta, 0.1 * delta
    too_small = delta <= stepsize_precision
    cubic = _cubic_minimizer(s.low, s.value_low, s.slope_low, s.high, s.value_high, s.cubic_ref, s.value_cubic_ref)
    use_cubic = (cubic > left + cubic_margin) & (cubic < right - cubic_margin)
    quad = _quadratic_minimizer(s.low, s.value_low, s.slope_low, s.high, s.value_high)
    use_quad = (~use_cubic) & ((quad > left + quad_margin) & (quad < right - quad_margin))
    use_bisection = (~use_cubic) & (~use_quad)
    middle = jnp.where(use_cubic, cubic, s.cubic_ref)
    middle = jnp.where(use_quad, quad, middle)
    middle = jnp.where(use_bisection, (s.low + s.high) / 2.0, middle)

    value, grad, slope = on_line(value_and_grad_fn, fn_kwargs, s.params, middle, s.updates)
    dec, curv = errors(middle, value, slope, s.value_init, s.slope_init)
    err = jnp.maximum(dec, curv)
    # The safeguard keeps the lowest loss among the steps with sufficient decrease.
    better = (dec <= tol) & (value < s.safe_value)
    safe = tree_math.tree_where(better, [middle, value, grad], [s.safe_stepsize, s.safe_value, s.safe_grad])
    done = err <= tol

    middle_is_high = (dec > 0.0) | (value >= s.value_low)
    low_is_high = (slope * (s.high - s.low) >= 0.0) & (~middle_is_high)
    middle_is_low = ~middle_is_high
    mid, lo, hi = [middle, value, slope], [s.low, s.value_low, s.slope_low], [s.high, s.value_high, s.slope_high]
    high, value_high, slope_high = tree_math.tree_where(
        low_is_high, lo, tree_math.tree_where(middle_is_high, mid, hi)
    )
    low, value_low, slope_low = tree_math.tree_where(middle_is_low, mid, lo)
    # The end point just replaced becomes the cubic's third point.
    cubic_ref, value_cubic_ref = tree_math.tree_where(
        middle_is_high | low_is_high, [s.high, s.value_high], [s.low, s.value_low]
    )
    # Stop on a tiny interval only once some step decreases the loss enough:
    # very steep losses need very small steps.
    out_of_steps = jnp.asarray((s.count + 1) >= max_linesearch_steps)
    failed = (out_of_steps | (too_small & (safe[0] > 0.0))) & ~done
    out = s._replace(
        count=tree_lib.safe_increment(s.count), stepsize=middle, value=value, grad=grad, slope=slope,
        decrease_error=dec, curvature_error=curv, error=err, done=done, failed=failed,
        low=low, value_low=value_low, slope_low=slope_low, high=high, value_high=value_high,
        slope_high=slope_high, cubic_ref=cubic_ref, value_cubic_ref=value_cubic_ref,
        safe_stepsize=safe[0], safe_value=safe[1], safe_grad=safe[2],
    )
    return tree_lib.tree_cast_like(out, s)

  def fall_back(s: _Search) -> _Search:
    """A failed search takes its safeguard step, if any (or if every value was NaN/Inf)."""
    outside_domain = jnp.isinf(s.decrease_error)
    stepsize, value, grad = tree_math.tree_where(
        (s.safe_stepsize > 0.0) | outside_domain,
        [s.safe_stepsize, s.safe_value, s.safe_grad],
        [s.stepsize, s.value, s.grad],
    )
    if verbose:
      _diagnose(s, stepsize_precision)
    return tree_lib.tree_cast_like(s._replace(stepsize=stepsize, grad=grad, value=value), s)

  def step(s: _Search, *, value_and_grad_fn, fn_kwargs) -> _Search:
    kw = dict(value_and_grad_fn=value_and_grad_fn, fn_kwargs=fn_kwargs)
    new = jax.lax.cond(s.interval_found, functools.partial(zoom, **kw), functools.partial(bracket, **kw), s)
    new = jax.lax.cond(new.failed, fall_back, lambda x: x, new)
    return tree_lib.tree_cast_like(new, s)

  def init_fn(params):
    validation.check_float_params(params)
    dtype = common.value_dtype(params, "scale_by_zoom_linesearch")
    return ScaleByZoomLinesearchState(
        learning_rate=jnp.asarray(1.0, dtype=dtype),
        value=jnp.asarray(jnp.inf, dtype=dtype),
        grad=tree_lib.tree_zeros_like(params),
        info=ZoomLinesearchInfo(
            num_linesearch_steps=jnp.asarray(0),
            decrease_error=jnp.asarray(jnp.inf),
            curvature_error=jnp.asarray(jnp.inf),
        ),
    )

  def update_fn(updates, state, params=None, *, value=None, grad=None, value_fn=None, **extra_args):
    common.require_loss("scale_by_zoom_linesearch", value, grad, value_fn)
    if params is None:
      raise ValueError(base.NO_PARAMS_MSG + " The line search evaluates the loss along the step from them.")
    combine.check_updates_match_params(updates, params)
    fn_kwargs = common.split_value_fn_kwargs(value_fn, extra_args, "scale_by_zoom_linesearch")
    first = start(updates, params, value, grad, state.learning_rate)
    last = jax.lax.while_loop(
        lambda s: ~(s.done | s.failed),
        functools.partial(step, value_and_grad_fn=jax.value_and_grad(value_fn), fn_kwargs=fn_kwargs),
        first,
    )
    new_state = ScaleByZoomLinesearchState(
        learning_rate=last.stepsize,
        value=last.value,
        grad=last.grad,
        info=ZoomLinesearchInfo(
            num_linesearch_steps=last.count,
            decrease_error=last.decrease_error,
            curvature_error=last.curvature_error,
        ),
    )
    return tree_math.tree_scale(last.stepsize, updates), tree_lib.tree_cast_like(new_state, state)

  return base.GradientTransformationExtraArgs(init_fn, update_fn)


def _diagnose(s: _Search, stepsize_precision) -> None:
  """Prints why a search failed (``verbose=True``)."""
  jax.debug.print(
      "INFO: scale_by_zoom_linesearch:\nValue at current params: {value_init}\n"
      "Slope along the update: {slope_init}\nStep reached: {stepsize}\n"
      "Decrease error: {dec}\nCurvature error: {curv}",
      value_init=s.value_init, slope_init=s.slope_init, stepsize=s.stepsize,
      dec=s.decrease_error, curv=s.curvature_error, ordered=True,
  )
  length = jnp.abs(s.low - s.high)
  common.cond_print(length <= stepsize_precision, FLAG_INTERVAL_TOO_SMALL + " Length: {length}.", length=length)

  def no_step(s):
    descent = s.slope_init < 0.0
    jax.debug.print(FLAG_NO_STEPSIZE_FOUND, ordered=True)
    common.cond_print(
        ~descent, FLAG_NOT_A_DESCENT_DIRECTION + "Its slope at step 0 is {slope} >= 0.", slope=s.slope_init
    )
    common.cond_print(descent, "Consider a larger max_linesearch_steps.")
    eps = jnp.finfo(jnp.float32).eps
    common.cond_print(
        descent & (s.stepsize < eps),
        "The step {stepsize} is below float32's eps: consider jax_enable_x64.", stepsize=s.stepsize,
    )
    common.cond_print(
        descent & (jnp.abs(s.slope_init) > 1e16),
        "The slope at step 0 is huge (|slope| = {slope}): rescale the problem or start elsewhere.",
        slope=jnp.abs(s.slope_init),
    )
    common.cond_print(
        jnp.isinf(s.decrease_error),
        "Every tried step gave a NaN or Inf loss: the step is 0 and the optimizer is stuck.",
    )
    common.cond_print(
        ~jnp.isinf(s.decrease_error), "Taking a step without sufficient decrease: the loss may rise.",
    )

  jax.lax.cond(
      s.safe_stepsize > 0.0,
      lambda s: jax.debug.print(
          FLAG_CURVATURE_COND_NOT_SATISFIED + " Step with sufficient decrease: {safe}.",
          safe=s.safe_stepsize, ordered=True,
      ),
      no_step,
      s,
  )
