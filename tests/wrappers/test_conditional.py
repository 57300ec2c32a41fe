"""conditionally_transform and conditionally_mask around jn.adam: 100-step
trajectories equal to optax's around optax.adam, skipped steps leave the inner
state untouched, extra arguments reach the condition, bad arguments named."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj

_CONDITIONS = {
    "every-third-skipped": lambda step: step % 3 != 2,
    "after-warmup": lambda step: step >= 40,
}

_WRAPPERS = {
    "transform": (jn.conditionally_transform, optax.conditionally_transform),
    "mask": (jn.conditionally_mask, optax.conditionally_mask),
}


def _compare(variant, make_ours, make_ref, dtype):
  """tj.compare_with_optax, but optax's run is always jitted.

  Eagerly, optax's lax.cond compiles both branches at every step (slow) and
  rounds as compiled code; ours branches in Python then, so an eager run is
  held to the eager-versus-compiled float32 tolerance (rtol 1e-5).
  """
  with tj.precision(dtype):
    params = tj.make_params(0, dtype)
    problem = tj.make_problem(params, 1)
    grads_fn = lambda t, p: tj.loss_grad(problem, p, np.int32(t))
    ours_tx, ref_tx = make_ours(), make_ref()
    ours = tj.run_trajectory(variant(ours_tx.update), ours_tx.init(params), params, grads_fn=grads_fn)
    ref = tj.run_trajectory(jax.jit(ref_tx.update), ref_tx.init(params), params, grads_fn=grads_fn)
    tol = tj.tolerance(dtype)
    if not tj.is_jit(variant) and dtype == "float32":
      tol["rtol"] = 1e-5
    tj.assert_trajectories_close(ours, ref, dtype, initial_params=params, **tol)
  return ours


class TestTrajectories(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("condition", sorted(_CONDITIONS))
  @pytest.mark.parametrize("wrapper", sorted(_WRAPPERS))
  def test_adam_inside_matches_optax(self, wrapper, condition, dtype):
    """wrapper(adam, c) then a step: params at every step, updates, and the wrapper's state."""
    ours_wrap, optax_wrap = _WRAPPERS[wrapper]
    cond = _CONDITIONS[condition]
    # conditionally_transform passes raw gradients when skipping: scale them for a sane step.
    after = 0.05 if wrapper == "transform" else 1.0
    ours = _compare(
        self.variant,
        lambda: jn.chain(ours_wrap(jn.adam(0.05), cond), jn.scale(after)),
        lambda: optax.chain(optax_wrap(optax.adam(0.05), cond), optax.scale(after)),
        dtype,
    )
    state = ours.state[0]
    assert int(state.step) == tj.STEPS
    ran = sum(bool(cond(t)) for t in range(tj.STEPS))
    assert int(state.inner_state[0].count) == ran  # adam's count: only the steps that ran
    skipped = [t for t in range(tj.STEPS) if not cond(t)]
    for g, u in zip(jax.tree.leaves(ours.grads), jax.tree.leaves(ours.updates)):
      expected = g[skipped] * 0.05 if wrapper == "transform" else np.zeros_like(g[skipped])
      np.testing.assert_array_equal(u[skipped], expected)


def test_skipped_step_keeps_the_inner_state_exactly():
  for make in (jn.conditionally_transform, jn.conditionally_mask):
    tx = make(jn.adam(0.1), lambda step: step == 0)
    params = {"w": jnp.ones(3)}
    _, s1 = tx.update({"w": jnp.array([1.0, 2.0, 3.0])}, tx.init(params), params)
    _, s2 = tx.update({"w": jnp.array([jnp.nan, 5.0, 6.0])}, s1, params)
    chex.assert_trees_all_equal(s1.inner_state, s2.inner_state)
    assert int(s2.step) == 2


@pytest.mark.parametrize("wrapper", sorted(_WRAPPERS))
def test_extra_args_reach_condition_and_inner(wrapper):
  """forward_extra_args=True passes value= to the condition; the inner sees it either way."""
  ours_wrap, optax_wrap = _WRAPPERS[wrapper]

  def cond(step, value=None):
    return value < 0.5

  seen = []

  def inner(lib):
    def update(updates, state, params=None, *, value=None, **_):
      seen.append(value)
      return jax.tree.map(lambda u: 2 * u, updates), state
    return lib.GradientTransformationExtraArgs(lambda p: lib.EmptyState(), update)

  ours = ours_wrap(inner(jn), cond, forward_extra_args=True)
  theirs = optax_wrap(inner(optax), cond, forward_extra_args=True)
  params = {"w": jnp.ones(2)}
  s, r = ours.init(params), theirs.init(params)
  for value in (0.1, 0.9, 0.3):
    u, s = jax.jit(ours.update)(params, s, params, value=value)
    v, r = jax.jit(theirs.update)(params, r, params, value=value)
    chex.assert_trees_all_equal(u, v)
    assert float(u["w"][0]) == (2.0 if value < 0.5 else (1.0 if wrapper == "transform" else 0.0))
  seen.clear()
  ours.update(params, s, params, value=0.2)  # eager: the inner gets the very value
  assert seen == [0.2]
  with pytest.raises(TypeError):
    # Without forwarding, the condition is called with the step only.
    jn.conditionally_mask(inner(jn), lambda step, value: value < 0.5).update(params, s, value=0.1)


def test_state_layouts_match_optax():
  assert jn.ConditionallyTransformState._fields == optax.ConditionallyTransformState._fields
  assert jn.ConditionallyMaskState._fields == optax.ConditionallyMaskState._fields
  params = {"w": jnp.ones(2)}
  for ours, theirs in _WRAPPERS.values():
    tj.assert_states_close(ours(jn.sgd(0.1, 0.9), lambda s: True).init(params),
                           theirs(optax.sgd(0.1, 0.9), lambda s: True).init(params))


@pytest.mark.parametrize("wrapper", sorted(_WRAPPERS))
@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        (dict(inner="adam"), TypeError, "inner"),
        (dict(should_transform_fn=3), TypeError, "should_transform_fn"),
        (dict(forward_extra_args="yes"), TypeError, "forward_extra_args"),
    ],
)
def test_bad_arguments_are_named(wrapper, kwargs, error, name):
  valid = dict(inner=jn.sgd(0.1), should_transform_fn=lambda step: True)
  with pytest.raises(error, match=f"`{name}`"):
    _WRAPPERS[wrapper][0](**{**valid, **kwargs})
