"""Adam's relatives that change what the second moment measures.

All four keep the notes' two EMAs (notes 000/003/004: momentum over RMSProp)
and differ in the denominator or in the first moment:

* :func:`scale_by_belief` (AdaBelief) averages ``(g - m)^2``, the surprise of
  the gradient against its own mean, instead of ``g^2``;
* :func:`scale_by_yogi` (Yogi) moves ``v`` towards ``g^2`` by
  ``(1 - b2) g^2`` in the direction of ``sign(g^2 - v)``, so one small
  gradient cannot make ``v`` forget a large past at once;
* :func:`scale_by_adan` (Adan) adds an EMA of gradient differences, a
  Nesterov look-ahead that costs no second gradient;
* :func:`scale_by_novograd` (NovoGrad) keeps one second moment per layer
  (the squared norm of the layer's gradient) and normalises before the
  momentum.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.transforms import adam_family

__all__ = [
    "ScaleByAdanState",
    "ScaleByBeliefState",
    "ScaleByNovogradState",
    "scale_by_adan",
    "scale_by_belief",
    "scale_by_novograd",
    "scale_by_yogi",
]


def _is_none(x: Any) -> bool:
  return x is None


class ScaleByBeliefState(NamedTuple):
  """State of :func:`scale_by_belief`: step count, the gradient's EMA and the EMA of its surprise."""

  count: jax.Array  # type: ignore[assignment]  # named like tuple.count, as optax's; int32 scalar
  mu: base.Updates
  nu: base.Updates  # EMA of (g - mu)^2, eps_root included


def scale_by_belief(
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-16,
    eps_root: jax.typing.ArrayLike = 1e-16,
    *,
    nesterov: bool = False,
) -> base.GradientTransformation:
  r"""AdaBelief's scaling: Adam with the variance of the gradient around its EMA.

  .. math::
     m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
     s_t = \beta_2 s_{t-1} + (1-\beta_2) (g_t - m_t)^2 + \epsilon_{root}, \quad
     u_t = \frac{\hat m_t}{\sqrt{\hat s_t} + \epsilon}

  with :math:`\hat m_t = m_t / (1-\beta_1^t)` and
  :math:`\hat s_t = s_t / (1-\beta_2^t)`. AdaBelief (Zhuang et al., NeurIPS
  2020, arXiv:2010.07468). Where the gradient agrees with its running mean
  (the "belief") ``s`` is small and the step large; where it jumps around
  the step is small. It is notes 000/003/004's Adam with RMSProp's
  ``E[g^2]`` replaced by ``E[(g - m)^2]``. ``eps_root`` is added to the
  stored ``s`` every step (so it accumulates), as optax does.
  ``nesterov=True`` uses the NAdam look-ahead first moment of
  :func:`scale_by_adam`. Same state and numbers as ``optax.scale_by_belief``.

  Args:
    b1: first-moment decay in ``[0, 1)`` (default 0.9).
    b2: decay of the surprise's EMA in ``[0, 1)`` (default 0.999).
    eps: added after the root (default 1e-16; the paper's 1e-8).
    eps_root: added to ``s`` every step (default 1e-16; the paper's 0).
    nesterov: Nesterov's first moment (default ``False``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_belief()
    >>> params = {"w": jnp.zeros(2)}
    >>> updates, state = tx.update({"w": jnp.array([1.0, -4.0])}, tx.init(params), params)
    >>> print(np.asarray(updates["w"]).round(4))  # the first step: m_hat = g, s_hat = (0.9 g)^2
    [ 1.1111 -1.1111]
  """
  adam_family.check_moment_args(b1, b2, eps, eps_root, nesterov=nesterov)

  def init_fn(params):
    validation.check_float_params(params)
    return ScaleByBeliefState(
        count=jnp.zeros([], jnp.int32),
        mu=tree_lib.tree_zeros_like(params),
        nu=tree_lib.tree_zeros_like(params),
    )

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params, state=state.mu, state_name="state.mu")
    del params
    mu = tree_lib.tree_update_moment(updates, state.mu, b1, 1)
    surprise = jax.tree.map(lambda g, m: g - m, updates, mu)
    nu = tree_lib.tree_update_moment_per_elem_norm(surprise, state.nu, b2, 2)
    nu = jax.tree.map(lambda s: s + eps_root, nu)
    count = tree_lib.safe_increment(state.count)
    mu_hat = adam_family._first_moment_estimate(mu, updates, b1, count, nesterov=nesterov, debias=True)
    nu_hat = tree_lib.bias_correction(nu, b2, count)
    updates = jax.tree.map(
        lambda m, s: None if m is None else m / (jnp.sqrt(s) + eps), mu_hat, nu_hat, is_leaf=_is_none
    )
    return updates, ScaleByBeliefState(
        count=count,
        mu=tree_lib.tree_cast_like(mu, state.mu),
        nu=tree_lib.tree_cast_like(nu, state.nu),
    )

  return base.GradientTransformation(init_fn, update_fn)


def scale_by_yogi(
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-3,
    eps_root: jax.typing.ArrayLike = 0.0,
    initial_accumulator_value: jax.typing.ArrayLike = 1e-6,
) -> base.GradientTransformation:
  r"""Yogi's scaling: Adam whose second moment moves additively towards ``g^2``.

  .. math::
     v_t = v_{t-1} - (1-\beta_2)\, \operatorname{sign}(v_{t-1} - g_t^2)\, g_t^2, \qquad
     u_t = \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}

  with Adam's first moment and both corrected by ``1 - b^t``. Yogi (Zaheer
  et al., NeurIPS 2018, "Adaptive Methods for Nonconvex Optimization").
  Adam's ``v_t - v_{t-1} = -(1-b2)(v_{t-1} - g_t^2)`` can shrink ``v`` by a
  large amount after one small gradient, so the effective step of notes
  000/003/004's Adam jumps up; Yogi's change has the same sign but is at most
  ``(1-b2) g_t^2``. Both moments start at ``initial_accumulator_value``.
  Complex gradients use ``|g|^2``. State :class:`ScaleByAdamState`; same
  state and numbers as ``optax.scale_by_yogi``.

  Args:
    b1: first-moment decay in ``[0, 1)`` (default 0.9).
    b2: second-moment decay in ``[0, 1)`` (default 0.999).
    eps: added after the root (default 1e-3).
    eps_root: added under the root (default 0.0).
    initial_accumulator_value: the starting ``m`` and ``v`` (default 1e-6),
      ``>= 0``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_yogi(initial_accumulator_value=0.0)
    >>> params = {"w": jnp.zeros(2)}
    >>> updates, state = tx.update({"w": jnp.array([1.0, -4.0])}, tx.init(params), params)
    >>> print(np.asarray(updates["w"]).round(4))  # from zero moments the first step is Adam's, g / (|g| + eps)
    [ 0.999  -0.9997]
  """
  adam_family.check_moment_args(b1, b2, eps, eps_root)
  validation.check_non_negative("initial_accumulator_value", initial_accumulator_value)

  def init_fn(params):
    validation.check_float_params(params)
    return adam_family.ScaleByAdamState(
        count=jnp.zeros([], jnp.int32),
        mu=tree_lib.tree_full_like(params, initial_accumulator_value),
        nu=tree_lib.tree_full_like(params, initial_accumulator_value),
    )

  def nu_step(g, v):
    g2 = tree_lib.abs_sq(g)
    return v - (1 - b2) * jnp.sign(v - g2) * g2

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params, state=state.mu, state_name="state.mu")
    del params
    mu = tree_lib.tree_update_moment(updates, state.mu, b1, 1)
    nu = tree_lib.tree_map_checked(nu_step, updates, state.nu)
    count = tree_lib.safe_increment(state.count)
    mu_hat = tree_lib.bias_correction(mu, b1, count)
    nu_hat = tree_lib.bias_correction(nu, b2, count)
    updates = adam_family._adam_ratio(mu_hat, nu_hat, eps, eps_root)
    return updates, adam_family._next_adam_state(count, mu, nu, state)

  return base.GradientTransformation(init_fn, update_fn)


class ScaleByAdanState(NamedTuple):
  """State of :func:`scale_by_adan`: the three EMAs, the last gradient and the step count."""

  m: base.Updates  # EMA of g
  v: base.Updates  # EMA of g_t - g_{t-1}
  n: base.Updates  # EMA of (g_t + (1 - b2)(g_t - g_{t-1}))^2
  g: base.Updates  # the previous gradient
  t: jax.Array  # int32 scalar, steps taken (optax's name)


def scale_by_adan(
    b1: jax.typing.ArrayLike = 0.98,
    b2: jax.typing.ArrayLike = 0.92,
    b3: jax.typing.ArrayLike = 0.99,
    eps: jax.typing.ArrayLike = 1e-8,
    eps_root: jax.typing.ArrayLike = 0.0,
) -> base.GradientTransformation:
  r"""Adan's scaling: Adam plus an EMA of gradient differences (a cheap Nesterov).

  .. math::
     \Delta_t = g_t - g_{t-1}\ (\Delta_1 = 0), \quad
     m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
     v_t = \beta_2 v_{t-1} + (1-\beta_2) \Delta_t,

  .. math::
     n_t = \beta_3 n_{t-1} + (1-\beta_3) \big(g_t + (1-\beta_2)\Delta_t\big)^2, \quad
     u_t = \frac{\hat m_t + (1-\beta_2)\hat v_t}{\sqrt{\hat n_t + \epsilon_{root}} + \epsilon}

  each EMA bias-corrected by its own ``1 - b^t``. Adan (Xie et al., 2022,
  arXiv:2208.06677, Algorithm 1). Notes 000's Nesterov momentum evaluates the
  gradient at a look-ahead point; Adan rewrites that look-ahead as the
  current gradient plus a multiple of its last change, so it needs one
  gradient per step, and then scales it per coordinate as notes 000/003/004's
  Adam does. The decays weight the old value as in the notes' EMA (optax's
  convention; the paper writes ``1 - b``). Same state and numbers as
  ``optax.scale_by_adan``.

  Args:
    b1: decay of the gradient's EMA in ``[0, 1)`` (default 0.98).
    b2: decay of the differences' EMA in ``[0, 1)`` (default 0.92).
    b3: decay of the second moment in ``[0, 1)`` (default 0.99).
    eps: added after the root (default 1e-8).
    eps_root: added under the root (default 0.0).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_adan()
    >>> params = {"w": jnp.zeros(2)}
    >>> updates, state = tx.update({"w": jnp.array([1.0, -4.0])}, tx.init(params), params)
    >>> print(np.asarray(updates["w"]).round(4))  # the first step, with no difference yet: about g / |g|
    [ 1. -1.]
  """
  adam_family.check_moment_args(b1, b2, eps, eps_root)
  validation.check_unit_interval("b3", b3)

  def init_fn(params):
    validation.check_float_params(params)
    zeros = lambda: tree_lib.tree_zeros_like(params)
    return ScaleByAdanState(m=zeros(), v=zeros(), n=zeros(), g=zeros(), t=jnp.zeros([], jnp.int32))

  def add_scaled(x, y):
    # optax's tree.add_scale makes the factor an array before it multiplies.
    factor = jnp.asarray(1 - b2)
    return jax.tree.map(lambda a, b: None if a is None else a + factor * b, x, y, is_leaf=_is_none)

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params, state=state.m, state_name="state.m")
    del params
    first = state.t == 0
    diff = tree_lib.tree_map_checked(
        lambda g, prev: jnp.where(first, jnp.zeros_like(g), g - prev), updates, state.g
    )
    m = tree_lib.tree_update_moment(updates, state.m, b1, 1)
    v = tree_lib.tree_update_moment(diff, state.v, b2, 1)
    n = tree_lib.tree_update_moment_per_elem_norm(add_scaled(updates, diff), state.n, b3, 2)
    t = tree_lib.safe_increment(state.t)
    m_hat = tree_lib.bias_correction(m, b1, t)
    v_hat = tree_lib.bias_correction(v, b2, t)
    n_hat = tree_lib.bias_correction(n, b3, t)
    out = jax.tree.map(
        lambda u, s: u / (jnp.sqrt(s + eps_root) + eps), add_scaled(m_hat, v_hat), n_hat
    )
    cast = tree_lib.tree_cast_like
    return out, ScaleByAdanState(
        m=cast(m, state.m), v=cast(v, state.v), n=cast(n, state.n), g=cast(updates, state.g), t=t
    )

  return base.GradientTransformation(init_fn, update_fn)


class ScaleByNovogradState(NamedTuple):
  """State of :func:`scale_by_novograd`: step count, momentum, and one second moment per leaf."""

  count: jax.Array  # type: ignore[assignment]  # named like tuple.count, as optax's; int32 scalar
  mu: base.Updates
  nu: base.Updates  # a scalar per leaf: the EMA of ||g_leaf||^2


def scale_by_novograd(
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.25,
    eps: jax.typing.ArrayLike = 1e-8,
    eps_root: jax.typing.ArrayLike = 0.0,
    weight_decay: jax.typing.ArrayLike = 0.0,
    mu_dtype: Optional[Any] = None,
) -> base.GradientTransformation:
  r"""NovoGrad's scaling: a per-layer second moment, normalised before momentum.

  For each leaf (layer) :math:`l`,

  .. math::
     \nu^l_t = \beta_2 \nu^l_{t-1} + (1-\beta_2) \|g^l_t\|^2, \qquad
     m^l_t = \beta_1 m^l_{t-1} + \frac{g^l_t}{\sqrt{\nu^l_t + \epsilon_{root}} + \epsilon}
             + \lambda w^l_t, \qquad u^l_t = m^l_t

  starting from :math:`\nu^l_1 = \|g^l_1\|^2` and
  :math:`m^l_1 = g^l_1 / (\sqrt{\nu^l_1 + \epsilon_{root}} + \epsilon) + \lambda w^l_1`,
  no bias correction. NovoGrad (Ginsburg et al., 2019, arXiv:1905.11286).
  Notes 000/003/004's RMSProp divides each coordinate by its own RMS; here
  one number per layer does it (half Adam's memory), and the momentum (notes
  000's ``v = rho v + g``, not an average) is kept of the normalised,
  decayed gradient. ``update`` needs ``params`` (for the decay term, also
  when ``weight_decay`` is 0). Because the norm mixes a whole leaf, a NaN
  gradient coordinate makes that entire leaf's update NaN from then on, and
  an Inf one makes that coordinate NaN and the rest of its leaf's steps zero
  (the norm stays infinite). Same state and numbers as
  ``optax.scale_by_novograd``.

  Args:
    b1: momentum decay in ``[0, 1)`` (default 0.9).
    b2: decay of the per-layer second moment in ``[0, 1)`` (default 0.25).
    eps: added after the root (default 1e-8).
    eps_root: added under the root (default 0.0).
    weight_decay: :math:`\lambda`, a number ``>= 0`` (default 0.0).
    mu_dtype: dtype of the stored momentum, and of the updates (default: the
      params').

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_novograd()
    >>> params = {"w": jnp.zeros(2)}
    >>> updates, state = tx.update({"w": jnp.array([3.0, -4.0])}, tx.init(params), params)
    >>> print(np.asarray(updates["w"]).round(4))  # g / ||g|| on the first step
    [ 0.6 -0.8]
    >>> state.nu["w"]
    Array(25., dtype=float32)
  """
  mu_dtype, _ = adam_family.check_moment_args(b1, b2, eps, eps_root, mu_dtype)
  validation.check_non_negative("weight_decay", weight_decay)

  def init_fn(params):
    validation.check_float_params(params)
    return ScaleByNovogradState(
        count=jnp.zeros([], jnp.int32),
        mu=tree_lib.tree_zeros_like(params, dtype=mu_dtype),
        nu=jax.tree.map(lambda p: jnp.asarray(0.0, dtype=jnp.asarray(p).dtype), params),
    )

  # The branches of update's conds are built once, here: a cond run eagerly
  # compiles per branch function, so closures made in every update would
  # compile on every step.
  sq_norm = lambda g: jnp.linalg.norm(g) ** 2

  def first_nu(grads, nu):
    return jax.tree.map(lambda g, n: sq_norm(g).astype(n.dtype), grads, nu)

  def next_nu(grads, nu):
    return jax.tree.map(lambda g, n: ((1 - b2) * sq_norm(g) + b2 * n).astype(n.dtype), grads, nu)

  def normalised(grads, params, nu):
    return jax.tree.map(
        lambda g, p, n: g / (jnp.sqrt(n + eps_root) + eps) + weight_decay * p, grads, params, nu
    )

  def first_mu(grads, params, mu, nu):
    return tree_lib.tree_cast_like(normalised(grads, params, nu), mu)

  def next_mu(grads, params, mu, nu):
    step = jax.tree.map(
        lambda m, s: None if m is None else b1 * m + s, mu, normalised(grads, params, nu),
        is_leaf=_is_none,
    )
    return tree_lib.tree_cast_like(step, mu)

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(base.NO_PARAMS_MSG)
    combine.check_updates_match_params(updates, params)
    # The conds below would fail on a state of other params with a bare pytree error.
    tree_lib.check_tree_like(updates, state.mu, ("updates", "state.mu"))
    count = tree_lib.safe_increment(state.count)
    # A cond, as optax's, not a select: run eagerly, a cond is one compiled
    # computation, whose rounding a sequence of single ops need not share.
    first = count == 1
    nu = jax.lax.cond(first, first_nu, next_nu, updates, state.nu)
    # optax returns the momentum in its stored dtype (mu_dtype) as the update.
    mu = jax.lax.cond(first, first_mu, next_mu, updates, params, state.mu, nu)
    return mu, ScaleByNovogradState(count=count, mu=mu, nu=nu)

  return base.GradientTransformation(init_fn, update_fn)
