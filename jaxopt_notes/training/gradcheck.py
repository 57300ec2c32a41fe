"""Gradient check: ``jax.grad`` against a finite-difference gradient.

Note 000 computes the numeric gradient one coordinate at a time,
``(L(w + h e_i) - L(w)) / h``, calls it slow and approximate, and uses it
only to check the analytic gradient ("gradient check"). That check is what
:func:`gradient_check` does, for every leaf of a parameter pytree, with two
changes that make it trustworthy:

* the central difference ``(L(w + h e_i) - L(w - h e_i)) / 2h``, whose error
  is ``O(h^2)`` instead of the one-sided form's ``O(h)``: with ``h = 1e-3``
  that is about ``1e-6`` instead of ``1e-3`` of the curvature, far below the
  tolerance, so a failure means a wrong gradient rather than a crude probe;
* float64 by default, since in float32 the rounding error of the two loss
  values divided by ``2h`` (about ``1e-7 |L| / 1e-3``) swamps small gradients.

All coordinates of all leaves are probed in one compiled call, ``vmap``-ed
over coordinates (``lax.map`` in chunks, to bound memory), not in a Python
loop.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.core import validation

__all__ = ["GradientCheckError", "gradient_check", "MAX_FULL_COORDS"]

MAX_FULL_COORDS = 100_000


class GradientCheckError(AssertionError):
  """A gradient that disagrees with its finite-difference estimate.

  A subclass of ``AssertionError``: a failed gradient check is a failed
  assertion about the code under test (``pytest`` reports it as such, and
  ``pytest.raises(AssertionError)`` catches it), not a bad argument.

  Attributes:
    path: the worst leaf's path, e.g. ``"params['dense']['w']"``.
    index: the worst coordinate in that leaf (a tuple).
    analytic: ``jax.grad``'s value there.
    numeric: the central difference there.
    errors: the per-leaf errors, as :func:`gradient_check` would return them.
  """

  def __init__(self, message: str, *, path: str, index: tuple, analytic: float,
               numeric: float, errors: Any):
    super().__init__(message)
    self.path, self.index, self.errors = path, index, errors
    self.analytic, self.numeric = analytic, numeric


def _probe(f, leaves, treedef, coords, eps, rtol, atol, chunk_size):
  """Analytic and central-difference gradients of every leaf at ``coords[j]``.

  One compiled call for all the leaves: compiling dominates the run time of
  a check on a small model, and one larger program compiles faster than one
  program per leaf.
  """

  def loss_of_leaf(j, x):
    new = list(leaves)
    new[j] = x.reshape(leaves[j].shape)
    return f(jax.tree.unflatten(treedef, new))

  def leaf_probe(j, idx):
    flat = leaves[j].reshape(-1)
    if idx.size == 0:
      return flat, flat, flat

    def central(i):
      step = jnp.zeros_like(flat).at[i].set(eps)
      up, down = flat + step, flat - step
      # The step actually taken, after rounding w + h and w - h, not 2h.
      return (loss_of_leaf(j, up) - loss_of_leaf(j, down)) / (up[i] - down[i])

    analytic = jax.grad(functools.partial(loss_of_leaf, j))(flat)[idx]
    numeric = jax.lax.map(central, idx, batch_size=min(chunk_size, idx.size))
    scale = jnp.maximum(jnp.abs(analytic), jnp.abs(numeric)) + atol / rtol
    err = jnp.abs(analytic - numeric) / scale
    return analytic, numeric, err

  probe = jax.jit(lambda coords: [leaf_probe(j, idx) for j, idx in enumerate(coords)])
  return jax.device_get(probe(coords))


def gradient_check(
    f: Callable[[Any], jax.Array],
    params: Any,
    *,
    eps: float = 1e-3,
    rtol: float = 1e-3,
    atol: float = 1e-5,
    dtype: Optional[Any] = jnp.float64,
    max_coords: Optional[int] = None,
    key: Optional[jax.Array] = None,
    chunk_size: int = 256,
) -> Any:
  r"""Compares ``jax.grad(f)(params)`` with central differences, leaf by leaf.

  .. math::
     n_i = \frac{f(w + h e_i) - f(w - h e_i)}{2h},\qquad
     r_i = \frac{|a_i - n_i|}{\max(|a_i|, |n_i|) + \mathrm{atol}/\mathrm{rtol}}

  where ``a = jax.grad(f)(w)``. The check passes when ``r_i <= rtol`` for
  every probed coordinate, which is the same as
  ``|a_i - n_i| <= atol + rtol * max(|a_i|, |n_i|)``: a relative error, with
  gradients smaller than ``atol / rtol`` judged by their absolute error.

  Note 000's gradient check, with the central difference instead of the
  note's one-sided ``(L(w + h e_i) - L(w)) / h``: its truncation error is
  ``O(h^2)`` rather than ``O(h)``, for twice the evaluations (see the module
  docstring). Each coordinate costs two evaluations of ``f``; all the
  coordinates run in one compiled call.

  Not for use under ``jit``: it returns Python floats and raises.

  Args:
    f: ``f(params) -> scalar``, jit-safe (close over the data batch).
    params: the point to check at; a pytree of float arrays.
    eps: the step ``h`` (default ``1e-3``).
    rtol: relative tolerance (default ``1e-3``), ``> 0``.
    atol: absolute tolerance (default ``1e-5``).
    dtype: dtype to evaluate in. The default ``jnp.float64`` casts the params
      and runs inside ``jax.enable_x64(True)``, whatever the global setting;
      ``None`` keeps the params' own dtypes (in float32 use about
      ``eps=1e-2, rtol=1e-2``: rounding makes the default tolerances fail on
      correct gradients).
    max_coords: probe at most this many coordinates per leaf, drawn without
      replacement from ``key`` (default ``None``: all of them; leaves with
      more than ``MAX_FULL_COORDS`` = 100,000 then raise instead of running
      for hours).
    key: ``jax.random`` key for ``max_coords`` (default ``key(0)``).
    chunk_size: coordinates evaluated together by ``vmap`` (default 256);
      lower it if ``f`` is memory-hungry.

  Returns:
    A pytree shaped like ``params`` holding, per leaf, the largest ``r_i``
    (a Python float).

  Raises:
    GradientCheckError: when some ``r_i > rtol``, naming the leaf path, the
      worst coordinate and both values, and listing every failing leaf.
    ValueError: for a leaf too large to probe fully, or bad arguments.
    TypeError: for non-float leaves or an ``f`` that is not scalar-valued.

  Reference: CS231n, "Gradient checks"; Nocedal & Wright, *Numerical
  Optimization*, sec. 8.1 (central differences).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> params = {"w": jnp.array([1.0, -2.0, 0.5])}
    >>> errors = jn.gradient_check(lambda p: jnp.sum(jnp.sin(p["w"]) ** 2), params)
    >>> errors["w"] < 1e-5
    True
    >>> @jax.custom_vjp
    ... def square(x):
    ...   return x ** 2
    >>> square.defvjp(lambda x: (x ** 2, x), lambda x, g: (g * x,))  # a backward pass missing its 2
    >>> try:
    ...   jn.gradient_check(lambda p: jnp.sum(square(p["w"])), params)
    ... except jn.GradientCheckError as err:
    ...   print(err.path, err.index, err.analytic, round(err.numeric, 4))
    params['w'] (1,) -2.0 -4.0
  """
  validation.check_callable("f", f)
  tree_lib.check_params_tree(params)
  for name, value in (("eps", eps), ("rtol", rtol)):
    validation.check_non_negative(name, value)
    if float(value) == 0.0:
      raise ValueError(f"`{name}` must be > 0; got {value!r}")
  validation.check_non_negative("atol", atol)
  validation.check_positive_int("chunk_size", chunk_size)
  if max_coords is not None:
    validation.check_positive_int("max_coords", max_coords)
  if dtype is not None:
    # Read the width before canonicalizing: outside x64 mode float64 -> float32.
    validation.check_dtype("dtype", dtype)
    dtype = np.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
      raise TypeError(f"`dtype` must be a real floating dtype or None; got {dtype}")
  x64 = dtype is not None and dtype.itemsize == 8
  with jax.enable_x64(True) if x64 else contextlib.nullcontext():
    dtype = None if dtype is None else jax.dtypes.canonicalize_dtype(dtype)
    return _check(f, params, eps, rtol, atol, dtype, max_coords, key, chunk_size)


def _check(f, params, eps, rtol, atol, dtype, max_coords, key, chunk_size):
  with_paths, treedef = jax.tree_util.tree_flatten_with_path(params)
  paths = ["params" + jax.tree_util.keystr(p) for p, _ in with_paths]
  leaves = []
  for where, (_, leaf) in zip(paths, with_paths):
    leaf = jnp.asarray(leaf)
    if not jnp.issubdtype(leaf.dtype, jnp.floating):
      raise TypeError(f"gradient_check needs real float leaves; {where} has dtype {leaf.dtype}")
    leaves.append(leaf if dtype is None else leaf.astype(dtype))
    if max_coords is None and leaf.size > MAX_FULL_COORDS:
      raise ValueError(
          f"{where} has {leaf.size:,} coordinates; probing each costs two "
          f"evaluations of f. Pass max_coords=k (e.g. 1000) to check k random "
          f"coordinates per leaf (the limit without it is {MAX_FULL_COORDS:,})"
      )
  out = jax.eval_shape(f, jax.tree.unflatten(treedef, leaves))
  if not (hasattr(out, "shape") and out.shape == () and jnp.issubdtype(out.dtype, jnp.floating)):
    raise TypeError(f"`f` must return a real scalar (a loss); it returns {out}")
  key = jax.random.key(0) if key is None else key

  coords = []
  for j, leaf in enumerate(leaves):
    if max_coords is not None and leaf.size > max_coords:
      idx = jax.random.choice(jax.random.fold_in(key, j), leaf.size, (max_coords,), replace=False)
      coords.append(jnp.sort(idx))
    else:
      coords.append(jnp.arange(leaf.size))
  probed = _probe(f, leaves, treedef, coords, eps, rtol, atol, chunk_size)

  errors, failures = [], []
  for where, leaf, idx, (analytic, numeric, err) in zip(paths, leaves, coords, probed):
    if leaf.size == 0:
      errors.append(0.0)
      continue
    # NaN compares false: count a NaN on either side as the worst error.
    err = np.where(np.isnan(err), np.inf, err)
    k = int(np.argmax(err))
    errors.append(float(err[k]))
    if err[k] > rtol:
      index = tuple(int(i) for i in np.unravel_index(int(idx[k]), leaf.shape))
      failures.append((float(err[k]), where, index, float(analytic[k]), float(numeric[k]),
                       int(np.sum(err > rtol)), len(err)))

  result = jax.tree.unflatten(treedef, errors)
  if failures:
    failures.sort(key=lambda t: -t[0])
    worst, where, index, a, n, _, _ = failures[0]
    lines = [
        f"gradient check failed at {where}{list(index)}: jax.grad gives {a:.6g}, "
        f"the central difference gives {n:.6g} (error {worst:.3g} > rtol {rtol:g}; "
        f"atol {atol:g}, eps {eps:g})."
    ]
    lines += [f"  {w}: {b} of {p} probed coordinates off, worst error {e:.3g} at {list(i)}"
              for e, w, i, _, _, b, p in failures]
    raise GradientCheckError(
        "\n".join(lines), path=where, index=index, analytic=a, numeric=n, errors=result
    )
  return result
