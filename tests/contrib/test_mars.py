"""mars_adamw, mars_lion and mars_shampoo against pytorch_optimizer.MARS (4.1.0).

50-step lockstep trajectories (tests/contrib/_torch_ref.py) on a small
model's shapes: a square and a tall matrix, a vector, a scalar, a conv
kernel, and a matrix whose gradients stay small (so the clip of ``c_t`` is
off there and on elsewhere); each mars_type with the defaults, the 1-d
AdamW path and ``optimize_1d``, ``ams_bound``, ``cautious`` and other
hyper-parameters, torch's foreach and per-parameter paths; float64 and
float32. Then jit against op by op, inject_hyperparams, MultiSteps, init
state, the defaults against the reference's, bad arguments.
"""

from __future__ import annotations

import functools
import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from pytorch_optimizer import MARS
from pytorch_optimizer.optimizer import mars as torch_mars

from jaxopt_notes.contrib import _mars as ours
from tests.contrib import _common as cm
from tests.contrib import _torch_ref as ref

# A tall matrix, a vector, a scalar, a conv kernel (Newton-Schulz sees it as a wide 4 x 27) and a
# wide matrix whose gradients stay below norm 1 (no clip; the clip is on elsewhere).
SHAPES = {"t": (6, 3), "b": (5,), "s": (), "k": (4, 3, 3, 3), "q": (2, 3)}
SCALE = {"q": 0.02}
FACTORIES = {"adamw": ours.mars_adamw, "lion": ours.mars_lion, "shampoo": ours.mars_shampoo}
TORCH_ONLY = {"mars_type": None, "foreach": None}

# (torch keyword arguments); mars_type picks our factory.
CASES = {
    "adamw-defaults": dict(mars_type="adamw"),
    "adamw-hyper": dict(
        mars_type="adamw", lr=0.01, betas=(0.9, 0.95), gamma=0.05, weight_decay=0.1, lr_1d=0.02,
        betas_1d=(0.8, 0.99), weight_decay_1d=0.05, eps=1e-6,
    ),
    "adamw-1d-ams-cautious": dict(mars_type="adamw", optimize_1d=True, ams_bound=True, cautious=True, lr=0.01),
    "adamw-per-param-ams-cautious": dict(mars_type="adamw", ams_bound=True, cautious=True, foreach=False),
    # The authors' GPT-2 XL run (AGI-Arena/MARS, config/train_gpt2_xl_mars.py): betas (0.95, 0.99),
    # gamma 0.025, the rest below.
    "adamw-authors-xl": dict(mars_type="adamw", lr=2e-3, weight_decay=1e-2, lr_1d=1e-3),
    "lion-defaults": dict(mars_type="lion"),
    "lion-1d-cautious": dict(mars_type="lion", optimize_1d=True, cautious=True, lr=1e-3, weight_decay=0.1),
    "lion-per-param-ams": dict(mars_type="lion", ams_bound=True, gamma=0.1, foreach=False),
    "shampoo-defaults": dict(mars_type="shampoo"),
    "shampoo-1d-ams-cautious": dict(
        mars_type="shampoo", optimize_1d=True, ams_bound=True, cautious=True, lr=0.01, weight_decay=0.05,
    ),
}

# float64 (Newton-Schulz in float64 on both sides, ns64): what is left is
# the two libraries' op order (torch's lerp / addcmul / norm vs ours, decay
# then step vs decay added to the direction), ~1 ulp a step, carried for 50
# steps (measured worst over the cases 7.8e-15 absolute, 7.8e-15 relative on
# |x| > 0.1).
F64 = dict(rtol=1e-12, atol=1e-13)
# float32: the same at float32's rounding (measured worst 6e-6 absolute,
# 3.4e-6 relative, lion's decay-then-sign step).
F32 = dict(rtol=5e-5, atol=2e-5)


def _factory(kw):
  return functools.partial(FACTORIES[kw["mars_type"]], **ref.optax_names(kw, TORCH_ONLY))


def _newton_schulz_in(monkeypatch, dtype):
  """Newton-Schulz in ``dtype`` on both sides (the reference's bfloat16 is its default argument)."""
  monkeypatch.setattr(ours, "_NS_DTYPE", getattr(jnp, dtype))
  fn = torch_mars.zero_power_via_newton_schulz_5
  monkeypatch.setattr(torch_mars, "zero_power_via_newton_schulz_5", functools.partial(fn, dtype=getattr(torch, dtype)))


@pytest.fixture
def ns64(monkeypatch):
  _newton_schulz_in(monkeypatch, "float64")


def _run(kw, dtype, **run_kw):
  with ref.precision(dtype):
    return ref.run_lockstep(MARS, kw, _factory(kw)(), SHAPES, dtype, scale=SCALE, **run_kw)


@pytest.mark.parametrize("case", sorted(CASES))
def test_float64_matches_torch(case, ns64):
  ref.assert_lockstep_close(_run(CASES[case], "float64"), **F64)


@pytest.mark.parametrize("case", ["adamw-1d-ams-cautious", "lion-1d-cautious", "shampoo-1d-ams-cautious"])
def test_float32_matches_torch(case, monkeypatch):
  _newton_schulz_in(monkeypatch, "float32")
  ref.assert_lockstep_close(_run(CASES[case], "float32"), **F32)


@pytest.mark.parametrize("case, dtype, tol", [
    ("shampoo-1d-ams-cautious", "float64", F64), ("shampoo-defaults", "float32", F32),
])
def test_shampoo_as_is_with_bfloat16_newton_schulz(case, dtype, tol):
  """The reference's own bfloat16 iteration: ours rounds where torch's mm / addmm round, so the
  bfloat16 steps agree to the params' rounding (measured 4.2e-15 in float64, 7e-7 in float32;
  rounding every bfloat16 op instead was 4e-3 off)."""
  ref.assert_lockstep_close(_run(CASES[case], dtype), **tol)


def test_the_correction_and_the_clip_matter():
  """gamma and the previous gradient change the run, so the comparisons above test them."""
  kw = CASES["adamw-hyper"]
  with ref.precision("float64"):
    other = ref.run_lockstep(MARS, kw, _factory(dict(kw, gamma=0.0))(), SHAPES, "float64", scale=SCALE)
  err = {k: np.max(np.abs(other.got[-1][k] - other.want[-1][k])) for k in SHAPES}
  assert min(err[k] for k in ("t", "k", "q")) > 1e-4
  # The 1-d AdamW leaves never see gamma.
  assert max(err["b"], err["s"]) < 1e-12


def test_jit_equals_op_by_op(ns64):
  kw = CASES["shampoo-1d-ams-cautious"]
  shapes = {k: SHAPES[k] for k in ("t", "s", "q")}  # eager dispatch is slow: fewer leaves
  with ref.precision("float64"):
    jitted = ref.run_lockstep(MARS, kw, _factory(kw)(), shapes, "float64", steps=10, scale=SCALE)
    eager = ref.run_lockstep(MARS, kw, _factory(kw)(), shapes, "float64", steps=10, scale=SCALE, jit=False)
  for a, b in zip(jitted.got, eager.got):
    chex.assert_trees_all_close(a, b, rtol=1e-13, atol=1e-15)
  chex.assert_trees_all_close(jitted.got, jitted.want, **F64)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_inject_hyperparams_over_the_learning_rate(name, monkeypatch):
  # bfloat16 Newton-Schulz turns the traced arguments' float32 rounding into 1e-2.
  monkeypatch.setattr(ours, "_NS_DTYPE", jnp.float32)
  params, grads = cm.random_grads(1, 6)
  factory = FACTORIES[name]
  injected = optax.inject_hyperparams(factory, static_args=("optimize_1d", "ams_bound", "cautious"))(
      learning_rate=0.05
  )
  plain = cm.run_steps(factory(0.05), params, grads)
  chex.assert_trees_all_close(cm.run_steps(injected, params, grads), plain, rtol=1e-5, atol=1e-6)
  state = injected.init(params)
  state.hyperparams["learning_rate"] = jnp.asarray(0.02)
  halved = cm.run_steps(injected, params, grads, state)
  chex.assert_trees_all_close(halved, cm.run_steps(factory(0.02), params, grads), rtol=1e-5, atol=1e-6)
  assert not np.allclose(np.asarray(halved["w"]), np.asarray(plain["w"]))
  # The vector has its own rate (lr_1d), untouched.
  np.testing.assert_allclose(halved["b"], plain["b"], rtol=1e-6)


def test_multi_steps_equals_the_mean_gradients():
  params, grads = cm.random_grads(2, 8)
  cm.assert_multi_steps_is_the_mean_gradients_step(lambda: ours.mars_adamw(0.05), params, grads)


def test_init_state():
  params = {"w": jnp.ones((4, 3)), "b": jnp.ones(5), "s": jnp.ones(())}
  state = ours.scale_by_mars().init(params)
  assert state._fields == ("count", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "last_grad")
  assert state.count.dtype == jnp.int32 and int(state.count) == 0
  zeros = jax.tree.map(jnp.zeros_like, params)
  for field in (state.exp_avg, state.exp_avg_sq, state.last_grad):
    chex.assert_trees_all_equal(field, zeros)
    chex.assert_trees_all_equal_dtypes(field, params)
  assert state.max_exp_avg_sq is None
  chex.assert_trees_all_equal(ours.scale_by_mars(ams_bound=True).init(params).max_exp_avg_sq, zeros)
  # last_grad is the gradient just seen.
  g = jax.tree.map(lambda p: 2 * p, params)
  _, after = ours.scale_by_mars().update(g, state)
  chex.assert_trees_all_equal(after.last_grad, g)


def test_update_needs_params_only_with_a_decay():
  cm.assert_update_needs_params(ours.mars_adamw())  # weight_decay_1d = 0.1 on the vector
  tx = ours.mars_adamw(weight_decay_1d=0.0)
  params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
  u, _ = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params), None)
  assert cm.finite(u)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_defaults_are_the_reference_defaults(name):
  torch_defaults = {k: p.default for k, p in inspect.signature(MARS.__init__).parameters.items()}
  ours_defaults = {k: p.default for k, p in inspect.signature(FACTORIES[name]).parameters.items()}
  expected = ref.optax_names(
      {k: v for k, v in torch_defaults.items() if k in {
          "lr", "betas", "gamma", "optimize_1d", "lr_1d", "betas_1d", "weight_decay", "weight_decay_1d",
          "ams_bound", "cautious", "eps"}}
  )
  if name == "lion":
    expected.pop("b2")  # lion's matrices keep no second moment
  assert ours_defaults == expected


NAN = float("nan")


@pytest.mark.parametrize("kwargs, error, name", [
    (dict(learning_rate=None), TypeError, "learning_rate"),
    (dict(learning_rate=NAN), ValueError, "learning_rate"),
    (dict(lr_1d=None), TypeError, "lr_1d"),
    (dict(b1=1.0), ValueError, "b1"),
    (dict(b2=-0.1), ValueError, "b2"),
    (dict(b1_1d=1.5), ValueError, "b1_1d"),
    (dict(b2_1d=1.0), ValueError, "b2_1d"),
    (dict(gamma=-0.1), ValueError, "gamma"),
    (dict(weight_decay=-1.0), ValueError, "weight_decay"),
    (dict(weight_decay_1d=-1.0), ValueError, "weight_decay_1d"),
    (dict(eps=-1.0), ValueError, "eps"),
    (dict(optimize_1d=1), TypeError, "optimize_1d"),
    (dict(ams_bound="yes"), TypeError, "ams_bound"),
    (dict(cautious=None), TypeError, "cautious"),
])
def test_bad_arguments_raise_naming_the_argument(kwargs, error, name):
  cm.assert_raises_naming(ours.mars_adamw, kwargs, error, name)


def test_bad_mars_type():
  cm.assert_raises_naming(ours.scale_by_mars, dict(mars_type="sgd"), ValueError, "mars_type")
