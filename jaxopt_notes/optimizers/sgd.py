"""SGD, with optional heavy-ball or Nesterov momentum (notes 000, 003, 004), and noisy SGD (notes 002)."""

from __future__ import annotations

from typing import Any, Optional

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.kernels import fused
from jaxopt_notes.optimizers._common import LR, Num, descent_step
from jaxopt_notes.transforms import moments, step_size

__all__ = ["noisy_sgd", "sgd"]

def sgd(
    learning_rate: LR,
    momentum: Optional[Num] = None,
    nesterov: bool = False,
    accumulator_dtype: Optional[Any] = None,
    *,
    average_momentum: bool = False,
) -> base.GradientTransformationExtraArgs:
  r"""Stochastic gradient descent, with optional (Nesterov) momentum.

  .. math::
     v_t = \rho v_{t-1} + g_t, \qquad w_t = w_{t-1} - \eta\, v_t

  (plain SGD ``w -= eta g`` when ``momentum`` is ``None``; Nesterov uses
  ``g_t + rho v_t``). Notes 000/003: ``v = rho v + dw; w -= lr v``.
  ``average_momentum=True`` is note 004's EMA form
  ``v = beta v + (1-beta) dw`` (see :func:`trace`). Chain:
  ``trace(momentum)`` (if any) then ``scale_by_learning_rate``. Same as
  ``optax.sgd``.

  Args:
    learning_rate: ``eta``, a float or a schedule.
    momentum: ``rho`` in ``[0, 1)``, or ``None`` for no momentum.
    nesterov: Nesterov momentum (default ``False``).
    accumulator_dtype: dtype of the momentum buffer.
    average_momentum: the EMA form of momentum (default ``False``).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.sgd(0.1)
    >>> grad = jax.grad(lambda p: jnp.sum(p["w"] ** 2))
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> state = tx.init(params)
    >>> for _ in range(3):
    ...   updates, state = tx.update(grad(params), state, params)
    ...   params = jn.apply_updates(params, updates)
    >>> print(np.asarray(params["w"]).round(4))  # each step multiplies w by 1 - 0.1 * 2
    [ 0.512 -1.024]
  """
  # Checked even without momentum, where they would be silently ignored.
  validation.check_flags(nesterov=nesterov, average_momentum=average_momentum)
  validation.check_dtype("accumulator_dtype", accumulator_dtype)
  lr_tx = descent_step(learning_rate)
  if momentum is None:
    return fused.attach(combine.chain(base.identity(), lr_tx), fused.sgd_rule(lr_tx))
  validation.check_unit_interval("momentum", momentum)
  direction = moments.trace(
      decay=momentum, nesterov=nesterov, accumulator_dtype=accumulator_dtype,
      average=average_momentum,
  )
  tx = combine.chain(direction, lr_tx)
  # The averaged form has its own multiply-add pattern; it keeps the reference path.
  return tx if average_momentum else fused.attach(tx, fused.momentum_rule(momentum, nesterov, lr_tx))



def noisy_sgd(
    learning_rate: LR,
    eta: Num = 0.01,
    gamma: Num = 0.55,
    key: Optional[Num] = None,
    *,
    seed: Optional[int] = None,
) -> base.GradientTransformationExtraArgs:
  r"""SGD on the gradient plus annealed Gaussian noise.

  .. math::
     w_{t+1} = w_t - \eta_t \left(g_t + \sigma_t \xi_t\right), \qquad
     \xi_t \sim \mathcal N(0, I), \qquad \sigma_t^2 = \frac{\eta}{t^{\gamma}}

  with :math:`t = 1, 2, \dots` the step (``eta`` here is the noise's base
  variance, ``learning_rate`` the step :math:`\eta_t`). Neelakantan et al.
  (2015), "Adding Gradient Noise Improves Learning for Very Deep Networks",
  arXiv:1511.06807. Notes 002 measure the noise that minibatches put into
  the gradient; this adds it on purpose and lets it decay. Chain:
  :func:`add_noise` then the step. Same as ``optax.noisy_sgd``: the same
  random numbers for the same ``key``, and the same key handling (an int
  seed or a ``jax.random.key``; ``seed=`` deprecated; neither: a warning and
  seed 0).

  Args:
    learning_rate: the step, a number or a schedule.
    eta: the noise's base variance, ``>= 0`` (default 0.01).
    gamma: its annealing exponent, ``>= 0`` (default 0.55).
    key: an int seed ``>= 0`` or a typed ``jax.random.key``.
    seed: deprecated, use ``key``.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.noisy_sgd(0.1, eta=0.0, key=jax.random.key(0))  # eta = 0: plain SGD
    >>> params = {"w": jnp.ones(2)}
    >>> updates, state = tx.update({"w": jnp.ones(2)}, tx.init(params), params)
    >>> updates["w"]
    Array([-0.1, -0.1], dtype=float32)
  """
  noise = step_size.add_noise(eta, gamma, key, seed=seed)
  return combine.chain(noise, descent_step(learning_rate))
