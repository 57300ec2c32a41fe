r"""SOAP: Adam run in the eigenbasis of Shampoo's preconditioner.

Each leaf keeps, per preconditioned axis, a Shampoo statistic (an EMA of the
gradient's outer products along that axis) and an orthogonal basis of it.
Adam's moments live in that rotated frame; the basis is computed once by an
eigendecomposition and then refreshed every ``precondition_frequency`` steps
by one power iteration followed by a QR factorisation.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib

__all__ = ["SOAPState", "soap"]

_DATA_FORMATS = ("channels_first", "channels_last")
# The reference factorises L Q in float32 whatever the dtype; the tests set
# this to float64 (on both sides) to check the rest of the arithmetic tightly.
_QR_DTYPE: Any = jnp.float32


class SOAPState(NamedTuple):
  """State of :func:`soap`."""

  count: jax.Array  # type: ignore[assignment]  # int32 scalar: update calls so far (the first only sets up the bases)
  exp_avg: base.Updates  # m: EMA of the gradients, in the params' own frame
  exp_avg_sq: base.Updates  # v: EMA of the squared rotated gradients (params' shapes)
  gg: Any  # per leaf, a tuple over its layout's axes: the d x d statistic L_i, or None
  q: Any  # per leaf, the same tuple: the orthogonal basis Q_i of L_i (columns), or None


def _merge_small_dims(shape: Sequence[int], max_dim: int) -> tuple[int, ...]:
  # pytorch_optimizer's rule: fold neighbouring axes while their product stays
  # <= max_dim. Where everything folds into one axis it returns [1], which its
  # reshape then rejects for more than one element; the one folded axis is
  # what it means (and what the authors' code does).
  merged, product = [], 1
  for d in shape:
    product *= d
    if product > max_dim:
      merged.append(product // d)
      product = d
  merged.append(product)
  if len(merged) == 1:
    return (math.prod(shape),)
  return tuple(merged)


class _Layout(NamedTuple):
  """How one leaf is viewed for preconditioning (all static)."""

  shape: tuple[int, ...]  # the leaf's shape
  permute: bool  # channels_last 4-D leaf viewed as channels_first before folding
  dims: tuple[int, ...]  # the axes the bases act on (after the optional fold)
  preconditioned: tuple[bool, ...]  # per axis of ``dims``: has a basis (else identity)

  def to_layout(self, x):
    if self.permute:
      x = jnp.transpose(x, (0, 3, 1, 2))
    return jnp.reshape(x, self.dims)

  def from_layout(self, x):
    if self.permute:
      s = self.shape
      return jnp.transpose(jnp.reshape(x, (s[0], s[3], s[1], s[2])), (0, 2, 3, 1))
    return jnp.reshape(x, self.shape)


def _layout(shape, merge_dims, max_dim, precondition_1d, data_format) -> _Layout:
  shape = tuple(int(d) for d in shape)
  permute = merge_dims and data_format == "channels_last" and len(shape) == 4
  if merge_dims:
    view = (shape[0], shape[3], shape[1], shape[2]) if permute else shape
    dims = _merge_small_dims(view, max_dim)
  else:
    dims = shape
  if len(shape) == 1:
    # A vector has one statistic only with precondition_1d; a folded matrix
    # that happens to end up with one axis is still preconditioned.
    preconditioned = (precondition_1d and shape[0] <= max_dim,)
  else:
    preconditioned = tuple(d <= max_dim for d in dims)
  return _Layout(shape, permute, dims, preconditioned)


def _lerp(start, end, weight):
  # torch.lerp's two-sided formula (the one nearer to the end for weight >= 0.5).
  return jnp.where(weight < 0.5, start + weight * (end - start), end - (end - start) * (1 - weight))


def _project(layout: _Layout, x, q, forward: bool = True):
  """Rotates ``x`` into (``forward``) or out of the bases, axis by axis."""
  y = layout.to_layout(x)
  for qi in q:
    if qi is None:
      y = jnp.moveaxis(y, 0, -1)
    else:
      y = jnp.tensordot(y, qi, axes=[[0], [0 if forward else 1]])
  return layout.from_layout(y)


def _outer_products(layout: _Layout, g):
  g = layout.to_layout(g)
  out: list[Any] = []
  for i, has in enumerate(layout.preconditioned):
    if not has:
      out.append(None)
      continue
    rest = [k for k in range(g.ndim) if k != i]
    out.append(jnp.tensordot(g, g, axes=[rest, rest]))
  return out


def _eigenbases(gg):
  out: list[Any] = []
  for m in gg:
    if m is None:
      out.append(None)
      continue
    dtype = m.dtype
    work = m if jnp.finfo(dtype).bits >= 32 else m.astype(jnp.float32)
    _, vecs = jnp.linalg.eigh(work + 1e-30 * jnp.eye(m.shape[0], dtype=work.dtype))
    # Columns by decreasing eigenvalue, as the power iteration's sort expects.
    out.append(jnp.flip(vecs, axis=1).astype(dtype))
  return tuple(out)


def _power_qr(layout: _Layout, gg, q, exp_avg_sq):
  """One power iteration plus QR per basis; ``v`` follows the columns' new order."""
  v = layout.to_layout(exp_avg_sq)
  out: list[Any] = []
  for i, (m, o) in enumerate(zip(gg, q)):
    if m is None:
      out.append(None)
      continue
    product = m @ o
    est_eig = jnp.sum(o * product, axis=0)
    order = jnp.argsort(est_eig, descending=True)
    v = jnp.take(v, order, axis=i)
    # float32 QR whatever the dtype, as the reference (and the authors) do.
    qi, _ = jnp.linalg.qr(jnp.take(product, order, axis=1).astype(_QR_DTYPE))
    out.append(qi.astype(m.dtype))
  return tuple(out), layout.from_layout(v)


def soap(
    learning_rate: base.ScalarOrSchedule = 3e-3,
    b1: jax.typing.ArrayLike = 0.95,
    b2: jax.typing.ArrayLike = 0.95,
    shampoo_beta: Optional[jax.typing.ArrayLike] = None,
    weight_decay: jax.typing.ArrayLike = 1e-2,
    precondition_frequency: int = 10,
    max_precondition_dim: int = 10000,
    merge_dims: bool = False,
    precondition_1d: bool = False,
    correct_bias: bool = True,
    normalize_gradient: bool = False,
    data_format: str = "channels_first",
    eps: jax.typing.ArrayLike = 1e-8,
) -> base.GradientTransformation:
  r"""SOAP: Adam in the eigenbasis of Shampoo's preconditioner, with decoupled decay.

  Per leaf, viewed as a tensor with axes :math:`i = 1..k` (its layout, see
  below), with :math:`\beta_s` = ``shampoo_beta`` (``None``: ``b2``) and
  :math:`\rho(x)` the rotation :math:`x \times_1 Q_1 \cdots \times_k Q_k`
  (identity on axes without a basis):

  .. math::
     L_i \leftarrow \beta_s L_i + (1 - \beta_s)\, G_{(i)} G_{(i)}^\top, \qquad
     m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
     v_t = \beta_2 v_{t-1} + (1 - \beta_2) \rho(g_t)^2,

  .. math::
     n_t = \rho^{-1}\!\Big(\frac{\rho(m_t)}{\sqrt{v_t} + \epsilon}\Big), \qquad
     x_{t+1} = \Big(x_t - \eta_t \frac{\sqrt{1 - \beta_2^t}}{1 - \beta_1^t}\, n_t\Big)
     (1 - \eta_t \lambda)

  where :math:`G_{(i)}` is the gradient unfolded along axis :math:`i` and
  :math:`t` counts the steps after the first. The first ``update`` only
  accumulates :math:`L_i` and sets :math:`Q_i` to its eigenvectors (by
  decreasing eigenvalue); it returns zero updates. Afterwards :math:`L_i` is
  accumulated after each step, and every ``precondition_frequency`` steps
  :math:`Q_i \leftarrow \mathrm{QR}(L_i Q_i)` with the columns of
  :math:`L_i Q_i` sorted by :math:`\mathrm{diag}(Q_i^\top L_i Q_i)`,
  descending (:math:`v` is permuted the same way). ``normalize_gradient``
  divides :math:`n_t` by :math:`\sqrt{\mathrm{mean}(n_t^2)} + \epsilon`;
  ``correct_bias=False`` drops the square-root factor. Vyas, Morwani, Zhao,
  Kwun, Shapira, Brandfonbrener, Janson & Kakade, "SOAP: Improving and
  Stabilizing Shampoo using Adam", arXiv:2409.11321 (ICLR 2025).

  Which leaves are matrices: every leaf of rank >= 2 gets a basis on each
  axis of size ``<= max_precondition_dim`` (identity on longer axes); with
  ``merge_dims`` its axes are first folded into as few as possible of size
  ``<= max_precondition_dim`` (a 4-D ``channels_last`` kernel, HWIO-style
  NHWC, is viewed as NCHW first; ``data_format`` matters only then). A
  vector gets a basis only with ``precondition_1d`` (and length
  ``<= max_precondition_dim``); a scalar never does (with ``merge_dims`` it
  is a 1 x 1 basis, the reference's). Leaves without any basis run plain
  Adam with this decay.

  Defaults and names are ``pytorch_optimizer.SOAP``'s (4.1.0; ``lr`` is
  ``learning_rate``, ``betas`` are ``b1, b2``); ``tests/contrib/test_soap.py``
  checks 50-step trajectories against it on matrices, vectors, a scalar and
  a conv kernel, every option, in float64 (``rtol`` 1e-9: the QR runs in
  float32 on both sides, by two LAPACKs) and float32 (``rtol`` 2e-4).
  Deliberate differences: the arguments are checked when it is built; a
  leaf whose axes all fold into one (``merge_dims``) is preconditioned along
  that one axis, where the reference fails to reshape it; a ``bfloat16`` /
  ``float16`` statistic is decomposed in float32. ``learning_rate=None`` is
  refused; a schedule is called with the count of ``update`` calls (0 for the
  set-up call). ``update`` needs ``params`` when ``weight_decay`` is not 0.
  Under ``optax.inject_hyperparams``, ``max_precondition_dim`` (it sets
  shapes) must be in ``static_args``.

  Args:
    learning_rate: :math:`\eta_t`, a number or a schedule (default 3e-3).
    b1: :math:`\beta_1`, the first moment's decay (default 0.95).
    b2: :math:`\beta_2`, the second moment's decay (default 0.95).
    shampoo_beta: :math:`\beta_s`, the statistics' decay; ``None``
      (default): ``b2``.
    weight_decay: :math:`\lambda \ge 0`, decoupled, scaled by
      :math:`\eta_t` (default 1e-2).
    precondition_frequency: steps between basis refreshes, an int >= 1
      (default 10).
    max_precondition_dim: the longest axis given a basis, an int >= 1
      (default 10000).
    merge_dims: fold small axes together first (default ``False``).
    precondition_1d: give vectors a basis too (default ``False``).
    correct_bias: Adam's bias correction (default ``True``).
    normalize_gradient: divide the direction by its RMS (default ``False``).
    data_format: ``"channels_first"`` (default) or ``"channels_last"``,
      the 4-D layout used by ``merge_dims``.
    eps: :math:`\epsilon \ge 0`, added to :math:`\sqrt{v_t}` (default 1e-8).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> from jaxopt_notes.contrib import soap
    >>> f = lambda x: jnp.sum((x - 1.0) ** 2)
    >>> tx = soap(learning_rate=0.1, weight_decay=0.0)
    >>> x = jnp.array([[0.5, -1.0], [2.0, 0.0]])
    >>> state = tx.init(x)
    >>> @jax.jit  # one compiled step: the loop then runs in milliseconds
    ... def step(x, state):
    ...   u, state = tx.update(jax.grad(f)(x), state, x)
    ...   return jn.apply_updates(x, u), state
    >>> for _ in range(30):
    ...   x, state = step(x, state)
    >>> print(round(float(f(x)), 4))  # from 6.25
    0.2671
  """
  validation.check_learning_rate(learning_rate)
  validation.check_unit_interval("b1", b1)
  validation.check_unit_interval("b2", b2)
  if shampoo_beta is not None:
    validation.check_unit_interval("shampoo_beta", shampoo_beta)
  validation.check_non_negative("weight_decay", weight_decay)
  validation.check_positive_int("precondition_frequency", precondition_frequency)
  max_dim = validation.check_shape_int("max_precondition_dim", max_precondition_dim, "the bases' shapes")
  validation.check_flags(
      merge_dims=merge_dims, precondition_1d=precondition_1d, correct_bias=correct_bias,
      normalize_gradient=normalize_gradient,
  )
  if data_format not in _DATA_FORMATS:
    raise ValueError(f"`data_format` must be one of {_DATA_FORMATS}; got {data_format!r}")
  validation.check_non_negative("eps", eps)
  beta_s = b2 if shampoo_beta is None else shampoo_beta

  def layout_of(x) -> _Layout:
    return _layout(jnp.shape(x), merge_dims, max_dim, precondition_1d, data_format)

  def per_leaf_zeros(p):
    layout = layout_of(p)
    return tuple(
        jnp.zeros((d, d), p.dtype) if has else None for d, has in zip(layout.dims, layout.preconditioned)
    )

  def init_fn(params):
    validation.check_float_params(params)
    zeros = tree_lib.tree_zeros_like(params)
    bases = jax.tree.map(per_leaf_zeros, params)
    return SOAPState(
        count=jnp.zeros([], jnp.int32), exp_avg=zeros, exp_avg_sq=zeros, gg=bases, q=bases,
    )

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params)
    decays = not (validation.is_python_number(weight_decay) and weight_decay == 0)
    if decays and params is None:
      raise ValueError(base.NO_PARAMS_MSG)
    count = state.count
    first = count == 0
    lr = learning_rate(count) if callable(learning_rate) else learning_rate
    t = count.astype(jnp.float32) if not jax.config.jax_enable_x64 else count.astype(jnp.float64)
    bc1 = 1 - b1 ** t
    bc2_sqrt = jnp.sqrt(1 - b2 ** t)
    step_size = lr * (bc2_sqrt / bc1) if correct_bias else lr
    refresh = jnp.logical_and(count > 0, count % precondition_frequency == 0)

    treedef = jax.tree.structure(updates)
    grads = treedef.flatten_up_to(updates)
    ps = treedef.flatten_up_to(params) if params is not None else [None] * len(grads)
    leaves = [
        treedef.flatten_up_to(x) for x in (state.exp_avg, state.exp_avg_sq, state.gg, state.q)
    ]
    out_u, out_m, out_v, out_gg, out_q = [], [], [], [], []
    for g, p, m, v, gg, q in zip(grads, ps, *leaves):
      layout = layout_of(g)
      dtype = g.dtype
      # The step (kept only after the set-up call).
      m_new = _lerp(m, g, jnp.asarray(1 - b1, dtype))
      v_new = _lerp(v, jnp.square(_project(layout, g, q)), jnp.asarray(1 - b2, dtype))
      denom = jnp.sqrt(v_new) + jnp.asarray(eps, dtype)
      direction = _project(layout, _project(layout, m_new, q) / denom, q, forward=False)
      if normalize_gradient:
        direction = direction / (jnp.sqrt(jnp.mean(jnp.square(direction))) + jnp.asarray(eps, dtype))
      u = -jnp.asarray(step_size, dtype) * direction
      if decays:
        u = u - jnp.asarray(lr * weight_decay, dtype) * (p + u)
      u = jnp.where(first, jnp.zeros_like(u), u)
      m_new = jnp.where(first, m, m_new)
      v_new = jnp.where(first, v, v_new)
      # The statistics, then the bases: eigenvectors once, power iteration + QR after.
      outer = _outer_products(layout, g)
      w = jnp.asarray(1 - beta_s, dtype)
      gg_new = tuple(None if a is None else _lerp(a, b.astype(dtype), w) for a, b in zip(gg, outer))
      q_new = jax.lax.cond(first, _eigenbases, lambda _: q, gg_new)
      q_new, v_new = jax.lax.cond(
          refresh, lambda a: _power_qr(layout, *a), lambda a: (a[1], a[2]), (gg_new, q_new, v_new)
      )
      out_u.append(u)
      out_m.append(m_new)
      out_v.append(v_new)
      out_gg.append(gg_new)
      out_q.append(q_new)
    new_state = SOAPState(
        count=tree_lib.safe_increment(count),
        exp_avg=treedef.unflatten(out_m),
        exp_avg_sq=treedef.unflatten(out_v),
        gg=treedef.unflatten(out_gg),
        q=treedef.unflatten(out_q),
    )
    return treedef.unflatten(out_u), new_state

  return base.GradientTransformation(init_fn, update_fn)
