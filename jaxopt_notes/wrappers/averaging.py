"""Weight averaging: an EMA or an equal (Polyak / SWA) average of the params in the optimizer state.

The optimizer trains the params as usual; the wrapper keeps, next to the inner
optimizer's state, a running average of the params after each update, read
back with :func:`averaged_params` for evaluation. Keras has it as
``use_ema=True``, torch as ``torch.optim.swa_utils.AveragedModel``; optax has
none (``optax.ema`` averages the updates, not the params).

* :func:`ema_params`  an exponential moving average, torch's / Keras's form
  (the first average is a copy) or Adam's debiased one;
* :func:`swa_params`  the equal average of stochastic weight averaging;
* :func:`ema_warmup_decay`, :func:`ema_power_warmup_decay`  the decay
  warm-ups of TensorFlow / timm and of diffusers' ``EMAModel``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, tree_access, validation
from jaxopt_notes.core import tree as tree_lib

__all__ = [
    "ParamsAverageState",
    "averaged_params",
    "ema_params",
    "ema_power_warmup_decay",
    "ema_warmup_decay",
    "swa_params",
]

Decay = Union[float, jax.Array, Callable[[jax.Array], jax.typing.ArrayLike]]
# (average leaf, new params leaf in the average's dtype, n_averaged) -> new average leaf
_AverageFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]

# Compiled (and inlined into an enclosing jit) so that eager and jitted steps
# round ``decay**n`` alike, as tree.bias_correction does.
_debias_weight = jax.jit(tree_lib.bias_correction_factor, inline=True)


class ParamsAverageState(NamedTuple):
  """State of :func:`ema_params` and :func:`swa_params`.

  Attributes:
    inner_state: the wrapped optimizer's state.
    average: the running average of the params, shaped and placed like them,
      in ``average_dtype``; the initial params until the first average.
    weight: the scalar the average is divided by when read: ``1 - decay^n``
      in the debiased EMA, 1 otherwise.
    n_averaged: how many params have been folded into ``average`` (int32,
      torch's ``n_averaged``).
    n_steps: inner updates seen so far (int32), which ``start`` and
      ``every`` count.
  """

  inner_state: base.OptState
  average: base.Params
  weight: jax.Array
  n_averaged: jax.Array
  n_steps: jax.Array


def _lerp(a: jax.Array, b: jax.Array, w: Union[float, jax.Array]) -> jax.Array:
  # torch.lerp's two branches (ATen's Lerp.h), so float64 agrees with
  # AveragedModel's EMA to the last bits, also for a decay below 1/2.
  return jnp.where(w < 0.5, a + w * (b - a), b - (b - a) * (1 - w))


def _as_stored(p: jax.Array, dtype: Any) -> jax.Array:
  """``p`` in the average's ``dtype``, rounded as the params are stored."""
  wider = p.astype(dtype)
  if not (jnp.issubdtype(p.dtype, jnp.floating) and jnp.finfo(p.dtype).bits < jnp.finfo(dtype).bits):
    return wider
  # Under jit XLA may keep `params + updates` in float32 across the cast to
  # bfloat16 and back (excess precision), which would average values the
  # params never held; the rounding is redone where XLA cannot drop it.
  info = jnp.finfo(p.dtype)
  return jax.lax.reduce_precision(wider, info.nexp, info.nmant)


def _wrap_average(
    inner: base.GradientTransformation,
    average_fn: _AverageFn,
    *,
    start: int,
    every: Any,
    average_dtype: Any,
    copy_first: bool,
    debias_decay: Optional[jax.typing.ArrayLike] = None,
) -> base.GradientTransformationExtraArgs:
  """The wrapper both public functions share; ``average_fn`` is the one rule that differs."""
  inner = base.with_extra_args_support(inner)

  def init_fn(params):
    tree_lib.check_params_tree(params)
    # A copy, not the params' own buffers: a step that donates the params
    # would otherwise donate the average too.
    average = tree_lib.tree_cast(jax.tree.map(jnp.copy, params), average_dtype)
    return ParamsAverageState(
        inner_state=inner.init(params),
        average=average,
        weight=jnp.ones([], jnp.result_type(float)),
        n_averaged=jnp.zeros([], jnp.int32),
        n_steps=jnp.zeros([], jnp.int32),
    )

  def update_fn(updates, state, params=None, **extra_args):
    if params is None:
      raise ValueError(
          "`params`: weight averaging averages the params after each update, so "
          "call `update(updates, state, params)` with them, not `params=None`."
      )
    combine.check_updates_match_params(updates, params)
    updates, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
    new_params = tree_lib.apply_updates(params, updates)
    k = state.n_steps + 1  # this update's number, counted from 1
    due = jnp.logical_and(k > start, (k - start) % every == 0)
    n = state.n_averaged

    def fold(a, p):
      p = _as_stored(p, a.dtype)
      new = average_fn(a, p, n)
      return jnp.where(n == 0, p, new) if copy_first else new

    folded = tree_lib.tree_map_checked(fold, state.average, new_params, names=("state.average", "params"))
    n_new = tree_lib.safe_increment(n)
    if debias_decay is None:
      weight = state.weight
    else:
      weight = jnp.where(due, _debias_weight(debias_decay, n_new).astype(state.weight.dtype), state.weight)
    return updates, ParamsAverageState(
        inner_state=inner_state,
        average=tree_lib.select_tree(due, folded, state.average),
        weight=weight,
        n_averaged=jnp.where(due, n_new, n),
        n_steps=tree_lib.safe_increment(state.n_steps),
    )

  return base.GradientTransformationExtraArgs(init_fn, update_fn)


def _check_schedule_args(inner: Any, start: Any, every: Any, average_dtype: Any) -> tuple[Any, int, Any, Any]:
  inner = base.as_transform(inner, "inner")
  start = validation.check_int("start", start, minimum=0)
  validation.check_positive_int("every", every)  # as apply_every's `k`
  average_dtype = validation.check_dtype("average_dtype", average_dtype)
  if average_dtype is not None and not jnp.issubdtype(average_dtype, jnp.inexact):
    raise TypeError(f"`average_dtype` must be a floating (or complex) dtype or None; got {average_dtype!r}")
  return inner, start, every, average_dtype


def ema_params(
    inner: base.GradientTransformation,
    decay: Decay = 0.999,
    *,
    debias: bool = False,
    start: int = 0,
    every: int = 1,
    average_dtype: Optional[Any] = None,
) -> base.GradientTransformationExtraArgs:
  r"""Keeps an exponential moving average of the params after each update of ``inner``.

  With :math:`\theta_k` the params after the ``k``-th averaged update and
  :math:`\beta` the decay, the default (torch's ``AveragedModel`` with
  ``get_ema_multi_avg_fn``, Keras's ``use_ema``) starts with a copy:

  .. math::
     \bar\theta_1 = \theta_1, \qquad
     \bar\theta_{k+1} = \beta\,\bar\theta_k + (1 - \beta)\,\theta_{k+1}

  and ``debias=True`` starts from zero and divides by the missing weight, as
  Adam does its moments (``optax.ema(decay, debias=True)`` of the params):

  .. math::
     m_0 = 0, \quad m_k = \beta\, m_{k-1} + (1 - \beta)\,\theta_k, \qquad
     \bar\theta_k = m_k / (1 - \beta^k)

  ``decay`` may be a schedule ``n -> beta`` of ``n``, the number of params
  already averaged (0 for the first average, which the default form copies
  whatever ``beta`` is): :func:`ema_warmup_decay` and
  :func:`ema_power_warmup_decay` are the warm-ups in use. Averaging starts
  after ``start`` updates and then takes every ``every``-th update's params
  (update ``k`` counts when ``k > start`` and ``(k - start) % every == 0``).
  The updates returned are ``inner``'s, unchanged; read the average with
  :func:`averaged_params`. Until the first average it holds the initial
  params (torch's ``AveragedModel`` copies the model when built). The EMA is
  formed as torch's ``lerp`` (:math:`\bar\theta + (1-\beta)(\theta - \bar\theta)`),
  the debiased form as ``optax.ema``'s arithmetic.

  Checked in float64 against ``torch.optim.swa_utils.AveragedModel`` (with
  ``get_ema_multi_avg_fn``, and with an ``avg_fn`` warm-up) around torch's SGD
  and Adam over 50 steps, to ``1e-12`` relative (measured: 2e-15, the inner
  optimizers' own drift from torch's), and the debiased form against
  ``optax.ema(decay, debias=True)`` fed the params, to ``1e-13`` (measured: an
  ulp); see tests/wrappers/test_averaging.py. Keras's ``ema_overwrite_frequency``
  (writing the average into the params) is left to the caller:
  ``params = averaged_params(state)``. References: Polyak & Juditsky, 1992,
  "Acceleration of stochastic approximation by averaging" (SIAM J. Control
  Optim. 30(4)); Keras ``Optimizer(use_ema=True, ema_momentum=0.99)``;
  ``torch.optim.swa_utils``.

  Args:
    inner: the optimizer whose params are averaged.
    decay: :math:`\beta` in ``[0, 1]`` (``[0, 1)`` with ``debias``), or a
      schedule ``n_averaged -> beta`` (default 0.999, torch's).
    debias: the zero-start, bias-corrected form (default ``False``); needs a
      constant ``decay`` (a warm-up already removes the start's bias).
    start: updates before averaging begins (default 0).
    every: average every ``every``-th update from there (default 1).
    average_dtype: dtype of the average (default ``None``: each param's);
      ``jnp.float32`` keeps a float32 average of bfloat16 params.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.ema_params(jn.sgd(1.0), decay=0.5)
    >>> params = jnp.array([0.0])
    >>> state = tx.init(params)
    >>> for g in (-2.0, -2.0):  # params 2 then 4: the average copies 2, then (2 + 4) / 2
    ...   updates, state = tx.update(jnp.array([g]), state, params)
    ...   params = jn.apply_updates(params, updates)
    >>> print(params, jn.averaged_params(state))
    [4.] [3.]
  """
  inner, start, every, average_dtype = _check_schedule_args(inner, start, every, average_dtype)
  validation.check_flags(debias=debias)
  if callable(decay):
    if debias:
      raise ValueError(
          "`decay` must be a constant with `debias=True` (1 - decay^n is its bias); "
          "a warm-up schedule already removes the zero start's bias: use it with debias=False"
      )
  else:
    validation.check_unit_interval("decay", decay, closed_right=not debias)

  def beta(n):
    return decay(n) if callable(decay) else decay

  if debias:
    def average_fn(a, p, n):
      # The stored average is the initial params until the first average; the
      # debiased EMA starts from zero instead.
      return tree_lib.tree_update_moment(p, jnp.where(n == 0, jnp.zeros_like(a), a), decay, order=1)
  else:
    def average_fn(a, p, n):
      return _lerp(a, p, jnp.asarray(1 - jnp.asarray(beta(n)), a.dtype) if callable(decay) else 1 - decay)

  debias_decay = None if callable(decay) or not debias else decay
  return _wrap_average(
      inner, average_fn, start=start, every=every, average_dtype=average_dtype,
      copy_first=not debias, debias_decay=debias_decay,
  )


def swa_params(
    inner: base.GradientTransformation,
    *,
    start: int = 0,
    every: int = 1,
    average_dtype: Optional[Any] = None,
) -> base.GradientTransformationExtraArgs:
  r"""Keeps the equal (Polyak / SWA) average of the params after the updates of ``inner``.

  .. math::
     \bar\theta_1 = \theta_1, \qquad
     \bar\theta_{n+1} = \bar\theta_n + \frac{\theta_{n+1} - \bar\theta_n}{n + 1}

  so :math:`\bar\theta_n` is the mean of the ``n`` params averaged, in the
  running form (and arithmetic order) of torch's ``AveragedModel`` default.
  Stochastic weight averaging (Izmailov et al., 2018) averages from a
  ``start`` on, once per learning-rate cycle of ``every`` updates: update
  ``k`` is averaged when ``k > start`` and ``(k - start) % every == 0``.
  The updates returned are ``inner``'s, unchanged; read the average with
  :func:`averaged_params` (the initial params until the first average). In
  bfloat16 the ``1 / (n + 1)`` rounds badly after a few hundred averages: use
  ``average_dtype=jnp.float32`` there.

  Checked in float64 against ``torch.optim.swa_utils.AveragedModel`` (default
  ``avg_fn``, with ``start`` and ``every``) around torch's SGD over 50 steps,
  to ``1e-12`` relative (measured: 2e-15; tests/wrappers/test_averaging.py). References: Polyak &
  Juditsky, 1992, "Acceleration of stochastic approximation by averaging";
  Izmailov, Podoprikhin, Garipov, Vetrov & Wilson, 2018, "Averaging Weights
  Leads to Wider Optima and Better Generalization",
  https://arxiv.org/abs/1803.05407; ``torch.optim.swa_utils``.

  Args:
    inner: the optimizer whose params are averaged.
    start: updates before averaging begins (default 0).
    every: average every ``every``-th update from there (default 1).
    average_dtype: dtype of the average (default ``None``: each param's).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.swa_params(jn.sgd(1.0), start=1)
    >>> params = jnp.array([0.0])
    >>> state = tx.init(params)
    >>> for _ in range(4):  # params 1, 2, 3, 4; the first is before `start`
    ...   updates, state = tx.update(jnp.array([-1.0]), state, params)
    ...   params = jn.apply_updates(params, updates)
    >>> print(jn.averaged_params(state), int(state.n_averaged))  # (2 + 3 + 4) / 3
    [3.] 3
  """
  inner, start, every, average_dtype = _check_schedule_args(inner, start, every, average_dtype)

  def average_fn(a, p, n):
    return a + (p - a) / (n + 1).astype(a.dtype)

  return _wrap_average(inner, average_fn, start=start, every=every, average_dtype=average_dtype, copy_first=True)


def averaged_params(state: base.OptState) -> base.Params:
  r"""The averaged params held by the state of :func:`ema_params` or :func:`swa_params`.

  .. math:: \bar\theta = \text{average} / \text{weight}

  (the weight is ``1 - decay^n`` for the debiased EMA, 1 otherwise, so the
  other forms return the stored average as it is). ``state`` may be the
  wrapper's own state or any state holding it, e.g. that of a ``chain``,
  ``MultiSteps``, ``inject_hyperparams`` or ``partition`` (ours or optax's):
  it is found by type. Before the first average: the initial params. The
  result has the average's dtype (``average_dtype``).

  Raises:
    ValueError: naming ``state`` when it holds no such state, or more than
      one (pass the part of the state that holds the one you want).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.chain(jn.clip_by_global_norm(1.0), jn.ema_params(jn.sgd(0.1)))
    >>> state = tx.init({"w": jnp.ones(2)})
    >>> jn.averaged_params(state)["w"].shape  # before any update: the initial params
    (2,)
  """
  found = tree_access.tree_get_all_with_path(
      state, "ParamsAverageState", filtering=lambda _, v: isinstance(v, ParamsAverageState)
  )
  if len(found) != 1:
    what = "no" if not found else f"{len(found)}"
    raise ValueError(
        f"`state` must hold exactly one ParamsAverageState (the state of ema_params or "
        f"swa_params); it holds {what}"
        + ("" if not found else f", at {[jax.tree_util.keystr(p) for p, _ in found]}")
    )
  inner = found[0][1]
  return jax.tree.map(lambda a: a / inner.weight.astype(a.dtype), inner.average)


def _warmup(decay: float, min_decay: float, rise: Callable[[jax.Array], jax.Array]) -> Callable[[Any], jax.Array]:
  validation.check_unit_interval("decay", decay, closed_right=True)
  validation.check_unit_interval("min_decay", min_decay, closed_right=True)
  if validation.is_python_number(decay) and validation.is_python_number(min_decay) and min_decay > decay:
    raise ValueError(f"`min_decay` must be <= `decay` ({decay!r}); got {min_decay!r}")

  def schedule(n):
    t = jnp.asarray(n, jnp.result_type(float))
    # diffusers' order: the cap first, then the floor; no averaging weight
    # on the old average at the first update.
    return jnp.where(t <= 0, 0.0, jnp.maximum(jnp.minimum(rise(t), decay), min_decay))

  return schedule


def ema_warmup_decay(decay: float = 0.9999, *, min_decay: float = 0.0) -> Callable[[Any], jax.Array]:
  r"""The warm-up ``n -> min(decay, (1 + n) / (10 + n))`` of an EMA's decay, for :func:`ema_params`.

  .. math:: \beta(n) = \max\big(\beta_{\min},\ \min(\beta, \tfrac{1 + n}{10 + n})\big), \qquad \beta(0) = 0

  ``n`` is the number of params already averaged. The EMA then starts as a
  short average and lengthens to ``1 / (1 - decay)`` steps. TensorFlow's
  ``tf.train.ExponentialMovingAverage(decay, num_updates)`` and diffusers'
  ``EMAModel(use_ema_warmup=False)`` (before 0.20) use this rule; ``n`` here
  is diffusers' ``step = optimization_step - 1``. Implemented from that
  published formula; checked against ``AveragedModel(avg_fn=...)`` with it
  written in the test (float64, ``1e-12``).

  Args:
    decay: the cap (default 0.9999, diffusers').
    min_decay: the floor (default 0).

  Examples:
    >>> import jaxopt_notes as jn
    >>> schedule = jn.ema_warmup_decay(0.99)
    >>> [round(float(schedule(n)), 4) for n in (0, 1, 10, 10_000)]
    [0.0, 0.1818, 0.55, 0.99]
  """
  return _warmup(decay, min_decay, lambda t: (1 + t) / (10 + t))


def ema_power_warmup_decay(
    decay: float = 0.9999, *, inv_gamma: float = 1.0, power: float = 2 / 3, min_decay: float = 0.0
) -> Callable[[Any], jax.Array]:
  r"""diffusers' / timm's power warm-up ``n -> 1 - (1 + n / inv_gamma)^(-power)`` of an EMA's decay.

  .. math::
     \beta(n) = \max\big(\beta_{\min},\ \min(\beta,\ 1 - (1 + n/\gamma^{-1})^{-p})\big), \qquad \beta(0) = 0

  ``n`` is the number of params already averaged (diffusers' ``step =
  optimization_step - update_after_step - 1``). ``power = 2/3`` suits runs
  of about a million steps, ``3/4`` shorter ones (@crowsonkb's notes, cited by
  diffusers). Same rule and defaults as diffusers' ``EMAModel(use_ema_warmup=True)``
  and timm's ``ModelEmaV3(use_warmup=True)``, implemented from the published
  formula; checked against ``AveragedModel(avg_fn=...)`` with it written in the
  test (float64, ``1e-12``).

  Args:
    decay: the cap (default 0.9999).
    inv_gamma: :math:`\gamma^{-1} > 0` (default 1).
    power: :math:`p > 0` (default 2/3).
    min_decay: the floor (default 0).

  Examples:
    >>> import jaxopt_notes as jn
    >>> schedule = jn.ema_power_warmup_decay()
    >>> [round(float(schedule(n)), 4) for n in (0, 1, 1000)]
    [0.0, 0.37, 0.99]
  """
  validation.check_positive("inv_gamma", inv_gamma)
  validation.check_positive("power", power)
  return _warmup(decay, min_decay, lambda t: 1 - (1 + t / inv_gamma) ** -power)
