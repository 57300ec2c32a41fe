"""jaxopt_notes.flax.Optimizer: nnx.Optimizer's numbers, through the fused step."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxopt_notes as jn
import jaxopt_notes.flax as jnf
from tests.kernels import test_fused as tf


class _MLP(nnx.Module):
  def __init__(self, rngs):
    self.l1 = nnx.Linear(5, 32, rngs=rngs)
    self.l2 = nnx.Linear(32, 32, rngs=rngs)
    self.l3 = nnx.Linear(32, 2, rngs=rngs)

  def __call__(self, x):
    return self.l3(jnp.tanh(self.l2(jnp.tanh(self.l1(x)))))


_X = jax.random.normal(jax.random.key(0), (64, 5))
_Y = jnp.concatenate([jnp.sin(_X[:, :1]), -_X[:, 1:2]], axis=1)


def _loss(model):
  return jnp.mean((model(_X) - _Y) ** 2)


def _train(make_optimizer, tx, steps=8, donate=False, updates=False):
  """Losses, params and state after ``steps`` jitted steps (and the last
  update's return value with ``updates``: returning it changes XLA's fusion,
  and so the roundings, of the reference path)."""
  model = _MLP(nnx.Rngs(0))
  optimizer = make_optimizer(model, tx)

  def train_step(model, optimizer):
    loss, grads = nnx.value_and_grad(_loss)(model)
    change = optimizer.update(model, grads)
    return (loss, change) if updates else (loss, None)

  step = nnx.jit(train_step, donate_argnums=(0, 1) if donate else ())
  losses, change = [], None
  for _ in range(steps):
    loss, change = step(model, optimizer)
    losses.append(float(loss))
  out = (losses, nnx.state(model, nnx.Param), nnx.as_pure(optimizer.opt_state))
  return out + (change,) if updates else out


def _ours(fused):
  return lambda model, tx: jnf.Optimizer(model, tx, wrt=nnx.Param, fused=fused)


def _theirs(model, tx):
  return nnx.Optimizer(model, tx, wrt=nnx.Param)


# Optimizers whose kernel is bitwise on several leaves, and Adam (params to a few ulp).
_BITWISE = {
    "momentum": lambda: jn.sgd(0.05, momentum=0.9),
    "nesterov": lambda: jn.sgd(0.05, momentum=0.9, nesterov=True),
    "rmsprop": lambda: jn.rmsprop(1e-2),
    "adagrad": lambda: jn.adagrad(0.1),
}


@tf.needs_kernel
@pytest.mark.parametrize("name", list(_BITWISE))
@pytest.mark.parametrize("donate", [False, True])
def test_same_numbers_as_nnx_optimizer_through_the_kernel(name, donate):
  """fused=True: the kernel ran (it raises otherwise), and params, state and
  losses are nnx.Optimizer's, bitwise, with or without donation."""
  if name in ("rmsprop", "adagrad") and jn.fused_status().rsqrt_steps == 0:
    pytest.skip("XLA's rsqrt is not reproduced on this CPU: the kernel is refused here")
  got = _train(_ours(True), _BITWISE[name](), donate=donate)
  want = _train(_theirs, _BITWISE[name]())
  assert got[0] == want[0]
  tf._assert_bitwise(got[1:], want[1:])


@tf.needs_kernel
def test_update_returns_the_applied_change():
  """What update returns is the change of the params: nnx.Optimizer's updates up to rounding."""
  got = _train(_ours(True), jn.sgd(0.05, momentum=0.9), steps=3, updates=True)
  want = _train(_theirs, jn.sgd(0.05, momentum=0.9), steps=3, updates=True)
  chex.assert_trees_all_close(got[3], want[3], rtol=1e-5, atol=1e-7)
  assert max(float(jnp.abs(x).max()) for x in jax.tree.leaves(got[3])) > 1e-4


@tf.needs_kernel
def test_adam_on_several_leaves_within_ulps_and_state_bitwise():
  """Adam's documented exception: params to a few ulp per step, moments
  within the same (they follow the params' losses), over 8 donated steps."""
  got = _train(_ours(True), jn.adam(1e-2), donate=True)
  want = _train(_theirs, jn.adam(1e-2))
  np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
  chex.assert_trees_all_close(got[1], want[1], rtol=1e-5, atol=1e-7)
  chex.assert_trees_all_close(got[2], want[2], rtol=1e-4, atol=1e-9)


def test_optax_transform_takes_the_reference_path_bitwise():
  """A transform without a kernel: exactly nnx.Optimizer (fused=None), and
  fused=True says why it cannot run."""
  got = _train(_ours(None), optax.adamw(1e-2, weight_decay=1e-2))
  want = _train(_theirs, optax.adamw(1e-2, weight_decay=1e-2))
  assert got[0] == want[0]
  tf._assert_bitwise(got[1:], want[1:])
  with pytest.raises(ValueError, match="cannot use the fused kernel: this optimizer has no fused kernel"):
    _train(_ours(True), optax.adamw(1e-2), steps=1)


def test_fused_false_is_nnx_optimizer_bitwise():
  got = _train(_ours(False), jn.adam(1e-2))
  want = _train(_theirs, jn.adam(1e-2))
  assert got[0] == want[0]
  tf._assert_bitwise(got[1:], want[1:])


def test_it_is_an_nnx_optimizer_with_the_same_state():
  model = _MLP(nnx.Rngs(0))
  ours, theirs = _ours(None)(model, jn.adam(1e-3)), _theirs(model, jn.adam(1e-3))
  assert isinstance(ours, nnx.Optimizer)
  assert jax.tree.structure(nnx.as_pure(ours.opt_state)) == jax.tree.structure(
      nnx.as_pure(theirs.opt_state))
  assert int(ours.step[...]) == 0
  _, state = nnx.split(ours)
  assert "opt_state" in state and "step" in state


@pytest.mark.parametrize("bad", [1, "yes", np.bool_(True)])
def test_bad_fused_is_refused_at_construction(bad):
  with pytest.raises(TypeError, match="`fused` must be None, True or False"):
    jnf.Optimizer(_MLP(nnx.Rngs(0)), jn.adam(1e-3), wrt=nnx.Param, fused=bad)


def test_wrt_is_required_as_in_nnx():
  with pytest.raises(TypeError, match="wrt"):
    jnf.Optimizer(_MLP(nnx.Rngs(0)), jn.adam(1e-3))  # pylint: disable=missing-kwoa
