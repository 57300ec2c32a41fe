"""inject_hyperparams: optax's numbers and layout, and mid-run changes without recompiling."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from jaxopt_notes.wrappers.hyperparams import (
  InjectHyperparamsState,
  InjectStatefulHyperparamsState,
  WrappedSchedule,
  WrappedScheduleState,
  inject_hyperparams,
)
from tests.wrappers import _wrapper_runs as wr

LONG = 150  # steps of a jitted run
SHORT = 10  # steps of an eager run


def _params(dtype=jnp.float32):
  return {"w": jnp.linspace(-1.0, 1.0, 6, dtype=dtype).reshape(2, 3), "b": jnp.zeros(3, dtype)}


def _noise(steps, seed=0):
  return wr.noise(_params(), steps, seed)


def _compare(ours, theirs, variant=None):
  """``wr.compare`` on these params and noise; returns our final ``(params, state)``."""
  return wr.compare(ours, theirs, _params(), _noise, variant, long=LONG, short=SHORT)[0]


class InjectEqualsOptaxTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_adam_long_run(self):
    _compare(
        inject_hyperparams(jn.adam)(learning_rate=1e-2),
        optax.inject_hyperparams(optax.adam)(learning_rate=1e-2),
        self.variant,
    )

  @chex.variants(with_jit=True, without_jit=True)
  def test_schedules_are_evaluated_at_each_step(self):
    lr = optax.warmup_cosine_decay_schedule(0.0, 1e-2, 10, 100, 1e-4)
    b1 = optax.linear_schedule(0.5, 0.95, 60)
    _, state = _compare(
        inject_hyperparams(jn.adam)(learning_rate=lr, b1=b1, b2=0.99),
        optax.inject_hyperparams(optax.adam)(learning_rate=lr, b1=b1, b2=0.99),
        self.variant,
    )
    steps = int(state.count)
    # The stored value is the one the last step used: the schedule at t - 1.
    assert float(state.hyperparams["learning_rate"]) == float(lr(steps - 1))
    assert int(state.hyperparams_states["learning_rate"].count) == steps

  def test_sgd_with_momentum_and_static_flags(self):
    _compare(
        inject_hyperparams(jn.sgd)(learning_rate=0.05, momentum=0.9, nesterov=True),
        optax.inject_hyperparams(optax.sgd)(learning_rate=0.05, momentum=0.9, nesterov=True),
    )

  def test_wraps_optax_factories_too(self):
    _compare(
        inject_hyperparams(optax.adamw)(learning_rate=1e-2, weight_decay=0.1),
        optax.inject_hyperparams(optax.adamw)(learning_rate=1e-2, weight_decay=0.1),
    )

  def test_state_layout(self):
    assert InjectHyperparamsState is InjectStatefulHyperparamsState
    assert InjectHyperparamsState._fields == optax.InjectStatefulHyperparamsState._fields
    theirs = optax.WrappedSchedule(lambda c: c).init()
    assert WrappedScheduleState._fields == type(theirs)._fields
    state = inject_hyperparams(jn.adam)(learning_rate=optax.constant_schedule(0.1)).init(_params())
    assert isinstance(state, InjectHyperparamsState)
    assert isinstance(state.hyperparams_states["learning_rate"], WrappedScheduleState)
    assert set(state.hyperparams) == {"learning_rate", "b1", "b2", "eps", "eps_root"}

  def test_dtypes_follow_params_or_override(self):
    for dtype in (None, jnp.float32, jnp.bfloat16):
      for params in (_params(jnp.bfloat16), {"a": jnp.ones(2, jnp.bfloat16), "b": jnp.ones(2)}):
        ours = inject_hyperparams(jn.adam, hyperparam_dtype=dtype)(learning_rate=1e-2, b1=0.8)
        theirs = optax.inject_hyperparams(optax.adam, hyperparam_dtype=dtype)(
            learning_rate=1e-2, b1=0.8
        )
        state_a, state_b = ours.init(params), theirs.init(params)
        wr.assert_same_state(state_a, state_b)
        init_dtypes = jax.tree.map(lambda x: x.dtype, state_a)
        grads = jax.tree.map(jnp.ones_like, params)
        update_a, update_b = jax.jit(ours.update), jax.jit(theirs.update)
        upd_a, state_a = update_a(grads, state_a, params)
        upd_b, state_b = update_b(grads, state_b, params)
        wr.assert_same_state(upd_a, upd_b)
        for _ in range(2):
          upd_a, state_a = update_a(grads, state_a, params)
          upd_b, state_b = update_b(grads, state_b, params)
        # Deliberate difference: the state keeps init's dtypes. optax promotes
        # bfloat16 moments to float32 once float32 hyper-parameters meet them,
        # which also breaks a lax.scan carry; later updates differ by bf16 rounding.
        assert jax.tree.map(lambda x: x.dtype, state_a) == init_dtypes
        chex.assert_trees_all_close(upd_a, upd_b, rtol=2e-3)

  def test_static_callable_argument(self):
    def clipped_sgd(learning_rate, transform):
      return jn.chain(jn.stateless_with_tree_map(lambda g, p: transform(g)), jn.sgd(learning_rate))

    ours = inject_hyperparams(clipped_sgd, static_args="transform")(0.1, jnp.tanh)
    theirs = optax.inject_hyperparams(clipped_sgd, static_args=("transform",))(0.1, jnp.tanh)
    assert set(ours.init(_params()).hyperparams) == {"learning_rate"}
    _compare(ours, theirs)

  def test_stateful_schedule_and_extra_args(self):
    class LossScaledRate:
      """A stateful schedule: the rate halves whenever `loss` exceeds 1."""

      def init(self):
        return {"rate": jnp.array(0.1)}

      def update(self, state, *, loss=0.0, **extra_args):
        del extra_args
        return {"rate": jnp.where(loss > 1.0, state["rate"] / 2, state["rate"])}

      def __call__(self, state, **extra_args):
        del extra_args
        return state["rate"]

    ours = inject_hyperparams(jn.sgd)(learning_rate=LossScaledRate())
    theirs = optax.inject_hyperparams(optax.sgd)(learning_rate=LossScaledRate())
    params = _params()
    state_a, state_b = ours.init(params), theirs.init(params)
    for loss in (2.0, 0.5, 3.0, 0.1):
      upd_a, state_a = ours.update(params, state_a, params, loss=jnp.array(loss))
      upd_b, state_b = theirs.update(params, state_b, params, loss=jnp.array(loss))
      wr.assert_same_state((upd_a, state_a), (upd_b, state_b))
    assert float(state_a.hyperparams["learning_rate"]) == pytest.approx(0.025)

  def test_writing_a_scheduled_entry_has_no_effect(self):
    tx = inject_hyperparams(jn.sgd)(learning_rate=optax.constant_schedule(0.1))
    params = _params()
    state = tx.init(params)
    state.hyperparams["learning_rate"] = jnp.array(100.0)
    updates, _ = tx.update(params, state, params)
    chex.assert_trees_all_close(updates, jax.tree.map(lambda p: -0.1 * p, params))


class InjectChangeMidRunTest(chex.TestCase):

  def test_new_learning_rate_equals_fresh_optimizer_and_compiles_once(self):
    tx = inject_hyperparams(jn.adam)(learning_rate=1e-2)
    traces = []

    @jax.jit
    def step(params, state, noise):
      traces.append(1)  # runs only while tracing
      updates, state = tx.update(wr.noisy_grads(noise, params), state, params)
      return jn.apply_updates(params, updates), state

    noise = _noise(60)
    at = lambda t: jax.tree.map(lambda x: x[t], noise)
    params, state = _params(), tx.init(_params())
    for t in range(30):
      params, state = step(params, state, at(t))
    switch_params, switch_inner = params, state.inner_state

    old = state.hyperparams["learning_rate"]
    state.hyperparams["learning_rate"] = jnp.asarray(3e-3, old.dtype)
    for t in range(30, 60):
      params, state = step(params, state, at(t))
    assert len(traces) == 1 and step._cache_size() == 1

    # A fresh optimizer built with 3e-3, continuing from the same point,
    # gives the same run: bit for bit when it is also injected (the same
    # compiled arithmetic) ...
    def continue_with(fresh, inner):
      @jax.jit
      def fresh_step(params, inner, noise):
        updates, inner = fresh.update(wr.noisy_grads(noise, params), inner, params)
        return jn.apply_updates(params, updates), inner

      ref_params = switch_params
      for t in range(30, 60):
        ref_params, inner = fresh_step(ref_params, inner, at(t))
      return ref_params, inner

    fresh = inject_hyperparams(jn.adam)(learning_rate=jnp.asarray(3e-3, old.dtype))
    fresh_state = fresh.init(_params())._replace(inner_state=switch_inner)
    ref_params, ref_state = continue_with(fresh, fresh_state)
    wr.assert_same_state(params, ref_params)
    wr.assert_same_state(state.inner_state, ref_state.inner_state)
    wr.assert_same_state(state.hyperparams, ref_state.hyperparams)
    # ... and up to rounding for a plain adam(3e-3), whose constant rate XLA
    # folds into the arithmetic.
    ref_params, ref_inner = continue_with(jn.adam(3e-3), switch_inner)
    chex.assert_trees_all_close(params, ref_params, rtol=1e-5, atol=1e-7)
    chex.assert_trees_all_close(state.inner_state, ref_inner, rtol=1e-5, atol=1e-7)
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(3e-3)

    # ... and differs from the run that kept the old rate.
    kept_params, kept_state = switch_params, state._replace(inner_state=switch_inner)
    kept_state.hyperparams["learning_rate"] = old
    for t in range(30, 60):
      kept_params, kept_state = step(kept_params, kept_state, at(t))
    assert not np.allclose(kept_params["w"], params["w"])


class InjectArgumentsTest(chex.TestCase):

  def test_positional_only_and_var_keyword_factories(self):
    def factory(learning_rate, /, **kwargs):
      return jn.sgd(learning_rate, **kwargs)

    tx = inject_hyperparams(factory)(0.1, momentum=0.9)
    state = tx.init(_params())
    assert set(state.hyperparams) == {"learning_rate", "momentum"}
    noise = _noise(20)
    params_a, state_a = wr.trajectory(tx, jn.apply_updates, _params(), noise)
    params_b, state_b = wr.trajectory(jn.sgd(0.1, momentum=0.9), jn.apply_updates, _params(), noise)
    wr.assert_same_state(params_a, params_b, 1e-6)
    wr.assert_same_state(state_a.inner_state, state_b, 1e-6)

  def test_wrapped_schedule(self):
    sched = WrappedSchedule(lambda count: 2.0 * count)
    state = sched.update(sched.update(sched.init()))
    assert float(sched(state)) == 4.0
    with pytest.raises(TypeError, match="schedule_fn"):
      WrappedSchedule(3.0)

  def test_bad_arguments(self):
    with pytest.raises(TypeError, match="inner_factory"):
      inject_hyperparams(jn.adam(1e-3))
    with pytest.raises(ValueError, match="static_args"):
      inject_hyperparams(jn.adam, static_args=("lr",))
    with pytest.raises(TypeError, match="static_args"):
      inject_hyperparams(jn.adam, static_args=3)
    with pytest.raises(TypeError, match="hyperparam_dtype"):
      inject_hyperparams(jn.adam, hyperparam_dtype="not a dtype")
    with pytest.raises(TypeError, match="inner_factory"):
      inject_hyperparams(lambda learning_rate: "adam")(0.1).init(_params())
    # The inner factory's own checks still run, naming its argument.
    with pytest.raises(ValueError, match="b1"):
      inject_hyperparams(jn.adam)(learning_rate=1e-3, b1=1.5).init(_params())


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_inject_apply_if_finite_max_consecutive_errors_equals_optax(jit):
  """The injected max_consecutive_errors (an int32 array in the state) is accepted, as optax's."""
  params = {"w": jnp.array([1.0, -2.0, 3.0])}
  grads = [jnp.array([0.1, 0.2, -0.3]), jnp.array([jnp.nan, 0.2, -0.3]),
           jnp.array([jnp.inf, 0.2, -0.3]), jnp.array([jnp.nan, 0.2, -0.3]),
           jnp.array([0.5, 0.2, -0.3])]

  def run(lib):
    tx = lib.inject_hyperparams(lib.apply_if_finite)(lib.adam(0.1), max_consecutive_errors=2)
    p, state = params, tx.init(params)
    update = jax.jit(tx.update) if jit else tx.update
    trajectory = []
    for g in grads:
      u, state = update({"w": g}, state, p)
      p = optax.apply_updates(p, u)
      trajectory.append(p["w"])
    return trajectory, state

  ours, state = run(jn)
  theirs, ref_state = run(optax)
  for a, b in zip(ours, theirs):
    np.testing.assert_allclose(a, b, rtol=1e-6)
  assert int(state.hyperparams["max_consecutive_errors"]) == 2
  assert state.hyperparams["max_consecutive_errors"].dtype == ref_state.hyperparams["max_consecutive_errors"].dtype
  assert int(state.inner_state.total_notfinite) == int(ref_state.inner_state.total_notfinite) == 3
