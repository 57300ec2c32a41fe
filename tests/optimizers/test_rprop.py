"""rprop: 100-step trajectories equal to optax's (jit and op by op, float32 and
float64, each option that changes the math), its learning rate refused as a
schedule, bad arguments naming themselves, and descent on a convex quadratic."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj

# id -> lib -> optimizer
_CASES = {
    "lr0.01": lambda lib: lib.rprop(0.01),
    "lr0.1": lambda lib: lib.rprop(0.1),
    "etas": lambda lib: lib.rprop(0.02, eta_minus=0.3, eta_plus=1.5),
    "step-bounds": lambda lib: lib.rprop(0.02, min_step_size=0.01, max_step_size=0.05),
}


class TestRprop(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("case", sorted(_CASES))
  def test_matches_optax(self, case, dtype):
    """Params every step, updates, and the state (step sizes, stored steps, EmptyState)."""
    make = _CASES[case]
    ours, _ = tj.compare_with_optax(self.variant, lambda: make(jn), lambda: make(optax), dtype)
    assert len(ours.state) == 2 and ours.state[1] == jn.EmptyState()

  @chex.variants(with_jit=True, without_jit=True)
  def test_first_update_is_zero_as_in_optax(self):
    """The documented lag (optax 0.2.8): the first step moves nothing, the second by -lr sign(g)."""
    tx = jn.rprop(0.1)
    update = self.variant(tx.update)
    params = {"w": jnp.array([1.0, -2.0, 0.5])}
    grads = {"w": jnp.array([0.3, -0.7, 0.0])}
    state = tx.init(params)
    u1, state = update(grads, state, params)
    u2, _ = update(grads, state, params)
    np.testing.assert_array_equal(u1["w"], 0.0)
    np.testing.assert_allclose(u2["w"], -0.1 * np.sign(grads["w"]), rtol=1e-6)

  def test_schedule_is_refused_naming_learning_rate(self):
    """optax takes it and fails at init; ours refuses it when built."""
    with pytest.raises(TypeError, match="`learning_rate`"):
      jn.rprop(tj.learning_rate("lambda", 0.1))
    with pytest.raises(TypeError):
      optax.rprop(tj.learning_rate("lambda", 0.1)).init(jnp.ones(2))


def test_descends_a_convex_quadratic():
  """f(w) = sum h (w - c)^2 / 2 with condition number 100: the loss falls 100-fold."""
  h = jnp.array([0.1, 1.0, 10.0])
  c = jnp.array([1.0, -2.0, 3.0])
  f = lambda w: 0.5 * jnp.sum(h * (w - c) ** 2)
  tx = jn.rprop(0.1)
  params = jnp.zeros(3)
  state = tx.init(params)
  step = jax.jit(lambda p, s: tx.update(jax.grad(f)(p), s, p))
  start = float(f(params))
  for _ in range(100):
    updates, state = step(params, state)
    params = jn.apply_updates(params, updates)
  assert float(f(params)) < start / 100


NAN = float("nan")


@pytest.mark.parametrize("arg, value, error", [
    ("learning_rate", 0.0, ValueError), ("learning_rate", NAN, ValueError),
    ("learning_rate", "0.1", TypeError), ("learning_rate", jnp.ones(2), TypeError),
    ("eta_minus", 0.0, ValueError), ("eta_minus", 1.2, ValueError), ("eta_minus", "0.5", TypeError),
    ("eta_plus", 0.5, ValueError), ("eta_plus", NAN, ValueError),
    ("min_step_size", -1.0, ValueError), ("min_step_size", 60.0, ValueError),
    ("max_step_size", 0.0, ValueError), ("max_step_size", float("inf"), ValueError),
])
def test_bad_argument_raises_naming_it(arg, value, error):
  with pytest.raises(error, match=f"`{arg}`"):
    jn.rprop(**{"learning_rate": 0.1, arg: value})
