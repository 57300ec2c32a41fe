"""The torch.optim update rules whose math differs from the library's blocks.

Momentum with dampening and torch's first-step buffer, AMSGrad's max over the
uncorrected second moment, NAdam's momentum-decay schedule and RAdam's
rectification, each step for step as ``torch.optim`` (torch 2.x, for-loop
implementation) computes it.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, validation
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.schedules.torch_style import _float_dtype, _one_minus_power
from jaxopt_notes.torch_compat._common import Num
from jaxopt_notes.transforms import adam_family

__all__ = [
    "TorchMomentumState", "TorchNAdamState", "scale_by_torch_amsgrad",
    "scale_by_torch_nadam", "scale_by_torch_radam", "torch_momentum",
]


class TorchMomentumState(NamedTuple):
  """State of :func:`torch_momentum`: updates seen and the momentum buffer."""

  count: jax.Array  # type: ignore[assignment]  # named like tuple.count, as optax's; int32 scalar
  momentum_buffer: base.Updates


def torch_momentum(
    momentum: Num, dampening: Num = 0.0, nesterov: bool = False
) -> base.GradientTransformation:
  r"""torch's momentum buffer: the first gradient, then damped accumulation.

  .. math::
     b_1 = g_1, \qquad b_t = \mu\, b_{t-1} + (1 - \tau)\, g_t, \qquad
     u_t = b_t \ \text{or, with Nesterov,}\ u_t = g_t + \mu\, b_t

  (``mu`` = ``momentum``, ``tau`` = ``dampening``). The buffer used by
  ``torch.optim.SGD`` and, with ``tau = 0``, ``torch.optim.RMSprop`` (whose
  zero-initialised buffer gives the same ``b_1``). :func:`~jaxopt_notes.trace`
  (optax's) starts from ``b_0 = 0`` and has no dampening, so it agrees only
  when ``dampening = 0``; it also rejects ``momentum >= 1``, which torch
  allows. Notes 000/003's momentum ``v = rho v + dw`` (Sutskever et al., 2013).

  Args:
    momentum: ``mu >= 0``.
    dampening: ``tau`` in ``[0, 1]`` (default 0.0; torch does not check it);
      it does not touch the first step.
    nesterov: return ``g + mu b`` (default ``False``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.torch_compat as tc
    >>> tx = tc.torch_momentum(0.9, dampening=0.5)
    >>> state = tx.init({"w": jnp.zeros(2)})
    >>> b1, state = tx.update({"w": jnp.array([0.5, -1.0])}, state)
    >>> b2, state = tx.update({"w": jnp.array([1.0, 1.0])}, state)
    >>> [round(float(x), 4) for x in b1["w"]], [round(float(x), 4) for x in b2["w"]]  # g_1, then 0.9 b_1 + 0.5 g_2
    ([0.5, -1.0], [0.95, -0.4])
  """
  validation.check_non_negative("momentum", momentum)
  validation.check_unit_interval("dampening", dampening, closed_right=True)
  validation.check_bool("nesterov", nesterov)

  def init_fn(params):
    return TorchMomentumState(
        count=jnp.zeros([], jnp.int32), momentum_buffer=tree_lib.tree_zeros_like(params)
    )

  def update_fn(updates, state, params=None):
    del params
    first = state.count == 0

    def accumulate(g, b):
      return jnp.where(first, g, momentum * b + (1 - dampening) * g).astype(b.dtype)

    buf = tree_lib.tree_map_checked(accumulate, updates, state.momentum_buffer)
    out = jax.tree.map(lambda g, b: g + momentum * b, updates, buf) if nesterov else buf
    return out, TorchMomentumState(count=tree_lib.safe_increment(state.count), momentum_buffer=buf)

  return base.GradientTransformation(init_fn, update_fn)


def _moments(updates, state, b1, b2):
  """Adam's two EMAs and the new count, from the library's moment helpers."""
  mu = tree_lib.tree_update_moment(updates, state.mu, b1, 1)
  nu = tree_lib.tree_update_moment_per_elem_norm(updates, state.nu, b2, 2)
  return mu, nu, tree_lib.safe_increment(state.count)


def _scaled(factor: jax.Array, leaf: jax.Array) -> jax.Array:
  return factor.astype(leaf.dtype) * leaf


def scale_by_torch_amsgrad(
    b1: Num = 0.9, b2: Num = 0.999, eps: Num = 1e-8
) -> base.GradientTransformation:
  r"""torch's AMSGrad (``Adam(amsgrad=True)``): max of the raw ``v``, then correct.

  .. math::
     \tilde v_t = \max(\tilde v_{t-1}, v_t), \qquad
     u_t = \frac{m_t / (1 - \beta_1^t)}{\sqrt{\tilde v_t / (1 - \beta_2^t)} + \epsilon}

  with Adam's EMAs ``m``, ``v``. :func:`~jaxopt_notes.scale_by_amsgrad`
  (optax's) takes the max of the already corrected ``v_hat``; since
  ``1 - beta2^t`` grows with ``t`` the two differ whenever ``v`` has shrunk.
  Same state layout as ``scale_by_amsgrad``. Reddi et al., "On the
  Convergence of Adam and Beyond", ICLR 2018.

  Args:
    b1, b2: torch's ``betas``, each in ``[0, 1)`` (defaults 0.9, 0.999).
    eps: added after the root (default 1e-8).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> import jaxopt_notes.torch_compat as tc
    >>> def run(tx):
    ...   state, out = tx.init({"w": jnp.zeros(1)}), []
    ...   for g in (1.0, 0.1, 0.1):
    ...     u, state = tx.update({"w": jnp.array([g])}, state)
    ...     out.append(round(float(u["w"][0]), 4))
    ...   return out
    >>> run(tc.scale_by_torch_amsgrad()), run(jn.scale_by_amsgrad())  # the max of v, or of v_hat
    ([1.0, 0.7408, 0.6331], [1.0, 0.5263, 0.369])
  """
  adam_family.check_moment_args(b1, b2, eps)

  def init_fn(params):
    zeros = tree_lib.tree_zeros_like
    return adam_family.ScaleByAmsgradState(
        jnp.zeros([], jnp.int32), zeros(params), zeros(params), zeros(params)
    )

  def update_fn(updates, state, params=None):
    del params
    mu, nu, count = _moments(updates, state, b1, b2)
    nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)
    c1, c2 = _one_minus_power(b1, count), _one_minus_power(b2, count)
    updates = jax.tree.map(
        lambda m, v: (m / c1.astype(m.dtype)) / (jnp.sqrt(v / c2.astype(v.dtype)) + eps),
        mu, nu_max,
    )
    return updates, adam_family.ScaleByAmsgradState(count=count, mu=mu, nu=nu, nu_max=nu_max)

  return base.GradientTransformation(init_fn, update_fn)


class TorchNAdamState(NamedTuple):
  """State of :func:`scale_by_torch_nadam`: Adam's plus the product of the mus."""

  count: jax.Array  # type: ignore[assignment]  # named like tuple.count, as optax's; int32 scalar
  mu_product: jax.Array  # scalar, the default float dtype
  mu: base.Updates
  nu: base.Updates


def scale_by_torch_nadam(
    b1: Num = 0.9, b2: Num = 0.999, eps: Num = 1e-8, momentum_decay: Num = 4e-3
) -> base.GradientTransformation:
  r"""torch's NAdam scaling, with Dozat's momentum schedule.

  .. math::
     \mu_t = \beta_1\big(1 - \tfrac12\, 0.96^{t\psi}\big), \quad
     \Pi_t = \prod_{s \le t} \mu_s, \quad
     u_t = \frac{\frac{1-\mu_t}{1-\Pi_t}\, g_t + \frac{\mu_{t+1}}{1-\Pi_t\mu_{t+1}}\, m_t}
                {\sqrt{v_t / (1-\beta_2^t)} + \epsilon}

  (``psi`` = ``momentum_decay``; ``m``, ``v`` Adam's EMAs). The update of
  ``torch.optim.NAdam``. :func:`~jaxopt_notes.nadam` (optax's) has no
  momentum schedule: it uses ``mu_t = beta1`` throughout and corrects with
  ``1 - beta1^t``; ``momentum_decay=0`` here gives ``mu_t = beta1 / 2``, not
  optax's rule either. ``Pi`` is stored like torch's ``mu_product``, in the
  default float dtype. Dozat, "Incorporating Nesterov Momentum into Adam",
  ICLR 2016 workshop.

  Args:
    b1, b2: torch's ``betas``, each in ``[0, 1)`` (defaults 0.9, 0.999).
    eps: added after the root (default 1e-8).
    momentum_decay: ``psi >= 0`` (default 4e-3).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.torch_compat as tc
    >>> tx = tc.scale_by_torch_nadam()
    >>> state = tx.init({"w": jnp.zeros(1)})
    >>> u1, state = tx.update({"w": jnp.ones(1)}, state)
    >>> u2, state = tx.update({"w": jnp.ones(1)}, state)
    >>> round(float(u1["w"][0]), 4), round(float(u2["w"][0]), 4), int(state.count)
    (1.0565, 0.7837, 2)
  """
  adam_family.check_moment_args(b1, b2, eps)
  validation.check_non_negative("momentum_decay", momentum_decay)

  def mu_at(step):
    return b1 * (1.0 - 0.5 * jnp.power(0.96, step * momentum_decay))

  def init_fn(params):
    zeros = tree_lib.tree_zeros_like
    return TorchNAdamState(
        jnp.zeros([], jnp.int32), jnp.ones([], _float_dtype()), zeros(params), zeros(params)
    )

  def update_fn(updates, state, params=None):
    del params
    mu, nu, count = _moments(updates, state, b1, b2)
    step = count.astype(state.mu_product.dtype)
    mu_now, mu_next = mu_at(step), mu_at(step + 1)
    product = (state.mu_product * mu_now).astype(state.mu_product.dtype)
    coef_g = (1.0 - mu_now) / (1.0 - product)
    coef_m = mu_next / (1.0 - product * mu_next)
    c2 = _one_minus_power(b2, count)
    updates = jax.tree.map(
        lambda g, m, v: (_scaled(coef_g, g) + _scaled(coef_m, m))
        / (jnp.sqrt(v / c2.astype(v.dtype)) + eps),
        updates, mu, nu,
    )
    return updates, TorchNAdamState(count=count, mu_product=product, mu=mu, nu=nu)

  return base.GradientTransformation(init_fn, update_fn)


# 2 B_n / n! for the even Bernoulli numbers B_2 .. B_10.
_RHO_SERIES = tuple(
    (n, 2.0 * b / math.factorial(n))
    for n, b in ((2, 1 / 6), (4, -1 / 30), (6, 1 / 42), (8, -1 / 30), (10, 5 / 66))
)


def _radam_rho(count: jax.Array, b2: Any, c2: jax.Array, rho_inf: Any) -> jax.Array:
  r"""RAdam's :math:`\rho_t = \rho_\infty - 2 t \beta_2^t / (1 - \beta_2^t)`.

  Early on the two terms are ~2000 and ~1994 for ``beta2 = 0.999``, and
  their float32 difference is off by ~4e-4, i.e. 1e-4 of ``r_t`` at ``t = 6``.
  With ``L = -log(beta2)`` and ``x = t L``, expanding ``y / (e^y - 1)`` in
  Bernoulli numbers gives the difference directly:
  :math:`\rho_t = t + \sum_n \frac{2 B_n}{n!}(L^{n-1} - x^n / L)`, used while
  ``x < 1/2`` (truncation below 1e-9); past that there is little to cancel.
  """
  t = count.astype(c2.dtype)
  direct = rho_inf - 2.0 * t * (1.0 - c2) / c2
  if isinstance(b2, jax.core.Tracer) or not 0.0 < float(b2) < 1.0:
    return direct
  log_b = -math.log(float(b2))
  x = t * log_b
  series = t + sum(k * (log_b ** (n - 1) - x**n / log_b) for n, k in _RHO_SERIES)
  return jnp.where(x < 0.5, series, direct)


def scale_by_torch_radam(
    b1: Num = 0.9, b2: Num = 0.999, eps: Num = 1e-8
) -> base.GradientTransformation:
  r"""torch's RAdam scaling: rectified Adam once ``rho_t > 5``.

  .. math::
     \rho_\infty = \tfrac{2}{1-\beta_2} - 1, \quad
     \rho_t = \rho_\infty - \tfrac{2 t \beta_2^t}{1-\beta_2^t}, \quad
     r_t = \sqrt{\tfrac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}}

  .. math::
     u_t = \hat m_t\, r_t\, \frac{\sqrt{1-\beta_2^t}}{\sqrt{v_t} + \epsilon}
     \ \ (\rho_t > 5), \qquad u_t = \hat m_t \ \ \text{otherwise}

  The update of ``torch.optim.RAdam``. :func:`~jaxopt_notes.scale_by_radam`
  (optax's) divides by ``sqrt(v_hat) + eps`` instead, i.e. uses
  ``eps * sqrt(1 - beta2^t)`` where torch uses ``eps`` (an eps-sized
  difference, seen only when ``sqrt(v)`` is not much larger than ``eps``),
  and switches at ``rho_t >= 5``. ``1 - beta2^t`` and ``rho_t`` are formed
  without the cancellations that, in float32, cost optax's form about 1% of
  ``r_t`` at ``t = 6`` (200% for ``beta2 = 0.9999``). Same state layout as
  ``scale_by_radam``. Liu et al., ICLR 2020.

  Args:
    b1, b2: torch's ``betas``, each in ``[0, 1)`` (defaults 0.9, 0.999).
    eps: added after the root (default 1e-8).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.torch_compat as tc
    >>> tx = tc.scale_by_torch_radam()
    >>> state, out = tx.init({"w": jnp.zeros(1)}), []
    >>> for _ in range(7):
    ...   u, state = tx.update({"w": jnp.array([2.0])}, state)
    ...   out.append(round(float(u["w"][0]), 4))
    >>> out  # m_hat = g while rho_t <= 5 (t < 6), then rectified
    [2.0, 2.0, 2.0, 2.0, 2.0, 0.0258, 0.0327]
  """
  adam_family.check_moment_args(b1, b2, eps)
  rho_inf = 2.0 / (1.0 - b2) - 1.0
  rect_den = (rho_inf - 4.0) * (rho_inf - 2.0)

  def init_fn(params):
    zeros = tree_lib.tree_zeros_like
    return adam_family.ScaleByAdamState(jnp.zeros([], jnp.int32), zeros(params), zeros(params))

  def update_fn(updates, state, params=None):
    del params
    mu, nu, count = _moments(updates, state, b1, b2)
    c1, c2 = _one_minus_power(b1, count), _one_minus_power(b2, count)
    rho = _radam_rho(count, b2, c2, rho_inf)
    rectify = rho > 5.0
    safe_rho = jnp.where(rectify, rho, 6.0)  # keeps the unused branch finite
    factor = jnp.sqrt((safe_rho - 4.0) * (safe_rho - 2.0) * rho_inf / (rect_den * safe_rho))
    factor = factor * jnp.sqrt(c2)

    def direction(m, v):
      m_hat = m / c1.astype(m.dtype)
      return jnp.where(rectify, _scaled(factor, m_hat) / (jnp.sqrt(v) + eps), m_hat)

    updates = jax.tree.map(direction, mu, nu)
    return updates, adam_family.ScaleByAdamState(count=count, mu=mu, nu=nu)

  return base.GradientTransformation(init_fn, update_fn)
