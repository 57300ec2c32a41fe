"""Reliability: bad trees, odd dtypes, saturation, NaN and zero gradients.

* mismatched updates/params/state trees raise one error naming the path;
* integer/bool params are rejected at init, naming the path;
* bf16/fp16 params keep their dtype, the state keeps init's dtypes, and the
  ``*_dtype`` arguments are honoured; complex params equal optax;
* step counters saturate at the int32 maximum;
* NaN/Inf gradients behave as documented (and as optax), ``apply_if_finite``
  leaves the state untouched; zero gradients never divide 0 by 0.

Bad factory arguments are swept in ``test_bad_arguments.py``.
"""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _zoo
from tests._problems import linspace_params as _params
from tests._problems import normal_grads as _grads
from tests._sweep import INF, NAN

INT32_MAX = int(np.iinfo(np.int32).max)


# --- 1. mismatched trees at update time ---------------------------------------

_BAD_TREES = {
    "extra_key": (lambda g: {**g, "c": jnp.ones(1)}, r"\['c'\]"),
    "missing_key": (lambda g: {"w": g["w"]}, r"\['b'\]"),
    "wrong_shape": (lambda g: {**g, "b": g["b"][:1]}, r"updates\['b'\]` has shape \(1,\)"),
    "list_for_dict": (lambda g: [g["b"], g["w"]], r"\[0\]"),
}


@pytest.mark.parametrize("bad", list(_BAD_TREES))
@pytest.mark.parametrize("name", list(_zoo.ALL))
def test_mismatched_updates_raise_naming_the_path(name, bad):
  """Gradients with an extra/missing key, another shape or container: one ValueError naming it."""
  entry = _zoo.ALL[name]
  tx, params = entry.ours(), entry.params(_params())
  make_bad, path = _BAD_TREES[bad]
  with pytest.raises(ValueError, match=path):
    entry.update(tx, make_bad(_grads()), tx.init(params), params)


def _stateful(state):
  return any(jnp.ndim(x) > 0 for x in jax.tree.leaves(state))


_WITH_STATE = [n for n, e in _zoo.OPTIMIZERS.items() if _stateful(e.ours().init(_params()))]


@pytest.mark.parametrize("name", _WITH_STATE)
def test_state_of_other_params_raises_naming_the_path(name):
  """A state built for other params (a leaf more) is rejected naming the leaf."""
  entry = _zoo.OPTIMIZERS[name]
  tx = entry.ours()
  state = tx.init({**_params(), "extra": jnp.ones(2)})
  with pytest.raises(ValueError, match=r"\['extra'\]"):
    entry.update(tx, _grads(), state, _params())


# --- 2. integer and boolean params --------------------------------------------


@pytest.mark.parametrize("leaf", [jnp.array([1, 2], jnp.int32), jnp.array(True), 3],
                         ids=["int32", "bool", "python_int"])
@pytest.mark.parametrize("name", list(_zoo.ALL))
def test_integer_params_are_rejected_at_init_naming_the_path(name, leaf):
  """An integer/bool params leaf: TypeError naming it (optax truncates 1 - 0.1 to 0)."""
  entry = _zoo.ALL[name]
  params = entry.params({**_params(), "layer": {"steps": leaf}})
  with pytest.raises(TypeError, match=r"floating.*\['layer'\]\['steps'\]"):
    entry.ours().init(params)


def test_optax_truncates_integer_params():
  """Why: optax accepts them and a 0.1 step turns 1 into 0 (a step of -1)."""
  params = {"n": jnp.array([1, 2], jnp.int32)}
  updates, _ = optax.sgd(0.1).update({"n": jnp.ones(2, jnp.int32)}, optax.sgd(0.1).init(params))
  np.testing.assert_array_equal(optax.apply_updates(params, updates)["n"], [0, 1])


def test_frozen_integer_leaves_are_allowed_outside_the_optimizer():
  """Integer leaves kept out with partition/set_to_zero or masked pass through unchanged."""
  params = {**_params(), "steps": jnp.array([3, 4], jnp.int32)}
  grads = {**_grads(), "steps": jnp.zeros(2, jnp.int32)}
  labels = {"w": "train", "b": "train", "steps": "frozen"}
  for tx in (jn.partition({"train": jn.adam(0.1), "frozen": jn.set_to_zero()}, labels),
             jn.masked(jn.adam(0.1), {"w": True, "b": True, "steps": False})):
    updates, _ = tx.update(grads, tx.init(params), params)
    new = jn.apply_updates(params, updates)
    assert new["steps"].dtype == jnp.int32
    np.testing.assert_array_equal(new["steps"], params["steps"])


# --- 3. low precision, dtype arguments and complex params ---------------------


def _dtypes(tree):
  return jax.tree.map(lambda x: jnp.asarray(x).dtype, tree)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("name", list(_zoo.OPTIMIZERS))
def test_low_precision_params_keep_dtypes_like_optax(name, dtype):
  """bf16/fp16 params stay so; state dtypes never change; dtypes and values equal optax's."""
  entry = _zoo.OPTIMIZERS[name]
  ours, theirs = entry.ours(), entry.theirs()
  params = _params(dtype)
  state, o_state = ours.init(params), theirs.init(params)
  init_dtypes = _dtypes(state)
  assert _dtypes(o_state) == init_dtypes
  o_params = params
  for t in range(3):
    grads = _grads(t, dtype)
    updates, state = entry.update(ours, grads, state, params)
    o_updates, o_state = entry.update(theirs, grads, o_state, o_params)
    params, o_params = jn.apply_updates(params, updates), optax.apply_updates(o_params, o_updates)
    assert _dtypes(updates) == _dtypes(o_updates)
    assert _dtypes(state) == init_dtypes
  assert _dtypes(params) == _dtypes(_params(dtype))
  chex.assert_trees_all_close(params, o_params, rtol=1e-2 if dtype == jnp.bfloat16 else 1e-3)


def test_injected_hyperparams_keep_a_mixed_precision_state_fixed():
  """float32 hyper-parameters with bf16 params: the state keeps init's dtypes, so scan works.

  optax's inject_hyperparams promotes the bf16 moments to float32 after the
  first step (a carry of changing type, which lax.scan rejects); ours casts
  them back, so its numbers are those of the plain optimizer's bf16 moments.
  """
  params = {"w": jnp.ones((2, 3)), "b": jnp.ones(3, jnp.bfloat16)}
  for factory in (jn.adam, jn.sgd, jn.rmsprop, jn.adadelta, jn.amsgrad, jn.radam):
    kwargs = {"momentum": 0.9} if factory is jn.sgd else {}
    tx = jn.inject_hyperparams(factory)(learning_rate=0.1, **kwargs)
    state = tx.init(params)

    def body(carry, g):
      p, s = carry
      u, s = tx.update(jax.tree.map(lambda x: (x * g).astype(x.dtype), p), s, p)
      return (jn.apply_updates(p, u), s), None

    (new_params, new_state), _ = jax.lax.scan(body, (params, state), jnp.linspace(0.5, 1.5, 4))
    assert _dtypes(new_state) == _dtypes(state)
    assert _dtypes(new_params) == _dtypes(params)
    chex.assert_tree_all_finite(new_params)


@pytest.mark.parametrize(
    "ours, theirs, field, dtype",
    [
        (lambda: jn.adam(0.1, mu_dtype=jnp.bfloat16), lambda: optax.adam(0.1, mu_dtype=jnp.bfloat16),
         lambda s: s[0].mu, jnp.bfloat16),
        (lambda: jn.adamw(0.1, mu_dtype=jnp.float16), lambda: optax.adamw(0.1, mu_dtype=jnp.float16),
         lambda s: s[0].mu, jnp.float16),
        (lambda: jn.amsgrad(0.1, mu_dtype=jnp.bfloat16), lambda: optax.amsgrad(0.1, mu_dtype=jnp.bfloat16),
         lambda s: s[0].mu, jnp.bfloat16),
        (lambda: jn.sgd(0.1, momentum=0.9, accumulator_dtype=jnp.bfloat16),
         lambda: optax.sgd(0.1, momentum=0.9, accumulator_dtype=jnp.bfloat16),
         lambda s: s[0].trace, jnp.bfloat16),
        (lambda: jn.ema(0.9, accumulator_dtype=jnp.bfloat16), lambda: optax.ema(0.9, accumulator_dtype=jnp.bfloat16),
         lambda s: s.ema, jnp.bfloat16),
        (lambda: jn.MultiSteps(jn.sgd(0.1), 2, accumulator_dtype=jnp.bfloat16).gradient_transformation(),
         lambda: optax.MultiSteps(optax.sgd(0.1), 2).gradient_transformation(),
         lambda s: s.acc_grads, jnp.bfloat16),
    ],
    ids=["adam_mu", "adamw_mu", "amsgrad_mu", "sgd_accumulator", "ema_accumulator", "multisteps_acc"],
)
def test_dtype_arguments_are_honoured(ours, theirs, field, dtype):
  """mu_dtype/accumulator_dtype: that dtype at init and after steps; numbers as optax's."""
  ours, theirs = ours(), theirs()
  params = _params()
  state, o_state = ours.init(params), theirs.init(params)
  for t in range(3):
    updates, state = ours.update(_grads(t), state, params)
    o_updates, o_state = theirs.update(_grads(t), o_state, params)
    assert all(x.dtype == dtype for x in jax.tree.leaves(field(state)))
  if field(o_state) is not None and _dtypes(field(o_state)) == _dtypes(field(state)):
    chex.assert_trees_all_close(updates, o_updates, rtol=1e-6)


def test_injected_factory_takes_dtype_arguments_as_static():
  """inject_hyperparams(adam)(mu_dtype=bf16): a dtype, not a schedule (optax's fails here)."""
  tx = jn.inject_hyperparams(jn.adam)(learning_rate=0.1, mu_dtype=jnp.bfloat16)
  state = tx.init(_params())
  assert "mu_dtype" not in state.hyperparams and "mu_dtype" not in state.hyperparams_states
  for t in range(2):
    _, state = tx.update(_grads(t), state, _params())
  assert {x.dtype for x in jax.tree.leaves(state.inner_state[0].mu)} == {jnp.dtype(jnp.bfloat16)}


def test_nu_dtype_is_honoured():
  """nu_dtype (ours only): float32 second moments for bf16 params, mu stays bf16."""
  for tx in (jn.adam(0.1, nu_dtype=jnp.float32), jn.amsgrad(0.1, nu_dtype=jnp.float32)):
    params = _params(jnp.bfloat16)
    state = tx.init(params)
    for t in range(3):
      updates, state = tx.update(_grads(t, jnp.bfloat16), state, params)
    assert {x.dtype for x in jax.tree.leaves(state[0].nu)} == {jnp.dtype(jnp.float32)}
    assert {x.dtype for x in jax.tree.leaves(state[0].mu)} == {jnp.dtype(jnp.bfloat16)}
    chex.assert_tree_all_finite(updates)


def _complex(seed):
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda p: jnp.asarray(rng.standard_normal(p.shape) + 1j * rng.standard_normal(p.shape), jnp.complex64),
      _params(),
  )


@pytest.mark.parametrize("name", ["adam", "sgd", "sgd_momentum", "rmsprop", "rmsprop_centered_momentum",
                                  "adagrad"])
def test_complex_params_equal_optax(name):
  """Complex params and gradients (|g|^2 in the second moments) give optax's numbers."""
  entry = _zoo.OPTIMIZERS[name]
  ours, theirs = entry.ours(), entry.theirs()
  params = o_params = _complex(100)
  state, o_state = ours.init(params), theirs.init(params)
  for t in range(10):
    updates, state = entry.update(ours, _complex(t), state, params)
    o_updates, o_state = entry.update(theirs, _complex(t), o_state, o_params)
    params, o_params = jn.apply_updates(params, updates), optax.apply_updates(o_params, o_updates)
  assert _dtypes(params) == _dtypes(_complex(0))
  chex.assert_trees_all_close(params, o_params, rtol=1e-5, atol=1e-6)
  # Leaf by leaf: the NamedTuple classes are ours and optax's.
  chex.assert_trees_all_close(jax.tree.leaves(state), jax.tree.leaves(o_state), rtol=1e-5, atol=1e-6)


# --- 4. step counters saturate -------------------------------------------------

COUNTERS = {"count", "gradient_step", "t"}  # `t`: adan's step count (optax's name)


def _saturate(state):
  """``state`` with every int32 step counter set to the int32 maximum."""

  def fill(path, x):
    key = path[-1] if path else None
    name = getattr(key, "name", None) or getattr(key, "key", None)
    if name in COUNTERS and jnp.asarray(x).dtype == jnp.int32 and jnp.ndim(x) == 0:
      return jnp.asarray(INT32_MAX, jnp.int32)
    return x

  return jax.tree_util.tree_map_with_path(fill, state)


def _counters(state):
  return [
      int(x) for path, x in jax.tree_util.tree_leaves_with_path(state)
      if (getattr(path[-1], "name", None) or getattr(path[-1], "key", None)) in COUNTERS
  ]


# reduce_on_plateau's `count` counts within a window that restarts every few steps.
_SATURATING = [
    n for n, e in _zoo.ALL.items()
    if n != "reduce_on_plateau" and _counters(e.ours().init(e.params(_params())))
]


@pytest.mark.parametrize("name", _SATURATING)
def test_counters_saturate_at_int32_max(name):
  """Counts at int32 max: updates finite, counts stay max (optax's numbers where comparable)."""
  entry = _zoo.ALL[name]
  tx, params = entry.ours(), entry.params(_params())
  state = _saturate(tx.init(params))
  counters = _counters(state)
  o_state = state
  for t in range(3):  # multisteps emits on its third call
    updates, state = entry.update(tx, _grads(t), state, params)
    if entry.finite_at_max_count:
      chex.assert_tree_all_finite(updates)
    else:  # as the entry documents (it fails once fixed, to drop the flag)
      assert not all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(updates))
    if name in _zoo.OPTIMIZERS:  # optax's update reads our state's fields by name
      o_updates, o_state = entry.update(entry.theirs(), _grads(t), o_state, params)
      chex.assert_trees_all_close(updates, o_updates, rtol=1e-6)  # NaN == NaN here
  assert _counters(state) == [INT32_MAX] * len(counters)


def test_ema_and_apply_if_finite_counters_saturate():
  """ema's count and apply_if_finite's non-finite counters stay at int32 max."""
  ema = jn.ema(0.9)
  state = ema.init(_params())._replace(count=jnp.asarray(INT32_MAX, jnp.int32))
  out, state = ema.update(_grads(), state)
  chex.assert_tree_all_finite(out)
  assert int(state.count) == INT32_MAX
  guarded = jn.apply_if_finite(jn.adam(0.1), 3)
  top = jnp.asarray(INT32_MAX, jnp.int32)
  state = guarded.init(_params())._replace(total_notfinite=top)
  nan_grads = {**_grads(), "b": jnp.full(3, jnp.nan)}
  for _ in range(2):
    _, state = guarded.update(nan_grads, state, _params())
  assert int(state.total_notfinite) == INT32_MAX and int(state.notfinite_count) == 2


# --- 5. NaN and Inf gradients --------------------------------------------------

def _float_leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]


@pytest.mark.parametrize("bad", [NAN, INF])
@pytest.mark.parametrize("name", list(_zoo.OPTIMIZERS))
def test_non_finite_gradient_behaviour_is_optax_and_documented(name, bad):
  """A NaN/Inf in one coordinate: that coordinate's update is not finite, and stays so
  in later steps for optimizers with per-parameter state; other coordinates stay finite.
  Everything equals optax's, NaNs included. Entries state where their rule differs
  (``nan_update``/``inf_update``: a norm spreads it over a leaf or the tree, or the
  update stays finite; ``keeps_non_finite``: the state forgets it)."""
  entry = _zoo.OPTIMIZERS[name]
  ours, theirs = entry.ours(), entry.theirs()
  params = _params()  # fixed, so only the optimizer carries the NaN forward
  state, o_state = ours.init(params), theirs.init(params)
  history = []
  for t in range(4):
    grads = _grads(t)
    if t == 1:
      grads["w"] = grads["w"].at[0, 1].set(bad)
    updates, state = entry.update(ours, grads, state, params)
    o_updates, o_state = entry.update(theirs, grads, o_state, params)
    chex.assert_trees_all_close(updates, o_updates, rtol=1e-5, atol=1e-7)  # NaN == NaN here
    history.append(updates)
  scope = entry.nan_update if math.isnan(bad) else entry.inf_update
  hit_w = np.isfinite(np.asarray(history[1]["w"]))
  hit_b = np.isfinite(np.asarray(history[1]["b"]))
  expected_w = np.ones((2, 3), bool)
  if scope == "coordinate":
    expected_w[0, 1] = False
  elif scope in ("leaf", "tree"):
    expected_w[:] = False
  np.testing.assert_array_equal(hit_w, expected_w)
  np.testing.assert_array_equal(hit_b, np.full(3, scope != "tree"))
  later = np.asarray(history[3]["w"])[0, 1]
  keeps = _stateful(state) if entry.keeps_non_finite is None else entry.keeps_non_finite
  if keeps:
    # The coordinate's moments keep the NaN/Inf for ever (a factored moment
    # has no coordinate of its own: then some leaf of the state holds it; a
    # memory of past steps, as L-BFGS's, holds it along a leading axis).
    shaped = [x[..., 0, 1] for x in _float_leaves(state) if x.shape[-2:] == (2, 3)]
    held = shaped or _float_leaves(state)
    assert not all(np.isfinite(x).all() for x in held)
    if scope == "none":
      # sign() reads the kept +-Inf as +-1: the coordinate steps, always the same way.
      assert np.isfinite(later) and later != 0.0, later
    else:
      # So it never takes a real step again: NaN, or 0 where it divides by a
      # NaN/Inf sum (AdaGrad; RMSProp after an Inf).
      assert not np.isfinite(later) or later == 0.0, later
  else:
    assert np.isfinite(later), later
    assert all(np.isfinite(x).all() for x in _float_leaves(state))
    if not _stateful(state):  # a stateful one may step 0 (Rprop after a sign flip)
      assert later != 0.0, later


def test_global_norm_clipping_spreads_a_nan_to_every_coordinate():
  """clip_by_global_norm divides by a NaN norm: every update is NaN (documented)."""
  tx = jn.chain(jn.clip_by_global_norm(1.0), jn.sgd(0.1))
  grads = {**_grads(), "b": jnp.array([jnp.nan, 0.0, 0.0])}
  updates, _ = tx.update(grads, tx.init(_params()), _params())
  assert not np.isfinite(np.concatenate([np.ravel(x) for x in jax.tree.leaves(updates)])).any()


@pytest.mark.parametrize("name", list(_zoo.OPTIMIZERS))
def test_apply_if_finite_skips_and_leaves_the_state_untouched(name):
  """Wrapped in apply_if_finite, a NaN step returns zeros and the inner state bit for bit."""
  entry = _zoo.OPTIMIZERS[name]
  tx = jn.apply_if_finite(entry.ours(), 3)
  params = _params()
  _, state = entry.update(tx, _grads(0), tx.init(params), params)
  grads = {**_grads(1), "b": jnp.array([1.0, jnp.nan, jnp.inf])}
  updates, new_state = entry.update(tx, grads, state, params)
  chex.assert_trees_all_equal(updates, jax.tree.map(jnp.zeros_like, updates))
  chex.assert_trees_all_equal(new_state.inner_state, state.inner_state)
  assert int(new_state.notfinite_count) == 1 and not bool(new_state.last_finite)


# --- 6. zero gradients, and eps = 0 -------------------------------------------


@pytest.mark.parametrize("name", list(_zoo.OPTIMIZERS))
def test_zero_gradients_give_exact_zero_updates(name):
  """All-zero gradients from step 1: updates are exactly 0 (or weight decay alone, or
  the noise of a noisy optimizer), as optax.

  After real steps, zero gradients still give finite updates (momentum continues)."""
  entry = _zoo.OPTIMIZERS[name]
  ours, theirs = entry.ours(), entry.theirs()
  params = _params()
  zeros = jax.tree.map(jnp.zeros_like, params)
  state, o_state = ours.init(params), theirs.init(params)
  for _ in range(3):
    updates, state = entry.update(ours, zeros, state, params)
    o_updates, o_state = entry.update(theirs, zeros, o_state, params)
    chex.assert_tree_all_finite(updates)
    chex.assert_trees_all_close(updates, o_updates, rtol=1e-6)
    if entry.noise:  # the noise alone moves every coordinate
      assert all((x != 0).all() for x in _float_leaves(updates))
    elif not entry.weight_decay:
      chex.assert_trees_all_equal(updates, zeros)
  for t in range(3):
    _, state = entry.update(ours, _grads(t), state, params)
  updates, _ = entry.update(ours, zeros, state, params)
  chex.assert_tree_all_finite(updates)


# eps = 0: which optimizers divide 0 by 0 on a coordinate whose gradients have
# all been zero. Allowed (optax allows it, and it is exact for non-zero
# gradients) and documented; eps_root > 0 or eps > 0 avoids it.
EPS_ZERO = {
    "adam": (lambda: jn.adam(0.1, eps=0.0), lambda: optax.adam(0.1, eps=0.0), True),
    "adam_eps_root": (lambda: jn.adam(0.1, eps=0.0, eps_root=1e-16),
                      lambda: optax.adam(0.1, eps=0.0, eps_root=1e-16), False),
    "nadam": (lambda: jn.nadam(0.1, eps=0.0), lambda: optax.nadam(0.1, eps=0.0), True),
    "amsgrad": (lambda: jn.amsgrad(0.1, eps=0.0), lambda: optax.amsgrad(0.1, eps=0.0), True),
    "adamax": (lambda: jn.adamax(0.1, eps=0.0), lambda: optax.adamax(0.1, eps=0.0), True),
    "radam": (lambda: jn.radam(0.1, eps=0.0), lambda: optax.radam(0.1, eps=0.0), True),
    "rmsprop": (lambda: jn.rmsprop(0.1, eps=0.0), lambda: optax.rmsprop(0.1, eps=0.0), True),
    "rmsprop_eps_outside": (lambda: jn.rmsprop(0.1, eps=0.0, eps_in_sqrt=False),
                            lambda: optax.rmsprop(0.1, eps=0.0, eps_in_sqrt=False), True),
    "adadelta": (lambda: jn.adadelta(0.5, eps=0.0), lambda: optax.adadelta(0.5, eps=0.0), True),
    "adagrad": (lambda: jn.adagrad(0.1, eps=0.0, initial_accumulator_value=0.0),
                lambda: optax.adagrad(0.1, eps=0.0, initial_accumulator_value=0.0), False),
    "adagrad_eps_outside": (lambda: jn.adagrad(0.1, eps=0.0, initial_accumulator_value=0.0,
                                               eps_in_sqrt=False), None, True),
}


@pytest.mark.parametrize("name", list(EPS_ZERO))
def test_eps_zero_with_zero_gradients_is_documented(name):
  """With eps=0, zero gradients give NaN exactly where the table says, like optax."""
  ours, theirs, nan = EPS_ZERO[name]
  ours = ours()
  params = _params()
  zeros = jax.tree.map(jnp.zeros_like, params)
  state = ours.init(params)
  o_state = theirs().init(params) if theirs else None
  seen_nan = False
  for _ in range(8):  # radam switches to its adaptive (dividing) step at t = 6
    updates, state = ours.update(zeros, state, params)
    seen_nan |= any(np.isnan(np.asarray(x)).any() for x in jax.tree.leaves(updates))
    if theirs:
      o_updates, o_state = theirs().update(zeros, o_state, params)
      chex.assert_trees_all_close(updates, o_updates)
  assert seen_nan == nan


def test_eps_zero_is_exact_for_non_zero_gradients():
  """eps=0 is legitimate: with non-zero gradients Adam's first step is exactly -lr * sign(g)."""
  updates, _ = jn.adam(0.1, eps=0.0).update(_grads(), jn.adam(0.1, eps=0.0).init(_params()))
  # 1 - b2 rounds in float32, so "exactly" is up to a few ulps.
  chex.assert_trees_all_close(updates, jax.tree.map(lambda g: -0.1 * jnp.sign(g), _grads()), rtol=1e-5)
