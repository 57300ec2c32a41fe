"""The optimizer lab: the notes' experiments as functions, compiled with ``lax.scan``.

The lecture notes (000-004) teach with pictures; this module computes them,
and :mod:`jaxopt_notes.lab.plots` draws them:

* 2-D test functions (:class:`Problem`): note 001's anisotropic bowl
  ``x^2/20 + y^2`` from ``(-7, 4)``, an ill-conditioned quadratic of any
  condition number (notes 000, 002), Rosenbrock's and Beale's functions, the
  saddle ``x^2 - y^2`` and a tilted double well with a local and a global
  minimum (notes 000, 002), and :func:`noisy`, which turns any of them into a
  stochastic problem whose gradient is a minibatch mean (notes 000, 002, 003);
* :func:`trajectory` and :func:`compare` run optimizers on them, one
  ``lax.scan`` per run; :func:`summary_rows` and :func:`format_table`
  summarise the runs (final loss, distance to the minimum, steps to reach a
  tolerance), and :func:`first_to_tol` / :func:`format_first_to_tol` say
  which run got below the tolerance first;
* note 004's exponentially weighted average of daily temperatures
  (:func:`london_temperatures`, :func:`ema_series`) and note 002's gradient
  noise against the batch size (:func:`minibatch_gradient_variance`).

Nothing here imports matplotlib.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.core import base, validation
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.lab.series import ema_series, london_temperatures, minibatch_gradient_variance
from jaxopt_notes.lab.summary import first_to_tol, format_first_to_tol, format_table, losses, sign_changes, summary_rows
from jaxopt_notes.optimizers.adadelta import adadelta
from jaxopt_notes.optimizers.adagrad import adagrad
from jaxopt_notes.optimizers.adam import adam, adamax, adamw, amsgrad, nadam, radam
from jaxopt_notes.optimizers.rmsprop import rmsprop
from jaxopt_notes.optimizers.sgd import sgd
from jaxopt_notes.training import second_order

__all__ = [
    "DEFAULT_OPTIMIZERS",
    "DEFAULT_NAMES",
    "OPTIMIZERS",
    "PROBLEMS",
    "Problem",
    "anisotropic_bowl",
    "beale",
    "compare",
    "double_well",
    "ema_series",
    "first_to_tol",
    "format_first_to_tol",
    "format_table",
    "get_problem",
    "gradient_variance",
    "ill_conditioned_quadratic",
    "london_temperatures",
    "losses",
    "make_optimizer",
    "minibatch_gradient_variance",
    "noisy",
    "rosenbrock",
    "saddle",
    "sign_changes",
    "summary_rows",
    "trajectory",
]

Point = tuple[float, ...]
Bounds = tuple[tuple[float, float], tuple[float, float]]


class Problem(NamedTuple):
  """A 2-D test function with its minimisers, a start point and a plotting window.

  Built positionally as ``Problem(name, loss, minimum, start)``; the other
  fields have defaults. ``minimum`` is the global minimiser (``None`` for a
  function without one, like the saddle); ``minima`` lists every local
  minimiser, global first; ``saddles`` the saddle points; ``bounds`` the
  ``((xmin, xmax), (ymin, ymax))`` window of the notes' figure;
  ``learning_rates`` overrides the lab's default rate per optimizer name for
  this problem; ``steps`` is the lab's default run length. With
  ``grad_noise > 0`` the problem is stochastic (see :func:`noisy`).
  ``formula`` is the function in plain text (printed by the command line),
  ``tex`` the same in TeX (without dollars) and ``label`` a readable name,
  both for figure titles (see :attr:`title`).
  """

  name: str
  loss: Callable[[jax.Array], jax.Array]
  minimum: Optional[Point]
  start: Point
  bounds: Bounds = ((-2.0, 2.0), (-2.0, 2.0))
  minima: tuple[Point, ...] = ()
  saddles: tuple[Point, ...] = ()
  formula: str = ""
  learning_rates: Mapping[str, float] = {}
  steps: int = 100
  grad_noise: float = 0.0
  batch_size: int = 1
  seed: int = 0
  label: str = ""
  tex: str = ""

  @property
  def stochastic(self) -> bool:
    return self.grad_noise > 0

  @property
  def title(self) -> str:
    """The figure title: ``label: $tex$``, plus the gradient noise of a stochastic problem.

    For matplotlib's mathtext, e.g. ``anisotropic bowl: $x^2/20 + y^2$``.
    Falls back to ``name`` and ``formula`` where ``label`` or ``tex`` is empty.
    """
    text = self.label or self.name
    if self.tex:
      text += f": ${self.tex}$"
    elif self.formula:
      text += f": {self.formula}"
    if self.stochastic:
      text += rf", noisy gradients ($\sigma = {self.grad_noise:g}$, batch {self.batch_size})"
    return text

  @property
  def all_minima(self) -> tuple[Point, ...]:
    if self.minima:
      return self.minima
    return () if self.minimum is None else (self.minimum,)

  @property
  def min_loss(self) -> Optional[float]:
    """``f`` at the global minimiser (``None`` without one)."""
    if self.minimum is None:
      return None
    return float(self.loss(jnp.asarray(self.minimum, jnp.float32)))

  def gradient(self, w: jax.Array, key: Optional[jax.Array] = None) -> jax.Array:
    r"""The exact gradient, or with noise a minibatch estimate of it.

    .. math::
       \hat g = \nabla f(w) + \frac{1}{n}\sum_{i=1}^{n} \xi_i,\qquad \xi_i \sim N(0, \sigma^2 I)

    for a stochastic problem (``sigma = grad_noise``, ``n = batch_size``):
    each example's gradient is the true one plus independent noise, so the
    batch mean has covariance ``sigma^2 / n`` (note 002's standard error
    ``sigma / sqrt(n)``). A stochastic problem needs ``key``.
    """
    g = jax.grad(self.loss)(w)
    if not self.stochastic:
      return g
    if key is None:
      raise ValueError(f"{self.name} has noisy gradients: pass a `key` (jax.random.key(seed))")
    xi = jax.random.normal(key, (self.batch_size,) + jnp.shape(w), g.dtype)
    return g + self.grad_noise * jnp.mean(xi, axis=0)


# ---- problems -------------------------------------------------------------------

# The notes' figure rates (Saito, "Deep Learning from Scratch", ch. 6, whose
# anisotropy figures note 001 reproduces): SGD 0.95, Momentum 0.1, AdaGrad 1.5,
# Adam 0.3. The others are chosen to finish the bowl in ~100 steps.
_BOWL_RATES = {
    "sgd": 0.95, "momentum": 0.1, "nesterov": 0.1, "adagrad": 1.5, "rmsprop": 0.1,
    "adadelta": 1.0, "adam": 0.3, "newton": 1.0,
}


def ill_conditioned_quadratic(condition_number: float = 100.0, angle: float = 0.0) -> Problem:
  r"""The quadratic :math:`f(w) = w^\top R \,\mathrm{diag}(1/\kappa, 1)\, R^\top w`.

  Its Hessian ``2 R diag(1/kappa, 1) R'`` has eigenvalues ``2/kappa`` and
  ``2`` whatever ``kappa``, so one learning rate (``< 1``) is stable for
  every condition number while gradient descent gains only ``~1/kappa`` per
  step along the flat axis (note 002: ``f(x - eps g) ~ f(x) - eps g'g +
  eps^2/2 g'Hg``; note 000's zig-zag). ``kappa = 20, angle = 0`` is note
  001's bowl. ``angle`` (radians) rotates the valley off the axes, where
  per-coordinate methods (AdaGrad, RMSProp, Adam) lose their advantage.
  Newton's method (note 002) solves it in one step.
  """
  if not condition_number >= 1:
    raise ValueError(f"`condition_number` must be >= 1; got {condition_number!r}")
  c, s = math.cos(angle), math.sin(angle)
  rot = jnp.asarray([[c, -s], [s, c]], jnp.float32)
  a = rot @ jnp.diag(jnp.asarray([1.0 / condition_number, 1.0], jnp.float32)) @ rot.T
  kappa = f"{condition_number:g}"
  name = f"ill_conditioned(kappa={kappa}" + (f", angle={angle:g})" if angle else ")")
  if angle:
    formula = f"w' R diag(1/{kappa}, 1) R' w, R the rotation by {angle:g}"
    tex = rf"w^T R\,\mathrm{{diag}}(1/{kappa}, 1)\,R^T w,\ R = \mathrm{{rot}}({angle:g})"
  else:
    # Without rotation the quadratic form is the plain sum of squares.
    formula, tex = f"x^2/{kappa} + y^2", f"x^2/{kappa} + y^2"
  return Problem(
      name=name, loss=lambda w: w @ (a @ w), minimum=(0.0, 0.0), start=(-7.0, 4.0),
      bounds=((-10.0, 10.0), (-5.0, 5.0)), formula=formula, learning_rates=_BOWL_RATES,
      label=rf"ill-conditioned quadratic ($\kappa = {kappa}$)", tex=tex,
  )


def anisotropic_bowl() -> Problem:
  r"""Note 001's :math:`f(x, y) = x^2 / 20 + y^2`, from ``(-7, 4)`` to ``(0, 0)``.

  Its curvature is 20 times larger along ``y`` than along ``x`` (condition
  number 20), which makes plain SGD zig-zag. Plotted on the notes' window
  ``x in [-10, 10], y in [-5, 5]``.
  """
  return ill_conditioned_quadratic(20.0)._replace(
      name="anisotropic_bowl", loss=lambda w: w[0] ** 2 / 20.0 + w[1] ** 2,
      formula="x^2/20 + y^2", label="anisotropic bowl", tex="x^2/20 + y^2",
  )


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Problem:
  r"""Rosenbrock's valley :math:`(a - x)^2 + b (y - x^2)^2`, minimum ``(a, a^2)``.

  A curved, narrow valley: the Hessian's condition number is ~2500 at the
  minimum, so gradient descent needs a small rate and thousands of steps.
  Default start ``(-1.2, 1)`` (Rosenbrock, 1960).
  """
  return Problem(
      name="rosenbrock", loss=lambda w: (a - w[0]) ** 2 + b * (w[1] - w[0] ** 2) ** 2,
      minimum=(a, a * a), start=(-1.2, 1.0), bounds=((-2.0, 2.0), (-1.0, 3.0)),
      formula=f"({a:g} - x)^2 + {b:g} (y - x^2)^2", steps=2000, label="Rosenbrock's valley",
      tex=f"({a:g} - x)^2 + {b:g}\\,(y - x^2)^2",
      learning_rates={"sgd": 1e-3, "momentum": 2e-4, "nesterov": 2e-4, "adagrad": 0.3,
                      "rmsprop": 3e-3, "adadelta": 0.01, "adam": 0.02, "radam": 3e-3},
  )


def beale() -> Problem:
  r"""Beale's function, minimum ``(3, 0.5)`` where it is 0.

  .. math:: (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2

  Flat plateaus next to walls as steep as ``y^6``: gradients vary over
  orders of magnitude, which adaptive rates handle and plain SGD does not.
  """
  def loss(w):
    x, y = w[0], w[1]
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2

  return Problem(
      name="beale", loss=loss, minimum=(3.0, 0.5), start=(1.0, 1.4),
      bounds=((-4.5, 4.5), (-4.5, 4.5)),
      formula="(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2", steps=1000,
      label="Beale's function", tex="(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2",
      learning_rates={"sgd": 1e-3, "momentum": 1e-3, "nesterov": 1e-3, "adagrad": 0.3,
                      "rmsprop": 0.01, "adadelta": 1.0, "adam": 0.05, "newton": 1.0},
  )


def saddle() -> Problem:
  r"""The saddle :math:`f(x, y) = x^2 - y^2` at ``(0, 0)``; no minimum.

  The gradient vanishes at the origin, which attracts along ``x`` (the
  stable manifold ``y = 0``) and repels along ``y``. Gradient descent started
  exactly on ``y = 0`` converges to the saddle; any ``y != 0`` grows by
  ``1 + 2 eta`` per step and escapes (notes 000 and 002). Default start
  ``(-1.5, 1e-2)``, slightly off the manifold.
  """
  return Problem(
      name="saddle", loss=lambda w: w[0] ** 2 - w[1] ** 2, minimum=None, start=(-1.5, 1e-2),
      saddles=((0.0, 0.0),), formula="x^2 - y^2", steps=50, label="saddle", tex="x^2 - y^2",
      learning_rates={"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adagrad": 0.3,
                      "rmsprop": 0.05, "adadelta": 1.0, "adam": 0.05},
  )


@functools.cache
def _double_well_points() -> tuple[Point, Point, Point]:
  # Stationary points of x^4 - 2x^2 + x/2: roots of 4x^3 - 4x + 1/2, in float64.
  xs = sorted(float(r.real) for r in np.roots([4.0, 0.0, -4.0, 0.5]))
  return (xs[0], 0.0), (xs[2], 0.0), (xs[1], 0.0)


def double_well() -> Problem:
  r"""A tilted double well :math:`x^4 - 2x^2 + x/2 + y^2`: a local and a global minimum.

  The tilt ``x/2`` makes the left well (``x ~ -1.06``, ``f ~ -1.51``) the
  global minimum and the right one (``x ~ 0.93``, ``f ~ -0.52``) a local
  minimum; between them a saddle at ``x ~ 0.13``. Gradient descent ends in
  whichever well its start lies in (notes 000 and 002: local minima);
  momentum can carry it over the ridge. Default start ``(1.5, 1.0)``, in
  the local well.
  """
  glob, local, ridge = _double_well_points()
  return Problem(
      name="double_well", loss=lambda w: w[0] ** 4 - 2 * w[0] ** 2 + 0.5 * w[0] + w[1] ** 2,
      minimum=glob, start=(1.5, 1.0), bounds=((-2.0, 2.0), (-1.5, 1.5)),
      minima=(glob, local), saddles=(ridge,), formula="x^4 - 2x^2 + x/2 + y^2",
      label="tilted double well", tex="x^4 - 2x^2 + x/2 + y^2",
      learning_rates={"sgd": 0.05, "momentum": 0.02, "nesterov": 0.02, "adagrad": 0.3,
                      "rmsprop": 0.02, "adadelta": 1.0, "adam": 0.05, "newton": 1.0},
  )


def noisy(problem: Problem, sigma: float = 1.0, batch_size: int = 1, seed: int = 0) -> Problem:
  r"""``problem`` with stochastic gradients: minibatch means of noisy examples.

  Each step's gradient is ``grad f(w) + mean(xi_1..xi_n)`` with
  ``xi_i ~ N(0, sigma^2 I)`` (see :meth:`Problem.gradient`): a minibatch of
  ``n = batch_size`` examples whose gradients scatter around the true one
  with standard deviation ``sigma``, so the estimate's standard error is
  ``sigma / sqrt(n)`` (note 002; notes 000 and 003: SGD's noise). Runs are
  reproducible: :func:`trajectory` draws the noise from ``key(seed)``
  unless given a key.
  """
  validation.check_non_negative("sigma", sigma)
  validation.check_positive_int("batch_size", batch_size)
  return problem._replace(
      name=f"{problem.name}+noise(sigma={sigma:g}, batch={batch_size})",
      grad_noise=float(sigma), batch_size=int(batch_size), seed=int(seed),
  )


PROBLEMS: Mapping[str, Callable[[], Problem]] = {
    "anisotropic_bowl": anisotropic_bowl,
    "ill_conditioned": ill_conditioned_quadratic,
    "rosenbrock": rosenbrock,
    "beale": beale,
    "saddle": saddle,
    "double_well": double_well,
}


def get_problem(name: str) -> Problem:
  """The problem registered as ``name`` in :data:`PROBLEMS` (with its defaults)."""
  if name not in PROBLEMS:
    raise ValueError(f"unknown problem {name!r}; valid names: {', '.join(sorted(PROBLEMS))}")
  return PROBLEMS[name]()


# ---- optimizers -----------------------------------------------------------------

OPTIMIZERS: Mapping[str, Callable[[float], base.GradientTransformation]] = {
    "sgd": sgd,
    "momentum": lambda lr: sgd(lr, momentum=0.9),
    "nesterov": lambda lr: sgd(lr, momentum=0.9, nesterov=True),
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    # Adadelta's first steps are about sqrt(eps) long; the default 1e-6 barely
    # moves on a 2-D toy in 100 steps, so the lab uses a larger eps.
    "adadelta": lambda lr: adadelta(lr, eps=1e-2),
    "adam": adam,
    "adam_no_bias": lambda lr: adam(lr, bias_correction=False),
    "adamw": lambda lr: adamw(lr, weight_decay=1e-4),
    "nadam": nadam,
    "radam": radam,
    "amsgrad": amsgrad,
    "adamax": adamax,
    "newton": second_order.newton,
}
"""Every optimizer the lab knows by name, as ``factory(learning_rate)``."""

DEFAULT_NAMES: tuple[str, ...] = (
    "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta", "adam",
)
"""The optimizers of ``python -m jaxopt_notes`` (note 001's, plus Nesterov and Adadelta)."""

# Adam's relatives take Adam's rate unless a problem says otherwise.
_RATE_OF = {n: "adam" for n in ("adam_no_bias", "adamw", "nadam", "radam", "amsgrad", "adamax")}


def make_optimizer(
    name: str,
    learning_rate: Optional[float] = None,
    *,
    rates: Optional[Mapping[str, float]] = None,
) -> base.GradientTransformation:
  """The lab's optimizer ``name`` at ``learning_rate``, or at its rate in ``rates``.

  Without ``learning_rate`` the rate is ``rates[name]`` (e.g. a problem's
  ``learning_rates``; Adam's relatives fall back to ``rates["adam"]``), else
  the anisotropic bowl's: note 001's figure rates, SGD 0.95, Momentum and
  Nesterov 0.1 with ``rho = 0.9``, AdaGrad 1.5, Adam 0.3; RMSProp 0.1,
  Adadelta 1 (with ``eps = 1e-2``), Newton 1.

  Raises:
    ValueError: for a name not in :data:`OPTIMIZERS`, listing the valid ones.
  """
  if name not in OPTIMIZERS:
    raise ValueError(
        f"unknown optimizer {name!r}; valid names: {', '.join(sorted(OPTIMIZERS))}"
    )
  if learning_rate is None:
    table = {**_BOWL_RATES, **(rates or {})}
    learning_rate = table[name if name in table else _RATE_OF[name]]
  return OPTIMIZERS[name](learning_rate)


DEFAULT_OPTIMIZERS: Mapping[str, Callable[[], base.GradientTransformation]] = {
    name: functools.partial(make_optimizer, name) for name in DEFAULT_NAMES
}
"""The default optimizers at the bowl's rates, as zero-argument factories."""

OptimizerLike = Union[str, base.GradientTransformation]


def _is_transform(x: Any) -> bool:
  try:
    base.as_transform(x)
  except TypeError:
    return False
  return True


def _resolve(optimizer: OptimizerLike, problem: Problem) -> base.GradientTransformation:
  if isinstance(optimizer, str):
    return make_optimizer(optimizer, rates=problem.learning_rates)
  return base.as_transform(optimizer, "optimizer")


# ---- runs -----------------------------------------------------------------------


def trajectory(
    optimizer: OptimizerLike,
    problem: Problem,
    start: Optional[Sequence[float]] = None,
    steps: int = 100,
    *,
    key: Optional[jax.Array] = None,
) -> jax.Array:
  r"""The iterates ``w_0`` to ``w_steps`` of ``optimizer`` on ``problem``.

  .. math:: u_t, s_t = \mathrm{update}(\hat g(w_{t-1}), s_{t-1}, w_{t-1}),\qquad w_t = w_{t-1} + u_t

  Note 000's loop ``for t in range(num_steps): dw = grad(L, w); w -= lr *
  dw``, with any optimizer in place of ``-lr * dw``. The whole run is one
  ``lax.scan`` under ``jit``. Each update also receives ``value``, ``grad``
  and ``value_fn`` (the exact loss) as extra arguments, so :func:`newton`
  works here. A stochastic problem (:func:`noisy`) draws step ``t``'s noise
  from ``fold_in(key, t)``; ``key`` defaults to ``key(problem.seed)``.

  Args:
    optimizer: a ``GradientTransformation`` (ours or optax's) or a name
      from :data:`OPTIMIZERS` (at ``problem``'s rate).
    problem: the function to minimise.
    start: the start point (default ``problem.start``).
    steps: number of updates (default 100).
    key: ``jax.random`` key for a stochastic problem's noise.

  Returns:
    A float32 array of shape ``(steps + 1, 2)`` whose first row is the start.
  """
  tx = base.with_extra_args_support(_resolve(optimizer, problem))
  validation.check_positive_int("steps", steps)
  steps = int(steps)
  w0 = jnp.asarray(problem.start if start is None else start, jnp.float32)
  if key is None:
    key = jax.random.key(problem.seed)

  @jax.jit
  def run(w0, key):
    def step(carry, t):
      w, state = carry
      g = problem.gradient(w, jax.random.fold_in(key, t) if problem.stochastic else None)
      updates, state = tx.update(g, state, w, value=problem.loss(w), grad=g,
                                 value_fn=problem.loss)
      w = tree_lib.apply_updates(w, updates)
      return (w, state), w

    _, path = jax.lax.scan(step, (w0, tx.init(w0)), jnp.arange(steps))
    return jnp.concatenate([w0[None], path])

  return run(w0, key)


def compare(
    optimizers: Union[None, Sequence[OptimizerLike], Mapping[str, OptimizerLike]] = None,
    problem: Optional[Problem] = None,
    steps: Optional[int] = None,
    *,
    start: Optional[Sequence[float]] = None,
    key: Optional[jax.Array] = None,
) -> dict[str, jax.Array]:
  """Runs several optimizers from the same start on one problem.

  Args:
    optimizers: names from :data:`OPTIMIZERS`, optimizer objects, or a
      mapping ``label -> name or object`` (default :data:`DEFAULT_NAMES`).
      Objects in a sequence are labelled ``optimizer0``, ``optimizer1``, ...
    problem: default :func:`anisotropic_bowl`.
    steps: default ``problem.steps``.
    start, key: as in :func:`trajectory` (the same noise for every optimizer).

  Returns:
    ``{label: path}``, paths as returned by :func:`trajectory`.

  Raises:
    ValueError: for unknown names (all listed, with the valid ones).
  """
  problem = anisotropic_bowl() if problem is None else problem
  steps = problem.steps if steps is None else steps
  if optimizers is None:
    optimizers = DEFAULT_NAMES
  if isinstance(optimizers, Mapping):
    labelled = dict(optimizers)
  elif isinstance(optimizers, str) or _is_transform(optimizers):
    raise TypeError("`optimizers` is a sequence or a mapping; wrap a single one in a list")
  else:
    labelled = {o if isinstance(o, str) else f"optimizer{i}": o for i, o in enumerate(optimizers)}
  unknown = [o for o in labelled.values() if isinstance(o, str) and o not in OPTIMIZERS]
  if unknown:
    raise ValueError(
        f"unknown optimizer(s) {', '.join(map(repr, unknown))}; valid names: "
        f"{', '.join(sorted(OPTIMIZERS))}"
    )
  return {
      label: trajectory(o, problem, start, steps, key=key) for label, o in labelled.items()
  }


# ---- notes 000/002: gradient noise against the batch size ---------------------------


def gradient_variance(
    problem: Problem, w: Union[Sequence[float], jax.typing.ArrayLike], samples: int = 4096, seed: int = 0
) -> float:
  r"""``E |g_hat(w) - grad f(w)|^2`` of a stochastic problem, from ``samples`` draws.

  For :func:`noisy` problems this is ``d sigma^2 / n`` in ``d = 2``
  dimensions (note 002's standard error ``sigma / sqrt(n)``, squared and
  summed over coordinates); 0 for an exact problem.
  """
  w = jnp.asarray(w, jnp.float32)
  exact = jax.grad(problem.loss)(w)
  keys = jax.random.split(jax.random.key(seed), samples)
  draws = jax.vmap(lambda k: problem.gradient(w, k if problem.stochastic else None))(keys)
  return float(jnp.mean(jnp.sum((draws - exact) ** 2, axis=-1)))
