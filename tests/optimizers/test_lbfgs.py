"""lbfgs: trajectories equal to optax's (with and without a line search), the
solutions scipy finds on standard test functions, learning_rate=None descending,
complex parameters, and argument checks."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.optimize

import jaxopt_notes as jn
from tests import _trajectory as tj
from tests.transforms import _linesearch_runs as runs

# Without a line search lbfgs is a plain step, which the shared 100-step harness drives.
_LR_AND_DTYPE = [
    ("float", "float32"), ("float", "float64"), ("lambda", "float32"), ("optax_schedule", "float64"),
]

_NO_SEARCH_FLAGS = {
    "memory3-unscaled": lambda lib: lib.lbfgs(0.05, memory_size=3, scale_init_precond=False, linesearch=None),
    "memory1": lambda lib: lib.lbfgs(0.05, memory_size=1, linesearch=None),
}

# id -> (problem, lib -> optimizer, reuse value/grad from the state, dtypes)
_WITH_SEARCH = {
    "default": ("rosenbrock", lambda lib: lib.lbfgs(), True, tj.DTYPES),
    "lr-memory4-unscaled": (
        "quadratic", lambda lib: lib.lbfgs(0.5, memory_size=4, scale_init_precond=False), False, ("float32",),
    ),
    "backtracking": (
        "logistic",
        lambda lib: lib.lbfgs(linesearch=lib.scale_by_backtracking_linesearch(20, store_grad=True)),
        True,
        ("float64",),
    ),
}


class TestMatchesOptax(tj.VariantsTest):
  """Jitted: every configuration. Op by op every update compiles its scans and
  while loop again (in optax too, ~0.3 s a step), so a few steps of the base
  configurations run that way."""

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("lr_kind,dtype", _LR_AND_DTYPE)
  def test_without_line_search(self, lr_kind, dtype):
    """lbfgs(lr, linesearch=None) for each kind of learning rate: 100 steps (6 op by op) as optax's."""
    learning_rate = tj.learning_rate(lr_kind, 0.05)
    make = lambda lib: lib.lbfgs(learning_rate, linesearch=None)
    steps = tj.STEPS if tj.is_jit(self.variant) else 6
    ours, _ = tj.compare_with_optax(
        self.variant, lambda: make(jn), lambda: make(optax), dtype, steps=steps,
        grads_fn=runs.steady_gradients(dtype),
    )
    assert int(ours.state[0].count) == steps

  @chex.variants(with_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("case", sorted(_NO_SEARCH_FLAGS))
  def test_flags_without_line_search(self, case, dtype):
    make = _NO_SEARCH_FLAGS[case]
    tj.compare_with_optax(
        self.variant, lambda: make(jn), lambda: make(optax), dtype, grads_fn=runs.steady_gradients(dtype)
    )

  @chex.variants(with_jit=True)
  @pytest.mark.parametrize("case, dtype", [(c, d) for c in sorted(_WITH_SEARCH) for d in _WITH_SEARCH[c][3]])
  def test_with_line_search(self, case, dtype):
    """With value=, grad=, value_fn=: params, updates and the whole state as optax's every step."""
    self._compare(case, dtype, 30)

  @chex.variants(without_jit=True)
  def test_with_line_search_op_by_op(self):
    self._compare("default", "float32", 3)

  def _compare(self, case, dtype, steps):
    problem, make, reuse, _ = _WITH_SEARCH[case]
    ours, _ = runs.compare_with_optax(self.variant, make, problem, dtype, steps, reuse=reuse)
    assert float(ours.values[-1]) < float(ours.values[0])


# ---------------------------------------------------------------------------
# Against scipy


def _zakharov(x):
  i = jnp.arange(1, x.shape[0] + 1, dtype=x.dtype)
  s = jnp.sum(0.5 * i * x)
  return jnp.sum(x**2) + s**2 + s**4


_SCIPY_PROBLEMS = {
    "rosenbrock-2": (runs.rosenbrock_value, np.zeros(2)),
    "rosenbrock-10": (runs.rosenbrock_value, np.linspace(-1.2, 1.2, 10)),
    "himmelblau": (lambda p: (p[0] ** 2 + p[1] - 11.0) ** 2 + (p[0] + p[1] ** 2 - 7.0) ** 2, np.ones(2)),
    "matyas": (lambda p: 0.26 * (p[0] ** 2 + p[1] ** 2) - 0.48 * p[0] * p[1], 6.0 * np.ones(2)),
    "zakharov": (_zakharov, np.array([600.0, 700.0, 200.0, 100.0, 90.0, 1e3])),
}


def _solve(opt, fn, params, maxiter=500, tol=1e-8):
  """Runs ``opt`` inside one jitted while loop until ``|grad| < tol``, reusing the search's evaluations."""
  value_and_grad = jn.value_and_grad_from_state(fn)

  def step(carry):
    params, state, count, _ = carry
    value, grad = value_and_grad(params, state=state)
    updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=fn)
    return jn.apply_updates(params, updates), state, count + 1, jn.global_norm(grad)

  def keep_going(carry):
    return (carry[3] >= tol) & (carry[2] < maxiter)

  start = (params, opt.init(params), 0, jnp.asarray(jnp.inf, params.dtype))
  params, _, count, _ = jax.jit(lambda c: jax.lax.while_loop(keep_going, step, c))(start)
  return params, int(count)


@functools.lru_cache(maxsize=None)
def _our_solution(name):
  """lbfgs()'s solution in float64 (one solve per problem, shared by both scipy methods)."""
  fn, x0 = _SCIPY_PROBLEMS[name]
  with jax.enable_x64(True):
    ours, count = _solve(jn.lbfgs(), fn, jnp.asarray(x0))
    return np.asarray(ours), count


@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B"])
@pytest.mark.parametrize("name", sorted(_SCIPY_PROBLEMS))
def test_reaches_scipy_solution(name, method):
  """lbfgs() with its zoom line search ends where scipy's quasi-Newton methods do, at their loss."""
  fn, x0 = _SCIPY_PROBLEMS[name]
  ours, count = _our_solution(name)
  with jax.enable_x64(True):
    grad = jax.jit(jax.grad(fn))
    ref = scipy.optimize.minimize(
        lambda x: float(fn(jnp.asarray(x))), x0, jac=lambda x: np.asarray(grad(jnp.asarray(x))),
        method=method, options={"gtol": 1e-10, "maxiter": 10_000} if method == "BFGS" else {"gtol": 1e-10, "ftol": 0},
    )
    np.testing.assert_allclose(ours, ref.x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fn(jnp.asarray(ours)), ref.fun, rtol=1e-5, atol=1e-8)
  assert count < 500


def test_steep_quadratic():
  """Curvature 1e8 along each axis: the scaled first step and the line search still reach 0."""
  mat = 1e4 * jnp.eye(2)
  ours, _ = _solve(jn.lbfgs(), lambda x: jnp.mean((mat @ x) ** 2), jnp.ones(2), tol=1e-5)
  np.testing.assert_allclose(ours, 0.0, atol=1e-5)


def test_learning_rate_none_descends():
  """optax's default learning_rate=None keeps the -1 of its chain: the first step goes down the gradient."""
  fn = runs.rosenbrock_value
  w = jnp.array([-1.2, 1.0, 0.3])
  for tx in [jn.lbfgs(), jn.lbfgs(linesearch=None)]:
    value, grad = jax.value_and_grad(fn)(w)
    updates, state = tx.update(grad, tx.init(w), w, value=value, grad=grad, value_fn=fn)
    assert float(jnp.vdot(updates, grad)) < 0
  assert [type(s).__name__ for s in jn.lbfgs().init(w)] == [
      "ScaleByLBFGSState", "EmptyState", "ScaleByZoomLinesearchState"
  ]


def test_zoom_keeps_the_loss_decreasing():
  """Each accepted step passes sufficient decrease, so the loss never rises."""
  fn = runs.rosenbrock_value
  tx = jn.lbfgs()
  update = jax.jit(functools.partial(tx.update, value_fn=fn))
  value_and_grad = jax.jit(jn.value_and_grad_from_state(fn))
  w = jnp.asarray(np.linspace(-1.0, 1.5, 6), jnp.float32)
  state, values = tx.init(w), []
  for _ in range(25):
    value, grad = value_and_grad(w, state=state)
    updates, state = update(grad, state, w, value=value, grad=grad)
    w = jn.apply_updates(w, updates)
    values.append(float(value))
  assert all(b <= a for a, b in zip(values, values[1:]))
  assert values[-1] < 1e-2 * values[0]


@pytest.mark.parametrize("search", ["zoom", "backtracking"])
def test_complex_params_match_the_real_problem(search):
  """f(z) = sum |M z|^1.5 over C^2 reaches the minimizer of the same loss written over R^4."""
  mat = jnp.array([[1, -2], [3, 4], [-4 + 2j, 5 - 3j], [-2 - 2j, 6]])
  f_complex = lambda z: jnp.sum(jnp.abs(mat @ z) ** 1.5)
  to_complex = lambda x: x[0] + 1j * x[1]
  make = {
      "zoom": lambda: jn.lbfgs(linesearch=jn.scale_by_zoom_linesearch(20, initial_guess_strategy="one")),
      "backtracking": lambda: jn.lbfgs(linesearch=jn.scale_by_backtracking_linesearch(20, store_grad=True)),
  }[search]
  z0 = jnp.array([1 - 1j, 0 + 1j])

  def solve(fn, params):
    # Complex gradients are conjugated before they become updates.
    tx, value_and_grad = make(), jax.value_and_grad(fn)

    def step(carry):
      params, state, count, _ = carry
      value, grad = value_and_grad(params)
      grad = jax.tree.map(jnp.conj, grad)
      updates, state = tx.update(grad, state, params, value=value, grad=grad, value_fn=fn)
      return jn.apply_updates(params, updates), state, count + 1, jn.global_norm(grad)

    start = (params, tx.init(params), 0, jnp.asarray(jnp.inf))
    return jax.jit(lambda c: jax.lax.while_loop(lambda c: (c[3] >= 1e-5) & (c[2] < 500), step, c))(start)[0]

  sol_complex = solve(f_complex, z0)
  sol_real = solve(lambda x: f_complex(to_complex(x)), jnp.stack([z0.real, z0.imag]))
  np.testing.assert_allclose(sol_complex, to_complex(sol_real), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kwargs, error, name", [
    ({"memory_size": 0}, ValueError, "memory_size"),
    ({"memory_size": 1.5}, TypeError, "memory_size"),
    ({"scale_init_precond": "yes"}, TypeError, "scale_init_precond"),
    ({"linesearch": "zoom"}, TypeError, "linesearch"),
    ({"learning_rate": "0.1"}, TypeError, "learning_rate"),
    ({"learning_rate": float("nan")}, ValueError, "learning_rate"),
])
def test_bad_argument_is_named(kwargs, error, name):
  with pytest.raises(error, match=f"`{name}`"):
    jn.lbfgs(**kwargs)


def test_optax_line_search_is_accepted():
  """An optax line search fits in our chain, keeps its extra arguments and gives our search's step."""
  fn = lambda w: jnp.sum((w - jnp.array([1.0, -2.0, 0.5])) ** 2)
  w = jnp.zeros(3)
  value, grad = jax.value_and_grad(fn)(w)
  steps = []
  for search in [optax.scale_by_zoom_linesearch(10, initial_guess_strategy="one"),
                 jn.scale_by_zoom_linesearch(10, initial_guess_strategy="one")]:
    tx = jn.lbfgs(linesearch=search)
    updates, state = tx.update(grad, tx.init(w), w, value=value, grad=grad, value_fn=fn)
    steps.append(updates)
    assert float(fn(jn.apply_updates(w, updates))) < float(value)
    assert int(state[-1].info.num_linesearch_steps) >= 1
  np.testing.assert_array_equal(steps[0], steps[1])


def test_update_without_the_loss_names_what_is_missing():
  tx, w = jn.lbfgs(), jnp.ones(2)
  with pytest.raises(TypeError, match="`value=`, `grad=`, `value_fn=`"):
    tx.update(w, tx.init(w), w)
  with pytest.raises(TypeError, match="pass `value_fn=`"):
    tx.update(w, tx.init(w), w, value=1.0, grad=w)


def test_inside_fit_as_optax():
  """fit passes value=, grad=, value_fn=: our lbfgs gives optax.lbfgs's params (least squares)."""
  rng = np.random.default_rng(1)
  x = rng.normal(size=(50, 3)).astype(np.float32)
  y = (x @ np.array([1.0, -2.0, 0.5]) + 0.3 + 0.1 * rng.normal(size=50)).astype(np.float32)
  loss = lambda p, batch: jnp.mean((batch[0] @ p["w"] + p["b"] - batch[1]) ** 2)
  runs = [
      jn.fit(loss, {"w": jnp.zeros(3), "b": jnp.zeros(())}, lib.lbfgs(), (x, y), epochs=8, batch_size=None,
             key=None, shuffle=None, progress=False)
      for lib in (jn, optax)
  ]
  chex.assert_trees_all_close(runs[0][0], runs[1][0], rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(runs[0][1]["loss"], runs[1][1]["loss"], rtol=1e-6)
  coef = np.linalg.lstsq(np.concatenate([x, np.ones((50, 1))], axis=1), y.astype(np.float64), rcond=None)[0]
  np.testing.assert_allclose(runs[0][0]["w"], coef[:3], rtol=1e-4, atol=1e-5)
