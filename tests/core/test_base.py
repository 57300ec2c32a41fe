"""The transform protocol of jaxopt_notes.base, checked against optax."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl.testing import parameterized

import jaxopt_notes as jn


def _params():
  return {
      "w": jnp.arange(6.0, dtype=jnp.float32).reshape(2, 3) - 2.5,
      "b": jnp.array([0.5, -1.5], jnp.float32),
      "h": jnp.array([1.0, -2.0], jnp.bfloat16),
  }


def _grads():
  return {
      "w": jnp.linspace(-1.0, 2.0, 6, dtype=jnp.float32).reshape(2, 3),
      "b": jnp.array([3.0, -0.25], jnp.float32),
      "h": jnp.array([0.5, 4.0], jnp.bfloat16),
  }


def _scale_by_param(u, p):
  """A leaf function that uses its param when there is one."""
  return u * 2.0 if p is None else u * p


def _whole_tree_fn(updates, params):
  """A whole-tree function of (updates, params)."""
  if params is None:
    return jax.tree.map(lambda u: -u, updates)
  return jax.tree.map(lambda u, p: u + 0.5 * p, updates, params)


class ProtocolVariantsTest(chex.TestCase):
  """The stateless building blocks, jitted and not, against optax's."""

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
      ("identity", jn.identity, optax.identity),
      ("set_to_zero", jn.set_to_zero, optax.set_to_zero),
  )
  def test_simple_transform_matches_optax(self, ours_fn, theirs_fn):
    """identity/set_to_zero give optax's updates, dtypes and (empty) state."""
    ours, theirs = ours_fn(), theirs_fn()
    params, grads = _params(), _grads()
    s_ours, s_theirs = ours.init(params), theirs.init(params)
    assert jax.tree.leaves(s_ours) == [] and jax.tree.leaves(s_theirs) == []
    u_ours, ns_ours = self.variant(ours.update)(grads, s_ours, params)
    u_theirs, _ = self.variant(theirs.update)(grads, s_theirs, params)
    chex.assert_trees_all_equal(u_ours, u_theirs)
    chex.assert_trees_all_equal_dtypes(u_ours, grads)
    assert jax.tree.leaves(ns_ours) == []

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(("with_params", True), ("without_params", False))
  def test_stateless_matches_optax(self, pass_params):
    """stateless(f) applies f(updates, params) exactly as optax.stateless."""
    ours, theirs = jn.stateless(_whole_tree_fn), optax.stateless(_whole_tree_fn)
    params, grads = _params(), _grads()
    p = params if pass_params else None
    u_ours, s_ours = self.variant(ours.update)(grads, ours.init(params), p)
    u_theirs, _ = self.variant(theirs.update)(grads, theirs.init(params), p)
    chex.assert_trees_all_close(u_ours, u_theirs)
    chex.assert_trees_all_close(u_ours, _whole_tree_fn(grads, p))
    assert s_ours == jn.EmptyState()

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(("with_params", True), ("without_params", False))
  def test_stateless_with_tree_map_matches_optax(self, pass_params):
    """stateless_with_tree_map(f) maps f(u, p) per leaf as optax's does."""
    ours = jn.stateless_with_tree_map(_scale_by_param)
    theirs = optax.stateless_with_tree_map(_scale_by_param)
    params, grads = _params(), _grads()
    p = params if pass_params else None
    u_ours, s_ours = self.variant(ours.update)(grads, ours.init(params), p)
    u_theirs, _ = self.variant(theirs.update)(grads, theirs.init(params), p)
    chex.assert_trees_all_close(u_ours, u_theirs)
    assert s_ours == jn.EmptyState()


def test_init_empty_state_matches_optax():
  """init_empty_state returns an empty, leafless state equal to optax's."""
  ours = jn.init_empty_state(_params())
  theirs = optax.init_empty_state(_params())
  assert isinstance(ours, jn.EmptyState)
  assert ours == theirs == ()
  assert jax.tree.leaves(ours) == []
  assert jax.tree.structure(ours).num_leaves == 0


def test_empty_state_survives_jit():
  """An EmptyState passes through jit unchanged (it is a valid pytree)."""
  out = jax.jit(lambda s: s)(jn.EmptyState())
  assert isinstance(out, jn.EmptyState)


def test_gradient_transformation_has_optax_layout():
  """GradientTransformation is a (init, update) NamedTuple like optax's."""
  tx = jn.identity()
  assert isinstance(tx, tuple) and len(tx) == 2
  assert jn.GradientTransformation._fields == optax.GradientTransformation._fields
  init, update = tx
  assert init is tx.init and update is tx.update
  # optax accepts it as its own by construction from the two fields.
  wrapped = optax.GradientTransformation(*tx)
  u, _ = wrapped.update(_grads(), wrapped.init(_params()))
  chex.assert_trees_all_equal(u, _grads())


def test_extra_args_class_is_a_gradient_transformation():
  """GradientTransformationExtraArgs subclasses GradientTransformation."""
  tx = jn.chain(jn.identity())
  assert isinstance(tx, jn.GradientTransformationExtraArgs)
  assert isinstance(tx, jn.GradientTransformation)


def test_with_extra_args_support_drops_unknown_kwargs():
  """with_extra_args_support lets a plain transform ignore extra kwargs."""
  calls = []

  def update_fn(updates, state, params=None):
    calls.append(params)
    return jax.tree.map(lambda u: 3.0 * u, updates), state

  plain = jn.GradientTransformation(jn.init_empty_state, update_fn)
  with pytest.raises(TypeError):
    plain.update(_grads(), plain.init(_params()), None, value=1.0)
  wrapped = jn.with_extra_args_support(plain)
  assert isinstance(wrapped, jn.GradientTransformationExtraArgs)
  u, _ = wrapped.update(_grads(), wrapped.init(_params()), None, value=1.0)
  chex.assert_trees_all_close(u, jax.tree.map(lambda g: 3.0 * g, _grads()))


def test_with_extra_args_support_keeps_extra_args_transforms():
  """with_extra_args_support passes kwargs on to an extra-args transform."""

  def update_fn(updates, state, params=None, *, value):
    return jax.tree.map(lambda u: u * value, updates), state

  tx = jn.GradientTransformationExtraArgs(jn.init_empty_state, update_fn)
  wrapped = jn.with_extra_args_support(tx)
  u, _ = wrapped.update(_grads(), wrapped.init(_params()), None, value=4.0)
  chex.assert_trees_all_close(u, jax.tree.map(lambda g: g * 4.0, _grads()))


def test_a_bare_init_update_pair_is_accepted_everywhere():
  """A plain 2-tuple of callables works with with_extra_args_support and chain."""
  pair = (jn.init_empty_state, lambda u, s, p=None: (jax.tree.map(lambda g: 2.0 * g, u), s))
  wrapped = jn.with_extra_args_support(pair)
  u, _ = wrapped.update(_grads(), wrapped.init(_params()), None, value=1.0)
  chex.assert_trees_all_close(u, jax.tree.map(lambda g: 2.0 * g, _grads()))
  tx = jn.chain(pair, jn.scale(3.0))
  u, _ = tx.update(_grads(), tx.init(_params()))
  chex.assert_trees_all_close(u, jax.tree.map(lambda g: 6.0 * g, _grads()))


def test_with_extra_args_support_rejects_non_transform():
  """with_extra_args_support names a non-(init, update) argument."""
  with pytest.raises(TypeError, match="GradientTransformation"):
    jn.with_extra_args_support(lambda x: x)


@pytest.mark.parametrize("factory", [jn.stateless, jn.stateless_with_tree_map])
def test_stateless_rejects_non_callable(factory):
  """stateless/stateless_with_tree_map reject a non-callable f."""
  with pytest.raises(TypeError, match="callable"):
    factory(3.0)


def test_set_to_zero_keeps_dtype_and_shape():
  """set_to_zero returns exact zeros of each update's shape and dtype."""
  grads = _grads()
  u, _ = jn.set_to_zero().update(grads, jn.EmptyState())
  chex.assert_trees_all_equal_shapes_and_dtypes(u, grads)
  for leaf in jax.tree.leaves(u):
    np.testing.assert_array_equal(np.asarray(leaf, np.float32), 0.0)
