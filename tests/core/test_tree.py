"""Pytree helpers of jaxopt_notes.tree, checked against optax's."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl.testing import parameterized

import jaxopt_notes as jn
from jaxopt_notes.core import tree as tree_lib

INT32_MAX = int(jnp.iinfo(jnp.int32).max)


def _tree():
  return {
      "w": jnp.array([[1.0, -2.0], [3.5, 0.25]], jnp.float32),
      "b": jnp.array([-0.5, 4.0, 1.0], jnp.float32),
      "h": jnp.array([2.0, -1.0], jnp.bfloat16),
  }


def _other():
  return {
      "w": jnp.array([[0.5, 0.5], [-1.0, 2.0]], jnp.float32),
      "b": jnp.array([1.5, -0.25, 3.0], jnp.float32),
      "h": jnp.array([0.25, 0.75], jnp.bfloat16),
  }


class TreeVariantsTest(chex.TestCase):
  """Helpers that run inside training steps, jitted and not."""

  @chex.variants(with_jit=True, without_jit=True)
  def test_apply_updates_matches_optax(self):
    """apply_updates equals optax.apply_updates, leaf dtypes kept."""
    params, updates = _tree(), _other()
    ours = self.variant(jn.apply_updates)(params, updates)
    chex.assert_trees_all_close(ours, optax.apply_updates(params, updates))
    chex.assert_trees_all_equal_dtypes(ours, params)

  @chex.variants(with_jit=True, without_jit=True)
  def test_apply_updates_bfloat16_params_stay_bfloat16(self):
    """bfloat16 params plus float32 updates stay bfloat16, equal to optax."""
    params = {"w": jnp.array([1.0, -3.0, 0.5], jnp.bfloat16)}
    updates = {"w": jnp.array([0.125, 0.25, -0.0625], jnp.float32)}
    ours = self.variant(jn.apply_updates)(params, updates)
    assert ours["w"].dtype == jnp.bfloat16
    chex.assert_trees_all_equal(ours, optax.apply_updates(params, updates))
    np.testing.assert_allclose(
        np.asarray(ours["w"], np.float32), [1.125, -2.75, 0.4375], rtol=1e-2
    )

  @chex.variants(with_jit=True, without_jit=True)
  def test_apply_updates_keeps_none_leaves(self):
    """None params stay None and the rest update, as in optax."""
    params = {"a": jnp.ones(2), "frozen": None, "c": [None, jnp.zeros(1)]}
    updates = {"a": jnp.full(2, 0.5), "frozen": None, "c": [None, jnp.ones(1)]}
    ours = self.variant(jn.apply_updates)(params, updates)
    assert ours["frozen"] is None and ours["c"][0] is None
    chex.assert_trees_all_close(ours, optax.apply_updates(params, updates))

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(0, 1, 41, INT32_MAX - 1, INT32_MAX)
  def test_safe_increment_int32_matches_optax(self, start):
    """safe_increment / safe_int32_increment equal optax's and saturate at int32 max."""
    count = jnp.asarray(start, jnp.int32)
    ours = self.variant(jn.safe_increment)(count)
    alias = self.variant(jn.safe_int32_increment)(count)
    theirs = optax.safe_increment(count)
    assert ours.dtype == jnp.int32
    assert int(ours) == int(alias) == int(theirs) == min(start + 1, INT32_MAX)

  @chex.variants(with_jit=True, without_jit=True)
  def test_adam_at_int32_max_count_stays_finite(self):
    """An Adam state whose count is int32 max gives finite updates and keeps the count."""
    params = {"w": jnp.array([1.0, -2.0, 3.0])}
    grads = {"w": jnp.array([0.5, -0.25, 2.0])}
    tx = jn.adam(1e-3)
    adam_state, lr_state = tx.init(params)
    state = (adam_state._replace(count=jnp.asarray(INT32_MAX, jnp.int32)), lr_state)
    step = self.variant(tx.update)
    for _ in range(2):
      updates, state = step(grads, state, params)
      chex.assert_tree_all_finite(updates)
      assert int(state[0].count) == INT32_MAX
    # optax's adam in the same situation gives the same numbers.
    o_tx = optax.adam(1e-3)
    o_state = o_tx.init(params)
    o_state = (o_state[0]._replace(count=jnp.asarray(INT32_MAX, jnp.int32)), o_state[1])
    for _ in range(2):
      o_updates, o_state = o_tx.update(grads, o_state, params)
    chex.assert_trees_all_close(updates, o_updates, rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("start", [0.0, 7.0])
def test_safe_increment_float_matches_optax(dtype, start):
  """safe_increment on a float count equals optax's (count + 1)."""
  count = jnp.asarray(start, dtype)
  ours = jn.safe_increment(count)
  assert ours.dtype == dtype
  chex.assert_trees_all_equal(ours, optax.safe_increment(count))


def test_safe_increment_float_saturates():
  """safe_increment keeps a float count at its dtype's maximum."""
  top = jnp.asarray(jnp.finfo(jnp.float32).max, jnp.float32)
  ours = jn.safe_increment(top)
  assert bool(jnp.isfinite(ours)) and float(ours) == float(top)
  chex.assert_trees_all_equal(ours, optax.safe_increment(top))


def test_safe_increment_rejects_bool():
  """safe_increment refuses a count of non-numeric dtype."""
  with pytest.raises(ValueError, match="dtype"):
    jn.safe_increment(jnp.asarray(True))


@pytest.mark.parametrize(
    "tree",
    [
        {"a": jnp.array([3.0, 4.0]), "b": [jnp.ones((2, 2)), jnp.array(-2.0)]},
        {"c": jnp.array([1.0 + 2.0j, 3.0 - 1.0j], jnp.complex64), "r": jnp.array([0.5, -0.5])},
        {"c": jnp.array([[2.0j, -1.0 + 0.5j]], jnp.complex64)},
        {"h": jnp.array([1.0, 2.0, 3.0], jnp.bfloat16)},
        {},
    ],
    ids=["real", "complex_and_real", "complex", "bfloat16", "empty"],
)
def test_global_norm_matches_optax_tree_norm(tree):
  """global_norm equals optax.tree.norm, complex leaves counting |x|^2."""
  ours = jn.global_norm(tree)
  theirs = optax.tree.norm(tree)
  assert not jnp.iscomplexobj(ours)
  np.testing.assert_allclose(float(ours), float(theirs), rtol=1e-6)
  # Independently: sqrt of the sum of |x|^2 in numpy float64.
  expected = np.sqrt(sum(np.sum(np.abs(np.asarray(x, np.complex128)) ** 2) for x in jax.tree.leaves(tree)))
  np.testing.assert_allclose(float(ours), expected, rtol=1e-2 if "h" in tree else 1e-6)


def test_global_norm_under_jit():
  """global_norm jits and matches its eager value."""
  tree = _tree()
  np.testing.assert_allclose(jax.jit(jn.global_norm)(tree), jn.global_norm(tree), rtol=1e-6)


@pytest.mark.parametrize("dtype", [None, jnp.bfloat16, jnp.float16])
def test_tree_zeros_ones_full_like_match_optax(dtype):
  """tree_zeros_like / tree_ones_like / tree_full_like equal optax.tree's."""
  tree = _tree()
  pairs = [
      (jn.tree_zeros_like(tree, dtype=dtype), optax.tree.zeros_like(tree, dtype=dtype)),
      (jn.tree_ones_like(tree, dtype=dtype), optax.tree.ones_like(tree, dtype=dtype)),
      (jn.tree_full_like(tree, 2.5, dtype=dtype), optax.tree.full_like(tree, 2.5, dtype=dtype)),
  ]
  for ours, theirs in pairs:
    chex.assert_trees_all_equal(ours, theirs)
    chex.assert_trees_all_equal_dtypes(ours, theirs)
    chex.assert_trees_all_equal_shapes(ours, tree)


def test_tree_cast_matches_optax():
  """tree_cast equals optax.tree.cast, and dtype=None is a no-op."""
  tree = _tree()
  chex.assert_trees_all_equal(jn.tree_cast(tree, jnp.bfloat16), optax.tree.cast(tree, jnp.bfloat16))
  assert jn.tree_cast(tree, None) is tree


@pytest.mark.parametrize("count", [1, 2, 10, 1000])
@pytest.mark.parametrize("decay", [0.9, 0.999])
def test_bias_correction_matches_optax(count, decay):
  """bias_correction (and its tree_ alias) equals optax.tree.bias_correction."""
  moment = {"m": jnp.array([0.1, -0.2, 0.3]), "n": jnp.array(0.05)}
  c = jnp.asarray(count, jnp.int32)
  ours = jn.bias_correction(moment, decay, c)
  # 1 - decay**t is ill-conditioned in float32 (eager and jitted pow differ in
  # the last bits), hence the 3e-5 tolerance rather than 1e-6.
  chex.assert_trees_all_close(ours, optax.tree.bias_correction(moment, decay, c), rtol=3e-5)
  chex.assert_trees_all_close(jn.tree_bias_correction(moment, decay, c), ours)
  expected = jax.tree.map(lambda m: np.asarray(m, np.float64) / (1 - decay**count), moment)
  chex.assert_trees_all_close(ours, expected, rtol=5e-5)


def test_bias_correction_bfloat16_moment_is_finite():
  """A bfloat16 moment at step 1 with b2=0.999 is corrected, not divided by 0."""
  moment = {"v": jnp.array([1e-3, 2e-3], jnp.bfloat16)}
  ours = jn.bias_correction(moment, 0.999, jnp.asarray(1, jnp.int32))
  chex.assert_tree_all_finite(ours)
  assert ours["v"].dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(ours["v"], np.float32), [1.0, 2.0], rtol=2e-2)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_tree_update_moment_matches_optax(order):
  """tree_update_moment equals optax.tree.update_moment for orders 1..3."""
  g, m = _other(), _tree()
  ours = jn.tree_update_moment(g, m, 0.9, order)
  theirs = optax.tree.update_moment(g, m, 0.9, order)
  chex.assert_trees_all_close(ours, theirs, rtol=1e-6)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_tree_update_moment_per_elem_norm_matches_optax(order):
  """tree_update_moment_per_elem_norm equals optax's, complex leaves included."""
  g = {"r": jnp.array([1.0, -2.0, 0.5]), "c": jnp.array([1.0 + 1.0j, -2.0 + 0.5j], jnp.complex64)}
  m = {"r": jnp.array([0.1, 0.2, 0.3]), "c": jnp.array([0.4, 0.5], jnp.float32)}
  ours = jn.tree_update_moment_per_elem_norm(g, m, 0.99, order)
  theirs = optax.tree.update_moment_per_elem_norm(g, m, 0.99, order)
  chex.assert_trees_all_close(ours, theirs, rtol=1e-6)
  assert not jnp.iscomplexobj(ours["c"])
  expected = 0.01 * np.abs(np.asarray(g["c"])) ** order + 0.99 * np.asarray(m["c"])
  np.testing.assert_allclose(ours["c"], expected, rtol=1e-5)


def test_tree_update_infinity_moment_matches_optax():
  """tree_update_infinity_moment equals optax.tree.update_infinity_moment."""
  g, m = _other(), _tree()
  m = jax.tree.map(jnp.abs, m)
  ours = jn.tree_update_infinity_moment(g, m, 0.999, 1e-8)
  theirs = optax.tree.update_infinity_moment(g, m, 0.999, 1e-8)
  chex.assert_trees_all_close(ours, theirs)


def test_moment_updates_keep_none_leaves():
  """The moment helpers leave None updates as None, as optax's do."""
  g = {"a": jnp.array([1.0, 2.0]), "skip": None}
  m = {"a": jnp.zeros(2), "skip": None}
  for ours in (
      jn.tree_update_moment(g, m, 0.9, 1),
      jn.tree_update_moment_per_elem_norm(g, m, 0.9, 2),
      jn.tree_update_infinity_moment(g, m, 0.9, 1e-8),
  ):
    assert ours["skip"] is None
  chex.assert_trees_all_close(
      jn.tree_update_moment(g, m, 0.9, 1), optax.tree.update_moment(g, m, 0.9, 1)
  )


def test_tree_map_checked_names_differing_path():
  """tree_map_checked raises a ValueError naming both trees and the bad path."""
  a = {"x": jnp.ones(2), "y": jnp.ones(2)}
  b = {"x": jnp.ones(2), "z": jnp.ones(2)}
  with pytest.raises(ValueError, match=r"`second`.*`first`.*\['y'\].*\['z'\]"):
    tree_lib.tree_map_checked(jnp.add, a, b, names=("first", "second"))
  np.testing.assert_allclose(tree_lib.tree_map_checked(jnp.add, a, a)["y"], [2.0, 2.0])


def test_apply_updates_structure_mismatch_names_path():
  """apply_updates with an update tree missing a key names that key."""
  params = {"a": jnp.ones(2), "b": jnp.ones(3)}
  with pytest.raises(ValueError, match=r"\['b'\]"):
    jn.apply_updates(params, {"a": jnp.ones(2)})


def test_check_params_tree_names_bad_leaf():
  """check_params_tree accepts arrays/numbers/None and names a bad leaf's path."""
  tree_lib.check_params_tree({"a": jnp.ones(2), "n": None, "f": 1.5, "s": np.float32(2)})
  with pytest.raises(TypeError, match=r"params\['layers'\]\[1\]"):
    tree_lib.check_params_tree({"layers": [jnp.ones(2), "oops"]})
