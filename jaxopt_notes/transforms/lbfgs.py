r"""L-BFGS's direction: the gradient times an inverse-Hessian estimate built from
the last ``m`` steps.

Newton's method (notes 002, ill-conditioning) steps along ``H^{-1} g``;
BFGS estimates ``H^{-1}`` from how the gradient changed along the steps
taken, and L-BFGS keeps only the last ``m`` pairs ``(dw, dg)``, so memory
and work per step are ``O(m n)`` instead of ``O(n^2)``. The pairs sit in a
ring buffer: slot ``k mod m`` of stacked arrays.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, tree_math, validation
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.transforms import _linesearch_common as common

__all__ = ["ScaleByLBFGSState", "scale_by_lbfgs"]


class ScaleByLBFGSState(NamedTuple):
  """State of :func:`scale_by_lbfgs`.

  The three memories are ring buffers of ``memory_size`` slots (a leading
  axis on every leaf); the pair from step ``k - 1`` to ``k`` is written to
  slot ``(k - 1) mod memory_size``.
  """

  count: jax.Array  # type: ignore[assignment]  # int32: updates so far (optax's name)
  params: base.Params  # the params of the last update (to form dw)
  updates: base.Params  # the gradient of the last update (to form dg)
  diff_params_memory: base.Params  # dw_j = w_{j+1} - w_j, stacked
  diff_updates_memory: base.Params  # dg_j = g_{j+1} - g_j, stacked
  weights_memory: jax.Array  # rho_j = 1 / <dg_j, dw_j> (0 if that is 0)


def _two_loop(updates, dws, dgs, rhos, gamma, oldest):
  r"""``P g`` by the two-loop recursion (Nocedal & Wright, algorithm 7.4).

  Slots are visited newest to oldest (``alpha_j = rho_j <dw_j, q>``,
  ``q -= alpha_j dg_j``), ``q`` is scaled by ``gamma``, then oldest to newest
  (``beta_j = rho_j <dg_j, r>``, ``r += (alpha_j - beta_j) dw_j``). Empty
  slots have ``rho = 0`` and change nothing.
  """
  m = rhos.shape[0]
  order = (oldest + jnp.arange(m)) % m

  def pair(j):
    return jax.tree.map(lambda x: x[j], (dws, dgs))

  def backward(q, j):
    dw, dg = pair(j)
    alpha = rhos[j] * common.tree_real_vdot(dw, q)
    return tree_lib.tree_cast_like(tree_math.tree_add_scale(q, -alpha, dg), q), alpha

  q, alphas = jax.lax.scan(backward, updates, order, reverse=True)
  r = tree_math.tree_scale(gamma, q)

  def forward(r, j_alpha):
    j, alpha = j_alpha
    dw, dg = pair(j)
    beta = rhos[j] * common.tree_real_vdot(dg, r)
    return tree_lib.tree_cast_like(tree_math.tree_add_scale(r, alpha - beta, dw), r), beta

  r, _ = jax.lax.scan(forward, r, (order, alphas))
  return r


def scale_by_lbfgs(memory_size: int = 10, scale_init_precond: bool = True) -> base.GradientTransformation:
  r"""Multiplies the update by L-BFGS's inverse-Hessian estimate: :math:`u = P_k g_k`.

  .. math::
     P_{k,j+1} = V_j^\top P_{k,j} V_j + \rho_j\, \delta w_j \delta w_j^\top,\quad
     V_j = I - \rho_j\, \delta g_j \delta w_j^\top,\quad
     \rho_j = \frac{1}{\langle \delta g_j, \delta w_j\rangle},\quad
     P_{k,k-m} = \gamma_k I,\quad
     \gamma_k = \frac{\langle \delta g_{k-1}, \delta w_{k-1}\rangle}{\|\delta g_{k-1}\|^2}

  over the last ``m`` pairs ``dw_j = w_{j+1} - w_j``, ``dg_j = g_{j+1} - g_j``
  (Liu & Nocedal, "On the limited memory BFGS method for large scale
  optimization", Math. Programming 1989; Nocedal & Wright, *Numerical
  Optimization*, 1999, algorithms 7.4-7.5). With ``scale_init_precond``
  the first step uses ``gamma_0 = min(1, 1 / ||g_0||)`` (a step of length at
  most 1); without it ``gamma = 1``. The memory is updated from the params
  and update passed in before the product, so in ``chain(scale_by_lbfgs(),
  scale(-1), line_search)`` a pair enters only once its step was taken.
  Notes 002's second-order family: a Newton step without the Hessian. The
  output is the direction ``+P g``; :func:`lbfgs` flips its sign. Same as
  ``optax.scale_by_lbfgs``.

  Args:
    memory_size: number of pairs kept, ``m >= 1`` (default 10).
    scale_init_precond: use ``gamma_k`` above rather than 1 (default ``True``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_lbfgs(memory_size=3)
    >>> params = jnp.array([3.0, 4.0])
    >>> direction, state = tx.update(jnp.array([3.0, 4.0]), tx.init(params), params)
    >>> direction  # first step: g / ||g||
    Array([0.6, 0.8], dtype=float32)
    >>> state.diff_params_memory.shape
    (3, 2)
  """
  memory_size = validation.check_int("memory_size", memory_size, minimum=1)
  validation.check_flags(scale_init_precond=scale_init_precond)

  def init_fn(params):
    validation.check_float_params(params)
    # Stacked, not a list: a traced slot index cannot pick from a Python list.
    stacked = jax.tree.map(lambda p: jnp.zeros((memory_size,) + p.shape, dtype=p.dtype), params)
    return ScaleByLBFGSState(
        count=jnp.asarray(0, dtype=jnp.int32),
        params=tree_lib.tree_zeros_like(params),
        updates=tree_lib.tree_zeros_like(params),
        diff_params_memory=stacked,
        diff_updates_memory=stacked,
        weights_memory=jnp.zeros(memory_size),
    )

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(base.NO_PARAMS_MSG + " L-BFGS remembers parameter differences.")
    combine.check_updates_match_params(updates, params)
    tree_lib.check_tree_like(updates, state.updates, ("updates", "state.updates"))
    oldest = state.count % memory_size  # once slot (count - 1) holds the newest pair
    slot = (state.count - 1) % memory_size
    dw = jax.tree.map(lambda a, b: a - b, params, state.params)
    dg = jax.tree.map(lambda a, b: a - b, updates, state.updates)
    curvature = common.tree_real_vdot(dg, dw)
    rho = jnp.where(curvature == 0.0, 0.0, 1.0 / curvature)
    # Before the first step there is no previous point: store a zero pair.
    dw, dg, rho = jax.tree.map(lambda x: jnp.where(state.count > 0, x, jnp.zeros_like(x)), (dw, dg, rho))
    dws, dgs, rhos = jax.tree.map(
        lambda mem, x: mem.at[slot].set(x),
        (state.diff_params_memory, state.diff_updates_memory, state.weights_memory),
        (dw, dg, rho),
    )
    if scale_init_precond:
      sq = tree_math.tree_norm(dg, squared=True)
      gamma = jnp.where(sq > 0.0, common.tree_real_vdot(dg, dw) / sq, 1.0)
      grad_norm = tree_math.tree_norm(jax.lax.stop_gradient(updates))
      gamma = jnp.where(state.count > 0, gamma, jnp.minimum(1.0, 1.0 / grad_norm))
    else:
      gamma = 1.0
    direction = _two_loop(updates, dws, dgs, rhos, gamma, oldest)
    return direction, ScaleByLBFGSState(
        count=tree_lib.safe_increment(state.count),
        params=params,
        updates=updates,
        diff_params_memory=dws,
        diff_updates_memory=dgs,
        weights_memory=rhos,
    )

  return base.GradientTransformation(init_fn, update_fn)
