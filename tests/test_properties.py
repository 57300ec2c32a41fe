"""Property tests: random pytrees and random valid hyper-parameters.

hypothesis draws nested containers (dicts, lists, tuples) holding ``None``
leaves, zero-size arrays, scalars and matrices in mixed float dtypes, and an
optimizer with random valid hyper-parameters. For every draw:

* the updates have the params' structure and shapes, and ``apply_updates``
  keeps each param's dtype; the state keeps its dtypes from step to step;
* the numbers, dtypes included, are optax's;
* running the same inputs twice gives bitwise-identical results;
* a checkpoint round trip returns the same bytes;
* every optimizer of ``tests/_zoo.py``, at its fixed hyper-parameters, keeps
  structure and dtypes and equals optax on random trees (where optax's runs).

The examples are fixed (``derandomize``) so a CI run never fails on a draw
no earlier run saw; raise ``max_examples`` locally to search further.
"""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxopt_notes as jn
from jaxopt_notes.training import checkpoint as ckpt
from tests import _zoo

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
STEPS = 3
FLOATS = (jnp.float32, jnp.bfloat16, jnp.float16)
# Both libraries run the same operations eagerly, so they agree to rounding
# noise; tolerances are a few ulps of each dtype.
RTOL = {jnp.dtype(jnp.float32): 1e-5, jnp.dtype(jnp.bfloat16): 2e-2, jnp.dtype(jnp.float16): 2e-3}


@dataclasses.dataclass(frozen=True)
class Leaf:
  """A leaf to be: its shape and dtype (a plain object, so a pytree leaf)."""

  shape: tuple
  dtype: object


leaves = st.builds(
    Leaf,
    st.lists(st.integers(0, 3), max_size=3).map(tuple),
    st.sampled_from(FLOATS),
)
tree_specs = st.recursive(
    st.one_of(leaves, leaves, st.none()),  # mostly arrays, some None
    lambda children: st.one_of(
        st.dictionaries(st.sampled_from("abcdefgh"), children, min_size=1, max_size=3),
        st.lists(children, min_size=1, max_size=3),
        st.lists(children, min_size=1, max_size=3).map(tuple),
    ),
    max_leaves=6,
).filter(lambda spec: spec is not None)  # params=None means "no params" in the protocol


def _realise(spec, seed, scale=1.0):
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda leaf: jnp.asarray(scale * rng.standard_normal(leaf.shape), leaf.dtype), spec
  )


unit = lambda lo=0.0, hi=0.99: st.floats(lo, hi)
positive = lambda lo, hi: st.floats(lo, hi)


@st.composite
def optimizers(draw):
  """``(name, kwargs)`` of an optimizer that both libraries have, with valid values."""
  lr = draw(positive(1e-4, 1.0))
  eps = draw(positive(1e-8, 1e-2))
  adam_like = dict(learning_rate=lr, b1=draw(unit()), b2=draw(unit(0.5, 0.9999)), eps=eps)
  name = draw(st.sampled_from(
      ["sgd", "adagrad", "rmsprop", "adadelta", "adam", "adamw", "nadam", "nadamw", "radam",
       "amsgrad", "adamax"]
  ))
  if name == "sgd":
    momentum = draw(st.one_of(st.none(), unit()))
    return name, dict(learning_rate=lr, momentum=momentum,
                      nesterov=momentum is not None and draw(st.booleans()))
  if name == "adagrad":
    return name, dict(learning_rate=lr, initial_accumulator_value=draw(positive(0.0, 1.0)), eps=eps)
  if name == "rmsprop":
    return name, dict(
        learning_rate=lr, decay=draw(unit()), eps=eps, initial_scale=draw(positive(0.0, 1.0)),
        eps_in_sqrt=draw(st.booleans()), centered=draw(st.booleans()),
        momentum=draw(st.one_of(st.none(), unit())), bias_correction=draw(st.booleans()),
    )
  if name == "adadelta":
    return name, dict(learning_rate=lr, rho=draw(unit()), eps=eps,
                      weight_decay=draw(positive(0.0, 0.1)))
  if name in ("adamw", "nadamw"):
    adam_like["weight_decay"] = draw(positive(0.0, 0.1))
  if name in ("adam", "adamw", "nadam", "nadamw", "radam", "amsgrad"):
    adam_like["eps_root"] = draw(st.sampled_from([0.0, 1e-12]))
  return name, adam_like


def _run(lib, name, kwargs, params, seed):
  """``STEPS`` eager steps; returns the per-step updates, final params and states."""
  tx = getattr(lib, name)(**kwargs)
  state = tx.init(params)
  states, history = [state], []
  for t in range(STEPS):
    updates, state = tx.update(_realise_like(params, seed + t), state, params)
    params = lib.apply_updates(params, updates)
    history.append(updates)
    states.append(state)
  return history, params, states


def _realise_like(params, seed):
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape), p.dtype), params)


def _dtypes(tree):
  return [jnp.asarray(x).dtype for x in jax.tree.leaves(tree)]


def _assert_close(ours, theirs):
  """Leaf by leaf (the NamedTuple classes are each library's): same dtypes, values
  within a few ulps of that dtype, NaN equal to NaN."""
  a, b = jax.tree.leaves(ours), jax.tree.leaves(theirs)
  assert _dtypes(a) == _dtypes(b)
  for x, y in zip(a, b):
    rtol = RTOL.get(jnp.asarray(x).dtype, 0.0)  # integer leaves (counts) exactly
    np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64),
                               rtol=rtol, atol=rtol * 1e-2)


@SETTINGS
@given(spec=tree_specs, opt=optimizers(), seed=st.integers(0, 2**16))
def test_structure_shapes_and_dtypes_are_preserved(spec, opt, seed):
  """Updates mirror the params; params keep dtypes; the state keeps init's dtypes."""
  name, kwargs = opt
  params = _realise(spec, seed)
  history, new_params, states = _run(jn, name, kwargs, params, seed)
  for updates in history:
    assert jax.tree.structure(updates) == jax.tree.structure(params)
    chex.assert_trees_all_equal_shapes(updates, params)
  assert jax.tree.structure(new_params) == jax.tree.structure(params)
  chex.assert_trees_all_equal_shapes_and_dtypes(new_params, params)
  for state in states[1:]:
    assert jax.tree.structure(state) == jax.tree.structure(states[0])
    assert _dtypes(state) == _dtypes(states[0])


@SETTINGS
@given(spec=tree_specs, opt=optimizers(), seed=st.integers(0, 2**16))
def test_equal_to_optax(spec, opt, seed):
  """Updates, params and state equal optax's (dtypes exactly, values to rounding)."""
  name, kwargs = opt
  params = _realise(spec, seed)
  (updates, new_params, states), (o_updates, o_params, o_states) = (
      _run(jn, name, kwargs, params, seed), _run(optax, name, kwargs, params, seed))
  for a, b in zip(updates, o_updates):
    _assert_close(a, b)
  _assert_close(new_params, o_params)
  for a, b in zip(states, o_states):
    _assert_close(a, b)


@SETTINGS
@given(spec=tree_specs, opt=optimizers(), seed=st.integers(0, 2**16))
def test_same_inputs_give_bitwise_identical_outputs(spec, opt, seed):
  """Two runs of the same inputs agree byte for byte (eagerly and under jit)."""
  name, kwargs = opt
  params = _realise(spec, seed)
  first, second = _run(jn, name, kwargs, params, seed), _run(jn, name, kwargs, params, seed)
  tx = getattr(jn, name)(**kwargs)
  grads = _realise_like(params, seed)
  step = jax.jit(tx.update)
  jitted = [step(grads, tx.init(params), params) for _ in range(2)]
  for a, b in ((first, second), (jitted[0], jitted[1])):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
      x, y = np.asarray(x), np.asarray(y)
      assert x.dtype == y.dtype and x.tobytes() == y.tobytes()


@st.composite
def wrappers(draw):
  """A wrapper around adam, as ``(ours, optax's, params are LookaheadParams)``."""
  lr = draw(positive(1e-3, 0.5))
  kind = draw(st.sampled_from(["inject", "multisteps", "apply_if_finite", "lookahead", "chain"]))
  if kind == "inject":
    decay = draw(positive(0.0, 0.1))
    sched = lambda count: lr / (1.0 + decay * count)
    return (jn.inject_hyperparams(jn.adam)(learning_rate=sched),
            optax.inject_hyperparams(optax.adam)(learning_rate=sched), False)
  if kind == "multisteps":
    k = draw(st.integers(1, 3))
    return (jn.MultiSteps(jn.adam(lr), k).gradient_transformation(),
            optax.MultiSteps(optax.adam(lr), k).gradient_transformation(), False)
  if kind == "apply_if_finite":
    return jn.apply_if_finite(jn.adam(lr), 2), optax.apply_if_finite(optax.adam(lr), 2), False
  if kind == "lookahead":
    k, alpha = draw(st.integers(1, 3)), draw(unit(0.0, 1.0))
    return (jn.lookahead(jn.adam(lr), k, alpha), optax.lookahead(optax.adam(lr), k, alpha), True)
  clip = draw(positive(0.1, 10.0))
  return (jn.chain(jn.clip_by_global_norm(clip), jn.adam(lr)),
          optax.chain(optax.clip_by_global_norm(clip), optax.adam(lr)), False)


@SETTINGS
@given(spec=tree_specs, wrapped=wrappers(), seed=st.integers(0, 2**16))
def test_wrappers_equal_optax_on_random_trees(spec, wrapped, seed):
  """inject_hyperparams, MultiSteps, apply_if_finite, lookahead and chain equal optax's."""
  ours, theirs, look = wrapped
  base_params = _realise(jax.tree.map(lambda leaf: Leaf(leaf.shape, jnp.float32), spec), seed)
  wrap = (jn.LookaheadParams.init_synced, optax.LookaheadParams.init_synced) if look else (
      lambda p: p, lambda p: p)
  params, o_params = wrap[0](base_params), wrap[1](base_params)
  state, o_state = ours.init(params), theirs.init(o_params)
  for t in range(STEPS):
    grads = _realise_like(base_params, seed + t)
    updates, state = ours.update(grads, state, params)
    o_updates, o_state = theirs.update(grads, o_state, o_params)
    params, o_params = jn.apply_updates(params, updates), optax.apply_updates(o_params, o_updates)
  chex.assert_trees_all_equal_structs(jax.tree.leaves(params), jax.tree.leaves(o_params))
  # Selects where optax branches (MultiSteps, apply_if_finite) move the last bit.
  chex.assert_trees_all_close(jax.tree.leaves(params), jax.tree.leaves(o_params), rtol=2e-6, atol=1e-7)
  chex.assert_trees_all_close(jax.tree.leaves(state), jax.tree.leaves(o_state), rtol=2e-6, atol=1e-7)


@settings(SETTINGS, max_examples=10)
@given(spec=tree_specs, opt=optimizers(), seed=st.integers(0, 2**16))
def test_checkpoint_round_trip_is_bitwise(spec, opt, seed, tmp_path_factory):
  """save_checkpoint then restore_checkpoint returns the same bytes and layout."""
  pytest.importorskip("orbax.checkpoint")
  name, kwargs = opt
  params = _realise(spec, seed)
  _, new_params, states = _run(jn, name, kwargs, params, seed)
  directory = tmp_path_factory.mktemp("ckpt")
  ckpt.save_checkpoint(directory, STEPS, new_params, states[-1])
  template = jax.tree.map(jnp.zeros_like, params)
  restored_params, restored_state, step = ckpt.restore_checkpoint(
      directory, template, getattr(jn, name)(**kwargs)
  )
  assert step == STEPS
  for a, b in ((restored_params, new_params), (restored_state, states[-1])):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
      x, y = np.asarray(x), np.asarray(y)
      assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()


def _key_data(tree):
  """Typed PRNG keys (noisy_sgd's state) as their key data, which numpy can hold."""
  return jax.tree.map(
      lambda x: jax.random.key_data(x) if jax.dtypes.issubdtype(jnp.asarray(x).dtype, jax.dtypes.prng_key) else x,
      tree,
  )


def _run_entry(entry, make, lib, params, seed):
  """``_run`` for a zoo entry (its update gets ``value=`` where it needs one)."""
  tx = make()
  state = tx.init(params)
  states, history = [state], []
  for t in range(STEPS):
    updates, state = entry.update(tx, _realise_like(params, seed + t), state, params)
    params = lib.apply_updates(params, updates)
    history.append(updates)
    states.append(state)
  return history, params, states


@pytest.mark.parametrize("name", list(_zoo.OPTIMIZERS))
@settings(SETTINGS, max_examples=3)  # per entry: the zoo's size multiplies it
@given(spec=tree_specs, seed=st.integers(0, 2**16))
def test_zoo_optimizers_on_random_trees(name, spec, seed):
  """Each zoo optimizer: updates mirror the params, params and state keep their dtypes,
  and updates, params and states equal optax's; where optax's cannot run (the entry's
  ``optax_runs_on``), it raises and ours still keeps structure and dtypes."""
  entry = _zoo.OPTIMIZERS[name]
  params = _realise(spec, seed)
  history, new_params, states = _run_entry(entry, entry.ours, jn, params, seed)
  for updates in history:
    assert jax.tree.structure(updates) == jax.tree.structure(params)
    chex.assert_trees_all_equal_shapes(updates, params)
  chex.assert_trees_all_equal_shapes_and_dtypes(new_params, params)
  for state in states[1:]:
    assert jax.tree.structure(state) == jax.tree.structure(states[0])
    assert _dtypes(state) == _dtypes(states[0])
  if entry.optax_runs_on is not None and not entry.optax_runs_on(params):
    with pytest.raises((IndexError, ValueError)):
      _run_entry(entry, entry.theirs, optax, params, seed)
    return
  o_history, o_params, o_states = _run_entry(entry, entry.theirs, optax, params, seed)
  for a, b in zip(history, o_history):
    _assert_close(a, b)
  _assert_close(new_params, o_params)
  for a, b in zip(states, o_states):
    _assert_close(_key_data(a), _key_data(b))
