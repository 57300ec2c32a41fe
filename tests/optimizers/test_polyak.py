"""polyak_sgd: 100-step trajectories equal to optax's with ``value=`` the loss
(jit and op by op, float32 and float64, ``scaling`` as a float and as
schedules, each option that changes the math), what ``scaling`` does, bad
arguments naming themselves, and descent on a convex quadratic."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj
from tests.transforms.test_step_size import compare_with_value

# scaling as a float in both dtypes, each schedule in one of them.
_SCALING_AND_DTYPE = [
    ("float", "float32"), ("float", "float64"),
    ("lambda", "float32"), ("optax_schedule", "float64"),
]

# id -> keyword arguments, run with a float scaling in both dtypes.
_FLAGS = {
    "max_lr-f_min": {"max_learning_rate": 0.2, "f_min": -2.0},
    "sps+": {"f_min": 0.5, "variant": "sps+"},
    "eps": {"f_min": -1.0, "eps": 0.5},
}


class TestPolyakSgd(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("kind,dtype", _SCALING_AND_DTYPE)
  def test_matches_optax(self, kind, dtype):
    """Defaults but ``scaling``: params every step, updates and the chained state."""
    scaling = tj.learning_rate(kind, 0.5)
    ours, _ = compare_with_value(
        self.variant, lambda: jn.polyak_sgd(scaling=scaling), lambda: optax.polyak_sgd(scaling=scaling),
        dtype,
    )
    sgd_state, polyak_state = ours.state
    assert polyak_state == jn.EmptyState() and len(sgd_state) == 2
    if kind != "float":
      assert int(sgd_state[1].count) == tj.STEPS

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("case", sorted(_FLAGS))
  def test_flags_match_optax(self, case, dtype):
    kwargs = _FLAGS[case]
    compare_with_value(
        self.variant, lambda: jn.polyak_sgd(**kwargs), lambda: optax.polyak_sgd(**kwargs), dtype
    )


@pytest.mark.parametrize("max_learning_rate", [100.0, 0.01])
def test_scaling_divides_when_uncapped_and_multiplies_when_capped(max_learning_rate):
  """The documented rule, for ours and optax's: the norm is that of s g."""
  s, value = 0.5, 3.0
  params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(0.5)}
  grads = {"w": jnp.array([0.4, 0.2]), "b": jnp.array(-0.4)}
  sq = sum(float(jnp.sum(g**2)) for g in jax.tree.leaves(grads))  # 0.36
  gamma = min(value / (s**2 * sq), max_learning_rate)
  expected = jax.tree.map(lambda g: -gamma * s * g, grads)
  for lib in (jn, optax):
    tx = lib.polyak_sgd(max_learning_rate, scaling=s)
    updates, _ = tx.update(grads, tx.init(params), params, value=value)
    chex.assert_trees_all_close(updates, expected, rtol=1e-6)
  # Uncapped, the step is value / (s |g|^2) g: scaling by s = 0.5 doubles it.
  if max_learning_rate == 100.0:
    chex.assert_trees_all_close(expected, jax.tree.map(lambda g: -value / (s * sq) * g, grads), rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_params_keep_dtypes_like_optax(dtype):
  """bf16/fp16 params and a float32 loss: updates' dtypes and values are optax's, params stay."""
  params = o_params = {"w": jnp.linspace(-1.0, 1.0, 6, dtype=dtype).reshape(2, 3),
                       "b": jnp.array([0.5, -0.25, 1.0], dtype)}
  ours, theirs = jn.polyak_sgd(0.5, f_min=-1.0), optax.polyak_sgd(0.5, f_min=-1.0)
  state, o_state = ours.init(params), theirs.init(params)
  for t in range(3):
    grads = jax.tree.map(lambda p: (p + 0.1 * (t + 1)).astype(dtype), params)
    value = jnp.float32(2.0 - t)
    updates, state = ours.update(grads, state, params, value=value)
    o_updates, o_state = theirs.update(grads, o_state, o_params, value=value)
    assert jax.tree.map(lambda x: x.dtype, updates) == jax.tree.map(lambda x: x.dtype, o_updates)
    params, o_params = jn.apply_updates(params, updates), optax.apply_updates(o_params, o_updates)
  assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype(dtype)}
  chex.assert_trees_all_close(params, o_params, rtol=1e-2)


def test_update_needs_value():
  tx = jn.polyak_sgd()
  params = {"w": jnp.ones(2)}
  with pytest.raises(TypeError, match="`value`"):
    tx.update(params, tx.init(params), params)


@pytest.mark.parametrize("variant", ["sps", "sps+"])
def test_descends_a_convex_quadratic(variant):
  """f(w) = sum h (w - c)^2 / 2 >= 0 = f_min: the loss falls 1000-fold."""
  h = jnp.array([0.5, 1.0, 4.0])
  c = jnp.array([1.0, -2.0, 3.0])
  f = lambda w: 0.5 * jnp.sum(h * (w - c) ** 2)
  tx = jn.polyak_sgd(variant=variant)
  params = jnp.zeros(3)
  state = tx.init(params)

  @jax.jit
  def step(p, s):
    value, grad = jax.value_and_grad(f)(p)
    updates, s = tx.update(grad, s, p, value=value)
    return jn.apply_updates(p, updates), s

  start = float(f(params))
  for _ in range(100):
    params, state = step(params, state)
  assert float(f(params)) < start / 1000


NAN = float("nan")


@pytest.mark.parametrize("arg, value, error", [
    ("max_learning_rate", 0.0, ValueError), ("max_learning_rate", NAN, ValueError),
    ("max_learning_rate", "1", TypeError),
    ("scaling", None, TypeError), ("scaling", NAN, ValueError), ("scaling", "1", TypeError),
    ("scaling", jnp.ones(2), TypeError),
    ("f_min", NAN, ValueError), ("f_min", float("-inf"), ValueError),
    ("eps", -1.0, ValueError), ("eps", NAN, ValueError),
    ("variant", "sgd", ValueError), ("variant", 1, ValueError), ("variant", False, TypeError),
])
def test_bad_argument_raises_naming_it(arg, value, error):
  with pytest.raises(error, match=f"`{arg}`"):
    jn.polyak_sgd(**{arg: value})


def test_sign_of_the_step_is_descent_with_scaling_one():
  """With s = 1 the update is -min(gap / |g|^2, gamma_max) g (Loizou et al.'s formula)."""
  params = jnp.array([3.0, 4.0])
  tx = jn.polyak_sgd()
  updates, _ = tx.update(params, tx.init(params), params, value=12.5)
  np.testing.assert_allclose(updates, [-1.5, -2.0], rtol=1e-6)
