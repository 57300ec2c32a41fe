"""inject_stateful_hyperparams: warns as optax's deprecated alias does, and
around jn.adam / jn.scale gives optax's numbers and state with stateful
schedules, driven by the step alone (100-step trajectories) or by extra
arguments of update."""

import warnings
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj


class DecayState(NamedTuple):
  rate: jax.Array


class MultiplicativeDecay:
  """A stateful schedule whose value is its state: ``rate <- factor * rate`` each step."""

  def __init__(self, start, factor):
    self.start, self.factor = start, factor

  def init(self):
    return DecayState(rate=jnp.asarray(self.start, jnp.float32))

  def update(self, state, **extra_args):
    del extra_args
    return DecayState(rate=state.rate * self.factor)

  def __call__(self, state, **extra_args):
    del extra_args
    return state.rate


class PlateauState(NamedTuple):
  best: jax.Array
  scale: jax.Array


class HalveOnPlateau:
  """Halves the value whenever the ``value=`` passed to update fails to improve (note 004)."""

  def init(self):
    return PlateauState(best=jnp.asarray(jnp.inf, jnp.float32), scale=jnp.ones([], jnp.float32))

  def update(self, state, *, value, **extra_args):
    del extra_args
    improved = value < state.best
    return PlateauState(best=jnp.minimum(value, state.best),
                        scale=jnp.where(improved, state.scale, state.scale / 2))

  def __call__(self, state, **extra_args):
    del extra_args
    return 0.05 * state.scale


def _quiet(wrap, *args):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    return wrap(*args)


def test_warns_like_optax_and_is_inject_hyperparams():
  with pytest.warns(DeprecationWarning, match="inject_hyperparams"):
    factory = jn.inject_stateful_hyperparams(jn.adam)
  with pytest.warns(DeprecationWarning):
    optax.inject_stateful_hyperparams(optax.adam)
  params = {"w": jnp.ones(2)}
  tj.assert_states_close(
      factory(learning_rate=0.1).init(params), jn.inject_hyperparams(jn.adam)(learning_rate=0.1).init(params)
  )


class TestTrajectories(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_adam_with_stateful_rate_matches_optax(self, dtype):
    """A stateful learning rate and a plain schedule for b1, inside adam."""
    b1 = tj.learning_rate("optax_schedule", 0.9)
    make = lambda lib: _quiet(lib.inject_stateful_hyperparams, lib.adam)(
        learning_rate=MultiplicativeDecay(0.05, 0.98), b1=b1
    )
    ours, _ = tj.compare_with_optax(self.variant, lambda: make(jn), lambda: make(optax), dtype)
    np.testing.assert_allclose(
        float(ours.state.hyperparams_states["learning_rate"].rate), 0.05 * 0.98**tj.STEPS, rtol=1e-5
    )
    assert int(ours.state.hyperparams_states["b1"].count) == tj.STEPS

  @chex.variants(with_jit=True, without_jit=True)
  def test_static_args_and_hyperparam_dtype(self):
    make = lambda lib: _quiet(lib.inject_stateful_hyperparams, lib.sgd, ("nesterov",), jnp.float32)(
        learning_rate=MultiplicativeDecay(0.05, 0.99), momentum=0.9, nesterov=True
    )
    ours, _ = tj.compare_with_optax(self.variant, lambda: make(jn), lambda: make(optax))
    assert ours.state.hyperparams["momentum"].dtype == jnp.float32


@pytest.mark.parametrize("jit", [True, False])
def test_schedule_driven_by_extra_args_matches_optax(jit):
  """The value passed to update drives the schedule's state, in ours as in optax."""
  make = lambda lib: _quiet(lib.inject_stateful_hyperparams, lib.scale)(step_size=HalveOnPlateau())
  ours, theirs = make(jn), make(optax)
  params = {"w": jnp.linspace(-1.0, 1.0, 4), "b": jnp.ones(2)}
  s, r = ours.init(params), theirs.init(params)
  ours_update = jax.jit(ours.update) if jit else ours.update
  losses = [3.0, 2.0, 2.5, 1.0, 1.5, 1.2, 0.5]
  for loss in losses:
    g = jax.tree.map(lambda p: p * loss, params)
    u, s = ours_update(g, s, params, value=jnp.float32(loss))
    v, r = jax.jit(theirs.update)(g, r, params, value=jnp.float32(loss))
    chex.assert_trees_all_close(u, v, rtol=1e-6)
  tj.assert_states_close(s, r)
  # Three non-improving losses (2.5, 1.5, 1.2) halved the step three times.
  assert float(s.hyperparams_states["step_size"].scale) == 0.125


@pytest.mark.parametrize(
    "args, error, name",
    [
        ((3,), TypeError, "inner_factory"),
        ((jn.adam, 3), TypeError, "static_args"),
        ((jn.adam, (), "nodtype"), TypeError, "hyperparam_dtype"),
    ],
)
def test_bad_arguments_are_named(args, error, name):
  with pytest.raises(error, match=f"`{name}`"):
    _quiet(jn.inject_stateful_hyperparams, *args)
