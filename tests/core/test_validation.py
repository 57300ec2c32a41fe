"""Bad input gets a clear error that names the problem; traced values still work."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn


def _params():
  return {"a": jnp.ones(2), "b": jnp.array([1.0, -2.0, 3.0])}


# --- non-array leaves at init ------------------------------------------------


@pytest.mark.parametrize(
    "params, path",
    [
        ({"a": jnp.ones(2), "b": "hello"}, r"params\['b'\]"),
        ({"a": [jnp.ones(2), object()]}, r"params\['a'\]\[1\]"),
        ({"layer": {"kernel": jnp.ones(2), "name": "dense"}}, r"params\['layer'\]\['name'\]"),
    ],
    ids=["string", "object", "nested_string"],
)
@pytest.mark.parametrize(
    "make_tx",
    [lambda: jn.adam(1e-3), lambda: jn.sgd(0.1), lambda: jn.rmsprop(0.1), lambda: jn.adagrad(0.1)],
    ids=["adam", "sgd", "rmsprop", "adagrad"],
)
def test_init_non_array_leaf_names_path(make_tx, params, path):
  """init with a string/object leaf raises a TypeError naming the leaf's path."""
  with pytest.raises(TypeError, match=path):
    make_tx().init(params)


def test_init_accepts_numbers_and_none():
  """Python numbers, numpy scalars and None subtrees are valid params."""
  params = {"a": 1.5, "b": np.float32(2.0), "c": None, "d": jnp.ones(2)}
  state = jn.adam(1e-3).init(params)
  assert state[0].mu["c"] is None


# --- structure mismatches at update -------------------------------------------

_STATEFUL = {
    "adam": lambda: jn.adam(1e-3),
    "adamw": lambda: jn.adamw(1e-3),
    "nadam": lambda: jn.nadam(1e-3),
    "radam": lambda: jn.radam(1e-3),
    "amsgrad": lambda: jn.amsgrad(1e-3),
    "adamax": lambda: jn.adamax(1e-3),
    "sgd_momentum": lambda: jn.sgd(0.1, momentum=0.9),
    "rmsprop": lambda: jn.rmsprop(0.1),
    "adagrad": lambda: jn.adagrad(0.1),
    "adadelta": lambda: jn.adadelta(),
}

_BAD_GRADS = {
    "extra_key": ({"a": jnp.ones(2), "b": jnp.ones(3), "c": jnp.ones(1)}, r"\['c'\]"),
    "missing_key": ({"a": jnp.ones(2)}, r"\['b'\]"),
}


@pytest.mark.parametrize("bad", list(_BAD_GRADS), ids=list(_BAD_GRADS))
@pytest.mark.parametrize("name", list(_STATEFUL), ids=list(_STATEFUL))
def test_update_grads_structure_mismatch_names_path(name, bad):
  """Grads with an extra or missing key raise a ValueError naming that key."""
  tx = _STATEFUL[name]()
  params = _params()
  grads, path = _BAD_GRADS[bad]
  with pytest.raises(ValueError, match=path):
    tx.update(grads, tx.init(params), params)


@pytest.mark.parametrize("name", ["adam", "sgd_momentum", "adagrad"])
def test_update_list_vs_dict_names_path(name):
  """List params with dict grads raise a ValueError naming the differing entries."""
  tx = _STATEFUL[name]()
  params = [jnp.ones(2), jnp.ones(3)]
  grads = {"0": jnp.ones(2), "1": jnp.ones(3)}
  with pytest.raises(ValueError, match=r"\['0'\].*\[0\]|\[0\].*\['0'\]"):
    tx.update(grads, tx.init(params), params)


def test_update_mismatch_error_under_jit():
  """The structure error is raised (at trace time) under jit too."""
  tx = jn.adam(1e-3)
  params = _params()
  step = jax.jit(tx.update)
  with pytest.raises(ValueError, match=r"\['c'\]"):
    step({**params, "c": jnp.ones(1)}, tx.init(params), params)


def test_update_params_structure_mismatch_adamw_names_path():
  """adamw: params at update with a key the grads lack raise ValueError naming it."""
  tx = jn.adamw(1e-3)
  params = _params()
  with pytest.raises(ValueError, match=r"`params`.*\['c'\]"):
    tx.update(params, tx.init(params), {**params, "c": jnp.ones(1)})


def test_plain_sgd_update_checks_grads_against_params():
  """sgd without momentum still rejects grads whose structure differs from params."""
  tx = jn.sgd(0.1)
  params = _params()
  with pytest.raises(ValueError, match=r"\['c'\]"):
    tx.update({**params, "c": jnp.ones(1)}, tx.init(params), params)


def test_adam_update_checks_params_against_grads():
  """adam rejects params at update whose structure differs from the grads."""
  tx = jn.adam(1e-3)
  params = _params()
  with pytest.raises(ValueError, match=r"\['c'\]"):
    tx.update(params, tx.init(params), {**params, "c": jnp.ones(1)})


def test_apply_updates_mismatch_names_path():
  """apply_updates with an update tree lacking a key names that key."""
  with pytest.raises(ValueError, match=r"\['b'\]"):
    jn.apply_updates(_params(), {"a": jnp.ones(2)})


# --- hyper-parameters checked at construction ---------------------------------


@pytest.mark.parametrize(
    "build, error, name",
    [
        (lambda: jn.adam(1e-3, b1=1.0), ValueError, "b1"),
        (lambda: jn.adam(1e-3, b1=-0.5), ValueError, "b1"),
        (lambda: jn.adam(1e-3, b2=-0.1), ValueError, "b2"),
        (lambda: jn.adamw(1e-3, b2=1.5), ValueError, "b2"),
        (lambda: jn.radam(1e-3, b2=1.0), ValueError, "b2"),
        (lambda: jn.amsgrad(1e-3, b1=2.0), ValueError, "b1"),
        (lambda: jn.adamax(1e-3, b2=-0.1), ValueError, "b2"),
        (lambda: jn.rmsprop(1e-3, decay=1.5), ValueError, "decay"),
        (lambda: jn.ema(decay=1.5), ValueError, "decay"),
        (lambda: jn.adadelta(rho=1.0), ValueError, "rho"),
        (lambda: jn.adam(1e-3, eps=-1), ValueError, "eps"),
        (lambda: jn.rmsprop(1e-3, eps=-1), ValueError, "eps"),
        (lambda: jn.adagrad(1e-3, eps=-1), ValueError, "eps"),
        (lambda: jn.adam(1e-3, eps_root=-1e-8), ValueError, "eps_root"),
        (lambda: jn.adagrad(1e-3, initial_accumulator_value=-1.0), ValueError, "initial_accumulator_value"),
        (lambda: jn.adam(float("nan")), ValueError, "learning_rate"),
        (lambda: jn.sgd(float("inf")), ValueError, "learning_rate"),
        (lambda: jn.adam(jnp.array(jnp.nan)), ValueError, "learning_rate"),
        (lambda: jn.adam("0.1"), TypeError, "learning_rate"),
        (lambda: jn.sgd("0.1"), TypeError, "learning_rate"),
        (lambda: jn.adam(jnp.array([0.1, 0.2])), TypeError, "learning_rate"),
        (lambda: jn.adamw(1e-3, weight_decay=float("nan")), ValueError, "weight_decay"),
        (lambda: jn.clip_by_global_norm(-1), ValueError, "max_norm"),
        (lambda: jn.clip(-0.5), ValueError, "max_delta"),
        (lambda: jn.adam(1e-3, mu_dtype="notadtype"), TypeError, "mu_dtype"),
        (lambda: jn.adam(1e-3, nu_dtype="notadtype"), TypeError, "nu_dtype"),
        (lambda: jn.trace(0.9, accumulator_dtype="notadtype"), TypeError, "accumulator_dtype"),
        (lambda: jn.lookahead(jn.sgd(0.1), sync_period=0, slow_step_size=0.5), ValueError, "sync_period"),
        (lambda: jn.lookahead(jn.sgd(0.1), sync_period=-1, slow_step_size=0.5), ValueError, "sync_period"),
        (lambda: jn.lookahead(jn.sgd(0.1), sync_period=2.5, slow_step_size=0.5), ValueError, "sync_period"),
        (lambda: jn.lookahead(jn.sgd(0.1), sync_period=5, slow_step_size=1.5), ValueError, "slow_step_size"),
        (lambda: jn.lookahead("sgd", sync_period=5, slow_step_size=0.5), TypeError, "fast_optimizer"),
        (lambda: jn.scale_by_schedule(0.1), TypeError, "step_size_fn"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_hyperparameter_raises_naming_it(build, error, name):
  """A bad hyper-parameter raises at construction with the argument's name."""
  with pytest.raises(error, match=f"`{name}`"):
    build()


@pytest.mark.parametrize(
    "build",
    [
        lambda: jn.sgd(0.1, momentum=1.2),
        lambda: jn.sgd(0.1, momentum=-0.1),
        lambda: jn.rmsprop(0.1, momentum=1.2),
    ],
    ids=["sgd_1.2", "sgd_negative", "rmsprop_1.2"],
)
def test_bad_momentum_error_names_momentum(build):
  """momentum outside [0, 1) raises a ValueError naming `momentum` (the caller's argument)."""
  with pytest.raises(ValueError, match="momentum"):
    build()


@pytest.mark.parametrize(
    "build",
    [
        lambda: jn.adam(1e-3, b1=0.0, b2=0.0, eps=0.0),
        lambda: jn.sgd(0.0, momentum=0.0),
        lambda: jn.lookahead(jn.sgd(0.1), sync_period=1, slow_step_size=1.0),
        lambda: jn.adam(np.float32(1e-3)),
        lambda: jn.adam(lambda step: 1e-3 / (1 + step)),
        lambda: jn.adadelta(None),
        lambda: jn.adam(1e-3, mu_dtype=jnp.bfloat16, nu_dtype="float32"),
    ],
)
def test_boundary_hyperparameters_are_accepted(build):
  """Values on the allowed boundary (and schedules, numpy scalars) are accepted."""
  tx = build()
  assert isinstance(tx, tuple) and len(tx) == 2


# --- traced hyper-parameters inside jit --------------------------------------


def _grads():
  return {"a": jnp.array([0.5, -1.0]), "b": jnp.array([2.0, 0.1, -0.3])}


def test_traced_learning_rate_inside_jit_matches_concrete():
  """adam(lr) built from a traced lr inside jit equals the concrete-lr update."""
  params, grads = _params(), _grads()
  state = jn.adam(0.1).init(params)
  step = jax.jit(lambda lr, g, s, p: jn.adam(lr).update(g, s, p))
  u_traced, s_traced = step(jnp.float32(0.1), grads, state, params)
  u_ref, s_ref = jn.adam(0.1).update(grads, state, params)
  chex.assert_trees_all_close(u_traced, u_ref, rtol=1e-6)
  chex.assert_trees_all_close(s_traced, s_ref, rtol=1e-6)


@pytest.mark.parametrize(
    "build, value",
    [
        (lambda h: jn.adam(1e-2, b1=h), 0.8),
        (lambda h: jn.adam(1e-2, b2=h), 0.99),
        (lambda h: jn.adam(1e-2, eps=h), 1e-3),
        (lambda h: jn.adamw(1e-2, weight_decay=h), 1e-2),
        (lambda h: jn.sgd(1e-2, momentum=h), 0.9),
        (lambda h: jn.sgd(h, momentum=0.9, nesterov=True), 1e-2),
        (lambda h: jn.rmsprop(1e-2, decay=h), 0.95),
        (lambda h: jn.adagrad(1e-2, initial_accumulator_value=h), 0.2),
        (lambda h: jn.adadelta(rho=h), 0.95),
        (lambda h: jn.radam(1e-2, b2=h), 0.99),
        (lambda h: jn.amsgrad(h), 1e-2),
        (lambda h: jn.adamax(1e-2, b1=h), 0.8),
        (lambda h: jn.chain(jn.clip_by_global_norm(h), jn.sgd(0.1)), 0.5),
    ],
    ids=[
        "adam_b1", "adam_b2", "adam_eps", "adamw_wd", "sgd_momentum", "sgd_lr",
        "rmsprop_decay", "adagrad_init", "adadelta_rho", "radam_b2", "amsgrad_lr",
        "adamax_b1", "clip_max_norm",
    ],
)
def test_traced_hyperparameters_inside_jit(build, value):
  """Hyper-parameters passed as traced jax arrays work in jit and equal concrete ones over 3 steps."""
  params, grads = _params(), _grads()

  def three_steps(h, params):
    tx = build(h)
    state = tx.init(params)
    for _ in range(3):
      u, state = tx.update(grads, state, params)
      params = jn.apply_updates(params, u)
    return params

  traced = jax.jit(three_steps)(jnp.float32(value), params)
  concrete = three_steps(value, params)
  chex.assert_tree_all_finite(traced)
  chex.assert_trees_all_close(traced, concrete, rtol=1e-5, atol=1e-7)
  assert not np.allclose(np.asarray(traced["b"]), np.asarray(params["b"]))


def test_traced_lookahead_slow_step_size_inside_jit():
  """lookahead with a traced slow_step_size works in jit and equals the concrete one."""
  params = jn.LookaheadParams.init_synced(_params())
  grads = _grads()

  def steps(alpha, params):
    tx = jn.lookahead(jn.sgd(0.1), sync_period=2, slow_step_size=alpha)
    state = tx.init(params)
    for _ in range(4):
      u, state = tx.update(grads, state, params)
      params = jn.apply_updates(params, u)
    return params

  chex.assert_trees_all_close(jax.jit(steps)(jnp.float32(0.5), params), steps(0.5, params), rtol=1e-6)


def test_inject_hyperparams_with_our_optimizer():
  """optax.inject_hyperparams can drive our adam's learning rate (a traced value)."""
  params, grads = _params(), _grads()
  tx = optax.inject_hyperparams(jn.adam)(learning_rate=0.1)
  state = tx.init(params)
  u, state = jax.jit(tx.update)(grads, state, params)
  u_ref, _ = jn.adam(0.1).update(grads, jn.adam(0.1).init(params), params)
  # inject_hyperparams feeds b2 as float32, so 1 - b2 and 1 - b2**t round
  # alike; the eager reference differs from it in the 6th digit.
  chex.assert_trees_all_close(u, u_ref, rtol=2e-5)
  state.hyperparams["learning_rate"] = jnp.float32(0.01)
  u2, _ = jax.jit(tx.update)(grads, state, params)
  assert float(jnp.max(jnp.abs(u2["b"]))) < float(jnp.max(jnp.abs(u["b"])))


@pytest.mark.parametrize("value,expected", [
    (1, True), (0.5, True), (-1e-3, True),
    (True, False), (np.float32(1.0), False), (np.float64(1.0), False), (jnp.asarray(1.0), False),
    (None, False), ("1", False),
])
def test_is_python_number(value, expected):
  """Python ints and floats (what JAX makes weakly typed), never bools, numpy
  scalars (np.float64 subclasses float) or arrays."""
  from jaxopt_notes.core import validation  # pylint: disable=g-import-not-at-top
  assert validation.is_python_number(value) is expected


@pytest.mark.parametrize("value,expected", [
    (1, True), (1.0, True), (np.float32(1.0), True), (np.float64(1.0), True),
    (jnp.asarray(1.0), True), (0.5, False), (jnp.ones(2), False), (True, False), (None, False),
    (lambda t: 1.0, False),
])
def test_is_concrete_one(value, expected):
  """A known scalar 1 of any kind; not arrays of several values, bools, or schedules."""
  from jaxopt_notes.core import validation  # pylint: disable=g-import-not-at-top
  assert validation.is_concrete_one(value) is expected


# --- bools, NaN sync periods and non-finite schedule values (issue 10) ----------

@pytest.mark.parametrize("build, name", [
    (lambda: jn.adam(0.1, b1=True), "b1"),
    (lambda: jn.adam(0.1, b2=True), "b2"),
    (lambda: jn.radam(0.1, b2=True), "b2"),
    (lambda: jn.radam(0.1, b1=False), "b1"),
    (lambda: jn.sgd(True), "learning_rate"),
    (lambda: jn.lookahead(jn.sgd(0.1), True, 0.5), "sync_period"),
])
def test_bool_hyperparameters_raise_type_error_naming_them(build, name):
  """adam(b1=True) gave NaN updates and radam(b2=True) a ZeroDivisionError."""
  with pytest.raises(TypeError, match=f"`{name}`"):
    build()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_sync_period_names_the_argument(bad):
  with pytest.raises(ValueError, match="`sync_period` must be an integer >= 1"):
    jn.lookahead(jn.sgd(0.1), bad, 0.5)


@pytest.mark.parametrize("build, name", [
    (lambda v: jn.constant_schedule(v), "value"),
    (lambda v: jn.cosine_decay_schedule(v, 10), "init_value"),
    (lambda v: jn.cosine_decay_schedule(0.1, 10, alpha=v), "alpha"),
    (lambda v: jn.polynomial_schedule(v, 0.0, 1.0, 10), "init_value"),
    (lambda v: jn.linear_schedule(0.1, v, 10), "end_value"),
    (lambda v: jn.exponential_decay(v, 10, 0.5), "init_value"),
    (lambda v: jn.piecewise_constant_schedule(v, {5: 0.5}), "init_value"),
    (lambda v: jn.warmup_cosine_decay_schedule(0.0, v, 5, 20), "peak_value"),
    (lambda v: jn.warmup_exponential_decay_schedule(0.0, v, 5, 10, 0.5), "peak_value"),
    (lambda v: jn.cosine_onecycle_schedule(20, v), "peak_value"),
])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), np.array([1.0, np.nan])])
def test_non_finite_schedule_values_raise_naming_them(build, name, bad):
  """A non-finite learning rate raises, given as a number or through a schedule."""
  with pytest.raises(ValueError, match=f"`{name}` must be a finite number"):
    build(bad)


def test_finite_schedule_values_keep_optax_numbers():
  for ours, theirs in [
      (jn.constant_schedule(0.3), optax.constant_schedule(0.3)),
      (jn.cosine_decay_schedule(0.1, 10, alpha=0.1), optax.cosine_decay_schedule(0.1, 10, alpha=0.1)),
      (jn.warmup_cosine_decay_schedule(0.0, 1.0, 5, 20), optax.warmup_cosine_decay_schedule(0.0, 1.0, 5, 20)),
  ]:
    for t in (0, 3, 7, 25):
      np.testing.assert_allclose(ours(t), theirs(t), rtol=1e-6)
  # Traced values have nothing to check and still work.
  chex.assert_trees_all_close(
      jax.jit(lambda v: jn.constant_schedule(v)(0))(jnp.float32(0.2)), jnp.float32(0.2)
  )
