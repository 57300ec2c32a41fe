"""Microbatching: evaluate a function of a large batch one slice at a time.

A batch that does not fit in memory (note 004's mini-batch size is bounded by
the device) is split along its batch axis into ``n`` microbatches, the
function runs on each in turn inside a ``lax.fori_loop``, and an
:class:`Accumulator` combines the results (a sum, a mean, a concatenation).
For a loss that is a mean over examples, the mean of the microbatch
gradients *is* the full-batch gradient, at ``1/n`` of the peak memory.

* :func:`microbatch`   the general transformation of a function;
* :func:`micro_vmap`   ``jax.vmap`` whose batch is processed in microbatches;
* :func:`micro_grad`   per-example gradients, transformed (e.g. clipped) and
  reduced in microbatches;
* :func:`reshape_batch_axis` the split itself (column-major, so a sharded
  batch axis stays sharded).

Same API and numbers as ``optax.microbatching`` in optax 0.2.8; also reachable
as the namespace ``jaxopt_notes.microbatching``.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Sequence
from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp

from jaxopt_notes.core import validation

__all__ = [
    "AccumulationType",
    "Accumulator",
    "IndividualOutputs",
    "micro_grad",
    "micro_vmap",
    "microbatch",
    "reshape_batch_axis",
]

Function = Callable[..., Any]
TreeFn = Callable[[Any], Any]


@dataclasses.dataclass(frozen=True)
class Accumulator:
  """How the per-microbatch results ``x_0``, ..., ``x_{n-1}`` of a function combine into one.

  The loop it stands for is::

      carry = init(shape_of_x0)
      for i in range(n):
        carry = update(carry, x_i, i)
      result = finalize(carry)

  Attributes:
    init: ``shape/dtype struct of one result -> initial carry``.
    update: ``(carry, result, index) -> carry``.
    finalize: ``carry -> the combined result``.
    aggregate: ``results stacked on axis 0 -> the combined result`` (what
      :func:`micro_vmap` applies inside one microbatch).

  Examples:
    A running maximum over microbatches of two:

    >>> import jax.numpy as jnp
    >>> from jaxopt_notes import microbatching as mb
    >>> running_max = mb.Accumulator(
    ...     init=lambda x: jnp.full_like(x, -jnp.inf), update=lambda c, x, i: jnp.maximum(c, x),
    ...     finalize=lambda c: c, aggregate=lambda xs: jnp.max(xs, axis=0))
    >>> f = mb.microbatch(lambda x: jnp.max(x, axis=0), argnums=0, microbatch_size=2, accumulator=running_max)
    >>> print(f(jnp.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0])))
    9.0
  """

  init: TreeFn
  update: Callable[[Any, Any, Any], Any]
  finalize: TreeFn
  aggregate: TreeFn


class AccumulationType(enum.Enum):
  """The built-in ways of combining microbatch results."""

  MEAN = enum.auto()
  """The mean over the ``n`` microbatches (floating results only)."""
  SUM = enum.auto()
  """The sum over the microbatches."""
  RUNNING_MEAN = enum.auto()
  """The mean over the microbatches actually run (``num_real_microbatches``)."""
  CONCAT = enum.auto()
  """The results concatenated along axis 0, in the batch's order."""


class IndividualOutputs(NamedTuple):
  """The per-example outputs of :func:`micro_grad`'s function, beside its gradients.

  Attributes:
    values: the function's value on each example.
    metrics: ``metrics_fn`` of each example's gradient.
    aux: the function's auxiliary output per example (``None`` without ``has_aux``).
  """

  values: Any
  metrics: Any
  aux: Any


def _require_floating(fn: Function) -> Function:
  @functools.wraps(fn)
  def checked(x):
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise ValueError(
          f"the MEAN and RUNNING_MEAN accumulators need floating-point results; got dtype {x.dtype} "
          "(use SUM for integers)"
      )
    return fn(x)

  return checked


def _per_leaf(acc: Accumulator) -> Accumulator:
  """An accumulator of single arrays applied to every leaf of a result tree."""
  return Accumulator(
      init=lambda value: jax.tree.map(acc.init, value),
      update=lambda carry, value, i: jax.tree.map(lambda c, v: acc.update(c, v, i), carry, value),
      finalize=lambda carry: jax.tree.map(acc.finalize, carry),
      aggregate=lambda values: jax.tree.map(acc.aggregate, values),
  )


def _sum() -> Accumulator:
  return _per_leaf(Accumulator(
      init=jnp.zeros_like,
      update=lambda carry, value, _: carry + value,
      finalize=lambda carry: carry,
      aggregate=functools.partial(jnp.sum, axis=0),
  ))


def _mean(n: int) -> Accumulator:
  return _per_leaf(Accumulator(
      init=_require_floating(jnp.zeros_like),
      update=lambda carry, value, _: carry + value,
      finalize=lambda carry: carry / n,
      aggregate=functools.partial(jnp.mean, axis=0),
  ))


def _running_mean() -> Accumulator:
  def update(carry, value, index):
    # After i + 1 results: mean_{i+1} = mean_i * i / (i + 1) + x_i / (i + 1).
    kept = index / (index + 1)
    return carry * kept + value * (1 - kept)

  return _per_leaf(Accumulator(
      init=_require_floating(jnp.zeros_like),
      update=update,
      finalize=lambda carry: carry,
      aggregate=functools.partial(jnp.mean, axis=0),
  ))


def _explicit_sharding(x: Any):
  """``x``'s sharding when it lives on a mesh whose axes are all explicit, else ``None``."""
  sharding = getattr(jax.typeof(x), "sharding", None)
  mesh = getattr(sharding, "mesh", None)
  if mesh is None or not getattr(mesh, "are_all_axes_explicit", False):
    return None
  return sharding


def _concat(n: int) -> Accumulator:
  def init(value):
    return jnp.broadcast_to(jnp.zeros_like(value), (n,) + tuple(value.shape))

  def finalize(carry):
    # (n, m, ...) back to (n * m, ...) in column-major order: the inverse of
    # reshape_batch_axis, so example k returns to row k.
    sharding = _explicit_sharding(carry)
    if sharding is None:
      return carry.reshape(-1, *carry.shape[2:], order="F")
    spec = jax.sharding.PartitionSpec(*sharding.spec[1:]) if sharding.spec else jax.sharding.PartitionSpec()
    out = jax.sharding.NamedSharding(sharding.mesh, spec)
    return carry.reshape(-1, *carry.shape[2:], order="F", out_sharding=out)

  return _per_leaf(Accumulator(
      init=init,
      update=lambda carry, value, index: carry.at[index].set(value),
      finalize=finalize,
      aggregate=lambda values: values,
  ))


def _as_type(acc: Any) -> Any:
  """optax's AccumulationType members (matched by name) as ours; anything else as it is."""
  if isinstance(acc, enum.Enum) and type(acc).__name__ == "AccumulationType":
    return AccumulationType.__members__.get(acc.name, acc)
  return acc


def _resolve(tree: Any, n: int) -> Accumulator:
  """One accumulator for a whole result from a tree (a prefix of it) of types/accumulators."""

  def one(acc):
    if isinstance(acc, Accumulator):
      return acc
    acc = _as_type(acc)
    if acc is AccumulationType.SUM:
      return _sum()
    if acc is AccumulationType.MEAN:
      return _mean(n)
    if acc is AccumulationType.RUNNING_MEAN:
      return _running_mean()
    if acc is AccumulationType.CONCAT:
      return _concat(n)
    raise ValueError(
        f"`accumulator` leaves must be AccumulationType members or Accumulator objects; got {acc!r}"
    )

  accs = jax.tree.map(one, tree)
  return Accumulator(
      init=lambda values: jax.tree.map(lambda a, v: a.init(v), accs, values),
      update=lambda carry, values, i: jax.tree.map(lambda a, c, v: a.update(c, v, i), accs, carry, values),
      finalize=lambda carry: jax.tree.map(lambda a, c: a.finalize(c), accs, carry),
      aggregate=lambda values: jax.tree.map(lambda a, v: a.aggregate(v), accs, values),
  )


def _check_accumulator_tree(accumulator: Any) -> None:
  for leaf in jax.tree.leaves(accumulator):
    if not isinstance(_as_type(leaf), (Accumulator, AccumulationType)):
      raise TypeError(
          "`accumulator` must be an AccumulationType, an Accumulator, or a pytree (a prefix of "
          f"the function's output) of them; got a leaf {type(leaf).__name__}: {leaf!r:.60}"
      )


def reshape_batch_axis(tree: Any, microbatch_size: int, axis: int = 0) -> Any:
  r"""Splits the batch axis of every leaf into ``(num_microbatches, microbatch_size)``.

  .. math:: x[\ldots, b, \ldots] \mapsto x[\ldots, i, j, \ldots], \qquad b = i + n j

  The split is column-major: microbatch ``i`` holds examples ``i, i + n,
  i + 2n, ...``. A batch axis sharded over devices then stays sharded along
  the new ``microbatch_size`` axis (each device keeps its examples), and the
  ``num_microbatches`` axis is replicated; on a mesh with explicit axes the
  result's sharding says so. Same as
  ``optax.microbatching.reshape_batch_axis``.

  Args:
    tree: a pytree of arrays with a batch axis at ``axis``.
    microbatch_size: examples per microbatch; must divide the batch size.
    axis: the batch axis (default 0).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.microbatching.reshape_batch_axis(jnp.arange(6), 3)
    Array([[0, 2, 4],
           [1, 3, 5]], dtype=int32)
  """
  size = validation.check_int("microbatch_size", microbatch_size)
  validation.check_int("axis", axis, minimum=0)

  def split(x):
    if x.ndim <= axis or x.shape[axis] % size:
      raise ValueError(
          f"reshape_batch_axis: a leaf of shape {x.shape} has no batch axis {axis} divisible "
          f"by `microbatch_size` {size}"
      )
    shape = x.shape[:axis] + (-1, size) + x.shape[axis + 1:]
    sharding = _explicit_sharding(x)
    if sharding is None:
      return x.reshape(shape, order="F")
    spec = tuple(sharding.spec)
    if len(spec) > axis:
      spec = spec[:axis] + (None, spec[axis]) + spec[axis + 1:]
    devices_on_axis = x.shape[axis] // sharding.shard_shape(x.shape)[axis]
    if size % devices_on_axis:
      raise ValueError(
          f"`microbatch_size` {size} must be a multiple of the {devices_on_axis} shards of the batch axis"
      )
    out = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec(*spec))
    return x.reshape(shape, order="F", out_sharding=out)

  return jax.tree.map(split, tree)


def _as_tuple(value: Any, kind: type) -> tuple:
  return (value,) if isinstance(value, kind) else tuple(value)


def microbatch(
    fun: Function,
    argnums: Union[int, Sequence[int]],
    microbatch_size: Optional[int],
    accumulator: Any = AccumulationType.SUM,
    *,
    argnames: Union[str, Sequence[str]] = (),
    in_axes: Union[int, Sequence[int]] = 0,
    num_real_microbatches: Optional[Union[int, jax.Array]] = None,
) -> Function:
  r"""``fun`` evaluated on one microbatch at a time, its results combined by ``accumulator``.

  .. math:: F(x) = \operatorname{acc}\big(f(x^{(0)}), \ldots, f(x^{(n-1)})\big)

  where :math:`x^{(i)}` is microbatch ``i`` of every batch argument
  (:func:`reshape_batch_axis`) and the evaluations run in sequence in a
  ``lax.fori_loop``, so only one microbatch's intermediates are live. For
  an ``f`` that is a sum (or, with MEAN, a mean) over examples, ``F`` equals
  ``f`` on the whole batch: the gradient accumulation of note 004's
  mini-batch training, without :class:`MultiSteps`' extra optimizer steps.
  Same as ``optax.microbatch``.

  Args:
    fun: any function.
    argnums: positions of the arguments that have a batch axis.
    microbatch_size: examples per microbatch, dividing the batch size;
      ``None`` returns ``fun`` itself.
    accumulator: an :class:`AccumulationType` (optax's members work too),
      an :class:`Accumulator`, or a pytree of them that is a prefix of
      ``fun``'s output (default SUM).
    argnames: names of keyword arguments that have a batch axis.
    in_axes: the batch axis of each argument of ``argnums + argnames`` (one
      int for all; default 0).
    num_real_microbatches: run only this many microbatches (may be traced:
      a variable batch size without recompiling).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> f = lambda x: (2 * x, jnp.sum(x))
    >>> types = (jn.AccumulationType.CONCAT, jn.AccumulationType.SUM)
    >>> jn.microbatch(f, argnums=0, microbatch_size=2, accumulator=types)(jnp.arange(4.0))
    (Array([0., 2., 4., 6.], dtype=float32), Array(6., dtype=float32))
  """
  validation.check_callable("fun", fun)
  if microbatch_size is None:
    return fun
  size = validation.check_int("microbatch_size", microbatch_size)
  argnums = _as_tuple(argnums, int)
  argnames = _as_tuple(argnames, str)
  in_axes = (in_axes,) * (len(argnums) + len(argnames)) if isinstance(in_axes, int) else tuple(in_axes)
  if len(in_axes) != len(argnums) + len(argnames):
    raise ValueError(
        f"`in_axes` has {len(in_axes)} entries but `argnums` + `argnames` name "
        f"{len(argnums) + len(argnames)} batch arguments"
    )
  _check_accumulator_tree(accumulator)
  if num_real_microbatches is not None and not isinstance(num_real_microbatches, jax.core.Tracer):
    validation.check_int("num_real_microbatches", num_real_microbatches, minimum=0)
  positional_axes = dict(zip(argnums, in_axes))
  keyword_axes = dict(zip(argnames, in_axes[len(argnums):]))

  def batched(*args, **kwargs):
    args = list(args)
    batch = [(args[i], ax) for i, ax in positional_axes.items()]
    batch += [(kwargs[name], ax) for name, ax in keyword_axes.items()]
    sizes = sorted({x.shape[ax] for tree, ax in batch for x in jax.tree.leaves(tree)})
    if len(sizes) > 1:
      raise ValueError(f"the batch arguments must share one batch size; found sizes {sizes}")
    if not sizes:
      raise ValueError("microbatch: the batch arguments hold no arrays")
    if sizes[0] % size:
      raise ValueError(f"the batch size {sizes[0]} is not divisible by `microbatch_size` {size}")
    n = sizes[0] // size
    for i, ax in positional_axes.items():
      args[i] = reshape_batch_axis(args[i], size, ax)
    for name, ax in keyword_axes.items():
      kwargs[name] = reshape_batch_axis(kwargs[name], size, ax)
    acc = _resolve(accumulator, n)

    def on_microbatch(index):
      take = lambda ax: functools.partial(jnp.take, indices=index, axis=ax)
      a, kw = list(args), dict(kwargs)
      for i, ax in positional_axes.items():
        a[i] = jax.tree.map(take(ax), args[i])
      for name, ax in keyword_axes.items():
        kw[name] = jax.tree.map(take(ax), kwargs[name])
      return fun(*a, **kw)

    carry = acc.init(jax.eval_shape(on_microbatch, 0))
    steps = n if num_real_microbatches is None else num_real_microbatches
    carry = jax.lax.fori_loop(0, steps, lambda i, c: acc.update(c, on_microbatch(i), i), carry)
    return acc.finalize(carry)

  return batched


def micro_vmap(
    fun: Function,
    in_axes: Union[int, None, Sequence[Optional[int]]] = 0,
    out_axes: Any = 0,
    *,
    microbatch_size: Optional[int] = None,
    vmap_fn: Callable[..., Function] = jax.vmap,
    accumulator: Any = AccumulationType.CONCAT,
    num_real_microbatches: Optional[Union[int, jax.Array]] = None,
) -> Function:
  r"""``jax.vmap(fun)`` over a batch processed ``microbatch_size`` examples at a time.

  .. math:: F(x) = \operatorname{acc}\big(\operatorname{vmap}(f)(x^{(0)}), \ldots\big)

  With the default CONCAT it returns what ``jax.vmap(fun, in_axes)`` does,
  with the memory of one microbatch; SUM or MEAN reduce over the batch
  without ever holding every example's output. Keyword arguments are mapped
  over axis 0, as in ``jax.vmap``. Same as
  ``optax.microbatching.micro_vmap``; unlike optax, an int ``in_axes`` maps
  every positional argument (optax's maps the first only, and fails for
  more).

  Args:
    fun: the function to map over examples.
    in_axes: the batch axis of each positional argument (``None``: not
      mapped), or one int for all (default 0).
    out_axes: must be 0 (the only value supported, as in optax).
    microbatch_size: examples per microbatch (``None``: one microbatch).
    vmap_fn: a function with ``jax.vmap``'s signature (to pass vmap options).
    accumulator: how microbatch outputs combine (default CONCAT).
    num_real_microbatches: run only this many microbatches.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.micro_vmap(lambda x: x**2, microbatch_size=2)(jnp.arange(6.0))
    Array([ 0.,  1.,  4.,  9., 16., 25.], dtype=float32)
  """
  validation.check_callable("fun", fun)
  validation.check_callable("vmap_fn", vmap_fn)
  if out_axes != 0:
    raise NotImplementedError("micro_vmap supports `out_axes=0` only")
  _check_accumulator_tree(accumulator)

  def mapped(*args, **kwargs):
    axes = (in_axes,) * len(args) if in_axes is None or isinstance(in_axes, int) else tuple(in_axes)

    def vmap_and_aggregate(*a, kwargs):
      out = vmap_fn(fun, axes, out_axes)(*a, **kwargs)
      # aggregate() needs no microbatch count: any count will do here.
      return _resolve(accumulator, 1).aggregate(out)

    batch_positions = tuple(i for i, ax in enumerate(axes) if ax is not None)
    run = microbatch(
        vmap_and_aggregate,
        argnums=batch_positions,
        microbatch_size=microbatch_size,
        accumulator=accumulator,
        argnames="kwargs",
        in_axes=tuple(axes[i] for i in batch_positions) + (0,),
        num_real_microbatches=num_real_microbatches,
    )
    return run(*args, kwargs=kwargs)

  return mapped


def micro_grad(
    fun: Function,
    has_aux: bool = False,
    argnums: Union[int, Sequence[int]] = 0,
    *,
    batch_argnums: Union[int, Sequence[int]] = 1,
    keep_batch_dim: bool = True,
    microbatch_size: Optional[int] = None,
    accumulator: Any = AccumulationType.SUM,
    transform_fn: TreeFn = lambda x: x,
    metrics_fn: TreeFn = lambda x: None,
    num_real_microbatches: Optional[Union[int, jax.Array]] = None,
) -> Callable[..., tuple[Any, IndividualOutputs]]:
  r"""Per-example gradients, each transformed, then reduced over the batch in microbatches.

  .. math::
     G = \operatorname{acc}_b\, T\big(\nabla_\theta f(\theta; x_b)\big), \qquad
     \text{aux} = \big(f(\theta; x_b),\ M(\nabla_\theta f(\theta; x_b))\big)_b

  Like ``jax.value_and_grad`` but at the level of single examples: ``T``
  (``transform_fn``) can clip each example's gradient (per-example clipping
  of DP-SGD, :func:`per_example_global_norm_clip`) or return its square
  (a diagonal second moment, as notes 000/003/004's adaptive rules keep per
  coordinate), and ``M`` (``metrics_fn``) a small per-example statistic.
  Returns ``(G, IndividualOutputs(values, metrics, aux))`` with the outputs
  per example. Same as ``optax.microbatching.micro_grad`` (whose
  documentation points to arXiv:2510.00236 for its uses).

  Args:
    fun: ``fun(params, batch, ...) -> scalar`` (or ``(scalar, aux)``).
    has_aux: whether ``fun`` returns ``(value, aux)``.
    argnums: which arguments to differentiate (default 0).
    batch_argnums: the arguments with a batch axis (default 1).
    keep_batch_dim: call ``fun`` on batches of one example (shape ``(1, ...)``;
      default) rather than on single examples.
    microbatch_size: examples per microbatch (``None``: the whole batch at once).
    accumulator: how the transformed gradients combine (default SUM).
    transform_fn: ``T``, applied to each example's gradient.
    metrics_fn: ``M``, applied to each example's gradient; returned per example.
    num_real_microbatches: run only this many microbatches.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> loss = lambda w, x, y: 0.5 * jnp.mean((x @ w - y) ** 2)
    >>> grad_fn = jn.micro_grad(loss, batch_argnums=(1, 2), microbatch_size=2,
    ...                         accumulator=jn.AccumulationType.MEAN, metrics_fn=jnp.linalg.norm)
    >>> g, aux = grad_fn(jnp.zeros(1), jnp.ones((4, 1)), jnp.array([0.0, 1.0, 2.0, 3.0]))
    >>> g, aux.metrics
    (Array([-1.5], dtype=float32), Array([0., 1., 2., 3.], dtype=float32))
  """
  validation.check_callable("fun", fun)
  validation.check_flags(has_aux=has_aux, keep_batch_dim=keep_batch_dim)
  validation.check_callable("transform_fn", transform_fn)
  validation.check_callable("metrics_fn", metrics_fn)
  batch_argnums = _as_tuple(batch_argnums, int)
  if not batch_argnums:
    raise ValueError("`batch_argnums` must name at least one argument with a batch axis")
  with_aux = fun if has_aux else (lambda *a, **kw: (fun(*a, **kw), None))
  value_and_grad = jax.value_and_grad(with_aux, argnums, has_aux=True)

  def per_example(*args, **kwargs):
    (value, aux), grad = value_and_grad(*args, **kwargs)
    return transform_fn(grad), IndividualOutputs(values=value, metrics=metrics_fn(grad), aux=aux)

  def grad_fn(*args, **kwargs):
    if keep_batch_dim:
      # Each example keeps a batch axis of length 1 inside `fun`.
      args = tuple(
          jax.tree.map(lambda x: jnp.expand_dims(x, 1), a) if i in batch_argnums else a
          for i, a in enumerate(args)
      )
    axes = [None] * max(len(args), max(batch_argnums) + 1)
    for i in batch_argnums:
      axes[i] = 0
    run = micro_vmap(
        per_example,
        in_axes=tuple(axes),
        accumulator=(accumulator, AccumulationType.CONCAT),
        microbatch_size=microbatch_size,
        num_real_microbatches=num_real_microbatches,
    )
    return run(*args, **kwargs)

  return grad_fn
