"""Newton-Schulz orthogonalisation and the axis bookkeeping behind Muon.

:func:`orthogonalize_via_newton_schulz` maps a matrix ``G = U S V^T`` to
roughly ``U V^T`` with a few quintic polynomial steps in ``G G^T``;
:class:`MuonDimensionNumbers` says which axes of a higher-rank leaf form the
matrix (the remaining axes are a batch, orthogonalised slice by slice).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["MuonDimensionNumbers", "orthogonalize_via_newton_schulz"]

PRECONDITIONINGS = ("frobenius", "spectral", "aol", "schatten")
DEFAULT_NS_COEFFS = (3.4445, -4.7750, 2.0315)
NS_COEFFS_PRESETS = {
    "standard": DEFAULT_NS_COEFFS,
    "dion": (
        (4.0848, -6.8946, 2.9270),
        (3.9505, -6.3029, 2.6377),
        (3.7418, -5.5913, 2.3037),
        (2.8769, -3.1427, 1.2046),
        (2.8366, -3.0525, 1.2012),
    ),
}


class MuonDimensionNumbers(NamedTuple):
  r"""Which axes of a leaf are the matrix's rows (reduction) and columns (output).

  A leaf ``W`` is read as the map :math:`y = x W`: ``reduction_axis`` (one
  int or several) is contracted with the input, ``output_axis`` indexes the
  output. Every other axis is a batch axis: each slice is orthogonalised on
  its own. A 3x3 conv kernel ``(h, w, c_in, c_out)`` is
  ``MuonDimensionNumbers(reduction_axis=(0, 1, 2), output_axis=3)``. Negative
  axes count from the end. Same as ``optax.contrib.MuonDimensionNumbers``.

  Examples:
    >>> from jaxopt_notes.contrib import MuonDimensionNumbers
    >>> MuonDimensionNumbers()
    MuonDimensionNumbers(reduction_axis=0, output_axis=1)
  """

  reduction_axis: Sequence[int] | int = 0  # contracted with the layer input
  output_axis: Sequence[int] | int = 1  # indexes the layer output


def is_dim_nums(x) -> bool:
  return isinstance(x, MuonDimensionNumbers)


def normalized_axes(ndim: int, dim_nums: MuonDimensionNumbers) -> tuple[tuple[int, ...], tuple[int, ...]]:
  def norm(axes):
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    return tuple(ax % ndim for ax in axes)

  return norm(dim_nums.reduction_axis), norm(dim_nums.output_axis)


def fans(shape: tuple[int, ...], dim_nums: MuonDimensionNumbers) -> tuple[int, int]:
  """``(fan_in, fan_out)``: products of the reduction and output axes' sizes."""
  red, out = normalized_axes(len(shape), dim_nums)
  return math.prod(shape[a] for a in red), math.prod(shape[a] for a in out)


def _to_batched_matrices(x: jax.Array, dim_nums: MuonDimensionNumbers):
  if x.ndim < 2:
    raise ValueError(f"Muon leaves must have rank >= 2; got shape {x.shape}")
  red, out = normalized_axes(x.ndim, dim_nums)
  if set(red) & set(out):
    raise ValueError(
        f"`reduction_axis` and `output_axis` must be disjoint; got {red} and {out} "
        f"for shape {x.shape}"
    )
  batch = tuple(a for a in range(x.ndim) if a not in red and a not in out)
  order = batch + red + out
  sizes = [x.shape[a] for a in order]
  nb, nr = len(batch), len(red)
  flat = (math.prod(sizes[:nb]), math.prod(sizes[nb:nb + nr]), math.prod(sizes[nb + nr:]))
  back = tuple(order.index(a) for a in range(x.ndim))

  def restore(y):
    return y.reshape(sizes).transpose(back)

  return x.transpose(order).reshape(flat), restore


def _quintic(x, c, a=None):
  # f(X) = c0 X + (c1 A + c2 A^2) X with A = X X^H.
  if a is None:
    a = x @ x.T.conj()
  return c[0] * x + (c[1] * a + c[2] * a @ a) @ x


def _aol_first(x, c, eps=1e-8):
  a = x @ x.T.conj()
  s = jnp.expand_dims(jax.lax.rsqrt(jnp.clip(jnp.abs(a).sum(axis=-1), min=eps)), -1)
  return _quintic(x * s, c, a * s * s.transpose(-1, -2))


def _schatten_first(x, c, eps=1e-8):
  a = x @ x.T
  s = jnp.expand_dims(jax.lax.rsqrt(jnp.clip(jnp.linalg.norm(a, ord="fro", axis=(-2, -1)), min=eps)), (0, -1))
  return _quintic(x * s, c, a * s**2)


def _step(preconditioning):
  first = {"aol": _aol_first, "schatten": _schatten_first}.get(preconditioning)
  if first is None:
    return lambda i, x, c: _quintic(x, c)
  return lambda i, x, c: jax.lax.cond(i == 0, lambda y: first(y, c), lambda y: _quintic(y, c), x)


def orthogonalize_via_newton_schulz(
    x: jax.Array,
    ns_coeffs: jax.Array,
    ns_steps: jax.typing.ArrayLike = 5,
    preconditioning: str = "frobenius",
    eps: jax.typing.ArrayLike = 1e-8,
    dimension_numbers: MuonDimensionNumbers | None = None,
) -> jax.Array:
  r"""Approximately orthogonalises ``x`` (per batch slice) by Newton-Schulz steps.

  .. math::
     X_0 = G / (\|G\| + \epsilon), \qquad
     X_{k+1} = c_0 X_k + (c_1 A_k + c_2 A_k^2) X_k, \quad A_k = X_k X_k^H

  on the wide orientation of each matrix (a tall one is transposed first and
  back after). The default coefficients (Jordan, 2024, modded-nanogpt) push
  the singular values towards an interval around 1 rather than to exactly 1.
  ``preconditioning``: ``"frobenius"`` (norm above), ``"spectral"``
  (``ord=2``), ``"aol"`` (Boissin et al., arXiv:2512.04632) or
  ``"schatten"`` (Grishina et al., arXiv:2506.10935), the last two rescaling
  inside the first step instead. Same as
  ``optax.contrib._muon.orthogonalize_via_newton_schulz``.

  Args:
    x: a 2-D array, or any rank >= 2 with ``dimension_numbers``.
    ns_coeffs: shape ``(3,)`` (the same step ``ns_steps`` times) or
      ``(n, 3)`` (one row per step; ``ns_steps`` ignored).
    ns_steps: number of steps for ``(3,)`` coefficients (default 5).
    preconditioning: one of the four above (default ``"frobenius"``).
    eps: added to the norm (default 1e-8).
    dimension_numbers: the matrix axes of ``x`` (default: a 2-D ``x``).

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxopt_notes.contrib import orthogonalize_via_newton_schulz
    >>> o = orthogonalize_via_newton_schulz(jnp.diag(jnp.array([3.0, 1.0])), jnp.array([2.0, -1.5, 0.5]), 20)
    >>> print(jnp.round(jnp.diag(o), 3))
    [1. 1.]
  """
  if x.ndim != 2 and not is_dim_nums(dimension_numbers):
    raise ValueError(
        f"`x` must be 2-D or `dimension_numbers` given; got shape {x.shape} and {dimension_numbers!r}"
    )
  if x.ndim == 2:
    dimension_numbers = MuonDimensionNumbers()
  assert dimension_numbers is not None
  ns_coeffs = jnp.asarray(ns_coeffs)
  if ns_coeffs.ndim > 2 or ns_coeffs.shape[-1] != 3:
    raise ValueError(f"`ns_coeffs` must have shape (3,) or (n, 3); got {ns_coeffs.shape}")
  if preconditioning not in PRECONDITIONINGS:
    raise ValueError(f"`preconditioning` must be one of {PRECONDITIONINGS}; got {preconditioning!r}")
  step = _step(preconditioning)

  def one(m):
    tall = m.shape[0] > m.shape[1]
    if tall:
      m = m.T
    if preconditioning == "frobenius":
      m = m / (jnp.linalg.norm(m, ord="fro") + eps)
    elif preconditioning == "spectral":
      m = m / (jnp.linalg.norm(m, ord=2) + eps)
    c = ns_coeffs.astype(m.dtype)
    if c.ndim == 1:
      # Unrolled so that vmap over batch slices composes cheaply.
      m = jax.lax.fori_loop(0, ns_steps, lambda i, y: step(i, y, c), m, unroll=True)
    else:
      def body(carry, row):
        i, y = carry
        return (i + 1, step(i, y, row)), None

      (_, m), _ = jax.lax.scan(body, (jnp.asarray(0, jnp.int32), m), c)
    return m.T if tall else m

  flat, restore = _to_batched_matrices(x, dimension_numbers)
  return restore(jax.vmap(one)(flat))
