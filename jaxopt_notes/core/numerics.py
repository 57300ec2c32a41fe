r"""Numerics the optimizers lean on: safe norms, parameter averages, matrix powers.

* :func:`safe_norm`, :func:`safe_root_mean_squares`: a norm floored at a
  minimum, whose gradient stays finite at zero (``max(||x||, m)`` alone has a
  NaN gradient there);
* :func:`incremental_update` (Polyak averaging, the notes' exponentially
  weighted average of notes 004 applied to the params) and
  :func:`periodic_update` (a slow copy refreshed every ``K`` steps);
* :func:`power_iteration` (the largest eigenvalue: notes 002's curvature
  ``lambda_max`` that caps gradient descent's step) and
  :func:`matrix_inverse_pth_root` (``A^{-1/p}``, the preconditioner of
  Shampoo-type second-order methods, notes 002);
* :func:`multi_normal`, a diagonal Gaussian parameterised by its log-scale.

Same names, signatures and numbers as optax 0.2.8's ``optax.safe_norm``,
``optax.incremental_update``, ... (``safe_increment`` is in
:mod:`jaxopt_notes.core.tree`). Deliberate differences, each in its
docstring: arguments are checked, and :func:`matrix_inverse_pth_root` is
exact for every integer ``p`` where optax's is only for 1, 2, 4 and 8.

May import: :mod:`jaxopt_notes.core`.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import jax.scipy.stats.norm as _normal
from jax import lax

from jaxopt_notes.core import tree_math, validation
from jaxopt_notes.core.tree import abs_sq, tree_map_checked

__all__ = [
    "MultiNormalDiagFromLogScale",
    "incremental_update",
    "matrix_inverse_pth_root",
    "multi_normal",
    "periodic_update",
    "power_iteration",
    "safe_norm",
    "safe_root_mean_squares",
]


def safe_norm(
    x: jax.typing.ArrayLike,
    min_norm: jax.typing.ArrayLike,
    ord: Optional[Union[int, float, str]] = None,
    axis: Union[None, tuple[int, ...], int] = None,
    keepdims: bool = False,
) -> jax.Array:
  r"""``max(||x||, min_norm)`` whose gradient is 0, not NaN, where the norm is below the floor.

  .. math:: \|x\|_{\text{safe}} = \max\big(\|x\|_{\text{ord}},\ m\big)

  Where :math:`\|x\| \le m` the norm is taken of ones instead of ``x``, so
  the branch that is not selected has a finite gradient (``jnp.where``
  differentiates both). ``ord``, ``axis`` and ``keepdims`` are
  ``jnp.linalg.norm``'s. Used by normalized and clipped updates, e.g. the
  update-to-weight ratios of LARS/LAMB (You et al., 2017, arXiv:1708.03888).
  Same as ``optax.safe_norm``.

  Args:
    x: an array.
    min_norm: the floor :math:`m`.
    ord: the norm's order (default ``None``: 2-norm, Frobenius for matrices).
    axis: axes to reduce (default ``None``: all).
    keepdims: keep the reduced axes with size 1 (default ``False``).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.safe_norm(jnp.array([3.0, 4.0]), 1.0), jax.grad(lambda x: jn.safe_norm(x, 1.0))(jnp.zeros(2))
    (Array(5., dtype=float32), Array([0., 0.], dtype=float32))
  """
  kept = jnp.linalg.norm(x, ord=ord, axis=axis, keepdims=True)
  floored = kept <= min_norm
  x = jnp.where(floored, jnp.ones_like(x), x)
  plain = kept if keepdims else jnp.squeeze(kept, axis=axis)
  return jnp.where(plain <= min_norm, min_norm, jnp.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims))


def safe_root_mean_squares(x: jax.typing.ArrayLike, min_rms: jax.typing.ArrayLike) -> jax.Array:
  r"""``max(sqrt(mean |x|^2), min_rms)`` with a finite gradient below the floor.

  .. math:: \text{rms}_{\text{safe}}(x) = \max\Big(\sqrt{\tfrac1n \textstyle\sum_i |x_i|^2},\ m\Big)

  The RMS of notes 004's RMSProp, over a whole array; Adafactor's update
  clipping divides by it (Shazeer & Stern, 2018, arXiv:1804.04235). Same as
  ``optax.safe_root_mean_squares`` (which takes arrays only; here anything
  ``jnp.asarray`` takes).

  Args:
    x: an array (complex allowed).
    min_rms: the floor :math:`m`.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.safe_root_mean_squares(jnp.array([1.0, -1.0, 1.0, -1.0]), 0.1)
    Array(1., dtype=float32)
  """
  x = jnp.asarray(x)
  rms = jnp.sqrt(jnp.mean(abs_sq(x)))
  x = jnp.where(rms <= min_rms, jnp.ones_like(x), x)
  return jnp.where(rms <= min_rms, min_rms, jnp.sqrt(jnp.mean(abs_sq(x))))


def incremental_update(new_tensors: Any, old_tensors: Any, step_size: jax.typing.ArrayLike) -> Any:
  r"""Polyak averaging: one step of an exponential moving average of the params.

  .. math:: \bar\theta_t = \tau\, \theta_t + (1 - \tau)\, \bar\theta_{t-1}

  with :math:`\tau` = ``step_size``: notes 004's ``V_t = beta V_{t-1} +
  (1 - beta) theta_t`` with ``beta = 1 - tau``, applied to the params (an
  evaluation copy, or the target network of soft-updated RL). ``None``
  leaves stay ``None``. Polyak & Juditsky, "Acceleration of stochastic
  approximation by averaging", SIAM J. Control Optim., 1992. Same as
  ``optax.incremental_update``, with an error naming the first differing
  path when the trees disagree.

  Args:
    new_tensors: the latest params.
    old_tensors: the running average, structured like ``new_tensors``.
    step_size: :math:`\tau` (1: copy the new params, 0: keep the average).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> jn.incremental_update({"w": jnp.array([1.0])}, {"w": jnp.array([0.0])}, 0.1)
    {'w': Array([0.1], dtype=float32)}
  """
  return tree_map_checked(
      lambda new, old: None if new is None else step_size * new + (1.0 - step_size) * old,
      new_tensors, old_tensors, names=("new_tensors", "old_tensors"), is_leaf=lambda x: x is None,
  )


def periodic_update(
    new_tensors: Any,
    old_tensors: Any,
    steps: jax.typing.ArrayLike,
    update_period: jax.typing.ArrayLike,
) -> Any:
  r"""A slow copy of the params, replaced by the new ones every ``update_period`` steps.

  .. math:: \bar\theta_t = \theta_t \ \text{if}\ t \bmod K = 0, \ \text{else}\ \bar\theta_{t-1}

  The hard-updated target network of DQN (Mnih et al., "Human-level control
  through deep reinforcement learning", Nature 2015) and the slow weights
  of self-supervision (Grill et al., BYOL, 2020, arXiv:2006.07733). A
  ``lax.cond``, so it runs under ``jit`` with a traced ``steps``. Same as
  ``optax.periodic_update``; here a concrete ``update_period`` must be
  positive (optax takes ``steps mod 0``).

  Args:
    new_tensors: the latest params.
    old_tensors: the slow copy, structured like ``new_tensors``.
    steps: the step number :math:`t`.
    update_period: :math:`K`, in steps.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> new, old = {"w": jnp.ones(1)}, {"w": jnp.zeros(1)}
    >>> jn.periodic_update(new, old, 10, 5)["w"], jn.periodic_update(new, old, 11, 5)["w"]
    (Array([1.], dtype=float32), Array([0.], dtype=float32))
  """
  validation.check_steps("update_period", update_period)
  return lax.cond(jnp.mod(steps, update_period) == 0, lambda _: new_tensors, lambda _: old_tensors, None)


def _normalized(tree: Any) -> Any:
  return tree_math.tree_scale(1.0 / tree_math.tree_norm(tree), tree)


def power_iteration(
    matrix: Union[jax.typing.ArrayLike, Callable[[Any], Any]],
    *,
    v0: Optional[Any] = None,
    num_iters: jax.typing.ArrayLike = 100,
    error_tolerance: jax.typing.ArrayLike = 1e-6,
    precision: lax.Precision = lax.Precision.HIGHEST,
    key: Optional[jax.Array] = None,
) -> tuple[jax.typing.ArrayLike, Any]:
  r"""The dominant eigenvalue and its eigenvector, by repeated multiplication.

  .. math::
     v_{k+1} = \frac{A v_k}{\|A v_k\|}, \qquad \lambda_{k} = \langle v_k, A v_k \rangle

  stopping after ``num_iters`` steps or once the residual
  :math:`\|A v - \lambda v\| / |\lambda|` is below ``error_tolerance``.
  ``matrix`` is a square array or a matrix-vector product ``v -> A v`` over
  pytrees (a Hessian-vector product, say): notes 002's largest curvature
  :math:`\lambda_{\max}`, which bounds gradient descent's stable step
  ``eta < 2 / lambda_max``. von Mises & Pollaczek-Geiringer, "Praktische
  Verfahren der Gleichungsauflösung", ZAMM 1929. Same as
  ``optax.power_iteration`` (same start, ``uniform(key, [-1, 1])`` with
  ``key = PRNGKey(0)`` by default, same numbers); here a non-square array
  ``matrix`` raises.

  Args:
    matrix: an ``(n, n)`` array or a callable ``v -> A v``.
    v0: the start vector (required for a callable; default ``None``: random).
    num_iters: the most iterations (default 100).
    error_tolerance: the relative residual that stops it (default 1e-6).
    precision: precision of the array products (default ``HIGHEST``).
    key: PRNG key for the random start (default ``None``: ``PRNGKey(0)``).

  Returns:
    ``(eigenvalue, eigenvector)``, the vector of norm 1.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> eig, vec = jn.power_iteration(jnp.diag(jnp.array([1.0, 10.0, 3.0])))
    >>> round(float(eig), 4), jnp.round(jnp.abs(vec), 4)
    (10.0, Array([0., 1., 0.], dtype=float32))
  """
  validation.check_that("num_iters", num_iters, lambda v: v >= 0, "a non-negative number of iterations")
  validation.check_non_negative("error_tolerance", error_tolerance)
  if callable(matrix):
    if v0 is None:
      raise ValueError("`v0` must be given when `matrix` is a callable: its input's pytree is unknown")
    matvec = matrix
  else:
    matrix = jnp.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
      raise ValueError(f"`matrix` must be a square 2-D array or a callable; got shape {matrix.shape}")
    matvec = lambda v: jnp.matmul(matrix, v, precision=precision)
    if v0 is None:
      key = jax.random.PRNGKey(0) if key is None else key
      v0 = jax.random.uniform(key, shape=matrix.shape[-1:], dtype=matrix.dtype, minval=-1.0, maxval=1.0)

  def unconverged(carry):
    vec, image, eig, step = carry
    residual = tree_math.tree_norm(tree_math.tree_sub(image, tree_math.tree_scale(eig, vec)))
    return ~(jnp.abs(residual / eig) < error_tolerance) & (step < num_iters)

  def iterate(carry):
    _, image, _, step = carry
    vec = _normalized(image)
    image = matvec(vec)
    return vec, image, tree_math.tree_vdot(vec, image), step + 1

  v0 = _normalized(v0)
  # The eigenvalue starts at 0, so the first residual is infinite (or NaN): not converged.
  start = (v0, matvec(v0), jnp.asarray(0.0), jnp.asarray(0))
  _, image, eig, _ = lax.while_loop(unconverged, iterate, start)
  return eig, _normalized(image)


def _matrix_power(mat: jax.Array, p: int, precision: lax.Precision) -> jax.Array:
  """``mat^p`` by repeated squaring (for p = 2^k the same products as optax's unrolled ones)."""
  result: Any = None
  square = mat
  while True:
    p, bit = divmod(p, 2)
    if bit:
      result = square if result is None else jnp.matmul(result, square, precision=precision)
    if not p:
      return result
    square = jnp.matmul(square, square, precision=precision)


def matrix_inverse_pth_root(
    matrix: jax.typing.ArrayLike,
    p: jax.typing.ArrayLike,
    num_iters: jax.typing.ArrayLike = 100,
    ridge_epsilon: jax.typing.ArrayLike = 1e-6,
    error_tolerance: jax.typing.ArrayLike = 1e-6,
    precision: lax.Precision = lax.Precision.HIGHEST,
) -> tuple[jax.Array, Any]:
  r"""``A^{-1/p}`` of a symmetric positive semi-definite ``A``, by coupled Newton iterations.

  With :math:`\alpha = -1/p`, :math:`\hat A = A + \epsilon \lambda_{\max} I`
  and :math:`z = (1 + p) / (2 \|\hat A\|_F)`, start from
  :math:`M_0 = z \hat A`, :math:`H_0 = z^{1/p} I` and iterate

  .. math::
     X_k = (1 - \alpha) I + \alpha M_k, \qquad
     M_{k+1} = X_k^{\,p} M_k, \qquad H_{k+1} = H_k X_k

  until :math:`\max|M_k - I|` is below ``error_tolerance`` (or grows by
  more than 20%, keeping the previous :math:`H`); then :math:`H \approx
  \hat A^{-1/p}`. The preconditioner of Shampoo (Gupta, Koren & Singer,
  2018, arXiv:1802.09568; Anil et al., 2020, arXiv:2002.09018), a
  second-order method of notes 002. Higham, *Functions of Matrices*, SIAM
  2008, eq. 7.18. The iteration runs in float32, as optax's.

  Same as ``optax.matrix_inverse_pth_root`` for ``p`` in 1, 2, 4, 8 (same
  numbers). Deliberate difference: optax computes :math:`X^p` only for
  those ``p`` (``p = 3`` silently uses :math:`X^2`, ``p = 16`` uses
  :math:`X^8`, so its result is far from :math:`A^{-1/p}`); here a concrete
  ``p`` is any integer ``>= 1`` and :math:`X^p` exact. A traced ``p`` takes
  optax's route.

  Args:
    matrix: the ``(n, n)`` symmetric PSD matrix :math:`A`.
    p: the root, an integer ``>= 1``.
    num_iters: the most iterations (default 100).
    ridge_epsilon: :math:`\epsilon`, relative to :math:`\lambda_{\max}` (default 1e-6).
    error_tolerance: the stopping error (default 1e-6).
    precision: precision of the matrix products (default ``HIGHEST``).

  Returns:
    ``(A^{-1/p}, error)``, the error :math:`\max|M - I|` at the end.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> root, _ = jn.matrix_inverse_pth_root(jnp.diag(jnp.array([4.0, 16.0])), 2, ridge_epsilon=0.0)
    >>> jnp.round(jnp.diag(root), 4)
    Array([0.5 , 0.25], dtype=float32)
  """
  validation.check_positive_int("p", p)
  validation.check_that("num_iters", num_iters, lambda v: v >= 0, "a non-negative number of iterations")
  validation.check_non_negative("ridge_epsilon", ridge_epsilon)
  validation.check_non_negative("error_tolerance", error_tolerance)
  matrix = jnp.asarray(matrix)
  if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
    raise ValueError(f"`matrix` must be a square 2-D array; got shape {matrix.shape}")
  size = matrix.shape[0]
  alpha = jnp.asarray(-1.0 / p, jnp.float32)
  identity = jnp.eye(size, dtype=jnp.float32)
  max_ev, _ = power_iteration(matrix=matrix, num_iters=100, error_tolerance=1e-6, precision=precision)
  ridge = ridge_epsilon * jnp.maximum(max_ev, 1e-16)
  if size == 1:
    return (matrix + ridge) ** alpha, 0

  if isinstance(p, jax.core.Tracer):
    # Unknown p: optax's switch over X, X^2, X^4, X^8 by round(log2 p).
    powers = [functools.partial(_matrix_power, p=2**k, precision=precision) for k in range(4)]
    power = lambda x: lax.switch(jnp.asarray(jnp.round(jnp.log2(p)), jnp.int32), powers, x)
  else:
    power = functools.partial(_matrix_power, p=int(p), precision=precision)  # type: ignore[arg-type]

  def keep_going(carry):
    step, _, _, _, error, improving = carry
    return (step < num_iters) & (error > error_tolerance) & improving

  def newton_step(carry):
    step, mat_m, mat_h, _, error, _ = carry
    x = (1 - alpha) * identity + alpha * mat_m
    new_m = jnp.matmul(power(x), mat_m, precision=precision)
    new_h = jnp.matmul(mat_h, x, precision=precision)
    new_error = jnp.max(jnp.abs(new_m - identity))
    # The error may rise for a step before it falls; more than 20% is divergence.
    return step + 1, new_m, new_h, mat_h, new_error, new_error < error * 1.2

  damped = matrix + ridge * identity
  z = (1 + p) / (2 * jnp.linalg.norm(damped))
  m0 = damped * z
  h0 = identity * jnp.power(z, 1.0 / p)
  start = (0, m0, h0, h0, jnp.max(jnp.abs(m0 - identity)), True)
  _, mat_m, mat_h, old_h, _, improving = lax.while_loop(keep_going, newton_step, start)
  error = jnp.max(jnp.abs(mat_m - identity))
  took = jnp.asarray(improving, old_h.dtype)
  return jnp.asarray(took * mat_h + (1 - took) * old_h, matrix.dtype), error


class MultiNormalDiagFromLogScale:
  r"""A Gaussian with independent coordinates, :math:`\mathcal N(\mu, \mathrm{diag}(e^{2 s}))`.

  Parameterised by the mean :math:`\mu` (``loc``) and the log of the
  standard deviation :math:`s` (``log_scale``), so both are unconstrained
  (the search distribution of evolution strategies). Same methods as
  optax's class of this name: ``sample(shape, key)``, ``log_prob(x)``
  (summed over the parameter axes), ``log_scale`` and ``params``.
  """

  def __init__(self, loc: jax.typing.ArrayLike, log_scale: jax.typing.ArrayLike):
    self._log_scale = jnp.asarray(log_scale)
    self._scale = jnp.exp(log_scale)
    self._mean = jnp.asarray(loc)
    self._param_shape = lax.broadcast_shapes(self._mean.shape, self._scale.shape)

  def sample(self, shape: Sequence[int], key: jax.Array) -> jax.Array:
    """``shape`` batches of draws: :math:`\\mu + e^{s} \\xi`, :math:`\\xi \\sim \\mathcal N(0, I)`."""
    draws = jax.random.normal(key, shape=tuple(shape) + self._param_shape)
    return draws * self._scale + self._mean

  def log_prob(self, x: jax.typing.ArrayLike) -> jax.Array:
    """The log density of ``x``, summed over the parameter axes (the trailing ones)."""
    per_coordinate = _normal.logpdf(x, loc=self._mean, scale=self._scale)
    return jnp.sum(per_coordinate, axis=[-(i + 1) for i in range(len(self._param_shape))])

  @property
  def log_scale(self) -> jax.Array:
    return self._log_scale

  @property
  def params(self) -> Sequence[jax.Array]:
    return [self._mean, self._log_scale]


def multi_normal(loc: jax.typing.ArrayLike, log_scale: jax.typing.ArrayLike) -> MultiNormalDiagFromLogScale:
  r"""The diagonal Gaussian :math:`\mathcal N(\mu, \mathrm{diag}(e^{2 s}))` with mean ``loc`` and log-std ``log_scale``.

  ``log_prob`` sums :math:`-\tfrac12 ((x - \mu) / e^{s})^2 - s - \tfrac12
  \log 2\pi` over the coordinates. The search distribution of natural
  evolution strategies (Wierstra et al., JMLR 2014, arXiv:1106.4487).
  Same as ``optax.multi_normal``.

  Args:
    loc: the mean :math:`\mu`.
    log_scale: :math:`s = \log \sigma`, broadcasting against ``loc``.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> dist = jn.multi_normal(jnp.zeros(2), jnp.zeros(2))
    >>> dist.sample((3,), jax.random.key(0)).shape, dist.log_prob(jnp.zeros(2))
    ((3, 2), Array(-1.837877, dtype=float32))
  """
  return MultiNormalDiagFromLogScale(loc=loc, log_scale=log_scale)
