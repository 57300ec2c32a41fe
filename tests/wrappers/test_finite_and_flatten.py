"""apply_if_finite and flatten, checked against optax's counterparts; and the
wrappers (apply_if_finite, MultiSteps, inject_hyperparams) around a state that
holds a typed PRNG key."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl.testing import parameterized

import jaxopt_notes as jn
from jaxopt_notes import ApplyIfFiniteState, apply_if_finite, flatten
from tests.wrappers import _wrapper_runs as wr

LONG = 150  # steps of a jitted run
SHORT = 12  # steps of an eager run


def _params():
  return {
      "dense": {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.zeros(4)},
      "scale": jnp.array(0.5),
  }


def _inputs(steps, bad_steps=()):
  """Per-step noise, plus the NaN/Inf written into w[0, 1] at ``bad_steps``."""
  bad_steps = {t: v for t, v in dict(bad_steps).items() if t < steps}
  noise = wr.noise(_params(), steps, dtype=np.float32)
  bad_value = np.zeros(steps, np.float32)
  is_bad = np.zeros(steps, bool)
  for t, value in bad_steps.items():
    bad_value[t], is_bad[t] = value, True
  return noise, bad_value, is_bad


def _grads(xs, params):
  """``wr.noisy_grads``, with w[0, 1] replaced where the step is bad."""
  noise, bad_value, is_bad = xs
  grads = wr.noisy_grads(noise, params)
  w = grads["dense"]["w"]
  grads["dense"]["w"] = w.at[0, 1].set(jnp.where(is_bad, bad_value, w[0, 1]))
  return grads


def _compare(variant, ours, theirs, *, rtol=0.0):
  """``wr.compare`` on these params and inputs (no bad steps)."""
  wr.compare(
      ours, theirs, _params(), _inputs, variant, long=LONG, short=SHORT, rtol=rtol, grads=_grads
  )


class ApplyIfFiniteTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_equals_optax_on_finite_gradients(self):
    _compare(
        self.variant,
        apply_if_finite(jn.adam(1e-2), 2),
        optax.apply_if_finite(optax.adam(1e-2), 2),
        rtol=wr.SELECT_RTOL,
    )

  def test_equals_optax_with_nan_and_inf_gradients(self):
    # Steps 10-12 are three bad steps in a row: with N = 2 the third is
    # applied and poisons adam's state, in both libraries (as documented).
    bad = {3: np.nan, 4: np.inf, 10: np.nan, 11: -np.inf, 12: np.nan}
    ours, theirs = apply_if_finite(jn.adam(1e-2), 2), optax.apply_if_finite(optax.adam(1e-2), 2)
    for steps, total, poisoned in ((12, 4, False), (13, 5, True)):
      (_, state_a), (_, state_b) = wr.run_pair(
          ours, theirs, _params(), _inputs(steps, bad), grads=_grads
      )
      wr.assert_same_state(state_a, state_b, wr.SELECT_RTOL)
      assert int(state_a.total_notfinite) == total
      mu = state_a.inner_state[0].mu["dense"]["w"]
      assert bool(jnp.isnan(mu).any()) == poisoned

  @chex.variants(with_jit=True, without_jit=True)
  def test_skipped_step_leaves_inner_state_bit_identical(self):
    tx = apply_if_finite(jn.adam(1e-2), 3)
    update = self.variant(tx.update)
    params = _params()
    grads = jax.tree.map(lambda p: p + 0.5, params)
    state = tx.init(params)
    for _ in range(3):
      _, state = update(grads, state, params)
    before = state
    for i, bad in enumerate([jnp.nan, jnp.inf, -jnp.inf]):
      bad_grads = {**grads, "scale": jnp.array(bad)}
      updates, state = update(bad_grads, state, params)
      chex.assert_trees_all_equal(updates, jax.tree.map(jnp.zeros_like, params))
      chex.assert_trees_all_equal(state.inner_state, before.inner_state)
      assert int(state.notfinite_count) == i + 1
      assert int(state.total_notfinite) == i + 1
      assert not bool(state.last_finite)
    # A clean step resets the consecutive count, not the total.
    updates, state = update(grads, state, params)
    assert int(state.notfinite_count) == 0 and int(state.total_notfinite) == 3
    assert bool(state.last_finite)
    assert all(bool(jnp.all(u != 0)) for u in jax.tree.leaves(updates))

  def test_gives_up_after_max_consecutive_errors(self):
    tx = apply_if_finite(jn.sgd(1.0), 0)
    state = tx.init(jnp.zeros(2))
    updates, state = tx.update(jnp.array([jnp.nan, 1.0]), state)
    assert bool(jnp.isnan(updates[0])) and float(updates[1]) == -1.0
    assert int(state.notfinite_count) == 1

  def test_state_fields_and_extra_args(self):
    assert ApplyIfFiniteState._fields == optax.ApplyIfFiniteState._fields
    tx = apply_if_finite(jn.chain(jn.scale(2.0)), 1)
    assert isinstance(tx, jn.GradientTransformationExtraArgs)
    updates, _ = tx.update(jnp.ones(2), tx.init(jnp.ones(2)), None, value=jnp.array(3.0))
    chex.assert_trees_all_equal(updates, jnp.full(2, 2.0))

  def test_bad_arguments(self):
    with pytest.raises(ValueError, match="max_consecutive_errors"):
      apply_if_finite(jn.adam(1e-3), -1)
    for bad in (1.5, True, "3", None):
      with pytest.raises(TypeError, match="max_consecutive_errors"):
        apply_if_finite(jn.adam(1e-3), bad)
    with pytest.raises(TypeError, match="inner"):
      apply_if_finite(lambda g: g, 3)


class FlattenTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_equals_optax_adam(self):
    _compare(self.variant, flatten(jn.adam(1e-2)), optax.flatten(optax.adam(1e-2)))

  @chex.variants(with_jit=True, without_jit=True)
  def test_equals_optax_inside_chain_with_params(self):
    _compare(
        self.variant,
        jn.chain(jn.clip_by_global_norm(1.0), flatten(jn.adamw(1e-2, weight_decay=0.1))),
        optax.chain(
            optax.clip_by_global_norm(1.0), optax.flatten(optax.adamw(1e-2, weight_decay=0.1))
        ),
    )

  def test_state_is_one_vector_and_updates_keep_shapes(self):
    params = _params()
    tx = flatten(jn.sgd(0.1, momentum=0.9))
    state = tx.init(params)
    trace_state, _ = state
    assert trace_state.trace.shape == (12 + 4 + 1,)
    updates, _ = tx.update(jax.tree.map(jnp.ones_like, params), state, params)
    chex.assert_trees_all_equal_shapes(updates, params)

  def test_empty_params(self):
    tx = flatten(jn.adam(1e-3))
    updates, _ = tx.update({}, tx.init({}), {})
    assert updates == {}

  def test_bad_inner(self):
    with pytest.raises(TypeError, match="inner"):
      flatten(object())


# --- wrappers around a typed PRNG key in the state ------------------------------

# noisy_sgd keeps a typed key (dtype key<fry>), which has no `astype`: the
# wrappers' selects (apply_if_finite, MultiSteps) and inject_hyperparams' cast
# back to the state's dtypes must carry it as it is.
_KEYED = (
    ("apply_if_finite",
     lambda: apply_if_finite(jn.noisy_sgd(0.1, key=0), 2),
     lambda: optax.apply_if_finite(optax.noisy_sgd(0.1, key=0), 2),
     {3: np.nan, 7: np.inf, 8: -np.inf}),
    ("multisteps",
     lambda: jn.MultiSteps(jn.noisy_sgd(0.1, key=0), 3).gradient_transformation(),
     lambda: optax.MultiSteps(optax.noisy_sgd(0.1, key=0), 3).gradient_transformation(),
     {}),
    ("inject_hyperparams",
     lambda: jn.inject_hyperparams(jn.noisy_sgd)(learning_rate=0.1, eta=0.05, key=jax.random.key(1)),
     lambda: optax.inject_hyperparams(optax.noisy_sgd)(learning_rate=0.1, eta=0.05, key=jax.random.key(1)),
     {}),
)


def _is_key(x):
  return jax.dtypes.issubdtype(jnp.asarray(x).dtype, jax.dtypes.prng_key)


def _assert_same_with_keys(ours, theirs, rtol):
  """``wr.assert_same_state``, with each typed key compared exactly: same
  implementation and key data (numpy cannot hold a key)."""
  keys = [(a, b) for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)) if _is_key(a)]
  for a, b in keys:
    assert jnp.asarray(a).dtype == jnp.asarray(b).dtype
    np.testing.assert_array_equal(jax.random.key_data(a), jax.random.key_data(b))
  blank = lambda tree: jax.tree.map(lambda x: jnp.zeros(()) if _is_key(x) else x, tree)
  wr.assert_same_state(blank(ours), blank(theirs), rtol)
  return keys


class TypedKeyStateTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(*_KEYED)
  def test_wrapped_noisy_sgd_equals_optax(self, ours, theirs, bad):
    """Same noise, state (keys included) and params as optax's; skipped steps keep the key."""
    ours, theirs = ours(), theirs()
    jit = wr.is_jit(self.variant)
    steps, rtol = (LONG, wr.SELECT_RTOL) if jit else (SHORT, wr.EAGER_RTOL)
    start = ours.init(_params())
    _assert_same_with_keys(start, theirs.init(_params()), 0.0)
    (params_a, state_a), (params_b, state_b) = wr.run_pair(
        ours, theirs, _params(), _inputs(steps, bad), self.variant, grads=_grads
    )
    keys = _assert_same_with_keys(state_a, state_b, rtol)
    _assert_same_with_keys(params_a, params_b, rtol)
    # The keys are there, and noisy_sgd's advanced (inject_hyperparams also
    # holds the `key` argument it was given, unchanged).
    start_keys = [x for x in jax.tree.leaves(start) if _is_key(x)]
    moved = [not np.array_equal(jax.random.key_data(a), jax.random.key_data(k))
             for (a, _), k in zip(keys, start_keys)]
    assert len(keys) == len(start_keys) >= 1 and moved.count(True) == 1
    if bad:
      assert int(state_a.total_notfinite) == len(bad)
