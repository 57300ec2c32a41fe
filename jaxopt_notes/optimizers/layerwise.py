"""Layer-wise trust-ratio optimizers: LAMB, LARS and Fromage.

Each rescales every layer's (params leaf's) step to a fixed fraction of that
layer's weight norm, :func:`~jaxopt_notes.scale_by_trust_ratio`, on top of
a direction from the notes: Adam's for LAMB (notes 000/003/004), momentum
SGD's for LARS (notes 000/003), the plain gradient for Fromage.
"""

from __future__ import annotations

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.optimizers._common import LR, Num, descent_step
from jaxopt_notes.transforms import adam_family, masking, moments, scaling, trust_ratio

__all__ = ["fromage", "lamb", "lars"]


def lamb(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-6,
    eps_root: Num = 0.0,
    weight_decay: LR = 0.0,
    mask: masking.Mask = None,
) -> base.GradientTransformationExtraArgs:
  r"""LAMB: Adam's step with decoupled weight decay, rescaled layer by layer.

  .. math::
     r_t = \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon} + \lambda w_{t-1},
     \qquad w_t = w_{t-1} - \eta\, \frac{\lVert w_{t-1} \rVert}{\lVert r_t \rVert}\, r_t

  per params leaf (ratio 1 where either norm is 0). The AdamW direction of
  notes 000/003/004, whose length per layer is set by the trust ratio so
  that very large batches (and their large learning rates) train stably:
  You et al., "Large Batch Optimization for Deep Learning: Training BERT in
  76 minutes", ICLR 2020 (arXiv:1904.00962). Chain:
  :func:`scale_by_adam`, :func:`add_decayed_weights` (masked by ``mask``),
  :func:`scale_by_trust_ratio`, the step. Same as ``optax.lamb``.

  Args:
    learning_rate: ``eta``, a float or a schedule.
    b1: first-moment decay in ``[0, 1)`` (default 0.9).
    b2: second-moment decay in ``[0, 1)`` (default 0.999).
    eps: added after the root (default 1e-6).
    eps_root: added under the root (default 0.0).
    weight_decay: ``lambda`` (default 0.0), a finite number or a schedule.
    mask: which leaves to decay (a bool pytree or a function of the params;
      default ``None``: all).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.lamb(0.1)
    >>> params = {"w": jnp.array([3.0, 4.0])}
    >>> updates, _ = tx.update({"w": jnp.array([1.0, 1.0])}, tx.init(params), params)
    >>> updates["w"]  # length 0.1 * ||w|| = 0.5, along Adam's sign-like first step
    Array([-0.3535534, -0.3535534], dtype=float32)
  """
  return combine.chain(
      adam_family.scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root),
      scaling.add_decayed_weights(weight_decay=weight_decay, mask=mask),
      trust_ratio.scale_by_trust_ratio(),
      descent_step(learning_rate),
  )


def lars(
    learning_rate: LR,
    weight_decay: LR = 0.0,
    weight_decay_mask: masking.Mask = True,
    trust_coefficient: Num = 0.001,
    eps: Num = 0.0,
    trust_ratio_mask: masking.Mask = True,
    momentum: Num = 0.9,
    nesterov: bool = False,
) -> base.GradientTransformationExtraArgs:
  r"""LARS: momentum SGD whose per-layer gradient is rescaled to the layer's weight norm.

  .. math::
     d_t = g_t + \lambda w_{t-1}, \quad
     r_t = \frac{c \lVert w_{t-1} \rVert}{\lVert d_t \rVert + \epsilon}\, d_t, \quad
     v_t = \rho v_{t-1} - \eta r_t, \quad w_t = w_{t-1} + v_t

  per params leaf (Nesterov: :math:`w_t = w_{t-1} - \eta r_t + \rho v_t`).
  The heavy-ball momentum of notes 000/003 applied after the learning rate
  (as optax does), with each layer's step made a fraction ``c`` of its
  weight norm: You, Gitman & Ginsburg, "Large Batch Training of
  Convolutional Networks", 2017 (arXiv:1708.03888). Chain:
  :func:`add_decayed_weights` (masked by ``weight_decay_mask``),
  :func:`scale_by_trust_ratio` (masked by ``trust_ratio_mask``, e.g. to leave
  biases and norms out), the step, :func:`trace`. Same as ``optax.lars``.

  Args:
    learning_rate: ``eta``, a float or a schedule.
    weight_decay: ``lambda`` (default 0.0), a finite number or a schedule.
    weight_decay_mask: which leaves to decay (default ``True``: all).
    trust_coefficient: ``c >= 0`` (default 0.001).
    eps: ``epsilon >= 0`` in the ratio's denominator (default 0.0).
    trust_ratio_mask: which leaves get the trust ratio (default ``True``: all).
    momentum: ``rho`` in ``[0, 1)`` (default 0.9).
    nesterov: Nesterov momentum (default ``False``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.lars(1.0)
    >>> params = {"w": jnp.array([3.0, 4.0])}
    >>> updates, _ = tx.update({"w": jnp.array([0.0, 7.0])}, tx.init(params), params)
    >>> updates["w"]  # length 0.001 * ||w||
    Array([ 0.   , -0.005], dtype=float32)
  """
  validation.check_unit_interval("momentum", momentum)
  return combine.chain(
      scaling.add_decayed_weights(weight_decay, mask=weight_decay_mask),
      masking.masked(
          trust_ratio.scale_by_trust_ratio(trust_coefficient=trust_coefficient, eps=eps),
          mask=trust_ratio_mask,
      ),
      descent_step(learning_rate),
      moments.trace(decay=momentum, nesterov=nesterov),
  )


def fromage(learning_rate: LR, min_norm: Num = 1e-6) -> base.GradientTransformationExtraArgs:
  r"""Fromage: steps of relative size ``eta`` per layer, then a shrink that keeps norms bounded.

  .. math::
     w_t = \frac{1}{\sqrt{1 + \eta^2}} \left(w_{t-1} - \eta\,
       \frac{\lVert w_{t-1} \rVert}{\lVert g_t \rVert}\, g_t\right)

  per params leaf (both norms floored at ``min_norm``; a schedule ``eta_t``
  is evaluated at the step). Each step moves a layer by a fraction ``eta``
  of its own norm, and the factor ``1 / sqrt(1 + eta^2)`` undoes the growth
  a step orthogonal to ``w`` would cause, so the weights' scale stays put
  and the learning rate needs no tuning per layer: Bernstein, Vahdat, Yue &
  Liu, "On the distance between two neural networks and the stability of
  learning", NeurIPS 2020 (arXiv:2002.03432). Plain gradient descent of
  notes 000 with a per-layer trust ratio, beyond the notes' families.
  Chain: :func:`scale_by_trust_ratio`, the step ``eta / sqrt(1 + eta^2)``,
  :func:`add_decayed_weights` with the negative rate
  ``1 / sqrt(1 + eta^2) - 1``. Same as ``optax.fromage``.

  Args:
    learning_rate: ``eta``, a float or a schedule.
    min_norm: floor ``>= 0`` of both norms (default 1e-6).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.fromage(0.75)
    >>> params = {"w": jnp.array([3.0, 4.0])}
    >>> updates, _ = tx.update({"w": jnp.array([4.0, -3.0])}, tx.init(params), params)
    >>> params["w"] + updates["w"]  # norm 5 kept after a step orthogonal to w
    Array([0., 5.], dtype=float32)
  """
  validation.check_learning_rate(learning_rate)
  ratio = trust_ratio.scale_by_trust_ratio(min_norm)
  if callable(learning_rate):
    schedule = learning_rate
    shrink = lambda count: 1 / (1 + schedule(count) ** 2) ** 0.5
    return combine.chain(
        ratio,
        descent_step(lambda count: shrink(count) * schedule(count)),
        scaling.add_decayed_weights(lambda count: shrink(count) - 1),
    )
  shrink_by = 1 / (1 + learning_rate**2) ** 0.5
  return combine.chain(
      ratio,
      descent_step(learning_rate * shrink_by),
      scaling.add_decayed_weights(shrink_by - 1),
  )
