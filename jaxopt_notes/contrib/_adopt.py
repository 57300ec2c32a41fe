"""ADOPT and ACProp: Adam relatives that divide by the *previous* second moment.

Adam divides ``m_t`` by ``sqrt(v_t)``, and ``v_t`` already contains ``g_t``:
the step and its scale are correlated, which is what breaks Adam's
convergence for some ``b2``. Both rules here scale the current gradient by a
second moment built from the past only (ADOPT: of ``g``; ACProp: of the
prediction error ``g - m``).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.optimizers._common import LR, Num, descent_step
from jaxopt_notes.transforms import adam_family, adam_variants, masking, scaling

__all__ = ["acprop", "adopt", "scale_by_acprop", "scale_by_adopt"]


def _quarter_power(count: jax.Array) -> jax.Array:
  return count**0.25


def scale_by_adopt(
    b1: Num = 0.9,
    b2: Num = 0.9999,
    eps: Num = 1e-6,
    mu_dtype: Optional[Any] = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Callable[[jax.Array], jax.Array] = _quarter_power,
) -> base.GradientTransformation:
  r"""ADOPT's scaling: normalise by the previous second moment, then average.

  .. math::
     \tilde g_t = \operatorname{clip}\!\Big(\frac{g_t}{\max(\sqrt{v_{t-1}}, \epsilon)},
       \pm c(t-1)\Big), \quad
     m_t = \beta_1 m_{t-1} + (1-\beta_1) \tilde g_t, \quad
     v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \quad u_t = m_t

  except on the first step, which only sets :math:`v_1 = g_1^2` and returns
  :math:`u_1 = m_1 = 0`. ``c`` is ``clip_value_fn`` of the step count
  (default :math:`c(t) = t^{1/4}`) when ``use_clipping``; ``nesterov`` returns
  :math:`\beta_1 m_t + (1-\beta_1)\tilde g_t` instead. Taniguchi et al.,
  "ADOPT: Modified Adam Can Converge with Any beta2 with the Optimal Rate",
  NeurIPS 2024 (arXiv:2411.02853). No bias correction is needed. State
  :class:`~jaxopt_notes.transforms.adam_family.ScaleByAdamState`
  (``count, mu, nu``). Same as ``optax.contrib.scale_by_adopt``, except
  that ``mu`` is cast back to ``mu_dtype`` (or its initial dtype) after every
  step, so the state keeps its dtypes, and that ``eps`` must be ``> 0``: with
  ``eps = 0`` optax returns NaN for every coordinate whose gradient is 0 on a
  step where ``v`` is still 0 (``0 / 0``).

  Args:
    b1: first-moment decay in ``[0, 1)`` (default 0.9).
    b2: second-moment decay in ``[0, 1)`` (default 0.9999).
    eps: floor of the root, ``> 0`` (default 1e-6).
    mu_dtype: dtype of the stored first moment (default: the params').
    nesterov: return the look-ahead moment (default ``False``).
    use_clipping: clip the normalised gradient (default ``True``).
    clip_value_fn: step count -> clipping bound (default ``t ** 0.25``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes.contrib as ad
    >>> tx = ad.scale_by_adopt()
    >>> params = {"w": jnp.zeros(2)}
    >>> state = tx.init(params)
    >>> g = {"w": jnp.array([1.0, -4.0])}
    >>> u1, state = tx.update(g, state, params)
    >>> u2, state = tx.update(g, state, params)
    >>> print(np.asarray(u1["w"]), np.asarray(u2["w"]).round(4))  # 0, then (1 - b1) sign(g)
    [0. 0.] [ 0.1 -0.1]
  """
  mu_dtype, _ = adam_family.check_moment_args(
      b1, b2, 0.0, 0.0, mu_dtype, nesterov=nesterov, use_clipping=use_clipping
  )
  validation.check_positive("eps", eps)
  validation.check_callable("clip_value_fn", clip_value_fn, "a function step -> bound")

  def init_fn(params):
    validation.check_float_params(params)
    return adam_family.ScaleByAdamState(
        count=jnp.zeros([], jnp.int32),
        mu=tree_lib.tree_zeros_like(params, dtype=mu_dtype),
        nu=tree_lib.tree_zeros_like(params),
    )

  def normalise(g, v):
    return g / jnp.maximum(jnp.sqrt(v), eps)

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params, state=state.mu, state_name="state.mu")
    del params
    started = state.count > 0
    # The first step only records g^2: b2 -> 0 sets v = g^2, b1 -> 1 keeps m.
    b2_t = jnp.where(started, b2, 0)
    b1_t = jnp.where(started, b1, 1)
    nu = tree_lib.tree_update_moment_per_elem_norm(updates, state.nu, b2_t, 2)
    if use_clipping:
      bound = clip_value_fn(state.count)
      scaled = tree_lib.tree_map_checked(
          lambda g, v: jnp.clip(normalise(g, v), -bound, bound), updates, state.nu
      )
    else:
      scaled = tree_lib.tree_map_checked(normalise, updates, state.nu)
    mu = tree_lib.tree_update_moment(scaled, state.mu, b1_t, 1)
    out = tree_lib.tree_update_moment(scaled, mu, b1_t, 1) if nesterov else mu
    return out, adam_family.ScaleByAdamState(
        count=tree_lib.safe_increment(state.count),
        mu=tree_lib.tree_cast_like(mu, state.mu),
        nu=nu,
    )

  return base.GradientTransformation(init_fn, update_fn)


def adopt(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.9999,
    eps: Num = 1e-6,
    mu_dtype: Optional[Any] = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Callable[[jax.Array], jax.Array] = _quarter_power,
) -> base.GradientTransformationExtraArgs:
  r"""ADOPT: momentum of gradients normalised by the previous second moment.

  .. math::
     \theta_t = \theta_{t-1} - \eta_t m_t, \qquad
     m_t = \beta_1 m_{t-1} + (1-\beta_1)\,
       \operatorname{clip}\!\Big(\frac{g_t}{\max(\sqrt{v_{t-1}}, \epsilon)}, \pm (t-1)^{1/4}\Big)

  Taniguchi et al., NeurIPS 2024 (arXiv:2411.02853): taking ``v`` from
  before ``g_t`` and normalising before the momentum removes Adam's
  dependence on ``b2`` for convergence. The first step does not move.
  Chain: :func:`scale_by_adopt`, the step. Same as ``optax.contrib.adopt``
  (see :func:`scale_by_adopt` for ``eps`` and ``mu_dtype``), except that
  ``learning_rate=None`` is refused.

  Args:
    learning_rate: ``eta``, a float or a schedule.
    b1: first-moment decay in ``[0, 1)`` (default 0.9).
    b2: second-moment decay in ``[0, 1)`` (default 0.9999).
    eps: floor of the root, ``> 0`` (default 1e-6).
    mu_dtype: dtype of the stored first moment (default: the params').
    nesterov: step along the look-ahead moment (default ``False``).
    use_clipping: clip the normalised gradient (default ``True``).
    clip_value_fn: step count -> clipping bound (default ``t ** 0.25``).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.contrib as ad
    >>> f = lambda x: jnp.sum(x ** 2)
    >>> tx = ad.adopt(0.3)
    >>> params = jnp.array([1.0, 2.0, 3.0])
    >>> state = tx.init(params)
    >>> for _ in range(30):
    ...   updates, state = tx.update(jax.grad(f)(params), state, params)
    ...   params = params + updates
    >>> print(f"{float(f(params)):.2f}")  # from 14
    0.33
  """
  return combine.chain(
      scale_by_adopt(
          b1, b2, eps, mu_dtype,
          nesterov=nesterov, use_clipping=use_clipping, clip_value_fn=clip_value_fn,
      ),
      descent_step(learning_rate),
  )


def scale_by_acprop(
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-16,
    eps_root: Num = 1e-16,
) -> base.GradientTransformation:
  r"""ACProp's scaling: the raw gradient over the previous centred second moment.

  .. math::
     m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
     s_t = \beta_2 s_{t-1} + (1-\beta_2)(g_t - m_{t-1})^2 + \epsilon_{root}, \quad
     u_t = \frac{g_t}{\sqrt{s_{t-1} / (1-\beta_2^{t-1})} + \epsilon}

  and :math:`u_1 = g_1 / (1 + \epsilon)` (no ``s`` yet). Zhuang et al.,
  "Momentum Centering and Asynchronous Update for Adaptive Gradient
  Methods", NeurIPS 2021 (arXiv:2110.05454): AdaBelief's centred second
  moment, used one step late (asynchronously) so the scale does not depend on
  ``g_t``. The prediction error is taken against ``m_{t-1}`` and the numerator
  is ``g_t``, as in the authors' PyTorch code and optax (optax's docstring
  writes ``m_t``). State
  :class:`~jaxopt_notes.transforms.adam_variants.ScaleByBeliefState`. Same as
  ``optax.contrib.scale_by_acprop``.

  Args:
    b1: first-moment decay in ``[0, 1)`` (default 0.9).
    b2: decay of the centred second moment in ``[0, 1)`` (default 0.999).
    eps: added after the root (default 1e-16).
    eps_root: added to ``s`` every step (default 1e-16).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes.contrib as ad
    >>> tx = ad.scale_by_acprop()
    >>> params = {"w": jnp.zeros(2)}
    >>> u, _ = tx.update({"w": jnp.array([1.0, -4.0])}, tx.init(params), params)
    >>> print(np.asarray(u["w"]))  # the first step passes g through
    [ 1. -4.]
  """
  adam_family.check_moment_args(b1, b2, eps, eps_root)

  def init_fn(params):
    validation.check_float_params(params)
    return adam_variants.ScaleByBeliefState(
        count=jnp.zeros([], jnp.int32),
        mu=tree_lib.tree_zeros_like(params),
        nu=tree_lib.tree_zeros_like(params),
    )

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params, state=state.mu, state_name="state.mu")
    del params
    mu = tree_lib.tree_update_moment(updates, state.mu, b1, 1)
    error = tree_lib.tree_map_checked(lambda g, m: g - m, updates, state.mu)
    nu = tree_lib.tree_update_moment_per_elem_norm(error, state.nu, b2, 2)
    nu = jax.tree.map(lambda s: s + eps_root, nu)
    count = tree_lib.safe_increment(state.count)
    first = state.count == 0
    # The stored s is one step old: correct it with t - 1 (with 1 on the first
    # step, whose result is then replaced by 1 anyway).
    old_hat = tree_lib.bias_correction(state.nu, b2, jnp.where(first, count, state.count))
    old_hat = jax.tree.map(lambda s: jnp.where(first, 1, s), old_hat)
    out = jax.tree.map(lambda g, s: g / (jnp.sqrt(s) + eps), updates, old_hat)
    return out, adam_variants.ScaleByBeliefState(count=count, mu=mu, nu=nu)

  return base.GradientTransformation(init_fn, update_fn)


def acprop(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-16,
    eps_root: Num = 1e-16,
    weight_decay: Num = 0.0,
    mask: Optional[masking.Mask] = None,
) -> base.GradientTransformationExtraArgs:
  r"""ACProp: AdaBelief's centred scale, applied asynchronously to the raw gradient.

  .. math::
     \theta_t = \theta_{t-1} - \eta_t \left(
       \frac{g_t}{\sqrt{\hat s_{t-1}} + \epsilon} + \lambda \theta_{t-1} \right)

  with ``s`` of :func:`scale_by_acprop`. Zhuang et al., NeurIPS 2021
  (arXiv:2110.05454). Chain: :func:`scale_by_acprop`,
  ``add_decayed_weights(weight_decay, mask)``, the step. Same as
  ``optax.contrib.acprop``, except that ``learning_rate=None`` is refused.

  Args:
    learning_rate: ``eta``, a float or a schedule.
    b1: first-moment decay in ``[0, 1)`` (default 0.9).
    b2: decay of the centred second moment in ``[0, 1)`` (default 0.999).
    eps: added after the root (default 1e-16).
    eps_root: added to ``s`` every step (default 1e-16).
    weight_decay: ``lambda``, decoupled, a number or a schedule (default 0.0).
    mask: which leaves to decay (booleans or a function of the params);
      ``None`` decays all (default).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.contrib as ad
    >>> f = lambda x: jnp.sum(x ** 2)
    >>> tx = ad.acprop(0.05)
    >>> params = jnp.array([1.0, 2.0, 3.0])
    >>> state = tx.init(params)
    >>> for _ in range(30):
    ...   updates, state = tx.update(jax.grad(f)(params), state, params)
    ...   params = params + updates
    >>> print(f"{float(f(params)):.2f}")  # from 14
    1.16
  """
  return combine.chain(
      scale_by_acprop(b1, b2, eps, eps_root),
      scaling.add_decayed_weights(weight_decay, mask),
      descent_step(learning_rate),
  )
