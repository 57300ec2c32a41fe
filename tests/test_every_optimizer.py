"""The checks every optimizer of the library passes, core and contrib alike.

As optax's ``contrib/_common_test.py``, over every entry of tests/_every.py:
it reaches the minimum of a quadratic, of Rosenbrock's function, of a matrix
quadratic and of a mixed vector-and-matrix target; ``jit`` equals op by op;
``inject_hyperparams`` over its learning rate equals the plain one;
``MultiSteps(k=1)`` equals the plain one; bfloat16 params keep the state's
dtypes and get bfloat16 updates; and an orbax round trip (through
``save_checkpoint``/``restore_checkpoint``) gives the state back bitwise.
The sharding check (``init`` under ``jit`` places the state like the params,
8 simulated devices) runs in a subprocess: tests/_every_sharded.py.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_notes as jn
from tests import _every

NAMES = sorted(_every.ALL)
# optax's convergence tolerance for these targets.
CLOSE = dict(rtol=3e-2, atol=3e-2)


def _step(spec, tx, objective):
  def step(params, state):
    value, grads = jax.value_and_grad(objective)(params)
    updates, state = tx.update(grads, state, params, **spec.update_kwargs(value, objective))
    return jn.apply_updates(params, updates), state
  return step


def _run(spec, tx, params, objective, steps, *, jit=True):
  """``steps`` steps from ``params``: one jitted ``lax.scan`` (or a Python loop op by op)."""
  step = _step(spec, tx, objective)
  state = tx.init(params)
  if not jit:
    for _ in range(steps):
      params, state = step(params, state)
    return params, state

  @jax.jit
  def run(params, state):
    return jax.lax.scan(lambda c, _: (step(*c), None), (params, state), length=steps)[0]

  return run(params, state)


_CASES = [(n, t) for n in NAMES for t in _every.ALL[n].targets]


@pytest.mark.parametrize("name, target", _CASES, ids=[f"{n}-{t}" for n, t in _CASES])
def test_reaches_the_minimum(name, target):
  spec = _every.ALL[name]
  start, end, objective = _every.target(target)
  params, state = _run(spec, spec.build(), start, objective, spec.steps)
  if spec.eval_params is not None:
    params = spec.eval_params(state, params)
  chex.assert_trees_all_close(params, end, **CLOSE)


def _plain(tree):
  """PRNG keys as their raw bits, so that every leaf compares as an array."""
  def leaf(x):
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
      return jax.random.key_data(x)
    return x
  return jax.tree.map(leaf, tree)


def _few_steps(spec, tx, *, jit=True, steps=3, dtype=jnp.float32):
  start, _, objective = _every.target(_every.MIXED, dtype)
  step = _step(spec, tx, objective)
  step = jax.jit(step) if jit else step
  params, state = start, tx.init(start)
  history = []
  for _ in range(steps):
    params, state = step(params, state)
    history.append(params)
  return _plain(history), _plain(state)


@pytest.mark.parametrize("name", NAMES)
def test_jit_equals_op_by_op(name):
  """float64, where XLA's fusion (FMAs, reassociated scalars) is the only difference."""
  spec = _every.ALL[name]
  with jax.enable_x64(True):
    jitted, s1 = _few_steps(spec, spec.build(), jit=True, dtype=jnp.float64)
    eager, s2 = _few_steps(spec, spec.build(), jit=False, dtype=jnp.float64)
  tol = spec.fused_tol or dict(rtol=1e-10, atol=1e-12)
  chex.assert_trees_all_close(jitted, eager, **tol)
  chex.assert_trees_all_close(s1, s2, **tol)


@pytest.mark.parametrize("name", NAMES)
def test_inject_hyperparams_equals_the_plain_one(name):
  """Only the learning rate is injected (a float32 array in the state; the
  plain one a Python float): optax's tolerance, 1e-5."""
  spec = _every.ALL[name]
  injected, s1 = _few_steps(spec, spec.injectable())
  plain, s2 = _few_steps(spec, spec.build())
  chex.assert_trees_all_close(injected, plain, rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(s1.inner_state, s2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_multisteps_of_one_equals_the_plain_one(name):
  """With k = 1 the mean of one gradient is that gradient, exactly; the step
  then runs inside MultiSteps' ``cond``, which XLA fuses on its own (float32:
  1 ulp apart, measured). float64 shows the arithmetic is the same."""
  spec = _every.ALL[name]
  with jax.enable_x64(True):
    multi, s1 = _few_steps(
        spec, jn.MultiSteps(spec.build(), every_k_schedule=1).gradient_transformation(),
        dtype=jnp.float64,
    )
    plain, s2 = _few_steps(spec, spec.build(), dtype=jnp.float64)
  tol = spec.fused_tol or dict(rtol=1e-12, atol=1e-15)
  chex.assert_trees_all_close(multi, plain, **tol)
  chex.assert_trees_all_close(s1.inner_opt_state, s2, **tol)


def _dtypes(tree):
  return jax.tree.map(lambda x: jnp.asarray(x).dtype, tree)


@pytest.mark.parametrize("name", NAMES)
def test_bfloat16_params_keep_their_dtypes(name):
  spec = _every.ALL[name]
  start, _, objective = _every.target(_every.MIXED, jnp.bfloat16)
  tx = spec.build()
  state0 = tx.init(start)
  grads = jax.grad(objective)(start)
  update = jax.jit(functools.partial(tx.update, **spec.update_kwargs(objective(start), objective)))
  updates, state = update(grads, state0, start)
  updates, state = update(grads, state, jn.apply_updates(start, updates))
  assert _dtypes(updates) == _dtypes(start)
  assert _dtypes(state) == _dtypes(state0)


def test_an_orbax_round_trip_restores_every_state_bitwise(tmp_path):
  """One checkpoint holding every optimizer's state after three steps."""
  params, states = None, {}
  for name in NAMES:
    spec = _every.ALL[name]
    history, states[name] = _few_steps(spec, spec.build())
    params = history[-1]
  jn.save_checkpoint(tmp_path, 3, params, states)
  template = jax.tree.map(lambda x: jnp.zeros_like(x) if isinstance(x, jax.Array) else x, states)
  got_params, got_states, step = jn.restore_checkpoint(
      tmp_path, params, jn.identity(), opt_state_template=template
  )
  assert step == 3
  chex.assert_trees_all_equal(got_params, params)
  for name in NAMES:
    assert jax.tree.structure(got_states[name]) == jax.tree.structure(states[name]), name
    for got, want in zip(jax.tree.leaves(_plain(got_states[name])), jax.tree.leaves(states[name])):
      assert got.dtype == want.dtype, name
      np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=name)
