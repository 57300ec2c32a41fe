"""Running a transform only at the steps a condition picks.

Both wrappers count their own steps and ask ``should_transform_fn(step)``
(a traced bool) whether to run the inner transform. They differ in what a
skipped step returns: :func:`conditionally_transform` passes the updates
through untouched, :func:`conditionally_mask` returns zeros. Either way a
skipped step leaves the inner state as it was.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, validation
from jaxopt_notes.core import tree as tree_lib

__all__ = [
    "ConditionFn",
    "ConditionallyMaskState",
    "ConditionallyTransformState",
    "conditionally_mask",
    "conditionally_transform",
]


class ConditionFn(Protocol):
  """``should_transform_fn(step, **extra_args) -> bool scalar``.

  ``step`` is the number of earlier calls to ``update`` (an int32 scalar,
  0 at the first); the extra arguments arrive only with
  ``forward_extra_args=True``.
  """

  def __call__(self, step: jax.typing.ArrayLike, **extra_args: Any) -> jax.typing.ArrayLike:
    ...


class ConditionallyTransformState(NamedTuple):
  """State of :func:`conditionally_transform`.

  Attributes:
    inner_state: the wrapped transform's state (unchanged by a skipped step).
    step: calls to ``update`` so far (int32 scalar).
  """

  inner_state: Any
  step: jax.Array


class ConditionallyMaskState(NamedTuple):
  """State of :func:`conditionally_mask` (optax's field order: ``step`` first).

  Attributes:
    step: calls to ``update`` so far (int32 scalar).
    inner_state: the wrapped transform's state (unchanged by a skipped step).
  """

  step: jax.Array
  inner_state: base.OptState


def _conditional_step(inner, should_transform_fn, forward_extra_args, skipped_updates):
  """``(updates, inner_state)`` of the inner step when the condition holds, else of a skip."""

  def step(updates, inner_state, count, params, extra_args):
    def run(_):
      return inner.update(updates, inner_state, params, **extra_args)

    def skip(_):
      return skipped_updates(updates), inner_state

    condition = should_transform_fn(count, **(extra_args if forward_extra_args else {}))
    if not isinstance(condition, jax.core.Tracer):
      # Known now (an eager step): branch in Python. An eager lax.cond would
      # trace and compile both branches anew at every call.
      return run(None) if bool(condition) else skip(None)
    # Traced: lax.cond, as optax, so the skipped branch costs nothing at run time.
    return jax.lax.cond(condition, run, skip, None)

  return step


def _checked(inner, should_transform_fn, forward_extra_args):
  inner = base.with_extra_args_support(base.as_transform(inner, "inner"))
  validation.check_callable("should_transform_fn", should_transform_fn, "a callable step -> bool")
  validation.check_flags(forward_extra_args=forward_extra_args)
  return inner


def conditionally_transform(
    inner: base.GradientTransformation,
    should_transform_fn: ConditionFn,
    forward_extra_args: bool = False,
) -> base.GradientTransformationExtraArgs:
  r"""Runs ``inner`` at the steps ``should_transform_fn`` picks; passes updates through otherwise.

  .. math::
     (u_t, s_t) = \begin{cases} T(g_t, s_{t-1}) & c(t) \\ (g_t,\ s_{t-1}) & \text{otherwise}\end{cases}

  with ``t`` the number of earlier calls. A schedule of *which* steps a rule
  applies to, beside note 004's schedules of *how large* a step is: e.g. a
  gradient clip or a weight decay (note 003's norm penalty) that starts after
  a warm-up, ``lambda t: t >= 1000``. Same state and numbers as
  ``optax.conditionally_transform``.

  Args:
    inner: the transform to run conditionally.
    should_transform_fn: ``c(step, **extra_args) -> bool`` (jit-safe: the step
      is traced).
    forward_extra_args: also pass ``update``'s extra keyword arguments to
      ``should_transform_fn`` (default ``False``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.conditionally_transform(jn.scale(10.0), lambda step: step >= 1)
    >>> params = {"w": jnp.zeros(2)}
    >>> state = tx.init(params)
    >>> u1, state = tx.update({"w": jnp.ones(2)}, state)
    >>> u2, state = tx.update({"w": jnp.ones(2)}, state)
    >>> u1["w"], u2["w"]
    (Array([1., 1.], dtype=float32), Array([10., 10.], dtype=float32))
  """
  inner = _checked(inner, should_transform_fn, forward_extra_args)
  step = _conditional_step(inner, should_transform_fn, forward_extra_args, lambda u: u)

  def init_fn(params):
    return ConditionallyTransformState(inner_state=inner.init(params), step=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None, **extra_args):
    updates, inner_state = step(updates, state.inner_state, state.step, params, extra_args)
    return updates, ConditionallyTransformState(
        inner_state=inner_state, step=tree_lib.safe_increment(state.step)
    )

  return base.GradientTransformationExtraArgs(init_fn, update_fn)


def conditionally_mask(
    inner: base.GradientTransformation,
    should_transform_fn: ConditionFn,
    forward_extra_args: bool = False,
) -> base.GradientTransformationExtraArgs:
  r"""Runs ``inner`` at the steps ``should_transform_fn`` picks; returns zero updates otherwise.

  .. math::
     (u_t, s_t) = \begin{cases} T(g_t, s_{t-1}) & c(t) \\ (0,\ s_{t-1}) & \text{otherwise}\end{cases}

  with ``t`` the number of earlier calls: the parameters move only at the
  picked steps, e.g. ``lambda t: t % 4 == 3`` to step an optimizer every
  fourth call, or a frozen warm-up ``lambda t: t >= 100``. Same state and
  numbers as ``optax.conditionally_mask``.

  Args:
    inner: the transform to run conditionally.
    should_transform_fn: ``c(step, **extra_args) -> bool`` (jit-safe: the step
      is traced).
    forward_extra_args: also pass ``update``'s extra keyword arguments to
      ``should_transform_fn`` (default ``False``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.conditionally_mask(jn.sgd(0.1), lambda step: step % 2 == 1)
    >>> params = {"w": jnp.zeros(2)}
    >>> state = tx.init(params)
    >>> u1, state = tx.update({"w": jnp.ones(2)}, state, params)
    >>> u2, state = tx.update({"w": jnp.ones(2)}, state, params)
    >>> u1["w"], u2["w"]
    (Array([0., 0.], dtype=float32), Array([-0.1, -0.1], dtype=float32))
  """
  inner = _checked(inner, should_transform_fn, forward_extra_args)
  step = _conditional_step(
      inner, should_transform_fn, forward_extra_args, lambda u: jax.tree.map(jnp.zeros_like, u)
  )

  def init_fn(params):
    return ConditionallyMaskState(step=jnp.zeros([], jnp.int32), inner_state=inner.init(params))

  def update_fn(updates, state, params=None, **extra_args):
    updates, inner_state = step(updates, state.inner_state, state.step, params, extra_args)
    return updates, ConditionallyMaskState(
        step=tree_lib.safe_increment(state.step), inner_state=inner_state
    )

  return base.GradientTransformationExtraArgs(init_fn, update_fn)
