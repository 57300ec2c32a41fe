"""Line searches: step-by-step equal to optax's on smooth pytree problems, the
conditions their steps satisfy (Armijo; strong Wolfe), their failure modes,
value_and_grad_from_state, and argument checks."""

import contextlib
import functools
import io
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_notes as jn
from jaxopt_notes.transforms import linesearch_zoom as zoom_lib
from tests import _trajectory as tj
from tests.transforms import _linesearch_runs as runs

STEPS = 40  # jitted runs
# Op by op, each update re-traces and compiles its while loop (in optax too, about 0.3 s a step):
# the main configuration of each search runs a few steps that way.
EAGER_STEPS = 3
EAGER_CASES = ["backtracking-store-grad", "zoom-keep"]

# id -> (problem, lib -> line search after an sgd(1.0) direction, reuse value/grad from the state)
_SEARCHES = {
    "zoom-keep": ("quadratic", lambda lib: lib.scale_by_zoom_linesearch(20), True),
    "zoom-one-capped-tight": (
        "rosenbrock",
        lambda lib: lib.scale_by_zoom_linesearch(
            30, max_learning_rate=0.01, curv_rtol=0.1, approx_dec_rtol=1e-3, initial_guess_strategy="one",
        ),
        False,
    ),
    "zoom-armijo-interp": (
        "logistic",
        lambda lib: lib.scale_by_zoom_linesearch(
            10, tol=1e-6, increase_factor=3.0, slope_rtol=0.3, curv_rtol=jnp.inf, approx_dec_rtol=None,
            stepsize_precision=1e-3,
        ),
        True,
    ),
    "backtracking": ("quadratic", lambda lib: lib.scale_by_backtracking_linesearch(15), False),
    "backtracking-store-grad": (
        "logistic", lambda lib: lib.scale_by_backtracking_linesearch(15, store_grad=True), True,
    ),
    "backtracking-restart-at-max": (
        "rosenbrock",
        lambda lib: lib.scale_by_backtracking_linesearch(
            40, decrease_factor=0.5, increase_factor=math.inf, max_learning_rate=0.01,
        ),
        False,
    ),
    "backtracking-tolerances": (
        "quadratic",
        lambda lib: lib.scale_by_backtracking_linesearch(
            15, slope_rtol=0.3, increase_factor=1.0, atol=1e-4, rtol=1e-4, store_grad=True,
        ),
        True,
    ),
}


def _sgd_then(search):
  return lambda lib: lib.chain(lib.sgd(1.0), search(lib))


# The main configuration of each search in both dtypes, the others in one (alternating).
_JIT_CASES = [(c, d) for c in EAGER_CASES for d in tj.DTYPES] + [
    (c, tj.DTYPES[i % 2]) for i, c in enumerate(sorted(set(_SEARCHES) - set(EAGER_CASES)))
]


class TestMatchesOptax(tj.VariantsTest):

  @chex.variants(with_jit=True)
  @pytest.mark.parametrize("case, dtype", _JIT_CASES)
  def test_trajectory(self, case, dtype):
    """sgd(1.0) then the line search: params, updates and state equal optax's at every step."""
    self._compare(case, dtype, STEPS)

  @chex.variants(without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("case", EAGER_CASES)
  def test_trajectory_op_by_op(self, case, dtype):
    self._compare(case, dtype, EAGER_STEPS)

  def _compare(self, case, dtype, steps):
    problem, search, reuse = _SEARCHES[case]
    ours, _ = runs.compare_with_optax(self.variant, _sgd_then(search), problem, dtype, steps, reuse=reuse)
    info = ours.states[-1][-1].info
    assert int(info.num_linesearch_steps) >= 1
    # The searches work: the loss went down overall.
    assert float(ours.values[-1]) < float(ours.values[0])


# ---------------------------------------------------------------------------
# Problems for single searches (scalar and small vector losses)


def _himmelblau(x):
  return (x[0] ** 2 + x[1] - 11.0) ** 2 + (x[0] + x[1] ** 2 - 7.0) ** 2


def _matyas(x):
  return 0.26 * (x[0] ** 2 + x[1] ** 2) - 0.48 * x[0] * x[1]


def _eggholder(x):
  return -(x[1] + 47) * jnp.sin(jnp.sqrt(jnp.abs(x[0] / 2.0 + x[1] + 47.0))) - x[0] * jnp.sin(
      jnp.sqrt(jnp.abs(x[0] - (x[1] + 47.0)))
  )


_ONE_STEP_PROBLEMS = {
    "polynomial": (lambda x: -x - x**3 + x**4, ()),
    "exponential": (lambda x: jnp.exp(-4 * x) + x**2, ()),
    "sinusoidal": (lambda x: -jnp.sin(10 * x), ()),
    "rosenbrock": (runs.rosenbrock_value, (16,)),
    "himmelblau": (_himmelblau, (2,)),
    "matyas": (_matyas, (2,)),
    "eggholder": (_eggholder, (2,)),
}


def _one_search(tx, fn, w, u, learning_rate=None):
  """One update of the line search ``tx`` from ``w`` along ``u`` (the state's step set to ``learning_rate``)."""
  state = tx.init(w)
  if learning_rate is not None:
    state = state._replace(learning_rate=jnp.asarray(learning_rate, state.learning_rate.dtype))
  value, grad = jax.value_and_grad(fn)(w)
  updates, state = tx.update(u, state, w, value=value, grad=grad, value_fn=fn)
  return jn.apply_updates(w, updates), state


@contextlib.contextmanager
def _captured():
  """Collects what ``jax.debug.print`` writes."""
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    yield out
    jax.effects_barrier()


class TestZoomConditions:

  @pytest.mark.parametrize("name", sorted(_ONE_STEP_PROBLEMS))
  def test_step_satisfies_strong_wolfe(self, name):
    """The accepted step passes both Wolfe tests; value and grad in the state are at the new params.

    Three random starts and diagonal positive preconditionings (which keep a
    descent direction), searched together under ``vmap``.
    """
    fn, shape = _ONE_STEP_PROBLEMS[name]
    keys = jax.random.split(jax.random.key(0), 3)
    ws = jax.vmap(lambda k: jax.random.normal(k, shape))(keys)
    scales = jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, 1), shape, minval=0.1, maxval=1.0))(keys)
    us = -scales * jax.vmap(jax.grad(fn))(ws)
    c1, c2 = 1e-4, 0.9
    tx = jn.scale_by_zoom_linesearch(30, slope_rtol=c1, curv_rtol=c2, approx_dec_rtol=None)
    new_ws, states = jax.jit(jax.vmap(lambda w, u: _one_search(tx, fn, w, u)))(ws, us)
    value0, grad0 = jax.vmap(jax.value_and_grad(fn))(ws)
    value1, grad1 = jax.vmap(jax.value_and_grad(fn))(new_ws)
    dot = lambda a, b: jnp.sum((a * b).reshape(3, -1), axis=1)
    slope0, slope1 = dot(us, grad0), dot(us, grad1)
    eta = states.learning_rate
    assert np.all(eta > 0)
    # Decrease (with float32 slack for recomputing the losses outside the search).
    np.testing.assert_array_less(value1, value0 + c1 * eta * slope0 + 1e-6 * jnp.abs(value0))
    np.testing.assert_array_less(jnp.abs(slope1), c2 * jnp.abs(slope0) * (1 + 1e-6))  # curvature
    np.testing.assert_array_equal(states.info.decrease_error, 0.0)
    np.testing.assert_array_equal(states.info.curvature_error, 0.0)
    np.testing.assert_allclose(states.value, value1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(states.grad, grad1, rtol=1e-5, atol=1e-5)

  def test_first_trial_follows_initial_guess_strategy(self):
    """'keep' first tries the last accepted step, 'one' tries 1: on x^2 from -1 along +1 both pass at once."""
    fn, w, u = lambda x: x**2, jnp.asarray(-1.0), jnp.asarray(1.0)
    _, keep = _one_search(jn.scale_by_zoom_linesearch(10), fn, w, u, learning_rate=0.25)
    _, one = _one_search(jn.scale_by_zoom_linesearch(10, initial_guess_strategy="one"), fn, w, u, 0.25)
    assert float(keep.learning_rate) == 0.25 and int(keep.info.num_linesearch_steps) == 1
    assert float(one.learning_rate) == 1.0 and int(one.info.num_linesearch_steps) == 1

  def test_high_below_low(self):
    """A first trial past the minimum with sufficient decrease brackets [high, low] reversed; still succeeds."""
    fn, w = lambda x: x**2, jnp.asarray(-1.0)
    _, state = _one_search(jn.scale_by_zoom_linesearch(20), fn, w, jnp.asarray(1.95), learning_rate=1.0)
    assert float(state.info.decrease_error) == 0.0 and float(state.info.curvature_error) == 0.0

  def test_needs_enough_steps(self):
    """On |x|^2 from -60 e1 along e1 with c2 = 0.5 a good step is in [30, 90]: the 6th trial (32)."""
    fn, w, u = lambda x: jnp.dot(x, x), jnp.array([-60.0, 0.0]), jnp.array([1.0, 0.0])
    _, short = _one_search(jn.scale_by_zoom_linesearch(5, curv_rtol=0.5), fn, w, u, learning_rate=1.0)
    assert float(short.learning_rate) == 16.0  # the last (safeguarded) trial
    assert float(short.info.curvature_error) > 0.0
    new_w, full = _one_search(jn.scale_by_zoom_linesearch(30, curv_rtol=0.5), fn, w, u, learning_rate=1.0)
    assert 30.0 <= float(full.learning_rate) <= 90.0
    assert abs(float(jnp.vdot(u, jax.grad(fn)(new_w)))) <= 0.5 * 120.0

  def test_capped_step_reports_curvature(self):
    """max_learning_rate below every good step: the cap is taken and verbose says why."""
    fn, w, u = lambda x: jnp.dot(x, x), jnp.array([-60.0, 0.0]), jnp.array([1.0, 0.0])
    tx = jn.scale_by_zoom_linesearch(10, max_learning_rate=10.0, curv_rtol=0.5, verbose=True)
    with _captured() as out:
      _, state = _one_search(tx, fn, w, u, learning_rate=1.0)
    assert float(state.learning_rate) == 10.0
    assert zoom_lib.FLAG_INTERVAL_NOT_FOUND in out.getvalue()
    assert zoom_lib.FLAG_CURVATURE_COND_NOT_SATISFIED in out.getvalue()

  def test_ascent_direction_fails(self):
    """Along an ascent direction no step decreases the loss: (almost) no step, and verbose says so."""
    fn, w, u = lambda x: jnp.dot(x, x), jnp.array([60.0, 0.0]), jnp.array([1.0, 0.0])
    tx = jn.scale_by_zoom_linesearch(18, curv_rtol=0.5, verbose=True)
    with _captured() as out:
      _, state = _one_search(tx, fn, w, u, learning_rate=1.0)
    assert float(state.learning_rate) < 1e-5
    assert zoom_lib.FLAG_NOT_A_DESCENT_DIRECTION in out.getvalue()
    assert zoom_lib.FLAG_NO_STEPSIZE_FOUND in out.getvalue()

  def test_flat_function_stops_on_small_interval(self):
    fn = lambda x: jnp.exp(-1 / x**2)
    w = jnp.asarray(-0.2)
    with _captured() as out:
      _one_search(jn.scale_by_zoom_linesearch(30, verbose=True), fn, w, -jax.grad(fn)(w), learning_rate=1.0)
    assert zoom_lib.FLAG_INTERVAL_TOO_SMALL in out.getvalue()

  def test_nan_beyond_the_domain(self):
    """x - log(x) from 3 along -4: step 1 lands at -1 (NaN); a valid step (x > 0) that decreases is found."""
    fn = lambda x: x - jnp.log(x)
    new_w, state = _one_search(jn.scale_by_zoom_linesearch(30), fn, jnp.asarray(3.0), jnp.asarray(-4.0), 1.0)
    assert 0.0 < float(state.learning_rate) < 0.75
    assert float(fn(new_w)) < float(fn(3.0))
    assert float(state.info.decrease_error) == 0.0


class TestBacktrackingConditions:

  @pytest.mark.parametrize("name", ["rosenbrock", "himmelblau", "matyas", "eggholder"])
  def test_step_satisfies_armijo(self, name):
    """The step passes Armijo, and the one tried before it (eta / decrease_factor) did not.

    Two random starts times three increase factors (1, 1.5, inf), searched
    together under ``vmap`` (a traced increase factor passes the checks).
    """
    fn, shape = _ONE_STEP_PROBLEMS[name]
    factors = jnp.array([1.0, 1.5, jnp.inf] * 2)
    ws = jnp.repeat(jax.vmap(lambda k: jax.random.normal(k, shape))(jax.random.split(jax.random.key(1), 2)), 3, axis=0)
    us = -jax.vmap(jax.grad(fn))(ws)
    c, rtol, atol, down = 1e-4, 1e-4, 1e-4, 0.8

    def search(w, u, factor):
      tx = jn.scale_by_backtracking_linesearch(
          50, slope_rtol=c, decrease_factor=down, increase_factor=factor, atol=atol, rtol=rtol,
      )
      return _one_search(tx, fn, w, u, learning_rate=0.5)

    new_ws, states = jax.jit(jax.vmap(search))(ws, us, factors)
    value0, grads0 = jax.vmap(fn)(ws), jax.vmap(jax.grad(fn))(ws)
    for i in range(len(factors)):
      w, u, eta = ws[i], us[i], float(states.learning_rate[i])
      slope = jnp.vdot(u, grads0[i])
      armijo = lambda step: float(fn(w + step * u)) <= float((1 + rtol) * value0[i] + c * step * slope + atol)
      assert eta > 0 and armijo(eta)
      np.testing.assert_allclose(fn(new_ws[i]), states.value[i], rtol=1e-5)
      first = min(float(factors[i]) * 0.5, 1.0)
      if not math.isclose(eta, first, rel_tol=1e-6):
        assert not armijo(eta / down), "backtracking stops at the first step that passes"

  def test_large_sgd_step_is_tamed(self):
    """sgd(10) alone diverges on a quadratic; with the search it reaches the minimizer."""
    target = jnp.array([1.0, -1.0, 1.0])
    fn = lambda w: jnp.sum((w - target) ** 2)
    tx = jn.chain(jn.sgd(10.0), jn.scale_by_backtracking_linesearch(15))
    update = jax.jit(functools.partial(tx.update, value_fn=fn))
    w, state = jnp.array([-1.0, 10.0, 1.0]), tx.init(jnp.zeros(3))
    for _ in range(40):
      value, grad = jax.value_and_grad(fn)(w)
      updates, state = update(grad, state, w, value=value, grad=grad)
      w = jn.apply_updates(w, updates)
    np.testing.assert_allclose(w, target, atol=1e-2)

  def test_batch_arguments_reach_value_fn(self):
    """Extra keywords are the batch of value_fn(params, x, y): least squares on two batches."""
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.normal(size=(2, 16, 2)), jnp.float32)
    w_true = jnp.array([0.7, -1.3])
    ys = xs @ w_true
    fn = lambda w, x, y: jnp.sum((x @ w - y) ** 2)
    tx = jn.chain(jn.sgd(1.0), jn.scale_by_backtracking_linesearch(15))
    update = jax.jit(functools.partial(tx.update, value_fn=fn))
    w, state = jnp.zeros(2), tx.init(jnp.zeros(2))
    for i in range(40):
      x, y = xs[i % 2], ys[i % 2]
      value, grad = jax.value_and_grad(fn)(w, x, y)
      updates, state = update(grad, state, w, value=value, grad=grad, x=x, y=y)
      w = jn.apply_updates(w, updates)
    np.testing.assert_allclose(w, w_true, atol=5e-2)

  def test_nan_everywhere_means_no_step(self):
    fn = lambda w: jnp.sum(w) * jnp.nan
    tx = jn.scale_by_backtracking_linesearch(5, verbose=True)
    w = jnp.ones(2)
    with _captured() as out:
      updates, state = tx.update(-jnp.ones(2), tx.init(w), w, value=2.0, grad=jnp.ones(2), value_fn=fn)
    assert "found no step with sufficient decrease" in out.getvalue()
    assert "using a step of 0" in out.getvalue()
    assert float(state.learning_rate) == 0.0 and bool(jnp.all(updates == 0.0))
    assert int(state.info.num_linesearch_steps) == 6  # the first trial and 5 shrinkings

  def test_stored_grad_is_at_the_new_params(self):
    fn = lambda w: jnp.sum(jnp.cosh(w))
    tx = jn.scale_by_backtracking_linesearch(15, store_grad=True)
    w = jnp.array([1.0, -2.0])
    new_w, state = _one_search(tx, fn, w, -jax.grad(fn)(w))
    np.testing.assert_allclose(state.grad, jax.grad(fn)(new_w), rtol=1e-6)
    assert tx.init(w).grad is not None and jn.scale_by_backtracking_linesearch(15).init(w).grad is None


class TestValueAndGradFromState:

  def test_missing_or_repeated_entries(self):
    fn = lambda w: jnp.sum(w**2)
    vg = jn.value_and_grad_from_state(fn)
    w = jnp.ones(3)
    with pytest.raises(ValueError, match="no `value` or no `grad`"):
      vg(w, state=jn.scale_by_adam().init(w))
    with pytest.raises(ValueError, match="store_grad=True"):
      vg(w, state=jn.scale_by_backtracking_linesearch(5).init(w))
    twice = jn.chain(jn.scale_by_zoom_linesearch(5), jn.scale_by_zoom_linesearch(5))
    with pytest.raises(KeyError, match="'value'"):
      vg(w, state=twice.init(w))

  def test_reads_the_state_after_the_first_step(self):
    """At init (value Inf) it evaluates value_fn; afterwards it returns the state's entries without calling it."""
    fn = lambda w: jnp.sum(w**2)
    fake = jn.value_and_grad_from_state(lambda w: jnp.sum(w) * 0.0 + 1.0)
    tx = jn.chain(jn.sgd(1.0), jn.scale_by_backtracking_linesearch(15, store_grad=True))
    w = jnp.array([1.0, 2.0, 3.0])
    state = tx.init(w)
    value, grad = jax.jit(fake)(w, state=state)
    assert float(value) == 1.0  # computed: nothing stored yet
    value, grad = jax.jit(jn.value_and_grad_from_state(fn))(w, state=state)
    updates, state = tx.update(grad, state, w, value=value, grad=grad, value_fn=fn)
    w = jn.apply_updates(w, updates)
    value, grad = jax.jit(fake)(w, state=state)
    np.testing.assert_allclose(value, fn(w), rtol=1e-6)
    np.testing.assert_allclose(grad, jax.grad(fn)(w), rtol=1e-6)

  def test_value_fn_is_checked(self):
    with pytest.raises(TypeError, match="`value_fn`"):
      jn.value_and_grad_from_state(3.0)


@pytest.mark.parametrize("make", [
    lambda: jn.scale_by_backtracking_linesearch(5), lambda: jn.scale_by_zoom_linesearch(5),
], ids=["backtracking", "zoom"])
def test_update_refuses_unused_keywords_naming_them(make):
  fn = lambda w, batch: jnp.sum(w * batch)
  tx, w = make(), jnp.array([1.0, 2.0])
  with pytest.raises(TypeError, match=r"Unexpected keyword arguments.*\['unused_arg'\]"):
    tx.update(-jnp.ones(2), tx.init(w), w, value=fn(w, w), grad=w, value_fn=fn, batch=w, unused_arg=42)
  with pytest.raises(ValueError, match="needs the current parameters"):
    tx.update(-jnp.ones(2), tx.init(w), None, value=1.0, grad=w, value_fn=fn, batch=w)


_BAD_BACKTRACKING = [
    ({"max_backtracking_steps": -1}, ValueError, "max_backtracking_steps"),
    ({"max_backtracking_steps": 2.5}, TypeError, "max_backtracking_steps"),
    ({"slope_rtol": 1.0}, ValueError, "slope_rtol"),
    ({"decrease_factor": 1.0}, ValueError, "decrease_factor"),
    ({"decrease_factor": 0.0}, ValueError, "decrease_factor"),
    ({"increase_factor": 0.5}, ValueError, "increase_factor"),
    ({"max_learning_rate": 0.0}, ValueError, "max_learning_rate"),
    ({"max_learning_rate": math.inf}, ValueError, "max_learning_rate"),
    ({"atol": -1e-3}, ValueError, "atol"),
    ({"rtol": -1e-3}, ValueError, "rtol"),
    ({"store_grad": 1}, TypeError, "store_grad"),
    ({"verbose": "yes"}, TypeError, "verbose"),
]

_BAD_ZOOM = [
    ({"max_linesearch_steps": 0}, ValueError, "max_linesearch_steps"),
    ({"max_linesearch_steps": "20"}, TypeError, "max_linesearch_steps"),
    ({"max_learning_rate": -1.0}, ValueError, "max_learning_rate"),
    ({"tol": -1.0}, ValueError, "tol"),
    ({"increase_factor": 1.0}, ValueError, "increase_factor"),
    ({"slope_rtol": -0.1}, ValueError, "slope_rtol"),
    ({"curv_rtol": -0.9}, ValueError, "curv_rtol"),
    ({"approx_dec_rtol": -1e-6}, ValueError, "approx_dec_rtol"),
    ({"stepsize_precision": -1e-5}, ValueError, "stepsize_precision"),
    ({"initial_guess_strategy": "two"}, ValueError, "initial_guess_strategy"),
    ({"verbose": None}, TypeError, "verbose"),
]


def _ids(cases):
  return [f"{name}={next(iter(kwargs.values()))!r}" for kwargs, _, name in cases]


@pytest.mark.parametrize("kwargs, error, name", _BAD_BACKTRACKING, ids=_ids(_BAD_BACKTRACKING))
def test_backtracking_bad_argument_is_named(kwargs, error, name):
  args = {"max_backtracking_steps": 10, **kwargs}
  with pytest.raises(error, match=f"`{name}`"):
    jn.scale_by_backtracking_linesearch(**args)


@pytest.mark.parametrize("kwargs, error, name", _BAD_ZOOM, ids=_ids(_BAD_ZOOM))
def test_zoom_bad_argument_is_named(kwargs, error, name):
  args = {"max_linesearch_steps": 10, **kwargs}
  with pytest.raises(error, match=f"`{name}`"):
    jn.scale_by_zoom_linesearch(**args)


def test_array_hyperparameters_are_accepted():
  """Concrete arrays pass the checks (as in optax's dtype tests); the search still runs."""
  tx = jn.scale_by_zoom_linesearch(5, tol=jnp.array(0.0, jnp.bfloat16), curv_rtol=jnp.array(0.9))
  w = jnp.array([1.0, 2.0])
  fn = lambda x: jnp.sum(x**2)
  updates, state = tx.update(-w, tx.init(w), w, value=fn(w), grad=2 * w, value_fn=fn)
  assert state.learning_rate.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(updates)))


@pytest.mark.parametrize("make", [
    lambda: jn.scale_by_backtracking_linesearch(5), lambda: jn.scale_by_zoom_linesearch(5),
], ids=["backtracking", "zoom"])
def test_update_without_the_loss_names_what_is_missing(make):
  tx, w = make(), jnp.ones(2)
  with pytest.raises(TypeError, match="`value=`, `grad=`, `value_fn=`"):
    tx.update(-w, tx.init(w), w)
  with pytest.raises(TypeError, match="pass `grad=`"):
    tx.update(-w, tx.init(w), w, value=1.0, value_fn=jnp.sum)
  with pytest.raises(TypeError, match="`value_fn`.*must be the loss function"):
    tx.update(-w, tx.init(w), w, value=1.0, grad=w, value_fn="loss")


_HYPER = {
    "backtracking": (
        lambda **kw: jn.scale_by_backtracking_linesearch(5, increase_factor=1.5, **kw),
        ["slope_rtol", "decrease_factor", "max_learning_rate", "atol", "rtol"],
    ),
    "zoom": (
        lambda **kw: jn.scale_by_zoom_linesearch(5, increase_factor=2.0, **kw),
        ["tol", "slope_rtol", "curv_rtol", "approx_dec_rtol", "stepsize_precision"],
    ),
}


@pytest.mark.parametrize("dtype, other", [
    ("float16", "float64"), ("bfloat16", "float32"), ("float32", "bfloat16"), ("float64", "float16"),
])
@pytest.mark.parametrize("search", sorted(_HYPER))
def test_state_dtypes_are_stable(search, dtype, other):
  """Hyperparameters, the loss and `value` in other dtypes than the params: the state keeps its dtypes.

  Both branches of a ``lax.cond`` (the update, or the old state) must agree
  in type, which fails if any state leaf's dtype drifts.
  """
  make, names = _HYPER[search]
  with jax.enable_x64(True):
    tx = make(**{k: jnp.array(1e-5 if k != "decrease_factor" else 0.5, dtype=other) for k in names})
    w = jnp.array([1.0, 2.0], dtype=dtype)
    state = tx.init(w)
    value_fn = lambda x: jnp.sum(x**2).astype(other)
    pick = jax.random.randint(jax.random.key(0), (), 0, 2) == 0
    new = jax.lax.cond(
        pick, lambda x: tx.update(-x, state, x, value=jnp.asarray(5.0, other), grad=2 * x, value_fn=value_fn)[1],
        lambda x: state, w,
    )
    chex.assert_trees_all_equal_dtypes(new, state)
