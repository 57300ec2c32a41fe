"""scale_by_factored_rms (Adafactor) and scale_by_sm3: 100-step trajectories
equal to optax's, on the harness's params plus a 4-D conv kernel; the state
layouts (row/column factors for the leaves that qualify, full moments for the
rest), SM3's O(sum of dims) memory and its AdaGrad bound, exactness of the
factored estimate on rank-one squares, and bad arguments."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj

# HWIO with in > out: factored over axes 2 (largest) and 3, the largest coming
# first (the harness's (2, 3) matrix has it last), so both orders are run.
CONV = (3, 3, 5, 4)


def _then_sgd(lib, inner, lr=0.02):
  return lib.chain(inner, lib.scale(-lr))


def _params(dtype, *, scalar=True):
  """The harness's params plus an HWIO conv kernel (and without the scalar, which optax's SM3 cannot take)."""
  params = tj.make_params(0, dtype)
  rng = np.random.default_rng(7)
  params["conv"] = jnp.asarray(rng.normal(size=CONV), dtype)
  if not scalar:
    params["layer"][1] = (jnp.asarray(rng.normal(size=(4,)), dtype), None)
  return params


def _compare(variant, make_ours, make_ref, dtype, *, scalar=True):
  """compare_with_optax on :func:`_params`."""
  with tj.precision(dtype):
    params = _params(dtype, scalar=scalar)
    ours, ref = tj.run_trajectories(
        variant, [make_ours(), make_ref()], params, problem=tj.make_problem(params, 1)
    )
    tj.assert_trajectories_close(ours, ref, dtype, initial_params=params)
  return ours, ref


def _cases_and_dtypes(cases, both):
  """The ``both`` cases in float32 and float64, the other cases alternating between them."""
  rest = [c for c in sorted(cases) if c not in both]
  return [(c, d) for c in both for d in tj.DTYPES] + [(c, tj.DTYPES[i % 2]) for i, c in enumerate(rest)]


def _capped_decay(step, rate):
  """Zhai et al.'s capped schedule (jit-safe): 1 - (t+1)^-rate, at most 0.9."""
  return jnp.minimum(0.9, 1.0 - (step + 1.0) ** (-rate))


# id -> lib -> transform; each changes the math. min 2 factors the (2, 3)
# matrix and the conv kernel, min 3 the kernel only, the default (128) none.
_FACTORED = {
    "default": lambda lib: lib.scale_by_factored_rms(),
    "min2": lambda lib: lib.scale_by_factored_rms(min_dim_size_to_factor=2),
    # A negative offset on a fresh state: the decay starts as if 5 steps were done.
    "min3-decay-offset": lambda lib: lib.scale_by_factored_rms(
        decay_rate=0.5, step_offset=-5, min_dim_size_to_factor=3
    ),
    "unfactored-epsilon": lambda lib: lib.scale_by_factored_rms(
        factored=False, min_dim_size_to_factor=2, epsilon=1e-3
    ),
    "min2-decay_rate_fn": lambda lib: lib.scale_by_factored_rms(
        min_dim_size_to_factor=2, decay_rate_fn=_capped_decay
    ),
}


class TestScaleByFactoredRms(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("case,dtype", _cases_and_dtypes(_FACTORED, ("default", "min2")))
  def test_matches_optax(self, case, dtype):
    make = _FACTORED[case]
    ours, _ = _compare(self.variant, lambda: _then_sgd(jn, make(jn)), lambda: _then_sgd(optax, make(optax)), dtype)
    assert int(ours.state[0].count) == tj.STEPS

  @chex.variants(with_jit=True, without_jit=True)
  def test_resumed_count_with_its_offset_restarts_the_decay(self):
    """Count 7 and step_offset 7 equal optax's, and a fresh run with offset 0 bit for bit."""

    def resumed(lib, offset, count):
      inner = lib.scale_by_factored_rms(min_dim_size_to_factor=2, step_offset=offset)
      tx = _then_sgd(lib, inner)
      bump = lambda s: (s[0]._replace(count=jnp.asarray(count, jnp.int32)), *s[1:])
      return lib.GradientTransformation(lambda p: bump(tx.init(p)), tx.update)

    ours, _ = _compare(self.variant, lambda: resumed(jn, 7, 7), lambda: resumed(optax, 7, 7), "float32")
    fresh, _ = _compare(self.variant, lambda: resumed(jn, 0, 0), lambda: resumed(optax, 0, 0), "float32")
    chex.assert_trees_all_equal(ours.history, fresh.history)
    assert int(ours.state[0].count) == 7 + tj.STEPS

  @pytest.mark.parametrize("min_size", [2, 3, 128])
  def test_state_layout(self, min_size):
    """Rows/columns for a leaf whose second largest dim reaches the minimum; full otherwise."""
    params = {"m": jnp.ones((2, 3)), "t": jnp.ones((5, 4)), "conv": jnp.ones(CONV),
              "v": jnp.ones(7), "s": jnp.ones(()), "none": None}
    state = jn.scale_by_factored_rms(min_dim_size_to_factor=min_size).init(params)
    # Factored: v_row drops the largest axis, v_col the second largest.
    factored_shapes = {"m": ((2,), (3,)), "t": ((4,), (5,)), "conv": ((3, 3, 4), (3, 3, 5))}  # conv: (3, 3, 5, 4)
    second_largest = {"m": 2, "t": 4, "conv": 4}
    for name, p in params.items():
      if p is None:
        assert state.v[name] is None
        continue
      row, col, full = (x[name].shape for x in (state.v_row, state.v_col, state.v))
      if second_largest.get(name, 0) >= min_size:
        assert (row, col, full) == (*factored_shapes[name], (1,)), name
      else:
        assert (row, col, full) == ((1,), (1,), p.shape), name
    ref = optax.scale_by_factored_rms(min_dim_size_to_factor=min_size).init(params)
    tj.assert_states_close(state, ref)

  def test_factored_memory_is_the_sum_of_dims(self):
    """A (4096, 8192) leaf stores 12288 numbers, not 33.5 million (shapes only, nothing allocated)."""
    params = {"w": jax.ShapeDtypeStruct((4096, 8192), jnp.float32)}
    state = jax.eval_shape(jn.scale_by_factored_rms().init, params)
    sizes = [int(np.prod(x.shape)) for x in jax.tree.leaves((state.v_row, state.v_col, state.v))]
    assert sum(sizes) == 4096 + 8192 + 1

  @pytest.mark.parametrize("shape", [(4, 6), (6, 4), CONV])
  def test_factored_estimate_is_exact_for_rank_one_squares(self, shape):
    """First step (decay 0): for g^2 an outer product, the rebuilt moment is g^2, so u = sign(g)."""
    rng = np.random.default_rng(3)
    factors = [rng.uniform(0.5, 2.0, n) * rng.choice([-1, 1], n) for n in shape]
    g = jnp.asarray(np.einsum(",".join("abcd"[: len(shape)]) + "->" + "abcd"[: len(shape)], *factors),
                    jnp.float32)
    tx = jn.scale_by_factored_rms(min_dim_size_to_factor=2)
    params = {"w": jnp.ones(shape)}
    state = tx.init(params)
    assert state.v["w"].shape == (1,)  # factored
    updates, _ = tx.update({"w": g}, state, params)
    np.testing.assert_allclose(updates["w"], np.sign(g), rtol=1e-5)

  @pytest.mark.parametrize("factored", [True, False])
  def test_bfloat16_params_keep_their_dtype(self, factored):
    """Updates and moments stay bfloat16 (optax's factorized_test property)."""
    shape = (4, 6) if factored else (3,)
    params = {"w": jnp.ones(shape, jnp.bfloat16)}
    tx = jn.scale_by_factored_rms(min_dim_size_to_factor=2)
    state = jax.jit(tx.init)(params)
    updates, state = jax.jit(tx.update)({"w": 2 * params["w"]}, state, params)
    assert updates["w"].dtype == jnp.bfloat16
    assert {x.dtype for x in jax.tree.leaves((state.v_row, state.v_col, state.v))} == {jnp.dtype(jnp.bfloat16)}

  def test_inside_multi_steps_first_updates_are_zero(self):
    """optax's factorized_test: MultiSteps accumulates, so the first 3 of 4 updates are 0."""
    params = {"w": jnp.ones((4, 6)), "b": jnp.ones(3)}
    tx = jn.MultiSteps(jn.scale_by_factored_rms(min_dim_size_to_factor=2), every_k_schedule=4)
    state = tx.init(params)
    grads = jax.tree.map(lambda p: 2 * p, params)
    updates, state = jax.jit(tx.update)(grads, state, params)
    chex.assert_trees_all_equal(updates, jax.tree.map(jnp.zeros_like, params))

  def test_needs_params(self):
    tx = jn.scale_by_factored_rms()
    g = {"w": jnp.ones(2)}
    with pytest.raises(ValueError, match="params"):
      tx.update(g, tx.init(g), None)


# id -> lib -> transform (optax's SM3 needs params of rank >= 1: see the scalar test).
_SM3 = {
    "default": lambda lib: lib.scale_by_sm3(),
    "b1-b2-eps": lambda lib: lib.scale_by_sm3(0.5, 0.9, 1e-4),
    "no-momentum-b2": lambda lib: lib.scale_by_sm3(0.0, 0.99),
}


class TestScaleBySm3(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("case,dtype", _cases_and_dtypes(_SM3, ("default",)))
  def test_matches_optax(self, case, dtype):
    make = _SM3[case]
    _compare(self.variant, lambda: _then_sgd(jn, make(jn)), lambda: _then_sgd(optax, make(optax)), dtype,
             scalar=False)

  def test_memory_is_the_sum_of_dims(self):
    """Second-moment state: sum(shape) numbers per leaf of rank >= 2, a vector's size, 1 for a scalar."""
    shapes = {"big": (4096, 8192), "conv": (3, 3, 256, 512), "v": (1000,), "s": ()}
    params = {k: jax.ShapeDtypeStruct(s, jnp.float32) for k, s in shapes.items()}
    state = jax.eval_shape(jn.scale_by_sm3().init, params)
    for name, shape in shapes.items():
      kept = sum(int(np.prod(m.shape)) for m in state.mu[name])
      assert kept == (sum(shape) if len(shape) else 1), name
      assert [m.shape for m in state.mu[name]] == ([(n,) for n in shape] if shape else [()])
    assert sum(int(np.prod(m.shape)) for m in state.mu["big"]) < 1e-3 * 4096 * 8192
    ref = jax.eval_shape(optax.scale_by_sm3().init, {k: v for k, v in params.items() if k != "s"})
    assert [m.shape for m in ref.mu["conv"]] == [m.shape for m in state.mu["conv"]]

  @chex.variants(with_jit=True, without_jit=True)
  def test_accumulators_bound_adagrad_sums(self):
    """With b2 = 1, min over a coordinate's covers >= its AdaGrad sum of g^2 (the paper's claim), equal for vectors."""
    ours, _ = _compare(self.variant, lambda: _then_sgd(jn, jn.scale_by_sm3()),
                       lambda: _then_sgd(optax, optax.scale_by_sm3()), "float32", scalar=False)
    mu = ours.state[0].mu
    sums = jax.tree.map(lambda g: np.sum(np.asarray(g, np.float64) ** 2, axis=0), ours.grads)
    leaves = jax.tree.leaves(sums)
    covers = jax.tree.structure(ours.grads).flatten_up_to(mu)  # one list of covers per leaf
    assert len(leaves) == len(covers)
    strict = 0
    for total, cover in zip(leaves, covers):
      if total.ndim < 2:
        np.testing.assert_allclose(cover[0], total, rtol=1e-5)
        continue
      bound = np.min(np.stack(np.broadcast_arrays(*[
          np.reshape(m, [n if i == a else 1 for i, n in enumerate(total.shape)]) for a, m in enumerate(cover)
      ])), axis=0)
      assert np.all(bound >= total * (1 - 1e-5))
      strict += int(np.sum(bound > total * (1 + 1e-3)))
    assert strict > 0  # the bound is not trivially the sum itself

  def test_scalar_params_work_where_optax_raises(self):
    """Deliberate difference: a 0-d leaf is AdaGrad on one number; optax's update raises IndexError.

    Reference: optax on the same numbers as a (1,) vector.
    """
    rng = np.random.default_rng(0)
    ours_tx, ref_tx = jn.scale_by_sm3(0.5), optax.scale_by_sm3(0.5)
    s_ours, s_ref = ours_tx.init({"s": jnp.ones(())}), ref_tx.init({"s": jnp.ones((1,))})
    for g in rng.normal(size=20).astype(np.float32):
      u_ours, s_ours = ours_tx.update({"s": jnp.asarray(g)}, s_ours)
      u_ref, s_ref = ref_tx.update({"s": jnp.asarray([g])}, s_ref)
      assert u_ours["s"].shape == ()
      np.testing.assert_array_equal(u_ours["s"], u_ref["s"][0])
    np.testing.assert_array_equal(s_ours.mu["s"][0], s_ref.mu["s"][0][0])
    with pytest.raises(IndexError):
      ref_tx.update({"s": jnp.ones(())}, ref_tx.init({"s": jnp.ones(())}))

  def test_complex_params_are_refused_as_in_optax(self):
    params = {"w": jnp.ones(2, jnp.complex64)}
    with pytest.raises(ValueError, match=r"params\['w'\]"):
      jn.scale_by_sm3().init(params)
    with pytest.raises(ValueError):
      optax.scale_by_sm3().init(params)

  def test_traced_b2_is_accepted(self):
    """b2 under jit (as inject_hyperparams feeds it): b2 = 1 still sums, as the concrete path."""
    params = {"w": jnp.ones((2, 3))}
    grads = {"w": jnp.arange(6.0).reshape(2, 3)}

    def step(b2):
      tx = jn.scale_by_sm3(b2=b2)
      return tx.update(grads, tx.init(params))

    for b2 in (1.0, 0.9):
      traced = jax.jit(step)(jnp.float32(b2))
      chex.assert_trees_all_close(traced, step(b2), rtol=1e-6)


@pytest.mark.parametrize("factory,arg,value,error", [
    (jn.scale_by_factored_rms, "factored", 1, TypeError),
    (jn.scale_by_factored_rms, "decay_rate", -0.8, ValueError),
    (jn.scale_by_factored_rms, "step_offset", "5", ValueError),
    (jn.scale_by_factored_rms, "step_offset", np.array([1, 2]), ValueError),
    (jn.scale_by_factored_rms, "step_offset", 1.5, ValueError),
    (jn.scale_by_factored_rms, "min_dim_size_to_factor", 2.5, TypeError),
    (jn.scale_by_factored_rms, "min_dim_size_to_factor", -1, ValueError),
    (jn.scale_by_factored_rms, "epsilon", -1e-30, ValueError),
    (jn.scale_by_factored_rms, "decay_rate_fn", 0.8, TypeError),
    (jn.scale_by_sm3, "b1", 1.0, ValueError),
    (jn.scale_by_sm3, "b2", 1.5, ValueError),
    (jn.scale_by_sm3, "b2", "1", TypeError),
    (jn.scale_by_sm3, "eps", -1e-8, ValueError),
])
def test_bad_argument_names_it(factory, arg, value, error):
  with pytest.raises(error, match=f"`{arg}`"):
    factory(**{arg: value})
