"""Second moments in less memory: Adafactor's factored RMS and SM3's cover sets.

RMSProp and Adam (notes 000/003/004) keep one second-moment entry per
parameter, as much memory again as the model (twice with momentum). For an
``n x m`` weight matrix both rules here keep ``n + m`` numbers instead:

* :func:`scale_by_factored_rms` (Adafactor) stores an EMA of the row means and
  of the column means of ``g^2`` and rebuilds the full matrix as their
  rank-one outer product divided by the overall mean;
* :func:`scale_by_sm3` (SM3) keeps, for every row and every column, the
  largest accumulated ``g^2`` it has covered, and bounds each entry's
  AdaGrad sum by the smallest of its row's and its column's.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib

__all__ = [
    "FactoredState",
    "ScaleBySM3State",
    "scale_by_factored_rms",
    "scale_by_sm3",
]


def _decay_rate_pow(step: jax.Array, exponent: float = 0.8) -> jax.Array:
  """Adafactor's increasing decay ``1 - (t + 1)^(-exponent)`` at step ``t``, in float32."""
  t = jnp.asarray(step + 1, jnp.float32)
  return 1.0 - t ** (-exponent)


def _factored_axes(shape: tuple[int, ...], factored: bool, min_size: int) -> Optional[tuple[int, int]]:
  """``(second largest axis, largest axis)`` to factor over, or ``None`` for a full moment.

  A leaf is factored when it has two or more axes and its second largest
  dimension is at least ``min_size``; ties go to the lower axis first, as
  ``np.argsort`` orders them (and optax).
  """
  if not factored or len(shape) < 2:
    return None
  order = np.argsort(shape)
  if shape[order[-2]] < min_size:
    return None
  return int(order[-2]), int(order[-1])


def check_step_offset(name: str, value: Any) -> None:
  """An integer scalar (Python, numpy or a jax array; a traced one passes)."""
  validation.check_that(
      name, value, lambda v: np.issubdtype(v.dtype, np.integer) and v.ndim == 0, "an integer"
  )


class FactoredState(NamedTuple):
  """State of :func:`scale_by_factored_rms`.

  For a factored leaf ``v_row`` is the EMA of ``g^2`` averaged over the
  largest axis (the leaf's shape without it), ``v_col`` averaged over the
  second largest, and ``v`` a ``(1,)`` placeholder; for any other leaf ``v``
  is the full EMA (the leaf's shape) and ``v_row``, ``v_col`` are ``(1,)``
  placeholders. Same fields and layout as optax's.
  """

  count: jax.Array  # type: ignore[assignment]  # int32 scalar, steps taken (optax's name)
  v_row: base.Updates
  v_col: base.Updates
  v: base.Updates


def scale_by_factored_rms(
    factored: bool = True,
    decay_rate: jax.typing.ArrayLike = 0.8,
    step_offset: jax.typing.ArrayLike = 0,
    min_dim_size_to_factor: int = 128,
    epsilon: jax.typing.ArrayLike = 1e-30,
    decay_rate_fn: Callable[[jax.Array, Any], Any] = _decay_rate_pow,
) -> base.GradientTransformation:
  r"""Adafactor's scaling: divide by a rank-one (factored) estimate of the RMS.

  With ``G = g^2 + epsilon`` and a decay :math:`\hat\beta_t` that grows with
  the step (default :math:`1 - (t+1)^{-0.8}`), a factored matrix leaf keeps

  .. math::
     R_t = \hat\beta_t R_{t-1} + (1 - \hat\beta_t)\, \mathrm{mean}_{cols}(G), \quad
     C_t = \hat\beta_t C_{t-1} + (1 - \hat\beta_t)\, \mathrm{mean}_{rows}(G), \quad
     u = \frac{g}{\sqrt{R_t C_t^\top / \mathrm{mean}(R_t)}}

  and any other leaf the full RMSProp average
  :math:`V_t = \hat\beta_t V_{t-1} + (1 - \hat\beta_t) G`, :math:`u = g / \sqrt{V_t}`.
  The per-coordinate scaling of RMSProp (notes 000/003/004) with its
  second moment stored in ``n + m`` numbers instead of ``n m``: Shazeer &
  Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost",
  ICML 2018 (arXiv:1804.04235); a capped ``decay_rate_fn`` as in Zhai et al.,
  2021 (arXiv:2106.04560) keeps the average from freezing. A leaf of rank
  two or more is factored over its two largest axes when the smaller of the
  two is at least ``min_dim_size_to_factor`` (for a conv kernel the other
  axes stay whole in both factors). Needs ``params`` (their shapes pick the
  layout). Same state and numbers as ``optax.scale_by_factored_rms``.

  Args:
    factored: factor the leaves that qualify (default ``True``); ``False``
      keeps full second moments everywhere.
    decay_rate: the exponent passed to ``decay_rate_fn`` (default 0.8), ``>= 0``.
    step_offset: an integer subtracted from the step count before the
      decay is computed (default 0): the count a fine-tuning run resumes
      from, so that its decay starts afresh. While the count is below it the
      default decay is NaN (a negative base to a fractional power), as in
      optax.
    min_dim_size_to_factor: the smallest second-largest dimension that is
      factored (default 128), a concrete integer ``>= 0`` (it fixes the
      state's shapes: static under ``inject_hyperparams``).
    epsilon: added to ``g^2`` (default 1e-30), ``>= 0``.
    decay_rate_fn: ``(step, decay_rate) -> beta_t`` (default Adafactor's
      ``1 - (step + 1)^(-decay_rate)`` in float32).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_factored_rms(min_dim_size_to_factor=2)
    >>> params = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}
    >>> state = tx.init(params)
    >>> state.v_row["w"].shape, state.v_col["w"].shape, state.v["b"].shape
    ((2,), (3,), (3,))
    >>> updates, state = tx.update({"w": jnp.ones((2, 3)), "b": jnp.ones(3)}, state, params)
    >>> updates["b"]  # g / sqrt(g^2 + eps) on the first step
    Array([1., 1., 1.], dtype=float32)
  """
  validation.check_flags(factored=factored)
  validation.check_non_negative("decay_rate", decay_rate)
  check_step_offset("step_offset", step_offset)
  if isinstance(min_dim_size_to_factor, jax.core.Tracer):
    raise TypeError(
        "`min_dim_size_to_factor` decides the state's shapes, so it must be a concrete int, not a "
        "traced value; with inject_hyperparams, pass static_args=('min_dim_size_to_factor',)."
    )
  min_size = validation.check_int("min_dim_size_to_factor", min_dim_size_to_factor, minimum=0)
  validation.check_non_negative("epsilon", epsilon)
  validation.check_callable("decay_rate_fn", decay_rate_fn)

  def init_leaf(p):
    placeholder = jnp.zeros((1,), p.dtype)
    axes = _factored_axes(p.shape, factored, min_size)
    if axes is None:
      # Placed: under jit on an auto mesh a bare zeros_like would be left whole on one device.
      return placeholder, placeholder, tree_lib.placed_like(p, jnp.zeros_like(p))
    small, large = axes
    without = lambda axis: tuple(n for i, n in enumerate(p.shape) if i != axis)
    return jnp.zeros(without(large), p.dtype), jnp.zeros(without(small), p.dtype), placeholder

  def init_fn(params):
    validation.check_float_params(params)
    leaves, treedef = jax.tree.flatten(params)
    rows, cols, fulls = zip(*map(init_leaf, leaves)) if leaves else ((), (), ())
    return FactoredState(
        count=jnp.zeros([], jnp.int32),
        v_row=treedef.unflatten(rows), v_col=treedef.unflatten(cols), v=treedef.unflatten(fulls),
    )

  def update_leaf(g, v_row, v_col, v, p, beta):
    placeholder = jnp.zeros((1,), p.dtype)
    g2 = tree_lib.abs_sq(g) + epsilon
    axes = _factored_axes(p.shape, factored, min_size)
    if axes is None:
      v = (beta * v + (1.0 - beta) * g2).astype(p.dtype)
      return g * v ** -0.5, placeholder, placeholder, v
    small, large = axes
    v_row = (beta * v_row + (1.0 - beta) * jnp.mean(g2, axis=large)).astype(p.dtype)
    v_col = (beta * v_col + (1.0 - beta) * jnp.mean(g2, axis=small)).astype(p.dtype)
    # v_row has lost the `large` axis, so `small` moved down one if it came after it.
    small_in_row = small - 1 if small > large else small
    row_factor = (v_row / jnp.mean(v_row, axis=small_in_row, keepdims=True)) ** -0.5
    col_factor = v_col ** -0.5
    u = g * jnp.expand_dims(row_factor, large) * jnp.expand_dims(col_factor, small)
    return u, v_row, v_col, placeholder

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(base.NO_PARAMS_MSG)
    combine.check_updates_match_params(updates, params)
    # No state leaf is shaped like the params, so only the structures are compared.
    tree_lib.tree_map_checked(
        lambda *_: None, updates, state.v_row, state.v_col, state.v,
        names=("updates", "state.v_row", "state.v_col", "state.v"),
    )
    beta = decay_rate_fn(state.count - step_offset, decay_rate)
    p_leaves, treedef = jax.tree.flatten(params)
    columns = [treedef.flatten_up_to(t) for t in (updates, state.v_row, state.v_col, state.v)]
    results = [update_leaf(*args, p, beta) for *args, p in zip(*columns, p_leaves)]
    out, rows, cols, fulls = zip(*results) if results else ((), (), (), ())
    return treedef.unflatten(out), FactoredState(
        count=tree_lib.safe_increment(state.count),
        v_row=treedef.unflatten(rows), v_col=treedef.unflatten(cols), v=treedef.unflatten(fulls),
    )

  return base.GradientTransformation(init_fn, update_fn)


class ScaleBySM3State(NamedTuple):
  """State of :func:`scale_by_sm3`.

  ``mu``: per params leaf a list with one accumulator per axis, of length
  that axis's dimension (a vector's list holds its full accumulator, a
  scalar's one 0-d entry); ``nu``: the momentum of the scaled gradient,
  shaped like the params. Same fields as optax's.
  """

  mu: base.Updates
  nu: base.Updates


def _check_real_params(params: Any) -> None:
  # SM3 compares accumulated squares with min/max, which a complex g^2 does not order.
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    if jnp.iscomplexobj(leaf):
      raise ValueError(
          f"scale_by_sm3 needs real params; params{jax.tree_util.keystr(path)} is complex "
          f"({jnp.result_type(leaf)}), as in optax. Split it into real and imaginary parts."
      )


def scale_by_sm3(
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 1.0,
    eps: jax.typing.ArrayLike = 1e-8,
) -> base.GradientTransformation:
  r"""SM3's scaling: AdaGrad with one accumulator per row and per column.

  For a leaf of rank ``k >= 2`` with per-axis accumulators :math:`\mu^{(a)}`
  (one entry per index along axis ``a``):

  .. math::
     \nu_t(i) = c\, g_t(i)^2 + \beta_2 \min_a \mu^{(a)}_{t-1}(i_a), \qquad
     \mu^{(a)}_t(j) = \max_{i:\, i_a = j} \nu_t(i),

  .. math::
     m_t = \beta_1 m_{t-1} + (1 - \beta_1)\, \frac{g_t}{\sqrt{\nu_t + \epsilon}}
     \ (0 \text{ where } \nu_t = 0), \qquad u_t = m_t

  with ``c = 1`` for ``b2 = 1`` (the default: a running sum, SM3-II) and
  ``c = 1 - b2`` otherwise. A vector or a scalar keeps its full accumulator
  (plain AdaGrad). Every :math:`\nu_t(i)` bounds the AdaGrad sum
  :math:`\sum_s g_s(i)^2` from above, so the steps are never larger than
  AdaGrad's (notes 000/003), while an ``n x m`` matrix stores ``n + m``
  numbers for it. Anil, Gupta, Koren & Singer, "Memory-Efficient Adaptive
  Optimization", NeurIPS 2019 (arXiv:1901.11150). Same state and numbers as
  ``optax.scale_by_sm3`` wherever that runs; unlike it, scalar params work
  (optax's update raises ``IndexError`` on a 0-d leaf), and so do zero-size
  leaves (``ValueError`` in optax's). Complex params raise
  ``ValueError`` at ``init``, as in optax.

  Args:
    b1: ``beta_1`` in ``[0, 1)`` (default 0.9), the momentum of the output.
    b2: ``beta_2`` in ``[0, 1]`` (default 1.0), the decay of the accumulators.
    eps: added under the root (default 1e-8), ``>= 0``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_sm3()
    >>> params = {"w": jnp.ones((20, 30))}
    >>> state = tx.init(params)
    >>> [m.shape for m in state.mu["w"]]  # 50 numbers, not 600
    [(20,), (30,)]
    >>> updates, state = tx.update({"w": jnp.full((20, 30), 2.0)}, state, params)
    >>> round(float(updates["w"][0, 0]), 6)  # (1 - 0.9) * 2 / sqrt(4 + 1e-8)
    0.1
  """
  validation.check_unit_interval("b1", b1)
  validation.check_unit_interval("b2", b2, closed_right=True)
  validation.check_non_negative("eps", eps)
  if isinstance(b2, jax.core.Tracer):
    new_weight: Any = jnp.where(b2 == 1.0, 1.0, 1.0 - b2)
  else:
    # b2 = 1 sums the squares (SM3's own rule) instead of averaging them to 0 weight.
    new_weight = (1.0 - b2) if b2 != 1.0 else 1.0

  def init_mu(p):
    if p.ndim == 0:
      return [jnp.zeros((), p.dtype)]
    return [jnp.zeros((n,), p.dtype) for n in p.shape]

  def init_fn(params):
    validation.check_float_params(params)
    _check_real_params(params)
    return ScaleBySM3State(mu=jax.tree.map(init_mu, params), nu=tree_lib.tree_zeros_like(params))

  def accumulate(g, mu):
    if g.ndim < 2:
      previous = mu[0]
    else:
      broadcast = [
          jnp.reshape(m, tuple(n if i == a else 1 for i, n in enumerate(g.shape))) for a, m in enumerate(mu)
      ]
      previous = functools.reduce(jnp.minimum, broadcast)
    return new_weight * g**2 + b2 * previous

  def covers(nu):
    if nu.ndim < 2:
      return [nu]
    # initial=0: a zero-size leaf has nothing to cover (optax's max raises); the sums are >= 0.
    return [jnp.max(nu, axis=tuple(i for i in range(nu.ndim) if i != a), initial=0.0) for a in range(nu.ndim)]

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params)
    # Also with params: a state of other params would fail in the maps below with a bare error.
    tree_lib.check_tree_like(updates, state.nu, ("updates", "state.nu"))
    del params
    # mu holds a list per leaf: map over the updates' leaves, each taking its whole list.
    accum = jax.tree.map(accumulate, updates, state.mu)
    scaled = jax.tree.map(
        lambda g, a: g * jnp.where(a > 0, jax.lax.rsqrt(a + eps), 0.0), updates, accum
    )
    nu = tree_lib.tree_update_moment(scaled, state.nu, b1, 1)
    mu = jax.tree.map(covers, accum)
    return nu, ScaleBySM3State(
        mu=tree_lib.tree_cast_like(mu, state.mu), nu=tree_lib.tree_cast_like(nu, state.nu)
    )

  return base.GradientTransformation(init_fn, update_fn)
