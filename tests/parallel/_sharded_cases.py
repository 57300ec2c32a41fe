"""Optimizer state on 8 simulated CPU devices: placement, communication, ZeRO-1.

Run by tests/test_sharding.py in a subprocess, because the device count is
fixed when JAX starts its CPU backend and the main pytest process already
started it with one device. It can also be run directly:
``python -m pytest tests/_sharded_cases.py``.

References are computed in the tests: optax's init, optax's steps on one
device, and our own run without sharding.
"""

import os

# Before JAX creates its CPU backend (importing jax does not create it).
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (
      os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
  )

import contextlib  # pylint: disable=g-import-not-at-top,wrong-import-position
import re
import time

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxopt_notes as jn
from jaxopt_notes.parallel import sharding as shd
from tests import _every

AUTO, EXPLICIT = AxisType.Auto, AxisType.Explicit

# Params over a ("data", "model") = (2, 4) mesh; every shape differs, so a
# state leaf's expected sharding is found from its shape.
LAYOUT = {
    "w": ((16, 32), P("data", "model")),
    "emb": ((12, 8), P("model", "data")),
    "bias": ((32,), P("model")),
    "blocks": [((4, 8, 4), P(None, "data", "model"))],
    "gain": ((6,), P()),
    "scale": ((), P()),
}
_is_entry = lambda x: isinstance(x, tuple) and len(x) == 2 and isinstance(x[1], P)
SPEC_BY_SHAPE = {shape: spec for shape, spec in jax.tree.leaves(LAYOUT, is_leaf=_is_entry)}

OPTIMIZERS = {
    "sgd": (lambda m: m.sgd(0.1)),
    "sgd_momentum": (lambda m: m.sgd(0.1, momentum=0.9)),
    "adagrad": (lambda m: m.adagrad(0.1)),
    "adadelta": (lambda m: m.adadelta(0.5)),
    "rmsprop": (lambda m: m.rmsprop(1e-2)),
    "rmsprop_centered_momentum": (lambda m: m.rmsprop(1e-2, centered=True, momentum=0.9)),
    "adam": (lambda m: m.adam(1e-2)),
    "adamw": (lambda m: m.adamw(1e-2, weight_decay=1e-2)),
    "nadam": (lambda m: m.nadam(1e-2)),
    "nadamw": (lambda m: m.nadamw(1e-2, weight_decay=1e-2)),
    "radam": (lambda m: m.radam(1e-2)),
    "amsgrad": (lambda m: m.amsgrad(1e-2)),
    "adamax": (lambda m: m.adamax(1e-2)),
    "lookahead": (lambda m: m.lookahead(m.adam(1e-2), 3, 0.5)),
    "inject_hyperparams": (lambda m: m.inject_hyperparams(m.adam)(learning_rate=1e-2)),
    "multi_steps": (lambda m: m.MultiSteps(m.adam(1e-2), 3).gradient_transformation()),
    "apply_if_finite": (lambda m: m.apply_if_finite(m.adam(1e-2), 2)),
}
# Needs a global "all gradients finite?" reduction, so it is not elementwise.
NOT_ELEMENTWISE = {"apply_if_finite"}
COLLECTIVES = ("all-reduce", "all-gather", "all-to-all", "collective-permute", "reduce-scatter")


def _mesh(axis_type, shape=(2, 4), names=("data", "model")):
  return jax.make_mesh(shape, names, axis_types=(axis_type,) * len(names))


def _host_params(seed=0):
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda e: rng.standard_normal(e[0]).astype(np.float32), LAYOUT, is_leaf=_is_entry
  )


def _place(tree, mesh):
  specs = jax.tree.map(lambda e: e[1], LAYOUT, is_leaf=_is_entry)
  return jax.tree.map(lambda x, s: jax.device_put(x, NamedSharding(mesh, s)), tree, specs)


def _wrap(name, params, lib):
  """Lookahead takes (fast, slow) params; the others the params themselves."""
  if name != "lookahead":
    return params
  cls = jn.LookaheadParams if lib is jn else optax.LookaheadParams
  # Distinct buffers: the steps donate their params, and donating one
  # buffer twice is an error (a segfault on a sharded CPU step, jax 0.10.2).
  return cls(fast=params, slow=jax.tree.map(jnp.copy, params))


def _array_leaves(tree):
  return [x for x in jax.tree.leaves(tree) if np.ndim(x) > 0]


def _check_placed_like_params(state, mesh):
  """Every non-scalar state leaf has the sharding of the param of its shape."""
  leaves = _array_leaves(state)
  for leaf in leaves:
    expected = NamedSharding(mesh, SPEC_BY_SHAPE[leaf.shape])
    assert leaf.sharding.is_equivalent_to(expected, leaf.ndim), (
        f"state leaf {leaf.shape} has {leaf.sharding}, its param {expected}"
    )
  return len(leaves)


def _collectives(hlo: str) -> dict[str, list[str]]:
  """Result types of every collective of a compiled module, by kind."""
  found = {kind: [] for kind in COLLECTIVES}
  pattern = re.compile(r"=\s*(\S.*?)\s+(" + "|".join(COLLECTIVES) + r")(?:-start)?\(")
  for line in hlo.splitlines():
    match = pattern.search(line)
    if match:
      found[match.group(2)].append(match.group(1))
  return found


def _is_scalar_type(result_type: str) -> bool:
  """``f32[]`` or a tuple of scalars, ``(f32[], pred[])``."""
  parts = result_type.strip("()").split(", ")
  return all(re.fullmatch(r"\w+\[\]", p) for p in parts)


def _step(tx, apply=jn.apply_updates):
  def step(params, state, grads):
    updates, state = tx.update(grads, state, params)
    return apply(params, updates), state

  return jax.jit(step, donate_argnums=(0, 1))


class TestPlacement:
  """init gives every state leaf the sharding of its param."""

  def test_eight_simulated_devices(self):
    """The subprocess really runs on 8 CPU devices."""
    assert jax.device_count() == 8

  @pytest.mark.parametrize("axis_type", [AUTO, EXPLICIT], ids=["auto", "explicit"])
  @pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
  @pytest.mark.parametrize("name", sorted(OPTIMIZERS))
  def test_init_state_follows_params(self, name, jit, axis_type):
    """Each non-scalar state leaf is split like its param; values are optax's."""
    mesh = _mesh(axis_type)
    host = _host_params()
    tx = OPTIMIZERS[name](jn)
    params = _wrap(name, _place(host, mesh), jn)
    with jax.set_mesh(mesh):
      state = jax.jit(tx.init)(params) if jit else tx.init(params)
    n_placed = _check_placed_like_params(state, mesh)
    reference = OPTIMIZERS[name](optax).init(_wrap(name, host, optax))
    assert n_placed == len(_array_leaves(reference))
    ours, theirs = jax.tree.leaves(state), jax.tree.leaves(reference)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
      chex.assert_trees_all_equal(np.asarray(a), np.asarray(b))

  def test_optax_jit_init_loses_sharding_on_auto_mesh(self):
    """Contrast: optax's jitted init puts all moments on one device; ours splits them."""
    mesh = _mesh(AUTO)
    params = _place(_host_params(), mesh)
    theirs = jax.jit(optax.adam(1e-2).init)(params)
    ours = jax.jit(jn.adam(1e-2).init)(params)
    for leaf in _array_leaves(theirs):
      assert len(leaf.sharding.device_set) == 1
      assert leaf.addressable_shards[0].data.shape == leaf.shape
    _check_placed_like_params(ours, mesh)
    held_theirs = shd.bytes_per_device(theirs)
    held_ours = shd.bytes_per_device(ours)
    total = sum(x.nbytes for x in jax.tree.leaves(theirs))
    # optax: one device holds the whole state, the seven others nothing.
    assert sorted(held_theirs.values()) == [0] * 7 + [total]
    # ours: the 2D-split moments are spread, so every device holds far less.
    assert max(held_ours.values()) < total / 3
    assert min(held_ours.values()) > 0

  def test_optax_jit_init_keeps_sharding_on_explicit_mesh(self):
    """On an explicit mesh the tracer's type carries the sharding, for optax too."""
    mesh = _mesh(EXPLICIT)
    params = _place(_host_params(), mesh)
    with jax.set_mesh(mesh):
      theirs = jax.jit(optax.adam(1e-2).init)(params)
    _check_placed_like_params(theirs, mesh)

  @pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
  def test_nan_and_inf_params_give_exact_fill_values(self, jit):
    """Placement reads no param values: NaN/Inf params still give 0 and 0.1, split alike."""
    mesh = _mesh(AUTO)
    host = _host_params()
    host["w"][0, :3] = [np.nan, np.inf, -np.inf]
    host["bias"][:] = np.nan
    params = _place(host, mesh)
    tx = jn.chain(jn.adagrad(0.1, initial_accumulator_value=0.1), jn.adam(1e-2))
    state = jax.jit(tx.init)(params) if jit else tx.init(params)
    _check_placed_like_params(state, mesh)
    expected = optax.chain(optax.adagrad(0.1, initial_accumulator_value=0.1), optax.adam(1e-2)).init(
        _host_params()
    )
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(expected)):
      chex.assert_trees_all_equal(np.asarray(a), np.asarray(b))
    # The rejected data-dependent placement, zeros_like(x) * x, breaks here.
    assert np.isnan(np.asarray(jax.jit(lambda x: jnp.zeros_like(x) * x)(params["w"]))).any()

  def test_eager_init_stays_cheap(self):
    """Eager init on 200 split leaves costs about what optax's does (min of 9 runs)."""
    mesh = _mesh(AUTO)
    sharding = NamedSharding(mesh, P("data", "model"))
    params = {f"layer{i}": jax.device_put(jnp.ones((16, 16)), sharding) for i in range(200)}
    inits = {"ours": jn.adam(1e-2).init, "optax": optax.adam(1e-2).init}
    times = {k: [] for k in inits}
    for _ in range(9):
      for key, init in inits.items():
        start = time.perf_counter()
        jax.block_until_ready(init(params))
        times[key].append(time.perf_counter() - start)
    assert min(times["ours"]) < 2.0 * min(times["optax"]) + 0.01, times

  def test_init_under_vmap_and_partially_manual_shard_map(self):
    """vmap keeps the batched params' split; a partially manual shard_map still compiles."""
    mesh = _mesh(AUTO)
    stacked = jax.device_put(jnp.ones((4, 8, 12)), NamedSharding(mesh, P("model", "data")))
    state = jax.jit(jax.vmap(jn.adam(1e-2).init))({"w": stacked})
    assert state[0].mu["w"].sharding.is_equivalent_to(stacked.sharding, 3)

    def per_data_shard(w):
      return jn.adagrad(0.1).init({"w": w})[0].sum_of_squares["w"]

    fn = jax.shard_map(
        per_data_shard, mesh=mesh, in_specs=P("data"), out_specs=P("data"), axis_names={"data"}
    )
    w = jax.device_put(jnp.ones((16, 32)), NamedSharding(mesh, P("data", "model")))
    out = jax.jit(fn)(w)
    np.testing.assert_array_equal(np.asarray(out), np.full((16, 32), 0.1, np.float32))


class TestCommunication:
  """A step on 2D-split params, grads and state talks only where it must."""

  @pytest.mark.parametrize("name", sorted(OPTIMIZERS))
  def test_step_needs_no_communication_and_matches_optax(self, name):
    """No all-gather/all-to-all/permute; elementwise ones no collective at all; optax's numbers."""
    mesh = _mesh(AUTO)
    host = _host_params()
    rng = np.random.default_rng(1)
    grads = [jax.tree.map(lambda x: rng.standard_normal(x.shape).astype(np.float32), host)
             for _ in range(4)]
    tx = OPTIMIZERS[name](jn)
    params = _wrap(name, _place(host, mesh), jn)
    state = jax.jit(tx.init)(params)
    step = _step(tx)
    compiled = step.lower(params, state, _place(grads[0], mesh)).compile()
    hlo = compiled.as_text()
    found = _collectives(hlo)
    assert not (found["all-gather"] or found["all-to-all"] or found["collective-permute"]), found
    assert not found["reduce-scatter"], found
    if name in NOT_ELEMENTWISE:
      assert found["all-reduce"] and all(map(_is_scalar_type, found["all-reduce"])), found
    else:
      assert not found["all-reduce"], found
    # Donation: XLA writes the new params and state into the old buffers.
    assert "input_output_alias={ {0}:" in hlo
    inputs = jax.tree.leaves((params, state))
    outputs = jax.tree.leaves(compiled.output_shardings)
    assert len(outputs) == len(inputs)
    for out, arg in zip(outputs, inputs):
      if arg.ndim:
        assert out.is_equivalent_to(arg.sharding, arg.ndim), (arg.shape, out, arg.sharding)

    ref_tx = OPTIMIZERS[name](optax)
    ref_params = _wrap(name, jax.tree.map(jnp.asarray, host), optax)
    ref_state = ref_tx.init(ref_params)
    ref_step = _step(ref_tx, optax.apply_updates)
    for g in grads:
      params, state = step(params, state, _place(g, mesh))
      ref_params, ref_state = ref_step(ref_params, ref_state, jax.tree.map(jnp.asarray, g))
    _check_placed_like_params(state, mesh)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-6, atol=1e-7)

  @pytest.mark.parametrize("mesh_shape", [(8,), (2, 4)], ids=["1d", "2d"])
  def test_clip_by_global_norm_all_reduces_one_scalar_per_mesh_axis(self, mesh_shape):
    """The global norm costs one all-reduce of scalars per split mesh axis, as optax's."""
    names = ("data", "model")[: len(mesh_shape)]
    mesh = _mesh(AUTO, mesh_shape, names)
    split = NamedSharding(mesh, P(*names))
    host = {"w": np.linspace(-3, 3, 16 * 32, dtype=np.float32).reshape(16, 32),
            "v": np.linspace(1, 2, 8 * 8, dtype=np.float32).reshape(8, 8)}
    grads = jax.tree.map(lambda x: 10 * x[::-1], host)
    counts = {}
    results = {}
    for lib, apply in ((jn, jn.apply_updates), (optax, optax.apply_updates)):
      tx = lib.chain(lib.clip_by_global_norm(1.0), lib.adam(1e-2))
      params = jax.device_put(host, split)
      state = jax.jit(tx.init)(params)
      step = _step(tx, apply)
      g = jax.device_put(grads, split)
      found = _collectives(step.lower(params, state, g).compile().as_text())
      assert all(not found[k] for k in COLLECTIVES if k != "all-reduce"), found
      assert all(map(_is_scalar_type, found["all-reduce"])), found
      counts[lib.__name__] = len(found["all-reduce"])
      results[lib.__name__] = step(params, state, g)[0]
    assert counts["jaxopt_notes"] == len(mesh_shape) == counts["optax"], counts
    unsharded = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2))
    u, _ = unsharded.update(grads, unsharded.init(host), host)
    chex.assert_trees_all_close(results["jaxopt_notes"], optax.apply_updates(host, u), rtol=1e-6)


def _zero1_params(mesh):
  rng = np.random.default_rng(2)
  shapes = {"w": (16, 32), "v": (6, 8), "k": (2, 8, 5), "b": (3,), "s": ()}
  host = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
  return host, jax.device_put(host, NamedSharding(mesh, P()))


def _mse(params, batch):
  x, y = batch
  h = jnp.tanh(x @ params["w"]).reshape(x.shape[0], 4, 8) @ params["v"].T
  pred = jnp.sum(h, axis=(1, 2)) * params["b"][0] + params["s"]
  return jnp.mean((pred - y) ** 2) + 1e-3 * jnp.sum(params["k"] ** 2)


class TestZero1:
  """shard_state: moments split over the data axis, same numbers."""

  def test_zero1_spec_rules(self):
    """First divisible dimension gets the axis; the rest stay replicated."""
    mesh = _mesh(AUTO, (4, 2))
    assert shd.zero1_spec((16, 32), mesh) == P("data")
    assert shd.zero1_spec((6, 8), mesh) == P(None, "data")
    assert shd.zero1_spec((3,), mesh) == P()
    assert shd.zero1_spec((), mesh) == P()
    assert shd.zero1_spec((2, 8), mesh, ("data", "model")) == P(None, ("data", "model"))
    with pytest.raises(ValueError, match="axis"):
      shd.zero1_spec((8,), mesh, "batch")
    with pytest.raises(TypeError, match="Mesh"):
      shd.shard_state(jn.adam(1e-2), "not a mesh")
    with pytest.raises(TypeError, match="jax.Array"):
      shd.bytes_per_device({"x": np.ones(3)})

  @pytest.mark.parametrize("axis_type", [AUTO, EXPLICIT], ids=["auto", "explicit"])
  @pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
  def test_state_split_over_data_axis_and_memory(self, jit, axis_type):
    """Each device holds 1/4 of every divisible moment; odd leaves stay whole."""
    mesh = _mesh(axis_type, (4, 2))
    _, params = _zero1_params(mesh)
    plain = jn.adamw(1e-2, weight_decay=1e-2)
    zero = shd.shard_state(plain, mesh, "data")
    with jax.set_mesh(mesh):
      init = jax.jit(zero.init) if jit else zero.init
      state = init(params)
      full = jax.jit(plain.init)(params)
    expected_bytes = 0
    for leaf in jax.tree.leaves(state):
      spec = shd.zero1_spec(leaf.shape, mesh, "data")
      assert leaf.sharding.is_equivalent_to(NamedSharding(mesh, spec), leaf.ndim), (leaf.shape, leaf.sharding)
      expected_bytes += leaf.nbytes // (1 if spec == P() else 4)
    held = shd.bytes_per_device(state)
    assert set(held.values()) == {expected_bytes}
    held_full = shd.bytes_per_device(full)
    moments = sum(x.nbytes for x in jax.tree.leaves(full) if x.shape in {(16, 32), (6, 8), (2, 8, 5)})
    assert set(held_full.values()) == {expected_bytes + moments * 3 // 4}

  @pytest.mark.parametrize("axis_type", [AUTO, EXPLICIT], ids=["auto", "explicit"])
  def test_training_matches_unsharded(self, axis_type):
    """Data-parallel steps with ZeRO-1 equal plain ones and optax on one device; params stay replicated."""
    mesh = _mesh(axis_type, (4, 2))
    host, params = _zero1_params(mesh)
    rng = np.random.default_rng(3)
    batches = [(rng.standard_normal((16, 16)).astype(np.float32),
                rng.standard_normal(16).astype(np.float32)) for _ in range(6)]
    batch_sharding = NamedSharding(mesh, P("data"))

    def run(tx, params, put, apply=jn.apply_updates, context=jax.set_mesh(mesh)):
      def step(params, state, batch):
        grads = jax.grad(_mse)(params, batch)
        updates, state = tx.update(grads, state, params)
        return apply(params, updates), state

      step = jax.jit(step, donate_argnums=(0, 1))
      with context:
        state = jax.jit(tx.init)(params)
        for batch in batches:
          params, state = step(params, state, put(batch))
      return params, state

    put = lambda b: jax.device_put(b, batch_sharding)
    copy = lambda: jax.tree.map(jnp.copy, params)
    zero_params, zero_state = run(shd.shard_state(jn.adamw(1e-2, weight_decay=1e-2), mesh), copy(), put)
    plain_params, _ = run(jn.adamw(1e-2, weight_decay=1e-2), copy(), put)
    ref_params, _ = run(optax.adamw(1e-2, weight_decay=1e-2), jax.tree.map(jnp.asarray, host),
                        lambda b: b, optax.apply_updates, contextlib.nullcontext())
    for leaf in jax.tree.leaves(zero_params):
      assert leaf.sharding.is_fully_replicated
    for leaf in jax.tree.leaves(zero_state):
      spec = shd.zero1_spec(leaf.shape, mesh, "data")
      assert leaf.sharding.is_equivalent_to(NamedSharding(mesh, spec), leaf.ndim)
    chex.assert_trees_all_close(zero_params, plain_params, rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_close(zero_params, ref_params, rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(zero_params["w"]), host["w"])

  def test_wraps_optax_and_forwards_extra_args(self):
    """optax inner transforms work; value= reaches reduce_on_plateau; numbers unchanged."""
    mesh = _mesh(AUTO, (4, 2))
    host, params = _zero1_params(mesh)
    grads = jax.tree.map(lambda x: 0.5 * x + 0.1, host)
    for inner, apply in ((optax.adam(1e-2), optax.apply_updates),
                         (jn.chain(jn.adam(1e-2), jn.reduce_on_plateau(patience=1, factor=0.5)),
                          jn.apply_updates)):
      zero = shd.shard_state(inner, mesh)
      update = jax.jit(lambda g, s, p, v, zero=zero: zero.update(g, s, p, value=v))
      z_params, z_state, r_params, r_state = params, zero.init(params), host, inner.init(host)
      for loss in (3.0, 4.0, 5.0):
        u, z_state = update(grads, z_state, z_params, loss)
        z_params = apply(z_params, u)
        u, r_state = inner.update(grads, r_state, r_params, value=loss)
        r_params = apply(r_params, u)
      chex.assert_trees_all_close(z_params, r_params, rtol=1e-6, atol=1e-7)
      split = [x for x in jax.tree.leaves(z_state) if x.shape == (16, 32)]
      assert len(split) == 2 and all(x.sharding.spec == P("data") for x in split)
    # Rising values cut the plateau's scale: value= reached the inner chain.
    assert float(z_state[1].scale) < 1.0

  @pytest.mark.parametrize("axis_type", [AUTO, EXPLICIT], ids=["auto", "explicit"])
  @pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
  def test_updates_placed_like_params_eagerly_and_under_jit(self, jit, axis_type):
    """Replicated params get replicated updates, so they stay replicated, in both modes.

    Eagerly, updates computed from the split moments used to come back split
    over "data" and drag the params into that layout after apply_updates.
    """
    mesh = _mesh(axis_type, (4, 2))
    host, params = _zero1_params(mesh)
    host_grads = jax.tree.map(lambda x: 0.5 * x + 0.1, host)
    grads = jax.device_put(host_grads, NamedSharding(mesh, P()))
    zero = shd.shard_state(jn.adam(1e-2), mesh, "data")
    reference = optax.adam(1e-2)
    r_params, r_state = host, reference.init(host)
    with jax.set_mesh(mesh):
      update = jax.jit(zero.update) if jit else zero.update
      state = zero.init(params)
      for _ in range(2):
        updates, state = update(grads, state, params)
        for leaf, p in zip(jax.tree.leaves(updates), jax.tree.leaves(params)):
          assert leaf.sharding.is_equivalent_to(p.sharding, leaf.ndim), (leaf.shape, leaf.sharding)
        params = jn.apply_updates(params, updates)
        u, r_state = reference.update(host_grads, r_state, r_params)
        r_params = optax.apply_updates(r_params, u)
    for leaf in jax.tree.leaves(params):
      assert leaf.sharding.is_fully_replicated, leaf.sharding
    for leaf in jax.tree.leaves(state):
      spec = shd.zero1_spec(leaf.shape, mesh, "data")
      assert leaf.sharding.is_equivalent_to(NamedSharding(mesh, spec), leaf.ndim)
    chex.assert_trees_all_close(params, r_params, rtol=1e-6, atol=1e-7)


class TestEveryOptimizerInit:
  """Every optimizer of tests/_every.py: a jitted ``init`` on params split over
  the mesh gives each state leaf that mirrors a param (a subtree shaped like
  the params, a leaf of its param's shape) that param's sharding."""

  @pytest.mark.parametrize("axis_type", [AUTO, EXPLICIT], ids=["auto", "explicit"])
  @pytest.mark.parametrize("name", sorted(_every.ALL))
  def test_jitted_init_is_placed_like_the_params(self, name, axis_type):
    mesh = _mesh(axis_type)
    params = _place(_host_params(), mesh)
    with jax.set_mesh(mesh):
      state = jax.jit(_every.ALL[name].build().init)(params)
    structure = jax.tree.structure(params)
    mirrors = jax.tree.leaves(state, is_leaf=lambda x: jax.tree.structure(x) == structure)
    for mirror in mirrors:
      if jax.tree.structure(mirror) != structure:
        continue
      for (path, leaf), param in zip(jax.tree_util.tree_leaves_with_path(mirror), jax.tree.leaves(params)):
        if leaf.shape == param.shape and leaf.ndim:
          assert leaf.sharding.is_equivalent_to(param.sharding, leaf.ndim), (
              f"{name}: state leaf {jax.tree_util.keystr(path)} has {leaf.sharding.spec}, "
              f"its param {param.sharding.spec}"
          )
