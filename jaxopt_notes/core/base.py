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

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> def halve(updates, state, params=None):
    ...   return jax.tree.map(lambda g: g / 2, updates), state
    >>> tx = jn.GradientTransformation(jn.init_empty_state, halve)
    >>> updates, state = tx.update({"w": jnp.array([2.0, -6.0])}, tx.init({"w": jnp.zeros(2)}))
    >>> print(updates["w"])
    [ 1. -3.]
    >>> init, update = tx  # a NamedTuple: it unpacks as the pair
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
  """``init`` for transforms that keep no state.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.init_empty_state({"w": jnp.ones(3)})  # no leaves: nothing to store or shard
    EmptyState()
  """
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
  """Wraps ``tx`` so that its ``update`` tolerates extra keyword arguments.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.with_extra_args_support(jn.scale(2.0))
    >>> params = {"w": jnp.ones(2)}
    >>> updates, _ = tx.update({"w": jnp.array([1.0, -1.0])}, tx.init(params), params, value=0.5)
    >>> print(updates["w"])  # `value=` was dropped on the way to scale's update
    [ 2. -2.]
  """
  tx = as_transform(tx, "tx")
  if _accepts_extra_args(tx):
    return GradientTransformationExtraArgs(tx.init, tx.update)

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    return tx.update(updates, state, params)

  return GradientTransformationExtraArgs(tx.init, update_fn)


def identity() -> GradientTransformation:
  """Returns the updates unchanged: ``u <- g``. Same as ``optax.identity``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.identity()
    >>> updates, _ = tx.update({"w": jnp.array([1.0, -2.0])}, tx.init({"w": jnp.zeros(2)}))
    >>> print(updates["w"])
    [ 1. -2.]
  """

  def update_fn(updates, state, params=None):
    del params
    return updates, state

  return GradientTransformation(init_empty_state, update_fn)


def set_to_zero() -> GradientTransformation:
  """Replaces every update by zeros: ``u <- 0`` (frozen parameters).

  Same as ``optax.set_to_zero``; combine with ``masked`` to freeze a subtree.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.set_to_zero()
    >>> updates, _ = tx.update({"w": jnp.array([1.0, -2.0])}, tx.init({"w": jnp.zeros(2)}))
    >>> print(updates["w"])
    [0. 0.]
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

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> unit = jn.stateless(lambda u, p: jax.tree.map(lambda g: g / jn.global_norm(u), u))
    >>> updates, _ = unit.update({"a": jnp.array([3.0]), "b": jnp.array([4.0])}, unit.init(None))
    >>> print(updates["a"], updates["b"])  # the whole tree scaled to norm 1
    [0.6] [0.8]
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

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.stateless_with_tree_map(lambda g, p: g + 0.1 * p)  # L2 decay, leaf by leaf
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> updates, _ = tx.update({"w": jnp.ones(2)}, tx.init(params), params)
    >>> print(np.asarray(updates["w"]).round(4))
    [1.1 0.8]
  """
  if not callable(f):
    raise TypeError(f"`f` must be callable as f(update, param); got {f!r}")

  def update_fn(updates, state, params=None):
    del state
    if params is None:
      return jax.tree.map(lambda u: f(u, None), updates), EmptyState()
    return jax.tree.map(f, updates, params), EmptyState()

  return GradientTransformation(init_empty_state, update_fn)
