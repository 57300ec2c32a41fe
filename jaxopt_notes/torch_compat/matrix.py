r"""``torch.optim.Muon`` and ``torch.optim.Adafactor``: the matrix-shaped optimizers.

Both follow torch 2.x's single-tensor implementation step for step. torch's
Muon orthogonalises in ``bfloat16`` whatever the params' dtype; here every
value torch stores as a ``bfloat16`` tensor is rounded to ``bfloat16``
(``lax.reduce_precision``) while the arithmetic between roundings runs in
float32, as torch's CPU kernels do, which reproduces torch's Newton-Schulz
output bit for bit on CPU. Adafactor factors the second moment over the last
two axes of every leaf of rank >= 2, as torch does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxopt_notes.contrib._muon import MuonDimensionNumbers, scale_by_shape
from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.schedules.torch_style import _float_dtype
from jaxopt_notes.torch_compat._common import LR, Num, Tx, check_lr, is_zero
from jaxopt_notes.torch_compat.optimizers import _torch_chain
from jaxopt_notes.transforms import scaling

__all__ = [
    "TorchAdafactorState", "TorchMuonState", "adafactor", "muon",
    "scale_by_torch_adafactor", "scale_by_torch_muon",
]

MUON_NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # torch.optim._muon.DEFAULT_A/B/C
ADJUST_LR_FNS = (None, "original", "match_rms_adamw")
# torch's weight is (out_features, in_features): its A / B is fan_out / fan_in.
_TORCH_LAYOUT = MuonDimensionNumbers(reduction_axis=1, output_axis=0)


def _lerp(start: jax.Array, end: jax.Array, weight: Any) -> jax.Array:
  """``torch.lerp``: the two-sided formula, so that the rounding is torch's."""
  w = jnp.asarray(weight).astype(start.dtype)
  diff = end - start
  return jnp.where(w < 0.5, start + w * diff, end - diff * (1 - w))


def _bf16(x: jax.Array) -> jax.Array:
  # reduce_precision survives XLA's excess-precision rewrites, a bf16 cast may not.
  return jax.lax.reduce_precision(x, exponent_bits=8, mantissa_bits=7)


def _newton_schulz_like_torch(g: jax.Array, coeffs: tuple, steps: int, eps: Num) -> jax.Array:
  """``torch.optim._muon._zeropower_via_newtonschulz``, bfloat16 roundings included."""
  a, b, c = coeffs
  x = _bf16(g).astype(jnp.float32)  # one rounding from float64 too, as torch's .bfloat16()
  tall = x.shape[0] > x.shape[1]
  x = x.T if tall else x
  x = _bf16(x / jnp.maximum(_bf16(jnp.linalg.norm(x)), eps))
  for _ in range(steps):
    gram = _bf16(x @ x.T)
    x = _bf16(a * x + _bf16(b * gram + c * (gram @ gram)) @ x)
  return (x.T if tall else x).astype(g.dtype)


def _check_tuple(name: str, value: Any, size: int, what: str) -> tuple:
  if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != size:
    raise TypeError(f"`{name}` must be {what}; got {value!r}")
  return tuple(value)


def _check_matrices(params: Any) -> None:
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    if jnp.ndim(leaf) != 2:
      raise ValueError(
          f"torch_compat.muon updates 2-D params only, as torch.optim.Muon; leaf "
          f"{jax.tree_util.keystr(path) or '<root>'} has shape {jnp.shape(leaf)} (send it to "
          "another optimizer, e.g. with jaxopt_notes.partition)"
      )


class TorchMuonState(NamedTuple):
  """State of :func:`scale_by_torch_muon`: torch's ``momentum_buffer``."""

  momentum_buffer: base.Updates  # EMA of the gradients, from zero, no bias correction


def scale_by_torch_muon(
    momentum: Num = 0.95, nesterov: bool = True, ns_coefficients: Sequence[float] = MUON_NS_COEFFICIENTS,
    eps: Num = 1e-7, ns_steps: int = 5,
) -> base.GradientTransformation:
  r"""torch's Muon direction: an EMA (or its Nesterov look-ahead), orthogonalised in bfloat16.

  .. math::
     B_t = \mu B_{t-1} + (1-\mu) g_t, \quad
     \tilde B_t = (1-\mu) g_t + \mu B_t \ (\text{Nesterov}) \ \text{or}\ B_t, \quad
     u_t = \mathrm{NS}^{(a,b,c)}_k\!\big(\tilde B_t / \max(\|\tilde B_t\|_F, \epsilon)\big)

  with ``X <- a X + (b A + c A^2) X``, ``A = X X^T``, on the wide orientation,
  every stored value rounded to bfloat16 (the output too; it is returned in
  the params' dtype). Differs from :func:`jaxopt_notes.contrib.scale_by_muon`
  (optax's): no bias correction of the momentum, the Nesterov mix uses
  ``B_t`` rather than ``B_t/(1-mu^{t+1})``, the norm is clamped at ``eps``
  rather than ``eps`` added, and the iteration runs in bfloat16, not the
  params' dtype. Only 2-D leaves (``init`` raises, naming the leaf). Jordan
  et al., 2024, https://kellerjordan.github.io/posts/muon/.

  Args:
    momentum: ``mu >= 0`` (default 0.95).
    nesterov: the look-ahead mix (default ``True``).
    ns_coefficients: ``(a, b, c)`` (default ``(3.4445, -4.7750, 2.0315)``).
    eps: the norm's lower clamp (default 1e-7).
    ns_steps: Newton-Schulz steps, in ``[0, 100)`` (default 5).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.torch_compat as tc
    >>> tx = tc.scale_by_torch_muon()
    >>> u, _ = tx.update({"w": jnp.diag(jnp.array([2.0, 1.0]))}, tx.init({"w": jnp.eye(2)}))
    >>> [round(float(x), 3) for x in jnp.diag(u["w"])]  # singular values 1 and 0.5 pushed towards 1
    [0.691, 1.117]
  """
  validation.check_non_negative("momentum", momentum)
  validation.check_bool("nesterov", nesterov)
  validation.check_non_negative("eps", eps)
  validation.check_int("ns_steps", ns_steps, minimum=0)
  if ns_steps >= 100:
    raise ValueError(f"`ns_steps` must be < 100, as in torch.optim.Muon; got {ns_steps!r}")
  coeffs = _check_tuple("ns_coefficients", ns_coefficients, 3, "a triple (a, b, c)")
  for i, coef in enumerate(coeffs):
    validation.check_finite(f"ns_coefficients[{i}]", coef)

  def init_fn(params):
    _check_matrices(params)
    return TorchMuonState(momentum_buffer=tree_lib.tree_zeros_like(params))

  def update_fn(updates, state, params=None):
    del params
    buf = tree_lib.tree_map_checked(lambda g, b: _lerp(b, g, 1 - momentum), updates, state.momentum_buffer)
    look = jax.tree.map(lambda g, b: _lerp(g, b, momentum), updates, buf) if nesterov else buf
    ortho = jax.tree.map(lambda x: _newton_schulz_like_torch(x, coeffs, ns_steps, eps), look)
    return ortho, TorchMuonState(momentum_buffer=buf)

  return base.GradientTransformation(init_fn, update_fn)


def muon(
    lr: LR = 1e-3, weight_decay: Num = 0.1, momentum: Num = 0.95, nesterov: bool = True,
    ns_coefficients: Sequence[float] = MUON_NS_COEFFICIENTS, eps: Num = 1e-7, ns_steps: int = 5,
    adjust_lr_fn: Optional[str] = None,
) -> Tx:
  r"""``torch.optim.Muon``: orthogonalised momentum for 2-D params, decoupled decay.

  .. math::
     W_t = (1 - \eta\lambda) W_{t-1} - \eta\, s(A, B)\, u_t, \qquad
     s = \sqrt{\max(1, A/B)}\ (\text{"original"}) \ \text{or}\ 0.2\sqrt{\max(A, B)}\ (\text{"match\_rms\_adamw"})

  with :func:`scale_by_torch_muon`'s ``u_t`` and ``(A, B)`` the leaf's shape
  (torch's ``(out, in)`` layout: ``A/B`` is fan-out over fan-in). Chain:
  :func:`scale_by_torch_muon`, :func:`~jaxopt_notes.contrib.scale_by_shape`
  read with axis 0 as the output, ``add_decayed_weights``, the lr. torch's
  defaults (``lr=1e-3``, ``weight_decay=0.1``, ``adjust_lr_fn=None``, i.e.
  ``"original"``). Every leaf must be 2-D: ``init`` raises naming the first
  other one, as torch's constructor does; route vectors and scalars to e.g.
  :func:`adamw` with :func:`~jaxopt_notes.partition`. Differs from
  :func:`jaxopt_notes.contrib.muon` / ``optax.contrib.muon`` (which send
  non-matrices to AdamW themselves): no momentum bias correction, torch's
  ``eps`` clamp and bfloat16 iteration, the width factor read in torch's
  layout (optax's reads axis 0 as the input), ``weight_decay=0.1`` by
  default. Jordan et al., 2024 (https://kellerjordan.github.io/posts/muon/);
  Liu et al., 2025, "Muon is Scalable for LLM Training", arXiv:2502.16982.

  Checked against ``torch.optim.Muon`` (torch 2.13) over 200 steps in
  ``tests/torch_compat/test_torch_matrix.py``: float64 to ``rtol=1e-6``
  (measured 1e-14); float32 to ``rtol=atol=5e-5`` over the first 50 steps,
  and over 200 no further from torch float32 than torch float64 is (an
  ulp-apart gradient may round to the other bfloat16 neighbour, in torch
  too). The Newton-Schulz output equals torch's bit for bit (both on CPU).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.torch_compat as tc
    >>> tx = tc.muon(lr=0.1, weight_decay=0.0)
    >>> params = {"w": jnp.zeros((2, 3))}
    >>> u, _ = tx.update({"w": jnp.ones((2, 3))}, tx.init(params), params)
    >>> print(u["w"].shape, round(float(u["w"][0, 0]), 3))  # -0.1 * 0.68 / sqrt(6): 5 steps from rank 1
    (2, 3) -0.028
  """
  check_lr(lr)
  if adjust_lr_fn not in ADJUST_LR_FNS:
    raise ValueError(f"`adjust_lr_fn` must be one of {ADJUST_LR_FNS}; got {adjust_lr_fn!r}")
  core = [
      scale_by_torch_muon(momentum, nesterov, ns_coefficients, eps, ns_steps),
      scale_by_shape(
          lambda u: jax.tree.map(lambda _: _TORCH_LAYOUT, u),
          0.2 if adjust_lr_fn == "match_rms_adamw" else None,
      ),
  ]
  return _torch_chain(core, lr, maximize=False, weight_decay=weight_decay, decoupled=True)


class TorchAdafactorState(NamedTuple):
  """State of :func:`scale_by_torch_adafactor`, per leaf as torch keeps it.

  ``row_var``/``col_var`` (shapes ``[..., n, 1]``/``[..., 1, m]``) for leaves
  of rank >= 2 and ``variance`` (the leaf's shape) for the others; the unused
  ones are empty arrays.
  """

  count: jax.Array  # type: ignore[assignment]  # named like tuple.count, as optax's; int32 scalar
  row_var: base.Updates  # EMA of the mean of g^2 over the last axis
  col_var: base.Updates  # EMA of the mean of g^2 over the second-to-last axis
  variance: base.Updates  # EMA of g^2, for leaves of rank <= 1


def _check_eps_pair(eps: Any) -> tuple[Optional[Num], Num]:
  eps = _check_tuple("eps", eps, 2, "a pair (eps1 or None, eps2)")
  if eps[0] is not None:
    validation.check_non_negative("eps[0]", eps[0])
  validation.check_non_negative("eps[1]", eps[1])
  return eps[0], eps[1]


def _rms(x: jax.Array) -> jax.Array:
  return jnp.linalg.norm(x.ravel()) / math.sqrt(max(x.size, 1))


def scale_by_torch_adafactor(
    lr: LR = 1e-2, beta2_decay: Num = -0.8, eps: tuple[Optional[Num], Num] = (None, 1e-3), d: Num = 1.0,
) -> base.GradientTransformation:
  r"""torch's Adafactor step (without the sign and the decay): relative, factored, clipped.

  .. math::
     \hat\beta_{2,t} = 1 - t^{\tau}, \quad \rho_t = \min(\eta_t, 1/\sqrt t), \quad
     \alpha_t = \max(\epsilon_2, \mathrm{RMS}(W_{t-1}))\, \rho_t

  .. math::
     R_t = \hat\beta_{2,t} R_{t-1} + (1-\hat\beta_{2,t})\,\mathrm{mean}_{-1}(g^2), \quad
     C_t = \hat\beta_{2,t} C_{t-1} + (1-\hat\beta_{2,t})\,\mathrm{mean}_{-2}(g^2), \quad
     \hat V_t = \frac{R_t C_t}{\max(\mathrm{mean}(R_t), \epsilon_1)}

  (rank <= 1: ``V_t`` the EMA of ``g^2``), then
  ``U = g / max(sqrt(V), eps1)`` and ``u_t = alpha_t U / max(1, RMS(U)/d)``.
  ``eps1 = None`` is the machine epsilon of the leaf's dtype. ``update``
  needs ``params``. Differs from :func:`jaxopt_notes.scale_by_factored_rms`
  (optax's): ``eps1`` clamps ``mean(R)`` and ``sqrt(V)`` rather than being
  added to ``g^2``, and every rank >= 2 leaf is factored over its last two
  axes (optax: over its two largest, when both are >= 128); the decay
  ``1 - t^{-0.8}`` and the ``mean(R)`` normaliser are the same. Shazeer &
  Stern, 2018, arXiv:1804.04235.

  Args:
    lr: caps ``rho_t``; a number or schedule (default 1e-2).
    beta2_decay: ``tau <= 0`` (default -0.8).
    eps: ``(eps1 or None, eps2)`` (default ``(None, 1e-3)``).
    d: the clipping threshold, ``>= 1`` (default 1.0).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.torch_compat as tc
    >>> tx = tc.scale_by_torch_adafactor()
    >>> params = {"w": jnp.full((2, 2), 4.0)}
    >>> u, _ = tx.update({"w": jnp.array([[1.0, -1.0], [2.0, 0.5]])}, tx.init(params), params)
    >>> print(jnp.round(u["w"], 4))  # lr * RMS(W) = 0.04 times g / sqrt(V), clipped to RMS 1
    [[ 0.0295 -0.059 ]
     [ 0.0405  0.0202]]
  """
  check_lr(lr)
  validation.check_that("beta2_decay", beta2_decay, lambda v: v <= 0, "a number <= 0 (as in torch.optim.Adafactor)")
  eps1, eps2 = _check_eps_pair(eps)
  validation.check_real("d", d, minimum=1.0)

  def init_fn(params):
    # The factors are new constants of their own shapes (slicing the params'
    # zeros would slice a split axis, which an explicit mesh refuses); only
    # the full second moment mirrors a param and is placed like it.
    def factor(p, shape):
      return jnp.zeros(shape if p.ndim > 1 else (0,), p.dtype)

    return TorchAdafactorState(
        count=jnp.zeros([], jnp.int32),
        row_var=jax.tree.map(lambda p: factor(p, p.shape[:-1] + (1,)), params),
        col_var=jax.tree.map(lambda p: factor(p, p.shape[:-2] + (1,) + p.shape[-1:]), params),
        variance=jax.tree.map(
            lambda p: jnp.zeros((0,), p.dtype) if p.ndim > 1 else tree_lib.placed_like(p, jnp.zeros_like(p)), params
        ),
    )

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("torch_compat's Adafactor needs `params` in update (its step is relative to RMS(params))")
    t = (state.count + 1).astype(_float_dtype())
    rate = lr(state.count) if callable(lr) else lr
    weight = t**beta2_decay
    rho = jnp.minimum(rate, 1.0 / jnp.sqrt(t))

    def leaf(g, p, r, c, v):
      e1 = jnp.finfo(p.dtype).eps if eps1 is None else eps1
      if g.ndim > 1:
        r = _lerp(r, jnp.square(jnp.linalg.norm(g, axis=-1, keepdims=True)) / g.shape[-1], weight)
        c = _lerp(c, jnp.square(jnp.linalg.norm(g, axis=-2, keepdims=True)) / g.shape[-2], weight)
        var = (r * c) / jnp.maximum(r.mean(axis=-2, keepdims=True), e1)
      else:
        v = _lerp(v, g * g, weight)
        var = v
      u = jax.lax.rsqrt(jnp.maximum(var, e1 * e1)) * g
      alpha = jnp.maximum(eps2, _rms(p)) * rho
      step = alpha / jnp.maximum(1.0, _rms(u) / d)
      return step.astype(g.dtype) * u, r, c, v

    out = tree_lib.tree_map_checked(
        leaf, updates, params, state.row_var, state.col_var, state.variance,
        names=("updates", "params", "state.row_var", "state.col_var", "state.variance"),
    )
    pick = lambda i: jax.tree.map(lambda _, o: o[i], updates, out)  # noqa: E731
    new = TorchAdafactorState(tree_lib.safe_increment(state.count), pick(1), pick(2), pick(3))
    return pick(0), new

  return base.GradientTransformation(init_fn, update_fn)


def adafactor(
    lr: LR = 1e-2, beta2_decay: Num = -0.8, eps: tuple[Optional[Num], Num] = (None, 1e-3), d: Num = 1.0,
    weight_decay: Num = 0.0, *, maximize: bool = False,
) -> Tx:
  r"""``torch.optim.Adafactor``: the lr caps the relative step and scales the decay.

  .. math::
     W_t = (1 - \eta_t\lambda)\, W_{t-1} - \alpha_t\, \frac{U_t}{\max(1, \mathrm{RMS}(U_t)/d)}

  with :func:`scale_by_torch_adafactor`'s ``alpha_t`` and ``U_t`` (``g``
  negated under ``maximize``). Chain: ``[scale(-1)]``,
  :func:`scale_by_torch_adafactor`, ``[add_decayed_weights(lr_t * wd)]``,
  ``scale(-1)``. torch's defaults (``lr=1e-2``, ``beta2_decay=-0.8``,
  ``eps=(None, 1e-3)``, ``d=1``, ``weight_decay=0``). ``update`` always needs
  ``params``. ``foreach`` is not taken (same math). Differs from
  :func:`jaxopt_notes.adafactor` / ``optax.adafactor``: see
  :func:`scale_by_torch_adafactor`; also optax's ``learning_rate``
  multiplies the step (``None``: a step of ``max(RMS(w), 1e-3) U``, no
  ``1/sqrt t``) where torch's caps ``rho_t = min(lr, 1/sqrt t)``, optax
  adds ``weight_decay_rate * w`` (not times the lr), and it has momentum
  and the factoring threshold as options. Shazeer & Stern, 2018,
  arXiv:1804.04235.

  Checked against ``torch.optim.Adafactor`` (torch 2.13) over 200 steps in
  ``tests/torch_compat/test_torch_matrix.py``: float64 to ``rtol=1e-6``,
  float32 to ``rtol=atol=5e-5``, on a matrix, a vector, a scalar and a conv kernel.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.torch_compat as tc
    >>> tx = tc.adafactor(lr=0.1, weight_decay=0.5)
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> u, _ = tx.update({"w": jnp.array([0.5, -1.0])}, tx.init(params), params)
    >>> [round(float(x), 4) for x in u["w"]]  # -0.1 RMS(w) sign(g) / 1, then -lr wd w
    [-0.2081, 0.2581]
  """
  check_lr(lr)
  validation.check_bool("maximize", maximize)
  validation.check_non_negative("weight_decay", weight_decay)
  links = [scaling.scale(-1.0)] if maximize else []
  links.append(scale_by_torch_adafactor(lr, beta2_decay, eps, d))
  if not is_zero(weight_decay):
    decay = (lambda count: lr(count) * weight_decay) if callable(lr) else lr * weight_decay
    links.append(scaling.add_decayed_weights(decay))
  links.append(scaling.scale(-1.0))
  return combine.chain(*links)
