"""Step-size rules that read more than the current gradient.

Each of these sets how far to move from something besides ``g_t`` alone:

* :func:`scale_by_polyak`   the loss value: ``(f(x) - f*) / ||g||^2`` (Polyak);
* :func:`scale_by_rprop`    the sign history of each coordinate (Rprop), a
  per-coordinate adaptive step in the sense of notes 000/003/004;
* :func:`scale_by_distance_over_gradients` the distance travelled from the
  start over the gradients seen (DoG, parameter-free);
* :func:`scale_by_optimistic_gradient` the previous gradient, a negative
  momentum ``(alpha + beta) g_t - beta g_{t-1}`` (notes 000/003's momentum
  family, with the sign turned round);
* :func:`add_noise`         no reading at all: annealed Gaussian noise added to
  the gradient (notes 002's gradient noise, made deliberate).

Signatures, defaults, state layouts and numbers are those of optax 0.2.8; the
deliberate differences are named in each docstring.
"""

from __future__ import annotations

import operator
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib

__all__ = [
    "AddNoiseState",
    "ScaleByDistanceOverGradientsState",
    "ScaleByOptimisticGradientState",
    "ScaleByRpropState",
    "add_noise",
    "scale_by_distance_over_gradients",
    "scale_by_optimistic_gradient",
    "scale_by_polyak",
    "scale_by_rprop",
]

_POLYAK_VARIANTS = ("sps", "sps+")


def _checked_empty_init(params) -> base.EmptyState:
  # A scaled step on an integer leaf would be truncated by apply_updates.
  validation.check_float_params(params)
  return base.EmptyState()


def _squared_norm(tree: Any) -> jax.Array:
  """``sum |x|^2`` over all leaves, summed leaf by leaf as ``optax.tree.norm(squared=True)``."""
  sums = jax.tree.map(lambda x: jnp.sum(jnp.square(x.real) + jnp.square(x.imag)), tree)
  return jnp.array(jax.tree.reduce(operator.add, sums, initializer=0))


# --- Polyak -----------------------------------------------------------------


def scale_by_polyak(
    f_min: jax.typing.ArrayLike = 0.0,
    max_learning_rate: jax.typing.ArrayLike = 1.0,
    eps: jax.typing.ArrayLike = 0.0,
    variant: str = "sps",
) -> base.GradientTransformationExtraArgs:
  r"""Polyak's step size: the loss gap over the squared gradient norm, capped.

  .. math::
     \gamma_t = \min\left(\frac{f(x_t) - f^\star}{\lVert u_t \rVert^2 + \epsilon},\
       \gamma_{\max}\right), \qquad u_t \leftarrow \gamma_t\, u_t

  (:math:`\gamma_t = 0` where :math:`\lVert u_t\rVert^2 + \epsilon` is below
  float64's machine epsilon). ``variant="sps+"`` uses the positive part
  :math:`(f(x_t) - f^\star)_+` of the gap (Garrigos et al., 2023,
  arXiv:2307.14528). The stochastic Polyak step of Loizou et al. (2021,
  "Stochastic Polyak Step-size for SGD", AISTATS, arXiv:2002.10542), after
  Polyak (1987). The norm is that of the incoming updates, all leaves
  together. Beyond the notes: where notes 004 decay the learning rate by a
  fixed formula of the step, this one reads it off the loss value, and it
  needs a good lower bound ``f_min`` (0 for a model that can fit its data).

  ``update`` needs the loss: ``tx.update(grads, state, params,
  value=loss)``. Same state (none) and numbers as ``optax.scale_by_polyak``;
  a bad ``variant`` is refused when built (optax raises at the first update)
  and a missing ``value`` raises a ``TypeError`` that names it.

  Args:
    f_min: the lower bound :math:`f^\star` of the loss (default 0.0).
    max_learning_rate: the cap :math:`\gamma_{\max} > 0` (default 1.0).
    eps: added to the squared norm, ``>= 0`` (default 0.0).
    variant: ``"sps"`` (default) or ``"sps+"``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_polyak()
    >>> params = {"w": jnp.array([3.0, 4.0])}
    >>> grads = {"w": jnp.array([3.0, 4.0])}  # of f(w) = |w|^2 / 2 = 12.5
    >>> updates, _ = tx.update(grads, tx.init(params), params, value=12.5)
    >>> updates["w"]  # gap / |g|^2 = 12.5 / 25 = 0.5
    Array([1.5, 2. ], dtype=float32)
  """
  validation.check_finite("f_min", f_min)
  validation.check_positive("max_learning_rate", max_learning_rate)
  validation.check_non_negative("eps", eps)
  validation.check_that(
      "variant", variant, lambda v: v.dtype.kind == "U" and str(v) in _POLYAK_VARIANTS,
      "'sps' or 'sps+'",
  )

  def update_fn(updates, state, params=None, *, value=None, **extra_args):
    del extra_args  # value_fn= and the like, meant for other transforms
    if value is None:
      raise TypeError(
          "scale_by_polyak needs the loss: call update(updates, state, params, "
          "value=loss) with `value`, the objective at the current params."
      )
    combine.check_updates_match_params(updates, params)
    del params
    sq_norm = _squared_norm(updates)
    gap = jnp.array(value - f_min).astype(sq_norm.dtype)
    if variant == "sps+":
      gap = jax.nn.relu(gap)
    step = jnp.where(
        sq_norm + eps <= jnp.finfo(float).eps,
        jnp.array(0.0),
        jnp.minimum(gap / (sq_norm + eps), max_learning_rate),
    )
    return jax.tree.map(lambda u: step * u, updates), state

  return base.GradientTransformationExtraArgs(_checked_empty_init, update_fn)


# --- Rprop ------------------------------------------------------------------


class ScaleByRpropState(NamedTuple):
  """State of :func:`scale_by_rprop`: each coordinate's step size and its last step."""

  step_sizes: base.Updates
  prev_updates: base.Updates  # step_size * sign(g) of the last update, 0 after a sign flip


def scale_by_rprop(
    learning_rate: jax.typing.ArrayLike,
    eta_minus: jax.typing.ArrayLike = 0.5,
    eta_plus: jax.typing.ArrayLike = 1.2,
    min_step_size: jax.typing.ArrayLike = 1e-6,
    max_step_size: jax.typing.ArrayLike = 50.0,
) -> base.GradientTransformation:
  r"""Rprop: a per-coordinate step that grows while the sign holds and shrinks when it flips.

  .. math::
     s_t = g_t\, g_{t-1}, \qquad
     \Delta_t = \begin{cases}
       \operatorname{clip}(\eta^+ \Delta_{t-1}) & s_t > 0 \\
       \operatorname{clip}(\eta^- \Delta_{t-1}) & s_t < 0 \\
       \Delta_{t-1} & s_t = 0 \end{cases}, \qquad
     p_t = \begin{cases} 0 & s_t < 0 \\ \Delta_t \operatorname{sign}(g_t) & \text{else} \end{cases}

  with :math:`\operatorname{clip}` to ``[min_step_size, max_step_size]``,
  :math:`\Delta_0` = ``learning_rate`` and :math:`g_{t-1}` read from
  :math:`p_{t-1}` (the stored step, whose sign is the last gradient's). The
  returned update is :math:`u_t = 0` where :math:`s_t < 0`, else
  :math:`p_{t-1}`: as in optax, it is the *previous* step's, so the first
  update is all zeros and every later one lags by a step (optax pull request
  #1725 describes this; the numbers here follow optax 0.2.8). This is
  iRprop- (Riedmiller & Braun, 1993, "A direct adaptive method for faster
  backpropagation learning: the RPROP algorithm", IEEE ICNN; Igel & Hüsken,
  2003, Neurocomputing 50). Per-coordinate adaptive scaling like notes
  000/003/004's AdaGrad and RMSProp, but it keeps only the gradient's sign
  (RMSProp began as Rprop for minibatches).

  Same state (``step_sizes``, ``prev_updates``) and numbers as
  ``optax.scale_by_rprop``. Only the sign is used: follow it with a negative
  scale to descend (:func:`~jaxopt_notes.rprop` does).

  Args:
    learning_rate: the initial step size :math:`\Delta_0 > 0` (a number: the
      steps then adapt themselves; a schedule is refused).
    eta_minus: shrink factor on a sign flip, in ``(0, 1]`` (default 0.5).
    eta_plus: growth factor while the sign holds, ``>= 1`` (default 1.2).
    min_step_size: smallest step size, ``>= 0`` (default 1e-6).
    max_step_size: largest step size, ``> 0`` and ``>= min_step_size``
      (default 50.0).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_rprop(learning_rate=0.1)
    >>> params = {"w": jnp.zeros(2)}
    >>> state = tx.init(params)
    >>> for g in ([1.0, -1.0], [1.0, 1.0]):
    ...   updates, state = tx.update({"w": jnp.array(g)}, state, params)
    >>> updates["w"]  # the first step's, 0.1 sign(g_1), where the sign held
    Array([0.1, 0. ], dtype=float32)
    >>> state.step_sizes["w"]
    Array([0.12, 0.05], dtype=float32)
  """
  if callable(learning_rate):
    raise TypeError(
        "`learning_rate` of rprop/scale_by_rprop is the initial step size, a number "
        "(each coordinate's step then adapts itself); a schedule is not supported."
    )
  validation.check_positive("learning_rate", learning_rate)
  validation.check_that("eta_minus", eta_minus, lambda v: (v > 0) & (v <= 1), "a number in (0, 1]")
  validation.check_that("eta_plus", eta_plus, lambda v: np.isfinite(v) & (v >= 1), "a finite number >= 1")
  validation.check_non_negative("min_step_size", min_step_size)
  validation.check_positive("max_step_size", max_step_size)
  if not isinstance(max_step_size, jax.core.Tracer):
    validation.check_that(
        "min_step_size", min_step_size, lambda v: v <= float(np.asarray(max_step_size)),
        f"<= max_step_size ({max_step_size!r})",
    )

  def init_fn(params):
    validation.check_float_params(params)
    return ScaleByRpropState(
        step_sizes=tree_lib.tree_full_like(params, learning_rate),
        prev_updates=tree_lib.tree_zeros_like(params),
    )

  def new_step_size(s, step_size):
    factor = jnp.where(s > 0, eta_plus, eta_minus)
    grown = jnp.clip(step_size * factor, min=min_step_size, max=max_step_size)
    return jnp.where(s == 0, step_size, grown)

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(
        updates, params, state=state.step_sizes, state_name="state.step_sizes"
    )
    del params
    sign = tree_lib.tree_map_checked(lambda g, p: g * p, updates, state.prev_updates)
    step_sizes = jax.tree.map(new_step_size, sign, state.step_sizes)
    steps = jax.tree.map(
        lambda s, g, d: jnp.where(s < 0, jnp.zeros_like(g), d * jnp.sign(g)),
        sign, updates, step_sizes,
    )
    # optax 0.2.8 emits the stored (previous) step, not the one just computed.
    out = jax.tree.map(
        lambda s, p: jnp.where(s < 0, jnp.zeros_like(p), p), sign, state.prev_updates
    )
    return out, ScaleByRpropState(
        step_sizes=tree_lib.tree_cast_like(step_sizes, state.step_sizes),
        prev_updates=tree_lib.tree_cast_like(steps, state.prev_updates),
    )

  return base.GradientTransformation(init_fn, update_fn)


# --- Distance over gradients --------------------------------------------------


class ScaleByDistanceOverGradientsState(NamedTuple):
  """State of :func:`scale_by_distance_over_gradients`, one scalar pair per leaf."""

  max_dist: base.OptState  # per leaf: the largest ||x_t - x_0|| seen (at least reps_rel (1 + ||x_0||))
  grad_sum_of_squares: base.OptState  # per leaf, shape (1,): sum over steps of ||g_t||^2
  init_params: base.OptState  # x_0, stored in param_dtype


def _l2(x, y=0.0):
  return jnp.sqrt(jnp.square(x - y).sum())


def scale_by_distance_over_gradients(
    reps_rel: jax.typing.ArrayLike = 1e-6,
    eps: jax.typing.ArrayLike = 1e-8,
    param_dtype: Any = jnp.float32,
    global_scale: jax.typing.ArrayLike = 1.0,
) -> base.GradientTransformation:
  r"""DoG: a step size per leaf equal to the distance travelled over the root of the summed squared gradients.

  .. math::
     r_t = \max\left(r_{t-1}, \lVert x_t - x_0 \rVert\right),\quad
     G_t = G_{t-1} + \lVert g_t \rVert^2,\quad
     u_t = c\, \frac{r_t}{\sqrt{G_t + \epsilon}}\, g_t

  per leaf (layer-wise DoG, "LDoG"), with :math:`r_0 =` ``reps_rel`` ``(1 +
  ||x_0||)`` and :math:`c` = ``global_scale``. Ivgi, Hinder & Carmon (2023),
  "DoG is SGD's Best Friend: A Parameter-Free Dynamic Step Size Schedule",
  ICML, arXiv:2302.12022. AdaGrad's accumulated squared gradients of notes
  000/003 (here one sum per leaf, not per coordinate), with the learning rate
  replaced by the distance from the start, so there is no learning rate to
  tune. Follow it with a negative scale to descend (``c = -1`` flips the
  sign itself). Keeps a copy of the initial params.

  ``update`` needs ``params``. Same state fields and numbers as optax's
  ``scale_by_distance_over_gradients`` (``optax._src.transform``), with two
  deliberate differences: (1) a scalar param gets a scalar update (optax's
  comes out shaped ``(1,)``, which turns the param into a ``(1,)`` array);
  (2) ``max_dist`` is stored in the dtype ``update`` computes it in, so the
  state keeps one type from step to step (for bfloat16 params optax's
  ``max_dist`` starts bfloat16 and turns float32 after the first step); its
  values are optax's. With ``eps = 0`` a zero first gradient gives
  ``0 / 0``.

  Args:
    reps_rel: sets the first step, :math:`r_0`, relative to ``||x_0||``;
      ``> 0`` (default 1e-6; the authors suggest 1e-4 with batch norm).
    eps: added under the root, ``>= 0`` (default 1e-8).
    param_dtype: dtype of the stored initial params (default float32;
      ``None`` keeps the params').
    global_scale: the factor :math:`c` (default 1.0).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_distance_over_gradients(reps_rel=0.1, eps=0.0)
    >>> params = {"w": jnp.array([3.0, 4.0])}
    >>> updates, state = tx.update({"w": jnp.array([0.6, 0.8])}, tx.init(params), params)
    >>> state.max_dist["w"]  # 0.1 (1 + 5): nothing travelled yet
    Array(0.6, dtype=float32)
    >>> [round(float(u), 4) for u in updates["w"]]  # 0.6 / ||g|| * g, ||g|| = 1
    [0.36, 0.48]
  """
  validation.check_positive("reps_rel", reps_rel)
  validation.check_non_negative("eps", eps)
  param_dtype = validation.check_dtype("param_dtype", param_dtype)
  validation.check_finite("global_scale", global_scale)

  def first_distance(x):
    d = reps_rel * (1 + _l2(x))
    # The dtype `update`'s max(d, ||x - x0||) gives, so the state keeps its type.
    return d.astype(jnp.result_type(d, x.dtype, x.dtype if param_dtype is None else param_dtype))

  def init_fn(params):
    validation.check_float_params(params)
    tree_lib.check_params_tree(params)
    return ScaleByDistanceOverGradientsState(
        max_dist=jax.tree.map(first_distance, params),
        grad_sum_of_squares=jax.tree.map(lambda x: jnp.zeros(1), params),
        init_params=tree_lib.tree_cast(params, param_dtype),
    )

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(base.NO_PARAMS_MSG)
    combine.check_updates_match_params(updates, params)
    max_dist = tree_lib.tree_map_checked(
        lambda d, x, y: jnp.maximum(d, _l2(x, y)), state.max_dist, params, state.init_params,
        names=("state.max_dist", "params", "state.init_params"),
    )
    g_sos = tree_lib.tree_map_checked(
        lambda s, g: s + jnp.square(g).sum(), state.grad_sum_of_squares, updates,
        names=("state.grad_sum_of_squares", "updates"),
    )

    def step(g, d, s):
      eta = global_scale * (d / jnp.sqrt(s + eps))
      # eta has G's shape (1,): a scalar leaf keeps its shape.
      return eta.reshape(()) * g

    updates = jax.tree.map(step, updates, max_dist, g_sos)
    return updates, ScaleByDistanceOverGradientsState(
        max_dist=tree_lib.tree_cast_like(max_dist, state.max_dist),
        grad_sum_of_squares=tree_lib.tree_cast_like(g_sos, state.grad_sum_of_squares),
        init_params=state.init_params,
    )

  return base.GradientTransformation(init_fn, update_fn)


# --- Optimistic gradient ------------------------------------------------------


class ScaleByOptimisticGradientState(NamedTuple):
  """State of :func:`scale_by_optimistic_gradient`: whether no step was taken yet, and the last gradient."""

  is_initial_step: jax.Array  # bool scalar
  previous_gradient: base.Updates


def scale_by_optimistic_gradient(
    alpha: jax.typing.ArrayLike = 1.0,
    beta: jax.typing.ArrayLike = 1.0,
) -> base.GradientTransformation:
  r"""The optimistic gradient: the current one plus its change since the last step.

  .. math:: u_t = (\alpha + \beta)\, g_t - \beta\, g_{t-1}
            = \alpha g_t + \beta (g_t - g_{t-1}),

  with :math:`g_0 := g_1` at the first step (so :math:`u_1 = \alpha g_1`;
  optax issue #1082). Optimistic gradient descent (Popov, 1980; Daskalakis
  et al., 2018, "Training GANs with Optimism", ICLR, arXiv:1711.00141;
  Mokhtari, Ozdaglar & Pattathil, 2020, AISTATS, arXiv:1901.08511): a cheap
  stand-in for extra-gradient that converges in last iterate on min-max
  games, where plain gradient steps cycle. Against the notes' momentum
  (notes 000/003, ``v = rho v + g``, which adds past gradients), this
  *subtracts* the last one: a negative momentum of weight ``beta``.

  Same state and numbers as ``optax.scale_by_optimistic_gradient``.

  Args:
    alpha: weight of the current gradient (default 1.0).
    beta: weight of the change :math:`g_t - g_{t-1}` (default 1.0).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.scale_by_optimistic_gradient()
    >>> params = jnp.zeros(())
    >>> state = tx.init(params)
    >>> for g in (2.0, 3.0):
    ...   u, state = tx.update(jnp.array(g), state, params)
    ...   print(u)
    2.0
    4.0
  """
  validation.check_finite("alpha", alpha)
  validation.check_finite("beta", beta)

  def init_fn(params):
    validation.check_float_params(params)
    return ScaleByOptimisticGradientState(
        is_initial_step=jnp.array(True),
        previous_gradient=tree_lib.tree_zeros_like(params),
    )

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(
        updates, params, state=state.previous_gradient, state_name="state.previous_gradient"
    )
    del params

    def optimistic(g, prev):
      prev = jnp.where(state.is_initial_step, g, prev)
      return (alpha + beta) * g - beta * prev

    new_updates = tree_lib.tree_map_checked(optimistic, updates, state.previous_gradient)
    return new_updates, ScaleByOptimisticGradientState(
        is_initial_step=jnp.array(False),
        previous_gradient=tree_lib.tree_cast_like(updates, state.previous_gradient),
    )

  return base.GradientTransformation(init_fn, update_fn)


# --- Gradient noise -----------------------------------------------------------


class AddNoiseState(NamedTuple):
  """State of :func:`add_noise`: steps taken (for the annealing) and the random key."""

  count: jax.Array  # type: ignore[assignment]  # named like tuple.count, as optax's; int32 scalar
  rng_key: jax.Array  # a typed key (jax.random.key), split once per step


def _is_typed_key(value: Any) -> bool:
  return isinstance(value, jax.Array) and jnp.issubdtype(value.dtype, jax.dtypes.prng_key)


def _check_key(name: str, key: Any) -> None:
  if isinstance(key, jax.core.Tracer) or _is_typed_key(key):
    if _is_typed_key(key) and np.ndim(key) != 0:
      raise TypeError(f"`{name}` must be a single key, not a batch of shape {np.shape(key)}")
    return
  validation.check_int(
      name, key, minimum=0,
      meaning=" (a seed), or a typed key from jax.random.key(seed) (a raw uint32 "
      "jax.random.PRNGKey is not accepted, as in optax)",
  )


def add_noise(
    eta: jax.typing.ArrayLike,
    gamma: jax.typing.ArrayLike,
    key: jax.typing.ArrayLike | None = None,
    *,
    seed: int | None = None,
) -> base.GradientTransformation:
  r"""Adds annealed Gaussian noise to the updates.

  .. math::
     u_t = g_t + \sigma_t\, \xi_t, \qquad \xi_t \sim \mathcal N(0, I), \qquad
     \sigma_t^2 = \frac{\eta}{t^{\gamma}}, \quad t = 1, 2, \dots

  Neelakantan et al. (2015), "Adding Gradient Noise Improves Learning for
  Very Deep Networks", arXiv:1511.06807. Notes 002 study the noise that
  minibatches put into the gradient (its variance falling as ``sigma^2 /
  n``); this adds such noise on purpose, decaying over time. Each step splits
  the stored key once, then splits the sample key into one key per leaf, so
  the random numbers are optax's, leaf for leaf.

  Same state (``count``, ``rng_key``) and numbers as ``optax.add_noise``, and
  the same key handling: ``key`` is an int seed or a typed key
  (``jax.random.key``); ``seed=`` is its deprecated alias (a
  ``DeprecationWarning``; giving both raises ``ValueError``); with neither,
  a warning is issued and seed 0 is used. Bad values are refused when built
  (optax fails at ``init``).

  Args:
    eta: the base variance :math:`\eta \ge 0`.
    gamma: the annealing exponent :math:`\gamma \ge 0`.
    key: an int seed ``>= 0`` or a typed ``jax.random.key``.
    seed: deprecated, use ``key``.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.add_noise(eta=0.0, gamma=0.55, key=jax.random.key(0))
    >>> params = {"w": jnp.zeros(2)}
    >>> updates, state = tx.update({"w": jnp.ones(2)}, tx.init(params), params)
    >>> updates["w"]  # eta = 0: no noise
    Array([1., 1.], dtype=float32)
    >>> int(state.count)
    1
  """
  if seed is not None:
    warnings.warn(
        "`seed` of add_noise/noisy_sgd is deprecated (as in optax); pass `key`.",
        DeprecationWarning, stacklevel=2,
    )
    if key is not None:
      raise ValueError("give one of `key` and `seed` (deprecated), not both")
    _check_key("seed", seed)
    key = seed
  if key is None:
    warnings.warn(
        "add_noise/noisy_sgd without a `key` uses seed 0 (optax will require a key); "
        "pass key=jax.random.key(seed).", UserWarning, stacklevel=2,
    )
    key = 0
  _check_key("key", key)
  validation.check_non_negative("eta", eta)
  validation.check_non_negative("gamma", gamma)

  def init_fn(params):
    validation.check_float_params(params)
    rng_key = key if _is_typed_key(key) else jax.random.key(key)
    return AddNoiseState(count=jnp.zeros([], jnp.int32), rng_key=rng_key)

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params)
    del params
    count = tree_lib.safe_increment(state.count)
    std = jnp.sqrt(eta / count**gamma)
    rng_key, sample_key = jax.random.split(state.rng_key)
    leaves, treedef = jax.tree.flatten(updates)
    leaf_keys = jax.random.split(sample_key, treedef.num_leaves)
    noise = treedef.unflatten(
        [jax.random.normal(k, jnp.shape(g), jnp.asarray(g).dtype) for k, g in zip(leaf_keys, leaves)]
    )
    std = jnp.asarray(std)
    noisy = jax.tree.map(
        lambda g, n: None if g is None else g + std * n, updates, noise, is_leaf=lambda x: x is None
    )
    return noisy, AddNoiseState(count=count, rng_key=rng_key)

  return base.GradientTransformation(init_fn, update_fn)
