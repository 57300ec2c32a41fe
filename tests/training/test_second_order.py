"""Tests for jaxopt_notes.second_order: Newton's method on small problems."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_notes import sgd
from jaxopt_notes.core.tree import apply_updates
from jaxopt_notes.training.loop import fit
from jaxopt_notes.training.second_order import newton, scale_by_newton


def _run(opt, loss, params, steps):
  state = opt.init(params)

  @jax.jit
  def step(params, state):
    grads = jax.grad(loss)(params)
    updates, state = opt.update(grads, state, params, value_fn=loss)
    return apply_updates(params, updates), state

  for _ in range(steps):
    params, state = step(params, state)
  return params


def _ill_conditioned_quadratic(dim=8, cond=1e4):
  # A = Q diag(lambda) Q' with eigenvalues from 1 to `cond`, in a rotated basis.
  rng = np.random.default_rng(0)
  q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
  eigs = np.logspace(0.0, math.log10(cond), dim)
  a = (q * eigs) @ q.T
  b = rng.normal(size=dim)
  return a, b, eigs


def test_one_step_solves_an_ill_conditioned_quadratic():
  a, b, eigs = _ill_conditioned_quadratic()
  assert np.linalg.cond(a) == pytest.approx(1e4, rel=1e-6)
  x_star = np.linalg.solve(a, b)
  with jax.enable_x64(True):
    aj, bj = jnp.asarray(a), jnp.asarray(b)
    loss = lambda p: 0.5 * p["x"] @ aj @ p["x"] - bj @ p["x"]
    x0 = {"x": jnp.ones(len(b))}
    x1 = _run(newton(), loss, x0, steps=1)["x"]
    assert x1.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(x1), x_star, rtol=1e-5, atol=1e-8)

    # Gradient descent at the largest stable step size (2 / (L + mu), the
    # best fixed rate) contracts the flattest direction by (1 - lr * mu)
    # per step: after 1000 steps that part of the error has barely moved.
    lr = 2.0 / (eigs[-1] + eigs[0])
    x_sgd = _run(sgd(lr), loss, x0, steps=1000)["x"]
    start = np.linalg.norm(np.ones(len(b)) - x_star)
    gap = np.linalg.norm(np.asarray(x_sgd) - x_star)
    flattest = np.linalg.eigh(a)[1][:, 0]
    shrink = (flattest @ (np.asarray(x_sgd) - x_star)) / (flattest @ (np.ones(len(b)) - x_star))
    np.testing.assert_allclose(shrink, (1.0 - lr * eigs[0]) ** 1000, rtol=1e-6)
    assert shrink > 0.8 and gap > 0.1 * start
    assert gap > 1e6 * np.linalg.norm(np.asarray(x1) - x_star)
    # The independent prediction of the same numbers: e_t = (I - lr A)^t e_0.
    predicted = np.linalg.matrix_power(np.eye(len(b)) - lr * a, 1000) @ (np.ones(len(b)) - x_star)
    np.testing.assert_allclose(gap, np.linalg.norm(predicted), rtol=1e-6)
    steps_needed = math.log(1e-5) / math.log(1.0 - lr * eigs[0])
    assert steps_needed > 10_000  # "thousands of steps", against Newton's one


def test_update_is_the_damped_newton_direction():
  a, b, _ = _ill_conditioned_quadratic(dim=5, cond=100.0)
  a, b = a.astype(np.float32), b.astype(np.float32)
  loss = lambda p: (0.5 * p["x"] @ a @ p["x"] - b @ p["x"] + 0.1 * jnp.sum(p["x"] ** 4)
                    + jnp.sum(p["y"] ** 2 * p["x"][:2]))
  params = {"x": jnp.linspace(-1.0, 1.0, 5), "y": jnp.array([0.5, -0.3])}
  grads = jax.grad(loss)(params)
  for lr, damping in [(1.0, 0.0), (0.5, 0.3)]:
    opt = newton(learning_rate=lr, damping=damping)
    update = jax.jit(lambda g, s, p: opt.update(g, s, p, value_fn=loss))
    updates, _ = update(grads, opt.init(params), params)
    # Independent: finite-dimensional Hessian by hand in numpy.
    flat = lambda v: np.concatenate([np.asarray(v["x"]), np.asarray(v["y"])])
    hessian = jax.jit(jax.hessian(lambda z: loss({"x": z[:5], "y": z[5:]})))
    h = np.asarray(hessian(jnp.asarray(flat(params))))
    expected = -lr * np.linalg.solve(h + damping * np.eye(7), flat(grads))
    chex.assert_trees_all_close(
        updates, {"x": expected[:5], "y": expected[5:]}, rtol=1e-4, atol=1e-6
    )


def test_rosenbrock_converges_in_few_damped_steps():
  rosen = lambda p: (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2
  start = jnp.array([-1.2, 1.0])
  solution = _run(newton(damping=1e-2), rosen, start, steps=20)
  np.testing.assert_allclose(solution, [1.0, 1.0], atol=1e-4)
  # Gradient methods are nowhere near after the same number of steps.
  adam_after = _run(optax.adam(1e-2), rosen, start, steps=20)
  assert float(jnp.max(jnp.abs(adam_after - 1.0))) > 0.5


def test_least_squares_in_one_full_batch_epoch_of_fit():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(50, 3)).astype(np.float32)
  y = (x @ np.array([1.0, -2.0, 0.5]) + 0.3 + 0.1 * rng.normal(size=50)).astype(np.float32)
  loss = lambda p, batch: jnp.mean((batch[0] @ p["w"] + p["b"] - batch[1]) ** 2)
  params, history = fit(loss, {"w": jnp.zeros(3), "b": jnp.zeros(())}, newton(), (x, y),
                        epochs=1, batch_size=None, key=None, shuffle=None, progress=False)
  design = np.concatenate([x, np.ones((50, 1), np.float32)], axis=1)
  coef = np.linalg.lstsq(design.astype(np.float64), y.astype(np.float64), rcond=None)[0]
  chex.assert_trees_all_close(params, {"w": coef[:3], "b": coef[3]}, rtol=1e-4, atol=1e-5)
  assert len(history["loss"]) == 1


def test_needs_value_fn_and_params():
  opt = newton()
  params = jnp.ones(3)
  state = opt.init(params)
  with pytest.raises(ValueError, match="value_fn"):
    opt.update(params, state, params)
  with pytest.raises(ValueError, match="params"):
    opt.update(params, state, None, value_fn=jnp.sum)


def test_too_many_parameters():
  big = {"w": jnp.zeros((100, 101))}
  with pytest.raises(ValueError, match="max_params=10,000"):
    newton().init(big)
  opt = newton(max_params=50)
  with pytest.raises(ValueError, match="51 parameters"):
    opt.update(jnp.ones(51), opt.init(jnp.ones(10)), jnp.ones(51), value_fn=jnp.sum)
  newton(max_params=10_100).init(big)  # raising the limit allows it


def test_bad_arguments():
  with pytest.raises(ValueError, match="damping"):
    scale_by_newton(damping=-1.0)
  with pytest.raises(ValueError, match="max_params"):
    newton(max_params=0)


# --- optax.second_order's curvature probes: hvp, hessian_diag, fisher_diag ------------------

_OPTAX_SECOND_ORDER = ("fisher_diag", "hessian_diag", "hvp")


def _mlp_problem(dtype):
  """A one-hidden-layer tanh regression on a nested params tree with a None leaf."""
  rng = np.random.default_rng(0)
  params = {"hidden": [jnp.asarray(rng.normal(size=(3, 4)), dtype), (jnp.asarray(rng.normal(size=4), dtype), None)],
            "out": {"w": jnp.asarray(rng.normal(size=4), dtype)}}
  inputs = jnp.asarray(rng.normal(size=(6, 3)), dtype)
  targets = jnp.asarray(rng.normal(size=6), dtype)

  def loss(p, x, y):
    h = jnp.tanh(x @ p["hidden"][0] + p["hidden"][1][0])
    return jnp.mean((h @ p["out"]["w"] - y) ** 2)

  return loss, params, inputs, targets


def _optax_quiet(name, *args):
  import warnings

  with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # optax 0.2.8 deprecates them; ours are not
    return getattr(optax.second_order, name)(*args)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_curvature_probes_match_optax_and_the_dense_hessian(dtype, jit):
  from jax.flatten_util import ravel_pytree

  import jaxopt_notes as jn

  with jax.enable_x64(dtype == "float64"):
    loss, params, inputs, targets = _mlp_problem(dtype)
    flat, unravel = ravel_pytree(params)
    v = jnp.asarray(np.random.default_rng(1).normal(size=flat.size), dtype)
    run = jax.jit if jit else (lambda f: f)
    ours = run(lambda p, v, x, y: (jn.hvp(loss, v, p, x, y), jn.hessian_diag(loss, p, x, y),
                                   jn.fisher_diag(loss, p, x, y)))(params, v, inputs, targets)
    ref = run(lambda p, v, x, y: (_optax_quiet("hvp", loss, v, p, x, y), _optax_quiet("hessian_diag", loss, p, x, y),
                                  _optax_quiet("fisher_diag", loss, p, x, y)))(params, v, inputs, targets)
    chex.assert_trees_all_equal(ours, ref)
    chex.assert_trees_all_equal_structs(ours[0], params)
    # The definitions: H v, diag(H) and the squared gradient, from the dense Hessian.
    hessian = jax.hessian(lambda f: loss(unravel(f), inputs, targets))(flat)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ravel_pytree(ours[0])[0], hessian @ v, **tol)
    np.testing.assert_allclose(ours[1], jnp.diag(hessian), **tol)
    grad = ravel_pytree(jax.grad(loss)(params, inputs, targets))[0]
    np.testing.assert_allclose(ours[2], grad**2, **tol)
    assert ours[1].dtype == ours[2].dtype == jnp.dtype(dtype)


def test_second_order_namespace_has_optax_names_and_signatures():
  import inspect

  import jaxopt_notes as jn

  assert "second_order" in jn.__all__
  for name in _OPTAX_SECOND_ORDER:
    def shape(fn):
      return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]

    ours = getattr(jn.second_order, name)
    assert ours is getattr(jn, name) and name in jn.__all__ and ours.__doc__
    assert shape(ours) == shape(inspect.unwrap(getattr(optax.second_order, name))), name
  assert jn.second_order.newton is newton  # the module keeps Newton's method


@pytest.mark.parametrize("call, named", [
    (lambda jn: jn.hvp("loss", jnp.ones(2), jnp.ones(2), None, None), "`loss`"),
    (lambda jn: jn.hessian_diag(None, jnp.ones(2), None, None), "`loss`"),
    (lambda jn: jn.fisher_diag(3.0, jnp.ones(2), None, None), "`negative_log_likelihood`"),
])
def test_probe_bad_arguments_name_the_argument(call, named):
  import jaxopt_notes as jn

  with pytest.raises(TypeError, match=named):
    call(jn)
