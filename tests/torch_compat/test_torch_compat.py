"""``jaxopt_notes.torch_compat`` against ``torch.optim`` itself.

Every case builds the torch optimizer and ours from the SAME keyword
arguments (the names are torch's), runs both for 200 steps on the same loss
(quadratic plus sine terms plus a precomputed random linear term, so the
gradient depends on the params), with gradients from torch autograd and from
``jax.grad``, and compares the whole parameter trajectory. No reference
numbers are pasted: torch computes them here. torch (CPU) is a test extra.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch  # a test extra: a missing install must fail, not skip

torch.set_num_threads(1)

import jaxopt_notes as jn  # noqa: E402
from jaxopt_notes import torch_compat as tc  # noqa: E402
from jaxopt_notes.core.tree import apply_updates  # noqa: E402
from tests.contrib._torch_ref import precision  # noqa: E402

STEPS = 200
SHAPES = {"w": (3, 4), "b": (5,), "s": ()}

# float64: both sides do the same math in double; only rounding order differs.
F64 = dict(rtol=1e-6, atol=1e-9)
# float32 needs 5e-5 (measured worst case 2.1e-5, Adam with maximize=True).
# Why: (1) torch and XLA order and fuse float ops differently (FMA or not,
# lerp vs two products, sqrt(v)/sqrt(c) vs sqrt(v/c), their own sin/cos), a
# few ulps per step that feed back through the params for 200 steps (~1e-6);
# (2) torch forms step-dependent scalars (lr / (1 - b1^t), ...) in double and
# rounds once, but the reused scale_by_adam rounds beta2 to float32 before
# 1 - beta2**t, a 1.3e-5 relative error for 0.999 (0.99900001): ~6e-6 of
# every Adam step, the largest term (a precise 1 - beta2**t measures 10-30x
# closer); (3) torch's decoupled decay multiplies by float32(1 - lr * wd),
# whose rounding is up to 0.3% of lr * wd when that is 1e-5 (AdamW
# defaults): there torch float32 is the one further from torch float64.
F32 = dict(rtol=5e-5, atol=5e-5)


def problem(seed=0):
  rng = np.random.default_rng(seed)
  init = {k: rng.normal(size=s) for k, s in SHAPES.items()}
  curv = {k: rng.uniform(1.0, 2.0, size=s) for k, s in SHAPES.items()}
  noise = {k: rng.normal(size=(STEPS,) + s) for k, s in SHAPES.items()}
  return init, curv, noise


def torch_trajectory(make_opt, dtype, make_sched=None, seed=0):
  init, curv, noise = problem(seed)
  tdt = getattr(torch, dtype)
  params = {k: torch.tensor(v, dtype=tdt, requires_grad=True) for k, v in init.items()}
  curv = {k: torch.tensor(v, dtype=tdt) for k, v in curv.items()}
  noise = {k: torch.tensor(v, dtype=tdt) for k, v in noise.items()}
  opt = make_opt(list(params.values()))
  sched = make_sched(opt) if make_sched else None
  out = {k: [] for k in params}
  for t in range(STEPS):
    opt.zero_grad()
    loss = sum(
        torch.sum(0.5 * curv[k] * p**2 + 0.2 * torch.sin(2 * p) + noise[k][t] * p)
        for k, p in params.items()
    )
    loss.backward()
    opt.step()
    if sched is not None:
      sched.step()
    for k, p in params.items():
      out[k].append(p.detach().numpy().copy())
  return {k: np.stack(v) for k, v in out.items()}


def jax_trajectory(tx, dtype, seed=0):
  init, curv, noise = problem(seed)
  params = {k: jnp.asarray(v, dtype) for k, v in init.items()}
  curv = {k: jnp.asarray(v, dtype) for k, v in curv.items()}
  noise = {k: jnp.asarray(v, dtype) for k, v in noise.items()}

  def loss(p, n):
    return sum(
        jnp.sum(0.5 * curv[k] * p[k] ** 2 + 0.2 * jnp.sin(2 * p[k]) + n[k] * p[k]) for k in p
    )

  def step(carry, n):
    p, s = carry
    u, s = tx.update(jax.grad(loss)(p, n), s, p)
    p = apply_updates(p, u)
    return (p, s), p

  @jax.jit
  def run(p):
    return jax.lax.scan(step, (p, tx.init(p)), noise)[1]

  traj = run(params)
  assert all(v.dtype == jnp.dtype(dtype) for v in jax.tree.leaves(traj))
  return {k: np.asarray(v) for k, v in traj.items()}


def assert_trajectories_close(got, ref, tol):
  for k in ref:
    np.testing.assert_allclose(got[k], ref[k], err_msg=f"leaf {k}", **tol)
  # The comparison means something only if the params actually moved.
  init = problem()[0]
  assert max(np.max(np.abs(ref[k][-1] - init[k])) for k in ref) > 1e-2


# (torch class name, keyword arguments shared by torch and torch_compat).
CASES = [
    ("SGD", {}),
    ("SGD", {"lr": 0.05}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.5}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.05, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.2, "weight_decay": 0.1}),
    ("SGD", {"lr": 1e-3, "momentum": 0.9, "maximize": True}),
    ("Adagrad", {}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.05}),
    ("Adagrad", {"lr": 0.1, "initial_accumulator_value": 0.5}),
    ("Adagrad", {"lr": 0.1, "weight_decay": 0.1, "eps": 1e-3}),
    ("Adagrad", {"lr": 0.1, "maximize": True}),
    ("Adadelta", {}),
    ("Adadelta", {"rho": 0.8, "weight_decay": 0.1}),
    ("Adadelta", {"lr": 0.5, "maximize": True}),
    ("RMSprop", {}),
    ("RMSprop", {"alpha": 0.9, "eps": 1e-3}),
    ("RMSprop", {"centered": True}),
    ("RMSprop", {"lr": 1e-3, "momentum": 0.9}),
    ("RMSprop", {"lr": 1e-3, "momentum": 0.9, "centered": True, "weight_decay": 0.1}),
    ("RMSprop", {"weight_decay": 0.1}),
    ("RMSprop", {"maximize": True}),
    ("Adam", {}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "amsgrad": True, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "maximize": True}),
    ("AdamW", {}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.5}),
    ("AdamW", {"lr": 0.01, "amsgrad": True}),
    ("AdamW", {"lr": 0.01, "maximize": True}),
    ("NAdam", {}),
    ("NAdam", {"momentum_decay": 0.02}),
    ("NAdam", {"weight_decay": 0.1}),
    ("NAdam", {"weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("NAdam", {"maximize": True, "betas": (0.8, 0.99)}),
    ("RAdam", {"lr": 0.01}),
    ("RAdam", {"lr": 0.01, "weight_decay": 0.1}),
    ("RAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("RAdam", {"lr": 0.01, "betas": (0.9, 0.99), "maximize": True}),
    ("Adamax", {}),
    ("Adamax", {"lr": 0.02, "weight_decay": 0.1}),
    ("Adamax", {"lr": 0.02, "maximize": True}),
]


def _case_id(case):
  name, kw = case
  return name + ("-" + ",".join(f"{k}={v}" for k, v in kw.items()) if kw else "-defaults")


def _pair(name, kw, **torch_extra):
  make_torch = lambda ps: getattr(torch.optim, name)(ps, **kw, **torch_extra)  # noqa: E731
  return make_torch, getattr(tc, name.lower())(**kw)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_trajectory_matches_torch(case, dtype):
  name, kw = case
  with precision(dtype):
    make_torch, tx = _pair(name, kw)
    ref = torch_trajectory(make_torch, dtype)
    got = jax_trajectory(tx, dtype)
  assert_trajectories_close(got, ref, F64 if dtype == "float64" else F32)


FUSED = [
    ("SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "maximize": True}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.5, "amsgrad": True}),
]


@pytest.mark.parametrize("case", FUSED, ids=[_case_id(c) for c in FUSED])
def test_fused_torch_matches_within_float32_tolerance(case):
  name, kw = case
  make_torch, tx = _pair(name, kw, fused=True)
  ref = torch_trajectory(make_torch, "float32")
  assert_trajectories_close(jax_trajectory(tx, "float32"), ref, F32)


def _sched(cls, **kw):
  return lambda opt: getattr(torch.optim.lr_scheduler, cls)(opt, **kw)


# An lr schedule in torch (scheduler.step() after each optimizer.step()) and
# the same schedule passed as `lr` here give the same lr at every update.
SCHEDULED = [
    ("SGD", {"momentum": 0.9}, 0.05, _sched("OneCycleLR", max_lr=0.05, total_steps=STEPS,
                                            cycle_momentum=False),
     lambda lr: tc.one_cycle_lr(0.05, STEPS)),
    ("Adam", {}, 0.02, _sched("CosineAnnealingLR", T_max=60, eta_min=1e-3),
     lambda lr: tc.cosine_annealing_lr(lr, 60, 1e-3)),
    ("Adagrad", {"lr_decay": 0.01}, 0.1, _sched("StepLR", step_size=30, gamma=0.5),
     lambda lr: tc.step_lr(lr, 30, 0.5)),
    ("AdamW", {"weight_decay": 0.5}, 0.02, _sched("LinearLR", start_factor=0.1, total_iters=50),
     lambda lr: tc.linear_lr(lr, 0.1, total_iters=50)),
    ("RMSprop", {"momentum": 0.5}, 1e-3, _sched("ExponentialLR", gamma=0.99),
     lambda lr: tc.exponential_lr(lr, 0.99)),
    ("NAdam", {"decoupled_weight_decay": True, "weight_decay": 0.3}, 0.01,
     _sched("MultiStepLR", milestones=[20, 80, 80]), lambda lr: tc.multi_step_lr(lr, [20, 80, 80])),
    ("RAdam", {}, 0.02, _sched("PolynomialLR", total_iters=150, power=2.0),
     lambda lr: tc.polynomial_lr(lr, 150, 2.0)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", SCHEDULED, ids=[c[0] for c in SCHEDULED])
def test_scheduled_lr_matches_torch_scheduler(case, dtype):
  name, kw, lr, make_sched, schedule = case
  with precision(dtype):
    make_torch = lambda ps: getattr(torch.optim, name)(ps, lr=lr, **kw)  # noqa: E731
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")  # torch's scheduler warnings are not under test
      ref = torch_trajectory(make_torch, dtype, make_sched)
    got = jax_trajectory(getattr(tc, name.lower())(lr=schedule(lr), **kw), dtype)
  assert_trajectories_close(got, ref, F64 if dtype == "float64" else F32)


# ------------------------------------------------ documented relations ----


def _final(tx):
  with jax.enable_x64(True):
    traj = jax_trajectory(tx, "float64")
  return np.concatenate([v[-1].ravel() for v in traj.values()])


# What each docstring says about the optax-named optimizer of the same name.
SAME_AS_OPTAX_NAMED = [
    ("AdamW", lambda: tc.adamw(lr=0.01, weight_decay=0.1),
     lambda: jn.adamw(0.01, weight_decay=0.1)),
    ("SGD", lambda: tc.sgd(lr=0.05, momentum=0.9), lambda: jn.sgd(0.05, 0.9)),
    ("Adadelta", lambda: tc.adadelta(lr=0.5), lambda: jn.adadelta(0.5)),
    ("Adamax", lambda: tc.adamax(), lambda: jn.adamax(2e-3)),
]
DIFFERENT_FROM_OPTAX_NAMED = [
    # eps placements differ: visible once eps is not negligible next to sqrt(v).
    ("RMSprop", lambda: tc.rmsprop(lr=1e-2, alpha=0.9, eps=0.1), lambda: jn.rmsprop(1e-2, eps=0.1)),
    ("Adagrad", lambda: tc.adagrad(lr=0.1, eps=1e-7), lambda: jn.adagrad(0.1)),
    ("SGD-dampening", lambda: tc.sgd(lr=0.05, momentum=0.9, dampening=0.5),
     lambda: jn.sgd(0.05, 0.9, average_momentum=True)),
    ("AMSGrad", lambda: tc.adam(lr=0.01, amsgrad=True), lambda: jn.amsgrad(0.01)),
    ("NAdam", lambda: tc.nadam(), lambda: jn.nadam(2e-3)),
    ("RAdam", lambda: tc.radam(lr=0.01, eps=0.1), lambda: jn.radam(0.01, eps=0.1)),
]


@pytest.mark.parametrize("case", SAME_AS_OPTAX_NAMED, ids=[c[0] for c in SAME_AS_OPTAX_NAMED])
def test_equal_to_optax_named_where_documented(case):
  _, ours, theirs = case
  np.testing.assert_allclose(_final(ours()), _final(theirs()), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "case", DIFFERENT_FROM_OPTAX_NAMED, ids=[c[0] for c in DIFFERENT_FROM_OPTAX_NAMED]
)
def test_differs_from_optax_named_where_documented(case):
  _, ours, theirs = case
  assert np.max(np.abs(_final(ours()) - _final(theirs()))) > 1e-4


def test_update_needs_params_only_with_weight_decay():
  grads = {"w": jnp.ones(3)}
  tx = tc.adam()
  updates, _ = tx.update(grads, tx.init(grads))  # no params: fine, as no decay
  assert updates["w"].shape == (3,)
  tx = tc.adamw()
  with pytest.raises(ValueError, match="params"):
    tx.update(grads, tx.init(grads))


# --------------------------------------------------------- validation ------

# (torch class, kwargs, exception, pattern naming the argument, torch raises too)
BAD_ARGS = [
    ("SGD", {"lr": float("nan")}, ValueError, "`lr`", False),
    ("SGD", {"lr": float("inf")}, ValueError, "`lr`", False),
    ("SGD", {"lr": -0.1}, ValueError, "`lr`", True),
    ("SGD", {"lr": "0.1"}, TypeError, "`lr`", True),
    ("SGD", {"momentum": -0.5}, ValueError, "`momentum`", True),
    ("SGD", {"weight_decay": -1.0}, ValueError, "`weight_decay`", True),
    ("SGD", {"nesterov": True}, ValueError, "`nesterov", True),
    ("SGD", {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, ValueError, "`dampening`", True),
    ("SGD", {"dampening": float("nan"), "momentum": 0.9}, ValueError, "`dampening`", False),
    ("SGD", {"maximize": "yes"}, TypeError, "`maximize`", False),
    ("Adagrad", {"lr_decay": -0.1}, ValueError, "`lr_decay`", True),
    ("Adagrad", {"initial_accumulator_value": -0.1}, ValueError, "`initial_accumulator_value`",
     True),
    ("Adagrad", {"eps": -1e-10}, ValueError, "`eps`", True),
    ("Adadelta", {"rho": 1.5}, ValueError, "`rho`", True),
    ("Adadelta", {"eps": -1.0}, ValueError, "`eps`", True),
    ("RMSprop", {"alpha": -0.5}, ValueError, "`alpha`", True),
    ("RMSprop", {"alpha": 1.0}, ValueError, "`alpha`", False),
    ("RMSprop", {"momentum": -0.1}, ValueError, "`momentum`", True),
    ("RMSprop", {"centered": 1}, TypeError, "`centered`", False),
    ("Adam", {"betas": (1.0, 0.999)}, ValueError, r"`betas\[0\]`", True),
    ("Adam", {"betas": (0.9, -0.1)}, ValueError, r"`betas\[1\]`", True),
    ("Adam", {"betas": (0.9,)}, TypeError, "`betas`", False),
    ("Adam", {"eps": -1e-8}, ValueError, "`eps`", True),
    ("Adam", {"weight_decay": -0.1}, ValueError, "`weight_decay`", True),
    ("Adam", {"amsgrad": "no"}, TypeError, "`amsgrad`", False),
    ("AdamW", {"weight_decay": float("nan")}, ValueError, "`weight_decay`", False),
    ("AdamW", {"betas": (0.9, 1.0)}, ValueError, r"`betas\[1\]`", True),
    ("NAdam", {"momentum_decay": -1e-3}, ValueError, "`momentum_decay`", True),
    ("NAdam", {"decoupled_weight_decay": None}, TypeError, "`decoupled_weight_decay`", False),
    ("RAdam", {"betas": (-0.1, 0.999)}, ValueError, r"`betas\[0\]`", True),
    ("RAdam", {"lr": -1.0}, ValueError, "`lr`", True),
    ("Adamax", {"eps": -1.0}, ValueError, "`eps`", True),
    ("Adamax", {"weight_decay": -1.0}, ValueError, "`weight_decay`", True),
]


@pytest.mark.parametrize(
    "case", BAD_ARGS, ids=[f"{c[0]}-{'-'.join(c[1])}-{i}" for i, c in enumerate(BAD_ARGS)]
)
def test_bad_arguments_raise_naming_the_argument(case):
  name, kw, exc, pattern, torch_raises = case
  with pytest.raises(exc, match=pattern):
    getattr(tc, name.lower())(**kw)
  if torch_raises:  # the same arguments are rejected by torch itself
    with pytest.raises((ValueError, TypeError)):
      getattr(torch.optim, name)([torch.zeros(1, requires_grad=True)], **kw)


def test_schedule_lr_is_accepted_and_checked_lazily():
  tx = tc.sgd(lr=lambda t: 0.1 / (1 + t), momentum=0.9)
  params = {"w": jnp.ones(2)}
  updates, _ = jax.jit(tx.update)(params, tx.init(params), params)
  np.testing.assert_allclose(updates["w"], -0.1 * np.ones(2), rtol=1e-6)
