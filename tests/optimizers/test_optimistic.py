"""optimistic_gradient_descent, optimistic_adam and optimistic_adam_v2:
100-step trajectories equal to optax's (jit and op by op, float32 and float64,
float and schedule learning rates, each option that changes the math), the
deprecation and schedule handling of optimistic_adam, bad arguments naming
themselves, descent on a convex quadratic and convergence on a bilinear game."""

import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj

# A float learning rate in both dtypes, each schedule in one of them.
_LR_AND_DTYPE = [
    ("float", "float32"), ("float", "float64"),
    ("lambda", "float32"), ("optax_schedule", "float64"),
]


def _optimistic_adam(lib, *args, **kwargs):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    return lib.optimistic_adam(*args, **kwargs)


# name -> (learning rate, (lib, lr) -> optimizer), run with every kind of learning rate.
_BASE = {
    "optimistic_gradient_descent": (0.05, lambda lib, lr: lib.optimistic_gradient_descent(lr)),
    "optimistic_adam_v2": (0.02, lambda lib, lr: lib.optimistic_adam_v2(lr)),
}

# id -> lib -> optimizer, float learning rate, both dtypes.
_FLAGS = {
    "ogd-alpha-beta": lambda lib: lib.optimistic_gradient_descent(0.05, alpha=0.7, beta=0.1),
    "ogd-beta0": lambda lib: lib.optimistic_gradient_descent(0.05, beta=0.0),
    "oadam": lambda lib: _optimistic_adam(lib, 0.02),
    "oadam-optimism": lambda lib: _optimistic_adam(lib, 0.02, 0.5),
    "oadam-no-nesterov-b1-b2-eps": lambda lib: _optimistic_adam(
        lib, 0.02, None, 0.8, 0.99, 1e-3, nesterov=False),
    "oadam-eps_root": lambda lib: _optimistic_adam(lib, 0.02, eps_root=1e-8),
    "oadam_v2-alpha-beta": lambda lib: lib.optimistic_adam_v2(0.02, alpha=0.5, beta=2.0),
    "oadam_v2-no-nesterov": lambda lib: lib.optimistic_adam_v2(0.02, b1=0.5, b2=0.9, nesterov=False),
}


class TestOptimistic(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("lr_kind,dtype", _LR_AND_DTYPE)
  @pytest.mark.parametrize("name", sorted(_BASE))
  def test_matches_optax(self, name, lr_kind, dtype):
    value, make = _BASE[name]
    lr = tj.learning_rate(lr_kind, value)
    ours, _ = tj.compare_with_optax(self.variant, lambda: make(jn, lr), lambda: make(optax, lr), dtype)
    if lr_kind != "float":
      assert int(ours.state[-1].count) == tj.STEPS

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("case", sorted(_FLAGS))
  def test_flags_match_optax(self, case, dtype):
    make = _FLAGS[case]
    tj.compare_with_optax(self.variant, lambda: make(jn), lambda: make(optax), dtype)

  def test_bfloat16_mu_dtype_matches_optax(self):
    make = lambda lib: lib.optimistic_adam_v2(0.02, mu_dtype=jnp.bfloat16)
    ours, _ = tj.compare_with_optax(jax.jit, lambda: make(jn), lambda: make(optax))
    assert {x.dtype for x in jax.tree.leaves(ours.state[0].mu)} == {jnp.dtype(jnp.bfloat16)}


def test_optimistic_adam_is_deprecated_and_refuses_a_schedule_as_optax():
  with pytest.warns(DeprecationWarning, match="optimistic_adam_v2"):
    jn.optimistic_adam(0.1)
  with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="`learning_rate`"):
    jn.optimistic_adam(tj.learning_rate("lambda", 0.1))
  with pytest.warns(DeprecationWarning), pytest.raises(ValueError):
    optax.optimistic_adam(tj.learning_rate("lambda", 0.1))


def test_optimistic_adam_is_v2_with_lr_as_alpha():
  """optimistic_adam(lr, o) = optimistic_adam_v2(1.0, alpha=lr, beta=o), step for step."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    v1 = jn.optimistic_adam(0.02, 0.3)
  v2 = jn.optimistic_adam_v2(1.0, alpha=0.02, beta=0.3)
  ours, _ = tj.compare_with_optax(jax.jit, lambda: v1, lambda: v2)
  assert len(ours.state) == 3


_ALL = {
    "optimistic_gradient_descent": lambda: jn.optimistic_gradient_descent(0.05),
    "optimistic_adam": lambda: _optimistic_adam(jn, 0.05),
    "optimistic_adam_v2": lambda: jn.optimistic_adam_v2(0.05),
}


@pytest.mark.parametrize("name", sorted(_ALL))
def test_descends_a_convex_quadratic(name):
  """f(w) = sum h (w - c)^2 / 2: the loss falls 100-fold in 300 steps."""
  h = jnp.array([0.5, 1.0, 2.0])
  c = jnp.array([1.0, -2.0, 3.0])
  f = lambda w: 0.5 * jnp.sum(h * (w - c) ** 2)
  tx = _ALL[name]()
  params = jnp.zeros(3)
  state = tx.init(params)
  step = jax.jit(lambda p, s: tx.update(jax.grad(f)(p), s, p))
  start = float(f(params))
  for _ in range(300):
    updates, state = step(params, state)
    params = jn.apply_updates(params, updates)
  assert float(f(params)) < start / 100


def _bilinear_distance(tx, steps=2000):
  """min_x max_y x y from (1, 2): the distance to the saddle (0, 0) after ``steps``."""
  params = (jnp.asarray(1.0), jnp.asarray(2.0))

  def step(carry, _):
    (x, y), state = carry
    grads = (y, -x)  # descend in x, ascend in y
    updates, state = tx.update(grads, state, (x, y))
    return (optax.apply_updates((x, y), updates), state), None

  (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), length=steps)
  return float(jnp.hypot(*params))


def test_optimism_converges_on_a_bilinear_game_where_gradient_steps_spiral_out():
  """The paper's point: simultaneous gradient steps on min_x max_y xy spiral away from the
  saddle, optimistic ones converge to it (the same holds for optax's)."""
  start = float(np.hypot(1.0, 2.0))
  assert _bilinear_distance(jn.sgd(0.1)) > start
  assert _bilinear_distance(jn.optimistic_gradient_descent(0.1)) < 1e-3
  assert _bilinear_distance(jn.optimistic_adam_v2(1.0, alpha=1e-2, beta=1.0)) < 1e-2


NAN = float("nan")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("factory, valid, arg, value, error", [
    (jn.optimistic_gradient_descent, {"learning_rate": 0.1}, "learning_rate", NAN, ValueError),
    (jn.optimistic_gradient_descent, {"learning_rate": 0.1}, "learning_rate", None, TypeError),
    (jn.optimistic_gradient_descent, {"learning_rate": 0.1}, "alpha", NAN, ValueError),
    (jn.optimistic_gradient_descent, {"learning_rate": 0.1}, "alpha", lambda t: 1.0, TypeError),
    (jn.optimistic_gradient_descent, {"learning_rate": 0.1}, "beta", "1", TypeError),
    (jn.optimistic_adam, {"learning_rate": 0.1}, "learning_rate", float("inf"), ValueError),
    (jn.optimistic_adam, {"learning_rate": 0.1}, "learning_rate", "0.1", TypeError),
    (jn.optimistic_adam, {"learning_rate": 0.1}, "optimism", NAN, ValueError),
    (jn.optimistic_adam, {"learning_rate": 0.1}, "b1", 1.0, ValueError),
    (jn.optimistic_adam, {"learning_rate": 0.1}, "b2", -0.1, ValueError),
    (jn.optimistic_adam, {"learning_rate": 0.1}, "eps", -1.0, ValueError),
    (jn.optimistic_adam, {"learning_rate": 0.1}, "eps_root", NAN, ValueError),
    (jn.optimistic_adam, {"learning_rate": 0.1}, "mu_dtype", "notadtype", TypeError),
    (jn.optimistic_adam, {"learning_rate": 0.1}, "nesterov", "yes", TypeError),
    (jn.optimistic_adam_v2, {"learning_rate": 0.1}, "learning_rate", NAN, ValueError),
    (jn.optimistic_adam_v2, {"learning_rate": 0.1}, "alpha", NAN, ValueError),
    (jn.optimistic_adam_v2, {"learning_rate": 0.1}, "beta", float("inf"), ValueError),
    (jn.optimistic_adam_v2, {"learning_rate": 0.1}, "b1", 1.0, ValueError),
    (jn.optimistic_adam_v2, {"learning_rate": 0.1}, "b2", 1.5, ValueError),
    (jn.optimistic_adam_v2, {"learning_rate": 0.1}, "eps", -1.0, ValueError),
    (jn.optimistic_adam_v2, {"learning_rate": 0.1}, "eps_root", -1.0, ValueError),
    (jn.optimistic_adam_v2, {"learning_rate": 0.1}, "mu_dtype", "notadtype", TypeError),
    (jn.optimistic_adam_v2, {"learning_rate": 0.1}, "nesterov", None, TypeError),
])
def test_bad_argument_raises_naming_it(factory, valid, arg, value, error):
  with pytest.raises(error, match=f"`{arg}`"):
    factory(**{**valid, arg: value})
