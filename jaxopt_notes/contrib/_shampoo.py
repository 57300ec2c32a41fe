r"""Shampoo: a Kronecker-factored full-matrix preconditioner, one factor per axis.

Each leaf of rank k keeps, per axis, the running sum of the gradient's outer
products along that axis (started at ``matrix_eps * I``); the step multiplies
the gradient, axis by axis, by each sum's inverse 2k-th root.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib

__all__ = ["ShampooState", "shampoo"]


class ShampooState(NamedTuple):
  """State of :func:`shampoo`."""

  count: jax.Array  # type: ignore[assignment]  # int32 scalar: steps taken
  momentum: base.Updates  # the last preconditioned step (zeros before the first)
  preconditioners: Any  # per leaf, a tuple over its axes: the sums L_i (d x d)
  inverse_roots: Any  # per leaf, the same tuple: L_i^(-1/(2k)) as last computed (zeros before)


def _lerp(start, end, weight):
  # torch.lerp's two-sided formula (the one nearer to the end for weight >= 0.5).
  return jnp.where(weight < 0.5, start + weight * (end - start), end - (end - start) * (1 - weight))


def _inverse_root(matrix, power, floor):
  # By SVD, in float64 for float64 and float32 otherwise, as the reference does.
  dtype = jnp.float64 if matrix.dtype == jnp.float64 else jnp.float32
  u, s, vh = jnp.linalg.svd(matrix.astype(dtype), full_matrices=False)
  # The sum is eps I plus outer products, so no singular value is below
  # eps: one computed below it (0 when eps drowns in float32 rounding) is
  # raised to it, where the reference gets 0^(-1/p) = inf and then NaN. With
  # eps = 0 a zero singular value's direction gets no step (a pseudo-inverse).
  s = jnp.maximum(s, jnp.asarray(floor, dtype))
  root = jnp.where(s > 0, s ** (-1.0 / power), jnp.zeros_like(s))
  return ((u * root[None, :]) @ vh).astype(matrix.dtype)


def _precondition(g, inverse_roots):
  """``g`` times each axis's root: from the left on all axes but the last, from the right on it."""
  order = g.ndim
  for axis, root in enumerate(inverse_roots):
    if axis < order - 1:
      g = jnp.moveaxis(jnp.tensordot(root, g, axes=[[1], [axis]]), 0, axis)
    else:
      g = jnp.tensordot(g, root, axes=[[axis], [0]])
  return g


def shampoo(
    learning_rate: base.ScalarOrSchedule = 1e-3,
    momentum: jax.typing.ArrayLike = 0.0,
    weight_decay: jax.typing.ArrayLike = 0.0,
    weight_decouple: bool = False,
    fixed_decay: bool = False,
    preconditioning_compute_steps: int = 1,
    matrix_eps: jax.typing.ArrayLike = 1e-6,
) -> base.GradientTransformation:
  r"""Shampoo (its plain form): per-axis inverse roots of summed outer products.

  Per leaf of rank :math:`k` with axes :math:`i = 1..k`, :math:`g_t` the
  gradient mixed with the last step (``momentum`` :math:`\mu`, the first
  gradient standing in for it at the first step) and, when the decay is
  coupled, plus :math:`\lambda x_t`:

  .. math::
     \tilde g_t = (1 - \mu)\, g_t + \mu\, s_{t-1}, \qquad
     L_i \leftarrow L_i + \tilde G_{(i)} \tilde G_{(i)}^\top, \quad L_i^{(0)} = \epsilon I,

  .. math::
     s_t = \tilde g_t \times_1 L_1^{-1/(2k)} \cdots \times_k L_k^{-1/(2k)}, \qquad
     x_{t+1} = x_t (1 - \lambda \eta_t) - \eta_t s_t

  (the decay factor only with ``weight_decouple``; ``fixed_decay`` drops its
  :math:`\eta_t`). The roots are recomputed (by SVD) every
  ``preconditioning_compute_steps`` steps, at steps that are multiples of
  it, and are zero before the first such step. A scalar takes
  :math:`s_t = \tilde g_t`. Every leaf of rank >= 1 is preconditioned on
  every axis (no size limit, no grafting: the reference's plain ``Shampoo``,
  not ``ScalableShampoo``). Gupta, Koren & Singer, "Shampoo: Preconditioned
  Stochastic Tensor Optimization", ICML 2018 (arXiv:1802.09568).

  Defaults and names are ``pytorch_optimizer.Shampoo``'s (4.1.0; ``lr`` is
  ``learning_rate``); ``tests/contrib/test_shampoo.py`` checks 50-step
  trajectories against it (a matrix, a vector, a scalar, a conv kernel)
  for every option in float64 (``rtol`` 1e-9) and float32 (see the test for
  its tolerance: a rank-deficient early sum makes the float32 root of its
  ``matrix_eps`` directions noisy in both). Deliberate differences: the
  arguments are checked when it is built; ``learning_rate=None`` is refused;
  a schedule is called with the count of steps taken; a singular value of
  a sum computed below ``matrix_eps`` (in float32 the eps directions of a
  sum of a few outer products can come out as exactly 0) is raised to
  ``matrix_eps``, the least it can be, where the reference's root is
  infinite and its step NaN (and with ``matrix_eps=0`` such a direction
  gets no step). ``update`` needs ``params`` when ``weight_decay`` is not 0.

  Args:
    learning_rate: :math:`\eta_t`, a number or a schedule (default 1e-3).
    momentum: :math:`\mu \in [0, 1)` (default 0).
    weight_decay: :math:`\lambda \ge 0` (default 0).
    weight_decouple: decay the params (AdamW-style) instead of adding
      :math:`\lambda x_t` to the gradient (default ``False``).
    fixed_decay: with ``weight_decouple``, a factor :math:`1 - \lambda`
      without :math:`\eta_t` (default ``False``).
    preconditioning_compute_steps: steps between root computations, an int
      >= 1 (default 1).
    matrix_eps: :math:`\epsilon \ge 0`, the sums' start (default 1e-6).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> from jaxopt_notes.contrib import shampoo
    >>> f = lambda x: jnp.sum((x - 1.0) ** 2)
    >>> tx = shampoo(learning_rate=0.3)
    >>> x = jnp.array([[0.5, -1.0], [2.0, 0.0]])
    >>> state = tx.init(x)
    >>> @jax.jit  # one compiled step: the loop then runs in milliseconds
    ... def step(x, state):
    ...   u, state = tx.update(jax.grad(f)(x), state, x)
    ...   return jn.apply_updates(x, u), state
    >>> for _ in range(30):
    ...   x, state = step(x, state)
    >>> print(round(float(f(x)), 4))  # from 6.25
    0.0926
  """
  validation.check_learning_rate(learning_rate)
  validation.check_unit_interval("momentum", momentum)
  validation.check_non_negative("weight_decay", weight_decay)
  validation.check_flags(weight_decouple=weight_decouple, fixed_decay=fixed_decay)
  validation.check_positive_int("preconditioning_compute_steps", preconditioning_compute_steps)
  validation.check_non_negative("matrix_eps", matrix_eps)
  decays = not (validation.is_python_number(weight_decay) and weight_decay == 0)

  def init_fn(params):
    validation.check_float_params(params)
    return ShampooState(
        count=jnp.zeros([], jnp.int32),
        momentum=tree_lib.tree_zeros_like(params),
        preconditioners=jax.tree.map(
            lambda p: tuple(jnp.eye(d, dtype=p.dtype) * jnp.asarray(matrix_eps, p.dtype) for d in p.shape), params
        ),
        inverse_roots=jax.tree.map(lambda p: tuple(jnp.zeros((d, d), p.dtype) for d in p.shape), params),
    )

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params)
    if decays and params is None:
      raise ValueError(base.NO_PARAMS_MSG)
    count = state.count
    step = count + 1
    lr = learning_rate(count) if callable(learning_rate) else learning_rate
    recompute = step % preconditioning_compute_steps == 0

    treedef = jax.tree.structure(updates)
    grads = treedef.flatten_up_to(updates)
    ps = treedef.flatten_up_to(params) if params is not None else [None] * len(grads)
    leaves = [treedef.flatten_up_to(x) for x in (state.momentum, state.preconditioners, state.inverse_roots)]
    out_u, out_s, out_l, out_r = [], [], [], []
    for g, p, s, pre, roots in zip(grads, ps, *leaves):
      dtype = g.dtype
      # The reference starts its buffer at the first gradient.
      g = _lerp(g, jnp.where(count == 0, g, s), jnp.asarray(momentum, dtype))
      if decays and not weight_decouple:
        g = g + jnp.asarray(weight_decay, dtype) * p
      new_pre, new_roots = [], []
      for axis, (l_i, r_i) in enumerate(zip(pre, roots)):
        unfolded = jnp.moveaxis(g, axis, 0).reshape(g.shape[axis], -1)
        l_i = l_i + unfolded @ unfolded.T
        r_i = jax.lax.cond(recompute, lambda m: _inverse_root(m, 2 * g.ndim, matrix_eps), lambda _, r=r_i: r, l_i)
        new_pre.append(l_i)
        new_roots.append(r_i)
      direction = _precondition(g, new_roots)
      u = -jnp.asarray(lr, dtype) * direction
      if decays and weight_decouple:
        rate = weight_decay if fixed_decay else lr * weight_decay
        u = u - jnp.asarray(rate, dtype) * p
      out_u.append(u)
      out_s.append(direction)
      out_l.append(tuple(new_pre))
      out_r.append(tuple(new_roots))
    new_state = ShampooState(
        count=tree_lib.safe_increment(count),
        momentum=treedef.unflatten(out_s),
        preconditioners=treedef.unflatten(out_l),
        inverse_roots=treedef.unflatten(out_r),
    )
    return treedef.unflatten(out_u), new_state

  return base.GradientTransformation(init_fn, update_fn)
