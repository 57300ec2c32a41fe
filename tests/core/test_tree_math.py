"""``jaxopt_notes.tree`` against ``optax.tree``: every name, on random nested pytrees.

Each case runs one ``optax.tree`` function and ours on the same inputs (nested
dict/list/tuple trees with ``None`` leaves, scalars, Python numbers, and
float32 / bfloat16 / int32 / complex64 / float64 leaves), eagerly and under
``jit``, and requires the same structure, dtypes, weak types and bits.
"""

from __future__ import annotations

import ast
import inspect
import pathlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from jaxopt_notes.core import tree as tree_lib

OPTAX_TREE_NAMES = sorted(n for n in dir(optax.tree) if not n.startswith("_"))

# jaxopt_notes.tree's public names before the optax.tree names were added.
OLD_TREE_NAMES = (
    "abs_sq", "apply_updates", "bias_correction", "bias_correction_factor", "check_params_tree",
    "check_tree_like", "describe_difference", "first_shape_difference", "global_norm", "placed_like",
    "safe_increment", "safe_int32_increment", "select_tree", "tree_bias_correction", "tree_cast",
    "tree_cast_like", "tree_full_like", "tree_map_checked", "tree_ones_like",
    "tree_update_infinity_moment", "tree_update_moment", "tree_update_moment_per_elem_norm",
    "tree_zeros_like",
)


def _is_none(x):
  return x is None


# --- random trees ----------------------------------------------------------------------------


def _nested(rng, dtype, offset=0.0):
  """A dict of a list of a tuple with a None leaf, a scalar, a vector and a matrix."""

  def arr(*shape):
    return jnp.asarray(rng.normal(size=shape) + offset, dtype=dtype)

  return {"layer": [arr(2, 3), (arr(), None)], "out": {"b": arr(3), "deep": [arr(1, 4)]}}


def _mixed(rng, offset=0.0):
  """Nested float32 leaves (matrix, scalar, vector, None) beside bfloat16, int32 (no zeros), complex64."""
  real = rng.normal(size=(2, 3)) + offset
  return {
      "f32": _nested(rng, jnp.float32, offset),
      "bf16": (jnp.asarray(real, jnp.bfloat16), None),
      "i32": [jnp.asarray(rng.integers(1, 6, size=(4,)), jnp.int32)],
      "c64": jnp.asarray(rng.normal(size=(2,)) + 1j * rng.normal(size=(2,)), jnp.complex64),
  }


def _scalars(rng, offset=0.0):
  """Python numbers and 0-d arrays as leaves."""
  return (float(rng.normal() + offset), {"a": jnp.float32(rng.normal()), "n": None},
          [jnp.asarray(rng.normal(size=()), jnp.float32)])


def _float64(rng, offset=0.0):
  return _nested(rng, jnp.float64, offset)


KINDS = {"mixed": _mixed, "scalars": _scalars, "float64": _float64}


def _trees(kind, seed):
  """Three trees of one structure and per-leaf dtype, random values (``z`` positive)."""
  rng = np.random.default_rng(seed)
  make = KINDS[kind]
  return make(rng), make(rng), jax.tree.map(jnp.abs, make(rng, 0.5))


def _x64(kind):
  return jax.enable_x64(kind == "float64")


# --- exact comparison ------------------------------------------------------------------------


def _assert_same(ours, ref):
  """Same structure (None included), leaf types, dtypes, weak types, shapes and bits."""
  assert jax.tree.structure(ours, is_leaf=_is_none) == jax.tree.structure(ref, is_leaf=_is_none)
  for o, r in zip(jax.tree.leaves(ours, is_leaf=_is_none), jax.tree.leaves(ref, is_leaf=_is_none)):
    if r is None:
      assert o is None
      continue
    assert isinstance(o, jax.Array) == isinstance(r, jax.Array), (type(o), type(r))
    if not isinstance(r, jax.Array):
      assert type(o) is type(r) and (o == r or (o != o and r != r)), (o, r)
      continue
    assert (o.dtype, o.shape) == (r.dtype, r.shape)
    if jax.dtypes.issubdtype(r.dtype, jax.dtypes.prng_key):
      o, r = jax.random.key_data(o), jax.random.key_data(r)
    assert o.weak_type == r.weak_type
    assert np.asarray(o).tobytes() == np.asarray(r).tobytes(), (o, r)


def _run_both(name, jit, args, kwargs=None):
  kwargs = kwargs or {}
  ours, ref = getattr(jn.tree, name), getattr(optax.tree, name)
  if jit:
    return jax.jit(lambda *a: ours(*a, **kwargs))(*args), jax.jit(lambda *a: ref(*a, **kwargs))(*args)
  return ours(*args, **kwargs), ref(*args, **kwargs)


# --- elementwise and reductions: (name, args from the trees x, y, z, static kwargs) -------------

CASES = [
    ("add", lambda x, y, z: (x, y), {}),
    ("add", lambda x, y, z: (x, y, z), {}),
    ("sub", lambda x, y, z: (x, y), {}),
    ("mul", lambda x, y, z: (x, y), {}),
    ("div", lambda x, y, z: (x, z), {}),
    ("scale", lambda x, y, z: (0.3, x), {}),
    ("scale", lambda x, y, z: (jnp.float32(-2.5), x), {}),
    ("add_scale", lambda x, y, z: (x, 0.7, y), {}),
    ("add_scale", lambda x, y, z: (x, jnp.float32(-1e-3), y), {}),
    ("vdot", lambda x, y, z: (x, y), {}),
    ("vdot", lambda x, y, z: (x, x), {}),
    ("sum", lambda x, y, z: (x,), {}),
    ("sum", lambda x, y, z: (x,), {"associative_reduction": True}),
    ("max", lambda x, y, z: (x,), {}),
    ("min", lambda x, y, z: (x,), {}),
    ("conj", lambda x, y, z: (x,), {}),
    ("real", lambda x, y, z: (x,), {}),
    ("norm", lambda x, y, z: (x,), {}),
    ("norm", lambda x, y, z: (x,), {"ord": 2, "squared": True}),
    ("norm", lambda x, y, z: (x,), {"ord": 1}),
    ("norm", lambda x, y, z: (x,), {"ord": 1, "squared": True}),
    ("norm", lambda x, y, z: (x,), {"ord": jnp.inf}),
    ("norm", lambda x, y, z: (x,), {"ord": "inf", "squared": True}),
    ("norm", lambda x, y, z: (x,), {"ord": "infinity"}),
    ("batch_shape", lambda x, y, z: (x,), {}),
    ("batch_shape", lambda x, y, z: (x,), {"shape": (2, 1)}),
    ("clip", lambda x, y, z: (x,), {"min_value": -0.5}),
    ("clip", lambda x, y, z: (x,), {"max_value": 0.25}),
    ("clip", lambda x, y, z: (x, -0.5, 0.5), {}),
    ("where", lambda x, y, z: (True, x, y), {}),
    ("where", lambda x, y, z: (jnp.asarray(False), x, y), {}),
    ("allclose", lambda x, y, z: (x, x), {}),
    ("allclose", lambda x, y, z: (x, y), {}),
    ("allclose", lambda x, y, z: (x, y), {"rtol": 10.0, "atol": 10.0}),
    ("zeros_like", lambda x, y, z: (x,), {}),
    ("ones_like", lambda x, y, z: (x,), {"dtype": jnp.bfloat16}),
    ("full_like", lambda x, y, z: (x, 2.5), {}),
    ("full_like", lambda x, y, z: (x, 3), {"dtype": jnp.int32}),
    ("update_moment", lambda x, y, z: (x, y, 0.9), {"order": 1}),
    ("update_moment", lambda x, y, z: (x, z, 0.99), {"order": 2}),
    ("update_moment_per_elem_norm", lambda x, y, z: (x, z, 0.9), {"order": 1}),
    ("update_moment_per_elem_norm", lambda x, y, z: (x, z, 0.999), {"order": 2}),
    ("update_moment_per_elem_norm", lambda x, y, z: (x, z, 0.5), {"order": 3}),
    ("update_infinity_moment", lambda x, y, z: (x, z, 0.9, 1e-8), {}),
    ("bias_correction", lambda x, y, z: (z, 0.9, jnp.asarray(3, jnp.int32)), {}),
]
# Python-number leaves have no dtype to cast, and a bool `where` of Python
# floats is what both libraries refuse alike; those kinds skip these names.
NEEDS_ARRAYS = {"zeros_like", "ones_like", "full_like", "batch_shape", "bias_correction"}


def _raises(fn, args, kwargs):
  """The type of the exception ``fn`` raises on these inputs, or ``None`` (traced only, nothing runs)."""
  try:
    jax.eval_shape(lambda *a: fn(*a, **kwargs), *args)
  except (TypeError, ValueError) as err:
    return type(err)
  return None


@pytest.mark.parametrize("kind, jit", [("mixed", False), ("scalars", False), ("mixed", True), ("float64", True)],
                         ids=["mixed-eager", "scalars-eager", "mixed-jit", "float64-jit"])
def test_matches_optax_tree(kind, jit):
  """Every case of CASES, eagerly or all in one jitted function per library (one compile each)."""
  cases = [c for c in CASES if not (kind == "scalars" and c[0] in NEEDS_ARRAYS)]
  with _x64(kind):
    trees = _trees(kind, seed=len(kind))
    # A case optax refuses (a complex clip) must be refused by ours too; it runs in neither.
    runnable = []
    for name, build, kwargs in cases:
      refused = _raises(getattr(optax.tree, name), build(*trees), kwargs)
      assert _raises(getattr(jn.tree, name), build(*trees), kwargs) is refused, (name, kwargs)
      if refused is None:
        runnable.append((name, build, kwargs))
    assert len(runnable) >= len(cases) - 3
    def run_all(lib, t):
      return [getattr(lib.tree, n)(*b(*t), **kw) for n, b, kw in runnable]

    if jit:
      results = {lib: jax.jit(lambda t, lib=lib: run_all(lib, t))(trees) for lib in (jn, optax)}
    else:
      results = {lib: run_all(lib, trees) for lib in (jn, optax)}
    for (name, _, kwargs), ours, ref in zip(runnable, results[jn], results[optax]):
      try:
        _assert_same(ours, ref)
      except AssertionError as err:
        raise AssertionError(f"{name}({kwargs}) on {kind}: {err}") from err


@pytest.mark.parametrize("kind", ["mixed", "float64"])
def test_size_cast_and_cast_like_match_optax(kind):
  with _x64(kind):
    x, y, _ = _trees(kind, seed=3)
    assert jn.tree.size(x) == optax.tree.size(x) and isinstance(jn.tree.size(x), int)
    if kind == "mixed":  # complex to real casts warn (and will raise) in JAX: kept out
      x, y = ({k: v for k, v in t.items() if k != "c64"} for t in (x, y))
    for dtype in (None, jnp.bfloat16, jnp.float32):
      _assert_same(jn.tree.cast(x, dtype), optax.tree.cast(x, dtype))
    other = jax.tree.map(lambda a: a.astype(jnp.bfloat16) if a.dtype != jnp.int32 else a, y)
    _assert_same(jn.tree.cast_like(x, other), optax.tree.cast_like(x, other))
    # A leaf of other_tree without a dtype (a Python number) leaves its leaf as it is.
    plain = jax.tree.map(lambda a: 1.0, y)
    _assert_same(jn.tree.cast_like(x, plain), optax.tree.cast_like(x, plain))
    assert jn.tree.cast_like(x, plain) is not None


def test_empty_trees_and_empty_leaves_match_optax():
  for tree in ({}, (), [None], {"a": None, "b": []}):
    for name in ("sum", "max", "min", "norm", "size", "allclose", "vdot", "add", "dtype"):
      args = (tree, tree) if name in ("allclose", "vdot", "add") else (tree,)
      _assert_same(getattr(jn.tree, name)(*args), getattr(optax.tree, name)(*args))
  with_empty = {"e": jnp.zeros((0,)), "x": jnp.array([2.0, -3.0]), "n": None}
  for name in ("sum", "max", "min", "size", "norm"):
    _assert_same(getattr(jn.tree, name)(with_empty), getattr(optax.tree, name)(with_empty))


def test_bool_and_int_trees_add_like_python_sum():
  a = {"b": jnp.array([True, False]), "i": jnp.array([1, 2], jnp.int8)}
  _assert_same(jn.tree.add(a, a), optax.tree.add(a, a))
  _assert_same(jn.tree.add(a, a, a), optax.tree.add(a, a, a))
  _assert_same(jn.tree.div(a, a), optax.tree.div(a, a))


def test_nan_and_inf_follow_optax():
  x = {"a": jnp.array([jnp.nan, 1.0, jnp.inf]), "b": jnp.array(-jnp.inf)}
  for name in ("max", "min", "sum", "norm"):
    _assert_same(getattr(jn.tree, name)(x), getattr(optax.tree, name)(x))
  for equal_nan in (False, True):
    _assert_same(jn.tree.allclose(x, x, equal_nan=equal_nan), optax.tree.allclose(x, x, equal_nan=equal_nan))
  assert bool(jn.tree.allclose(x, x, equal_nan=True)) and not bool(jn.tree.allclose(x, x))


def test_where_with_a_traced_condition():
  x, y, _ = _trees("mixed", seed=5)
  for flag in (True, False):
    ours = jax.jit(jn.tree.where)(jnp.asarray(flag), x, y)
    _assert_same(ours, optax.tree.where(jnp.asarray(flag), x, y))
    _assert_same(ours, x if flag else y)


# --- dtypes and random trees ---------------------------------------------------------------


DTYPE_TREES = {
    "one": {"a": jnp.ones(2), "b": (jnp.zeros(3),)},
    "f16-f32": {"a": jnp.ones(2, jnp.float16), "b": jnp.ones(2, jnp.float32)},
    "bf16-f16": {"a": jnp.ones(2, jnp.bfloat16), "b": jnp.ones(2, jnp.float16)},
    "i32-u32": {"a": jnp.ones(2, jnp.int32), "b": jnp.ones(2, jnp.uint32)},
    "i8-f32-c64": [jnp.ones(1, jnp.int8), jnp.ones(1), jnp.ones(1, jnp.complex64)],
    "python": {"a": 1.0, "b": 2},
    "empty": {},
}


@pytest.mark.parametrize("handler", [None, "promote", "highest", "lowest"])
@pytest.mark.parametrize("tree_name", list(DTYPE_TREES))
def test_dtype_matches_optax_including_errors(tree_name, handler):
  tree = DTYPE_TREES[tree_name]
  try:
    want = optax.tree.dtype(tree, handler)
  except ValueError:
    with pytest.raises(ValueError):
      jn.tree.dtype(tree, handler)
    return
  assert jn.tree.dtype(tree, handler) == want


def test_dtype_of_an_empty_tree_follows_x64():
  with jax.enable_x64(True):
    assert jn.tree.dtype({}) == optax.tree.dtype({}) == jnp.float64


def _scaled_normal(key, shape, dtype):
  return 3.0 * jax.random.normal(key, shape, dtype)


@pytest.mark.parametrize("sampler, dtype, kind", [
    (jax.random.normal, None, "mixed"),
    (jax.random.normal, jnp.bfloat16, "mixed"),
    (jax.random.uniform, None, "float64"),
    (_scaled_normal, None, "float64"),
    (jax.random.rademacher, jnp.int32, "mixed"),
])
@pytest.mark.parametrize("typed_key", [False, True])
def test_random_like_and_split_key_like_match_optax(sampler, dtype, kind, typed_key):
  with _x64(kind):
    target, _, _ = _trees(kind, seed=7)
    if kind == "mixed" and dtype is None:  # normal and uniform draw floats only
      target = {k: v for k, v in target.items() if k != "i32"}
    key = jax.random.key(11) if typed_key else jax.random.PRNGKey(11)
    _assert_same(jn.tree.random_like(key, target, sampler, dtype),
                 optax.tree.random_like(key, target, sampler, dtype))
    _assert_same(jn.tree.split_key_like(key, target), optax.tree.split_key_like(key, target))
    draws = jax.tree.leaves(jn.tree.random_like(key, target, sampler, dtype))
    assert len({np.asarray(jnp.real(d), np.float32).tobytes() for d in draws}) == len(draws)  # one key per leaf


def test_unwrap_random_key_data_matches_optax():
  tree = {"typed": jax.random.key(0), "raw": jax.random.PRNGKey(1), "x": jnp.ones(2), "n": None, "f": 1.5,
          "keys": jax.random.split(jax.random.key(3), 3)}
  ours = jn.tree.unwrap_random_key_data(tree)
  _assert_same(ours, optax.tree.unwrap_random_key_data(tree))
  assert ours["typed"].dtype == jnp.uint32 and ours["keys"].shape == (3, 2)


# --- get / set / get_all_with_path ---------------------------------------------------------


class Inner(NamedTuple):
  mu: Any
  count: Any


class Outer(NamedTuple):
  inner: Any
  mu: Any
  extra: Any


def _state_trees():
  """States of optax and of ours, and hand-made trees with repeated and nested keys."""
  params = {"w": jnp.ones(3), "b": jnp.zeros(2)}
  noisy = optax.chain(optax.add_noise(1.0, 0.9, key=0), optax.scale_by_adam())
  injected = optax.inject_hyperparams(optax.sgd)(learning_rate=lambda c: 1 / (c + 1))
  return {
      "optax_adam": optax.adam(1e-3).init(params),
      "optax_noisy": noisy.init(params),
      "optax_injected": injected.init(params),
      "ours_adam": jn.adam(1e-3).init(params),
      "ours_masked": jn.masked(jn.sgd(0.1, momentum=0.9), {"w": True, "b": False}).init(params),
      "ours_injected": jn.inject_hyperparams(jn.adam)(learning_rate=0.1).init(params),
      "nested": Outer(inner=Inner(mu={"mu": jnp.ones(1), "x": [Inner(2.0, 3)]}, count=jnp.int32(4)),
                      mu=[{"mu": 5.0}], extra={"count": 6, "Inner": None}),
      "dict_in_list": {"a": 1.0, "b": [{"a": 2.0}], "c": ({"a": 3.0},)},
  }


def _paths(found):
  return [([(type(k).__name__, str(k)) for k in path], value) for path, value in found]


def _assert_paths_same(ours, ref):
  assert [p for p, _ in _paths(ours)] == [p for p, _ in _paths(ref)]
  for (_, o), (_, r) in zip(ours, ref):
    _assert_same(o, r)


KEYS = ("mu", "count", "nu", "learning_rate", "Inner", "Outer", "a", "ScaleByAdamState",
        "AddNoiseState", "hyperparams", "absent")
FILTERS = {
    "none": None,
    "arrays": lambda path, value: isinstance(value, jax.Array),
    "in_inner": lambda path, value: any(getattr(k, "tuple_name", None) == "Inner" for k in path),
    "tuples": lambda path, value: isinstance(value, tuple),
}


@pytest.mark.parametrize("filter_name", list(FILTERS))
@pytest.mark.parametrize("tree_name", list(_state_trees()))
def test_get_all_with_path_and_get_match_optax(tree_name, filter_name):
  tree, filtering = _state_trees()[tree_name], FILTERS[filter_name]
  for key in KEYS:
    _assert_paths_same(jn.tree.get_all_with_path(tree, key, filtering),
                       optax.tree.get_all_with_path(tree, key, filtering))
    try:
      want = optax.tree.get(tree, key, default="missing", filtering=filtering)
    except KeyError:
      with pytest.raises(KeyError):
        jn.tree.get(tree, key, default="missing", filtering=filtering)
      continue
    _assert_same(jn.tree.get(tree, key, default="missing", filtering=filtering), want)


def test_named_tuple_paths_print_like_optax():
  tree = _state_trees()["optax_injected"]
  ours = [jax.tree_util.keystr(p) for p, _ in jn.tree.get_all_with_path(tree, "learning_rate")]
  assert ours == [jax.tree_util.keystr(p) for p, _ in optax.tree.get_all_with_path(tree, "learning_rate")]
  assert ours[0] == "InjectStatefulHyperparamsState.hyperparams['learning_rate']"
  key = jn.tree.get_all_with_path(tree, "count")[0][0][-1]
  assert isinstance(key, jn.tree.NamedTupleKey) and (key.tuple_name, key.name) == (
      "InjectStatefulHyperparamsState", "count")


SETS = [
    ({"count": jnp.asarray(7)}, None),
    ({"mu": 0.5}, None),
    ({"mu": 0.5, "count": 9}, FILTERS["arrays"]),
    ({"Inner": "replaced"}, None),
    ({"a": -1.0}, None),
    ({"learning_rate": jnp.asarray(0.01)}, FILTERS["arrays"]),
    ({"ScaleByAdamState": "gone"}, None),
    ({"mu": 1.0}, FILTERS["in_inner"]),
    ({"absent": 1.0}, None),
    ({"mu": 1.0}, lambda path, value: False),
]


@pytest.mark.parametrize("kwargs, filtering", SETS, ids=[str(sorted(k)) for k, _ in SETS])
@pytest.mark.parametrize("tree_name", list(_state_trees()))
def test_set_matches_optax(tree_name, kwargs, filtering):
  tree = _state_trees()[tree_name]
  try:
    want = optax.tree.set(tree, filtering, **kwargs)
  except KeyError as err:
    with pytest.raises(KeyError) as info:
      jn.tree.set(tree, filtering, **kwargs)
    assert repr(next(iter(kwargs)))[1:-1] in str(info.value) and str(err)
    return
  ours = jn.tree.set(tree, filtering, **kwargs)
  _assert_same(ours, want)
  assert type(ours) is type(want)


# --- map_params ----------------------------------------------------------------------------

OPTIMIZERS = [
    ("sgd_momentum", lambda m: m.sgd(0.1, momentum=0.9)),
    ("adam", lambda m: m.adam(1e-3)),
    ("chain_clip_adamw", lambda m: m.chain(m.clip_by_global_norm(1.0), m.adamw(1e-3))),
    ("nesterov_decayed_rmsprop", lambda m: m.chain(m.add_decayed_weights(1e-4), m.rmsprop(1e-2, momentum=0.9,
                                                                                             nesterov=True))),
    ("inject_adam", lambda m: m.inject_hyperparams(m.adam)(learning_rate=0.1)),
]


@pytest.mark.parametrize("make", [m for _, m in OPTIMIZERS], ids=[n for n, _ in OPTIMIZERS])
def test_map_params_matches_optax(make):
  params = {"w": jnp.arange(3.0), "b": jnp.ones(2)}
  specs = {"w": "W", "b": "B"}
  ours_tx, ref_tx = make(jn), make(optax)
  ours_state, ref_state = ours_tx.init(params), ref_tx.init(params)
  for transform_non_params in (None, lambda _: "other"):
    ours = jn.tree.map_params(ours_tx, lambda _, s: s, ours_state, specs, transform_non_params=transform_non_params,
                              is_leaf=lambda x: isinstance(x, str) or x is None)
    ref = optax.tree.map_params(ref_tx, lambda _, s: s, ref_state, specs, transform_non_params=transform_non_params,
                                is_leaf=lambda x: isinstance(x, str) or x is None)
    assert jax.tree.leaves(ours) == jax.tree.leaves(ref)
    # optax's function on our transform, and ours on optax's, agree with both.
    cross = optax.tree.map_params(ours_tx, lambda _, s: s, ours_state, specs,
                                  transform_non_params=transform_non_params)
    assert jax.tree.leaves(cross) == jax.tree.leaves(ours)
    assert jax.tree.leaves(jn.tree.map_params(ref_tx, lambda _, s: s, ref_state, specs,
                                              transform_non_params=transform_non_params)) == jax.tree.leaves(ref)
  doubled = jn.tree.map_params(ours_tx.init, lambda x: 2 * x, ours_state)  # an init function works too
  ref_doubled = optax.tree.map_params(ref_tx.init, lambda x: 2 * x, ref_state)
  chex_leaves = zip(jax.tree.leaves(doubled), jax.tree.leaves(ref_doubled))
  for o, r in chex_leaves:
    np.testing.assert_array_equal(np.asarray(o), np.asarray(r))


# --- the namespace ------------------------------------------------------------------------


def test_every_optax_tree_name_is_in_jaxopt_notes_tree_with_its_signature():
  assert OPTAX_TREE_NAMES, "optax.tree lists no names"
  assert set(OPTAX_TREE_NAMES) <= set(tree_lib.__all__)
  for name in OPTAX_TREE_NAMES:
    def shape(fn):
      return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]

    assert shape(getattr(jn.tree, name)) == shape(getattr(optax.tree, name)), name
    assert getattr(jn.tree, name).__doc__, name


def test_old_tree_names_are_kept():
  missing = [n for n in OLD_TREE_NAMES if not hasattr(jn.tree, n)]
  assert missing == []
  assert jn.tree is tree_lib and jn.tree.apply_updates is jn.apply_updates
  assert jn.tree.zeros_like is jn.tree_zeros_like and jn.tree.bias_correction is jn.bias_correction
  assert jn.tree.update_moment is jn.tree_update_moment and jn.tree.cast is jn.tree_cast


def test_tree_module_code_calls_no_shadowed_builtin():
  """core/tree.py binds sum/max/min/set to the tree functions, so its own code must not call the builtins."""
  source = pathlib.Path(tree_lib.__file__).read_text()
  shadowed = {"sum", "max", "min", "set"}
  calls = [
      (node.lineno, node.id)
      for fn in ast.walk(ast.parse(source)) if isinstance(fn, (ast.FunctionDef, ast.Lambda))
      for node in ast.walk(fn) if isinstance(node, ast.Name) and node.id in shadowed
  ]
  assert calls == []
  assert jn.tree.sum is not sum and jn.tree.max({"a": jnp.array([1.0, 4.0])}) == 4.0


# --- bad arguments name the argument -------------------------------------------------------


@pytest.mark.parametrize("call, error, named", [
    (lambda: jn.tree.norm({"a": jnp.ones(2)}, ord=3), ValueError, "`ord`"),
    (lambda: jn.tree.norm({"a": jnp.ones(2)}, ord="fro"), ValueError, "`ord`"),
    (lambda: jn.tree.dtype({"a": jnp.ones(2)}, "widest"), ValueError, "`mixed_dtype_handler`"),
    (lambda: jn.tree.map_params(3, lambda x: x, {}), TypeError, "`initable`"),
    (lambda: jn.tree.map_params(jn.sgd(0.1), "f", {}), TypeError, "`f`"),
    (lambda: jn.tree.random_like(jax.random.key(0), {"a": jnp.ones(2)}, sampler=2.0), TypeError, "`sampler`"),
])
def test_bad_arguments_name_the_argument(call, error, named):
  with pytest.raises(error, match=named):
    call()


def test_mismatched_trees_raise_like_optax():
  a, b = {"x": jnp.ones(2)}, {"y": jnp.ones(2)}
  for name in ("add", "sub", "vdot", "allclose"):
    with pytest.raises(ValueError):
      getattr(optax.tree, name)(a, b)
    with pytest.raises(ValueError):
      getattr(jn.tree, name)(a, b)
  with pytest.raises(ValueError, match=r"`state` does not have the pytree structure of `moment`"):
    jn.tree.cast_like(a, b)
