"""Recording measurements of the updates in the optimizer state.

Pass-through transforms for looking inside a chain: each stores a function of
the updates it sees (a norm, a clip indicator, a histogram) in its state and
returns the updates unchanged, so it can sit anywhere in a ``chain`` and be
read back with ``optax.tree.get(state, name)``.

* :func:`snapshot`         the latest value of one measurement;
* :func:`monitor`          several, each a function or a stateful transform;
* :func:`measure_with_ema` a measurement smoothed by a bias-corrected EMA
  (note 004), for use inside :func:`monitor`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.transforms import moments

__all__ = ["MonitorState", "SnapshotState", "measure_with_ema", "monitor", "snapshot"]

Measure = Callable[[base.Updates], Any]


class SnapshotState(NamedTuple):
  """State of :func:`snapshot`: ``{measure_name: value}`` for the last updates seen."""

  measurement: dict[str, Any]


def snapshot(measure_name: str, measure: Measure) -> base.GradientTransformation:
  r"""Stores ``measure(updates)`` in the state under ``measure_name``; updates pass unchanged.

  .. math:: u_t = g_t, \qquad s_t = \{\text{name}: m(g_t)\}

  ``init`` stores ``measure(params)``. A debugging probe: placed between two
  links of a chain it records what the first produced, e.g. the norm of a
  step before note 002's gradient clipping shortens it. Same state and
  numbers as ``optax.snapshot``.

  Args:
    measure_name: the key of the measurement in the state (``optax.tree.get``
      finds it by this name).
    measure: ``updates -> pytree of arrays`` (jit-safe).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.chain(jn.snapshot("norm", jn.global_norm), jn.clip_by_global_norm(1.0))
    >>> params = {"w": jnp.zeros(2)}
    >>> updates, state = tx.update({"w": jnp.array([3.0, 4.0])}, tx.init(params))
    >>> state[0].measurement["norm"], updates["w"]
    (Array(5., dtype=float32), Array([0.6, 0.8], dtype=float32))
  """
  try:
    hash(measure_name)
  except TypeError as err:
    raise TypeError(f"`measure_name` must be a hashable key (a str); got {measure_name!r}") from err
  validation.check_callable("measure", measure, "a callable updates -> measurement")

  def init_fn(params):
    return SnapshotState(measurement={measure_name: measure(params)})

  def update_fn(updates, state, params=None):
    del params, state
    return updates, SnapshotState(measurement={measure_name: measure(updates)})

  return base.GradientTransformation(init_fn, update_fn)


class MonitorState(NamedTuple):
  """State of :func:`monitor`.

  Attributes:
    measurements: ``{name: value}``, each measure's output on the last
      updates (zeros of its shape before the first).
    measure_states: the measures' own states, in the order of the names.
  """

  measurements: dict[str, Any]
  measure_states: tuple[base.OptState, ...]


def _as_measure(name: Any, measure: Any) -> base.GradientTransformationExtraArgs:
  """A measure as a transform whose output updates are the measurement."""
  if callable(measure):
    return base.with_extra_args_support(base.stateless(lambda updates, _: measure(updates)))
  return base.with_extra_args_support(base.as_transform(measure, f"measures[{name!r}]"))


def _zero_measurement(measure, params, measure_state):
  """Zeros shaped like ``measure``'s output on updates shaped like ``params``.

  ``None`` when the measure cannot run without the extra keyword arguments
  that only ``update`` receives.
  """
  try:
    shapes = jax.eval_shape(lambda p, s: measure.update(p, s, p)[0], params, measure_state)
  except TypeError:
    return None
  return jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)


def monitor(
    measures: Mapping[str, Union[base.GradientTransformation, Measure]],
) -> base.GradientTransformationExtraArgs:
  r"""Records several measurements of the updates, each stateless or stateful; updates pass.

  .. math:: u_t = g_t, \qquad (m^k_t, \sigma^k_t) = M_k(g_t, \sigma^k_{t-1})

  A function ``updates -> value`` is a stateless measure; a transform (e.g.
  :func:`measure_with_ema`) is a stateful one, whose output updates are the
  measurement. Extra keyword arguments of ``update`` reach the transforms.
  An instrument rather than an optimizer (no paper; outside the notes'
  families), for watching e.g. note 002's clipping or the size of an
  adaptive step (notes 000/003/004) during a run. Same numbers as
  ``optax.monitor``. One difference: optax's ``init``
  stores an empty ``measurements`` dict that the first update fills, so the
  state changes structure and cannot be the carry of ``lax.scan`` or
  ``fori_loop``; here ``init`` stores zeros shaped like each measurement
  (found by tracing the measure once, ``jax.eval_shape``). A measure that
  cannot run without ``update``'s extra arguments is left out until the
  first update, as in optax.

  Args:
    measures: ``{name: measure}``, a function or a transform per name.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.chain(
    ...     jn.monitor({"norm": jn.global_norm,
    ...                 "norm_ema": jn.measure_with_ema(jn.global_norm, decay=0.5)}),
    ...     jn.scale(-0.1))
    >>> params = {"w": jnp.zeros(2)}
    >>> state = tx.init(params)
    >>> state[0].measurements["norm"]
    Array(0., dtype=float32)
    >>> _, state = tx.update({"w": jnp.array([3.0, 4.0])}, state)
    >>> _, state = tx.update({"w": jnp.array([0.0, 1.0])}, state)
    >>> print(f"{state[0].measurements['norm']:.4f} {state[0].measurements['norm_ema']:.4f}")
    1.0000 2.3333
  """
  if not isinstance(measures, Mapping):
    raise TypeError(
        "`measures` must be a dict {name: measure}, each a function updates -> value or a "
        f"GradientTransformation; got {type(measures).__name__}: {measures!r:.60}"
    )
  txs = {name: _as_measure(name, m) for name, m in measures.items()}
  names = tuple(txs)

  def init_fn(params):
    states = tuple(txs[n].init(params) for n in names)
    zeros = {n: _zero_measurement(txs[n], params, s) for n, s in zip(names, states)}
    return MonitorState(
        measurements={n: z for n, z in zeros.items() if z is not None}, measure_states=states
    )

  def update_fn(updates, state, params=None, **extra_args):
    measurements, states = {}, []
    for name, measure_state in zip(names, state.measure_states):
      measurements[name], new_state = txs[name].update(updates, measure_state, params, **extra_args)
      states.append(new_state)
    return updates, MonitorState(measurements=measurements, measure_states=tuple(states))

  return base.GradientTransformationExtraArgs(init_fn, update_fn)


def _as_inexact(x: Any) -> jax.Array:
  """``x`` as an array; a bool or integer one in the default float dtype (the EMA's)."""
  x = jnp.asarray(x)
  if jnp.issubdtype(x.dtype, jnp.inexact):
    return x
  return x.astype(jax.dtypes.canonicalize_dtype(jnp.float64))


def measure_with_ema(
    measure: Measure,
    decay: jax.typing.ArrayLike,
    debias: bool = True,
    accumulator_dtype: Optional[Any] = None,
) -> base.GradientTransformationExtraArgs:
  r"""A measurement of the updates, smoothed by an exponential moving average.

  .. math::
     v_t = \beta v_{t-1} + (1 - \beta)\, m(g_t), \qquad
     \text{output} = \frac{v_t}{1 - \beta^t} \ \text{(debias)}

  Note 004's bias-corrected EMA (:func:`ema`) of a measurement: with a clip
  indicator ``m(g) = ||g|| > c`` it is the recent fraction of clipped steps.
  Its output *replaces* the updates, so it belongs inside :func:`monitor`,
  not directly in a chain of steps. Same state layout (``(EmptyState(),
  EmaState)``) and numbers as ``optax.measure_with_ema``; a bool or integer
  measurement's EMA starts as zeros in the default float dtype (optax's
  starts as bools and turns into floats at the first update).

  Args:
    measure: ``updates -> pytree of arrays``.
    decay: ``beta`` in ``[0, 1)``.
    debias: divide by ``1 - beta^t`` (default ``True``).
    accumulator_dtype: dtype of the stored average (default: the
      measurement's).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.measure_with_ema(lambda u: jn.global_norm(u) > 1.0, decay=0.9)
    >>> params = {"w": jnp.zeros(2)}
    >>> state = tx.init(params)
    >>> out, state = tx.update({"w": jnp.array([3.0, 4.0])}, state)
    >>> print(f"{out:.4f} {state[1].ema:.4f}")  # debiased: 0.1 / (1 - 0.9)
    1.0000 0.1000
  """
  validation.check_callable("measure", measure, "a callable updates -> measurement")
  ema = moments.ema(decay, debias, accumulator_dtype)

  def ema_init(params):
    # The EMA is shaped like the measurement, not like the params.
    return ema.init(jax.tree.map(_as_inexact, measure(params)))

  def ema_update(updates, state, params=None):
    del params  # shaped like the params, not like the measurement it averages
    return ema.update(updates, state)

  return combine.chain(
      base.stateless(lambda updates, _: measure(updates)),
      base.GradientTransformation(ema_init, ema_update),
  )
