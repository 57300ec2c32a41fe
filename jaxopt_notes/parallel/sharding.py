"""Optimizer state on many devices: placement, ZeRO-1 sharding, memory.

Everything here is JAX's own SPMD: a :class:`jax.sharding.Mesh`,
``NamedSharding`` and ``jax.jit``; XLA inserts whatever communication the
shardings imply, and this module adds none of its own.

* Every transform of :mod:`jaxopt_notes` already gives its state the
  sharding of the params, eagerly and under ``jit`` (see
  :func:`jaxopt_notes.tree.placed_like`): a model split over a mesh has its
  moments split the same way, and an elementwise update step needs no
  communication at all.
* :func:`shard_state` is ZeRO stage 1 (Rajbhandari et al., 2020, "ZeRO:
  Memory Optimizations Toward Training Trillion Parameter Models"): with
  params replicated over a data-parallel axis, it splits every state leaf
  over that axis, so each device keeps ``1/n`` of the moments. The numbers
  do not change; XLA gathers the updates where the replicated params need
  them.
* :func:`bytes_per_device` measures what a pytree of arrays occupies on
  each device.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxopt_notes.core import base
from jaxopt_notes.core import tree as tree_lib

__all__ = [
    "bytes_per_device",
    "shard_state",
    "state_shardings",
    "zero1_spec",
]

AxisName = Union[str, Sequence[str]]


def _axis_names(axis: AxisName) -> tuple[str, ...]:
  return (axis,) if isinstance(axis, str) else tuple(axis)


def _axis_size(mesh: Mesh, axis: AxisName) -> int:
  names = _axis_names(axis)
  missing = [name for name in names if name not in mesh.shape]
  if not names or missing:
    raise ValueError(
        f"`axis` must name axes of the mesh {dict(mesh.shape)}; got {axis!r}"
    )
  return int(np.prod([mesh.shape[name] for name in names]))


def zero1_spec(shape: Sequence[int], mesh: Mesh, axis: AxisName = "data") -> PartitionSpec:
  """The ZeRO-1 spec of one state leaf: its first dimension divisible by the axis size.

  ``shape`` ``(6, 16)`` on an axis of 4 devices gives ``P(None, axis)``; a
  leaf with no such dimension (a scalar step count, a ``(3,)`` bias) stays
  replicated, ``P()``. ``axis`` (default ``"data"``) may be a tuple of mesh
  axes, split over together. ZeRO stage 1: Rajbhandari et al., 2020.

  Examples:
    >>> import jax
    >>> import jaxopt_notes as jn
    >>> mesh = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
    >>> tuple(jn.zero1_spec((6, 16), mesh)), tuple(jn.zero1_spec((), mesh))  # split the rows; a count stays whole
    (('data',), ())
  """
  size = _axis_size(mesh, axis)
  names = _axis_names(axis)
  for dim, length in enumerate(shape):
    if length >= size and length % size == 0:
      return PartitionSpec(*([None] * dim), names[0] if len(names) == 1 else names)
  return PartitionSpec()


def state_shardings(state: Any, mesh: Mesh, axis: AxisName = "data") -> Any:
  """A ``NamedSharding`` per leaf of ``state`` following :func:`zero1_spec`.

  Useful as ``out_shardings``/``in_shardings`` of a jitted step, or with
  ``jax.device_put`` to restore a checkpoint straight into its ZeRO-1 layout.
  Works on arrays and on ``jax.ShapeDtypeStruct`` (``jax.eval_shape``).
  ``axis`` defaults to ``"data"``. optax has no counterpart.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> mesh = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
    >>> abstract = jax.eval_shape(jn.adam(0.1).init, {"w": jnp.ones((4, 2))})
    >>> shardings = jn.state_shardings(abstract, mesh)
    >>> tuple(shardings[0].mu["w"].spec), tuple(shardings[0].count.spec)
    (('data',), ())
  """
  return jax.tree.map(
      lambda leaf: NamedSharding(mesh, zero1_spec(np.shape(leaf), mesh, axis)), state
  )


def _place(tree: Any, shardings: Any) -> Any:
  def put(leaf, sharding):
    if sharding.mesh.explicit_axes:
      # Explicit axes are part of the array's type: change the type.
      return jax.sharding.reshard(leaf, sharding)
    # Under a trace the constraint tells XLA where the value lives; an eager
    # array is moved there.
    if isinstance(leaf, jax.core.Tracer):
      return jax.lax.with_sharding_constraint(leaf, sharding)
    return jax.device_put(leaf, sharding)

  return jax.tree.map(put, tree, shardings)


def _placed_like_param(param: Any, update: Any) -> Any:
  """``update`` given the sharding of ``param``, eagerly as under ``jit``.

  Under ``jit`` a sharding annotation (:func:`~jaxopt_notes.core.tree.placed_like`);
  eagerly, where an annotation does nothing and the update would keep the
  split layout of the moments it came from, a ``device_put`` to the param's
  sharding (the all-gather XLA inserts under ``jit``).
  """
  concrete = lambda x: isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer)
  if concrete(param) and concrete(update):
    if update.sharding.is_equivalent_to(param.sharding, update.ndim):
      return update
    return jax.device_put(update, param.sharding)
  return tree_lib.placed_like(param, update)


def shard_state(
    tx: base.GradientTransformation,
    mesh: Mesh,
    axis: AxisName = "data",
) -> base.GradientTransformationExtraArgs:
  r"""ZeRO-1: ``tx`` with its state split over the mesh axis ``axis``.

  Each state leaf is split along its first dimension divisible by the size
  ``n`` of ``axis`` (:func:`zero1_spec`); others (step counts, odd shapes)
  stay replicated. ``init`` places the state so, and ``update`` constrains
  the state it receives and the one it returns to the same layout, whether
  called eagerly or inside ``jit``. Per device the moments then take
  :math:`1/n` of their replicated size (Adam: :math:`2|w|/n` instead of
  :math:`2|w|`); the updates are equal to those of ``tx`` (elementwise
  arithmetic on slices) and are given the sharding of ``params`` (when
  passed), eagerly and under ``jit`` alike: XLA adds (or, eagerly, a
  ``device_put`` does) the all-gather that hands each device the full
  update for its replicated params, and the params stay replicated.

  Meant for data parallelism: params replicated over ``axis`` (and any
  other mesh axes). A leaf of params already split over another axis would
  have its state replicated over that axis. Works for any
  ``(init, update)`` pair, ours or optax's; extra keyword arguments reach
  ``tx``. optax has no counterpart.

  Args:
    tx: the optimizer whose state to shard.
    mesh: the device mesh the params live on.
    axis: the data-parallel mesh axis (default ``"data"``), or a tuple of
      axes.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> mesh = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
    >>> tx = jn.shard_state(jn.adam(0.1), mesh)
    >>> params = {"w": jnp.ones((4, 2))}
    >>> state = tx.init(params)
    >>> updates, state = tx.update({"w": jnp.ones((4, 2))}, state, params)
    >>> state[0].mu["w"].sharding.spec[0], round(float(updates["w"][0, 0]), 4)  # adam's numbers, split moments
    ('data', -0.1)
  """
  tx = base.with_extra_args_support(base.as_transform(tx, "tx"))
  if not isinstance(mesh, Mesh):
    raise TypeError(f"`mesh` must be a jax.sharding.Mesh; got {type(mesh).__name__}")
  _axis_size(mesh, axis)

  def constrain(state):
    return _place(state, state_shardings(state, mesh, axis))

  def init_fn(params):
    return constrain(tx.init(params))

  def update_fn(updates, state, params=None, **extra_args):
    updates, state = tx.update(updates, constrain(state), params, **extra_args)
    if params is not None:
      # Computed from split moments, the updates would come out split and
      # drag the replicated params into the state's layout (and a retrace).
      updates = tree_lib.tree_map_checked(
          _placed_like_param, params, updates, names=("params", "updates")
      )
    return updates, constrain(state)

  return base.GradientTransformationExtraArgs(init_fn, update_fn)


def bytes_per_device(tree: Any, devices: Optional[Sequence[jax.Device]] = None) -> dict[jax.Device, int]:
  """Bytes each device holds for the arrays of ``tree`` (its addressable shards).

  A replicated leaf counts in full on every device, a split one only its
  shard. Devices that hold nothing appear with 0 when listed in ``devices``
  (default: this process's devices).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> state = jn.adam(0.1).init({"w": jnp.ones((4, 2))})
    >>> list(jn.bytes_per_device(state, jax.devices()[:1]).values())  # int32 count + two float32 (4, 2) moments
    [68]
  """
  held = {d: 0 for d in (devices or jax.local_devices())}
  for leaf in jax.tree.leaves(tree):
    if not isinstance(leaf, jax.Array):
      raise TypeError(f"bytes_per_device needs jax.Array leaves; got {type(leaf).__name__}")
    for shard in leaf.addressable_shards:
      held[shard.device] = held.get(shard.device, 0) + shard.data.nbytes
  return held
