r"""Muon: momentum orthogonalised by Newton-Schulz (optax.contrib's Muon).

Which leaves are matrices: by default (``muon_weight_dimension_numbers=None``)
every 2-D leaf goes through Muon; every other leaf (scalars, vectors, conv
kernels and other rank >= 3 leaves) goes through AdamW with the ``adam_*``
arguments. A tree (or function of the params) of
:class:`MuonDimensionNumbers` instead sends the leaves with a spec to Muon
(any rank >= 2, the spec naming the matrix axes) and the ``None`` ones to
AdamW.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp

from jaxopt_notes.contrib._newton_schulz import (
    DEFAULT_NS_COEFFS,
    NS_COEFFS_PRESETS,
    MuonDimensionNumbers,
    fans,
    is_dim_nums,
    orthogonalize_via_newton_schulz,
)
from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.optimizers import adam as adam_lib
from jaxopt_notes.optimizers._common import descent_step
from jaxopt_notes.transforms import masking, scaling
from jaxopt_notes.wrappers import param_groups

__all__ = [
    "MuonDimensionNumbers",
    "MuonState",
    "muon",
    "orthogonalize_via_newton_schulz",
    "scale_by_muon",
    "scale_by_shape",
]


def _resolve(dim_nums, updates):
  # None means "every leaf is a 2-D matrix" (optax fails on a tree here).
  dim_nums = dim_nums(updates) if callable(dim_nums) else dim_nums
  if dim_nums is None:
    return jax.tree.map(lambda _: MuonDimensionNumbers(), updates)
  return dim_nums


def scale_by_shape(weight_dimension_numbers=None, consistent_rms=None) -> base.GradientTransformation:
  r"""Rescales each matrix update by a factor of its shape.

  .. math::
     u = \sqrt{\max(1, n_{out} / n_{in})}\, g \quad\text{or}\quad
     u = \rho \sqrt{\max(n_{in}, n_{out})}\, g \ (\text{consistent\_rms} = \rho)

  Width scaling (Jordan, github.com/KellerJordan/Muon) or Liu et al.'s
  consistent RMS (arXiv:2502.16982). Same as ``optax.contrib._muon.scale_by_shape``
  (``None`` dimension numbers: every leaf a 2-D matrix).

  Args:
    weight_dimension_numbers: a tree of :class:`MuonDimensionNumbers`, a
      function of the updates returning one, or ``None``.
    consistent_rms: ``rho`` or ``None`` (width scaling; default).

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxopt_notes.contrib import scale_by_shape
    >>> tx = scale_by_shape()
    >>> u, _ = tx.update({"w": jnp.ones((1, 4))}, tx.init(None))
    >>> print(u["w"][0, 0])
    2.0
  """

  def width(u, d):
    fan_in, fan_out = fans(u.shape, d)
    return jnp.sqrt(jnp.maximum(1, fan_out / fan_in)) * u

  def rms(u, d):
    fan_in, fan_out = fans(u.shape, d)
    return jnp.sqrt(jnp.maximum(fan_in, fan_out)) * consistent_rms * u

  def update_fn(updates, state, params=None):
    del params
    fn = width if consistent_rms is None else rms
    dims = _resolve(weight_dimension_numbers, updates)
    return jax.tree.map(fn, updates, dims, is_leaf=is_dim_nums), state

  return base.GradientTransformation(base.init_empty_state, update_fn)


class MuonState(NamedTuple):
  """State of :func:`scale_by_muon`."""

  count: jax.Array  # type: ignore[assignment]  # int32 scalar, steps taken, as optax's
  mu: base.Updates  # EMA of the gradients (mu_dtype)
  ns_coeffs: jax.Array  # the Newton-Schulz coefficients used, (3,) or (n, 3)


def _coeffs_array(ns_coeffs, ns_steps):
  c = jnp.asarray(ns_coeffs)
  if c.ndim > 2 or c.shape[-1] != 3:
    raise ValueError(f"`ns_coeffs` must have shape (3,) or (n, 3); got {c.shape}")
  if c.ndim == 2:
    if isinstance(ns_steps, int) and c.shape[0] > ns_steps:
      raise ValueError(f"`ns_steps` ({ns_steps}) must be >= the rows of `ns_coeffs` ({c.shape[0]}), as in optax")
    c = c[-ns_steps:]
  return c


def scale_by_muon(
    ns_coeffs=DEFAULT_NS_COEFFS,
    ns_steps: jax.typing.ArrayLike = 5,
    beta: jax.typing.ArrayLike = 0.95,
    eps: jax.typing.ArrayLike = 1e-8,
    mu_dtype: Optional[Any] = None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning: str = "frobenius",
    weight_dimension_numbers=None,
) -> base.GradientTransformation:
  r"""Muon's scaling: the (Nesterov) momentum, orthogonalised.

  .. math::
     m_t = \beta m_{t-1} + (1-\beta) g_t, \quad
     \hat m_t = \beta \frac{m_t}{1-\beta^{t+1}} + (1-\beta)\frac{g_t}{1-\beta^t}, \quad
     u_t = \mathrm{NS}(\hat m_t)

  (``nesterov=False``: :math:`\hat m_t = m_t / (1-\beta^t)`; ``adaptive``:
  :math:`u_t \leftarrow \langle \hat m_t, u_t\rangle u_t`, Bernstein & Newhouse,
  arXiv:2409.20325). Jordan, 2024 (modded-nanogpt). Every leaf is
  orthogonalised, so every leaf must be a matrix (``None`` dimension
  numbers: 2-D) or have a spec. Same as ``optax.contrib.scale_by_muon``.

  Args:
    ns_coeffs: ``(c0, c1, c2)`` or one such row per step.
    ns_steps: Newton-Schulz steps (default 5).
    beta: momentum decay (default 0.95).
    eps: added to the pre-scaling norm (default 1e-8).
    mu_dtype: dtype of ``mu`` (default: the params').
    nesterov: Nesterov momentum (default ``True``).
    adaptive: scale by the dual norm (default ``False``).
    preconditioning: ``"frobenius"``, ``"spectral"``, ``"aol"`` or ``"schatten"``.
    weight_dimension_numbers: tree (or function) of :class:`MuonDimensionNumbers`.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxopt_notes.contrib import scale_by_muon
    >>> tx = scale_by_muon()
    >>> u, _ = tx.update({"w": jnp.eye(2)}, tx.init({"w": jnp.eye(2)}))
    >>> print(jnp.round(jnp.diag(u["w"]), 1))
    [1.1 1.1]
  """
  validation.check_flags(nesterov=nesterov, adaptive=adaptive)
  validation.check_unit_interval("beta", beta)
  mu_dtype = validation.check_dtype("mu_dtype", mu_dtype)
  _coeffs_array(ns_coeffs, ns_steps)

  def init_fn(params):
    return MuonState(
        count=jnp.zeros([], jnp.int32),
        mu=tree_lib.tree_zeros_like(params, dtype=mu_dtype),
        ns_coeffs=_coeffs_array(ns_coeffs, ns_steps),
    )

  def update_fn(updates, state, params=None):
    del params
    dims = _resolve(weight_dimension_numbers, updates)
    mu = tree_lib.tree_update_moment(updates, state.mu, beta, 1)
    count = tree_lib.safe_increment(state.count)
    if nesterov:
      mu_hat = jax.tree.map(
          lambda m, g: beta * m + (1 - beta) * g,
          tree_lib.bias_correction(mu, beta, tree_lib.safe_increment(count)),
          tree_lib.bias_correction(updates, beta, count),
      )
    else:
      mu_hat = tree_lib.bias_correction(mu, beta, count)
    ortho = jax.tree.map(
        lambda x, d: orthogonalize_via_newton_schulz(x, state.ns_coeffs, ns_steps, preconditioning, eps, d),
        mu_hat, dims, is_leaf=is_dim_nums,
    )
    if adaptive:
      ortho = jax.tree.map(lambda x, y: jnp.sum(x.conj() * y) * y, mu_hat, ortho)
    return ortho, MuonState(count=count, mu=tree_lib.tree_cast(mu, mu_dtype), ns_coeffs=state.ns_coeffs)

  return base.GradientTransformation(init_fn, update_fn)


def muon(
    learning_rate: base.ScalarOrSchedule,
    ns_coeffs: Union[Any, str] = DEFAULT_NS_COEFFS,
    ns_steps: jax.typing.ArrayLike = 5,
    beta: jax.typing.ArrayLike = 0.95,
    eps: jax.typing.ArrayLike = 1e-8,
    weight_decay: jax.typing.ArrayLike = 0.0,
    weight_decay_mask: Optional[masking.Mask] = None,
    mu_dtype: Optional[Any] = None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning: str = "frobenius",
    adam_b1: jax.typing.ArrayLike = 0.9,
    adam_b2: jax.typing.ArrayLike = 0.999,
    adam_eps_root: jax.typing.ArrayLike = 0.0,
    adam_weight_decay: Any = 0.0,
    adam_learning_rate: Optional[base.ScalarOrSchedule] = None,
    muon_weight_dimension_numbers: Optional[Union[Any, Callable[[Any], Any]]] = None,
    consistent_rms: Optional[jax.typing.ArrayLike] = None,
) -> base.GradientTransformationExtraArgs:
  r"""Muon on the matrices, AdamW on the other leaves.

  .. math::
     W_t = W_{t-1} - \eta_t \left(s(W)\, \mathrm{NS}(\hat m_t) + \lambda W_{t-1}\right)

  with :func:`scale_by_muon`'s :math:`\hat m_t` and :func:`scale_by_shape`'s
  :math:`s`. Jordan, 2024 (modded-nanogpt); Liu et al., arXiv:2502.16982.
  Which leaves are matrices: with ``muon_weight_dimension_numbers=None``
  the 2-D leaves; with a tree (or function) of :class:`MuonDimensionNumbers`
  the leaves that have a spec (``None`` entries are not). All other leaves
  (scalars, vectors, un-specified conv kernels) are updated by AdamW
  (``adam_b1``, ``adam_b2``, Muon's ``eps``, ``adam_eps_root``,
  ``adam_weight_decay``, ``adam_learning_rate`` or ``learning_rate``,
  ``nesterov``). ``ns_coeffs`` may name a preset (``"standard"``, ``"dion"``).
  Same as ``optax.contrib.muon``, except ``learning_rate=None`` raises
  (optax would skip the sign flip and climb).

  Args:
    learning_rate: ``eta``, a float or schedule.
    ns_coeffs: coefficients or a preset name.
    ns_steps: Newton-Schulz steps (default 5).
    beta: momentum decay (default 0.95).
    eps: Newton-Schulz and AdamW epsilon (default 1e-8).
    weight_decay: ``lambda`` for the Muon leaves (default 0).
    weight_decay_mask: which Muon leaves to decay.
    mu_dtype: momentum dtype.
    nesterov: Nesterov momentum (default ``True``).
    adaptive: dual-norm scaling (default ``False``).
    preconditioning: see :func:`orthogonalize_via_newton_schulz`.
    adam_b1: AdamW ``b1`` (0.9).
    adam_b2: AdamW ``b2`` (0.999).
    adam_eps_root: AdamW ``eps_root`` (0).
    adam_weight_decay: AdamW decay (0).
    adam_learning_rate: AdamW step (default: ``learning_rate``).
    muon_weight_dimension_numbers: see above.
    consistent_rms: see :func:`scale_by_shape`.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.contrib as jnc
    >>> tx = jnc.muon(0.1)
    >>> params = {"w": jnp.eye(2), "b": jnp.ones(2)}
    >>> u, _ = tx.update(params, tx.init(params), params)
    >>> [round(float(x), 2) for x in u["b"]], [round(float(x), 2) for x in jnp.diag(u["w"])]
    ([-0.15, -0.15], [-0.11, -0.11])
  """
  if isinstance(ns_coeffs, str):
    if ns_coeffs not in NS_COEFFS_PRESETS:
      raise ValueError(f"`ns_coeffs` preset must be one of {sorted(NS_COEFFS_PRESETS)}; got {ns_coeffs!r}")
    ns_coeffs = NS_COEFFS_PRESETS[ns_coeffs]
  if adam_learning_rate is None:
    adam_learning_rate = learning_rate
  spec = muon_weight_dimension_numbers

  def specs_of(params):
    if spec is None:
      return jax.tree.map(lambda x: MuonDimensionNumbers() if x.ndim == 2 else None, params)
    return spec(params) if callable(spec) else spec

  is_spec = lambda x: x is None or is_dim_nums(x)

  def labels(params):
    return jax.tree.map(
        lambda d, sub: jax.tree.map(lambda _: "adam" if d is None else "muon", sub),
        specs_of(params), params, is_leaf=is_spec,
    )

  def muon_dims(params):
    # Shaped like the masked tree Muon sees: MaskedNode where AdamW owns the leaf.
    return jax.tree.map(
        lambda d, sub: jax.tree.map(lambda _: masking.MaskedNode() if d is None else d, sub),
        specs_of(params), params, is_leaf=is_spec,
    )

  def muon_dims_of_masked(updates):
    # The updates Muon sees are masked; rebuild the full-tree specs from them.
    full = jax.tree.map(
        lambda u: jnp.zeros((1,)) if isinstance(u, masking.MaskedNode) else u,
        updates, is_leaf=lambda x: isinstance(x, masking.MaskedNode),
    )
    return muon_dims(full)

  return param_groups.partition(
      {
          "muon": combine.chain(
              scale_by_muon(
                  ns_coeffs, ns_steps, beta, eps, mu_dtype, nesterov=nesterov, adaptive=adaptive,
                  preconditioning=preconditioning, weight_dimension_numbers=muon_dims_of_masked,
              ),
              scale_by_shape(muon_dims_of_masked, consistent_rms),
              scaling.add_decayed_weights(weight_decay, weight_decay_mask),
              descent_step(learning_rate),
          ),
          "adam": adam_lib.adamw(
              adam_learning_rate, adam_b1, adam_b2, eps, adam_eps_root, mu_dtype,
              weight_decay=adam_weight_decay, nesterov=nesterov,
          ),
      },
      labels,
  )

