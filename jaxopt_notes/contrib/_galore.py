r"""GaLore: the base optimizer runs on low-rank projections of the matrix gradients.

Each matrix leaf (by default every 2-D leaf; with
:class:`GaLoreDimensionNumbers`, any leaf of rank >= 2 whose axes are split
into a "reduction" group and an "output" group) is seen as an ``m x n``
matrix ``G``. Every ``update_proj_gap`` steps its projector ``P`` is
refreshed from the top singular vectors of the current gradient; in
between it is kept. The base optimizer (Adam by default) sees only ``P^T G``
(``m >= n``) or ``G P`` (``m < n``), so its moments are ``r x n`` or
``m x r``; its output is mapped back by ``P`` and multiplied by ``scale``.
Every other leaf goes through the base optimizer unprojected (so with the
default Adam and a weight decay, those leaves train with AdamW).
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.transforms import masking, scaling
from jaxopt_notes.transforms.adam_family import scale_by_adam

__all__ = ["GaLoreDimensionNumbers", "GaLoreState", "galore", "scale_by_galore"]


class GaLoreDimensionNumbers(NamedTuple):
  """Which axes of a leaf form the rows and which the columns of GaLore's matrix.

  The leaf is transposed to ``reduction_axis + output_axis`` and reshaped to
  ``(prod(reduction sizes), prod(output sizes))``; together the two groups
  must name every axis once (negative axes count from the end). A
  ``(embed, heads, head_dim)`` attention kernel is one matrix with
  ``GaLoreDimensionNumbers(reduction_axis=0, output_axis=(1, 2))``; an HWIO
  conv kernel with ``reduction_axis=(0, 1, 2), output_axis=3``. Same fields
  and defaults as ``optax.contrib.GaLoreDimensionNumbers``.

  Examples:
    >>> from jaxopt_notes.contrib import GaLoreDimensionNumbers
    >>> GaLoreDimensionNumbers(reduction_axis=0, output_axis=(1, 2))
    GaLoreDimensionNumbers(reduction_axis=0, output_axis=(1, 2))
  """

  reduction_axis: Union[Sequence[int], int] = 0  # the matrix's rows (the input side)
  output_axis: Union[Sequence[int], int] = 1  # the matrix's columns (the output side)


GaLoreDimNumsOrFn = Union[GaLoreDimensionNumbers, base.Params, Callable[[base.Params], Optional[base.Params]]]


class GaLoreState(NamedTuple):
  """State of :func:`scale_by_galore` (the first entry of :func:`galore`'s chain state)."""

  count: jax.Array  # type: ignore[assignment]  # int32 scalar, steps taken (named as optax's)
  base_optimizer_state: base.OptState  # the base optimizer's state, on the projected shapes
  projector: base.Updates  # P per leaf: (m, r) or (n, r); (0, 0) for leaves not projected


def _is_dim_nums(x: Any) -> bool:
  return isinstance(x, GaLoreDimensionNumbers)


def _axes(axis: Union[Sequence[int], int], ndim: int) -> tuple[int, ...]:
  if isinstance(axis, int):
    return (axis % ndim,)
  return tuple(a % ndim for a in axis)


def _matrix_view(shape: tuple[int, ...], dims: GaLoreDimensionNumbers):
  """``(to_matrix, from_matrix, (m, n))`` for a leaf of ``shape`` under ``dims``."""
  ndim = len(shape)
  if ndim < 2:
    raise ValueError(
        f"`weight_dimension_numbers` gives a leaf of shape {shape} a matrix spec; "
        f"GaLore projects leaves of rank >= 2 only (got rank {ndim})"
    )
  rows, cols = _axes(dims.reduction_axis, ndim), _axes(dims.output_axis, ndim)
  if set(rows) & set(cols):
    raise ValueError(
        f"`weight_dimension_numbers`: the reduction axes {rows} and output axes {cols} "
        f"must be disjoint; got {dims} for shape {shape}"
    )
  if len(set(rows) | set(cols)) != ndim:
    raise ValueError(
        f"`weight_dimension_numbers` must name every axis once; got reduction {rows} and "
        f"output {cols} for shape {shape}"
    )
  perm = rows + cols
  inverse = tuple(sorted(range(ndim), key=lambda i: perm[i]))
  m = math.prod(shape[a] for a in rows)
  n = math.prod(shape[a] for a in cols)
  permuted = tuple(shape[a] for a in perm)

  def to_matrix(x):
    return x.transpose(perm).reshape(m, n)

  def from_matrix(y):
    return y.reshape(permuted).transpose(inverse)

  return to_matrix, from_matrix, (m, n)


def _resolve_dims(spec: Optional[GaLoreDimNumsOrFn], tree: Any) -> Any:
  """A tree shaped like ``tree`` with a spec or ``None`` (not projected) per leaf."""
  if spec is None:
    return jax.tree.map(lambda p: GaLoreDimensionNumbers() if p.ndim == 2 else None, tree)
  if callable(spec):
    return spec(tree)
  if _is_dim_nums(spec):
    return jax.tree.map(lambda p: spec if p.ndim >= 2 else None, tree)
  return spec


def _map_leaves(fn: Callable, tree: Any, *rest: Any) -> Any:
  # ``tree`` (the params or updates) leads, so each of its array leaves gets
  # the spec (a NamedTuple, or None) in the same place of the dims tree whole,
  # and a None in the params is an empty subtree, not a leaf.
  return jax.tree.map(fn, tree, *rest)


def _unzip(tree: Any, results: Any) -> tuple[Any, Any]:
  return jax.tree.transpose(jax.tree.structure(tree), jax.tree.structure((0, 0)), results)


def scale_by_galore(
    rank: int = 128,
    update_proj_gap: int = 200,
    scale: float = 1.0,
    base_optimizer: Optional[base.GradientTransformation] = None,
    weight_dimension_numbers: Optional[GaLoreDimNumsOrFn] = None,
) -> base.GradientTransformation:
  r"""GaLore's scaling: the base optimizer in a low-rank subspace of each matrix gradient.

  For a matrix leaf with gradient :math:`G_t \in \mathbb{R}^{m \times n}`,
  :math:`r = \min(\text{rank}, m, n)` and :math:`T` = ``update_proj_gap``:

  .. math::
     P_t = \begin{cases} U_{:, :r} \ (m \ge n), \ V_{:, :r} \ (m < n)
           & t \bmod T = 0, \ G_t = U \Sigma V^\top \\
           P_{t-1} & \text{otherwise} \end{cases}

     R_t = P_t^\top G_t \ (m \ge n), \quad R_t = G_t P_t \ (m < n), \quad
     N_t = \mathrm{base}(R_t), \quad
     u_t = \alpha\, P_t N_t \ (m \ge n), \quad u_t = \alpha\, N_t P_t^\top \ (m < n)

  with :math:`\alpha` = ``scale`` and :math:`t` counted from 0. The SVD runs
  in float32 (in float64 too, as optax's) and :math:`P` is kept in the
  gradient's dtype. Leaves that are not projected (no spec) get the base
  optimizer's update as it is, without :math:`\alpha`. Zhao et al., "GaLore:
  Memory-Efficient LLM Training by Gradient Low-Rank Projection", ICML 2024
  (arXiv:2403.03507). Defaults: ``rank=128``, ``update_proj_gap=200``,
  ``scale=1.0``, base :func:`~jaxopt_notes.scale_by_adam`, every 2-D leaf
  projected.

  The base optimizer is updated with ``params=None`` (its inputs have the
  projected shapes), so it must not need the params: use ``scale_by_adam``,
  ``scale_by_lion``, ``sgd(1.0)``..., not ``adamw`` (decay with
  :func:`galore`'s ``weight_decay``).

  Checked against ``optax.contrib.scale_by_galore`` (optax 0.2.8): state and
  50-step jitted trajectories bitwise equal in float32 and float64, the
  SVD included (op by op through :func:`galore`). Deliberate differences: the arguments are
  checked when it is built and ``init`` refuses integer params; a ``None``
  in the params is an empty subtree (optax's ``init`` fails on it).

  Args:
    rank: the largest projection rank, an integer >= 1 (default 128).
    update_proj_gap: :math:`T \ge 1`, steps between projector refreshes
      (default 200).
    scale: :math:`\alpha`, multiplies the projected leaves' updates
      (default 1.0).
    base_optimizer: the transform run on the projected gradients (ours or
      optax's); ``None``: ``scale_by_adam()``.
    weight_dimension_numbers: which leaves are matrices: ``None`` (every
      2-D leaf, default), one :class:`GaLoreDimensionNumbers` (for every
      leaf of rank >= 2), a tree of them with ``None`` for the leaves left
      as they are, or a function of the params returning such a tree.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxopt_notes.contrib import scale_by_galore
    >>> tx = scale_by_galore(rank=1)
    >>> g = {"w": jnp.array([[3.0, 0.0], [0.0, 1.0], [0.0, 0.0]])}
    >>> state = tx.init(g)
    >>> print(state.projector["w"].shape, state.base_optimizer_state.mu["w"].shape)
    (3, 1) (1, 2)
    >>> u, state = tx.update(g, state)
    >>> print(jnp.round(jnp.abs(u["w"]), 3))  # Adam's first step, in the top singular direction
    [[1. 0.]
     [0. 0.]
     [0. 0.]]
  """
  rank = validation.check_int("rank", rank)
  update_proj_gap = validation.check_int("update_proj_gap", update_proj_gap)
  validation.check_finite("scale", scale)
  if base_optimizer is None:
    base_optimizer = scale_by_adam()
  base_optimizer = base.as_transform(base_optimizer, "base_optimizer")

  def shapes(p, dims):
    if dims is None:
      return jnp.zeros((0, 0), dtype=p.dtype), tree_lib.placed_like(p, jnp.zeros_like(p))
    _, _, (m, n) = _matrix_view(p.shape, dims)
    r = min(rank, m, n)
    projector, proxy = ((m, r), (r, n)) if m >= n else ((n, r), (m, r))

    def zeros(shape):
      # At full rank a factor can have the param's shape (its rows the param's
      # rows): that one is split like the param, as a moment would be.
      z = jnp.zeros(shape, dtype=p.dtype)
      return tree_lib.placed_like(p, z) if shape == p.shape else z

    return zeros(projector), zeros(proxy)

  def init_fn(params):
    if not jax.tree.leaves(params):
      # No leaves (e.g. tree.map_params' placeholder): the same empty tree.
      return GaLoreState(
          count=jnp.zeros([], jnp.int32), base_optimizer_state=base_optimizer.init(params), projector=params
      )
    validation.check_float_params(params)
    projectors, proxies = _unzip(params, _map_leaves(shapes, params, _resolve_dims(weight_dimension_numbers, params)))
    return GaLoreState(
        count=jnp.zeros([], jnp.int32), base_optimizer_state=base_optimizer.init(proxies), projector=projectors
    )

  def update_fn(updates, state, params=None):
    del params
    refresh = (state.count % update_proj_gap) == 0
    dims_tree = _resolve_dims(weight_dimension_numbers, updates)

    def project(g, projector, dims):
      if dims is None:
        return g, projector
      to_matrix, _, (m, n) = _matrix_view(g.shape, dims)
      g2 = to_matrix(g)
      r = min(rank, m, n)
      dtype = g.dtype
      if m >= n:
        def left():
          u, _, _ = jnp.linalg.svd(g2.astype(jnp.float32), full_matrices=False)
          return u[:, :r].astype(dtype)

        new = jax.lax.cond(refresh, left, lambda: projector)
        return new.T @ g2, new

      def right():
        _, _, vh = jnp.linalg.svd(g2.astype(jnp.float32), full_matrices=False)
        return vh[:r, :].T.astype(dtype)

      new = jax.lax.cond(refresh, right, lambda: projector)
      return g2 @ new, new

    def project_back(n_t, projector, g, dims):
      if dims is None:
        return n_t
      _, from_matrix, (m, n) = _matrix_view(g.shape, dims)
      full = projector @ n_t if m >= n else n_t @ projector.T
      return (scale * from_matrix(full)).astype(g.dtype)

    low_rank, projectors = _unzip(updates, _map_leaves(project, updates, state.projector, dims_tree))
    low_rank_updates, base_state = base_optimizer.update(low_rank, state.base_optimizer_state, None)
    full = _map_leaves(project_back, low_rank_updates, projectors, updates, dims_tree)
    return full, GaLoreState(
        count=tree_lib.safe_increment(state.count), base_optimizer_state=base_state, projector=projectors
    )

  return base.GradientTransformation(init_fn, update_fn)


def galore(
    learning_rate: base.ScalarOrSchedule,
    rank: int = 128,
    update_proj_gap: int = 200,
    scale: float = 1.0,
    base_optimizer: Optional[base.GradientTransformation] = None,
    weight_decay: jax.typing.ArrayLike = 0.0,
    mask: Optional[masking.Mask] = None,
    weight_dimension_numbers: Optional[GaLoreDimNumsOrFn] = None,
) -> base.GradientTransformationExtraArgs:
  r"""GaLore: Adam (or another base) on low-rank projections of the matrix gradients, then decay and step.

  .. math::
     u_t = -\eta_t \big(\mathrm{galore}(g_t) + \lambda x_t\big)

  with :math:`\mathrm{galore}` the projected base update of
  :func:`scale_by_galore` (matrix leaves: :math:`\alpha P_t\,
  \mathrm{base}(P_t^\top g_t)` or its right-sided form; other leaves:
  :math:`\mathrm{base}(g_t)`) and :math:`\lambda` = ``weight_decay``
  applied in the full parameter space (decoupled, as AdamW; ``mask``
  chooses the leaves). Zhao et al., "GaLore: Memory-Efficient LLM Training by
  Gradient Low-Rank Projection", ICML 2024 (arXiv:2403.03507). Chain:
  :func:`scale_by_galore`, :func:`~jaxopt_notes.add_decayed_weights`,
  :func:`~jaxopt_notes.scale_by_learning_rate`. Defaults: ``rank=128``,
  ``update_proj_gap=200``, ``scale=1.0``, base ``scale_by_adam()``,
  ``weight_decay=0.0``, every 2-D leaf projected. ``update`` needs ``params``
  (the decay step asks for them even at rate 0, as optax's).

  Checked against ``optax.contrib.galore`` (optax 0.2.8): state and 50-step
  trajectories bitwise equal, jitted, float32 and float64, for the
  defaults and every option (rank, gap, scale, base optimizer, decay and
  mask, dimension numbers for 3-D and conv kernels, schedules); op by op
  (12 steps, four projector refreshes) for dimension numbers with decay.
  Deliberate differences: the arguments are checked when it is built
  (``learning_rate=None`` is refused) and ``init`` refuses integer params; a
  ``None`` in the params is an empty subtree (optax's ``init`` fails on it).

  Args:
    learning_rate: :math:`\eta_t`, a number or a schedule.
    rank: the largest projection rank, an integer >= 1 (default 128).
    update_proj_gap: steps between projector refreshes, >= 1 (default 200).
    scale: multiplies the projected leaves' updates (default 1.0).
    base_optimizer: the transform run on the projected gradients; ``None``:
      ``scale_by_adam()`` (one with its own learning rate wants
      ``learning_rate=1.0`` here).
    weight_decay: :math:`\lambda`, decoupled decay (default 0.0).
    mask: which leaves to decay (a pytree of booleans or a function of the
      params); ``None``: all.
    weight_dimension_numbers: which leaves are matrices; see
      :func:`scale_by_galore`.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> from jaxopt_notes.contrib import galore
    >>> f = lambda p: jnp.sum(p["w"] ** 2) + jnp.sum(p["b"] ** 2)
    >>> tx = galore(0.1, rank=2, update_proj_gap=5, weight_decay=0.01)
    >>> p = {"w": jnp.arange(12.0).reshape(4, 3) / 10, "b": jnp.ones(3)}
    >>> state = tx.init(p)
    >>> for _ in range(20):
    ...   u, state = tx.update(jax.grad(f)(p), state, p)
    ...   p = jn.apply_updates(p, u)
    >>> print(round(float(f(p)), 4))  # from 8.06
    0.6822
  """
  validation.check_learning_rate(learning_rate)
  return combine.chain(
      scale_by_galore(rank, update_proj_gap, scale, base_optimizer, weight_dimension_numbers),
      scaling.add_decayed_weights(weight_decay, mask),
      scaling.scale_by_learning_rate(learning_rate),
  )
