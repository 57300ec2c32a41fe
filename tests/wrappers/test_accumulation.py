"""MultiSteps: equal to optax's on finite gradients, and recovering from NaNs."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl.testing import parameterized

import jaxopt_notes as jn
from jaxopt_notes.wrappers.accumulation import MultiSteps, MultiStepsState, skip_large_updates, skip_not_finite
from jaxopt_notes.wrappers.finite import apply_if_finite
from jaxopt_notes.wrappers.hyperparams import inject_hyperparams
from tests.wrappers import _wrapper_runs as wr

LONG = 120  # minibatches of a jitted run
SHORT = 12  # minibatches of an eager run


def _params():
  return {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.array([0.5, -0.5])}


def _noise(steps, seed=0):
  return wr.noise(_params(), steps, seed, dtype=np.float32)


def _poison(noise, t):
  """``noise`` with a NaN in one entry of minibatch ``t``."""
  noise = jax.tree.map(np.copy, noise)
  noise["w"][t, 0, 1] = np.nan
  return noise


def _run_pair(ours, theirs, noise):
  """``wr.run_pair`` of two ``MultiSteps`` (as transforms), jitted, from these params."""
  return wr.run_pair(
      ours.gradient_transformation(), theirs.gradient_transformation(), _params(), noise
  )


def _every_2_then_4(gradient_step):
  return jnp.where(gradient_step < 5, 2, 4)


CASES = (
    dict(testcase_name="mean_k4", k=4, kwargs={}),
    dict(testcase_name="sum_k3", k=3, kwargs=dict(use_grad_mean=False)),
    dict(testcase_name="schedule", k=_every_2_then_4, kwargs={}),
    dict(testcase_name="skip_not_finite", k=4, kwargs=dict(should_skip_update_fn="not_finite")),
    dict(testcase_name="k1", k=1, kwargs={}),
)


def _pair(k, kwargs):
  skip = kwargs.get("should_skip_update_fn")
  ours_kw, theirs_kw = dict(kwargs), dict(kwargs)
  if skip == "not_finite":
    ours_kw["should_skip_update_fn"] = skip_not_finite
    theirs_kw["should_skip_update_fn"] = optax.skip_not_finite
  return (
      MultiSteps(jn.adam(1e-2), k, **ours_kw),
      optax.MultiSteps(optax.adam(1e-2), k, **theirs_kw),
  )


class MultiStepsEqualsOptaxTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(*CASES)
  def test_long_run(self, k, kwargs):
    ours, theirs = _pair(k, kwargs)
    (_, state_a), (_, state_b) = wr.compare(
        ours.gradient_transformation(), theirs.gradient_transformation(), _params(), _noise,
        self.variant, long=LONG, short=SHORT, rtol=wr.SELECT_RTOL,
    )
    assert bool(ours.has_updated(state_a)) == bool(theirs.has_updated(state_b))

  def test_has_updated_and_updates_every_call(self):
    ours, theirs = _pair(_every_2_then_4, {})
    noise = _noise(30)
    update_a, update_b = jax.jit(ours.update), jax.jit(theirs.update)
    params = _params()
    state_a, state_b = ours.init(params), theirs.init(params)
    for t in range(30):
      grads = wr.noisy_grads(jax.tree.map(lambda x: x[t], noise), params)
      upd_a, state_a = update_a(grads, state_a, params)
      upd_b, state_b = update_b(grads, state_b, params)
      chex.assert_trees_all_close(upd_a, upd_b, rtol=wr.SELECT_RTOL)
      assert bool(ours.has_updated(state_a)) == bool(theirs.has_updated(state_b))
      params = jn.apply_updates(params, upd_a)
    assert int(state_a.gradient_step) == 5 + (30 - 10) // 4

  def test_skip_not_finite_with_nan_minibatches_equals_optax(self):
    ours, theirs = _pair(4, dict(should_skip_update_fn="not_finite"))
    noise = _poison(_poison(_noise(40), 5), 17)
    (params_a, state_a), (params_b, state_b) = _run_pair(ours, theirs, noise)
    wr.assert_same_state(state_a, state_b, wr.SELECT_RTOL)
    wr.assert_same_state(params_a, params_b, wr.SELECT_RTOL)
    assert int(state_a.gradient_step) == (40 - 2) // 4

  def test_skip_large_updates_equals_optax(self):
    ours = MultiSteps(
        jn.sgd(0.1), 2,
        should_skip_update_fn=functools.partial(skip_large_updates, max_squared_norm=9.0),
    )
    theirs = optax.MultiSteps(
        optax.sgd(0.1), 2,
        should_skip_update_fn=functools.partial(optax.skip_large_updates, max_squared_norm=9.0),
    )
    noise = _noise(40)
    (_, state_a), (_, state_b) = _run_pair(ours, theirs, noise)
    wr.assert_same_state(state_a, state_b, wr.SELECT_RTOL)
    assert 0 < int(state_a.gradient_step) < 20  # some minibatches were skipped

  def test_composition_with_apply_if_finite_and_inject_hyperparams(self):
    ours = MultiSteps(apply_if_finite(inject_hyperparams(jn.adam)(learning_rate=1e-2), 3), 4)
    theirs = optax.MultiSteps(
        optax.apply_if_finite(optax.inject_hyperparams(optax.adam)(learning_rate=1e-2), 3), 4
    )
    noise = _noise(LONG)
    (params_a, state_a), (params_b, state_b) = _run_pair(ours, theirs, noise)
    wr.assert_same_state(state_a, state_b, wr.SELECT_RTOL)
    wr.assert_same_state(params_a, params_b, wr.SELECT_RTOL)

  def test_state_fields(self):
    assert MultiStepsState._fields == optax.MultiStepsState._fields
    assert MultiStepsState._field_defaults == {"skip_state": ()}


class MultiStepsLargeBatchTest(chex.TestCase):

  @parameterized.named_parameters(("sgd", jn.sgd, 0.1), ("adam", jn.adam, 1e-2))
  def test_k_minibatches_equal_one_step_on_their_concatenation(self, make, lr):
    k, batch, dim, cycles = 4, 8, 3, 5
    rng = np.random.default_rng(1)
    x = rng.standard_normal((cycles, k * batch, dim)).astype(np.float32)
    y = rng.standard_normal((cycles, k * batch)).astype(np.float32)

    def loss(w, xb, yb):
      return jnp.mean((xb @ w - yb) ** 2)

    grad = jax.jit(jax.grad(loss))
    big, accum = make(lr), MultiSteps(make(lr), k, use_grad_mean=True)
    w_big = w_acc = jnp.zeros(dim)
    s_big, s_acc = big.init(w_big), accum.init(w_acc)
    for c in range(cycles):
      u, s_big = big.update(grad(w_big, x[c], y[c]), s_big, w_big)
      w_big = jn.apply_updates(w_big, u)
      for j in range(k):
        rows = slice(j * batch, (j + 1) * batch)
        u, s_acc = accum.update(grad(w_acc, x[c, rows], y[c, rows]), s_acc, w_acc)
        w_acc = jn.apply_updates(w_acc, u)
        assert bool(accum.has_updated(s_acc)) == (j == k - 1)
      np.testing.assert_allclose(w_acc, w_big, rtol=1e-5, atol=1e-7)
    assert not np.allclose(w_big, 0.0)


class MultiStepsNanRecoveryTest(chex.TestCase):
  """The deliberate difference: a NaN minibatch does not stick."""

  def _run(self, tx, apply, noise):
    update = jax.jit(tx.update)
    params, state = _params(), tx.init(_params())
    for t in range(len(noise["b"])):
      grads = wr.noisy_grads(jax.tree.map(lambda x: x[t], noise), params)
      updates, state = update(grads, state, params)
      params = apply(params, updates)
    return params, state

  def test_recovers_where_optax_stays_nan_forever(self):
    k, cycles, bad_cycle = 4, 10, 1
    clean = _noise(k * cycles)
    poisoned = _poison(clean, k * bad_cycle + 1)
    ours = MultiSteps(apply_if_finite(jn.adam(1e-2), 3), k)
    theirs = optax.MultiSteps(optax.apply_if_finite(optax.adam(1e-2), 3), k)

    params_b, state_b = self._run(theirs, optax.apply_updates, poisoned)
    # optax: `acc * (1 - emit)` keeps the NaN, so every later step is
    # non-finite; after 3 skipped ones apply_if_finite gives up and the
    # weights become NaN.
    assert bool(jnp.isnan(state_b.acc_grads["w"]).any())
    assert int(state_b.inner_opt_state.total_notfinite) == cycles - bad_cycle
    assert bool(jnp.isnan(params_b["w"]).any())

    params_a, state_a = self._run(ours, jn.apply_updates, poisoned)
    assert all(bool(jnp.isfinite(p).all()) for p in jax.tree.leaves(params_a))
    assert int(state_a.inner_opt_state.total_notfinite) == 1
    assert int(state_a.inner_opt_state.notfinite_count) == 0
    # The poisoned cycle was dropped and nothing else changed: the run equals
    # a clean run on the other minibatches.
    keep = np.r_[0 : k * bad_cycle, k * (bad_cycle + 1) : k * cycles]
    dropped = jax.tree.map(lambda x: x[keep], clean)
    params_ref, state_ref = self._run(ours, jn.apply_updates, dropped)
    wr.assert_same_state(params_a, params_ref, wr.SELECT_RTOL)
    wr.assert_same_state(
        state_a.inner_opt_state.inner_state, state_ref.inner_opt_state.inner_state, wr.SELECT_RTOL
    )

  def test_accumulator_is_exactly_zero_after_the_nan_step(self):
    ours, theirs = MultiSteps(jn.sgd(0.1), 3), optax.MultiSteps(optax.sgd(0.1), 3)
    grads = [jnp.array([jnp.nan, 1.0]), jnp.ones(2), jnp.ones(2), jnp.ones(2), jnp.ones(2)]
    state_a, state_b = ours.init(jnp.zeros(2)), theirs.init(jnp.zeros(2))
    outs_a, outs_b = [], []
    for g in grads:
      u, state_a = ours.update(g, state_a)
      outs_a.append(u)
      u, state_b = theirs.update(g, state_b)
      outs_b.append(u)
    # Between steps ours returns exact zeros; optax's `emit * u` is NaN.
    chex.assert_trees_all_equal(outs_a[1], jnp.zeros(2))
    assert bool(jnp.isnan(outs_b[1]).any())
    # After the (NaN) step ours starts the next cycle from zero.
    chex.assert_trees_all_equal(state_a.acc_grads, jnp.full(2, 1.0))
    assert bool(jnp.isnan(state_b.acc_grads).any())


class MultiStepsApiTest(chex.TestCase):

  def test_gradient_transformation_in_chain_with_extra_args(self):
    ms = MultiSteps(jn.chain(jn.scale(-1.0)), 2)
    tx = jn.chain(jn.clip(10.0), ms.gradient_transformation())
    assert isinstance(ms.gradient_transformation(), jn.GradientTransformation)
    state = tx.init(jnp.zeros(2))
    u, state = tx.update(jnp.ones(2), state, None, value=jnp.array(1.0))
    chex.assert_trees_all_equal(u, jnp.zeros(2))
    u, state = tx.update(3 * jnp.ones(2), state, None, value=jnp.array(1.0))
    chex.assert_trees_all_equal(u, jnp.full(2, -2.0))
    assert ms.inner_opt is not None

  def test_accumulator_dtype(self):
    params = {"w": jnp.ones(3, jnp.bfloat16)}
    grads = {"w": jnp.full(3, 0.3, jnp.bfloat16)}
    ours = MultiSteps(jn.sgd(0.1), 2, accumulator_dtype=jnp.float32)
    theirs = optax.MultiSteps(optax.sgd(0.1), 2, accumulator_dtype=jnp.float32)
    state_a, state_b = ours.init(params), theirs.init(params)
    for _ in range(3):
      u_a, state_a = ours.update(grads, state_a, params)
      u_b, state_b = theirs.update(grads, state_b, params)
      wr.assert_same_state(u_a, u_b)
    wr.assert_same_state(state_a, state_b)
    # None keeps the params' dtype (optax 0.2.8 fails there: its cast to
    # `None` turns the accumulator into float32 and lax.cond rejects it).
    keep = MultiSteps(jn.sgd(0.1), 2, accumulator_dtype=None)
    state = keep.init(params)
    for _ in range(3):
      u, state = keep.update(grads, state, params)
      assert state.acc_grads["w"].dtype == jnp.bfloat16 and u["w"].dtype == jnp.bfloat16

  def test_bad_arguments(self):
    with pytest.raises(ValueError, match="every_k_schedule"):
      MultiSteps(jn.sgd(0.1), 0)
    for bad in (2.5, "4", True, None):
      with pytest.raises(TypeError, match="every_k_schedule"):
        MultiSteps(jn.sgd(0.1), bad)
    with pytest.raises(TypeError, match="opt"):
      MultiSteps(jn.sgd, 2)
    with pytest.raises(TypeError, match="should_skip_update_fn"):
      MultiSteps(jn.sgd(0.1), 2, should_skip_update_fn=3)
    with pytest.raises(TypeError, match="accumulator_dtype"):
      MultiSteps(jn.sgd(0.1), 2, accumulator_dtype="not a dtype")

  def test_skip_fn_must_return_a_bool_scalar(self):
    ms = MultiSteps(jn.sgd(0.1), 2, should_skip_update_fn=lambda u, s, p: (jnp.zeros(2), ()))
    with pytest.raises(ValueError, match="should_skip_update_fn"):
      ms.update(jnp.ones(2), MultiSteps(jn.sgd(0.1), 2).init(jnp.ones(2)))

  def test_skip_helpers_match_optax(self):
    tree = {"a": jnp.array([1.0, jnp.nan, jnp.inf]), "b": jnp.arange(4.0)}
    chex.assert_trees_all_equal(skip_not_finite(tree, 0, None), optax.skip_not_finite(tree, 0, None))
    finite = {"a": jnp.array([1.0, 2.0]), "b": jnp.arange(4.0)}
    for limit in (10.0, 20.0):
      chex.assert_trees_all_equal(
          skip_large_updates(finite, 0, None, limit),
          optax.skip_large_updates(finite, 0, None, limit),
      )
