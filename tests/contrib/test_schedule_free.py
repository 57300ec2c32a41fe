"""schedule_free, schedule_free_adamw, schedule_free_sgd (contrib/_schedule_free.py).

Against optax.contrib (0.2.8): 50-step trajectories bitwise, float32 and
float64, over the option sets (warm-up, weight_lr_power, b1, b2, eps, weight
decay, schedules, state_dtype, a base optimizer), plus init states and eval
params. Against the official ``schedulefree`` package (1.4.1), the
``reference=True`` form in lockstep with AdamWScheduleFree, SGDScheduleFree
and their *Reference variants: both sides follow their own trajectory on the
same non-quadratic problem (a matrix, a vector, a scalar), 50 steps, every
step's params, the final z and the ``optimizer.eval()`` params. Also: the two
forms' one difference shows, jit equals op by op, inject_hyperparams,
MultiSteps, bfloat16 dtypes, bad arguments.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import schedulefree
import torch

import jaxopt_notes as jn
from jaxopt_notes.contrib import _schedule_free as sf
from tests import _trajectory as tj
from tests.contrib import _common as cm
from tests.contrib._torch_ref import precision

STEPS = cm.STEPS

# ---------------------------------------------------------------------------
# optax


def _adam_base(lib_is_optax):
  return (optax.adam if lib_is_optax else jn.adam)(0.05, b1=0.0)


# lib -> transform; lib is our module or optax.contrib. (dtype, factory).
_OPTAX_CASES = {
    "adamw-defaults-f32": ("float32", lambda lib: lib.schedule_free_adamw(0.05)),
    "adamw-all-args-f64": ("float64", lambda lib: lib.schedule_free_adamw(
        0.05, 10, 0.95, 0.99, 1e-6, 0.1, 1.0)),
    "adamw-all-args-f32": ("float32", lambda lib: lib.schedule_free_adamw(
        0.05, warmup_steps=10, b1=0.98, b2=0.95, weight_decay=0.01, weight_lr_power=0.0)),
    "adamw-schedule-f32": ("float32", lambda lib: lib.schedule_free_adamw(
        tj.learning_rate("optax_schedule", 0.05), weight_decay=lambda t: 0.1 / (1 + t))),
    "adamw-state-dtype-f64": ("float64", lambda lib: lib.schedule_free_adamw(
        0.05, warmup_steps=5, state_dtype=jnp.float32)),
    "sgd-defaults-f64": ("float64", lambda lib: lib.schedule_free_sgd(0.2)),
    "sgd-all-args-f32": ("float32", lambda lib: lib.schedule_free_sgd(0.2, 10, 0.95, 0.05, 1.0)),
    "sgd-all-args-f64": ("float64", lambda lib: lib.schedule_free_sgd(
        tj.learning_rate("lambda", 0.2), None, 0.8, 0.0, 3.0)),
    "wrapper-adam-f32": ("float32", lambda lib: lib.schedule_free(
        _adam_base(lib is optax.contrib), 0.05, b1=0.95)),
    "wrapper-sgd-schedule-f64": ("float64", lambda lib: lib.schedule_free(
        (optax if lib is optax.contrib else jn).sgd(tj.learning_rate("lambda", 0.2)),
        tj.learning_rate("lambda", 0.2), weight_lr_power=1.0)),
}


@pytest.mark.parametrize("case", sorted(_OPTAX_CASES))
def test_matches_optax_bitwise(case):
  """Jitted (the op-by-op path is checked against jit below): params, updates,
  final state and eval params, all bit for bit."""
  dtype, make = _OPTAX_CASES[case]
  ours, ref = cm.compare_case(jax.jit, sf, make, dtype)
  with tj.precision(dtype):
    chex.assert_trees_all_equal(
        sf.schedule_free_eval_params(ours.state, ours.params),
        optax.contrib.schedule_free_eval_params(ref.state, ref.params),
    )


def test_op_by_op_matches_optax_bitwise():
  """12 steps (eager dispatch is slow), past the warm-up's end at 10."""
  make = _OPTAX_CASES["adamw-all-args-f64"][1]
  tj.compare_with_optax(lambda f: f, lambda: make(sf), lambda: make(optax.contrib), "float64", steps=12,
                        **cm.BITWISE)


def test_jit_equals_op_by_op():
  """The reference form, 8 steps in float64: XLA's fusion (FMAs) only, within
  cm.JIT_EAGER_TOL. (optax's form in float64 with a warm-up is 1e-8 apart, in
  optax too: its warm-up schedule returns float32, whose conversion jit and
  eager round differently; the bitwise tests above cover it mode by mode.)"""
  make = lambda: sf.schedule_free_adamw(0.05, 5, 0.95, 0.99, 1e-6, 0.1, 1.0, reference=True, r=1.0)
  with tj.precision("float64"):
    params = tj.make_params(0, "float64")
    tx = make()
    jitted, eager = tj.run_trajectories(
        lambda f: f, [tx._replace(update=jax.jit(tx.update)), tx], params, 8,
        problem=tj.make_problem(params, 1, 8))
  chex.assert_trees_all_close(jitted.history, eager.history, **cm.JIT_EAGER_TOL)
  tj.assert_states_close(jitted.state, eager.state, **cm.JIT_EAGER_TOL)
  assert not np.allclose(jitted.history["out"]["b"][-1], params["out"]["b"])


@pytest.mark.parametrize("case", ["adamw-all-args-f32", "sgd-all-args-f64", "adamw-state-dtype-f64"])
def test_init_equals_optax(case):
  dtype, make = _OPTAX_CASES[case]
  cm.assert_init_like_optax(sf, make, dtype)


def test_init_state_fields_and_dtypes():
  params = {"w": jnp.ones((2, 3), jnp.bfloat16), "b": jnp.ones(3)}
  state = sf.schedule_free_adamw(state_dtype=jnp.float32).init(params)
  assert isinstance(state, sf.ScheduleFreeState)
  assert state._fields == ("b1", "weight_sum", "step_count", "max_lr", "base_optimizer_state", "z")
  assert state.b1.dtype == jnp.bfloat16 and float(state.b1) == pytest.approx(0.9, rel=1e-2)
  assert state.step_count.dtype == jnp.int32 and int(state.step_count) == 1
  assert float(state.weight_sum) == 0 and float(state.max_lr) == 0
  assert {x.dtype for x in jax.tree.leaves(state.z)} == {jnp.dtype(jnp.float32)}
  chex.assert_trees_all_equal(state.z, jax.tree.map(lambda p: p.astype(jnp.float32), params))
  assert state.z["b"] is not params["b"]  # a copy: both may be donated


def test_eval_params_unwraps_and_refuses_other_states():
  params = {"w": jnp.array([1.0, -2.0])}
  tx = optax.inject_hyperparams(sf.schedule_free_sgd)(learning_rate=0.1)
  state = tx.init(params)
  _, state = tx.update(params, state, params)
  chex.assert_trees_all_equal(
      sf.schedule_free_eval_params(state, params), sf.schedule_free_eval_params(state.inner_state, params))
  with pytest.raises(ValueError, match="`state`"):
    sf.schedule_free_eval_params(optax.sgd(0.1).init(params), params)


# ---------------------------------------------------------------------------
# schedulefree (torch)

SHAPES = {"w": (4, 3), "b": (3,), "s": ()}

# (torch class, torch keyword arguments, our factory, torch LambdaLR multiplier or None).
_ADAMW, _SGD = schedulefree.AdamWScheduleFree, schedulefree.SGDScheduleFree
TORCH_CASES = {
    "adamw-defaults": (_ADAMW, {}, "adamw", None),
    # The README's advice: warm-up, weight decay, b1 of 0.95 / 0.98, and r, weight_lr_power.
    "adamw-readme": (_ADAMW, dict(lr=0.05, betas=(0.95, 0.99), weight_decay=0.1, warmup_steps=10,
                                  r=1.0, weight_lr_power=1.0, eps=1e-6), "adamw", None),
    "adamw-loop-b198": (_ADAMW, dict(lr=0.05, betas=(0.98, 0.999), warmup_steps=20, foreach=False),
                        "adamw", None),
    "adamw-reference-class": (schedulefree.AdamWScheduleFreeReference,
                              dict(lr=0.05, weight_decay=0.05, warmup_steps=5, r=0.5), "adamw", None),
    "adamw-lambda-lr": (_ADAMW, dict(lr=0.05, warmup_steps=5), "adamw", lambda k: 1 / (1 + 0.05 * k)),
    "sgd-defaults-lr": (_SGD, dict(lr=0.2), "sgd", None),
    "sgd-readme": (_SGD, dict(lr=0.3, momentum=0.95, weight_decay=0.05, warmup_steps=10, r=2.0,
                              weight_lr_power=0.0), "sgd", None),
    "sgd-reference-class": (schedulefree.SGDScheduleFreeReference,
                            dict(lr=0.2, momentum=0.8, warmup_steps=8, weight_decay=0.01), "sgd", None),
}

# Measured worst over the cases, 50 steps, every step's params, z and eval
# params. float64: 4e-15 absolute, 1.3e-14 relative (op order only: torch
# lerps y, we recompute x). float32: 9e-6 absolute, 6e-5 relative on
# |x| > 0.1 (adamw-loop-b198, adamw-reference-class): torch builds c, the
# weights and 1 - b2^t as Python float64 scalars, ours are float32, and the
# ulp-sized gaps in y change the next gradient, which g / sqrt(nu) amplifies
# where g is small; SGD's cases stay under 6e-7 absolute.
F64 = dict(rtol=1e-12, atol=1e-13)
F32 = dict(rtol=1e-4, atol=2e-5)


def _ours_kwargs(kw, kind, multiplier):
  kw = {k: v for k, v in kw.items() if k != "foreach"}
  if "betas" in kw:
    kw["b1"], kw["b2"] = kw.pop("betas")
  if "momentum" in kw:
    kw["b1"] = kw.pop("momentum")
  lr = kw.pop("lr", 0.0025 if kind == "adamw" else 1.0)
  kw["learning_rate"] = lr if multiplier is None else (lambda k: lr * multiplier(k))
  return kw


def _grad(h, p, n, lib):
  # Of 0.5 h p^2 + 0.2 sin(2 p) + n p: not quadratic, so the rms scaling varies.
  return h * p + 0.4 * lib.cos(2 * p) + n


def _problem(seed=0):
  rng = np.random.default_rng(seed)
  init = {k: rng.normal(size=s) for k, s in SHAPES.items()}
  curv = {k: rng.uniform(0.5, 2.0, size=s) for k, s in SHAPES.items()}
  noise = {k: 0.3 * rng.normal(size=(STEPS,) + s) for k, s in SHAPES.items()}
  return init, curv, noise


def run_both(case, dtype, *, reference=True, jit=True, steps=STEPS):
  """Lockstep runs; returns (ours, torch's) params per step, and each side's final z and eval params."""
  cls, kw, kind, multiplier = TORCH_CASES[case]
  init, curv, noise = _problem()
  tdt = getattr(torch, dtype)
  tparams = {k: torch.tensor(v, dtype=tdt) for k, v in init.items()}
  opt = cls(list(tparams.values()), **kw)
  sched = None if multiplier is None else torch.optim.lr_scheduler.LambdaLR(opt, multiplier)
  opt.train()
  factory = sf.schedule_free_adamw if kind == "adamw" else sf.schedule_free_sgd
  tx = factory(**_ours_kwargs(kw, kind, multiplier), reference=reference)
  update = jax.jit(tx.update) if jit else tx.update
  grad = jax.jit(lambda p, n: jax.tree.map(lambda h, pi, ni: _grad(h, pi, ni, jnp), curv, p, n))
  p = {k: jnp.asarray(v, dtype) for k, v in init.items()}
  state = tx.init(p)
  got, want = [], []
  for t in range(steps):
    for k, tp in tparams.items():
      tp.grad = _grad(torch.tensor(curv[k], dtype=tdt), tp, torch.tensor(noise[k][t], dtype=tdt), torch)
    opt.step()
    if sched is not None:
      sched.step()
    want.append({k: v.numpy().copy() for k, v in tparams.items()})
    u, state = update(grad(p, {k: jnp.asarray(v[t], dtype) for k, v in noise.items()}), state, p)
    p = jn.apply_updates(p, u)
    got.append({k: np.asarray(v) for k, v in p.items()})
  tz = {k: opt.state[tp]["z"].numpy().copy() for k, tp in tparams.items()}
  opt.eval()
  tx_eval = {k: v.numpy().copy() for k, v in tparams.items()}
  ours = (got, {k: np.asarray(v) for k, v in state.z.items()}, sf.schedule_free_eval_params(state, p))
  assert all(v.dtype == np.dtype(dtype) for v in got[-1].values())
  return ours, (want, tz, tx_eval), init


def _stack(history):
  return {k: np.stack([h[k] for h in history]) for k in history[0]}


def assert_close(ours, theirs, init, tol):
  (got, z, x), (want, tz, tx) = ours, theirs
  chex.assert_trees_all_close(_stack(got), _stack(want), **tol)
  chex.assert_trees_all_close(z, tz, **tol)
  chex.assert_trees_all_close({k: np.asarray(v) for k, v in x.items()}, tx, **tol)
  # Means something only if the params moved, and eval's x is not y.
  assert max(np.max(np.abs(want[-1][k] - init[k])) for k in init) > 5e-2
  assert max(np.max(np.abs(tx[k] - want[-1][k])) for k in init) > 1e-4


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_reference_float64_matches_torch(case):
  with precision("float64"):
    ours, theirs, init = run_both(case, "float64")
  assert_close(ours, theirs, init, F64)


@pytest.mark.parametrize("case", ["adamw-readme", "sgd-readme", "adamw-lambda-lr"])
def test_reference_float32_matches_torch(case):
  ours, theirs, init = run_both(case, "float32")
  assert_close(ours, theirs, init, F32)


def test_optax_form_differs_from_torch_only_with_warmup_or_schedule():
  """optax's z step reads the warm-up one step late: visibly off with
  warm-up; without warm-up and with a constant rate, it is the reference."""
  with precision("float64"):
    ours, theirs, init = run_both("sgd-readme", "float64", reference=False)
    assert np.max(np.abs(ours[0][-1]["w"] - theirs[0][-1]["w"])) > 1e-3
    # optax's first z step is 0, so its first update is too; torch's is not.
    np.testing.assert_array_equal(ours[0][0]["w"], init["w"])
    assert np.max(np.abs(theirs[0][0]["w"] - init["w"])) > 1e-3
    TORCH_CASES["sgd-no-warmup"] = (_SGD, dict(lr=0.2, weight_decay=0.05, r=1.0), "sgd", None)
    try:
      ours, theirs, init = run_both("sgd-no-warmup", "float64", reference=False)
    finally:
      del TORCH_CASES["sgd-no-warmup"]
  assert_close(ours, theirs, init, F64)


# ---------------------------------------------------------------------------
# Wrappers, jit, dtypes


@pytest.mark.parametrize("factory, reference", [("adamw", False), ("sgd", True)])
def test_inject_hyperparams_over_the_learning_rate(factory, reference):
  """The injected rate is traced through the warm-up of either form."""
  make = getattr(sf, f"schedule_free_{factory}")
  cm.assert_injectable(lambda learning_rate: make(learning_rate, warmup_steps=3, reference=reference),
                       learning_rate=0.05)


def test_multisteps_of_two_steps_on_the_mean_gradient():
  params = {"w": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array(0.3)}
  rng = np.random.default_rng(0)
  grads = [jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params) for _ in range(4)]
  kw = dict(learning_rate=0.05, warmup_steps=2, reference=True, weight_decay=0.1)
  multi = optax.MultiSteps(sf.schedule_free_adamw(**kw), every_k_schedule=2)
  plain = sf.schedule_free_adamw(**kw)
  ms, ps, p_multi, p_plain = multi.init(params), plain.init(params), params, params
  multi_update, plain_update = jax.jit(multi.update), jax.jit(plain.update)
  for i in range(0, 4, 2):
    for g in grads[i:i + 2]:
      u, ms = multi_update(g, ms, p_multi)
      p_multi = jn.apply_updates(p_multi, u)
    mean = jax.tree.map(lambda a, b: (a + b) / 2, grads[i], grads[i + 1])
    u, ps = plain_update(mean, ps, p_plain)
    p_plain = jn.apply_updates(p_plain, u)
  chex.assert_trees_all_close(p_multi, p_plain, rtol=1e-6, atol=1e-7)
  chex.assert_trees_all_close(
      sf.schedule_free_eval_params(ms, p_multi), sf.schedule_free_eval_params(ps, p_plain), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("reference", [False, True])
def test_bfloat16_params_keep_their_dtypes(reference):
  """optax's NaN guard returns float32 updates for bfloat16 params; ours stay bfloat16."""
  params = {"w": jnp.ones((2, 2), jnp.bfloat16), "b": jnp.full(3, -1.0, jnp.bfloat16)}
  tx = sf.schedule_free_adamw(0.1, warmup_steps=4, weight_decay=0.1, reference=reference, r=1.0)
  state0 = tx.init(params)
  update = jax.jit(tx.update)
  updates, state = update(params, state0, params)
  updates, state = update(params, state, jn.apply_updates(params, updates))
  dtypes = lambda tree: jax.tree.map(lambda x: x.dtype, tree)
  assert dtypes(updates) == dtypes(params)
  assert dtypes(state) == dtypes(state0)
  assert cm.finite(updates) and any(bool(jnp.any(u != 0)) for u in jax.tree.leaves(updates))


def test_warmup_zero_means_no_warmup():
  """optax's warmup_steps=0 keeps the rate at 0 (nothing trains); here it is no warm-up."""
  params = {"w": jnp.array([1.0, -2.0])}
  for reference in (False, True):
    a, b = sf.schedule_free_sgd(0.1, 0, reference=reference), sf.schedule_free_sgd(0.1, reference=reference)
    ua, _ = a.update(params, a.init(params), params)
    ub, _ = b.update(params, b.init(params), params)
    chex.assert_trees_all_equal(ua, ub)
    assert bool(jnp.all(ua["w"] != 0))


_BAD = [
    ("schedule_free_adamw", dict(learning_rate=float("nan")), ValueError, "learning_rate"),
    ("schedule_free_adamw", dict(b1=0.0), ValueError, "b1"),
    ("schedule_free_adamw", dict(b1=1.5), ValueError, "b1"),
    ("schedule_free_adamw", dict(b2=1.0), ValueError, "b2"),
    ("schedule_free_adamw", dict(eps=-1.0), ValueError, "eps"),
    ("schedule_free_adamw", dict(weight_decay=-0.1), ValueError, "weight_decay"),
    ("schedule_free_adamw", dict(weight_lr_power=-1.0), ValueError, "weight_lr_power"),
    ("schedule_free_adamw", dict(r=float("inf")), ValueError, "r"),
    ("schedule_free_adamw", dict(warmup_steps=-3), ValueError, "warmup_steps"),
    ("schedule_free_adamw", dict(state_dtype="nope"), TypeError, "state_dtype"),
    ("schedule_free_adamw", dict(reference=1), TypeError, "reference"),
    ("schedule_free_adamw", dict(learning_rate=lambda t: 0.1, warmup_steps=3), TypeError, "learning_rate"),
    ("schedule_free_sgd", dict(learning_rate="1"), TypeError, "learning_rate"),
    ("schedule_free_sgd", dict(b1=-0.5), ValueError, "b1"),
    ("schedule_free_sgd", dict(weight_decay=float("nan")), ValueError, "weight_decay"),
    ("schedule_free_sgd", dict(r=-1.0), ValueError, "r"),
    ("schedule_free", dict(base_optimizer="sgd", learning_rate=0.1), TypeError, "base_optimizer"),
    ("schedule_free", dict(base_optimizer=optax.sgd(0.1), learning_rate=0.1, b1=2.0), ValueError, "b1"),
]


@pytest.mark.parametrize("name, kwargs, error, named", _BAD,
                         ids=[f"{b[0]}-{b[3]}-{i}" for i, b in enumerate(_BAD)])
def test_bad_arguments_name_the_argument(name, kwargs, error, named):
  cm.assert_raises_naming(getattr(sf, name), kwargs, error, named)


def test_update_needs_params():
  cm.assert_update_needs_params(sf.schedule_free_sgd(0.1))
