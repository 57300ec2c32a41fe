"""optax's own alias_test properties, for a family of our optimizers (shared by its test modules).

:func:`property_tests` returns test functions; a test module binds them to
``test_*`` names so pytest collects them there::

  (test_minimises_optax_targets, test_inject_hyperparams_gives_the_same_step,
   test_updates_keep_the_gradient_dtype, test_learning_rate_none_is_refused_naming_it) = (
      _optax_properties.property_tests(SETTINGS, TARGETS, NAMES))
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj


def _parabola():
  start, target = jnp.array([-1.0, 10.0, 1.0]), jnp.array([1.0, -1.0, 1.0])
  return start, target, lambda p: jnp.sum(jnp.square(p - target))


def _rosenbrock():
  start, target = jnp.array([0.0, 0.0]), jnp.array([1.0, 1.0])
  return start, target, lambda p: (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2


def _minimise(tx, start, objective, steps=10_000):
  def step(carry, _):
    params, state = carry
    updates, state = tx.update(jax.grad(objective)(params), state, params)
    return (optax.apply_updates(params, updates), state), None

  (params, _), _ = jax.jit(lambda c: jax.lax.scan(step, c, None, length=steps))((start, tx.init(start)))
  return params


def property_tests(settings, targets, names):
  """Tests for ``settings`` (optax's alias_test kwargs by name), ``targets`` ((name, problem) pairs)
  and ``names`` (the optimizers that take a learning rate)."""

  @pytest.mark.parametrize("name, target", targets)
  def test_minimises_optax_targets(name, target):
    """optax's test_optimization: 10,000 steps reach the minimiser within 3e-2."""
    start, minimiser, objective = {"parabola": _parabola, "rosenbrock": _rosenbrock}[target]()
    params = _minimise(getattr(jn, name)(**settings[name]), start, objective)
    np.testing.assert_allclose(params, minimiser, rtol=3e-2, atol=3e-2)

  @pytest.mark.parametrize("name", sorted(settings))
  def test_inject_hyperparams_gives_the_same_step(name):
    """optax's test_optimizers_can_be_wrapped_in_inject_hyperparams (its tolerances:
    injected hyperparameters are float32 arrays, so ``1 - b2`` rounds differently),
    and the injected step equal to optax's injected step."""
    kwargs = settings[name]
    params = [-jnp.ones((2, 3)), jnp.ones((2, 5, 2))]
    grads = [jnp.ones((2, 3)), -jnp.ones((2, 5, 2))]

    def step(tx):
      return jax.jit(tx.update)(grads, jax.jit(tx.init)(params), params)

    updates, state = step(getattr(jn, name)(**kwargs))
    updates_i, state_i = step(jn.inject_hyperparams(getattr(jn, name))(**kwargs))
    chex.assert_trees_all_close(updates_i, updates, rtol=1e-3)
    chex.assert_trees_all_close(state_i.inner_state, state, rtol=1e-4)
    updates_o, state_o = step(optax.inject_hyperparams(getattr(optax, name))(**kwargs))
    chex.assert_trees_all_close(updates_i, updates_o, **tj.tolerance("float32"))
    tj.assert_states_close(state_i.inner_state, state_o.inner_state)

  @pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
  @pytest.mark.parametrize("name", sorted(settings))
  def test_updates_keep_the_gradient_dtype(name, dtype):
    """optax's test_preserve_dtype, jitted."""
    tx = getattr(jn, name)(**settings[name])
    params = jnp.array([1.0, 2.0], dtype)
    grads = jax.grad(lambda x: jnp.sum(x**2))(params)
    updates, _ = jax.jit(tx.update)(grads, jax.jit(tx.init)(params), params)
    assert updates.dtype == grads.dtype

  @pytest.mark.parametrize("name", sorted(names))
  def test_learning_rate_none_is_refused_naming_it(name):
    """optax reads None as no scaling, which also skips the sign flip (it climbs)."""
    params, grads = {"w": jnp.array([1.0, -2.0])}, {"w": jnp.array([0.5, -0.5])}
    theirs = getattr(optax, name)(None)
    climbed = optax.apply_updates(params, theirs.update(grads, theirs.init(params), params)[0])
    assert float(jnp.vdot(climbed["w"] - params["w"], grads["w"])) > 0
    with pytest.raises(TypeError, match="`learning_rate` must be a number or a schedule, not None"):
      getattr(jn, name)(None)

  return (test_minimises_optax_targets, test_inject_hyperparams_gives_the_same_step,
          test_updates_keep_the_gradient_dtype, test_learning_rate_none_is_refused_naming_it)
