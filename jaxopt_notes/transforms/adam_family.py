"""Adam and its relatives: both moments, bias-corrected.

Adam (notes 000, 003, 004) keeps an EMA of the gradient (momentum) and of its
square (RMSProp) and divides one by the root of the other after correcting
both for their zero start. AMSGrad keeps the running maximum of the second
moment, Adamax replaces it by an infinity norm, and RAdam switches the
adaptive step off while the second moment is still too noisy to trust.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib

__all__ = [
    "ScaleByAdamState",
    "ScaleByAmsgradState",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_amsgrad",
    "scale_by_radam",
]


class ScaleByAdamState(NamedTuple):
  """State of Adam-type scalings: step count, first and second moments."""

  count: jax.Array  # type: ignore[assignment]  # named like tuple.count, as optax's; int32 scalar
  mu: base.Updates
  nu: base.Updates


class ScaleByAmsgradState(NamedTuple):
  """State of :func:`scale_by_amsgrad`: Adam's plus the running max of ``nu``."""

  count: jax.Array  # type: ignore[assignment]  # named like tuple.count, as optax's; int32 scalar
  mu: base.Updates
  nu: base.Updates
  nu_max: base.Updates


def check_moment_args(b1, b2, eps, eps_root=0.0, mu_dtype=None, nu_dtype=None, **flags):
  """Every Adam-like block's arguments; returns the canonical ``(mu_dtype, nu_dtype)``.

  The decays ``b1, b2`` in ``[0, 1)``, ``eps, eps_root >= 0``, the moments'
  dtypes, and each keyword in ``flags`` a bool.
  """
  validation.check_unit_interval("b1", b1)
  validation.check_unit_interval("b2", b2)
  validation.check_non_negative("eps", eps)
  validation.check_non_negative("eps_root", eps_root)
  validation.check_flags(**flags)
  return validation.check_dtype("mu_dtype", mu_dtype), validation.check_dtype("nu_dtype", nu_dtype)


def _first_moment_estimate(mu, updates, b1, count, *, nesterov: bool, debias: bool):
  r"""``mu_hat``: the bias-corrected first moment, or Nesterov's look-ahead.

  Nesterov (Dozat, 2016) uses :math:`\beta_1 \hat m_{t+1} + (1 - \beta_1)\hat g_t`,
  each term corrected with its own power of ``b1``.
  """
  if not debias:
    if nesterov:
      return jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, mu, updates)
    return mu
  if nesterov:
    return jax.tree.map(
        lambda m, g: b1 * m + (1 - b1) * g,
        tree_lib.bias_correction(mu, b1, tree_lib.safe_increment(count)),
        tree_lib.bias_correction(updates, b1, count),
    )
  return tree_lib.bias_correction(mu, b1, count)


def _adam_ratio(mu_hat, nu_hat, eps, eps_root):
  """``m / (sqrt(v + eps_root) + eps)``; ``None`` leaves stay ``None``."""
  return jax.tree.map(
      lambda m, v: None if m is None else m / (jnp.sqrt(v + eps_root) + eps),
      mu_hat, nu_hat, is_leaf=lambda x: x is None,
  )


def _next_adam_state(count, mu, nu, state: ScaleByAdamState) -> ScaleByAdamState:
  """The new state, its moments cast back to the dtypes ``init`` gave them."""
  return ScaleByAdamState(
      count=count,
      mu=tree_lib.tree_cast_like(mu, state.mu),
      nu=tree_lib.tree_cast_like(nu, state.nu),
  )


def _init_moments(params, mu_dtype, nu_dtype):
  validation.check_float_params(params)
  return (
      tree_lib.tree_zeros_like(params, dtype=mu_dtype),
      tree_lib.tree_zeros_like(params, dtype=nu_dtype),
  )


def _adam_state_init(mu_dtype=None, nu_dtype=None):
  """``init`` of every block whose state is a :class:`ScaleByAdamState`."""

  def init_fn(params):
    mu, nu = _init_moments(params, mu_dtype, nu_dtype)
    return ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu=mu, nu=nu)

  return init_fn


def scale_by_adam(
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-8,
    eps_root: jax.typing.ArrayLike = 0.0,
    mu_dtype: Optional[Any] = None,
    *,
    nesterov: bool = False,
    nu_dtype: Optional[Any] = None,
    bias_correction: bool = True,
) -> base.GradientTransformation:
  r"""Adam's scaling (Kingma & Ba, 2015).

  .. math::
     m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
     v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \quad
     u_t = \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}

  with :math:`\hat m_t = m_t / (1-\beta_1^t)`, :math:`\hat v_t = v_t / (1-\beta_2^t)`.
  Notes 004: ``w -= alpha V^ / (sqrt(S^) + eps)`` with b1 0.9, b2 0.999,
  eps 1e-8; notes 003 write the same step as
  ``eta / sqrt(v + eps) * sqrt(1 - b2^t) / (1 - b1^t) * m``.

  ``bias_correction=False`` is the notes' "almost Adam" (note 000):
  ``m / (sqrt(v) + 1e-7)`` with no ``1 - b^t`` division, whose first steps are
  far too large or small; optax has no such flag. ``nesterov=True`` is NAdam.
  Defaults, state layout and numbers are those of ``optax.scale_by_adam``.

  Args:
    b1: first-moment decay in ``[0, 1)`` (default 0.9).
    b2: second-moment decay in ``[0, 1)`` (default 0.999).
    eps: added after the root (default 1e-8).
    eps_root: added under the root (default 0.0); make it positive when
      differentiating through the update.
    mu_dtype: dtype of the stored first moment (default: the params').
    nesterov: NAdam's look-ahead first moment (default ``False``).
    nu_dtype: dtype of the stored second moment (default: the params'); an
      addition over optax, e.g. float32 ``nu`` for bfloat16 params.
    bias_correction: divide the moments by ``1 - b^t`` (default ``True``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_adam()
    >>> updates, state = tx.update({"w": jnp.array([2.0, -1.0])}, tx.init({"w": jnp.zeros(2)}))
    >>> print(np.asarray(updates["w"]).round(4))  # the first step is sign(g)
    [ 1. -1.]
    >>> int(state.count)
    1
  """
  mu_dtype, nu_dtype = check_moment_args(
      b1, b2, eps, eps_root, mu_dtype, nu_dtype, nesterov=nesterov, bias_correction=bias_correction
  )
  init_fn = _adam_state_init(mu_dtype, nu_dtype)

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params, state=state.mu, state_name="state.mu")
    del params
    mu = tree_lib.tree_update_moment(updates, state.mu, b1, 1)
    nu = tree_lib.tree_update_moment_per_elem_norm(updates, state.nu, b2, 2)
    count = tree_lib.safe_increment(state.count)
    mu_hat = _first_moment_estimate(
        mu, updates, b1, count, nesterov=nesterov, debias=bias_correction
    )
    nu_hat = tree_lib.bias_correction(nu, b2, count) if bias_correction else nu
    updates = _adam_ratio(mu_hat, nu_hat, eps, eps_root)
    # Both moments keep init's dtypes (mu_dtype/nu_dtype, else the params'),
    # also when a strongly typed float32 b1/b2 (traced, injected) would promote.
    return updates, _next_adam_state(count, mu, nu, state)

  return base.GradientTransformation(init_fn, update_fn)


def scale_by_amsgrad(
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-8,
    eps_root: jax.typing.ArrayLike = 0.0,
    mu_dtype: Optional[Any] = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    *,
    nu_dtype: Optional[Any] = None,
) -> base.GradientTransformation:
  r"""AMSGrad's scaling: Adam with a never-decreasing second moment.

  .. math::
     \tilde v_t = \max(\tilde v_{t-1}, \hat v_t), \qquad
     u_t = \frac{\hat m_t}{\sqrt{\tilde v_t + \epsilon_{root}} + \epsilon}

  The maximum keeps the effective step from growing again after a large
  gradient, which fixes Adam's non-convergence example (Reddi et al., 2018).
  ``bias_correction_mu/nu=False`` gives the paper's uncorrected form. Same
  state and numbers as ``optax.scale_by_amsgrad`` (0.2.8); ``nu_dtype`` (for
  ``nu`` and ``nu_max``) is our addition.

  Args:
    b1: first-moment decay in ``[0, 1)`` (default 0.9).
    b2: second-moment decay in ``[0, 1)`` (default 0.999).
    eps: added after the root (default 1e-8).
    eps_root: added under the root (default 0.0).
    mu_dtype: dtype of the stored first moment (default: the params').
    bias_correction_mu: correct ``m`` by ``1 - b1^t`` (default ``True``).
    bias_correction_nu: correct ``v`` by ``1 - b2^t`` before the max
      (default ``True``).
    nu_dtype: dtype of the stored ``nu`` and ``nu_max`` (default: the params').

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_amsgrad()
    >>> state = tx.init({"w": jnp.zeros(1)})
    >>> for g in [10.0, 1.0]:
    ...   updates, state = tx.update({"w": jnp.array([g])}, state)
    >>> print(np.asarray(state.nu_max["w"]).round(2), np.asarray(updates["w"]).round(4))  # keeps 10**2
    [100.] [0.5263]
  """
  mu_dtype, nu_dtype = check_moment_args(
      b1, b2, eps, eps_root, mu_dtype, nu_dtype,
      bias_correction_mu=bias_correction_mu, bias_correction_nu=bias_correction_nu,
  )

  def init_fn(params):
    mu, nu = _init_moments(params, mu_dtype, nu_dtype)
    nu_max = tree_lib.tree_zeros_like(params, dtype=nu_dtype)
    return ScaleByAmsgradState(count=jnp.zeros([], jnp.int32), mu=mu, nu=nu, nu_max=nu_max)

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params, state=state.mu, state_name="state.mu")
    del params
    mu = tree_lib.tree_update_moment(updates, state.mu, b1, 1)
    nu = tree_lib.tree_update_moment_per_elem_norm(updates, state.nu, b2, 2)
    count = tree_lib.safe_increment(state.count)
    mu_hat = tree_lib.bias_correction(mu, b1, count) if bias_correction_mu else mu
    nu_eff = tree_lib.bias_correction(nu, b2, count) if bias_correction_nu else nu
    nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu_eff)
    updates = _adam_ratio(mu_hat, nu_max, eps, eps_root)
    return updates, ScaleByAmsgradState(
        count=count,
        mu=tree_lib.tree_cast_like(mu, state.mu),
        nu=tree_lib.tree_cast_like(nu, state.nu),
        nu_max=tree_lib.tree_cast_like(nu_max, state.nu_max),
    )

  return base.GradientTransformation(init_fn, update_fn)


def scale_by_adamax(
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-8,
) -> base.GradientTransformation:
  r"""Adamax's scaling: Adam with the infinity norm in place of ``v``.

  .. math::
     u^\infty_t = \max(\beta_2 u^\infty_{t-1}, |g_t| + \epsilon), \qquad
     u_t = \frac{\hat m_t}{u^\infty_t}

  The limit ``p -> inf`` of Adam's ``L^p`` second moment (Kingma & Ba, 2015,
  sec. 7); needs no bias correction of the max. Same state and numbers as
  ``optax.scale_by_adamax``.

  Args:
    b1: first-moment decay in ``[0, 1)`` (default 0.9).
    b2: decay of the running max in ``[0, 1)`` (default 0.999).
    eps: added to ``|g|`` (default 1e-8).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_adamax()
    >>> updates, state = tx.update({"w": jnp.array([2.0, -1.0])}, tx.init({"w": jnp.zeros(2)}))
    >>> print(np.asarray(updates["w"]).round(4))  # m_hat / |g| on the first step
    [ 1. -1.]
  """
  check_moment_args(b1, b2, eps)
  init_fn = _adam_state_init()

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params, state=state.mu, state_name="state.mu")
    del params
    count = tree_lib.safe_increment(state.count)
    mu = tree_lib.tree_update_moment(updates, state.mu, b1, 1)
    nu = tree_lib.tree_update_infinity_moment(updates, state.nu, b2, eps)
    mu_hat = tree_lib.bias_correction(mu, b1, count)
    updates = jax.tree.map(lambda m, v: m / v, mu_hat, nu)
    return updates, _next_adam_state(count, mu, nu, state)

  return base.GradientTransformation(init_fn, update_fn)


def scale_by_radam(
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-8,
    eps_root: jax.typing.ArrayLike = 0.0,
    threshold: jax.typing.ArrayLike = 5.0,
    *,
    nesterov: bool = False,
) -> base.GradientTransformation:
  r"""Rectified Adam's scaling (Liu et al., 2020).

  .. math::
     \rho_\infty = \frac{2}{1-\beta_2} - 1, \quad
     \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1 - \beta_2^t}, \quad
     r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}}

  and :math:`u_t = r_t \hat m_t / (\sqrt{\hat v_t + \epsilon_{root}} + \epsilon)`
  once :math:`\rho_t \ge` ``threshold``, else the plain momentum step
  :math:`u_t = \hat m_t`. Notes 001 name RAdam as an Adam variant. Same state
  and numbers as ``optax.scale_by_radam``.

  Args:
    b1: first-moment decay in ``[0, 1)`` (default 0.9).
    b2: second-moment decay in ``[0, 1)`` (default 0.999).
    eps: added after the root (default 1e-8).
    eps_root: added under the root (default 0.0).
    threshold: the ``rho_t`` above which the adaptive step is used (default 5).
    nesterov: Nesterov's first moment, as in :func:`scale_by_adam`.

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_radam()
    >>> state = tx.init({"w": jnp.zeros(1)})
    >>> steps = []
    >>> for _ in range(6):
    ...   updates, state = tx.update({"w": jnp.array([2.0])}, state)
    ...   steps.append(round(float(updates["w"][0]), 4))
    >>> steps  # momentum m_hat = g until rho_t reaches 5 at step 6, then rectified
    [2.0, 2.0, 2.0, 2.0, 2.0, 0.0255]
  """
  check_moment_args(b1, b2, eps, eps_root, nesterov=nesterov)
  validation.check_finite("threshold", threshold)
  rho_inf = 2.0 / (1.0 - b2) - 1.0

  def rectified(rho, mu_hat, nu_hat):
    r = jnp.sqrt(
        (rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho)
    )
    return jax.tree.map(
        lambda m, v: r.astype(m.dtype) * m / (jnp.sqrt(v + eps_root) + eps), mu_hat, nu_hat
    )

  init_fn = _adam_state_init()

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params, state=state.mu, state_name="state.mu")
    del params
    mu = tree_lib.tree_update_moment(updates, state.mu, b1, 1)
    nu = tree_lib.tree_update_moment_per_elem_norm(updates, state.nu, b2, 2)
    count = tree_lib.safe_increment(state.count)
    b2t = b2**count
    rho = rho_inf - 2 * count * b2t / (1 - b2t)
    mu_hat = _first_moment_estimate(mu, updates, b1, count, nesterov=nesterov, debias=True)
    nu_hat = tree_lib.bias_correction(nu, b2, count)
    updates = jax.tree.map(
        lambda adaptive, plain: jnp.where(rho >= threshold, adaptive, plain),
        rectified(rho, mu_hat, nu_hat), mu_hat,
    )
    return updates, _next_adam_state(count, mu, nu, state)

  return base.GradientTransformation(init_fn, update_fn)
