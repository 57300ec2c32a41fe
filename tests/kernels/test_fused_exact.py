"""Randomized: every fused kernel is bitwise equal to the reference path, or
the reference path is taken (no custom call in the compiled program).

Hyper-parameters include the values where XLA's simplifier rewrites the
reference arithmetic (a decay of 0.5, eps 0, a step of +-1, constant-valued
schedules), schedules of the count (run-time values XLA cannot fold), leaf
shapes from scalars to 3-D with empty leaves, per leaf and inside
``flatten``, and values from denormals to near float32 overflow (infs and
NaNs included, as the two paths produce them). The one documented exception:
per-leaf Adam on several non-empty leaves, whose params agree to a few ulp
(the state is bitwise equal).
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import jaxopt_notes as jn
from tests.kernels import test_fused as tf

_SETTINGS = settings(max_examples=30, deadline=None, derandomize=False,
                     suppress_health_check=[HealthCheck.too_slow])

_SHAPES = [
    ((7,),), ((3, 5),), ((),), ((2, 3, 4),), ((1, 17),), ((9, 1),), ((1, 9),), ((1, 1, 9),), ((0,), (3, 5)),
    ((6,), (4, 3)), ((37,), (5,), (2, 2)), ((17,), ()), ((1000,),), ((100, 3),),
]
# Decimal exponents the values are drawn from, per element.
_PROFILES = {
    "unit": [0],
    "mixed": [-44, -40, -20, -3, 0, 3],
    "huge": [18, 19, 19.3, 37, 38],
    "tiny": [-45, -42, -39, -38],
}
_LRS = [1e-2, 0.5, 1.0, -1.0, 2.0, 0.0]
_SCHEDULES = ["constant", "constant-schedule", "piecewise", "exponential"]
_DECAYS = [0.0, 0.5, 0.5000000001, 0.9, 0.999]


def _learning_rate(value, kind):
  """The learning rate as a constant, or a schedule that is ``value`` at step 0."""
  if kind == "constant":
    return value
  if kind == "constant-schedule":  # ignores the count: XLA folds its value
    return lambda count: value * jnp.ones((), jnp.float32)
  if kind == "piecewise":  # value, then value / 2 from step 1: a run-time value
    return jn.piecewise_constant_schedule(value, {1: 0.5})
  return jn.exponential_decay(value, 1, 0.5)


def _tree(shapes, seed, profile, positive=False, dtype=jnp.float32):
  rng = np.random.default_rng(seed)
  leaves = {}
  for i, shape in enumerate(shapes):
    exps = rng.choice(np.asarray(_PROFILES[profile], np.float64), size=shape)
    x = rng.standard_normal(shape) * 10.0 ** exps
    leaves[f"l{i}"] = jnp.asarray(np.abs(x) if positive else x, jnp.float32).astype(dtype)
  return leaves


@functools.lru_cache(maxsize=None)
def _steps(make, flat, config):
  """The optimizer and its fused and reference jitted steps, built once per config."""
  tx = jn.flatten(make(*config)) if flat else make(*config)
  return tx, jax.jit(tf._step_fn(tx)), jax.jit(tf._step_fn(tx, fused=False))


def _check(make, config, shapes, flat, seed, profile, dtype=jnp.float32, kernel=None):
  """Two steps from init (the second from the reference state): bitwise equal
  wherever the kernel is in the compiled program."""
  tx, fused, reference = _steps(make, flat, config)
  params = _tree(shapes, seed, profile, dtype=dtype)
  state = tx.init(params)
  several = sum(1 for s in shapes if np.prod(s, dtype=int)) > 1
  took = "jaxopt_notes_" in fused.lower(params, state, params).as_text()
  for t in range(2):
    grads = _tree(shapes, seed + 1000 + t, profile, dtype=dtype)
    got, want = fused(grads, state, params), reference(grads, state, params)
    if took and kernel == "adam" and several and not flat:
      # Documented: XLA divides differently on several leaves; the state is exact.
      tf._assert_bitwise(got[1], want[1])
      chex.assert_trees_all_close(got[0], want[0], rtol=1e-5, atol=1e-30)
    else:
      tf._assert_bitwise(got, want)
    params, state = want
  return took


_common = dict(
    shapes=st.sampled_from(_SHAPES), flat=st.booleans(), seed=st.integers(0, 2**20),
    profile=st.sampled_from(list(_PROFILES)), lr=st.sampled_from(_LRS),
    schedule=st.sampled_from(_SCHEDULES),
)


def _sgd(lr, schedule, momentum, nesterov):
  rate = _learning_rate(lr, schedule)
  return jn.sgd(rate) if momentum is None else jn.sgd(rate, momentum, nesterov=nesterov)


@tf.needs_kernel
@_SETTINGS
@given(momentum=st.sampled_from([None, 0.0, 0.5, 0.9]), nesterov=st.booleans(), **_common)
def test_sgd_and_momentum_bitwise_or_reference(shapes, flat, seed, profile, lr, schedule,
                                                momentum, nesterov):
  _check(_sgd, (lr, schedule, momentum, nesterov), shapes, flat, seed, profile)


def _adam(lr, schedule, b1, b2, eps, eps_root, wd):
  rate = _learning_rate(lr, schedule)
  if wd is None:
    return jn.adam(rate, b1, b2, eps, eps_root)
  return jn.adamw(rate, b1, b2, eps, eps_root, weight_decay=wd)


@tf.needs_kernel
@_SETTINGS
@given(b1=st.sampled_from([0.0, 0.5, 0.9]), b2=st.sampled_from(_DECAYS),
       eps=st.sampled_from([0.0, 1e-8, 1.0]), eps_root=st.sampled_from([0.0, 1e-8]),
       wd=st.sampled_from([None, 0.0, 1e-2, 1.0]), **_common)
# Found by this test in CI: on a lone 0-d leaf XLA merged the two divisions (2 ulp).
@example(b1=0.0, b2=0.9, eps=1e-8, eps_root=0.0, wd=None, shapes=((),), flat=False, seed=39857,
         profile="mixed", lr=0.01, schedule="constant")
def test_adam_bitwise_or_reference(shapes, flat, seed, profile, lr, schedule, b1, b2, eps,
                                   eps_root, wd):
  _check(_adam, (lr, schedule, b1, b2, eps, eps_root, wd), shapes, flat, seed, profile,
         kernel="adam")


def _rmsprop(lr, schedule, decay, eps):
  return jn.rmsprop(_learning_rate(lr, schedule), decay, eps)


@tf.needs_kernel
@_SETTINGS
@given(decay=st.sampled_from(_DECAYS), eps=st.sampled_from([0.0, 1e-8, 1.0]), **_common)
def test_rmsprop_bitwise_or_reference(shapes, flat, seed, profile, lr, schedule, decay, eps):
  _check(_rmsprop, (lr, schedule, decay, eps), shapes, flat, seed, profile)


def _adagrad(lr, schedule, initial, eps):
  return jn.adagrad(_learning_rate(lr, schedule), initial, eps)


@tf.needs_kernel
@_SETTINGS
@given(initial=st.sampled_from([0.0, 0.1]), eps=st.sampled_from([0.0, 1e-7, 1.0]), **_common)
# Found by this test: a (4, 3) leaf under a run-time learning rate (XLA's uncontracted multiply-add).
@example(initial=0.0, eps=0.0, shapes=((6,), (4, 3)), flat=False, seed=75188, profile="mixed", lr=0.01,
         schedule="piecewise")
def test_adagrad_bitwise_or_reference(shapes, flat, seed, profile, lr, schedule, initial, eps):
  _check(_adagrad, (lr, schedule, initial, eps), shapes, flat, seed, profile)


def _adadelta(lr, schedule, rho, eps, wd):
  return jn.adadelta(None if lr is None else _learning_rate(lr, schedule), rho, eps, wd)


@tf.needs_kernel
@_SETTINGS
@given(rho=st.sampled_from(_DECAYS), eps=st.sampled_from([0.0, 1e-6, 1.0]),
       wd=st.sampled_from([0.0, 1e-2, 0.5]), none_lr=st.booleans(), **_common)
def test_adadelta_bitwise_or_reference(shapes, flat, seed, profile, lr, schedule, rho, eps, wd,
                                       none_lr):
  _check(_adadelta, (None if none_lr else lr, schedule, rho, eps, wd), shapes, flat, seed,
         profile)


@tf.needs_kernel
@settings(_SETTINGS, max_examples=20)
@given(rho=st.sampled_from(_DECAYS + [0.501]), eps=st.sampled_from([0.0, 1e-6, 1.0]),
       wd=st.sampled_from([0.0, 1e-2, 0.5]), shapes=st.sampled_from(_SHAPES),
       flat=st.booleans(), seed=st.integers(0, 2**20), profile=st.sampled_from(list(_PROFILES)),
       lr=st.sampled_from([None, 1e-2, 0.5, 1.0, -1.0]))
# Found by this test: two NaNs meet in an addition whose operands XLA swapped (NaN's sign differs).
@example(rho=0.0, eps=1e-6, wd=1e-2, shapes=((1000,),), flat=False, seed=7, profile="huge", lr=None)
def test_adadelta_bf16_bitwise_or_reference(rho, eps, wd, shapes, flat, seed, profile, lr):
  _check(_adadelta, (lr, "constant", rho, eps, wd), shapes, flat, seed, profile,
         dtype=jnp.bfloat16)


# Where XLA rewrites the arithmetic: the kernel must step aside (each of these
# took the kernel, and differed, before).
_REWRITES = {
    "adam-b1-half": lambda: jn.adam(1e-2, b1=0.5),
    "adam-b2-half": lambda: jn.adam(1e-2, b2=0.5),
    "adamw-b2-half": lambda: jn.adamw(1e-2, b2=0.5, weight_decay=1e-2),
    "adam-eps0": lambda: jn.adam(1e-2, eps=0.0),
    "adamw-eps0": lambda: jn.adamw(1e-2, eps=0.0, weight_decay=1e-2),
    "rmsprop-decay-half": lambda: jn.rmsprop(1e-2, decay=0.5),
    "rmsprop-lr-minus-one": lambda: jn.rmsprop(-1.0),
    "rmsprop-schedule-one": lambda: jn.rmsprop(lambda t: 1.0),
    "rmsprop-schedule-minus-one": lambda: jn.rmsprop(lambda t: -1.0),
    "adagrad-lr-minus-one": lambda: jn.adagrad(-1.0),
    "adagrad-schedule-one": lambda: jn.adagrad(lambda t: jnp.float32(1.0)),
    "adadelta-rho-half": lambda: jn.adadelta(rho=0.5),
    "adadelta-lr-minus-one": lambda: jn.adadelta(-1.0),
    "adadelta-schedule-minus-one": lambda: jn.adadelta(lambda t: -1.0),
    "flatten-adam-one-matrix": lambda: jn.flatten(jn.adam(1e-2)),
}


@tf.needs_kernel
@pytest.mark.parametrize("case", list(_REWRITES))
def test_rewritten_arithmetic_keeps_reference_path(case):
  """No kernel in the program, and near float32 overflow the result is the
  reference path's, bitwise (where the kernel gave finite numbers and XLA
  inf/nan, or the reverse)."""
  tx = _REWRITES[case]()
  params = {"w": jnp.asarray(np.random.default_rng(0).normal(size=(8, 16)) * 1e19, jnp.float32)}
  if case.startswith("rmsprop-decay") or case.startswith("adadelta-rho"):
    params = {"w": jnp.full((8, 16), 2.6e19, jnp.float32)}  # g*g ~ 0.7e39: a+b overflows
  state = tx.init(params)
  assert "jaxopt_notes_" not in tf._hlo(tx, params, state, params)
  fused, reference = jax.jit(tf._step_fn(tx)), jax.jit(tf._step_fn(tx, fused=False))
  p, s = params, state
  for t in range(3):
    g = jax.tree.map(lambda x, t=t: x * (0.5 + t), params)
    tf._assert_bitwise(fused(g, s, p), reference(g, s, p))
    p, s = reference(g, s, p)
  with pytest.raises(ValueError, match="cannot use the fused kernel: .*XLA"):
    jn.apply_step(tx, params, state, params, fused=True)


@tf.needs_kernel
def test_adadelta_constant_schedule_of_one_takes_the_folded_kernel():
  """A schedule constantly 1 is a step of -1 that XLA folds: Adadelta's kernel
  variant for it runs, bitwise (before, the general variant ran and differed)."""
  if jn.fused_status().rsqrt_steps == 0:
    pytest.skip("XLA's rsqrt is not reproduced on this CPU: Adadelta keeps the reference path")
  tx = jn.adadelta(lambda t: 1.0)
  params = tf._params(seed=30, big=1000)
  state = tx.init(params)
  assert "jaxopt_notes_adadelta" in tf._hlo(tx, params, state, params)
  fused, reference = jax.jit(tf._step_fn(tx)), jax.jit(tf._step_fn(tx, fused=False))
  p, s = params, state
  for t in range(5):
    g = tf._grads(params, t, seed=30)
    tf._assert_bitwise(fused(g, s, p), reference(g, s, p))
    p, s = reference(g, s, p)


@tf.needs_kernel
@pytest.mark.parametrize("flat", [False, True])
def test_adam_on_a_lone_scalar_leaf_keeps_the_reference_path(flat):
  """XLA compiles Adam on one 0-d leaf with a single division: no kernel, and
  over many draws every step is the reference's, bitwise (about one in ten
  differed when the kernel ran)."""
  config = (0.01, "constant", 0.9, 0.9, 1e-8, 0.0, None)
  assert not any([_check(_adam, config, ((),), flat, seed, "mixed") for seed in range(40)])
  assert _check(_adam, config, ((7,),), flat, 0, "mixed")


@tf.needs_kernel
@pytest.mark.parametrize("shape", [(1, 9), (1, 1, 9), (9, 1)])
def test_rsqrt_kernels_on_unit_dims_are_bitwise_or_reference(shape):
  """On (1, 9) XLA's rsqrt differs from the kernel's by an ulp: the reference path is kept."""
  assert not _check(_adagrad, (0.01, "constant", 0.0, 1e-7), (shape,), False, 0, "unit")
  assert not _check(_rmsprop, (0.01, "constant", 0.9, 1e-8), (shape,), False, 0, "unit")
  assert _check(_adagrad, (0.01, "constant", 0.0, 1e-7), ((9,),), False, 0, "unit")
