"""partition / multi_transform, freeze and selective_transform against optax."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from jaxopt_notes.wrappers.hyperparams import inject_hyperparams
from jaxopt_notes.wrappers.param_groups import (
  MultiTransformState,
  PartitionState,
  freeze,
  multi_transform,
  partition,
  selective_transform,
)
from tests.wrappers import _wrapper_runs as wr

LONG = 120  # steps of a jitted run
SHORT = 10  # steps of an eager run


def _params():
  return {
      "layer1": {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.zeros(3)},
      "layer2": {"w": jnp.linspace(0.5, -0.5, 3).reshape(3, 1), "b": jnp.ones(1)},
  }


LABELS = {"layer1": {"w": "w", "b": "b"}, "layer2": {"w": "w", "b": "b"}}


def label_fn(params):
  return jax.tree.map(lambda p: "w" if p.ndim > 1 else "b", params)


def _noise(steps):
  return wr.noise(_params(), steps, dtype=np.float32)


def _compare(ours, theirs, variant=None):
  """``wr.compare`` on these params and noise; returns our final ``(params, state)``."""
  return wr.compare(ours, theirs, _params(), _noise, variant, long=LONG, short=SHORT)[0]


class PartitionTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_adam_on_weights_sgd_on_biases_labels_as_tree(self):
    _compare(
        partition({"w": jn.adam(1e-2), "b": jn.sgd(1e-1, momentum=0.9)}, LABELS),
        optax.multi_transform({"w": optax.adam(1e-2), "b": optax.sgd(1e-1, momentum=0.9)}, LABELS),
        self.variant,
    )

  @chex.variants(with_jit=True, without_jit=True)
  def test_labels_as_callable(self):
    _compare(
        multi_transform({"w": jn.adam(1e-2), "b": jn.sgd(1e-1)}, label_fn),
        optax.partition({"w": optax.adam(1e-2), "b": optax.sgd(1e-1)}, label_fn),
        self.variant,
    )

  def test_each_group_keeps_state_only_for_its_leaves(self):
    state = partition({"w": jn.adam(1e-2), "b": jn.sgd(1e-1)}, label_fn).init(_params())
    mu = state.inner_states["w"].inner_state[0].mu
    assert isinstance(mu["layer1"]["b"], jn.MaskedNode)
    assert mu["layer1"]["w"].shape == (2, 3)

  def test_learning_rate_per_group_with_inject_hyperparams(self):
    ours = partition(
        {"w": inject_hyperparams(jn.adam)(learning_rate=1e-2),
         "b": inject_hyperparams(jn.sgd)(learning_rate=optax.linear_schedule(0.1, 0.0, 50))},
        label_fn,
    )
    theirs = optax.partition(
        {"w": optax.inject_hyperparams(optax.adam)(learning_rate=1e-2),
         "b": optax.inject_hyperparams(optax.sgd)(learning_rate=optax.linear_schedule(0.1, 0.0, 50))},
        label_fn,
    )
    _, state = _compare(ours, theirs)
    lr_b = state.inner_states["b"].inner_state.hyperparams["learning_rate"]
    assert float(lr_b) == pytest.approx(0.0, abs=1e-6)  # the schedule has ended

  def test_prefix_labels(self):
    params = (jnp.ones(3), {"a": jnp.ones(2), "b": jnp.zeros(2)})
    labels = ("generator", "discriminator")
    ours = partition({"generator": jn.adam(0.1), "discriminator": jn.sgd(0.5)}, labels)
    theirs = optax.partition({"generator": optax.adam(0.1), "discriminator": optax.sgd(0.5)}, labels)
    state_a, state_b = ours.init(params), theirs.init(params)
    update_a, update_b = jax.jit(ours.update), jax.jit(theirs.update)
    grads = jax.tree.map(lambda p: p + 0.25, params)
    for _ in range(3):
      upd_a, state_a = update_a(grads, state_a, params)
      upd_b, state_b = update_b(grads, state_b, params)
      wr.assert_same_state(upd_a, upd_b)
    wr.assert_same_state(state_a, state_b)

  def test_mask_compatible_extra_args(self):
    def add_tags():
      def update_fn(updates, state, params=None, *, tags, **extra_args):
        del params, extra_args
        return jax.tree.map(lambda u, t: u + t, updates, tags), state

      return jn.GradientTransformationExtraArgs(jn.init_empty_state, update_fn)

    params = _params()
    tags = jax.tree.map(lambda p: jnp.full(p.shape, 10.0), params)
    grads = jax.tree.map(jnp.ones_like, params)
    ours = partition({"w": add_tags(), "b": jn.scale(0.0)}, label_fn, mask_compatible_extra_args=True)
    theirs = optax.partition(
        {"w": add_tags(), "b": optax.scale(0.0)}, label_fn, mask_compatible_extra_args=True
    )
    upd_a, _ = ours.update(grads, ours.init(params), params, tags=tags)
    upd_b, _ = theirs.update(grads, theirs.init(params), params, tags=tags)
    wr.assert_same_state(upd_a, upd_b)
    assert float(upd_a["layer1"]["w"][0, 0]) == 11.0 and float(upd_a["layer1"]["b"][0]) == 0.0

  def test_aliases_and_state_fields(self):
    assert multi_transform is partition and MultiTransformState is PartitionState
    assert PartitionState._fields == optax.PartitionState._fields

  def test_missing_labels_raise_naming_them(self):
    labels = {"layer1": {"w": "w", "b": "bias"}, "layer2": {"w": "embed", "b": "bias"}}
    with pytest.raises(ValueError, match="'bias', 'embed'"):
      partition({"w": jn.adam(1e-3)}, labels)
    tx = partition({"w": jn.adam(1e-3)}, label_fn)
    with pytest.raises(ValueError, match="labels with no transform: 'b'"):
      tx.init(_params())

  def test_bad_transforms(self):
    with pytest.raises(TypeError, match="transforms"):
      partition([jn.adam(1e-3)], LABELS)
    with pytest.raises(TypeError, match=r"transforms\['b'\]"):
      partition({"w": jn.adam(1e-3), "b": "sgd"}, LABELS)


FROZEN = {"layer1": True, "layer2": {"w": False, "b": True}}


class FreezeTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_freeze_before_adam_equals_optax(self):
    params_a, _ = _compare(
        jn.chain(freeze(FROZEN), jn.adam(1e-2)),
        optax.chain(optax.freeze(FROZEN), optax.adam(1e-2)),
        self.variant,
    )
    chex.assert_trees_all_equal(params_a["layer1"], _params()["layer1"])
    chex.assert_trees_all_equal(params_a["layer2"]["b"], _params()["layer2"]["b"])
    assert not np.allclose(params_a["layer2"]["w"], _params()["layer2"]["w"])

  def test_freeze_zeroes_frozen_updates_and_keeps_no_state(self):
    params = _params()
    tx = freeze(FROZEN)
    state = tx.init(params)
    assert jax.tree.leaves(state) == []
    grads = jax.tree.map(lambda p: p + 1.0, params)
    updates, _ = tx.update(grads, state, params)
    chex.assert_trees_all_equal(updates["layer1"], jax.tree.map(jnp.zeros_like, params["layer1"]))
    chex.assert_trees_all_equal(updates["layer2"]["w"], grads["layer2"]["w"])
    chex.assert_trees_all_equal(updates["layer2"]["b"], jnp.zeros(1))
    everything, _ = freeze(True).update(grads, freeze(True).init(params), params)
    chex.assert_trees_all_equal(everything, jax.tree.map(jnp.zeros_like, params))

  @chex.variants(with_jit=True, without_jit=True)
  def test_selective_transform_equals_optax(self):
    _, state = _compare(
        selective_transform(jn.adam(1e-2), freeze_mask=FROZEN),
        optax.selective_transform(optax.adam(1e-2), freeze_mask=FROZEN),
        self.variant,
    )
    # The optimizer keeps moments for the trained leaf only.
    mu = state.inner_states["train"].inner_state[0].mu
    assert [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(mu)] == [
        "['layer2']['w']"
    ]
    assert jax.tree.leaves(state.inner_states["freeze"]) == []

  def test_set_to_zero_is_reexported(self):
    from jaxopt_notes.wrappers import param_groups as partition_module

    assert partition_module.set_to_zero is jn.set_to_zero
