"""Optimistic gradient descent and optimistic Adam: a negative momentum for min-max games
(against notes 000/003's momentum)."""

from __future__ import annotations

import warnings
from typing import Any, Optional

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.optimizers._common import LR, Num, descent_step
from jaxopt_notes.transforms import adam_family, step_size

__all__ = ["optimistic_adam", "optimistic_adam_v2", "optimistic_gradient_descent"]


def optimistic_gradient_descent(
    learning_rate: LR,
    alpha: Num = 1.0,
    beta: Num = 1.0,
) -> base.GradientTransformationExtraArgs:
  r"""Optimistic gradient descent: step along the gradient plus its latest change.

  .. math::
     u_t = (\alpha + \beta)\, g_t - \beta\, g_{t-1}, \qquad w_{t+1} = w_t - \eta_t u_t

  (:math:`g_0 := g_1`, so the first step is :math:`-\eta \alpha g_1`).
  Mokhtari, Ozdaglar & Pattathil (2020), "A Unified Analysis of
  Extra-gradient and Optimistic Gradient Methods for Saddle Point Problems:
  Proximal Point Approach", AISTATS, arXiv:1901.08511. On a min-max game
  (``min_x max_y``, descend in ``x``, ascend in ``y``) plain gradient steps
  circle or spiral out; the look-ahead term ``beta (g_t - g_{t-1})`` damps
  that. Against notes 000/003's momentum, which adds past gradients, this
  subtracts the last one (a negative momentum). Chain:
  :func:`scale_by_optimistic_gradient` then the step. Same as
  ``optax.optimistic_gradient_descent``; ``alpha`` and ``beta`` are numbers
  (optax types them as schedules but multiplies them as numbers, so a
  schedule fails there at the first update; here it is refused when built).

  Args:
    learning_rate: :math:`\eta`, a number or a schedule.
    alpha: weight of the current gradient (default 1.0).
    beta: weight of the change since the last step (default 1.0).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.optimistic_gradient_descent(0.1)
    >>> params = jnp.array([1.0, 2.0])
    >>> state = tx.init(params)
    >>> for _ in range(2):
    ...   updates, state = tx.update(2 * params, state, params)  # grad of |w|^2
    ...   params = jn.apply_updates(params, updates)
    >>> params  # 0.8 w after the first step, then 0.8 w - 0.1 (2 g_2 - g_1) = 0.68 w
    Array([0.68, 1.36], dtype=float32)
  """
  return combine.chain(
      step_size.scale_by_optimistic_gradient(alpha=alpha, beta=beta),
      descent_step(learning_rate),
  )


def optimistic_adam(
    learning_rate: Num,
    optimism: Optional[Num] = None,
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-08,
    eps_root: Num = 0.0,
    mu_dtype: Optional[Any] = None,
    *,
    nesterov: bool = True,
) -> base.GradientTransformationExtraArgs:
  r"""Optimistic Adam (deprecated in optax for :func:`optimistic_adam_v2`).

  .. math::
     r_t = \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}, \qquad
     w_{t+1} = w_t - \eta\, r_t - o\, (r_t - r_{t-1})

  with Adam's bias-corrected moments (Nesterov's look-ahead ``m`` by
  default) and :math:`r_0 := r_1`. Daskalakis et al. (2018), "Training GANs
  with Optimism", ICLR, arXiv:1711.00141: the optimistic correction of
  :func:`optimistic_gradient_descent` applied to Adam's direction (notes
  000/003/004's adaptive scaling), for GANs and other saddle-point problems.
  The learning rate :math:`\eta` and the optimism :math:`o` (default:
  :math:`\eta`) are the optimistic step's ``alpha`` and ``beta``. Chain:
  :func:`scale_by_adam`, :func:`scale_by_optimistic_gradient`, the sign flip.

  Same as ``optax.optimistic_adam``, including its ``DeprecationWarning`` and
  its ``ValueError`` for a schedule as ``learning_rate``.

  Args:
    learning_rate: :math:`\eta`, a number (use :func:`optimistic_adam_v2` for
      a schedule).
    optimism: :math:`o`, or ``None`` for :math:`\eta` (default).
    b1: first-moment decay in ``[0, 1)`` (default 0.9).
    b2: second-moment decay in ``[0, 1)`` (default 0.999).
    eps: added after the root (default 1e-8).
    eps_root: added under the root (default 0.0).
    mu_dtype: dtype of the stored first moment (default: the params').
    nesterov: Nesterov's look-ahead first moment (default ``True``).

  Examples:
    >>> import warnings
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> with warnings.catch_warnings():
    ...   warnings.simplefilter("ignore", DeprecationWarning)
    ...   tx = jn.optimistic_adam(0.1, nesterov=False)
    >>> params = {"w": jnp.zeros(2)}
    >>> updates, _ = tx.update({"w": jnp.array([1.0, -3.0])}, tx.init(params), params)
    >>> [round(float(u), 4) for u in updates["w"]]  # the first step: -eta sign(g), as Adam's
    [-0.1, 0.1]
  """
  warnings.warn(
      "`optimistic_adam` is deprecated (as in optax); use `optimistic_adam_v2` instead.",
      DeprecationWarning, stacklevel=2,
  )
  if callable(learning_rate):
    raise ValueError(
        "`learning_rate` of optimistic_adam must be a number (it is also the "
        "optimistic step's alpha); optimistic_adam_v2 takes a schedule."
    )
  validation.check_learning_rate(learning_rate)
  if optimism is None:
    optimism = learning_rate
  else:
    validation.check_finite("optimism", optimism)
  return combine.chain(
      adam_family.scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype,
                                nesterov=nesterov),
      step_size.scale_by_optimistic_gradient(alpha=learning_rate, beta=optimism),
      # The sign flip only: the learning rate is the optimistic step's alpha.
      descent_step(1.0),
  )


def optimistic_adam_v2(
    learning_rate: LR,
    *,
    alpha: Num = 1.0,
    beta: Num = 1.0,
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-08,
    eps_root: Num = 0.0,
    mu_dtype: Optional[Any] = None,
    nesterov: bool = True,
) -> base.GradientTransformationExtraArgs:
  r"""Optimistic Adam with a learning rate apart from the optimism (and schedulable).

  .. math::
     r_t = \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}, \qquad
     w_{t+1} = w_t - \eta_t \left((\alpha + \beta)\, r_t - \beta\, r_{t-1}\right)

  with :math:`r_0 := r_1`. Daskalakis et al. (2018), arXiv:1711.00141; see
  :func:`optimistic_adam`, whose ``learning_rate``/``optimism`` are this
  one's ``alpha``/``beta`` with :math:`\eta = 1`. Adam's direction (notes
  000/003/004) with the optimistic negative momentum. Chain:
  :func:`scale_by_adam`, :func:`scale_by_optimistic_gradient`, the step.
  Same as ``optax.optimistic_adam_v2``.

  Args:
    learning_rate: :math:`\eta_t`, a number or a schedule.
    alpha: weight of the current direction (default 1.0).
    beta: weight of its change since the last step (default 1.0).
    b1: first-moment decay in ``[0, 1)`` (default 0.9).
    b2: second-moment decay in ``[0, 1)`` (default 0.999).
    eps: added after the root (default 1e-8).
    eps_root: added under the root (default 0.0).
    mu_dtype: dtype of the stored first moment (default: the params').
    nesterov: Nesterov's look-ahead first moment (default ``True``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.optimistic_adam_v2(0.1, alpha=0.5, nesterov=False)
    >>> params = {"w": jnp.zeros(2)}
    >>> updates, _ = tx.update({"w": jnp.array([1.0, -3.0])}, tx.init(params), params)
    >>> [round(float(u), 4) for u in updates["w"]]  # the first step: -eta alpha sign(g)
    [-0.05, 0.05]
  """
  return combine.chain(
      adam_family.scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype,
                                nesterov=nesterov),
      step_size.scale_by_optimistic_gradient(alpha=alpha, beta=beta),
      descent_step(learning_rate),
  )
