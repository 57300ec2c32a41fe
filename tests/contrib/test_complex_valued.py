"""split_real_and_imaginary: complex trajectories bitwise equal to
optax.contrib's (adam and scale_by_param_block_norm inside, jit and op by op,
complex64 and complex128), equal to the inner transform run on the real
pairs, real leaves untouched, init state like optax's, a bad inner named."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from jaxopt_notes.contrib import _complex_valued as ours
from tests import _trajectory as tj
from tests.contrib import _common as cm


def _loss(z):
  return (z["z"].conj() * z["z"]).real.sum() + jnp.sum(z["r"] ** 2)


def _start(dtype):
  rng = np.random.default_rng(0)
  real = jnp.asarray(rng.normal(size=(2, 3)), dtype)
  imag = jnp.asarray(rng.normal(size=(2, 3)), dtype)
  return {"z": real + 1j * imag, "r": jnp.asarray(rng.normal(size=3), dtype)}


_INNER = {
    "adam": lambda: jn.adam(0.05),
    "optax-adam": lambda: optax.adam(0.05),
    "param-block-norm": lambda: jn.chain(jn.scale_by_param_block_norm(), jn.scale(-0.05)),
}


def _run(variant, tx, params, steps=cm.STEPS):
  update = variant(tx.update)
  grad = jax.jit(jax.grad(_loss))
  state = tx.init(params)
  history = []
  for _ in range(steps):
    g = jax.tree.map(jnp.conj, grad(params))
    u, state = update(g, state, params)
    params = jax.tree.map(lambda p, v: p + v, params, u)
    history.append(params)
  return history, state


class TestMatchesOptax(tj.VariantsTest):

  @chex.variants(with_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("inner", sorted(_INNER))
  def test_trajectory(self, inner, dtype):
    self._check(inner, dtype)

  @chex.variants(without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_trajectory_op_by_op_of_adam(self, dtype):
    """Op by op one inner transform suffices (eager runs are slow)."""
    self._check("adam", dtype)

  def _check(self, inner, dtype):
    with tj.precision(dtype):
      params = _start(dtype)
      got, got_state = _run(self.variant, ours.split_real_and_imaginary(_INNER[inner]()), params)
      want, want_state = _run(self.variant, optax.contrib.split_real_and_imaginary(_INNER[inner]()), params)
    chex.assert_trees_all_equal(got, want)
    assert isinstance(got_state, ours.SplitRealAndImaginaryState)
    tj.assert_states_close(got_state, want_state, **cm.BITWISE)
    assert not np.array_equal(np.asarray(got[-1]["z"]), np.asarray(params["z"]))


def test_equals_inner_on_real_pairs():
  """Adam on z = x + iy is Adam on the pair (x, y)."""
  params = _start("float32")
  history, _ = _run(lambda f: jax.jit(f), ours.split_real_and_imaginary(jn.adam(0.05)), params, 10)
  pair = {"z": (params["z"].real, params["z"].imag), "r": params["r"]}
  tx = jn.adam(0.05)
  state = tx.init(pair)
  loss = lambda p: _loss({"z": p["z"][0] + 1j * p["z"][1], "r": p["r"]})
  for _ in range(10):
    u, state = tx.update(jax.grad(loss)(pair), state, pair)
    pair = jn.apply_updates(pair, u)
  np.testing.assert_allclose(history[-1]["z"], pair["z"][0] + 1j * pair["z"][1], rtol=1e-6)
  np.testing.assert_allclose(history[-1]["r"], pair["r"], rtol=1e-6)


def test_init_state_like_optax():
  params = _start("float32")
  got = ours.split_real_and_imaginary(jn.adam(0.1)).init(params)
  want = optax.contrib.split_real_and_imaginary(optax.adam(0.1)).init(params)
  assert got._fields == want._fields
  tj.assert_states_close(got, want, **cm.BITWISE)
  mu = got.inner_state[0].mu["z"]
  assert isinstance(mu, ours.SplitRealAndImaginaryArrays) and mu.real.dtype == jnp.float32


def test_bad_inner_names_itself():
  cm.assert_raises_naming(ours.split_real_and_imaginary, dict(inner=3), TypeError, "inner")
