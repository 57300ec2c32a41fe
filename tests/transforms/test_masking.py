"""masked under map_params (ours and optax's): the stand-in map_params passes
to init is accepted, and mapping a masked state works as on an unmasked one
(optax's own test, run on our masked)."""

import chex
import jax
import jax.numpy as jnp
import optax
import pytest

import jaxopt_notes as jn


def _params():
  return {
      "a": {"b": (jnp.zeros((1, 2)), jnp.zeros((2, 2)))},
      "c": {"d": jnp.zeros((1, 2)), "e": (jnp.zeros((1, 2)), jnp.zeros((1, 2)))},
  }


MASK = {"a": {"b": (True, False)}, "c": {"d": True, "e": (False, True)}}


def _copies():
  """An inner transform whose state holds two copies of the params and a count."""
  return jn.GradientTransformation(
      lambda params: {"count": 1, "params": params, "params_copy": params},
      lambda updates, state, params=None: (updates, state),
  )


def _bump_rows(v):
  return v + 1 if v.shape[0] == 1 else v


MAP_PARAMS = {"optax": optax.tree.map_params, "ours": jn.tree.map_params}


@pytest.mark.parametrize("which", sorted(MAP_PARAMS))
@pytest.mark.parametrize("mask", [MASK, lambda p: MASK], ids=["tree", "function"])
def test_map_params_on_masked_state_is_as_on_unmasked(mask, which):
  map_params = MAP_PARAMS[which]
  inner = _copies()
  tx = jn.masked(inner, mask)
  expected = jax.tree.map(_bump_rows, _params())
  chex.assert_trees_all_equal(map_params(inner, _bump_rows, inner.init(_params())), inner.init(expected))
  chex.assert_trees_all_equal(map_params(tx, _bump_rows, tx.init(_params())), tx.init(expected))
  # The init function alone works too (map_params accepts a callable).
  chex.assert_trees_all_equal(map_params(tx.init, _bump_rows, tx.init(_params())), tx.init(expected))


@pytest.mark.parametrize("which", sorted(MAP_PARAMS))
def test_map_params_with_extra_trees_and_masked_nodes(which):
  """Extra trees shaped like the params need is_leaf for MaskedNode, as in optax."""
  tx = jn.masked(_copies(), MASK)
  axes = {"a": {"b": (1, 2)}, "c": {"d": 1, "e": (1, 2)}}
  new = MAP_PARAMS[which](
      tx,
      lambda p, axis: None if isinstance(p, jn.MaskedNode) else axis,
      tx.init(_params()),
      axes,
      is_leaf=lambda v: isinstance(v, jn.MaskedNode),
      transform_non_params=lambda v: None,
  )
  kept = {"a": {"b": (1, None)}, "c": {"d": 1, "e": (None, 2)}}
  assert new.inner_state["count"] is None
  assert new.inner_state["params"] == kept and new.inner_state["params_copy"] == kept


def test_map_params_over_masked_adamw_matches_optax():
  """The real use: shardings for every params copy of an optimizer state with a mask."""
  params = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}
  mask = {"w": True, "b": False}
  ours = jn.chain(jn.masked(jn.adam(0.1), mask), jn.add_decayed_weights(1e-2, mask=mask))
  theirs = optax.chain(optax.masked(optax.adam(0.1), mask), optax.add_decayed_weights(1e-2, mask=mask))
  is_masked = lambda v: isinstance(v, (jn.MaskedNode, optax.MaskedNode))
  shapes = lambda tx: optax.tree.map_params(
      tx, lambda v: v if is_masked(v) else ("param", v.shape), tx.init(params),
      transform_non_params=lambda _: "other", is_leaf=is_masked,
  )
  ours_specs, their_specs = shapes(ours), shapes(theirs)
  assert jax.tree.leaves(ours_specs) == jax.tree.leaves(their_specs)
  mu = ours_specs[0].inner_state[0].mu
  assert mu["w"] == ("param", (2, 3)) and isinstance(mu["b"], jn.MaskedNode)


def test_a_misfitting_tree_is_still_refused():
  """Only map_params' placeholder skips the mask: another leafless tree is checked as before."""
  tx = jn.masked(jn.adam(0.1), {"w": True, "b": False})
  with pytest.raises(ValueError, match="mask"):
    tx.init({"w": jnp.ones(2)})
  with pytest.raises(ValueError, match="mask"):
    tx.init(())
