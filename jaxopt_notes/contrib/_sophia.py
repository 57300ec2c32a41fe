"""Sophia: Adam-like momentum divided by a clipped, periodically refreshed
estimate of the Hessian diagonal, and Hutchinson's estimator of that diagonal.

The estimator is a transform of its own (``hessian_diagonal_fn``), so any
``(init, update)`` pair that returns a diagonal can take its place; extra
keyword arguments given to Sophia's ``update`` (``obj_fn=`` for Hutchinson's)
are passed on to it.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.transforms import scaling

__all__ = [
    "HutchinsonState", "SophiaState", "hutchinson_estimator_diag_hessian", "scale_by_sophia", "sophia",
]


class HutchinsonState(NamedTuple):
  """State of :func:`hutchinson_estimator_diag_hessian`."""

  key: jax.Array  # the PRNG key the next draw splits (raw uint32 or typed, as given)


def _check_key(name: str, key: Any) -> None:
  dtype = getattr(key, "dtype", None)
  if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
    if np.ndim(key) == 0:
      return
  elif dtype is not None and np.dtype(dtype) == np.uint32 and np.ndim(key) == 1:
    return
  raise TypeError(
      f"`{name}` must be None or one PRNG key (jax.random.key(seed) or "
      f"jax.random.PRNGKey(seed)); got {key!r}"
  )


def hutchinson_estimator_diag_hessian(random_seed: Optional[jax.Array] = None) -> base.GradientTransformationExtraArgs:
  r"""Hutchinson's unbiased estimate of the Hessian diagonal of ``obj_fn`` at ``params``.

  .. math::
     z \sim \{-1, +1\}^d \text{ uniformly}, \qquad
     \widehat{\operatorname{diag}(H)} = z \odot (H z), \qquad
     \mathbb{E}\big[z \odot (H z)\big] = \operatorname{diag}(H)

  with :math:`H z` a Hessian-vector product (forward over reverse mode), so
  :math:`H` is never formed. Hutchinson, "A stochastic estimator of the
  trace of the influence matrix for Laplacian smoothing splines",
  Communications in Statistics - Simulation and Computation, 1990; used as
  Sophia-H by Liu et al. (arXiv:2305.14342). Unbiased but noisy: exact for a
  diagonal Hessian, while off-diagonal entries add :math:`\sum_{j \ne i}
  H_{ij} z_i z_j`.

  ``update(updates, state, params, obj_fn=f)`` ignores ``updates``, needs
  ``params`` and ``obj_fn`` (``params -> scalar loss``) and drops any other
  keyword argument. Each call splits the key in the state and draws one sign
  per entry from the new subkey, in float32 then cast to the lowest dtype of
  the params, exactly as ``optax.contrib.hutchinson_estimator_diag_hessian``
  does, so the draws (and the estimates) are bitwise optax's for the same
  key.

  Args:
    random_seed: the first PRNG key, raw (``jax.random.PRNGKey``) or typed
      (``jax.random.key``); ``None`` (default): ``jax.random.PRNGKey(0)``,
      created at ``init``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxopt_notes.contrib import hutchinson_estimator_diag_hessian
    >>> f = lambda x: jnp.sum(jnp.array([1.0, 2.0, 3.0]) * x ** 2)  # diag(H) = 2, 4, 6
    >>> est = hutchinson_estimator_diag_hessian()
    >>> x = jnp.ones(3)
    >>> diag, state = est.update(x, est.init(x), x, obj_fn=f)
    >>> print(diag)  # a diagonal Hessian is recovered exactly
    [2. 4. 6.]
  """
  if random_seed is not None:
    _check_key("random_seed", random_seed)

  def init_fn(params):
    del params
    return HutchinsonState(key=jax.random.PRNGKey(0) if random_seed is None else random_seed)

  def update_fn(updates, state, params=None, obj_fn=None, **extra_args):
    del updates, extra_args
    if params is None:
      raise ValueError(base.NO_PARAMS_MSG)
    if obj_fn is None:
      raise ValueError(
          "hutchinson_estimator_diag_hessian's `update` needs `obj_fn=` (params -> scalar loss); got None"
      )
    key, subkey = jax.random.split(state.key)
    # Drawn in float32 whatever the params: the same bits as optax's draw.
    signs = tree_lib.random_like(subkey, params, jax.random.rademacher, dtype=jnp.float32)
    signs = tree_lib.cast(signs, tree_lib.dtype(params, "lowest"))
    hvp = jax.jvp(jax.grad(obj_fn), (params,), (signs,))[1]
    return jax.tree.map(lambda h, z: h * z, hvp, signs), HutchinsonState(key=key)

  return base.GradientTransformationExtraArgs(init_fn, update_fn)


# One shared default, as optax's (built once, when its module loads); it
# holds no state itself, so sharing it is harmless.
_DEFAULT_HESSIAN_FN = hutchinson_estimator_diag_hessian()


class SophiaState(NamedTuple):
  """State of :func:`scale_by_sophia` (the first entry of :func:`sophia`'s chain state)."""

  count: jax.Array  # type: ignore[assignment]  # int32 scalar: updates so far (named as optax's)
  mu: base.Updates  # m: EMA of the gradients (in mu_dtype)
  nu: base.Updates  # h: EMA of the Hessian-diagonal estimates, refreshed every update_interval steps
  hessian_fn_state: Any  # the state of hessian_diagonal_fn


def _check_sophia_args(b1, b2, eps, gamma, clip_threshold, update_interval, verbose, every_n) -> None:
  validation.check_unit_interval("b1", b1)
  validation.check_unit_interval("b2", b2)
  validation.check_non_negative("eps", eps)
  validation.check_positive("gamma", gamma)
  if clip_threshold is not None:
    validation.check_positive("clip_threshold", clip_threshold)
  validation.check_positive_int("update_interval", update_interval)
  validation.check_bool("verbose", verbose)
  validation.check_that(
      "print_win_rate_every_n_steps", every_n,
      lambda v: np.issubdtype(v.dtype, np.integer) and v >= 0, "an integer >= 0",
  )


def _print_win_rate(updates, clip_threshold, count_inc, every_n) -> None:
  not_clipped = jax.tree.reduce(
      lambda x, y: x + y, jax.tree.map(lambda u: jnp.sum(jnp.abs(u) < clip_threshold), updates)
  )
  win_rate = not_clipped / tree_lib.size(updates)
  jax.lax.cond(
      count_inc % every_n == 0,
      lambda: jax.debug.print("Sophia optimizer win rate: {}", win_rate),
      lambda: None,
  )


def scale_by_sophia(
    b1: jax.typing.ArrayLike = 0.965,
    b2: jax.typing.ArrayLike = 0.99,
    eps: jax.typing.ArrayLike = 1e-8,
    gamma: jax.typing.ArrayLike = 0.01,
    clip_threshold: Optional[jax.typing.ArrayLike] = 1.0,
    update_interval: jax.typing.ArrayLike = 10,
    hessian_diagonal_fn: Union[
        base.GradientTransformation, base.GradientTransformationExtraArgs
    ] = _DEFAULT_HESSIAN_FN,
    mu_dtype: Optional[Any] = None,
    verbose: bool = False,
    print_win_rate_every_n_steps: jax.typing.ArrayLike = 0,
) -> base.GradientTransformationExtraArgs:
  r"""Sophia's scaling: bias-corrected momentum over a clipped Hessian-diagonal EMA.

  .. math::
     m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
     u_t = \operatorname{clip}\Big(\frac{m_t / (1 - \beta_1^t)}
       {\max(\gamma\, h_{t-1}, \epsilon)}, -\rho, \rho\Big),

  and, on steps :math:`t` with :math:`(t - 1) \bmod k = 0` (the first, then
  every ``update_interval`` :math:`= k`),
  :math:`h_t = \beta_2 h_{t-1} + (1 - \beta_2)\, \hat D_t` with
  :math:`\hat D_t` the output of ``hessian_diagonal_fn`` (else
  :math:`h_t = h_{t-1}`). The step uses the EMA *before* this step's refresh,
  so the first step divides by ``eps`` and is clipped. Liu, Li, Hall, Liang
  & Ma, "Sophia: A Scalable Stochastic Second-order Optimizer for Language
  Model Pre-training", ICLR 2024 (arXiv:2305.14342). Defaults: ``b1=0.965``,
  ``b2=0.99`` (per refresh: about 0.999 per step with ``k = 10``),
  ``eps=1e-8``, ``gamma=0.01``, ``clip_threshold`` :math:`\rho = 1`
  (``None``: no clipping), ``update_interval=10``, Hutchinson's estimator
  (Sophia-H). ``update(updates, state, params, **kwargs)`` needs ``params``
  and hands ``params`` and ``kwargs`` (``obj_fn=`` for the default) to the
  estimator. ``mu_dtype``: dtype of :math:`m` (default ``None``: the
  params'). ``verbose=True`` prints the share of unclipped entries (the
  "win rate", 0.1 to 0.5 per the authors) every
  ``print_win_rate_every_n_steps`` steps with ``jax.debug.print``; with 0
  (the default) it prints every step, as optax does (``count % 0`` is 0 in
  JAX).

  Same state layout, dtypes and numbers as ``optax.contrib.scale_by_sophia``
  (bitwise on the trajectory tests, jitted and op by op, float32 and
  float64, with the PRNG draws of the default estimator reproduced bit for
  bit); unlike optax, the arguments are checked when it is built.

  Args:
    b1: :math:`\beta_1 \in [0, 1)`, the momentum decay.
    b2: :math:`\beta_2 \in [0, 1)`, the Hessian-EMA decay per refresh.
    eps: :math:`\epsilon \ge 0`, the floor of the denominator.
    gamma: :math:`\gamma > 0`, the scale of the Hessian estimate.
    clip_threshold: :math:`\rho > 0` or ``None``.
    update_interval: :math:`k \ge 1`, steps between refreshes.
    hessian_diagonal_fn: the estimator, an ``(init, update)`` pair.
    mu_dtype: dtype of the momentum, or ``None``.
    verbose: print the win rate (default ``False``).
    print_win_rate_every_n_steps: integer ``>= 0`` (see above).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> from jaxopt_notes.contrib import scale_by_sophia
    >>> f = lambda x: jnp.sum(jnp.array([1.0, 2.0, 3.0]) * x ** 2)
    >>> tx = jn.chain(scale_by_sophia(update_interval=1), jn.scale(-0.05))
    >>> x = jnp.array([1.0, 2.0, 3.0])
    >>> state = tx.init(x)
    >>> @jax.jit  # one compiled step: the loop then runs in milliseconds
    ... def step(x, state):
    ...   u, state = tx.update(jax.grad(f)(x), state, x, obj_fn=f)
    ...   return jn.apply_updates(x, u), state
    >>> for _ in range(100):  # each step moves x by at most 0.05 (the clip)
    ...   x, state = step(x, state)
    >>> print(round(float(f(x)), 2))  # from 36
    0.71
  """
  _check_sophia_args(
      b1, b2, eps, gamma, clip_threshold, update_interval, verbose, print_win_rate_every_n_steps
  )
  mu_dtype = validation.check_dtype("mu_dtype", mu_dtype)
  hessian_fn = base.with_extra_args_support(base.as_transform(hessian_diagonal_fn, "hessian_diagonal_fn"))

  def init_fn(params):
    validation.check_float_params(params)
    return SophiaState(
        count=jnp.zeros([], jnp.int32),
        mu=tree_lib.zeros_like(params, dtype=mu_dtype),
        nu=tree_lib.zeros_like(params),
        hessian_fn_state=hessian_fn.init(params),
    )

  def update_fn(updates, state, params=None, **hess_fn_kwargs):
    if params is None:
      raise ValueError(base.NO_PARAMS_MSG)
    combine.check_updates_match_params(updates, params)
    grads = updates
    count_inc = tree_lib.safe_increment(state.count)
    mu = tree_lib.update_moment(grads, state.mu, b1, 1)
    mu_hat = tree_lib.bias_correction(mu, b1, count_inc)
    updates = jax.tree.map(lambda m, h: m / jnp.maximum(gamma * h, eps), mu_hat, state.nu)
    if clip_threshold is not None:
      if verbose:
        _print_win_rate(updates, clip_threshold, count_inc, print_win_rate_every_n_steps)
      updates = jax.tree.map(lambda u: jnp.clip(u, -clip_threshold, clip_threshold), updates)

    def refresh(hess_state, nu):
      diag, hess_state = hessian_fn.update(grads, hess_state, params=params, **hess_fn_kwargs)
      return hess_state, tree_lib.update_moment(diag, nu, b2, 1)

    # The refresh is keyed on the count before the increment: steps 1, k+1, ...
    hess_state, nu = jax.lax.cond(
        jnp.equal(state.count % update_interval, 0),
        refresh, lambda h, n: (h, n),
        state.hessian_fn_state, state.nu,
    )
    return updates, SophiaState(
        count=count_inc, mu=tree_lib.cast(mu, mu_dtype), nu=nu, hessian_fn_state=hess_state
    )

  return base.GradientTransformationExtraArgs(init_fn, update_fn)


def sophia(
    learning_rate: base.ScalarOrSchedule,
    b1: jax.typing.ArrayLike = 0.965,
    b2: jax.typing.ArrayLike = 0.99,
    eps: jax.typing.ArrayLike = 1e-8,
    weight_decay: jax.typing.ArrayLike = 1e-4,
    weight_decay_mask: Optional[Union[Any, Callable[[base.Params], Any]]] = None,
    gamma: jax.typing.ArrayLike = 0.01,
    clip_threshold: Optional[jax.typing.ArrayLike] = 1.0,
    update_interval: jax.typing.ArrayLike = 10,
    hessian_diagonal_fn: Union[
        base.GradientTransformation, base.GradientTransformationExtraArgs
    ] = _DEFAULT_HESSIAN_FN,
    mu_dtype: Optional[Any] = None,
    verbose: bool = False,
    print_win_rate_every_n_steps: jax.typing.ArrayLike = 0,
) -> base.GradientTransformationExtraArgs:
  r"""Sophia: clipped, Hessian-preconditioned momentum with decoupled weight decay.

  .. math::
     x_{t+1} = x_t - \eta_t\big(u_t + \lambda\, x_t\big)

  with :math:`u_t` the clipped ratio of :func:`scale_by_sophia` (momentum
  over :math:`\max(\gamma h, \epsilon)`, :math:`h` an EMA of Hessian-diagonal
  estimates refreshed every ``update_interval`` steps) and :math:`\lambda` =
  ``weight_decay`` applied to the leaves ``weight_decay_mask`` selects. Liu,
  Li, Hall, Liang & Ma, "Sophia: A Scalable Stochastic Second-order
  Optimizer for Language Model Pre-training", ICLR 2024 (arXiv:2305.14342).
  Defaults as :func:`scale_by_sophia`, plus ``weight_decay=1e-4``. Call
  ``update(grads, state, params, obj_fn=f)`` with ``f: params -> scalar
  loss`` (the current batch's, e.g. ``lambda p: loss_fn(p, batch)[0]``) for
  the default Hutchinson estimator; every extra keyword reaches
  ``hessian_diagonal_fn``. The estimator uses Rademacher signs, where the
  paper's code draws Gaussians; under ``pmap`` it must average its estimate
  across devices itself. Chain: :func:`scale_by_sophia`,
  :func:`~jaxopt_notes.add_decayed_weights`,
  :func:`~jaxopt_notes.scale_by_learning_rate`.

  Same state layout, dtypes and numbers as ``optax.contrib.sophia``
  (bitwise on the trajectory tests, jitted and op by op, float32 and
  float64, every option); unlike optax, the arguments are checked when it
  is built and ``learning_rate=None`` is refused.

  Args:
    learning_rate: :math:`\eta_t`, a number or a schedule.
    b1: momentum decay (default 0.965).
    b2: Hessian-EMA decay per refresh (default 0.99).
    eps: floor of the denominator (default 1e-8).
    weight_decay: :math:`\lambda`, a number or a schedule (default 1e-4).
    weight_decay_mask: which leaves to decay (a pytree of booleans or a
      function of the params); ``None``: all.
    gamma: scale of the Hessian estimate (default 0.01).
    clip_threshold: :math:`\rho > 0` or ``None`` (default 1.0).
    update_interval: steps between Hessian refreshes (default 10).
    hessian_diagonal_fn: the estimator (default Hutchinson's, key 0).
    mu_dtype: dtype of the momentum, or ``None``.
    verbose: print the win rate (default ``False``).
    print_win_rate_every_n_steps: integer ``>= 0`` (see :func:`scale_by_sophia`).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> from jaxopt_notes.contrib import sophia
    >>> f = lambda x: jnp.sum(jnp.array([1.0, 2.0, 3.0]) * x ** 2)
    >>> tx = sophia(learning_rate=0.05, update_interval=1)
    >>> x = jnp.array([1.0, 2.0, 3.0])
    >>> state = tx.init(x)
    >>> @jax.jit  # one compiled step: the loop then runs in milliseconds
    ... def step(x, state):
    ...   u, state = tx.update(jax.grad(f)(x), state, x, obj_fn=f)
    ...   return jn.apply_updates(x, u), state
    >>> for _ in range(100):  # each step moves x by at most 0.05 (the clip)
    ...   x, state = step(x, state)
    >>> print(round(float(f(x)), 2))  # from 36
    0.71
  """
  validation.check_learning_rate(learning_rate)  # None is refused here
  return combine.chain(
      scale_by_sophia(
          b1=b1, b2=b2, eps=eps, gamma=gamma, clip_threshold=clip_threshold,
          update_interval=update_interval, hessian_diagonal_fn=hessian_diagonal_fn,
          mu_dtype=mu_dtype, verbose=verbose,
          print_win_rate_every_n_steps=print_win_rate_every_n_steps,
      ),
      scaling.add_decayed_weights(weight_decay, mask=weight_decay_mask),
      scaling.scale_by_learning_rate(learning_rate),
  )
