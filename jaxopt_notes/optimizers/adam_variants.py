"""Adam's relatives: AdaBelief, Yogi, Adan and NovoGrad (notes 000, 003, 004).

Each is a ``chain`` of a :mod:`jaxopt_notes.transforms.adam_variants` block,
Adan's optional decoupled weight decay, and the step.
"""

from __future__ import annotations

from typing import Optional

from jaxopt_notes.core import base, combine
from jaxopt_notes.optimizers._common import LR, Num, descent_step
from jaxopt_notes.transforms import adam_variants, masking, scaling

__all__ = ["adabelief", "adan", "novograd", "yogi"]


def adabelief(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-16,
    eps_root: Num = 1e-16,
    *,
    nesterov: bool = False,
) -> base.GradientTransformationExtraArgs:
  r"""AdaBelief: Adam that divides by the spread of the gradient around its EMA.

  .. math::
     s_t = \beta_2 s_{t-1} + (1-\beta_2)(g_t - m_t)^2 + \epsilon_{root}, \qquad
     w_t = w_{t-1} - \eta_t \frac{\hat m_t}{\sqrt{\hat s_t} + \epsilon}

  Zhuang et al., NeurIPS 2020 (arXiv:2010.07468). Notes 000/003/004's Adam
  with ``E[(g - m)^2]`` in place of ``E[g^2]``: large steps where the
  gradient is predictable, small ones where it is not. The paper's defaults
  are ``eps=1e-8, eps_root=0``. Chain: :func:`scale_by_belief`, the step.
  Same as ``optax.adabelief``.

  Args:
    learning_rate: ``eta``, a float or a schedule.
    b1: first-moment decay in ``[0, 1)`` (default 0.9).
    b2: decay of ``s`` in ``[0, 1)`` (default 0.999).
    eps: added after the root (default 1e-16).
    eps_root: added to ``s`` every step (default 1e-16).
    nesterov: NAdam's look-ahead first moment (default ``False``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.adabelief(1e-3)
    >>> params = {"w": jnp.ones(2)}
    >>> updates, state = tx.update({"w": jnp.array([1.0, -4.0])}, tx.init(params), params)
    >>> print(np.asarray(updates["w"]).round(6))  # -eta g / (0.9 |g|) on the first step
    [-0.001111  0.001111]
  """
  return combine.chain(
      adam_variants.scale_by_belief(b1, b2, eps, eps_root, nesterov=nesterov),
      descent_step(learning_rate),
  )


def yogi(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-3,
) -> base.GradientTransformationExtraArgs:
  r"""Yogi: Adam whose second moment changes by at most ``(1 - b2) g^2`` a step.

  .. math::
     v_t = v_{t-1} - (1-\beta_2) \operatorname{sign}(v_{t-1} - g_t^2)\, g_t^2, \qquad
     w_t = w_{t-1} - \eta_t \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}

  Zaheer et al., NeurIPS 2018 ("Adaptive Methods for Nonconvex
  Optimization"). A variant of notes 000/003/004's Adam that keeps the
  effective learning rate from jumping up after small gradients. Both
  moments start at 1e-6. Chain: :func:`scale_by_yogi`, the step. Same as
  ``optax.yogi``.

  Args:
    learning_rate: ``eta``, a float or a schedule.
    b1: first-moment decay in ``[0, 1)`` (default 0.9).
    b2: second-moment decay in ``[0, 1)`` (default 0.999).
    eps: added after the root (default 1e-3).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.yogi(0.01)
    >>> params = {"w": jnp.ones(2)}
    >>> updates, state = tx.update({"w": jnp.array([1.0, -4.0])}, tx.init(params), params)
    >>> updates["w"]
    Array([-0.00998505,  0.0099971 ], dtype=float32)
  """
  return combine.chain(adam_variants.scale_by_yogi(b1, b2, eps), descent_step(learning_rate))


def adan(
    learning_rate: LR,
    b1: Num = 0.98,
    b2: Num = 0.92,
    b3: Num = 0.99,
    eps: Num = 1e-8,
    eps_root: Num = 1e-8,
    weight_decay: LR = 0.0,
    mask: Optional[masking.Mask] = None,
) -> base.GradientTransformationExtraArgs:
  r"""Adan: adaptive Nesterov momentum from gradient differences.

  .. math::
     w_t = w_{t-1} - \eta_t \left(
       \frac{\hat m_t + (1-\beta_2)\hat v_t}{\sqrt{\hat n_t + \epsilon_{root}} + \epsilon}
       + \lambda w_{t-1} \right)

  with the EMAs ``m`` of ``g``, ``v`` of ``g_t - g_{t-1}`` and ``n`` of
  ``(g_t + (1-b2)(g_t - g_{t-1}))^2`` of :func:`scale_by_adan`. Xie et al.,
  2022 (arXiv:2208.06677). Notes 000's Nesterov look-ahead without a second
  gradient, scaled per coordinate as notes 000/003/004's Adam. The decay is
  decoupled (added after the scaling, as in AdamW), not the paper's proximal
  ``1 / (1 + eta lambda)``. Chain: :func:`scale_by_adan`,
  :func:`add_decayed_weights` (``mask``), the step. Same as ``optax.adan``.

  Args:
    learning_rate: ``eta``, a float or a schedule.
    b1: decay of the gradient's EMA in ``[0, 1)`` (default 0.98).
    b2: decay of the differences' EMA in ``[0, 1)`` (default 0.92).
    b3: decay of the second moment in ``[0, 1)`` (default 0.99).
    eps: added after the root (default 1e-8).
    eps_root: added under the root (default 1e-8).
    weight_decay: ``lambda``, a number ``>= 0`` or a schedule (default 0.0).
    mask: which leaves to decay (a pytree of booleans or a function of the
      params); ``None`` decays all (default).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.adan(0.1)
    >>> params = {"w": jnp.ones(2)}
    >>> updates, state = tx.update({"w": jnp.array([1.0, -4.0])}, tx.init(params), params)
    >>> print(np.asarray(updates["w"]).round(4))
    [-0.1  0.1]
  """
  return combine.chain(
      adam_variants.scale_by_adan(b1, b2, b3, eps, eps_root),
      scaling.add_decayed_weights(weight_decay, mask),
      descent_step(learning_rate),
  )


def novograd(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.25,
    eps: Num = 1e-6,
    eps_root: Num = 0.0,
    weight_decay: Num = 0.0,
) -> base.GradientTransformationExtraArgs:
  r"""NovoGrad: momentum of layer-normalised gradients plus weight decay.

  .. math::
     \nu^l_t = \beta_2 \nu^l_{t-1} + (1-\beta_2)\|g^l_t\|^2, \quad
     m^l_t = \beta_1 m^l_{t-1} + \frac{g^l_t}{\sqrt{\nu^l_t} + \epsilon} + \lambda w^l_t, \quad
     w_t = w_{t-1} - \eta_t m_t

  per leaf (layer) ``l``. Ginsburg et al., 2019 (arXiv:1905.11286); Li et
  al., 2019 (Jasper, arXiv:1904.03288). Notes 000/003/004's RMSProp scaling
  with one second moment per layer, followed by notes 000's momentum.
  ``update`` needs ``params``. Chain: :func:`scale_by_novograd` (which adds
  the decay), the step. Same as ``optax.novograd``.

  Args:
    learning_rate: ``eta``, a float or a schedule.
    b1: momentum decay in ``[0, 1)`` (default 0.9).
    b2: decay of the per-layer second moment in ``[0, 1)`` (default 0.25).
    eps: added after the root (default 1e-6).
    eps_root: added under the root (default 0.0).
    weight_decay: ``lambda``, a number ``>= 0`` (default 0.0).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.novograd(0.1)
    >>> params = {"w": jnp.ones(2)}
    >>> updates, state = tx.update({"w": jnp.array([3.0, -4.0])}, tx.init(params), params)
    >>> print(np.asarray(updates["w"]).round(4))  # -eta g / ||g|| on the first step
    [-0.06  0.08]
  """
  return combine.chain(
      adam_variants.scale_by_novograd(b1, b2, eps, eps_root, weight_decay),
      descent_step(learning_rate),
  )
