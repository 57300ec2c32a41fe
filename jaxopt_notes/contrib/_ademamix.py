"""AdEMAMix and Simplified AdEMAMix: Adam with a second, very slow momentum.

Adam's first moment forgets a gradient after about ``1 / (1 - b1)`` steps.
AdEMAMix (Pagliardini, Ablin and Grangier, 2024) adds a second EMA of the
gradient with a decay ``b3`` close to 1 and mixes it into the numerator with
weight ``alpha``; Simplified AdEMAMix (Morwani et al., 2025) keeps one
(undamped) accumulator and mixes in the current gradient instead.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.optimizers._common import LR, Num, descent_step
from jaxopt_notes.transforms import adam_family, masking, scaling

__all__ = [
    "ScaleByAdemamixState",
    "ScaleBySimplifiedAdEMAMixState",
    "ademamix",
    "scale_by_ademamix",
    "scale_by_simplified_ademamix",
    "simplified_ademamix",
]


def _check_scalar_or_schedule(name: str, value: Any, *, unit: bool) -> None:
  if callable(value):
    return
  if unit:
    validation.check_unit_interval(name, value)
  else:
    validation.check_non_negative(name, value)


def _at(value: Any, count: jax.Array) -> Any:
  return value(count) if callable(value) else value


class ScaleByAdemamixState(NamedTuple):
  """State of :func:`scale_by_ademamix` (optax's field names and order)."""

  count: jax.Array  # type: ignore[assignment]  # int32 scalar, steps of m1 and nu (optax's name)
  count_m2: jax.Array  # int32 scalar, steps of m2: the step at which b3 and alpha are read
  m1: base.Updates  # fast EMA of g (decay b1)
  m2: base.Updates  # slow EMA of g (decay b3), never bias-corrected
  nu: base.Updates  # EMA of g^2 (decay b2)


def scale_by_ademamix(
    b1: Num = 0.9,
    b2: Num = 0.999,
    b3: Any = 0.9999,
    alpha: Any = 6.0,
    eps: Num = 1e-8,
    eps_root: Num = 0.0,
    mu_dtype: Optional[Any] = None,
) -> base.GradientTransformation:
  r"""AdEMAMix's scaling: Adam's ratio with a slow EMA mixed into the numerator.

  .. math::
     m^{(1)}_t = \beta_1 m^{(1)}_{t-1} + (1-\beta_1) g_t, \quad
     m^{(2)}_t = \beta_3 m^{(2)}_{t-1} + (1-\beta_3) g_t, \quad
     \nu_t = \beta_2 \nu_{t-1} + (1-\beta_2) g_t^2,

  .. math::
     u_t = \frac{\hat m^{(1)}_t + \alpha\, m^{(2)}_t}{\sqrt{\hat\nu_t + \epsilon_{root}} + \epsilon}

  with :math:`\hat m^{(1)}_t, \hat\nu_t` divided by :math:`1-\beta^t`; the
  slow EMA is not corrected. ``b3`` and ``alpha`` may be schedules of the
  step (read at ``count_m2`` before the increment): the paper warms both up.
  Pagliardini, Ablin & Grangier, "The AdEMAMix Optimizer: Better, Faster,
  Older", 2024 (arXiv:2409.03137). Defaults are optax's (note ``alpha=6``
  here, ``5`` in :func:`ademamix`). Same as ``optax.contrib.scale_by_ademamix``,
  except with ``mu_dtype``: all three moments are kept in ``mu_dtype`` after
  every step (optax's update promotes them back to the gradient's dtype, so
  its state changes dtype after the first step and cannot be a ``lax.scan``
  carry); the update itself is computed before that cast, as optax's.

  Args:
    b1: decay of the fast EMA in ``[0, 1)`` (default 0.9).
    b2: decay of the second moment in ``[0, 1)`` (default 0.999).
    b3: decay of the slow EMA in ``[0, 1)``, or a schedule (default 0.9999).
    alpha: weight of the slow EMA, ``>= 0``, or a schedule (default 6.0).
    eps: added after the root (default 1e-8).
    eps_root: added under the root (default 0.0).
    mu_dtype: dtype of the stored moments (default: the params').

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes.contrib as am
    >>> tx = am.scale_by_ademamix(b3=0.9, alpha=1.0)
    >>> params = {"w": jnp.zeros(2)}
    >>> updates, _ = tx.update({"w": jnp.array([1.0, -4.0])}, tx.init(params), params)
    >>> print(np.asarray(updates["w"]).round(4))  # first step: (1 + alpha (1 - b3)) sign(g)
    [ 1.1 -1.1]
  """
  mu_dtype, _ = adam_family.check_moment_args(b1, b2, eps, eps_root, mu_dtype)
  _check_scalar_or_schedule("b3", b3, unit=True)
  _check_scalar_or_schedule("alpha", alpha, unit=False)

  def init_fn(params):
    validation.check_float_params(params)
    zeros = lambda: tree_lib.tree_zeros_like(params, dtype=mu_dtype)
    return ScaleByAdemamixState(
        count=jnp.zeros([], jnp.int32), count_m2=jnp.zeros([], jnp.int32),
        m1=zeros(), m2=zeros(), nu=zeros(),
    )

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params, state=state.m1, state_name="state.m1")
    del params
    b3_t, alpha_t = _at(b3, state.count_m2), _at(alpha, state.count_m2)
    m1 = tree_lib.tree_update_moment(updates, state.m1, b1, 1)
    m2 = tree_lib.tree_update_moment(updates, state.m2, b3_t, 1)
    nu = tree_lib.tree_update_moment_per_elem_norm(updates, state.nu, b2, 2)
    count = tree_lib.safe_increment(state.count)
    m1_hat = tree_lib.bias_correction(m1, b1, count)
    nu_hat = tree_lib.bias_correction(nu, b2, count)
    out = jax.tree.map(
        lambda fast, slow, v: (fast + alpha_t * slow) / (jnp.sqrt(v + eps_root) + eps),
        m1_hat, m2, nu_hat,
    )
    cast = tree_lib.tree_cast_like
    return out, ScaleByAdemamixState(
        count=count, count_m2=tree_lib.safe_increment(state.count_m2),
        m1=cast(m1, state.m1), m2=cast(m2, state.m2), nu=cast(nu, state.nu),
    )

  return base.GradientTransformation(init_fn, update_fn)


def ademamix(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.999,
    b3: Any = 0.9999,
    alpha: Any = 5.0,
    eps: Num = 1e-8,
    eps_root: Num = 0.0,
    mu_dtype: Optional[Any] = None,
    weight_decay: Num = 0.0,
    mask: Optional[masking.Mask] = None,
) -> base.GradientTransformationExtraArgs:
  r"""AdEMAMix: AdamW whose numerator adds a slow, never-forgetting momentum.

  .. math::
     \theta_t = \theta_{t-1} - \eta_t \left(
       \frac{\hat m^{(1)}_t + \alpha\, m^{(2)}_t}{\sqrt{\hat\nu_t + \epsilon_{root}} + \epsilon}
       + \lambda \theta_{t-1} \right)

  with the EMAs of :func:`scale_by_ademamix`. Pagliardini, Ablin & Grangier,
  2024 (arXiv:2409.03137). The slow EMA (``b3 = 0.9999`` keeps about 10k
  steps) pays off on long runs; on short ones a smaller ``b3`` or a warm-up
  schedule of ``b3`` and ``alpha`` does better (the paper's appendix C.1.5).
  Chain: :func:`scale_by_ademamix`, ``add_decayed_weights(weight_decay,
  mask)``, the step. Same as ``optax.contrib.ademamix`` (see
  :func:`scale_by_ademamix` for ``mu_dtype``), except that
  ``learning_rate=None`` is refused (optax's would climb the loss).

  Args:
    learning_rate: ``eta``, a float or a schedule.
    b1: decay of the fast EMA in ``[0, 1)`` (default 0.9).
    b2: decay of the second moment in ``[0, 1)`` (default 0.999).
    b3: decay of the slow EMA in ``[0, 1)``, or a schedule (default 0.9999).
    alpha: weight of the slow EMA, ``>= 0``, or a schedule (default 5.0).
    eps: added after the root (default 1e-8).
    eps_root: added under the root (default 0.0).
    mu_dtype: dtype of the stored moments (default: the params').
    weight_decay: ``lambda``, decoupled, a number or a schedule (default 0.0).
    mask: which leaves to decay (booleans or a function of the params);
      ``None`` decays all (default).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.contrib as am
    >>> f = lambda x: jnp.sum(x ** 2)
    >>> tx = am.ademamix(0.1, b3=0.99)
    >>> params = jnp.array([1.0, 2.0, 3.0])
    >>> state = tx.init(params)
    >>> for _ in range(20):
    ...   updates, state = tx.update(jax.grad(f)(params), state, params)
    ...   params = params + updates
    >>> print(f"{float(f(params)):.2f}")  # from 14
    0.47
  """
  return combine.chain(
      scale_by_ademamix(b1, b2, b3, alpha, eps, eps_root, mu_dtype),
      scaling.add_decayed_weights(weight_decay, mask),
      descent_step(learning_rate),
  )


class ScaleBySimplifiedAdEMAMixState(NamedTuple):
  """State of :func:`scale_by_simplified_ademamix` (optax's field names and order)."""

  t: jax.Array  # int32 scalar, steps taken; alpha is read here before the increment
  m: base.Updates  # sum_k b1^(t-k) g_k: an undamped momentum, not an average
  n: base.Updates  # EMA of g^2 (decay b2)


def scale_by_simplified_ademamix(
    b1: Num = 0.99,
    b2: Num = 0.95,
    alpha: Any = 0.0,
    eps: Num = 1e-8,
    eps_root: Num = 0.0,
) -> base.GradientTransformation:
  r"""Simplified AdEMAMix's scaling: heavy-ball momentum plus ``alpha`` times ``g``.

  .. math::
     m_t = \beta_1 m_{t-1} + g_t, \quad
     n_t = g_t^2 + \beta_2 (n_{t-1} - g_t^2), \quad
     u_t = \frac{m_t + \alpha g_t}{\sqrt{n_t / (1-\beta_2^t) + \epsilon_{root}} + \epsilon}

  (``n`` is the EMA of ``g^2``, written as a lerp the way optax rounds it).
  Morwani et al., "Connections between Schedule-Free Optimizers, AdEMAMix,
  and Accelerated SGD Variants", 2025 (arXiv:2502.02431): one accumulator
  replaces AdEMAMix's two EMAs, and the mixing weight needs no schedule;
  ``alpha = 0`` is Adam with a rescaled step and ``b1``. ``alpha`` may still
  be a schedule (read at ``t`` before the increment). Same as
  ``optax.contrib.scale_by_simplified_ademamix``.

  Args:
    b1: momentum decay in ``[0, 1)`` (default 0.99).
    b2: second-moment decay in ``[0, 1)`` (default 0.95).
    alpha: weight of the current gradient, ``>= 0``, or a schedule
      (default 0.0).
    eps: added after the root (default 1e-8).
    eps_root: added under the root (default 0.0).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes.contrib as am
    >>> tx = am.scale_by_simplified_ademamix(alpha=1.0)
    >>> params = {"w": jnp.zeros(2)}
    >>> updates, _ = tx.update({"w": jnp.array([1.0, -4.0])}, tx.init(params), params)
    >>> print(np.asarray(updates["w"]).round(4))  # first step: (1 + alpha) sign(g)
    [ 2. -2.]
  """
  adam_family.check_moment_args(b1, b2, eps, eps_root)
  _check_scalar_or_schedule("alpha", alpha, unit=False)

  def init_fn(params):
    validation.check_float_params(params)
    return ScaleBySimplifiedAdEMAMixState(
        t=jnp.zeros([], jnp.int32),
        m=tree_lib.tree_zeros_like(params),
        n=tree_lib.tree_zeros_like(params),
    )

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params, state=state.m, state_name="state.m")
    del params
    alpha_t = _at(alpha, state.t)
    m = tree_lib.add_scale(updates, b1, state.m)
    sq = jax.tree.map(lambda g: g * g, updates)
    n = tree_lib.add_scale(sq, b2, jax.tree.map(lambda old, s: old - s, state.n, sq))
    t = tree_lib.safe_increment(state.t)
    n_hat = tree_lib.bias_correction(n, b2, t)
    numerator = tree_lib.add_scale(m, alpha_t, updates)
    out = jax.tree.map(
        lambda num, v: num / (jnp.sqrt(v + eps_root) + eps), numerator, n_hat
    )
    return out, ScaleBySimplifiedAdEMAMixState(t=t, m=m, n=n)

  return base.GradientTransformation(init_fn, update_fn)


def simplified_ademamix(
    learning_rate: LR,
    b1: Num = 0.99,
    b2: Num = 0.95,
    alpha: Any = 0.0,
    eps: Num = 1e-8,
    eps_root: Num = 0.0,
    weight_decay: Num = 0.0,
    mask: Optional[masking.Mask] = None,
) -> base.GradientTransformationExtraArgs:
  r"""Simplified AdEMAMix: one momentum buffer, the current gradient mixed in.

  .. math::
     \theta_t = \theta_{t-1} - \eta_t \left(
       \frac{m_t + \alpha g_t}{\sqrt{\hat n_t + \epsilon_{root}} + \epsilon}
       + \lambda \theta_{t-1} \right), \qquad m_t = \beta_1 m_{t-1} + g_t

  Morwani et al., 2025 (arXiv:2502.02431). Because ``m`` sums rather than
  averages, its scale is about ``1 / (1 - b1)`` times the gradient's: use a
  learning rate that much smaller than Adam's. Chain:
  :func:`scale_by_simplified_ademamix`, ``add_decayed_weights(weight_decay,
  mask)``, the step. Same as ``optax.contrib.simplified_ademamix``, except
  that ``learning_rate=None`` is refused.

  Args:
    learning_rate: ``eta``, a float or a schedule.
    b1: momentum decay in ``[0, 1)`` (default 0.99).
    b2: second-moment decay in ``[0, 1)`` (default 0.95).
    alpha: weight of the current gradient, ``>= 0``, or a schedule
      (default 0.0).
    eps: added after the root (default 1e-8).
    eps_root: added under the root (default 0.0).
    weight_decay: ``lambda``, decoupled, a number or a schedule (default 0.0).
    mask: which leaves to decay (booleans or a function of the params);
      ``None`` decays all (default).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.contrib as am
    >>> f = lambda x: jnp.sum(x ** 2)
    >>> tx = am.simplified_ademamix(0.01, b1=0.9)
    >>> params = jnp.array([1.0, 2.0, 3.0])
    >>> state = tx.init(params)
    >>> for _ in range(20):
    ...   updates, state = tx.update(jax.grad(f)(params), state, params)
    ...   params = params + updates
    >>> print(f"{float(f(params)):.2f}")  # from 14
    3.99
  """
  return combine.chain(
      scale_by_simplified_ademamix(b1, b2, alpha, eps, eps_root),
      scaling.add_decayed_weights(weight_decay, mask),
      descent_step(learning_rate),
  )
