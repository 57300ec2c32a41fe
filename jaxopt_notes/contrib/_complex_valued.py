"""Run a real-valued optimizer on complex parameters, real and imaginary parts apart.

Adaptive transforms treat a complex number as one value (``|g|^2`` in Adam's
second moment), which couples the two parts. Splitting each complex leaf into
a pair of real leaves makes the inner transform behave exactly as if the
parameters were the real pairs ``(Re z, Im z)``.

JAX's ``jax.grad`` of a real loss of ``z`` returns the *conjugate* of the
direction of steepest ascent, so conjugate the gradients before ``update``
(``jax.tree.map(jnp.conj, grads)``); see optax issue #196.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Union

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base

__all__ = ["SplitRealAndImaginaryArrays", "SplitRealAndImaginaryState", "split_real_and_imaginary"]


class SplitRealAndImaginaryArrays(NamedTuple):
  """The two real arrays that stand in for one complex leaf inside the inner transform."""

  real: jax.typing.ArrayLike  # Re z
  imaginary: jax.typing.ArrayLike  # Im z


class SplitRealAndImaginaryState(NamedTuple):
  """State of :func:`split_real_and_imaginary`."""

  inner_state: base.OptState  # the inner transform's state, over the split (real) tree


def _split(x: Any) -> Union[Any, SplitRealAndImaginaryArrays]:
  return SplitRealAndImaginaryArrays(x.real, x.imag) if jnp.iscomplexobj(x) else x


def _merge(x: Any) -> Any:
  return x.real + x.imaginary * 1j if isinstance(x, SplitRealAndImaginaryArrays) else x


def _is_pair(x: Any) -> bool:
  return isinstance(x, SplitRealAndImaginaryArrays)


def split_real_and_imaginary(inner: base.GradientTransformation) -> base.GradientTransformation:
  r"""Wraps ``inner`` so that each complex leaf is optimised as two real leaves.

  .. math::
     z = x + i y \;\mapsto\; (x, y), \qquad
     (u_x, u_y) = \mathrm{inner}(g_x, g_y), \qquad
     u_z = u_x + i\, u_y

  Real leaves pass through unchanged; ``params`` (when given) are split the
  same way before the inner ``update``. So Adam on :math:`z` equals Adam on
  the real pair :math:`(x, y)` (not on :math:`|g_z|^2`). No paper: a device
  from optax (issue #196 on conjugate gradients in JAX). Conjugate
  ``jax.grad``'s gradients first. Same as
  ``optax.contrib.split_real_and_imaginary`` of optax 0.2.8 (state layout
  and numbers bitwise, ``tests/contrib/test_complex_valued.py``); unlike
  optax, ``inner`` is checked when it is built.

  Args:
    inner: the transform that runs on the real tree (ours or optax's).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> from jaxopt_notes.contrib import split_real_and_imaginary
    >>> f = lambda z: jnp.sum(jnp.abs(z - (1 + 2j)) ** 2)
    >>> tx = split_real_and_imaginary(jn.adam(0.1))
    >>> z = jnp.zeros(2, jnp.complex64)
    >>> state = tx.init(z)
    >>> for _ in range(100):
    ...   u, state = tx.update(jnp.conj(jax.grad(f)(z)), state, z)
    ...   z = jn.apply_updates(z, u)
    >>> print(round(float(f(z)), 3))  # from 10
    0.0
  """
  inner = base.as_transform(inner, "inner")

  def init_fn(params):
    return SplitRealAndImaginaryState(inner.init(jax.tree.map(_split, params)))

  def update_fn(updates, state, params=None):
    split_updates = jax.tree.map(_split, updates)
    split_params = jax.tree.map(_split, params)
    new_updates, inner_state = inner.update(split_updates, state.inner_state, split_params)
    return jax.tree.map(_merge, new_updates, is_leaf=_is_pair), SplitRealAndImaginaryState(inner_state)

  return base.GradientTransformation(init_fn, update_fn)
