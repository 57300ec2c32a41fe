"""scale_by_polyak, scale_by_rprop, scale_by_distance_over_gradients,
scale_by_optimistic_gradient and add_noise: 100-step trajectories equal to
optax's (jit and op by op, float32 and float64), the properties optax's own
tests check, the documented differences, and bad arguments naming themselves.

scale_by_polyak needs ``value=`` in ``update``, which the shared harness does
not pass: :func:`run_with_value` is a small driver that does, recording the
same :class:`~tests._trajectory.Trajectory` so the harness's comparison runs.
"""

import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from optax._src import transform as optax_transform

import jaxopt_notes as jn
from tests import _trajectory as tj


def _then(lib, inner, step=-0.05):
  """``inner`` followed by ``scale(step)``."""
  return lib.chain(inner, lib.scale(step))


# ---------------------------------------------------------------------------
# A driver that passes value= (the loss) to update


def _loss(problem, params, t):
  """The harness's loss, ``sum 0.5 h (p - c)^2 + d_t p`` per leaf."""
  terms = jax.tree.map(lambda h, c, d, p: jnp.sum(0.5 * h * (p - c) ** 2 + d[t] * p), *problem, params)
  return sum(jax.tree.leaves(terms))


_value_and_grad = jax.jit(jax.value_and_grad(_loss, argnums=1))


def run_with_value(variant, tx, params, problem, steps=tj.STEPS):
  """Runs ``steps`` updates of ``tx`` passing ``value=loss``; returns a harness Trajectory."""
  update = variant(tx.update)
  state = tx.init(params)
  history, grads_seen, updates_seen = [], [], []
  updates = None
  for t in range(steps):
    value, grads = _value_and_grad(problem, params, np.int32(t))
    updates, state = update(grads, state, params, value=value)
    params = optax.apply_updates(params, updates)
    history.append(params)
    grads_seen.append(grads)
    updates_seen.append(tj.to_plain(updates))

  def stack(trees):
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)

  return tj.Trajectory(params, stack(history), stack(grads_seen), stack(updates_seen), updates, state)


def compare_with_value(variant, make_ours, make_ref, dtype, seed=0):
  """:func:`tj.compare_with_optax` for transforms whose update needs ``value=``."""
  with tj.precision(dtype):
    params = tj.make_params(seed, dtype)
    problem = tj.make_problem(params, seed + 1)
    ours = run_with_value(variant, make_ours(), params, problem)
    ref = run_with_value(variant, make_ref(), params, problem)
    tj.assert_trajectories_close(ours, ref, dtype, initial_params=params)
  return ours, ref


# ---------------------------------------------------------------------------
# scale_by_polyak

_POLYAK = {
    "defaults": {},
    "f_min-below": {"f_min": -2.0},
    "sps+": {"f_min": 0.5, "variant": "sps+"},
    "eps-capped": {"f_min": -1.0, "eps": 0.5, "max_learning_rate": 0.1},
}


class TestScaleByPolyak(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("case", sorted(_POLYAK))
  def test_matches_optax(self, case, dtype):
    """Every step's params, updates and the (empty) state, with value= the loss."""
    kwargs = _POLYAK[case]
    compare_with_value(
        self.variant,
        lambda: _then(jn, jn.scale_by_polyak(**kwargs), -1.0),
        lambda: _then(optax, optax.scale_by_polyak(**kwargs), -1.0),
        dtype,
    )

  def test_sps_plus_takes_no_step_below_f_min(self):
    """sps+: a loss under f_min gives a zero step; sps steps uphill there (as optax)."""
    params = {"w": jnp.array([1.0, -2.0])}
    grads = {"w": jnp.array([0.5, 0.5])}
    # gap 0.5 - 1 = -0.5 over |g|^2 = 0.5: sps steps by -1 times g, sps+ by 0.
    for variant, expected in (("sps+", [0.0, 0.0]), ("sps", [-0.5, -0.5])):
      ours, theirs = jn.scale_by_polyak(f_min=1.0, variant=variant), optax.scale_by_polyak(
          f_min=1.0, variant=variant)
      u, _ = ours.update(grads, ours.init(params), params, value=0.5)
      o, _ = theirs.update(grads, theirs.init(params), params, value=0.5)
      np.testing.assert_allclose(u["w"], expected, rtol=1e-6)
      chex.assert_trees_all_equal(u, o)

  def test_solves_an_l1_objective_in_one_step(self):
    """optax's property: on f(x) = |x|_1 the Polyak step lands on the minimiser at once."""
    objective = lambda x: jnp.abs(x).sum()
    params = jnp.array([1.0, -1.0])
    tx = jn.scale_by_polyak()
    value, grad = jax.value_and_grad(objective)(params)
    updates, _ = tx.update(grad, tx.init(params), params, value=value)
    assert float(objective(params - updates)) < 1e-10

  def test_zero_gradient_gives_a_zero_step(self):
    """|g|^2 + eps below machine epsilon: step 0, not 0 / 0."""
    tx = jn.scale_by_polyak()
    params = {"w": jnp.ones(3)}
    updates, _ = tx.update({"w": jnp.zeros(3)}, tx.init(params), params, value=1.0)
    np.testing.assert_array_equal(updates["w"], 0.0)

  def test_update_without_value_raises_naming_it(self):
    """optax raises TypeError too (a missing keyword); ours names `value`."""
    tx = jn.scale_by_polyak()
    params = {"w": jnp.ones(2)}
    with pytest.raises(TypeError, match="`value`"):
      tx.update(params, tx.init(params), params)
    with pytest.raises(TypeError):
      optax.scale_by_polyak().update(params, optax.EmptyState(), params)

  def test_value_reaches_it_inside_chains(self):
    """Our chain and optax's forward value= to it (both are extra-args transforms)."""
    params = {"w": jnp.array([3.0, 4.0])}
    for chain in (jn.chain, optax.chain):
      tx = chain(jn.scale(1.0), jn.scale_by_polyak())
      updates, _ = tx.update(params, tx.init(params), params, value=12.5)
      np.testing.assert_allclose(updates["w"], [1.5, 2.0], rtol=1e-6)

  def test_bad_variant_raises_when_built(self):
    """optax only raises at the first update; ours at construction, naming `variant`."""
    with pytest.raises(ValueError, match="`variant`.*'sps' or 'sps\\+'"):
      jn.scale_by_polyak(variant="sps-")
    tx = optax.scale_by_polyak(variant="sps-")
    with pytest.raises(ValueError):
      tx.update(jnp.ones(2), tx.init(jnp.ones(2)), value=1.0)


# ---------------------------------------------------------------------------
# scale_by_rprop

_RPROP = {
    "defaults": {"learning_rate": 0.01},
    "clipped": {"learning_rate": 0.02, "eta_minus": 0.3, "eta_plus": 1.5, "min_step_size": 0.005,
                "max_step_size": 0.04},
}


class TestScaleByRprop(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("case", sorted(_RPROP))
  def test_matches_optax(self, case, dtype):
    """Step sizes, stored steps and emitted updates, every step."""
    kwargs = _RPROP[case]
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then(jn, jn.scale_by_rprop(**kwargs), -1.0),
        lambda: _then(optax, optax.scale_by_rprop(**kwargs), -1.0),
        dtype,
    )
    if case == "clipped":
      sizes = np.concatenate([np.ravel(s) for s in jax.tree.leaves(ours.state[0].step_sizes)])
      assert sizes.min() >= 0.005 - 1e-9 and sizes.max() <= 0.04 + 1e-9
      assert np.any(np.isclose(sizes, 0.005)) or np.any(np.isclose(sizes, 0.04))

  def test_steps_follow_the_sign_rule_and_lag_one_step(self):
    """Grow on an equal sign, shrink (and skip) on a flip; the output is the previous step."""
    tx = jn.scale_by_rprop(learning_rate=0.1, eta_minus=0.5, eta_plus=2.0)
    params = jnp.zeros(1)
    state = tx.init(params)
    outs = []
    for g in (1.0, 1.0, 1.0, -1.0, 1.0):
      u, state = tx.update(jnp.array([g]), state, params)
      outs.append(float(u[0]))
    # Stored steps: 0.1, 0.2, 0.4, then a flip (0, size 0.2), then 0.2 (s = 0).
    # Emitted: the stored step of the step before, 0 on the flip itself.
    np.testing.assert_allclose(outs, [0.0, 0.1, 0.2, 0.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(state.step_sizes, [0.2], rtol=1e-6)
    np.testing.assert_allclose(state.prev_updates, [0.2], rtol=1e-6)

  def test_schedule_is_refused_naming_learning_rate(self):
    """optax fails at init on a schedule (jnp.full_like of a function); ours when built."""
    with pytest.raises(TypeError, match="`learning_rate`.*initial step size"):
      jn.scale_by_rprop(lambda t: 0.1)
    with pytest.raises(TypeError):
      optax.scale_by_rprop(lambda t: 0.1).init(jnp.ones(2))


# ---------------------------------------------------------------------------
# scale_by_distance_over_gradients


def _reshaped_like_updates(tx):
  """optax's transform with each update reshaped to its gradient's shape (see the test below)."""

  def update(updates, state, params=None):
    out, state = tx.update(updates, state, params)
    return jax.tree.map(lambda u, g: u.reshape(jnp.shape(g)), out, updates), state

  return optax.GradientTransformation(tx.init, update)


_DOG = {
    "defaults": {},
    "reps_rel-eps": {"reps_rel": 1e-3, "eps": 1e-4},
    "param_dtype-none-scale": {"reps_rel": 1e-4, "param_dtype": None, "global_scale": 0.5},
}


class TestScaleByDistanceOverGradients(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("case", sorted(_DOG))
  def test_matches_optax(self, case, dtype):
    """max_dist, summed squares, stored x0 and every step; optax's (1,)-shaped
    updates of the scalar leaf are reshaped to the leaf (their values compared)."""
    kwargs = _DOG[case]
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then(jn, jn.scale_by_distance_over_gradients(**kwargs), -1.0),
        lambda: _reshaped_like_updates(
            optax.chain(optax_transform.scale_by_distance_over_gradients(**kwargs), optax.scale(-1.0))
        ),
        dtype,
    )
    # The distance grew past its floor reps_rel (1 + |x0|) on every leaf.
    with tj.precision(dtype):
      first = jax.tree.map(lambda x: kwargs.get("reps_rel", 1e-6) * (1 + np.linalg.norm(x)),
                           tj.make_params(0, dtype))
    grown = jax.tree.map(lambda d, f: float(d) > f, ours.state[0].max_dist, first)
    assert all(jax.tree.leaves(grown))

  def test_scalar_params_keep_their_shape_unlike_optax(self):
    """Deliberate difference: optax's update of a () param is (1,) and reshapes the param."""
    params = {"s": jnp.array(2.0), "v": jnp.array([1.0, -1.0])}
    grads = {"s": jnp.array(0.5), "v": jnp.array([0.3, 0.4])}
    ours = jn.scale_by_distance_over_gradients(1e-2)
    theirs = optax_transform.scale_by_distance_over_gradients(1e-2)
    u, _ = ours.update(grads, ours.init(params), params)
    o, _ = theirs.update(grads, theirs.init(params), params)
    assert u["s"].shape == () and o["s"].shape == (1,)
    assert optax.apply_updates(params, o)["s"].shape == (1,)  # optax's param changed shape
    np.testing.assert_array_equal(u["s"], o["s"][0])
    np.testing.assert_array_equal(u["v"], o["v"])

  def test_bfloat16_state_keeps_its_dtype_with_optax_values(self):
    """Deliberate difference: optax's max_dist starts bfloat16 and turns float32 at step 1
    (a lax.scan carry of changing type); ours is float32 from init, with optax's values."""
    params = {"w": jnp.array([1.0, -2.0, 0.5], jnp.bfloat16)}
    ours = jn.scale_by_distance_over_gradients(1e-2)
    theirs = optax_transform.scale_by_distance_over_gradients(1e-2)
    state, o_state = ours.init(params), theirs.init(params)
    assert o_state.max_dist["w"].dtype == jnp.bfloat16 and state.max_dist["w"].dtype == jnp.float32
    p, o_p = params, params
    for t in range(3):
      grads = {"w": jnp.array([0.5, -0.25 * t, 1.0], jnp.bfloat16)}
      u, state = ours.update(grads, state, p)
      o, o_state = theirs.update(grads, o_state, o_p)
      p, o_p = optax.apply_updates(p, u), optax.apply_updates(o_p, o)
      assert state.max_dist["w"].dtype == jnp.float32 and o_state.max_dist["w"].dtype == jnp.float32
      chex.assert_trees_all_equal(u, o)
      chex.assert_trees_all_equal(tj.to_plain(state), tj.to_plain(o_state))

  def test_update_needs_params(self):
    tx = jn.scale_by_distance_over_gradients()
    params = {"w": jnp.ones(2)}
    with pytest.raises(ValueError, match="params"):
      tx.update(params, tx.init(params))


# ---------------------------------------------------------------------------
# scale_by_optimistic_gradient

_OPTIMISTIC = {"defaults": {}, "alpha-beta": {"alpha": 0.7, "beta": 0.1}, "no-optimism": {"beta": 0.0}}


class TestScaleByOptimisticGradient(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("case", sorted(_OPTIMISTIC))
  def test_matches_optax(self, case, dtype):
    kwargs = _OPTIMISTIC[case]
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then(jn, jn.scale_by_optimistic_gradient(**kwargs)),
        lambda: _then(optax, optax.scale_by_optimistic_gradient(**kwargs)),
        dtype,
    )
    assert not bool(ours.state[0].is_initial_step)

  @chex.variants(with_jit=True, without_jit=True)
  def test_first_steps(self):
    """optax's property (issue #1082): u_1 = alpha g_1, then (alpha + beta) g_t - beta g_{t-1}."""
    alpha, beta = 0.5, 2.0
    tx = jn.scale_by_optimistic_gradient(alpha, beta)
    update = self.variant(tx.update)
    state = tx.init(jnp.asarray(10.0))
    outs = []
    for g in (2.0, 3.0, 4.0):
      u, state = update(jnp.asarray(g), state)
      outs.append(float(u))
    np.testing.assert_allclose(
        outs, [alpha * 2.0, (alpha + beta) * 3.0 - beta * 2.0, (alpha + beta) * 4.0 - beta * 3.0]
    )


# ---------------------------------------------------------------------------
# add_noise


def _unwrap_keys(run):
  return run._replace(state=optax.tree.unwrap_random_key_data(run.state))


def _compare_noise(variant, make_ours, make_ref, dtype):
  """compare_with_optax for states holding a typed key (compared through its key data)."""
  with tj.precision(dtype):
    params = tj.make_params(0, dtype)
    problem = tj.make_problem(params, 1)
    ours, ref = tj.run_trajectories(variant, [make_ours(), make_ref()], params, problem=problem)
    tj.assert_trajectories_close(_unwrap_keys(ours), _unwrap_keys(ref), dtype, initial_params=params)
  return ours, ref


_NOISE_KEYS = {
    "int": lambda: 7,
    "typed-key": lambda: jax.random.key(3),
    "rbg-impl": lambda: jax.random.key(3, impl="rbg"),
}
# (key kind, eta, gamma, dtype): an int seed in both dtypes, each typed key and
# each other gamma once (random-number kernels are slow to compile).
_NOISE_CASES = [
    ("int", 0.01, 0.55, "float32"), ("int", 0.01, 0.55, "float64"),
    ("typed-key", 0.1, 0.0, "float32"), ("rbg-impl", 0.1, 1.5, "float64"),
]


class TestAddNoise(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("key,eta,gamma,dtype", _NOISE_CASES)
  def test_matches_optax(self, key, eta, gamma, dtype):
    """The same random numbers, leaf for leaf, every step; count and key in the state."""
    make_key = _NOISE_KEYS[key]
    ours, _ = _compare_noise(
        self.variant,
        lambda: _then(jn, jn.add_noise(eta, gamma, make_key())),
        lambda: _then(optax, optax.add_noise(eta, gamma, make_key())),
        dtype,
    )
    assert int(ours.state[0].count) == tj.STEPS
    # The noise is there: updates differ from the noiseless -0.05 g.
    assert not np.allclose(jax.tree.leaves(ours.updates)[0], -0.05 * jax.tree.leaves(ours.grads)[0])

  def test_deprecated_seed_and_missing_key_are_handled_as_optax(self):
    """seed= warns (DeprecationWarning) and equals key=seed; no key warns and is seed 0."""
    params = {"w": jnp.zeros(3), "b": jnp.zeros(())}
    grads = jax.tree.map(jnp.zeros_like, params)

    def noise(tx):
      return tx.update(grads, tx.init(params), params)[0]

    with pytest.warns(DeprecationWarning, match="seed"):
      by_seed = noise(jn.add_noise(1.0, 0.0, seed=5))
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", DeprecationWarning)
      chex.assert_trees_all_equal(by_seed, noise(optax.add_noise(1.0, 0.0, seed=5)))
    chex.assert_trees_all_equal(by_seed, noise(jn.add_noise(1.0, 0.0, key=5)))
    with pytest.warns(UserWarning, match="key"):
      no_key = noise(jn.add_noise(1.0, 0.0))
    chex.assert_trees_all_equal(no_key, noise(jn.add_noise(1.0, 0.0, key=0)))
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="`key`.*`seed`"):
      jn.add_noise(1.0, 0.0, key=1, seed=1)

  def test_variance_follows_the_annealing(self):
    """optax's property: the noise at step t is sqrt(eta / t^gamma) times unit noise."""
    eta, gamma, key = 0.3, 0.55, 314
    params = {"w": jnp.zeros((4, 5)), "b": jnp.zeros(5)}
    zeros = jax.tree.map(jnp.zeros_like, params)
    tx, unit = jn.add_noise(eta, gamma, key), jn.add_noise(1.0, 0.0, key)
    state, unit_state = tx.init(params), unit.init(params)
    update = jax.jit(tx.update)
    for t in range(1, 11):
      noise, state = update(zeros, state)
      unit_noise, unit_state = unit.update(zeros, unit_state)
      expected = jax.tree.map(lambda n, s=np.sqrt(eta / t**gamma): s * n, unit_noise)
      chex.assert_trees_all_close(noise, expected, rtol=1e-5)

  def test_keys_differ_and_are_split_each_step(self):
    params = {"w": jnp.zeros(50)}
    zeros = {"w": jnp.zeros(50)}
    a, b = jn.add_noise(1.0, 0.0, 1), jn.add_noise(1.0, 0.0, 2)
    s_a, s_b = a.init(params), b.init(params)
    u_a, s_a = a.update(zeros, s_a)
    u_b, _ = b.update(zeros, s_b)
    u_a2, _ = a.update(zeros, s_a)
    assert not np.allclose(u_a["w"], u_b["w"]) and not np.allclose(u_a["w"], u_a2["w"])
    np.testing.assert_allclose(np.std(u_a["w"]), 1.0, atol=0.35)


# ---------------------------------------------------------------------------
# Bad arguments: each raises when built, naming the argument

NAN = float("nan")
_BAD = [
    # (factory, valid kwargs, argument, bad value, error)
    (jn.scale_by_polyak, {}, "f_min", NAN, ValueError),
    (jn.scale_by_polyak, {}, "f_min", "0", TypeError),
    (jn.scale_by_polyak, {}, "max_learning_rate", 0.0, ValueError),
    (jn.scale_by_polyak, {}, "max_learning_rate", NAN, ValueError),
    (jn.scale_by_polyak, {}, "eps", -1.0, ValueError),
    (jn.scale_by_polyak, {}, "variant", "SPS", ValueError),
    (jn.scale_by_polyak, {}, "variant", None, ValueError),
    (jn.scale_by_polyak, {}, "variant", True, TypeError),
    (jn.scale_by_rprop, {"learning_rate": 0.1}, "learning_rate", 0.0, ValueError),
    (jn.scale_by_rprop, {"learning_rate": 0.1}, "learning_rate", NAN, ValueError),
    (jn.scale_by_rprop, {"learning_rate": 0.1}, "learning_rate", "0.1", TypeError),
    (jn.scale_by_rprop, {"learning_rate": 0.1}, "eta_minus", 0.0, ValueError),
    (jn.scale_by_rprop, {"learning_rate": 0.1}, "eta_minus", 1.5, ValueError),
    (jn.scale_by_rprop, {"learning_rate": 0.1}, "eta_minus", NAN, ValueError),
    (jn.scale_by_rprop, {"learning_rate": 0.1}, "eta_minus", "0.5", TypeError),
    (jn.scale_by_rprop, {"learning_rate": 0.1}, "eta_plus", 0.9, ValueError),
    (jn.scale_by_rprop, {"learning_rate": 0.1}, "eta_plus", float("inf"), ValueError),
    (jn.scale_by_rprop, {"learning_rate": 0.1}, "min_step_size", -1e-6, ValueError),
    (jn.scale_by_rprop, {"learning_rate": 0.1}, "min_step_size", 100.0, ValueError),
    (jn.scale_by_rprop, {"learning_rate": 0.1}, "max_step_size", 0.0, ValueError),
    (jn.scale_by_rprop, {"learning_rate": 0.1}, "max_step_size", NAN, ValueError),
    (jn.scale_by_distance_over_gradients, {}, "reps_rel", 0.0, ValueError),
    (jn.scale_by_distance_over_gradients, {}, "reps_rel", NAN, ValueError),
    (jn.scale_by_distance_over_gradients, {}, "eps", -1.0, ValueError),
    (jn.scale_by_distance_over_gradients, {}, "param_dtype", "notadtype", TypeError),
    (jn.scale_by_distance_over_gradients, {}, "global_scale", NAN, ValueError),
    (jn.scale_by_distance_over_gradients, {}, "global_scale", "1", TypeError),
    (jn.scale_by_optimistic_gradient, {}, "alpha", NAN, ValueError),
    (jn.scale_by_optimistic_gradient, {}, "alpha", lambda t: 1.0, TypeError),
    (jn.scale_by_optimistic_gradient, {}, "beta", float("inf"), ValueError),
    (jn.scale_by_optimistic_gradient, {}, "beta", "1", TypeError),
    (jn.add_noise, {"eta": 0.01, "gamma": 0.55, "key": 0}, "eta", -0.1, ValueError),
    (jn.add_noise, {"eta": 0.01, "gamma": 0.55, "key": 0}, "eta", NAN, ValueError),
    (jn.add_noise, {"eta": 0.01, "gamma": 0.55, "key": 0}, "gamma", -1.0, ValueError),
    (jn.add_noise, {"eta": 0.01, "gamma": 0.55, "key": 0}, "gamma", "0.5", TypeError),
    (jn.add_noise, {"eta": 0.01, "gamma": 0.55, "key": 0}, "key", 2.5, TypeError),
    (jn.add_noise, {"eta": 0.01, "gamma": 0.55, "key": 0}, "key", -1, ValueError),
    (jn.add_noise, {"eta": 0.01, "gamma": 0.55, "key": 0}, "key", "0", TypeError),
    (jn.add_noise, {"eta": 0.01, "gamma": 0.55, "key": 0}, "key", jax.random.PRNGKey(0), TypeError),
    (jn.add_noise, {"eta": 0.01, "gamma": 0.55}, "seed", 2.5, TypeError),
]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(
    "factory, valid, arg, value, error", _BAD,
    ids=[f"{f.__name__}-{a}-{i}" for i, (f, _, a, _, _) in enumerate(_BAD)],
)
def test_bad_argument_raises_naming_it(factory, valid, arg, value, error):
  with pytest.raises(error, match=f"`{arg}`"):
    factory(**{**valid, arg: value})


def test_a_batch_of_keys_is_refused():
  with pytest.raises(TypeError, match="`key`.*single key"):
    jn.add_noise(0.01, 0.55, jax.random.split(jax.random.key(0), 2))


def test_traced_arguments_are_accepted():
  """Inside jit (or inject_hyperparams) the numeric arguments are tracers: nothing to check."""
  params = {"w": jnp.ones(3)}

  def build_and_step(x):
    outs = []
    for tx in (jn.scale_by_rprop(x, x, 1 + x, x * 1e-3, 10 * x), jn.scale_by_optimistic_gradient(x, x),
               jn.scale_by_distance_over_gradients(x, x, global_scale=x), jn.add_noise(x, x, 0)):
      outs.append(tx.update(params, tx.init(params), params)[0])
    tx = jn.scale_by_polyak(x, x, x)
    outs.append(tx.update(params, tx.init(params), params, value=x)[0])
    return outs

  for out in jax.eval_shape(build_and_step, jnp.float32(0.5)):
    chex.assert_trees_all_equal_shapes(out, params)


def test_integer_params_are_refused_at_init():
  params = {"n": jnp.array([1, 2], jnp.int32)}
  for tx in (jn.scale_by_polyak(), jn.scale_by_rprop(0.1), jn.scale_by_distance_over_gradients(),
             jn.scale_by_optimistic_gradient(), jn.add_noise(0.1, 0.5, 0)):
    with pytest.raises(TypeError, match=r"floating.*\['n'\]"):
      tx.init(params)
