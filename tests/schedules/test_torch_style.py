"""``jaxopt_notes.torch_schedules`` against ``torch.optim.lr_scheduler`` itself.

torch's scheduler is driven by a dummy optimizer; ``get_last_lr()`` after
``t`` calls of ``scheduler.step()`` is compared with ``schedule(t)``
evaluated under ``jit`` for every ``t``. No reference numbers are pasted.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch  # a test extra: a missing install must fail, not skip

torch.set_num_threads(1)

from jaxopt_notes import torch_compat  # noqa: E402
from jaxopt_notes.schedules import torch_style as ts  # noqa: E402

# torch evaluates in Python doubles. float64 differs only by the rounding
# of its recursive products (~1e-13); float32 by a few float32 ulps, which
# the schedules keep relative even for tiny lrs (no 1 + cos cancellation).
TOL = {"float32": dict(rtol=2e-6, atol=0.0), "float64": dict(rtol=1e-10, atol=0.0)}


def torch_lrs(make, base_lr, steps):
  param = torch.nn.Parameter(torch.zeros(1))
  opt = torch.optim.SGD([param], lr=base_lr)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    sched = make(opt)
    lrs = [sched.get_last_lr()[0]]
    for _ in range(steps):
      opt.step()
      sched.step()
      lrs.append(sched.get_last_lr()[0])
  return np.asarray(lrs, dtype=np.float64)


def our_lrs(schedule, steps, dtype):
  with jax.enable_x64(dtype == "float64"):
    lrs = jax.jit(jax.vmap(schedule))(jnp.arange(steps + 1))
    assert lrs.dtype == jnp.dtype(dtype)
    return np.asarray(lrs, dtype=np.float64)


def _torch(cls, **kw):
  return lambda opt: getattr(torch.optim.lr_scheduler, cls)(opt, **kw)


# (id, torch scheduler factory, our schedule, base lr, steps)
CASES = [
    ("step", _torch("StepLR", step_size=30), ts.step_lr(0.1, 30), 0.1, 300),
    ("step-gamma", _torch("StepLR", step_size=7, gamma=0.7), ts.step_lr(0.3, 7, 0.7), 0.3, 300),
    ("step-1", _torch("StepLR", step_size=1, gamma=0.97), ts.step_lr(1.0, 1, 0.97), 1.0, 300),
    ("multistep", _torch("MultiStepLR", milestones=[30, 80]), ts.multi_step_lr(0.1, [30, 80]),
     0.1, 300),
    ("multistep-repeats", _torch("MultiStepLR", milestones=[0, 50, 50, 10], gamma=0.5),
     ts.multi_step_lr(0.2, [50, 10, 0, 50], 0.5), 0.2, 300),
    ("multistep-empty", _torch("MultiStepLR", milestones=[]), ts.multi_step_lr(0.1, []), 0.1, 50),
    ("exp", _torch("ExponentialLR", gamma=0.95), ts.exponential_lr(0.1, 0.95), 0.1, 300),
    ("exp-slow", _torch("ExponentialLR", gamma=0.999), ts.exponential_lr(2.0, 0.999), 2.0, 300),
    ("cos", _torch("CosineAnnealingLR", T_max=100), ts.cosine_annealing_lr(0.1, 100), 0.1, 300),
    ("cos-eta-min-past-tmax", _torch("CosineAnnealingLR", T_max=37, eta_min=1e-3),
     ts.cosine_annealing_lr(0.05, 37, 1e-3), 0.05, 6 * 37),
    ("cos-tmax-1", _torch("CosineAnnealingLR", T_max=1, eta_min=0.01),
     ts.cosine_annealing_lr(0.1, 1, 0.01), 0.1, 20),
    ("cos-long", _torch("CosineAnnealingLR", T_max=250), ts.cosine_annealing_lr(1e-3, 250),
     1e-3, 500),
    ("linear", _torch("LinearLR"), ts.linear_lr(0.1), 0.1, 50),
    ("linear-decay", _torch("LinearLR", start_factor=1.0, end_factor=0.05, total_iters=120),
     ts.linear_lr(0.1, 1.0, 0.05, 120), 0.1, 300),
    ("linear-warmup", _torch("LinearLR", start_factor=0.01, total_iters=77),
     ts.linear_lr(3e-4, 0.01, 1.0, 77), 3e-4, 300),
    ("poly", _torch("PolynomialLR"), ts.polynomial_lr(0.1), 0.1, 30),
    ("poly-sq", _torch("PolynomialLR", total_iters=150, power=2.0),
     ts.polynomial_lr(0.1, 150, 2.0), 0.1, 300),
    ("poly-root", _torch("PolynomialLR", total_iters=200, power=0.5),
     ts.polynomial_lr(0.5, 200, 0.5), 0.5, 300),
    ("onecycle", _torch("OneCycleLR", max_lr=0.1, total_steps=300),
     ts.one_cycle_lr(0.1, 300), 0.1, 300),
    ("onecycle-linear", _torch("OneCycleLR", max_lr=0.1, total_steps=250,
                               anneal_strategy="linear"),
     ts.one_cycle_lr(0.1, 250, anneal_strategy="linear"), 0.1, 250),
    ("onecycle-three-phase", _torch("OneCycleLR", max_lr=1.0, total_steps=333, pct_start=0.25,
                                    three_phase=True, div_factor=10.0, final_div_factor=100.0),
     ts.one_cycle_lr(1.0, 333, pct_start=0.25, three_phase=True, div_factor=10.0,
                     final_div_factor=100.0), 1.0, 333),
    ("onecycle-three-phase-linear", _torch("OneCycleLR", max_lr=0.02, epochs=10,
                                           steps_per_epoch=31, anneal_strategy="linear",
                                           three_phase=True),
     ts.one_cycle_lr(0.02, epochs=10, steps_per_epoch=31, anneal_strategy="linear",
                     three_phase=True), 0.02, 310),
    ("onecycle-pct0", _torch("OneCycleLR", max_lr=0.1, total_steps=200, pct_start=0.0),
     ts.one_cycle_lr(0.1, 200, pct_start=0.0), 0.1, 200),
    ("onecycle-pct0.9", _torch("OneCycleLR", max_lr=0.1, total_steps=200, pct_start=0.9),
     ts.one_cycle_lr(0.1, 200, pct_start=0.9), 0.1, 200),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_schedule_matches_torch_scheduler(case, dtype):
  _, make, schedule, base_lr, steps = case
  ref = torch_lrs(make, base_lr, steps)
  np.testing.assert_allclose(our_lrs(schedule, steps, dtype), ref, **TOL[dtype])


def test_one_cycle_holds_its_last_value_past_total_steps():
  schedule = ts.one_cycle_lr(0.1, 100)
  lrs = np.asarray(jax.vmap(schedule)(jnp.arange(100, 130)))
  np.testing.assert_array_equal(lrs, lrs[0])


def test_schedules_accept_python_and_traced_steps():
  for schedule in (ts.step_lr(0.1, 3), ts.cosine_annealing_lr(0.1, 10), ts.one_cycle_lr(0.1, 50)):
    np.testing.assert_allclose(schedule(7), jax.jit(schedule)(jnp.int32(7)), rtol=1e-6)


def test_torch_compat_reexports_the_schedules():
  for name in ts.__all__:
    assert getattr(torch_compat, name) is getattr(ts, name)


BAD = [
    (lambda: ts.step_lr(0.1, 0), ValueError, "`step_size`"),
    (lambda: ts.step_lr(0.1, 2.5), TypeError, "`step_size`"),
    (lambda: ts.step_lr(float("nan"), 2), ValueError, "`base_lr`"),
    (lambda: ts.step_lr(-0.1, 2), ValueError, "`base_lr`"),
    (lambda: ts.step_lr(0.1, 2, gamma=-0.5), ValueError, "`gamma`"),
    (lambda: ts.multi_step_lr(0.1, [10, -1]), ValueError, "`milestones`"),
    (lambda: ts.multi_step_lr(0.1, 10), TypeError, "`milestones`"),
    (lambda: ts.exponential_lr(0.1, "0.9"), TypeError, "`gamma`"),
    (lambda: ts.cosine_annealing_lr(0.1, 0), ValueError, "`T_max`"),
    (lambda: ts.cosine_annealing_lr(0.1, 10, eta_min=-1.0), ValueError, "`eta_min`"),
    (lambda: ts.linear_lr(0.1, start_factor=0.0), ValueError, "`start_factor`"),
    (lambda: ts.linear_lr(0.1, start_factor=1.5), ValueError, "`start_factor`"),
    (lambda: ts.linear_lr(0.1, end_factor=1.5), ValueError, "`end_factor`"),
    (lambda: ts.linear_lr(0.1, total_iters=0), ValueError, "`total_iters`"),
    (lambda: ts.polynomial_lr(0.1, total_iters=-3), ValueError, "`total_iters`"),
    (lambda: ts.polynomial_lr(0.1, power=float("inf")), ValueError, "`power`"),
    (lambda: ts.one_cycle_lr(0.1), ValueError, "`total_steps`"),
    (lambda: ts.one_cycle_lr(0.1, epochs=3), ValueError, "`steps_per_epoch`"),
    (lambda: ts.one_cycle_lr(0.1, 0), ValueError, "`total_steps`"),
    (lambda: ts.one_cycle_lr(0.1, epochs=0, steps_per_epoch=5), ValueError, "`epochs`"),
    (lambda: ts.one_cycle_lr(0.1, 100, pct_start=1.5), ValueError, "`pct_start`"),
    (lambda: ts.one_cycle_lr(0.1, 100, pct_start=0.01), ValueError, "`pct_start`"),
    (lambda: ts.one_cycle_lr(0.1, 100, pct_start=1.0), ValueError, "`pct_start`"),
    (lambda: ts.one_cycle_lr(0.1, 100, anneal_strategy="exp"), ValueError, "`anneal_strategy`"),
    (lambda: ts.one_cycle_lr(0.1, 100, div_factor=0.0), ValueError, "`div_factor`"),
    (lambda: ts.one_cycle_lr(0.1, 100, final_div_factor=-1.0), ValueError, "`final_div_factor`"),
]


@pytest.mark.parametrize("case", BAD, ids=[f"{c[2]}-{i}" for i, c in enumerate(BAD)])
def test_bad_arguments_raise_naming_the_argument(case):
  build, exc, pattern = case
  with pytest.raises(exc, match=pattern):
    build()


def test_zero_length_phases_fail_in_torch_too():
  # The two OneCycleLR configurations rejected above divide by zero in torch.
  param = torch.nn.Parameter(torch.zeros(1))
  opt = torch.optim.SGD([param], lr=0.1)
  with pytest.raises(ZeroDivisionError):
    torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=100, pct_start=0.01)
  sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=100, pct_start=1.0)
  with warnings.catch_warnings(), pytest.raises(ZeroDivisionError):
    warnings.simplefilter("ignore")
    for _ in range(100):
      opt.step()
      sched.step()
