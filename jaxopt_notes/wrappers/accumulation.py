"""Gradient accumulation: one optimizer step per ``k`` minibatches.

Note 004 picks the minibatch size to fit in memory (64 to 512);
note 002 says larger batches give a gradient with standard error
``sigma / sqrt(n)`` and that second-order and large-batch methods want them.
:class:`MultiSteps` gets the large batch without the memory: it averages
(or sums) the gradients of ``k`` consecutive minibatches and lets the inner
optimizer step once on that average. For a loss that is a mean over examples
and equal-size minibatches, ``k`` accumulated minibatches give the gradient
of their concatenation, so the step equals one large-batch step.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, NamedTuple, Optional, Protocol, Union

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.core.tree import select_tree

__all__ = [
    "MultiSteps",
    "MultiStepsState",
    "ShouldSkipUpdateFunction",
    "skip_large_updates",
    "skip_not_finite",
]


class ShouldSkipUpdateFunction(Protocol):
  """``(updates, gradient_step, params) -> (should_skip, skip_state)``.

  ``should_skip`` is a bool scalar array; ``skip_state`` is any pytree, stored
  in ``MultiStepsState.skip_state`` for monitoring.
  """

  def __call__(
      self,
      updates: base.Updates,
      gradient_step: jax.typing.ArrayLike,
      params: Optional[base.Params],
  ) -> tuple[jax.typing.ArrayLike, Any]:
    ...


def skip_not_finite(
    updates: base.Updates,
    gradient_step: jax.typing.ArrayLike,
    params: Optional[base.Params],
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Skips a minibatch whose gradient holds a NaN or an Inf.

  Returns ``(should_skip, {"should_skip": ..., "num_not_finite": ...})``,
  where ``num_not_finite`` counts the non-finite entries (int32). Same as
  ``optax.skip_not_finite``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> skip, info = jn.skip_not_finite({"w": jnp.array([1.0, jnp.nan, jnp.inf])}, 0, None)
    >>> bool(skip), int(info["num_not_finite"])
    (True, 2)
  """
  del gradient_step, params
  counts = [jnp.sum(jnp.logical_not(jnp.isfinite(x))) for x in jax.tree.leaves(updates)]
  num_not_finite = jnp.sum(jnp.stack(counts)) if counts else jnp.zeros([], jnp.int32)
  should_skip = num_not_finite > 0
  return should_skip, {"should_skip": should_skip, "num_not_finite": num_not_finite}


def skip_large_updates(
    updates: base.Updates,
    gradient_step: jax.typing.ArrayLike,
    params: Optional[base.Params],
    max_squared_norm: jax.typing.ArrayLike,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  r"""Skips a minibatch whose gradient has :math:`\|g\|^2 \ge` ``max_squared_norm``.

  A NaN norm is skipped too. Use with ``functools.partial(skip_large_updates,
  max_squared_norm=...)``. Returns ``(should_skip, {"should_skip": ...,
  "norm_squared": ...})``. Same as ``optax.skip_large_updates``.

  Examples:
    >>> import functools
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> check = functools.partial(jn.skip_large_updates, max_squared_norm=10.0)
    >>> skip, info = check({"w": jnp.array([3.0, 4.0])}, 0, None)
    >>> bool(skip), float(info["norm_squared"])
    (True, 25.0)
  """
  del gradient_step, params
  squares = [jnp.sum(tree_lib.abs_sq(x)) for x in jax.tree.leaves(updates)]
  norm_sq = jnp.sum(jnp.stack(squares)) if squares else jnp.zeros([])
  # Written as `not (a < b)` so that a NaN norm is skipped.
  should_skip = jnp.logical_not(norm_sq < max_squared_norm)
  return should_skip, {"should_skip": should_skip, "norm_squared": norm_sq}


def _never_skip(updates, gradient_step, params):
  del updates, gradient_step, params
  return jnp.array(False, jnp.bool_), ()


class MultiStepsState(NamedTuple):
  """State of :class:`MultiSteps`.

  Attributes:
    mini_step: minibatches accumulated since the last inner step, in
      ``[0, k)``.
    gradient_step: inner steps taken so far.
    inner_opt_state: the wrapped optimizer's state.
    acc_grads: the running mean (or sum) of this cycle's gradients.
    skip_state: what ``should_skip_update_fn`` returned last (``()`` without
      one).
  """

  mini_step: jax.Array  # int32 scalar
  gradient_step: jax.Array  # int32 scalar
  inner_opt_state: base.OptState
  acc_grads: base.Updates
  skip_state: Any = ()


class MultiSteps:
  r"""Accumulates ``k`` minibatch gradients, then steps the inner optimizer once.

  With ``k = every_k_schedule(gradient_step)`` and ``j`` the position in the
  current cycle (``mini_step``):

  .. math::
     a_j = a_{j-1} + \frac{g_j - a_{j-1}}{j + 1} \ (\text{mean}), \quad
     a_j = a_{j-1} + g_j \ (\text{sum}); \qquad
     u_j = \begin{cases} T(a_j) & j = k - 1 \\ 0 & \text{otherwise}\end{cases}

  The mean is Welford's running form, stable in low precision. After the
  inner step the accumulator restarts from zero and ``gradient_step``
  increases; :meth:`has_updated` tells whether the last call stepped. A
  ``should_skip_update_fn`` (e.g. :func:`skip_not_finite`) can reject a
  minibatch: the state is then left as if it never arrived, apart from
  ``skip_state``. A callable ``every_k_schedule`` varies the effective batch
  size over training (note 003: batch size steers sharp vs flat minima).

  Same constructor, methods, state layout (:class:`MultiStepsState`) and,
  with finite gradients, numbers as ``optax.MultiSteps`` (up to float32
  rounding: optax's skip branch is a ``lax.cond``, ours a select, which XLA
  fuses differently). References: ``optax.MultiSteps``; Ott et al., 2018,
  "Scaling Neural Machine Translation" (delayed updates for large batches).

  **Deliberate difference from optax.** optax restarts the accumulator with
  ``acc * (1 - emit)`` and masks the output with ``emit * u``. A single NaN
  gradient that is not skipped then stays in ``acc_grads`` for ever
  (``NaN * 0 = NaN``): every later cycle's mean is NaN, and
  ``MultiSteps(apply_if_finite(adam(...), n), k)`` skips every step until
  ``apply_if_finite`` gives up and writes NaN into the weights. Here every
  restart and mask is a select (``jnp.where``): after the step that consumed
  the NaN the accumulator is exactly zero, the inner state is the one the
  inner optimizer chose to keep, non-stepping calls return exact zeros, and
  training resumes with the next clean minibatch.

  Args:
    opt: the inner optimizer.
    every_k_schedule: ``k >= 1`` minibatches per step, or a function
      ``gradient_step -> k``.
    use_grad_mean: average the gradients (default ``True``) or sum them.
    should_skip_update_fn: ``(updates, gradient_step, params) ->
      (should_skip, skip_state)``, or ``None`` to accept every minibatch.
    accumulator_dtype: dtype of ``acc_grads`` (default float32; ``None``
      keeps each parameter's dtype).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.MultiSteps(jn.sgd(0.1), every_k_schedule=2, should_skip_update_fn=jn.skip_not_finite)
    >>> params = {"w": jnp.zeros(2)}
    >>> state = tx.init(params)
    >>> u1, state = tx.update({"w": jnp.array([1.0, 2.0])}, state, params)
    >>> _, state = tx.update({"w": jnp.array([jnp.nan, 0.0])}, state, params)  # skipped: as if never sent
    >>> u2, state = tx.update({"w": jnp.array([3.0, 0.0])}, state, params)
    >>> [float(x) for x in u1["w"]], [round(float(x), 4) for x in u2["w"]], bool(tx.has_updated(state))
    ([0.0, 0.0], [-0.2, -0.1], True)
  """

  def __init__(
      self,
      opt: base.GradientTransformation,
      every_k_schedule: Union[int, Callable[[jax.typing.ArrayLike], jax.typing.ArrayLike]],
      use_grad_mean: bool = True,
      should_skip_update_fn: Optional[ShouldSkipUpdateFunction] = None,
      accumulator_dtype: Optional[Any] = jnp.float32,
  ):
    self._opt = base.with_extra_args_support(base.as_transform(opt, "opt"))
    if callable(every_k_schedule):
      self._every_k_schedule = every_k_schedule
    elif isinstance(every_k_schedule, bool) or not isinstance(
        every_k_schedule, (numbers.Integral, np.integer)
    ):
      raise TypeError(
          "`every_k_schedule` must be an integer >= 1 or a function "
          f"gradient_step -> k; got {type(every_k_schedule).__name__}: "
          f"{every_k_schedule!r}"
      )
    else:
      validation.check_positive_int("every_k_schedule", every_k_schedule)
      k = int(every_k_schedule)
      self._every_k_schedule = lambda step: k
    validation.check_bool("use_grad_mean", use_grad_mean)
    self._use_grad_mean = bool(use_grad_mean)
    if should_skip_update_fn is None:
      should_skip_update_fn = _never_skip
    validation.check_callable("should_skip_update_fn", should_skip_update_fn)
    self._should_skip_update_fn = should_skip_update_fn
    self._accumulator_dtype = validation.check_dtype("accumulator_dtype", accumulator_dtype)

  @property
  def inner_opt(self) -> base.GradientTransformationExtraArgs:
    """The wrapped optimizer."""
    return self._opt

  def _accumulate(self, grad: jax.Array, acc: jax.Array, count: jax.Array) -> jax.Array:
    if self._use_grad_mean:
      return acc + (grad - acc) / (count + 1)
    return grad + acc

  def _to_acc_dtype(self, x: jax.Array) -> jax.Array:
    return x if self._accumulator_dtype is None else x.astype(self._accumulator_dtype)

  def init(self, params: base.Params) -> MultiStepsState:
    """Zero accumulator, zero counters and the inner optimizer's ``init``."""
    tree_lib.check_params_tree(params)
    gradient_step = jnp.zeros([], jnp.int32)
    _, skip_state = self._should_skip_update_fn(
        tree_lib.tree_zeros_like(params), gradient_step, params
    )
    return MultiStepsState(
        mini_step=jnp.zeros([], jnp.int32),
        gradient_step=gradient_step,
        inner_opt_state=self._opt.init(params),
        acc_grads=tree_lib.tree_zeros_like(params, dtype=self._accumulator_dtype),
        skip_state=skip_state,
    )

  def update(
      self,
      updates: base.Updates,
      state: MultiStepsState,
      params: Optional[base.Params] = None,
      **extra_args: Any,
  ) -> tuple[base.Updates, MultiStepsState]:
    """Adds one minibatch gradient; returns the inner step or zeros."""
    # The running mean would broadcast a wrongly shaped gradient silently.
    if params is None:
      combine.check_updates_match_params(updates, state.acc_grads, "state.acc_grads")
    else:
      combine.check_updates_match_params(updates, params)
    k_steps = self._every_k_schedule(state.gradient_step)
    skip, skip_state = self._should_skip_update_fn(updates, state.gradient_step, params)
    skip = jnp.asarray(skip)
    if (skip.dtype, skip.shape) != (jnp.bool_, ()):
      raise ValueError(
          "`should_skip_update_fn` must return a bool scalar array as its first "
          f"output; got dtype {skip.dtype} and shape {skip.shape}"
      )

    acc = tree_lib.tree_map_checked(
        lambda g, a: self._accumulate(g, a, state.mini_step),
        updates, state.acc_grads, names=("updates", "acc_grads"),
    )
    # Computed on every call, as optax does; the selects below then keep or
    # drop it, so a NaN on the dropped side cannot leak (0 * NaN is NaN).
    inner_updates, inner_state = self._opt.update(
        tree_lib.tree_cast_like(acc, updates), state.inner_opt_state, params, **extra_args
    )
    emit = state.mini_step == k_steps - 1
    step = jnp.logical_and(emit, jnp.logical_not(skip))
    out = select_tree(step, inner_updates, jax.tree.map(jnp.zeros_like, inner_updates))
    zeros = jax.tree.map(jnp.zeros_like, acc)
    restarted = jax.tree.map(self._to_acc_dtype, select_tree(emit, zeros, acc))
    new_state = MultiStepsState(
        mini_step=jnp.where(
            skip, state.mini_step, tree_lib.safe_increment(state.mini_step) % k_steps
        ),
        gradient_step=jnp.where(
            step, tree_lib.safe_increment(state.gradient_step), state.gradient_step
        ),
        inner_opt_state=select_tree(step, inner_state, state.inner_opt_state),
        acc_grads=select_tree(skip, state.acc_grads, restarted),
        skip_state=skip_state,
    )
    return out, new_state

  def has_updated(self, state: Union[MultiStepsState, Any]) -> jax.Array:
    """Whether the call that produced ``state`` stepped the inner optimizer."""
    return jnp.logical_and(state.mini_step == 0, state.gradient_step > 0)

  def gradient_transformation(self) -> base.GradientTransformationExtraArgs:
    """This wrapper as an ``(init, update)`` pair, for ``chain`` and friends."""
    return base.GradientTransformationExtraArgs(init=self.init, update=self.update)
