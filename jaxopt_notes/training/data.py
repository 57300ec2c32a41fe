"""Batches of a data set: full batch, minibatch and stochastic (one example).

The notes' three ways to spend one step (notes 000, 001, 004):

* batch gradient descent, every example in every step (``batch_size=None``);
* stochastic gradient descent, one random example per step (``batch_size=1``);
* minibatch gradient descent, ``k`` examples per step, sizes 32..512.

One pass over the data is an epoch. Note 002 reshuffles every epoch and, for
data sets too big for that, shuffles once and then walks the same order
(``shuffle="epoch"`` / ``"once"``). The data stay on the device: an epoch's
order is a permutation of ``0..n-1`` drawn on the device from the key, and each
batch is one gather of ``batch_size`` rows, so no step copies the whole data
set and nothing goes back to the host.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Iterator, Optional, cast

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.core import validation

__all__ = ["minibatches", "steps_per_epoch"]

SHUFFLE_MODES = ("epoch", "once", None)


def num_examples(data: Any, name: str = "data") -> int:
  """The common leading size of every leaf of ``data``.

  Raises:
    ValueError: for a tree without leaves, a scalar leaf, or two leaves with
      different leading sizes (both paths are named).
  """
  tree_lib.check_params_tree(data, name)
  leaves = jax.tree_util.tree_leaves_with_path(data)
  if not leaves:
    raise ValueError(
        f"`{name}` has no arrays; pass a pytree of arrays whose leading axis "
        "indexes the examples"
    )
  first_path, n = None, None
  for path, leaf in leaves:
    where = name + jax.tree_util.keystr(path)
    shape = np.shape(leaf)
    if not shape:
      raise ValueError(
          f"{where} is a scalar; every leaf of `{name}` needs a leading axis of examples"
      )
    if n is None:
      first_path, n = where, shape[0]
    elif shape[0] != n:
      raise ValueError(
          f"leaves of `{name}` disagree on the number of examples: {first_path} "
          f"has {n} (leading axis) but {where} has {shape[0]}"
      )
  if n == 0:
    raise ValueError(f"`{name}` has no examples (leading axis of size 0)")
  assert n is not None  # `leaves` is not empty, so the loop has set it
  return n


def check_batch_size(batch_size: Optional[int], n: int, drop_remainder: bool) -> int:
  """``batch_size`` as an int (``None`` -> ``n``), checked against ``n``."""
  if batch_size is None:
    return n
  b = validation.check_int("batch_size", batch_size, meaning=" (1: stochastic) or None (full batch)")
  if drop_remainder and b > n:
    raise ValueError(
        f"`batch_size`={batch_size} exceeds the {n} examples and "
        "`drop_remainder=True` would drop them all; lower it or keep the remainder"
    )
  return b


def check_shuffle(shuffle: Any, key: Any) -> None:
  """``shuffle`` is one of ``"epoch"``, ``"once"``, ``None``; a key if needed."""
  if not (shuffle is None or (isinstance(shuffle, str) and shuffle in SHUFFLE_MODES)):
    raise ValueError(f"`shuffle` must be 'epoch', 'once' or None; got {shuffle!r}")
  if shuffle is not None:
    if key is None:
      raise ValueError(
          f"`shuffle={shuffle!r}` needs a `key` (jax.random.key(seed)); pass "
          "shuffle=None for a fixed order"
      )
    if not isinstance(key, jax.Array):
      raise TypeError(
          "`key` must be a jax.random key (jax.random.key(seed)); got "
          f"{type(key).__name__}: {key!r}"
      )


def steps_per_epoch(n: int, batch_size: Optional[int], drop_remainder: bool = False) -> int:
  r"""Updates in one epoch: :math:`\lceil n / b \rceil`, or :math:`\lfloor n / b \rfloor`
  when the short last batch is dropped (``drop_remainder``, default ``False``).

  Note 004's minibatch gradient descent: one epoch is one pass over the
  ``X^{t}``; ``batch_size=None`` (batch gradient descent) is one step.

  Examples:
    >>> import jaxopt_notes as jn
    >>> jn.steps_per_epoch(10, 4), jn.steps_per_epoch(10, 4, drop_remainder=True), jn.steps_per_epoch(10, None)
    (3, 2, 1)
  """
  b = check_batch_size(batch_size, n, drop_remainder)
  return n // b if drop_remainder else math.ceil(n / b)


def epoch_order(key: Optional[jax.Array], epoch: int, n: int, shuffle: Optional[str]) -> jax.Array:
  """The order of the examples in epoch ``epoch`` (0-based), on the device.

  ``"epoch"`` draws a fresh permutation from ``fold_in(key, epoch)``;
  ``"once"`` reuses epoch 0's for every epoch (so the two agree in epoch 0);
  ``None`` is ``0..n-1``.
  """
  if shuffle is None:
    return jnp.arange(n)
  # A shuffle needs a key: the callers run check_shuffle first.
  return jax.random.permutation(jax.random.fold_in(cast(jax.Array, key), 0 if shuffle == "once" else epoch), n)


@functools.partial(jax.jit, static_argnames="size")
def take_batch(data: Any, order: jax.Array, start: jax.Array, size: int) -> Any:
  """Rows ``order[start:start + size]`` of every leaf (one gather per leaf)."""
  idx = jax.lax.dynamic_slice_in_dim(order, start, size)
  return jax.tree.map(lambda x: jnp.take(x, idx, axis=0), data)


def minibatches(
    data: Any,
    batch_size: Optional[int],
    *,
    key: Optional[jax.Array],
    shuffle: Optional[str] = "epoch",
    drop_remainder: bool = False,
    epochs: int = 1,
) -> Iterator[Any]:
  r"""Iterates over ``data`` in batches of ``batch_size`` examples, epoch after epoch.

  .. math::
     \text{epoch } e:\ \pi_e = \mathrm{perm}(\mathrm{fold\_in}(key, e)),\quad
     B_{e,i} = \{\pi_e[i b], \dots, \pi_e[(i+1) b - 1]\},\quad
     i = 0, \dots, \lceil n / b \rceil - 1

  The notes' ``minibatch = sample_data(data, batch_size)`` (note 000),
  with note 002's sampling without replacement: every example is seen once per
  epoch. ``batch_size=None`` (or any ``b >= n``) is batch gradient descent
  (each step sees all ``n`` examples, in their stored order: reordering a
  full batch only changes the summation order), ``1`` is stochastic and
  ``k`` minibatch descent (note 004 suggests 64..512). The last batch of an
  epoch holds the remaining ``n mod b`` examples, or is dropped with
  ``drop_remainder=True`` (then every batch has the same shape and a jitted
  step compiles once).

  The order is a pure function of ``key``: the same key gives the same batches,
  bit for bit. The data are put on the device once, when this is called; each
  batch is one gather on the device. Checks run here, not at the first
  ``next``.

  Args:
    data: a pytree of arrays whose leading axes all have the same size ``n``
      (e.g. ``(x, y)`` or ``{"image": x, "label": y}``).
    batch_size: ``None`` (full batch), ``1`` (stochastic) or ``k >= 1``.
    key: a ``jax.random`` key; may be ``None`` only with ``shuffle=None``.
    shuffle: ``"epoch"`` (default) reshuffles each epoch, ``"once"`` draws one
      order and repeats it (note 002, for huge data sets), ``None`` keeps the
      stored order.
    drop_remainder: drop each epoch's short last batch (default ``False``).
    epochs: number of passes (default 1).

  Returns:
    An iterator of pytrees shaped like ``data`` with leading size ``b`` (the
    remainder batch: ``n mod b``); :func:`steps_per_epoch` times ``epochs``
    of them.

  Raises:
    ValueError: for ``batch_size <= 0``, ``batch_size > n`` with
      ``drop_remainder``, leaves of different leading sizes (naming the leaf
      path), a bad ``shuffle`` or ``epochs``, or a missing key.

  Reference: Goodfellow, Bengio & Courville, *Deep Learning*, sec. 8.1.3.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> data = {"x": jnp.arange(5.0)}
    >>> [batch["x"].tolist() for batch in jn.minibatches(data, 2, key=None, shuffle=None)]
    [[0.0, 1.0], [2.0, 3.0], [4.0]]
    >>> batches = jn.minibatches(data, 2, key=jax.random.key(0), drop_remainder=True, epochs=2)
    >>> [batch["x"].shape for batch in batches]  # two per epoch, from a fresh permutation each epoch
    [(2,), (2,), (2,), (2,)]
  """
  n = num_examples(data)
  b = check_batch_size(batch_size, n, drop_remainder)
  check_shuffle(shuffle, key)
  epochs = validation.check_int("epochs", epochs)
  data = jax.device_put(data)
  return _iterate(data, n, b, key, shuffle, bool(drop_remainder), epochs)


def _iterate(data, n, b, key, shuffle, drop_remainder, epochs) -> Iterator[Any]:
  if b >= n:
    for _ in range(epochs):
      yield data
    return
  full, rest = divmod(n, b)
  for epoch in range(epochs):
    order = epoch_order(key, epoch, n, shuffle)
    for i in range(full):
      yield take_batch(data, order, i * b, b)
    if rest and not drop_remainder:
      yield take_batch(data, order, full * b, rest)
