"""MADGRAD: dual averaging with a cube-root AdaGrad scale and momentum."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.optimizers._common import LR, Num
from jaxopt_notes.transforms import scaling

__all__ = ["MadgradState", "madgrad", "scale_by_madgrad"]


class MadgradState(NamedTuple):
  """State of :func:`scale_by_madgrad` (optax's field names and order)."""

  count: jax.Array  # type: ignore[assignment]  # int32 scalar, steps taken k
  grad_sum_sq: base.Updates  # G_k = sum_i lambda_i g_i^2
  s: base.Updates  # s_k = sum_i lambda_i g_i
  x0: base.Params  # the params at init: the dual-averaging anchor


def scale_by_madgrad(
    learning_rate: LR,
    momentum: Num = 0.9,
    eps: Num = 1e-6,
) -> base.GradientTransformation:
  r"""MADGRAD's step as an update ``x_{k+1} - x_k`` (the learning rate inside).

  .. math::
     \lambda_k = (\eta_k + \epsilon)\sqrt{k+1}, \quad
     G_{k+1} = G_k + \lambda_k g_k^2, \quad s_{k+1} = s_k + \lambda_k g_k,

  .. math::
     z_{k+1} = x_0 - \frac{s_{k+1}}{G_{k+1}^{1/3} + \epsilon}, \quad
     x_{k+1} = (1-c)\, z_{k+1} + c\, x_k, \quad u_k = x_{k+1} - x_k

  with ``c = momentum``. Defazio & Jelassi, "Adaptivity without Compromise: A
  Momentumized, Adaptive, Dual Averaged Gradient Method for Stochastic
  Optimization", JMLR 2022 (arXiv:2101.11075). The weights grow like
  ``sqrt(k)``, the scale is a cube root rather than AdaGrad's square root,
  and the momentum averages iterates rather than gradients. ``eps`` is also
  added to the learning rate, as in the authors' PyTorch code. ``update``
  needs ``params``. Same as ``optax.contrib.scale_by_madgrad``, except that
  ``eps`` must be ``> 0``: with ``eps = 0`` optax returns NaN for every
  coordinate whose gradients so far were all 0 (``0 / 0``).

  Args:
    learning_rate: ``eta``, a float or a schedule (of ``k``).
    momentum: ``c`` in ``[0, 1)`` (default 0.9).
    eps: ``> 0``, added to the cube root and to ``eta`` (default 1e-6).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes.contrib as mg
    >>> tx = mg.scale_by_madgrad(0.1, momentum=0.0)
    >>> params = {"w": jnp.zeros(2)}
    >>> u, _ = tx.update({"w": jnp.array([1.0, -8.0])}, tx.init(params), params)
    >>> print(np.asarray(u["w"]).round(3))  # -lambda g / (lambda g^2)^(1/3)
    [-0.215  0.431]
  """
  validation.check_learning_rate(learning_rate)
  validation.check_unit_interval("momentum", momentum)
  validation.check_positive("eps", eps)

  def init_fn(params):
    validation.check_float_params(params)
    return MadgradState(
        count=jnp.zeros([], jnp.int32),
        grad_sum_sq=tree_lib.tree_zeros_like(params),
        s=tree_lib.tree_zeros_like(params),
        x0=jax.tree.map(lambda p: p, params),
    )

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(base.NO_PARAMS_MSG)
    combine.check_updates_match_params(updates, params)
    k = state.count
    eta = learning_rate(k) if callable(learning_rate) else learning_rate
    weight = (eta + eps) * jnp.sqrt(k + 1)
    # The weighted terms stay in the gradient's dtype (float32 weight, bf16 g).
    grad_sum_sq = tree_lib.tree_map_checked(
        lambda acc, g: acc + (weight * (g**2)).astype(g.dtype), state.grad_sum_sq, updates
    )
    s = tree_lib.tree_map_checked(lambda acc, g: acc + (weight * g).astype(g.dtype), state.s, updates)

    def step(anchor, total, sq, x):
      z = anchor - total / (jnp.cbrt(sq) + eps)
      return (1 - momentum) * z + momentum * x - x

    out = jax.tree.map(step, state.x0, s, grad_sum_sq, params)
    return out, MadgradState(
        count=tree_lib.safe_increment(k), grad_sum_sq=grad_sum_sq, s=s, x0=state.x0
    )

  return base.GradientTransformation(init_fn, update_fn)


def madgrad(
    learning_rate: LR,
    momentum: Num = 0.9,
    weight_decay: Num = 0.0,
    eps: Num = 1e-6,
) -> base.GradientTransformationExtraArgs:
  r"""MADGRAD with L2 weight decay added to the gradient.

  .. math:: x_{k+1} = \mathrm{MADGRAD}(g_k + \lambda x_k)

  (:func:`scale_by_madgrad` on the decayed gradient). Defazio & Jelassi, JMLR
  2022 (arXiv:2101.11075). The decay is coupled (it enters ``G`` and ``s``),
  as in the paper's code. Chain: ``add_decayed_weights(weight_decay)``,
  :func:`scale_by_madgrad`. Same as ``optax.contrib.madgrad`` (see
  :func:`scale_by_madgrad` for ``eps``).

  Args:
    learning_rate: ``eta``, a float or a schedule.
    momentum: iterate averaging in ``[0, 1)`` (default 0.9).
    weight_decay: ``lambda``, a number or a schedule (default 0.0).
    eps: ``> 0``, added to the cube root and to ``eta`` (default 1e-6).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.contrib as mg
    >>> f = lambda x: jnp.sum(x ** 2)
    >>> tx = mg.madgrad(0.1)
    >>> params = jnp.array([1.0, 2.0, 3.0])
    >>> state = tx.init(params)
    >>> for _ in range(30):
    ...   updates, state = tx.update(jax.grad(f)(params), state, params)
    ...   params = params + updates
    >>> print(f"{float(f(params)):.2f}")  # from 14
    0.31
  """
  return combine.chain(
      scaling.add_decayed_weights(weight_decay),
      scale_by_madgrad(learning_rate, momentum, eps),
  )
