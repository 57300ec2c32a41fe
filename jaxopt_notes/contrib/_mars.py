r"""MARS: a preconditioned step on a variance-reduced momentum.

MARS (Yuan, Liu, Wu, Zhou & Gu, 2024) corrects each gradient with the change
since the previous one, :math:`c_t = g_t + \gamma \frac{\beta_1}{1-\beta_1}
(g_t - g_{t-1})` (a scaled STORM estimator that reuses the last gradient
rather than evaluating a second one), clips it to norm 1, averages it into a
momentum and then preconditions that like AdamW, Lion or Shampoo. As in the
authors' code and ``pytorch_optimizer``, 1-d leaves (vectors and scalars)
get plain AdamW with their own learning rate, betas and decay unless
``optimize_1d``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxopt_notes.contrib._cautious import cautious_mask
from jaxopt_notes.contrib._newton_schulz import DEFAULT_NS_COEFFS
from jaxopt_notes.contrib._soap import _lerp
from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.optimizers._common import LR, Num, descent_step
from jaxopt_notes.transforms import scaling
from jaxopt_notes.wrappers import param_groups

__all__ = ["ScaleByMarsState", "mars_adamw", "mars_lion", "mars_shampoo", "scale_by_mars"]

MARS_TYPES = ("adamw", "lion", "shampoo")
# The reference (and the authors) run Newton-Schulz in bfloat16 whatever the
# params' dtype; the tests set this to float64 on both sides to check the rest tightly.
_NS_DTYPE: Any = jnp.bfloat16
_NS_STEPS = 5
# The reference's floor under the second moment, inside the root.
_V_FLOOR = 1e-15


class ScaleByMarsState(NamedTuple):
  """State of :func:`scale_by_mars` (``pytorch_optimizer``'s names)."""

  count: jax.Array  # type: ignore[assignment]  # int32 scalar, steps taken
  exp_avg: base.Updates  # m: EMA of the corrected gradients c (of g on the 1-d AdamW leaves)
  exp_avg_sq: base.Updates  # v: EMA of c^2 (of g^2 on the 1-d leaves); unused by lion's matrices
  max_exp_avg_sq: Optional[base.Updates]  # running max of v with ams_bound, else None
  last_grad: base.Updates  # the previous gradient g_{t-1} (zeros before the first step)


def _adam_direction(c, g, m, v, v_max, t, b1, b2, eps, ams_bound, cautious):
  # m / (sqrt(v + floor) + eps) * sqrt(1 - b2^t) / (1 - b1^t), in the reference's order.
  m = _lerp(m, c, jnp.asarray(1 - b1, c.dtype))
  v = v * b2 + (1 - b2) * (c * c)
  if ams_bound:
    v_max = jnp.maximum(v_max, v)
  u = cautious_mask(m, g, descent=False) if cautious else m
  denom = (jnp.sqrt((v_max if ams_bound else v) + _V_FLOOR) + eps) / jnp.sqrt(1 - b2 ** t) * (1 - b1 ** t)
  return u / denom, m, v, v_max


def _quintic_as_addmm(x, c, wide):
  # c0 X + (c1 A + c2 A^2) X, A = X X^T, rounded where torch's mm / addmm round: once per
  # product-and-sum, in float32 at least (op by op, bfloat16 would round every term).
  mm = lambda p, q: jnp.matmul(p, q, preferred_element_type=wide)
  a = mm(x, x.T).astype(x.dtype)
  b = (c[1] * a.astype(wide) + c[2] * mm(a, a)).astype(x.dtype)
  return (c[0] * x.astype(wide) + mm(b, x)).astype(x.dtype)


def _orthogonalize(u, b1, eps):
  """The reference's Newton-Schulz on ``u`` seen as ``(shape[0], -1)``, times its shape factor."""
  dtype = u.dtype
  x = (jnp.reshape(u, (u.shape[0], -1)) * (1 / (1 - b1))).astype(_NS_DTYPE)
  tall = x.shape[0] > x.shape[1]
  x = x.T if tall else x
  wide = jnp.promote_types(x.dtype, jnp.float32)
  norm = jnp.linalg.norm(x.astype(wide)).astype(x.dtype)
  x = (x.astype(wide) / jnp.maximum(norm, eps).astype(wide)).astype(x.dtype)
  for _ in range(_NS_STEPS):
    x = _quintic_as_addmm(x, DEFAULT_NS_COEFFS, wide)
  x = x.T if tall else x
  # sqrt(max(1, rows / cols)) with cols the second axis, not the folded ones (the reference's);
  # applied in float32 at least, then rounded to the iteration's dtype as the reference does.
  factor = math.sqrt(max(1.0, u.shape[0] / u.shape[1]))
  x = (x.astype(jnp.promote_types(x.dtype, jnp.float32)) * factor).astype(x.dtype)
  return jnp.reshape(x, u.shape).astype(dtype)


def _is_mixed(x, optimize_1d: bool) -> bool:
  # The reference's test: MARS on leaves of rank >= 2, AdamW on the rest.
  return optimize_1d or jnp.ndim(x) >= 2


def scale_by_mars(
    b1: Num = 0.95,
    b2: Num = 0.99,
    gamma: Num = 0.025,
    mars_type: str = "adamw",
    optimize_1d: bool = False,
    b1_1d: Num = 0.9,
    b2_1d: Num = 0.95,
    ams_bound: bool = False,
    cautious: bool = False,
    eps: Num = 1e-8,
) -> base.GradientTransformation:
  r"""MARS's direction (before the learning rate and the decay), leaf by leaf.

  On MARS leaves (rank >= 2, or all with ``optimize_1d``):

  .. math::
     c_t = g_t + \gamma \frac{\beta_1}{1-\beta_1} (g_t - g_{t-1}), \quad
     \tilde c_t = c_t / \max(1, \|c_t\|_F), \quad
     m_t = \beta_1 m_{t-1} + (1-\beta_1) \tilde c_t

  and then, with :math:`\hat m_t = m_t / (1-\beta_1^t)`: ``"adamw"``
  :math:`\hat m_t / (\sqrt{v_t + 10^{-15}} + \epsilon) \cdot
  \sqrt{1-\beta_2^t}` with :math:`v_t = \beta_2 v_{t-1} + (1-\beta_2)
  \tilde c_t^2`; ``"lion"`` :math:`\operatorname{sign}(m_t)`; ``"shampoo"``
  :math:`\mathrm{NS}_5(m_t / (1-\beta_1))\,\sqrt{\max(1, d_0/d_1)}` on a
  leaf of rank >= 2 viewed as ``(d_0, -1)`` (Newton-Schulz in bfloat16 as
  the reference; its rank < 2 leaves take the ``"adamw"`` form). The other
  leaves take the ``"adamw"`` form on :math:`g_t` itself (no correction,
  no clip) with ``b1_1d``, ``b2_1d``. :math:`g_0 = 0`, so the first step's
  correction is :math:`\gamma\beta_1/(1-\beta_1) g_1`, the reference's.
  ``ams_bound`` uses the running max of :math:`v`; ``cautious`` applies
  :func:`cautious_mask` to :math:`m_t` against :math:`g_t` before the
  preconditioner (under ``"lion"``'s sign the rescaling drops out, as in
  the reference). Yuan, Liu, Wu, Zhou & Gu, "MARS: Unleashing the Power of
  Variance Reduction for Training Large Models", 2024 (arXiv:2411.10438).
  Defaults are ``pytorch_optimizer.MARS``'s (4.1.0), checked against it
  through :func:`mars_adamw` and friends.

  Args:
    b1: momentum decay of the MARS leaves, in ``[0, 1)`` (default 0.95).
    b2: second-moment decay of the MARS leaves, in ``[0, 1)`` (default 0.99).
    gamma: weight of the gradient correction, ``>= 0`` (default 0.025).
    mars_type: ``"adamw"`` (default), ``"lion"`` or ``"shampoo"``.
    optimize_1d: MARS on every leaf, not only on rank >= 2 (default ``False``).
    b1_1d: first-moment decay of the 1-d AdamW leaves (default 0.9).
    b2_1d: second-moment decay of the 1-d AdamW leaves (default 0.95).
    ams_bound: divide by the running max of ``v`` (default ``False``).
    cautious: mask the momentum where it disagrees with ``g`` (default ``False``).
    eps: added after the root, and the floor of Newton-Schulz's norm (default 1e-8).

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxopt_notes.contrib._mars import scale_by_mars
    >>> tx = scale_by_mars()
    >>> params = {"w": jnp.zeros((2, 2)), "b": jnp.zeros(2)}
    >>> u, _ = tx.update({"w": jnp.full((2, 2), 0.1), "b": jnp.array([1.0, -1.0])}, tx.init(params))
    >>> print(u["w"].round(4).tolist(), u["b"].round(4).tolist())  # about sign(g) on the first step
    [[1.0, 1.0], [1.0, 1.0]] [1.0, -1.0]
  """
  for name, value in (("b1", b1), ("b2", b2), ("b1_1d", b1_1d), ("b2_1d", b2_1d)):
    validation.check_unit_interval(name, value)
  validation.check_non_negative("gamma", gamma)
  validation.check_non_negative("eps", eps)
  if mars_type not in MARS_TYPES:
    raise ValueError(f"`mars_type` must be one of {MARS_TYPES}; got {mars_type!r}")
  validation.check_flags(optimize_1d=optimize_1d, ams_bound=ams_bound, cautious=cautious)

  def init_fn(params):
    validation.check_float_params(params)
    zeros = lambda: tree_lib.tree_zeros_like(params)
    return ScaleByMarsState(
        count=jnp.zeros([], jnp.int32), exp_avg=zeros(), exp_avg_sq=zeros(),
        max_exp_avg_sq=zeros() if ams_bound else None, last_grad=zeros(),
    )

  def leaf(g, last, m, v, v_max, t):
    if not _is_mixed(g, optimize_1d):
      return _adam_direction(g, g, m, v, v_max, t, b1_1d, b2_1d, eps, ams_bound, cautious)
    c = (g - last) * (gamma * (b1 / (1 - b1))) + g
    norm = jnp.sqrt(jnp.sum(c * c))
    c = jnp.where(norm > 1, c / norm, c)
    if mars_type == "adamw" or (mars_type == "shampoo" and g.ndim < 2):
      return _adam_direction(c, g, m, v, v_max, t, b1, b2, eps, ams_bound, cautious)
    m = _lerp(m, c, jnp.asarray(1 - b1, c.dtype))
    u = cautious_mask(m, g, descent=False) if cautious else m
    u = jnp.sign(u) if mars_type == "lion" else _orthogonalize(u, b1, eps)
    return u, m, v, v_max

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params, state=state.exp_avg, state_name="state.exp_avg")
    del params
    count = tree_lib.safe_increment(state.count)
    v_max_tree = state.max_exp_avg_sq if ams_bound else jax.tree.map(lambda _: None, updates)
    treedef = jax.tree.structure(updates)
    flat = [
        treedef.flatten_up_to(x)
        for x in (updates, state.last_grad, state.exp_avg, state.exp_avg_sq, v_max_tree)
    ]
    outs = []
    for g, *rest in zip(*flat):
      # The step count in float32 at least: bfloat16 has no integers above 256.
      out = leaf(g, *rest, count.astype(jnp.promote_types(g.dtype, jnp.float32)))
      outs.append([None if x is None else x.astype(g.dtype) for x in out])
    u, m, v, v_max = (treedef.unflatten([o[i] for o in outs]) for i in range(4))
    return u, ScaleByMarsState(
        count=count, exp_avg=m, exp_avg_sq=v, max_exp_avg_sq=v_max if ams_bound else None, last_grad=updates,
    )

  return base.GradientTransformation(init_fn, update_fn)


def _mars(learning_rate, weight_decay, lr_1d, weight_decay_1d, optimize_1d, **scale_args):
  """``scale_by_mars`` then, per group, the decoupled decay and the step."""
  for name, value in (("learning_rate", learning_rate), ("lr_1d", lr_1d)):
    validation.check_learning_rate(value, name)
  for name, value in (("weight_decay", weight_decay), ("weight_decay_1d", weight_decay_1d)):
    if not callable(value):
      validation.check_non_negative(name, value)
  labels = lambda tree: jax.tree.map(lambda x: "mars" if _is_mixed(x, optimize_1d) else "adamw_1d", tree)

  def step(lr, decay):
    # A decay of exactly 0 is left out, so that update needs no params for it.
    decays = [] if scaling.skips_weight_decay(decay) else [scaling.add_decayed_weights(decay)]
    return combine.chain(*decays, descent_step(lr))

  return combine.chain(
      scale_by_mars(optimize_1d=optimize_1d, **scale_args),
      param_groups.partition(
          {"mars": step(learning_rate, weight_decay), "adamw_1d": step(lr_1d, weight_decay_1d)}, labels
      ),
  )


_SHARED_DOC = r"""
  The step, with :math:`u_t` :func:`scale_by_mars`'s direction:
  :math:`\theta_t = \theta_{t-1} - \eta_t (u_t + \lambda \theta_{t-1})` on
  the MARS leaves, and with ``lr_1d``, ``weight_decay_1d`` on the 1-d AdamW
  leaves (rank < 2 unless ``optimize_1d``, the reference's test). Yuan, Liu,
  Wu, Zhou & Gu, 2024 (arXiv:2411.10438). Defaults and names are
  ``pytorch_optimizer.MARS``'s (4.1.0; ``lr`` is ``learning_rate``,
  ``betas`` / ``betas_1d`` are ``b1, b2`` / ``b1_1d, b2_1d``).
  ``tests/contrib/test_mars.py`` checks 50-step trajectories against it
  on matrices, a vector, a scalar and a conv kernel, every option, in
  float64 (``rtol`` 1e-12) and float32 (``rtol`` 5e-5, ``atol`` 2e-5),
  Newton-Schulz both in bfloat16 (the reference's) and in the params' dtype.
  Deliberate differences: the arguments are checked when it is built;
  ``lr_1d`` is its own number or schedule (the reference keeps ``lr_1d /
  lr`` and multiplies the current ``lr`` by it, so a torch scheduler moves
  both); the reference's ``fixed_decay``, coupled decay
  (``weight_decouple=False``) and ``maximize`` are not offered. ``update``
  needs ``params`` when a decay is not exactly 0 (``weight_decay_1d`` is
  0.1 by default). Under ``inject_hyperparams``, ``optimize_1d``,
  ``ams_bound`` and ``cautious`` (they select code) go in ``static_args``.
"""


def mars_adamw(
    learning_rate: LR = 3e-3,
    b1: Num = 0.95,
    b2: Num = 0.99,
    gamma: Num = 0.025,
    weight_decay: LR = 0.0,
    optimize_1d: bool = False,
    lr_1d: LR = 3e-3,
    b1_1d: Num = 0.9,
    b2_1d: Num = 0.95,
    weight_decay_1d: LR = 0.1,
    ams_bound: bool = False,
    cautious: bool = False,
    eps: Num = 1e-8,
) -> base.GradientTransformationExtraArgs:
  return _mars(
      learning_rate, weight_decay, lr_1d, weight_decay_1d, optimize_1d, b1=b1, b2=b2, gamma=gamma,
      mars_type="adamw", b1_1d=b1_1d, b2_1d=b2_1d, ams_bound=ams_bound, cautious=cautious, eps=eps,
  )


def mars_lion(
    learning_rate: LR = 3e-3,
    b1: Num = 0.95,
    gamma: Num = 0.025,
    weight_decay: LR = 0.0,
    optimize_1d: bool = False,
    lr_1d: LR = 3e-3,
    b1_1d: Num = 0.9,
    b2_1d: Num = 0.95,
    weight_decay_1d: LR = 0.1,
    ams_bound: bool = False,
    cautious: bool = False,
    eps: Num = 1e-8,
) -> base.GradientTransformationExtraArgs:
  return _mars(
      learning_rate, weight_decay, lr_1d, weight_decay_1d, optimize_1d, b1=b1, gamma=gamma,
      mars_type="lion", b1_1d=b1_1d, b2_1d=b2_1d, ams_bound=ams_bound, cautious=cautious, eps=eps,
  )


def mars_shampoo(
    learning_rate: LR = 3e-3,
    b1: Num = 0.95,
    b2: Num = 0.99,
    gamma: Num = 0.025,
    weight_decay: LR = 0.0,
    optimize_1d: bool = False,
    lr_1d: LR = 3e-3,
    b1_1d: Num = 0.9,
    b2_1d: Num = 0.95,
    weight_decay_1d: LR = 0.1,
    ams_bound: bool = False,
    cautious: bool = False,
    eps: Num = 1e-8,
) -> base.GradientTransformationExtraArgs:
  return _mars(
      learning_rate, weight_decay, lr_1d, weight_decay_1d, optimize_1d, b1=b1, b2=b2, gamma=gamma,
      mars_type="shampoo", b1_1d=b1_1d, b2_1d=b2_1d, ams_bound=ams_bound, cautious=cautious, eps=eps,
  )


_ARGS_DOC = r"""
  Args:
    learning_rate: :math:`\eta_t` of the MARS leaves, a number or a schedule (default 3e-3).
    b1: momentum decay, in ``[0, 1)`` (default 0.95).
    b2: second-moment decay, in ``[0, 1)`` (default 0.99).
    gamma: weight of the gradient correction, ``>= 0`` (default 0.025).
    weight_decay: :math:`\lambda` of the MARS leaves, decoupled (default 0.0).
    optimize_1d: MARS on every leaf (default ``False``: AdamW below rank 2).
    lr_1d: learning rate of the 1-d AdamW leaves (default 3e-3).
    b1_1d: their first-moment decay (default 0.9).
    b2_1d: their second-moment decay (default 0.95).
    weight_decay_1d: their decoupled decay (default 0.1).
    ams_bound: divide by the running max of ``v`` (default ``False``).
    cautious: mask the momentum where it disagrees with the gradient (default ``False``).
    eps: added after the root (default 1e-8).
"""

mars_adamw.__doc__ = r"""MARS-AdamW: AdamW's preconditioner on the variance-reduced momentum.
""" + _SHARED_DOC + _ARGS_DOC + r"""
  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> from jaxopt_notes.contrib._mars import mars_adamw
    >>> f = lambda p: jnp.sum((p["w"] - 1.0) ** 2) + jnp.sum((p["b"] + 1.0) ** 2)
    >>> tx = mars_adamw(0.1, lr_1d=0.1, weight_decay_1d=0.0)
    >>> p = {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}
    >>> state = tx.init(p)
    >>> for _ in range(50):
    ...   u, state = tx.update(jax.grad(f)(p), state, p)
    ...   p = jn.apply_updates(p, u)
    >>> print(round(float(f(p)), 3))  # from 9
    0.055
"""

mars_lion.__doc__ = r"""MARS-Lion: the sign of the variance-reduced momentum (no ``b2``: Lion keeps no ``v``).
""" + _SHARED_DOC + _ARGS_DOC.replace("    b2: second-moment decay, in ``[0, 1)`` (default 0.99).\n", "") + r"""
  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxopt_notes.contrib._mars import mars_lion
    >>> tx = mars_lion(1e-3)
    >>> params = jnp.zeros((2, 2))
    >>> u, _ = tx.update(jnp.array([[1.0, -2.0], [0.0, 3.0]]), tx.init(params), params)
    >>> print((u * 1e3 + 0.0).tolist())  # -eta sign(m)
    [[-1.0, 1.0], [0.0, -1.0]]
"""

mars_shampoo.__doc__ = r"""MARS-Shampoo: the variance-reduced momentum orthogonalised by Newton-Schulz.

  Rank >= 2 leaves only get the orthogonalisation (``optimize_1d``'s
  vectors and scalars take the AdamW form with ``b1``, ``b2``). Newton-Schulz
  runs in bfloat16 whatever the dtype, as the reference and the authors do,
  rounding where torch's ``mm`` / ``addmm`` round (each product-and-sum once,
  from float32), so the steps agree with the reference's to the params'
  rounding, bfloat16 and all.
""" + _SHARED_DOC + _ARGS_DOC + r"""
  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxopt_notes.contrib._mars import mars_shampoo
    >>> tx = mars_shampoo(1.0)
    >>> params = jnp.zeros((2, 2))
    >>> u, _ = tx.update(jnp.diag(jnp.array([3.0, 1.0])), tx.init(params), params)
    >>> print(jnp.round(jnp.diag(-u), 1))  # the polar factor is the identity; NS5 lands in [0.7, 1.2]
    [0.8 1.1]
"""
