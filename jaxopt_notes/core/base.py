"""The transform protocol: a pure ``(init, update)`` pair over pytrees.

Every optimizer in :mod:`jaxopt_notes` is a :class:`GradientTransformation`,
a ``NamedTuple`` of two pure functions::

    state = tx.init(params)
    updates, state = tx.update(grads, state, params)
    params = apply_updates(params, updates)

The tuple has the same two fields, in the same order and with the same call
signatures, as ``optax.GradientTransformation``. Code that only unpacks or
calls ``.init``/``.update`` (``optax.chain``, ``optax.MultiSteps``,
``flax.nnx.Optimizer``, Equinox loops) therefore accepts our transforms, and
our combinators accept optax's.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Callable, NamedTuple, Optional, Protocol, Union, cast

import jax
import jax.numpy as jnp

PyTree = Any
Params = Any
Updates = Any
OptState = Any
Schedule = Callable[[jax.typing.ArrayLike], jax.typing.ArrayLike]
ScalarOrSchedule = Union[float, jax.Array, Schedule]

NO_PARAMS_MSG = (
    "This transform needs the current parameters: call "
    "`update(updates, state, params)` with `params`, not `params=None`."
)


class TransformInitFn(Protocol):
  """``init(params) -> state``."""

  def __call__(self, params: Params) -> OptState:
    ...


class TransformUpdateFn(Protocol):
  """``update(updates, state, params=None) -> (updates, state)``."""

  def __call__(
      self, updates: Updates, state: OptState, params: Optional[Params] = None
  ) -> tuple[Updates, OptState]:
    ...


class TransformUpdateExtraArgsFn(Protocol):
  """``update(updates, state, params=None, **extra_args) -> (updates, state)``."""

  def __call__(
      self,
      updates: Updates,
      state: OptState,
      params: Optional[Params] = None,
      **extra_args: Any,
  ) -> tuple[Updates, OptState]:
    ...


class GradientTransformation(NamedTuple):
  """A pure optimizer transform: ``init(params)`` and ``update(...)``.

  Attributes:
    init: builds the state from the parameters (same pytree structure).
    update: maps ``(updates, state, params=None)`` to ``(new_updates,
      new_state)``. Both functions are side-effect free and jit-safe.
  """

  init: TransformInitFn
  update: TransformUpdateFn


def _optax_extra_args_class() -> tuple[type, ...]:
  """optax's ``GradientTransformationExtraArgs``, when optax is installed.

  optax's combinators decide whether to forward ``value=``/``value_fn=`` with
  an ``isinstance`` check against their own class. Deriving from it (only when
  optax can be imported; we never require it) lets our extra-args transforms
  keep their keyword arguments inside ``optax.chain`` and ``optax.MultiSteps``.
  """
  try:
    if importlib.util.find_spec("optax") is None:
      return ()
    from optax import GradientTransformationExtraArgs as optax_class  # pylint: disable=g-import-not-at-top
  except Exception:  # pylint: disable=broad-except
    return ()
  return (optax_class,)


# The bases are computed at import (optax's class only when installed), which mypy cannot follow.
class GradientTransformationExtraArgs(GradientTransformation, *_optax_extra_args_class()):  # type: ignore[misc]
  """A transform whose ``update`` accepts extra keyword arguments.

  Combinators (``chain``, ``named_chain``, ``masked``) forward extra keyword
  arguments such as ``value=`` or ``value_fn=`` to the transforms that take
  them and drop them for the ones that do not. When optax is installed this
  class also derives from ``optax.GradientTransformationExtraArgs``, so
  optax's combinators forward those arguments to ours too.
  """


class EmptyState(NamedTuple):
  """The state of a stateless transform: an empty tuple (no leaves)."""


def init_empty_state(params: Params) -> EmptyState:
  """``init`` for transforms that keep no state."""
  del params
  return EmptyState()


def _accepts_extra_args(tx: Any) -> bool:
  # Duck-typed on the class name so that optax's own extra-args transforms
  # keep receiving ``value=``/``value_fn=`` inside our ``chain`` without this
  # package importing optax.
  return isinstance(tx, GradientTransformationExtraArgs) or any(
      cls.__name__ == "GradientTransformationExtraArgs"
      for cls in type(tx).__mro__
  )


def as_transform(tx: Any, name: str = "transform") -> GradientTransformation:
  """Checks that ``tx`` is an ``(init, update)`` pair and returns it.

  Accepts our transforms, optax's, and any 2-tuple of callables.

  Raises:
    TypeError: naming ``name`` when ``tx`` is not such a pair.
  """
  if isinstance(tx, tuple) and len(tx) == 2 and all(map(callable, tx)):
    if hasattr(tx, "init") and hasattr(tx, "update"):
      return cast(GradientTransformation, tx)  # ours or optax's, returned as given
    return GradientTransformation(*tx)  # a bare pair gains the field names
  raise TypeError(
      f"`{name}` must be a GradientTransformation (an `(init, update)` pair of "
      f"callables, from jaxopt_notes or optax); got {type(tx).__name__}: {tx!r}"
  )


def with_extra_args_support(
    tx: GradientTransformation,
) -> GradientTransformationExtraArgs:
  """Wraps ``tx`` so that its ``update`` tolerates extra keyword arguments."""
  tx = as_transform(tx, "tx")
  if _accepts_extra_args(tx):
    return GradientTransformationExtraArgs(tx.init, tx.update)

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    return tx.update(updates, state, params)

  return GradientTransformationExtraArgs(tx.init, update_fn)


def identity() -> GradientTransformation:
  """Returns the updates unchanged: ``u <- g``. Same as ``optax.identity``."""

  def update_fn(updates, state, params=None):
    del params
    return updates, state

  return GradientTransformation(init_empty_state, update_fn)


def set_to_zero() -> GradientTransformation:
  """Replaces every update by zeros: ``u <- 0`` (frozen parameters).

  Same as ``optax.set_to_zero``; combine with ``masked`` to freeze a subtree.
  """

  def update_fn(updates, state, params=None):
    del params
    return jax.tree.map(jnp.zeros_like, updates), state

  return GradientTransformation(init_empty_state, update_fn)


def stateless(
    f: Callable[[Updates, Optional[Params]], Updates],
) -> GradientTransformation:
  """A transform from a pure function of the whole trees: ``u <- f(g, params)``.

  Args:
    f: called as ``f(updates, params)``; ``params`` may be ``None``.
  """
  if not callable(f):
    raise TypeError(f"`f` must be callable as f(updates, params); got {f!r}")

  def update_fn(updates, state, params=None):
    del state
    return f(updates, params), EmptyState()

  return GradientTransformation(init_empty_state, update_fn)


def stateless_with_tree_map(
    f: Callable[[jax.Array, Optional[jax.Array]], jax.Array],
) -> GradientTransformation:
  """A transform applying ``f(g_leaf, p_leaf)`` to every leaf.

  Args:
    f: called per leaf as ``f(update, param)``; ``param`` is ``None`` when the
      caller passes no params.
  """
  if not callable(f):
    raise TypeError(f"`f` must be callable as f(update, param); got {f!r}")

  def update_fn(updates, state, params=None):
    del state
    if params is None:
      return jax.tree.map(lambda u: f(u, None), updates), EmptyState()
    return jax.tree.map(f, updates, params), EmptyState()

  return GradientTransformation(init_empty_state, update_fn)
