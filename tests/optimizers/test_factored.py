"""adafactor and sm3: 100-step trajectories equal to optax's for every flag
that changes the math, with the learning rate as a float, a lambda schedule
and an optax schedule, on params with a 4-D conv kernel; their state layouts
and memory; optax's alias_test properties (a parabola solved, bfloat16 kept,
MultiSteps), and bad arguments."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj

CONV = (3, 3, 4, 5)  # HWIO


def _params(dtype, *, scalar=True):
  """The harness's params plus a conv kernel; ``scalar=False`` swaps the scalar
  for a vector (optax's SM3 cannot take a 0-d leaf)."""
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


def _matrices(params):
  return jax.tree.map(lambda p: p.ndim >= 2, params)


_LR_AND_DTYPE = [
    ("float", "float32"), ("float", "float64"),
    ("lambda", "float32"), ("optax_schedule", "float64"),
]

# min_dim_size_to_factor=2 factors the (2, 3) matrix and the conv kernel.
_ADAFACTOR_BASE = lambda lib, lr: lib.adafactor(lr, min_dim_size_to_factor=2)

# id -> (dtype, lib -> optimizer): each option that changes the math, jitted
# and op by op, the dtypes alternating.
_ADAFACTOR_FLAGS = {
    "defaults-lr-None": ("float64", lambda lib: lib.adafactor()),
    "lr-min128-eps": ("float32", lambda lib: lib.adafactor(0.05, eps=1e-3)),
    "unfactored-no-clipping": ("float64", lambda lib: lib.adafactor(
        0.05, 2, factored=False, clipping_threshold=None
    )),
    "decay-offset-min3": ("float32", lambda lib: lib.adafactor(0.05, 3, decay_rate=0.5, decay_offset=-3)),
    "no-parameter-scale-clipping0.1": ("float64", lambda lib: lib.adafactor(
        0.05, 2, multiply_by_parameter_scale=False, clipping_threshold=0.1
    )),
    # float64 params with the default float32 momentum buffer.
    "momentum": ("float64", lambda lib: lib.adafactor(0.05, 2, momentum=0.9)),
    "momentum-bf16-wd-mask": ("float32", lambda lib: lib.adafactor(
        0.05, 2, momentum=0.5, dtype_momentum=jnp.bfloat16, weight_decay_rate=0.01,
        weight_decay_mask=_matrices,
    )),
    "wd-schedule": ("float64", lambda lib: lib.adafactor(
        0.05, 2, weight_decay_rate=lambda t: 0.01 / (1 + 0.05 * t)
    )),
}


def _schedule_count_seen(state):
  counts = [
      int(x) for x in jax.tree.leaves(state)
      if np.ndim(x) == 0 and jnp.issubdtype(jnp.asarray(x).dtype, jnp.integer)
  ]
  return tj.STEPS in counts


class TestAdafactor(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("lr_kind,dtype", _LR_AND_DTYPE)
  def test_matches_optax(self, lr_kind, dtype):
    lr = tj.learning_rate(lr_kind, 0.05)
    ours, _ = _compare(self.variant, lambda: _ADAFACTOR_BASE(jn, lr), lambda: _ADAFACTOR_BASE(optax, lr), dtype)
    assert _schedule_count_seen(ours.state)
    # The conv kernel was factored over its two largest axes.
    assert ours.state[0].v_row["conv"].shape == CONV[:3] and ours.state[0].v["conv"].shape == (1,)

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("case", sorted(_ADAFACTOR_FLAGS))
  def test_flags_match_optax(self, case):
    dtype, make = _ADAFACTOR_FLAGS[case]
    ours, _ = _compare(self.variant, lambda: make(jn), lambda: make(optax), dtype)
    if case.startswith("momentum"):
      want = jnp.bfloat16 if "bf16" in case else jnp.float32
      ema = ours.state[-3 if "wd" in case else -2].ema
      assert {x.dtype for x in jax.tree.leaves(ema)} == {jnp.dtype(want)}

  def test_state_layout(self):
    """Row/column factors for the leaves whose two largest dims reach the minimum, full moments otherwise."""
    params = {"m": jnp.ones((3, 200)), "conv": jnp.ones((3, 3, 128, 256)), "v": jnp.ones(300),
              "small": jnp.ones((100, 300))}
    state = jn.adafactor(1e-3).init(params)[0]
    shapes = {k: (state.v_row[k].shape, state.v_col[k].shape, state.v[k].shape) for k in params}
    assert shapes == {
        "m": ((1,), (1,), (3, 200)),  # second largest dim 3 < 128
        "conv": ((3, 3, 128), (3, 3, 256), (1,)),
        "v": ((1,), (1,), (300,)),  # vectors are never factored
        "small": ((1,), (1,), (100, 300)),  # 100 < 128
    }
    tj.assert_states_close(jn.adafactor(1e-3).init(params), optax.adafactor(1e-3).init(params))

  def test_memory_is_sublinear(self):
    """A (4096, 8192) matrix keeps 4096 + 8192 second-moment numbers (shapes only)."""
    params = {"w": jax.ShapeDtypeStruct((4096, 8192), jnp.float32)}
    state = jax.eval_shape(jn.adafactor(1e-3).init, params)
    total = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state))
    assert total == 4096 + 8192 + 1 + 1  # + the (1,) placeholder and the count


_SM3_LR = 0.05


def _sm3_reference(momentum, lr):
  """optax.sm3 for a number; its chain with scale_by_learning_rate for a schedule (optax's takes numbers only)."""
  if callable(lr):
    return optax.chain(optax.scale_by_sm3(momentum), optax.scale_by_learning_rate(lr))
  return optax.sm3(lr, momentum)


class TestSm3(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("lr_kind,dtype", _LR_AND_DTYPE)
  def test_matches_optax(self, lr_kind, dtype):
    lr = tj.learning_rate(lr_kind, _SM3_LR)
    ours, _ = _compare(self.variant, lambda: jn.sm3(lr), lambda: _sm3_reference(0.9, lr), dtype, scalar=False)
    if lr_kind != "float":
      assert _schedule_count_seen(ours.state)

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("momentum,dtype", [(0.5, "float32"), (0.0, "float64")])
  def test_momentum_matches_optax(self, momentum, dtype):
    _compare(self.variant, lambda: jn.sm3(_SM3_LR, momentum), lambda: optax.sm3(_SM3_LR, momentum), dtype,
             scalar=False)

  def test_memory_is_the_sum_of_dims(self):
    """The accumulators: sum(shape) numbers per leaf (4096 + 8192; 3 + 3 + 256 + 512 for a conv kernel)."""
    shapes = {"w": (4096, 8192), "conv": (3, 3, 256, 512)}
    params = {k: jax.ShapeDtypeStruct(s, jnp.float32) for k, s in shapes.items()}
    state = jax.eval_shape(jn.sm3(1.0).init, params)[0]
    for name, shape in shapes.items():
      assert sum(int(np.prod(m.shape)) for m in state.mu[name]) == sum(shape)

  def test_scalar_params_work(self):
    """Deliberate difference: optax.sm3 raises IndexError on a 0-d leaf; ours steps it like AdaGrad."""
    params = {"s": jnp.array(2.0), "v": jnp.array([1.0, -1.0])}
    grads = {"s": jnp.array(-3.0), "v": jnp.array([3.0, 0.0])}
    updates, _ = jn.sm3(1.0).update(grads, jn.sm3(1.0).init(params), params)
    # (1 - 0.9) * g / sqrt(g^2 + 1e-8), 0 where g = 0.
    np.testing.assert_allclose(updates["s"], 0.1, rtol=1e-6)
    np.testing.assert_allclose(updates["v"], [-0.1, 0.0], rtol=1e-6)
    with pytest.raises(IndexError):
      optax.sm3(1.0).update(grads, optax.sm3(1.0).init(params), params)


def _parabola_solution(opt, steps=10_000):
  """optax's alias_test: minimise |w - (1, -1, 1)|^2 from (-1, 10, 1), jitted."""
  target = jnp.array([1.0, -1.0, 1.0])
  loss = lambda w: jnp.sum((w - target) ** 2)

  def body(_, carry):
    w, state = carry
    updates, state = opt.update(jax.grad(loss)(w), state, w)
    return optax.apply_updates(w, updates), state

  w0 = jnp.array([-1.0, 10.0, 1.0])
  w, _ = jax.jit(lambda w, s: jax.lax.fori_loop(0, steps, body, (w, s)))(w0, opt.init(w0))
  return w, target


@pytest.mark.parametrize("make", [lambda: jn.adafactor(5e-3), lambda: jn.sm3(1.0)], ids=["adafactor", "sm3"])
def test_solves_a_parabola(make):
  """optax's learning rates reach the minimum within 3e-2 in 10k steps."""
  w, target = _parabola_solution(make())
  np.testing.assert_allclose(w, target, rtol=3e-2, atol=3e-2)


_SMALL = {
    "adafactor": lambda: jn.adafactor(1e-2, min_dim_size_to_factor=2),
    "adafactor-lr-None": lambda: jn.adafactor(),
    "sm3": lambda: jn.sm3(1.0),
}


@pytest.mark.parametrize("name", sorted(_SMALL))
@pytest.mark.parametrize("shape", [(2,), (3, 4)])
def test_bfloat16_updates_keep_the_grads_dtype(name, shape):
  opt = _SMALL[name]()
  params = jnp.ones(shape, jnp.bfloat16)
  updates, _ = jax.jit(opt.update)(2 * params, jax.jit(opt.init)(params), params)
  assert updates.dtype == jnp.bfloat16


@pytest.mark.parametrize("name", sorted(_SMALL))
def test_inside_multi_steps_first_updates_are_zero(name):
  """optax's alias_test: MultiSteps(opt, 4) applies nothing on the first step."""
  params = {"w": jnp.ones((3, 4)), "b": jnp.ones(2)}
  opt = jn.MultiSteps(_SMALL[name](), every_k_schedule=4)
  updates, _ = jax.jit(opt.update)(jax.tree.map(lambda p: 2 * p, params), opt.init(params), params)
  chex.assert_trees_all_equal(updates, jax.tree.map(jnp.zeros_like, params))


@pytest.mark.parametrize("name,kwargs", [
    ("adafactor", {"learning_rate": 5e-3}), ("adafactor", {}), ("sm3", {"learning_rate": 1.0}),
])
def test_inject_hyperparams_gives_the_same_step(name, kwargs):
  """optax's alias_test: the optimizer wrapped in inject_hyperparams steps as itself.

  Adafactor's min_dim_size_to_factor fixes shapes, so it is static there (as
  optax's test makes it); left traced, it raises naming it.
  """
  factory = getattr(jn, name)
  static = ("min_dim_size_to_factor",) if name == "adafactor" else ()
  opt, injected = factory(**kwargs), jn.inject_hyperparams(factory, static_args=static)(**kwargs)
  params = [-jnp.ones((2, 3)), jnp.ones((2, 5, 2))]
  grads = [jnp.ones((2, 3)), -jnp.ones((2, 5, 2))]
  updates, state = jax.jit(opt.update)(grads, opt.init(params), params)
  updates_i, state_i = jax.jit(injected.update)(grads, injected.init(params), params)
  # Injected hyper-parameters are float32 arrays: 1 - b2 rounds in float32, not in Python (optax's tolerances).
  chex.assert_trees_all_close(updates_i, updates, rtol=1e-3)
  chex.assert_trees_all_close(state_i.inner_state, state, rtol=1e-4)
  if name == "adafactor":
    traced = jn.inject_hyperparams(factory)(**kwargs)
    with pytest.raises(TypeError, match="`min_dim_size_to_factor`"):
      jax.jit(traced.update)(grads, traced.init(params), params)


@pytest.mark.parametrize("factory,kwargs,arg,error", [
    (jn.adafactor, {"learning_rate": float("nan")}, "learning_rate", ValueError),
    (jn.adafactor, {"min_dim_size_to_factor": 2.5}, "min_dim_size_to_factor", TypeError),
    (jn.adafactor, {"decay_rate": -1.0}, "decay_rate", ValueError),
    (jn.adafactor, {"decay_offset": 1.5}, "decay_offset", ValueError),
    (jn.adafactor, {"multiply_by_parameter_scale": 1}, "multiply_by_parameter_scale", TypeError),
    (jn.adafactor, {"clipping_threshold": 0.0}, "clipping_threshold", ValueError),
    (jn.adafactor, {"momentum": 1.0}, "momentum", ValueError),
    (jn.adafactor, {"dtype_momentum": "notadtype"}, "dtype_momentum", TypeError),
    (jn.adafactor, {"weight_decay_rate": float("inf")}, "weight_decay_rate", ValueError),
    (jn.adafactor, {"weight_decay_rate": "0.1"}, "weight_decay_rate", TypeError),
    (jn.adafactor, {"eps": -1.0}, "eps", ValueError),
    (jn.adafactor, {"factored": "yes"}, "factored", TypeError),
    (jn.adafactor, {"weight_decay_rate": 0.1, "weight_decay_mask": {"w": 1}}, "mask", TypeError),
    (jn.adafactor, {"weight_decay_mask": {"w": "yes"}}, "mask", TypeError),
    (jn.sm3, {"learning_rate": None}, "learning_rate", TypeError),
    (jn.sm3, {"learning_rate": 0.1, "momentum": 1.0}, "momentum", ValueError),
    (jn.sm3, {"learning_rate": 0.1, "momentum": None}, "momentum", TypeError),
])
def test_bad_argument_names_it(factory, kwargs, arg, error):
  with pytest.raises(error, match=arg if arg == "mask" else f"`{arg}`"):
    factory(**kwargs)
