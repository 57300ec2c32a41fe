"""Hyper-parameters kept in the optimizer state, so they can change mid-run.

Note 004 ("Learning rate decay") lowers ``alpha`` as training goes
on, by a formula of the epoch or by hand ("manual decay"). A transform built
as ``adam(1e-3)`` bakes ``1e-3`` into its compiled step, so changing it means
building and compiling a new optimizer. :func:`inject_hyperparams` instead
stores every numeric argument of an optimizer factory in the state, as
arrays: a schedule is evaluated there at each step, and a value written into
``state.hyperparams`` is used from the next step on, by the same compiled
function.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.core import base, validation
from jaxopt_notes.core import tree as tree_lib

__all__ = [
    "InjectHyperparamsState",
    "InjectStatefulHyperparamsState",
    "WrappedSchedule",
    "WrappedScheduleState",
    "inject_hyperparams",
    "inject_stateful_hyperparams",
]


class InjectStatefulHyperparamsState(NamedTuple):
  """State of :func:`inject_hyperparams`.

  Attributes:
    count: number of updates applied so far (int32 scalar).
    hyperparams: ``name -> array``, the values used by the last step (the
      initial values before the first). Numeric entries may be overwritten
      between steps; scheduled entries are recomputed at every step.
    hyperparams_states: ``name -> schedule state`` for the scheduled entries
      (a :class:`WrappedScheduleState` for a plain ``step -> value`` schedule).
    inner_state: the state of the wrapped transform.
  """

  count: jax.Array  # type: ignore[assignment]  # NamedTuple field named like tuple.count, as optax's
  hyperparams: dict[str, jax.typing.ArrayLike]
  hyperparams_states: dict[str, Any]
  inner_state: base.OptState


# optax 0.2.8 returns the four-field class above from `inject_hyperparams`;
# its three-field `InjectHyperparamsState` is deprecated and never produced.
# The familiar name therefore refers to the state actually returned.
InjectHyperparamsState = InjectStatefulHyperparamsState


class WrappedScheduleState(NamedTuple):
  """State of a plain schedule inside :func:`inject_hyperparams`."""

  count: jax.Array  # type: ignore[assignment]  # int32 scalar, the step the schedule is evaluated at (optax's name)


class WrappedSchedule:
  """Gives a plain schedule ``step -> value`` the stateful-schedule protocol.

  A stateful schedule has ``init() -> state``, ``update(state, **extra_args)
  -> state`` and ``__call__(state, **extra_args) -> value``; this one's state
  is the step count. Same as ``optax.WrappedSchedule``.

  Examples:
    >>> import jaxopt_notes as jn
    >>> schedule = jn.WrappedSchedule(jn.linear_schedule(1.0, 0.0, transition_steps=4))
    >>> state, values = schedule.init(), []
    >>> for _ in range(3):
    ...   values.append(float(schedule(state)))
    ...   state = schedule.update(state)
    >>> values
    [1.0, 0.75, 0.5]
  """

  def __init__(self, schedule_fn: base.Schedule):
    validation.check_callable("schedule_fn", schedule_fn)
    self.schedule_fn = schedule_fn

  def init(self) -> WrappedScheduleState:
    return WrappedScheduleState(count=jnp.zeros([], jnp.int32))

  def update(self, state: WrappedScheduleState, **extra_args: Any) -> WrappedScheduleState:
    del extra_args
    return WrappedScheduleState(count=tree_lib.safe_increment(state.count))

  def __call__(self, state: WrappedScheduleState, **extra_args: Any) -> jax.typing.ArrayLike:
    del extra_args
    return self.schedule_fn(state.count)


def _is_stateful_schedule(value: Any) -> bool:
  return (
      callable(value)
      and not isinstance(value, type)
      and callable(getattr(value, "init", None))
      and callable(getattr(value, "update", None))
  )


def _cast_float(value: Any, dtype: Any) -> Any:
  """Casts a float-valued hyper-parameter to ``dtype``; the rest pass through.

  A strongly typed jax array is kept as it is, so a value the user stored with
  an explicit dtype stays in that dtype.
  """
  if isinstance(value, jax.Array) and not getattr(value, "weak_type", False):
    return value
  kind = value.dtype if hasattr(value, "dtype") else type(value)
  if jax.dtypes.issubdtype(kind, jnp.floating):
    return jnp.asarray(value, dtype=dtype)
  return value


def _keep_dtype(new: Any, old: Any) -> Any:
  # Skipped when equal: typed PRNG keys (noisy_sgd's state) have no `astype`.
  if hasattr(new, "astype") and hasattr(old, "dtype") and new.dtype != old.dtype:
    return new.astype(old.dtype)
  return new


def _highest_dtype(tree: Any) -> Any:
  """The dtype every leaf of ``tree`` promotes to without loss (float32 if empty)."""
  dtypes = [jnp.asarray(x).dtype for x in jax.tree.leaves(tree)]
  if not dtypes:
    return jnp.asarray([]).dtype

  def higher(a, b):
    joined = jnp.promote_types(a, b)
    if joined == a:
      return a
    if joined == b:
      return b
    raise ValueError(
        f"`params` mixes dtypes {a} and {b}, neither of which promotes to the "
        "other; pass `hyperparam_dtype` to inject_hyperparams."
    )

  return functools.reduce(higher, dtypes)


def _normalise_static_args(static_args: Union[str, Iterable[str]]) -> set[str]:
  if isinstance(static_args, str):
    return {static_args}
  try:
    names = set(static_args)
  except TypeError as err:
    raise TypeError(
        f"`static_args` must be a name or an iterable of names; got {static_args!r}"
    ) from err
  bad = [n for n in names if not isinstance(n, str)]
  if bad:
    raise TypeError(f"`static_args` must hold parameter names (str); got {bad!r}")
  return names


def inject_hyperparams(
    inner_factory: Callable[..., base.GradientTransformation],
    static_args: Union[str, Iterable[str]] = (),
    hyperparam_dtype: Optional[Any] = None,
) -> Callable[..., base.GradientTransformationExtraArgs]:
  r"""Moves an optimizer's numeric arguments into its state.

  ``inject_hyperparams(adam)(learning_rate=..., b1=...)`` builds the same
  optimizer as ``adam(...)``, but every number it was given lives in
  ``state.hyperparams`` and every callable it was given is a schedule,
  evaluated at each step:

  .. math::
     h_t = \begin{cases} s(t) & h \text{ given as a schedule } s \\
                         h_{\text{state}} & \text{otherwise}\end{cases},
     \qquad u_t = T(g_t;\, h_t)

  with ``t`` the number of updates already applied (``s(0)`` drives the first
  step). The inner transform is rebuilt from ``h_t`` inside ``update``, so its
  numbers are those of ``inner_factory(**h_t)``. This is the notes' learning-
  rate decay (note 004) in both forms: a formula of the step as a
  schedule, and "manual decay" as a write between steps::

      state.hyperparams["learning_rate"] = jnp.asarray(1e-4, jnp.float32)

  The new value is a traced input of the compiled step, so no recompilation
  happens, provided it has the dtype already stored (write an array such as
  ``jnp.asarray(v, old.dtype)``; a bare Python float is weakly typed, which
  ``jax.jit`` treats as a new input signature and compiles once more).
  Writing to a scheduled entry has no effect: it is recomputed each step.
  A written value is checked like an argument only where it is concrete: an
  eager ``update`` rebuilds the inner optimizer from it, so a NaN learning
  rate (or ``b1=1.0``) raises there naming the argument, but inside ``jit``
  it is a traced input with nothing to check, and a NaN there gives NaN
  updates without an error. Check a value before writing it into a state
  that a compiled step will read (``math.isfinite(v)``).

  Classification of the factory's arguments (after defaults are filled in):
  names in ``static_args`` and ``bool`` values are static (passed as given);
  objects with ``init``/``update``/``__call__`` are stateful schedules; other
  callables are schedules of the step; ``int``, ``float`` and arrays are
  injected; everything else (``None``, dtypes, strings) is static. Float
  values are stored in ``hyperparam_dtype``, or else in the highest dtype of
  the params (float32 when ``update`` gets no params).

  Same signature, state layout (:class:`InjectStatefulHyperparamsState`) and
  numbers as ``optax.inject_hyperparams`` in optax 0.2.8 (reference: optax
  documentation, "Optimizer schedules"). Differences: a bad
  ``inner_factory``/``static_args``/``hyperparam_dtype`` raises at wrapping
  time naming the argument, and so does a bad injected value (the inner
  optimizer is built once at construction); dtypes (``mu_dtype=jnp.bfloat16``)
  are static, not schedules; the inner state keeps the dtypes ``init`` gave it
  (optax's promotes bfloat16 moments to float32 after the first step when the
  params mix bfloat16 with float32, a carry whose type changes); and
  factories with positional-only or ``**kwargs`` parameters are supported
  (their ``**kwargs`` entries are injected by name).

  Args:
    inner_factory: a function returning a ``GradientTransformation`` (e.g.
      :func:`adam`, or ``optax.adam``).
    static_args: names of ``inner_factory`` parameters to pass through as they
      are; needed for callables that are not schedules.
    hyperparam_dtype: dtype for the stored float hyper-parameters (default:
      taken from the params).

  Returns:
    A function with ``inner_factory``'s parameters returning a
    ``GradientTransformationExtraArgs``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.inject_hyperparams(jn.adam)(learning_rate=0.1)
    >>> params = {"w": jnp.ones(2)}
    >>> state = tx.init(params)
    >>> sorted(state.hyperparams)
    ['b1', 'b2', 'eps', 'eps_root', 'learning_rate']
    >>> state.hyperparams["learning_rate"] = jnp.asarray(0.01, jnp.float32)  # manual decay
    >>> updates, state = tx.update({"w": jnp.ones(2)}, state, params)
    >>> [round(float(x), 4) for x in updates["w"]]
    [-0.01, -0.01]
    >>> tx = jn.inject_hyperparams(jn.sgd)(learning_rate=jn.linear_schedule(0.1, 0.0, 4))
    >>> state = tx.init(params)
    >>> for _ in range(2):
    ...   updates, state = tx.update({"w": jnp.ones(2)}, state, params)
    >>> round(float(updates["w"][0]), 4), round(float(state.hyperparams["learning_rate"]), 4)  # s(1)
    (-0.075, 0.075)
  """
  validation.check_callable("inner_factory", inner_factory)
  static_names = _normalise_static_args(static_args)
  hyperparam_dtype = validation.check_dtype("hyperparam_dtype", hyperparam_dtype)
  try:
    signature = inspect.signature(inner_factory)
  except (TypeError, ValueError) as err:
    raise TypeError(
        f"`inner_factory` must be a function with an inspectable signature; "
        f"got {inner_factory!r}"
    ) from err
  kinds = {name: p.kind for name, p in signature.parameters.items()}
  var_keyword = next(
      (n for n, k in kinds.items() if k is inspect.Parameter.VAR_KEYWORD), None
  )
  unknown = static_names - set(kinds)
  if unknown and var_keyword is None:
    raise ValueError(
        f"`static_args` names {sorted(unknown)}, which are not parameters of "
        f"`inner_factory` ({sorted(kinds)})."
    )

  @functools.wraps(inner_factory)
  def wrapped(*args: Any, **kwargs: Any) -> base.GradientTransformationExtraArgs:
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    named = {n: v for n, v in bound.arguments.items() if n != var_keyword}
    keyword_extras = dict(bound.arguments.get(var_keyword, {})) if var_keyword else {}
    named.update(keyword_extras)

    schedules, numeric, static = {}, {}, {}
    for name, value in named.items():
      if (
          name in static_names
          or isinstance(value, bool)
          or kinds.get(name) is inspect.Parameter.VAR_POSITIONAL
      ):
        static[name] = value
      elif isinstance(value, (type, np.dtype)):
        static[name] = value  # a dtype such as jnp.bfloat16 is callable too
      elif _is_stateful_schedule(value):
        schedules[name] = value
      elif callable(value):
        schedules[name] = WrappedSchedule(value)
      elif isinstance(value, (int, float, jax.Array, np.ndarray)):
        numeric[name] = value
      else:
        static[name] = value

    def build(hparams):
      values = {**static, **hparams}
      arguments = {n: values[n] for n in bound.arguments if n != var_keyword}
      if var_keyword is not None:
        arguments[var_keyword] = {n: values[n] for n in keyword_extras}
      call = inspect.BoundArguments(signature, arguments)
      return call.args, call.kwargs

    def make_inner(hparams):
      call_args, call_kwargs = build(hparams)
      inner = base.as_transform(
          inner_factory(*call_args, **call_kwargs), "inner_factory(...)"
      )
      return base.with_extra_args_support(inner)

    # Built once now, so that a bad value raises here, naming the argument,
    # rather than at the first `init`.
    make_inner({**numeric, **{n: s(s.init()) for n, s in schedules.items()}})

    def init_fn(params):
      dtype = _highest_dtype(params) if hyperparam_dtype is None else hyperparam_dtype
      hparams = {n: jnp.asarray(_cast_float(v, dtype)) for n, v in numeric.items()}
      sched_states = {n: s.init() for n, s in schedules.items()}
      hparams.update(
          {n: _cast_float(s(sched_states[n]), dtype) for n, s in schedules.items()}
      )
      return InjectStatefulHyperparamsState(
          count=jnp.zeros([], jnp.int32),
          hyperparams=hparams,
          hyperparams_states=sched_states,
          inner_state=make_inner(hparams).init(params),
      )

    def update_fn(updates, state, params=None, **extra_args):
      dtype = _highest_dtype(params) if hyperparam_dtype is None else hyperparam_dtype
      hparams = {n: _cast_float(v, dtype) for n, v in state.hyperparams.items()}
      hparams.update({
          n: _cast_float(s(state.hyperparams_states[n], **extra_args), dtype)
          for n, s in schedules.items()
      })
      sched_states = {
          n: s.update(state.hyperparams_states[n], **extra_args)
          for n, s in schedules.items()
      }
      updates, inner_state = make_inner(hparams).update(
          updates, state.inner_state, params, **extra_args
      )
      # Float32 hyper-parameters would promote a bfloat16 inner state (optax's
      # does); keeping init's dtypes keeps the state a fixed type (scan, jit
      # carries, checkpoints).
      inner_state = tree_lib.tree_map_checked(
          _keep_dtype, inner_state, state.inner_state, names=("new state", "state")
      )
      return updates, InjectStatefulHyperparamsState(
          count=tree_lib.safe_increment(state.count),
          hyperparams=hparams,
          hyperparams_states=sched_states,
          inner_state=inner_state,
      )

    return base.GradientTransformationExtraArgs(init_fn, update_fn)

  return wrapped


def inject_stateful_hyperparams(
    inner_factory: Callable[..., base.GradientTransformation],
    static_args: Union[str, Iterable[str]] = (),
    hyperparam_dtype: Optional[Any] = None,
) -> Callable[..., base.GradientTransformationExtraArgs]:
  r"""The older name of :func:`inject_hyperparams`, which takes stateful schedules too.

  A stateful schedule has ``init() -> state``, ``update(state, **extra_args)
  -> state`` and ``__call__(state, **extra_args) -> value``, so its value can
  follow what ``update`` is told (a loss passed as ``value=``, as note 004's
  "reduce on plateau" decay does) rather than the step count alone:

  .. math:: h_t = S(\sigma_t), \qquad \sigma_{t+1} = S.\mathrm{update}(\sigma_t, \ldots)

  Same as ``optax.inject_stateful_hyperparams`` in optax 0.2.8, which is
  deprecated there since 0.1.9 and warns: this warns the same way
  (``DeprecationWarning``) and returns ``inject_hyperparams(inner_factory,
  static_args, hyperparam_dtype)``.

  Args:
    inner_factory: a function returning a ``GradientTransformation``.
    static_args: names of ``inner_factory`` parameters to pass through as they are.
    hyperparam_dtype: dtype for the stored float hyper-parameters.

  Examples:
    >>> import warnings
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> class Halving:  # halves the step each time update gets halve=True
    ...   def init(self): return jnp.ones([])
    ...   def update(self, state, halve=False, **_): return jnp.where(halve, state / 2, state)
    ...   def __call__(self, state, **_): return state
    >>> with warnings.catch_warnings():
    ...   warnings.simplefilter("ignore", DeprecationWarning)
    ...   tx = jn.inject_stateful_hyperparams(jn.scale)(step_size=Halving())
    >>> params = {"w": jnp.ones(2)}
    >>> state = tx.init(params)
    >>> _, state = tx.update(params, state, halve=True)
    >>> updates, state = tx.update(params, state)
    >>> updates["w"]
    Array([0.5, 0.5], dtype=float32)
  """
  warnings.warn(
      "inject_stateful_hyperparams is deprecated (as in optax): use inject_hyperparams, "
      "which takes stateful schedules too",
      DeprecationWarning,
      stacklevel=2,
  )
  return inject_hyperparams(inner_factory, static_args, hyperparam_dtype)
