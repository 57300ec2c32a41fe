"""chain and named_chain: state layout, numbers against optax, extra kwargs."""

import collections
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax
import pytest

import jaxopt_notes as jn
from tests import _problems

STEPS = 100


_params = _problems.two_leaf_params
_loss = _problems.smooth_loss


def _run(tx, steps=STEPS):
  """Trains _loss for `steps` steps under jit + lax.scan; returns params, state."""
  params = _params()

  @jax.jit
  def go(params):
    def body(carry, _):
      p, s = carry
      g = jax.grad(_loss)(p)
      u, s = tx.update(g, s, p)
      return (optax.apply_updates(p, u), s), None

    return jax.lax.scan(body, (params, tx.init(params)), None, length=steps)[0]

  return go(params)


def _pieces(lib):
  """The same five-link pipeline built from `lib` (jaxopt_notes or optax)."""
  return (
      lib.clip_by_global_norm(1.0),
      lib.trace(decay=0.9, nesterov=True),
      lib.scale_by_adam(b1=0.8, b2=0.99),
      lib.add_decayed_weights(1e-2),
      lib.scale_by_learning_rate(0.01),
  )


class _ValueState(NamedTuple):
  last_value: jax.Array
  calls: jax.Array


def _value_scaler():
  """An extra-args transform that multiplies by `value` and records it."""

  def init_fn(params):
    del params
    return _ValueState(last_value=jnp.zeros([]), calls=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None, *, value, **extra):
    del params, extra
    return (
        jax.tree.map(lambda u: u * value, updates),
        _ValueState(last_value=jnp.asarray(value, jnp.float32), calls=state.calls + 1),
    )

  return jn.GradientTransformationExtraArgs(init_fn, update_fn)


def _strict_plain():
  """A plain transform whose update takes no extra kwargs at all."""

  def update_fn(updates, state, params=None):
    del params
    return jax.tree.map(lambda u: u + 1.0, updates), state

  return jn.GradientTransformation(jn.init_empty_state, update_fn)


def test_chain_state_is_tuple_in_order():
  """chain's state is a tuple with each link's state in the given order."""
  tx = jn.chain(jn.trace(0.9), jn.scale_by_adam(), jn.scale(-0.1), jn.scale_by_rss())
  state = tx.init(_params())
  assert isinstance(state, tuple) and len(state) == 4
  assert isinstance(state[0], jn.TraceState)
  assert isinstance(state[1], jn.ScaleByAdamState)
  assert state[2] == jn.EmptyState()
  assert isinstance(state[3], jn.ScaleByRssState)
  _, new_state = tx.update(_params(), state, _params())
  assert [type(s) for s in new_state] == [type(s) for s in state]
  assert int(new_state[1].count) == 1


def test_chain_matches_optax_chain_over_100_steps():
  """chain of our pieces equals optax.chain of optax's pieces for 100 steps."""
  p_ours, s_ours = _run(jn.chain(*_pieces(jn)))
  p_theirs, s_theirs = _run(optax.chain(*_pieces(optax)))
  chex.assert_tree_all_finite(p_ours)
  chex.assert_trees_all_close(p_ours, p_theirs, rtol=1e-5, atol=1e-6)
  # Same state layout leaf for leaf (optax's named tuples vs ours).
  assert len(s_ours) == len(s_theirs)
  chex.assert_trees_all_close(
      jax.tree.leaves(s_ours), jax.tree.leaves(s_theirs), rtol=1e-5, atol=1e-6
  )
  # And training actually moved the loss.
  assert _loss(p_ours) < 0.5 * _loss(_params())


def test_chain_forwards_extra_kwargs_only_to_takers():
  """value= reaches extra-args transforms and is dropped for plain ones."""
  tx = jn.chain(_strict_plain(), _value_scaler(), jn.scale(2.0), _strict_plain())
  params = _params()
  state = tx.init(params)
  updates, state = tx.update(params, state, params, value=3.0)
  expected = jax.tree.map(lambda p: ((p + 1.0) * 3.0) * 2.0 + 1.0, params)
  chex.assert_trees_all_close(updates, expected)
  assert float(state[1].last_value) == 3.0
  assert int(state[1].calls) == 1


def test_chain_forwards_extra_kwargs_under_jit():
  """Extra kwargs traced through jit still reach the transform that uses them."""
  tx = jn.chain(_value_scaler(), jn.identity())
  params = _params()
  step = jax.jit(lambda g, s, v: tx.update(g, s, params, value=v))
  u, state = step(params, tx.init(params), jnp.float32(-0.5))
  chex.assert_trees_all_close(u, jax.tree.map(lambda p: -0.5 * p, params))
  assert float(state[0].last_value) == -0.5


def test_nested_chain_forwards_extra_kwargs():
  """A chain inside a chain still forwards value= to the innermost taker."""
  inner = jn.chain(_strict_plain(), _value_scaler())
  tx = jn.chain(inner, jn.scale(1.0))
  params = _params()
  u, state = tx.update(params, tx.init(params), params, value=5.0)
  chex.assert_trees_all_close(u, jax.tree.map(lambda p: (p + 1.0) * 5.0, params))
  assert float(state[0][1].last_value) == 5.0


@pytest.mark.parametrize("length", [1, 3])
def test_chain_wrong_state_length_raises(length):
  """A state with the wrong number of entries gives a ValueError saying so."""
  tx = jn.chain(jn.scale(1.0), jn.trace(0.5))
  params = _params()
  bad_state = tuple(jn.EmptyState() for _ in range(length))
  with pytest.raises(ValueError, match=rf"chain of 2 transforms got a state with {length} entries"):
    tx.update(params, bad_state, params)


def test_chain_non_tuple_state_raises():
  """A state that is not a tuple (e.g. a dict) gives a clear ValueError."""
  tx = jn.chain(jn.scale(1.0))
  with pytest.raises(ValueError, match="state"):
    tx.update(_params(), {"0": jn.EmptyState()}, _params())


def test_chain_rejects_non_transform():
  """chain names the bad argument's position when it is not a transform."""
  with pytest.raises(TypeError, match=r"transforms\[1\]"):
    jn.chain(jn.identity(), 0.1)


def test_empty_chain_is_identity():
  """chain() with no links returns the updates unchanged and an empty state."""
  tx = jn.chain()
  state = tx.init(_params())
  assert state == ()
  u, s = tx.update(_params(), state)
  chex.assert_trees_all_equal(u, _params())
  assert s == ()


def test_named_chain_state_is_ordered_dict_by_name():
  """named_chain's state is an OrderedDict keyed by the names, in order."""
  tx = jn.named_chain(("clip", jn.clip(1.0)), ("mom", jn.trace(0.9)), ("adam", jn.scale_by_adam()))
  state = tx.init(_params())
  assert isinstance(state, collections.OrderedDict)
  assert list(state) == ["clip", "mom", "adam"]
  assert isinstance(state["mom"], jn.TraceState)
  assert isinstance(state["adam"], jn.ScaleByAdamState)
  _, new_state = tx.update(_params(), state, _params())
  assert list(new_state) == ["clip", "mom", "adam"]


def test_named_chain_matches_optax_named_chain():
  """named_chain equals optax.named_chain over 100 steps, name by name."""
  names = ("clip", "mom", "adam", "wd", "lr")
  ours = jn.named_chain(*zip(names, _pieces(jn)))
  theirs = optax.named_chain(*zip(names, _pieces(optax)))
  p_ours, s_ours = _run(ours)
  p_theirs, s_theirs = _run(theirs)
  chex.assert_trees_all_close(p_ours, p_theirs, rtol=1e-5, atol=1e-6)
  assert list(s_ours) == list(s_theirs) == list(names)
  for name in names:
    chex.assert_trees_all_close(
        jax.tree.leaves(s_ours[name]), jax.tree.leaves(s_theirs[name]), rtol=1e-5, atol=1e-6
    )


def test_named_chain_forwards_extra_kwargs():
  """named_chain forwards value= to takers and drops it for plain transforms."""
  tx = jn.named_chain(("plain", _strict_plain()), ("val", _value_scaler()))
  params = _params()
  u, state = tx.update(params, tx.init(params), params, value=2.0)
  chex.assert_trees_all_close(u, jax.tree.map(lambda p: (p + 1.0) * 2.0, params))
  assert float(state["val"].last_value) == 2.0


@pytest.mark.parametrize(
    "names, dupes",
    [(("a", "b", "a"), r"\['a'\]"), (("x", "y", "y", "x", "z"), r"\['x', 'y'\]")],
)
def test_named_chain_duplicate_names_raise(names, dupes):
  """Repeated names raise a ValueError listing the repeated names."""
  with pytest.raises(ValueError, match=dupes):
    jn.named_chain(*[(n, jn.identity()) for n in names])


def test_named_chain_rejects_non_pairs():
  """Arguments that are not (str, transform) pairs raise a TypeError."""
  with pytest.raises(TypeError, match="pairs"):
    jn.named_chain(jn.identity())
  with pytest.raises(TypeError, match="pairs"):
    jn.named_chain((1, jn.identity()))


def test_named_chain_missing_state_entry_raises():
  """A state lacking a named entry gives a ValueError naming it."""
  tx = jn.named_chain(("a", jn.identity()), ("b", jn.trace(0.9)))
  state = tx.init(_params())
  del state["b"]
  with pytest.raises(ValueError, match="'b'"):
    tx.update(_params(), state, _params())


class _TwoCopies(NamedTuple):
  """A params container whose gradients belong to ``trained`` only."""

  trained: dict
  frozen: dict

  def __gradient_params__(self):
    return self.trained


def test_chain_checks_gradients_against_the_tree_a_container_names():
  params = _TwoCopies(trained={"w": jnp.ones(3)}, frozen={"w": jnp.ones(3), "extra": jnp.ones(2)})
  tx = jn.chain(jn.clip_by_global_norm(1.0), jn.scale(-0.1))
  state = tx.init(params.trained)
  updates, _ = tx.update({"w": jnp.full(3, 2.0)}, state, params)
  assert updates["w"].shape == (3,)
  with pytest.raises(ValueError, match=r"updates\['w'\]. has shape \(1,\)"):
    tx.update({"w": jnp.ones(1)}, state, params)


def test_gradient_params_is_looked_up_on_the_type_not_the_entries():
  # A mapping with such a key is a plain params tree, checked as it is.
  params = {"__gradient_params__": jnp.ones(2)}
  assert jn.core.combine.gradient_params(params) is params
  tx = jn.chain(jn.scale(-0.1))
  with pytest.raises(ValueError, match="pytree structure"):
    tx.update({"w": jnp.ones(2)}, tx.init(params), params)


def test_chain_with_lookahead_checks_the_fast_weights():
  params = jn.LookaheadParams.init_synced({"w": jnp.ones(3)})
  tx = jn.chain(jn.clip_by_global_norm(1.0), jn.lookahead(jn.sgd(0.1), sync_period=2, slow_step_size=0.5))
  state = tx.init(params)
  updates, state = tx.update({"w": jnp.ones(3)}, state, params)
  assert isinstance(updates, jn.LookaheadParams)
  with pytest.raises(ValueError, match="shape"):
    tx.update({"w": jnp.ones(2)}, state, params)


# --- one check of the incoming updates on every update path (issue 9) ---------

_BLOCKS = {
    "ema": lambda: jn.ema(0.9),
    "trace": lambda: jn.trace(0.9),
    "scale_by_adam": lambda: jn.scale_by_adam(),
    "scale_by_rms": lambda: jn.scale_by_rms(),
    "scale_by_rss": lambda: jn.scale_by_rss(),
    "scale_by_adamax": lambda: jn.scale_by_adamax(),
    "scale_by_adadelta": lambda: jn.scale_by_adadelta(),
    "chain_adam": lambda: jn.chain(jn.adam(0.1)),
}


@pytest.mark.parametrize("with_params", [False, True], ids=["no_params", "params"])
@pytest.mark.parametrize("name", list(_BLOCKS))
def test_blocks_refuse_a_broadcastable_gradient_of_another_shape(name, with_params):
  """A (1,) gradient against a (3,) param is refused by a block alone, params or not.

  It used to broadcast: every entry of the param moved by the same step.
  """
  tx = _BLOCKS[name]()
  params = {"w": jnp.ones(3)}
  state = tx.init(params)
  where = r"`params\['w'\]`" if with_params else r"`state\.\w+\['w'\]`"
  with pytest.raises(ValueError, match=r"updates\['w'\]` has shape \(1,\) but " + where + r" has shape \(3,\)"):
    tx.update({"w": jnp.ones(1)}, state, params if with_params else None)
  # The right shape still gives optax's numbers.
  good = {"w": jnp.array([0.5, -1.0, 2.0])}
  if name == "chain_adam":
    ref = optax.adam(0.1)
    chex.assert_trees_all_close(
        tx.update(good, state)[0], ref.update(good, ref.init(params))[0], rtol=1e-6
    )


def test_a_non_broadcastable_gradient_raises_value_error_naming_the_path():
  """(2,) against (3,) with params=None: a ValueError with the path, not JAX's bare TypeError."""
  tx = jn.chain(jn.adam(0.1))
  state = tx.init({"layer": {"w": jnp.ones(3)}})
  with pytest.raises(ValueError, match=r"updates\['layer'\]\['w'\]` has shape \(2,\) but .*\(3,\)"):
    tx.update({"layer": {"w": jnp.ones(2)}}, state)


@pytest.mark.parametrize("make", [lambda: jn.clip(1.0), lambda: jn.scale(-0.1),
                                  lambda: jn.clip_by_global_norm(1.0)])
def test_stateless_blocks_check_against_params_when_given(make):
  tx = make()
  params = {"w": jnp.ones(3)}
  with pytest.raises(ValueError, match=r"updates\['w'\]` has shape \(1,\) but `params\['w'\]`"):
    tx.update({"w": jnp.ones(1)}, tx.init(params), params)


def test_apply_updates_names_the_path_and_both_shapes():
  with pytest.raises(ValueError, match=r"`params\['w'\]` has shape \(3,\) but `updates\['w'\]` has shape \(2,\)"):
    jn.apply_updates({"w": jnp.ones(3)}, {"w": jnp.ones(2)})
