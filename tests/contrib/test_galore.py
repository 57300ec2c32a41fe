"""galore and scale_by_galore against optax.contrib's (optax 0.2.8).

50-step trajectories bitwise equal (params every step, updates, final chain
state with the projectors and the base optimizer's low-rank moments), jitted
for every option in float32 and float64 and op by op for a few: the
defaults, rank, update_proj_gap, scale, both projection sides (tall, wide
and square leaves), dimension numbers for 3-D leaves and a conv kernel
(a tree, a single spec, a function), decay with and without a mask (AdamW on
the leaves that are not projected), schedules and other base optimizers
(ours against optax's). The SVD is the same jax op on both sides, so the
projectors agree bitwise as well. Then optax's own tests (_galore_test.py)
run on ours: state shapes per side, rank clipping, projector orthonormality
and refresh cadence, convergence, bfloat16 with mu_dtype, dimension
numbers. Last, bad arguments and specs naming themselves.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

import jaxopt_notes as jn
from jaxopt_notes.contrib import _galore as ours
from tests import _trajectory as tj
from tests.contrib import _common as cm


def _core(lib):
  """The library's own base optimizers: optax's beside optax.contrib, ours beside ours."""
  return optax if lib is optax.contrib else jn


def _params(dtype, seed=0):
  # No None leaf: optax's galore fails on one (see test_none_leaves_are_skipped).
  rng = np.random.default_rng(seed)
  arr = lambda *s: jnp.asarray(rng.normal(size=s), dtype)
  return {
      "tall": arr(6, 4), "wide": arr(3, 5), "square": arr(4, 4), "vec": arr(3), "scalar": arr(),
      "conv": arr(3, 3, 2, 4), "attn": arr(4, 2, 3),
  }


def _dims_tree(lib):
  d = lib.GaLoreDimensionNumbers
  return {
      "tall": d(), "wide": d(1, 0), "square": None, "vec": None, "scalar": None,
      "conv": d((0, 1, 2), 3), "attn": d((2, 0), -2),
  }


def _last_axis_out(lib):
  """A dims function: every leaf of rank >= 2 is (all leading axes) x (last axis)."""
  d = lib.GaLoreDimensionNumbers
  return lambda params: jax.tree.map(lambda p: d(tuple(range(p.ndim - 1)), p.ndim - 1) if p.ndim >= 2 else None, params)


def _decay_mask(params):
  return jax.tree.map(lambda p: p.ndim != 2, params)


_CASES = {
    "defaults": lambda lib: lib.galore(0.05),
    "rank2-gap7": lambda lib: lib.galore(0.05, rank=2, update_proj_gap=7),
    "rank3-gap1-scale": lambda lib: lib.galore(0.05, rank=3, update_proj_gap=1, scale=0.25),
    "adamw-on-the-rest": lambda lib: lib.galore(0.05, rank=2, update_proj_gap=5, weight_decay=0.1),
    "schedule": lambda lib: lib.galore(tj.learning_rate("optax_schedule", 0.1), rank=2, update_proj_gap=4),
    "base-adam-options": lambda lib: lib.galore(
        0.05, rank=2, update_proj_gap=6, base_optimizer=_core(lib).scale_by_adam(b1=0.8, b2=0.99, eps=1e-6)
    ),
    "base-sgd-momentum": lambda lib: lib.galore(
        1.0, rank=2, update_proj_gap=3, base_optimizer=_core(lib).sgd(0.05, momentum=0.9)
    ),
    "base-lion": lambda lib: lib.galore(0.01, rank=1, update_proj_gap=5, base_optimizer=_core(lib).scale_by_lion()),
    "dims-tree-conv": lambda lib: lib.galore(0.05, rank=2, update_proj_gap=3, weight_dimension_numbers=_dims_tree(lib)),
    "dims-function": lambda lib: lib.galore(
        0.05, rank=3, update_proj_gap=4, weight_dimension_numbers=_last_axis_out(lib)
    ),
    # Also the decay mask (the other decay cases decay every leaf).
    "positional": lambda lib: lib.galore(
        tj.learning_rate("lambda", 0.05), 2, 3, 0.5, None, 0.01, _decay_mask, _dims_tree(lib)
    ),
    "scale-by-galore": lambda lib: lib.scale_by_galore(2, 4, 0.1, None, _dims_tree(lib)),
}


def _compare(variant, case, dtype, params_fn=_params, steps=cm.STEPS):
  with tj.precision(dtype):
    params = params_fn(dtype)
    mine, ref = tj.run_trajectories(
        variant, [case(ours), case(optax.contrib)], params, steps,
        problem=tj.make_problem(params, 1, steps),
    )
    tj.assert_trajectories_close(mine, ref, dtype, initial_params=params, **cm.BITWISE)
  return mine


class TestMatchesOptax(tj.VariantsTest):

  @chex.variants(with_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("case", sorted(_CASES))
  def test_trajectory(self, case, dtype):
    run = _compare(self.variant, _CASES[case], dtype)
    galore_state = run.state if case == "scale-by-galore" else run.state[0]
    assert isinstance(galore_state, ours.GaLoreState)
    assert int(galore_state.count) == cm.STEPS

  @chex.variants(without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_trajectory_op_by_op(self, dtype):
    """Fewer leaves and steps: op by op, each step's ``lax.cond`` (around the
    SVD) is compiled anew, ~50 ms a leaf; 12 steps still refresh the
    projectors four times."""
    keep = ("tall", "wide", "conv", "vec")
    params_fn = lambda dt: {k: _params(dt)[k] for k in keep}
    case = lambda lib: lib.galore(0.05, rank=2, update_proj_gap=3, weight_decay=0.1,
                                  weight_dimension_numbers={k: _dims_tree(lib)[k] for k in keep})
    run = _compare(self.variant, case, dtype, params_fn, steps=12)
    assert run.state[0].projector["conv"].shape == (18, 2)

  @chex.variants(with_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_single_spec_for_every_leaf(self, dtype):
    """One spec for all leaves of rank >= 2 (3-D here); the vector is left as it is."""
    def params_fn(dt):
      rng = np.random.default_rng(3)
      return {"a": jnp.asarray(rng.normal(size=(4, 2, 3)), dt), "b": jnp.asarray(rng.normal(size=(2, 3, 5)), dt),
              "v": jnp.asarray(rng.normal(size=3), dt)}

    case = lambda lib: lib.galore(0.05, rank=2, update_proj_gap=3,
                                  weight_dimension_numbers=lib.GaLoreDimensionNumbers(0, (1, 2)))
    run = _compare(self.variant, case, dtype, params_fn)
    assert run.state[0].projector["a"].shape == (6, 2)  # (4, 6) is wide: right-sided
    assert run.state[0].projector["b"].shape == (15, 2)


@pytest.mark.parametrize("dtype", tj.DTYPES)
@pytest.mark.parametrize("case", ["defaults", "dims-tree-conv", "base-sgd-momentum"])
def test_init_state_like_optax(case, dtype):
  with tj.precision(dtype):
    params = _params(dtype)
    tj.assert_states_close(_CASES[case](ours).init(params), _CASES[case](optax.contrib).init(params), **cm.BITWISE)


# --- optax's _galore_test.py, on ours ---------------------------------------


@pytest.mark.parametrize("shape, left", [((32, 64), False), ((64, 32), True), ((64, 64), True)])
def test_projection_side_sets_the_state_shapes(shape, left):
  state = ours.galore(0.1, rank=8, update_proj_gap=10).init(jnp.zeros(shape))[0]
  m, n = shape
  assert state.projector.shape == ((m, 8) if left else (n, 8))
  moments = (8, n) if left else (m, 8)
  assert state.base_optimizer_state.mu.shape == moments
  assert state.base_optimizer_state.nu.shape == moments


def test_rank_is_clipped_to_the_smaller_side():
  state = ours.galore(0.1, rank=999).init(jnp.zeros((10, 3)))[0]
  assert state.projector.shape == (10, 3)
  assert state.base_optimizer_state.mu.shape == (3, 3)


def test_moments_are_low_rank():
  state = ours.galore(0.1, rank=8).init(jnp.zeros((256, 256)))[0]
  assert state.base_optimizer_state.mu.size == state.base_optimizer_state.nu.size == 8 * 256


def test_projector_is_orthonormal_after_an_update():
  params = {"w": jax.random.normal(jax.random.key(0), (16, 32))}
  tx = ours.galore(0.1, rank=4, update_proj_gap=1)
  _, state = tx.update({"w": jax.random.normal(jax.random.key(1), (16, 32))}, tx.init(params), params)
  p = state[0].projector["w"]
  # float32 SVD: measured |P^T P - I| ~ 3e-7.
  np.testing.assert_allclose(p.T @ p, np.eye(4), atol=1e-5)


@pytest.mark.parametrize("gap, refreshed", [(1000, False), (1, True)])
def test_projector_refresh_follows_the_gap(gap, refreshed):
  params = jnp.ones((32, 64))
  tx = ours.galore(0.01, rank=8, update_proj_gap=gap)
  g0 = jnp.arange(params.size, dtype=jnp.float32).reshape(params.shape)
  _, s1 = tx.update(g0, tx.init(params), params)
  _, s2 = tx.update(jnp.flip(g0, axis=0), s1, params)
  assert bool(jnp.array_equal(s1[0].projector, s2[0].projector)) is not refreshed


def _descend(tx, params, steps):
  step = jax.jit(lambda p, s: (lambda u, s: (jn.apply_updates(p, u), s))(*tx.update(p, s, p)))
  state = tx.init(params)
  for _ in range(steps):
    params, state = step(params, state)
  return params


def _energy(tree):
  return sum(float(jnp.sum(jnp.square(x.astype(jnp.float32)))) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("params, kwargs", [
    (jnp.ones((64, 64)), dict(rank=8, update_proj_gap=1)),
    ({"W1": jnp.ones((32, 64)), "W2": jnp.ones((64, 16)), "b": jnp.ones(16)}, dict(rank=8, update_proj_gap=2)),
    ({"attn": jnp.ones((64, 4, 16))},
     dict(rank=8, update_proj_gap=1, weight_dimension_numbers={"attn": ours.GaLoreDimensionNumbers(0, (1, 2))})),
])
def test_descends_on_a_quadratic(params, kwargs):
  assert _energy(_descend(ours.galore(0.05, **kwargs), params, 10)) < _energy(params)


def test_bfloat16_with_mu_dtype():
  params = {"W": jnp.ones((16, 32), jnp.bfloat16), "b": jnp.ones(32, jnp.bfloat16),
            "conv": jnp.ones((3, 3, 8), jnp.bfloat16)}
  txs = [lib.galore(0.01, rank=4, update_proj_gap=5, base_optimizer=_core(lib).scale_by_adam(mu_dtype=jnp.float32))
         for lib in (ours, optax.contrib)]
  state = txs[0].init(params)
  assert state[0].base_optimizer_state.mu["W"].dtype == jnp.float32
  assert state[0].base_optimizer_state.nu["W"].dtype == jnp.bfloat16
  grads = jax.tree.map(lambda p: p * 0.5, params)
  mine, ref = (jax.jit(tx.update)(grads, tx.init(params), params) for tx in txs)
  chex.assert_trees_all_equal_shapes(mine[0], params)
  # Projected leaves come back in the gradient's dtype; the others keep the
  # base optimizer's (float32 here, as in optax).
  assert mine[0]["W"].dtype == jnp.bfloat16
  tj.assert_states_close(mine, ref, **cm.BITWISE)


@pytest.mark.parametrize("shape, dims, projector, moments", [
    ((64, 4, 16), ours.GaLoreDimensionNumbers(0, (1, 2)), (64, 16), (16, 64)),  # (64, 64): left
    ((32, 8, 64), ours.GaLoreDimensionNumbers(0, (1, 2)), (512, 16), (32, 16)),  # (32, 512): right
    ((3, 3, 8, 32), ours.GaLoreDimensionNumbers((0, 1, 2), 3), (72, 16), (16, 32)),  # HWIO conv kernel
])
def test_dimension_numbers_shape_the_state(shape, dims, projector, moments):
  params = {"w": jnp.ones(shape), "b": jnp.ones(shape[-1])}
  tx = ours.galore(0.01, rank=16, weight_dimension_numbers={"w": dims, "b": None})
  state = tx.init(params)
  assert state[0].projector["w"].shape == projector
  assert state[0].base_optimizer_state.mu["w"].shape == moments
  assert state[0].base_optimizer_state.mu["b"].shape == shape[-1:]
  updates, _ = tx.update(jax.tree.map(lambda p: 0.1 * p, params), state, params)
  chex.assert_trees_all_equal_shapes(updates, params)


# --- ours ---------------------------------------------------------------------


def test_none_leaves_are_skipped():
  """Deliberate difference: optax's init fails on a None leaf; ours leaves it out."""
  plain = {k: v for k, v in _params("float32").items() if k in ("tall", "vec")}
  with_none = {**plain, "frozen": None}
  tx = ours.galore(0.05, rank=2, update_proj_gap=3)
  state = tx.init(with_none)
  assert state[0].projector["frozen"] is None
  with pytest.raises(AttributeError):
    optax.contrib.galore(0.05).init(with_none)
  got, _ = jax.jit(tx.update)(jax.tree.map(lambda p: 0.5 * p, with_none), state, with_none)
  want, _ = jax.jit(tx.update)(jax.tree.map(lambda p: 0.5 * p, plain), tx.init(plain), plain)
  assert got["frozen"] is None
  chex.assert_trees_all_equal({k: v for k, v in got.items() if k != "frozen"}, want)


def test_empty_tree_and_map_params():
  tx = ours.galore(0.1)
  assert ours.galore(0.1).init({})[0].projector == {}
  params = {"w": jnp.ones((4, 3)), "b": jnp.ones(3)}
  state = jn.tree.map_params(tx.init, lambda v: v, tx.init(params))
  tj.assert_states_close(state, tx.init(params), **cm.BITWISE)


def test_update_needs_params_but_scale_by_galore_does_not():
  # galore's add_decayed_weights needs them even at rate 0, as optax's.
  cm.assert_update_needs_params(ours.galore(0.1))
  params = {"w": jnp.ones((4, 3))}
  tx = ours.scale_by_galore(rank=2)
  updates, _ = tx.update(params, tx.init(params))
  assert cm.finite(updates)


NAN = float("nan")


@pytest.mark.parametrize("factory, kwargs, error, name", [
    (ours.galore, dict(learning_rate=None), TypeError, "learning_rate"),
    (ours.galore, dict(learning_rate=NAN), ValueError, "learning_rate"),
    (ours.galore, dict(learning_rate=0.1, rank=0), ValueError, "rank"),
    (ours.galore, dict(learning_rate=0.1, rank=2.0), TypeError, "rank"),
    (ours.galore, dict(learning_rate=0.1, update_proj_gap=0), ValueError, "update_proj_gap"),
    (ours.galore, dict(learning_rate=0.1, scale=NAN), ValueError, "scale"),
    (ours.galore, dict(learning_rate=0.1, weight_decay=NAN), ValueError, "weight_decay"),
    (ours.galore, dict(learning_rate=0.1, base_optimizer=3), TypeError, "base_optimizer"),
    (ours.scale_by_galore, dict(rank=-1), ValueError, "rank"),
    (ours.scale_by_galore, dict(update_proj_gap="5"), TypeError, "update_proj_gap"),
])
def test_bad_arguments_name_themselves(factory, kwargs, error, name):
  cm.assert_raises_naming(factory, kwargs, error, name)


@pytest.mark.parametrize("shape, dims", [
    ((5,), ours.GaLoreDimensionNumbers()),  # a vector is no matrix
    ((4, 3), ours.GaLoreDimensionNumbers(0, -2)),  # both groups name axis 0
    ((4, 3, 2), ours.GaLoreDimensionNumbers(0, 1)),  # axis 2 in neither group
])
def test_bad_dimension_numbers_name_themselves(shape, dims):
  tx = ours.galore(0.1, weight_dimension_numbers={"w": dims})
  cm.assert_raises_naming(tx.init, dict(params={"w": jnp.ones(shape)}), ValueError, "weight_dimension_numbers")


def test_traced_hyperparameters_pass_the_checks():
  # rank and update_proj_gap shape the state and pick the code: static (as optax needs).
  hp = dict(learning_rate=0.1, scale=0.5, weight_decay=0.01, rank=2, update_proj_gap=3)
  injected = optax.inject_hyperparams(ours.galore, static_args=("rank", "update_proj_gap"))(**hp)
  plain = ours.galore(**hp)
  params = {k: v for k, v in _params("float32").items() if k in ("wide", "vec")}
  grads = jax.tree.map(lambda p: 0.5 * p - 0.1, params)
  got, _ = jax.jit(injected.update)(grads, injected.init(params), params)
  want, _ = jax.jit(plain.update)(grads, plain.init(params), params)
  chex.assert_trees_all_close(got, want, rtol=1e-6)
