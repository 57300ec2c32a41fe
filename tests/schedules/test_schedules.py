"""Tests for ``jaxopt_notes.schedules`` as a whole.

optax is the reference for every optax-named schedule (its numbers are
computed here, never pasted); every schedule is checked under jit, with traced
hyper-parameters, against bad arguments and as an optimizer's learning rate.
The notes' decays against their formulas are in ``test_notes.py``, the
interpolated schedules' levels in ``test_interpolated.py``.
"""

import importlib
import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_notes import schedules as S
from tests.schedules._common import RTOL, STEPS, assert_close, assert_close_at_scale

OPTAX_NAMES = (
    "constant_schedule",
    "polynomial_schedule",
    "linear_schedule",
    "piecewise_constant_schedule",
    "exponential_decay",
    "cosine_decay_schedule",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
    "join_schedules",
    "sgdr_schedule",
    "cosine_onecycle_schedule",
    "piecewise_interpolate_schedule",
    "warmup_constant_schedule",
    "linear_onecycle_schedule",
)
NOTES_NAMES = ("inverse_time_decay", "inverse_sqrt_decay", "step_decay",
               "per_epoch")


def _kw(**kwargs):
  return lambda m: kwargs


def _join_a(m):
  return dict(
      schedules=[
          m.linear_schedule(0.0, 1.0, 100),
          m.cosine_decay_schedule(1.0, 900),
          m.constant_schedule(0.01),
      ],
      boundaries=[100, 1000],
  )


def _join_b(m):
  return dict(
      schedules=[
          m.exponential_decay(1.0, 10, 0.5),
          m.piecewise_constant_schedule(0.5, {5: 0.1, 3000: 4.0}),
      ],
      boundaries=[1],
  )


# (optax name, kwargs built from a module, the steps where something changes)
OPTAX_CASES = [
    ("constant_schedule", _kw(value=0.1), ()),
    ("constant_schedule", _kw(value=5), ()),
    ("polynomial_schedule", _kw(init_value=1.0, end_value=0.01, power=2,
                                transition_steps=100), (100,)),
    ("polynomial_schedule", _kw(init_value=0.5, end_value=0.0, power=0.5,
                                transition_steps=1000, transition_begin=50),
     (50, 1050)),
    ("polynomial_schedule", _kw(init_value=1e-3, end_value=1e-1, power=1.5,
                                transition_steps=4000, transition_begin=300),
     (300, 4300)),
    ("polynomial_schedule", _kw(init_value=1.0, end_value=0.0, power=3,
                                transition_steps=1), (1,)),
    ("linear_schedule", _kw(init_value=1.0, end_value=0.0,
                            transition_steps=1000), (1000,)),
    ("linear_schedule", _kw(init_value=0.1, end_value=0.2,
                            transition_steps=300, transition_begin=100),
     (100, 400)),
    ("linear_schedule", _kw(init_value=0.0, end_value=1e-3,
                            transition_steps=4999, transition_begin=1),
     (1, 5000)),
    ("piecewise_constant_schedule", _kw(
        init_value=1.0, boundaries_and_scales={100: 0.1, 200: 0.01}),
     (100, 200)),
    ("piecewise_constant_schedule", _kw(
        init_value=0.3,
        boundaries_and_scales={0: 0.5, 1: 2.0, 2500: 0.1, 4999: 0.3}),
     (0, 1, 2500, 4999)),
    ("piecewise_constant_schedule", _kw(
        init_value=2, boundaries_and_scales={10: 0.5, 20: 0.0, 30: 3.0}),
     (10, 20, 30)),
    ("piecewise_constant_schedule", _kw(init_value=0.1), ()),
    ("exponential_decay", _kw(init_value=1.0, transition_steps=100,
                              decay_rate=0.5), (100, 200)),
    ("exponential_decay", _kw(init_value=0.5, transition_steps=250,
                              decay_rate=0.9, transition_begin=100,
                              staircase=True), (100, 350, 600)),
    ("exponential_decay", _kw(init_value=0.01, transition_steps=300,
                              decay_rate=0.95, end_value=0.001), (300,)),
    ("exponential_decay", _kw(init_value=0.01, transition_steps=300,
                              decay_rate=1.5, transition_begin=50,
                              staircase=True, end_value=0.05), (50, 350, 650)),
    ("exponential_decay", _kw(init_value=0.2, transition_steps=1,
                              decay_rate=0.99, transition_begin=4000,
                              staircase=True), (4000, 4001)),
    ("exponential_decay", _kw(init_value=1.0, transition_steps=7,
                              decay_rate=1.0, end_value=2.0), (7,)),
    ("cosine_decay_schedule", _kw(init_value=1.0, decay_steps=1000), (1000,)),
    ("cosine_decay_schedule", _kw(init_value=0.1, decay_steps=4000, alpha=0.1,
                                  exponent=2.0), (4000,)),
    ("cosine_decay_schedule", _kw(init_value=0.5, decay_steps=1, alpha=0.5),
     (1,)),
    ("cosine_decay_schedule", _kw(init_value=2.0, decay_steps=7777,
                                  exponent=0.5), ()),
    ("warmup_cosine_decay_schedule", _kw(
        init_value=0.0, peak_value=1.0, warmup_steps=100, decay_steps=1000),
     (100, 1000)),
    ("warmup_cosine_decay_schedule", _kw(
        init_value=1e-4, peak_value=3e-3, warmup_steps=0, decay_steps=4000,
        end_value=1e-5), (4000,)),
    ("warmup_cosine_decay_schedule", _kw(
        init_value=0.1, peak_value=0.0, warmup_steps=50, decay_steps=500),
     (50, 500)),
    ("warmup_cosine_decay_schedule", _kw(
        init_value=0.0, peak_value=0.5, warmup_steps=1000, decay_steps=1001,
        end_value=0.05, exponent=2.0), (1000, 1001)),
    ("warmup_exponential_decay_schedule", _kw(
        init_value=0.0, peak_value=1.0, warmup_steps=100, transition_steps=50,
        decay_rate=0.5), (100, 150)),
    ("warmup_exponential_decay_schedule", _kw(
        init_value=0.1, peak_value=0.5, warmup_steps=0, transition_steps=300,
        decay_rate=0.9, transition_begin=100, staircase=True, end_value=0.01),
     (100, 400)),
    ("warmup_exponential_decay_schedule", _kw(
        init_value=0.0, peak_value=0.2, warmup_steps=200, transition_steps=100,
        decay_rate=0.8, transition_begin=20, end_value=0.05), (200, 220)),
    ("join_schedules", _join_a, (100, 1000)),
    ("join_schedules", _join_b, (1, 6, 3001)),
    ("join_schedules", lambda m: dict(
        schedules=[m.constant_schedule(0.3)], boundaries=[]), ()),
    ("sgdr_schedule", _kw(cosine_kwargs=[dict(
        init_value=0.0, peak_value=1.0, warmup_steps=10, decay_steps=100)] * 3),
     (10, 100, 110, 200, 300)),
    ("sgdr_schedule", _kw(cosine_kwargs=[
        dict(init_value=1e-4, peak_value=1e-2, warmup_steps=0,
             decay_steps=1000, end_value=1e-5),
        dict(init_value=1e-5, peak_value=5e-3, warmup_steps=100,
             decay_steps=2000, exponent=2.0),
        dict(init_value=0.0, peak_value=1e-3, warmup_steps=50,
             decay_steps=500),
    ]), (1000, 1100, 3000, 3050, 3500)),
    ("cosine_onecycle_schedule", _kw(transition_steps=1000, peak_value=1.0),
     (300, 1000)),
    ("cosine_onecycle_schedule", _kw(transition_steps=5000, peak_value=0.1,
                                     pct_start=0.25, div_factor=10.0,
                                     final_div_factor=100.0), (1250, 5000)),
    ("cosine_onecycle_schedule", _kw(transition_steps=7, peak_value=2.0,
                                     pct_start=0.5), (3, 7)),
    ("cosine_onecycle_schedule", _kw(transition_steps=1, peak_value=1.0),
     (0, 1)),
    ("cosine_onecycle_schedule", _kw(transition_steps=3000, peak_value=0.3,
                                     pct_start=0.0), (0, 3000)),
    ("piecewise_interpolate_schedule", _kw(
        interpolate_type="linear", init_value=1.0,
        boundaries_and_scales={100: 0.1, 2000: 0.01, 4500: 5.0}), (100, 2000, 4500)),
    ("piecewise_interpolate_schedule", _kw(
        interpolate_type="cosine", init_value=0.3,
        boundaries_and_scales={0: 0.5, 1: 2.0, 777: 0.0, 3000: 4.0}), (0, 1, 777, 3000)),
    ("piecewise_interpolate_schedule", _kw(
        interpolate_type="cosine", init_value=2,
        boundaries_and_scales={10: 3, 20: 0}), (10, 20)),
    ("piecewise_interpolate_schedule", _kw(interpolate_type="linear",
                                           init_value=0.1), ()),
    ("piecewise_interpolate_schedule", _kw(interpolate_type="cosine",
                                           init_value=0.7,
                                           boundaries_and_scales={}), ()),
    ("warmup_constant_schedule", _kw(init_value=0.0, peak_value=1.0,
                                     warmup_steps=100), (100,)),
    ("warmup_constant_schedule", _kw(init_value=1e-3, peak_value=3e-4,
                                     warmup_steps=4321), (4321,)),
    ("warmup_constant_schedule", _kw(init_value=0.5, peak_value=2.0,
                                     warmup_steps=1), (1,)),
    ("linear_onecycle_schedule", _kw(transition_steps=1000, peak_value=1.0),
     (300, 850, 1000)),
    ("linear_onecycle_schedule", _kw(transition_steps=4000, peak_value=0.1,
                                     pct_start=0.1, pct_final=0.5,
                                     div_factor=10.0, final_div_factor=100.0),
     (400, 2000, 4000)),
    ("linear_onecycle_schedule", _kw(transition_steps=3, peak_value=2.0),
     (0, 2, 3)),
    ("linear_onecycle_schedule", _kw(transition_steps=2000, peak_value=0.3,
                                     pct_start=0.0, pct_final=0.9), (0, 1800, 2000)),
]
OPTAX_IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(OPTAX_CASES)]


def _python_steps(boundaries):
  """~200 Python ints: the start, every boundary +-1, and far beyond."""
  near = {b + d for b in boundaries for d in (-1, 0, 1)}
  far = {499, 500, 999, 1000, 1001, 2500, 4999, 5000, 12345, 10**6}
  return sorted(set(range(160)) | {s for s in near if s >= 0} | far)


def _pair(name, make):
  return getattr(S, name)(**make(S)), getattr(optax, name)(**make(optax))


@pytest.mark.parametrize("name,make,boundaries", OPTAX_CASES, ids=OPTAX_IDS)
def test_matches_optax_over_int32_steps(name, make, boundaries):
  del boundaries
  ours, ref = _pair(name, make)
  assert_close(jax.vmap(ours)(STEPS), jax.vmap(ref)(STEPS))


@pytest.mark.parametrize("name,make,boundaries", OPTAX_CASES, ids=OPTAX_IDS)
def test_matches_optax_over_python_ints(name, make, boundaries):
  ours, ref = _pair(name, make)
  steps = _python_steps(boundaries)
  assert_close([ours(s) for s in steps], [ref(s) for s in steps])


@pytest.mark.parametrize("decay_steps,count", [
    (1000, 2**40), (3 * 10**9, 2**31 + 5), (3 * 10**9, 10**9)])
def test_cosine_python_counts_beyond_int32(decay_steps, count):
  ours = S.cosine_decay_schedule(1.0, decay_steps, alpha=0.1)
  ref = optax.cosine_decay_schedule(1.0, decay_steps, alpha=0.1)
  assert_close(ours(count), ref(count))


def test_optax_cases_cover_every_optax_name():
  assert {name for name, _, _ in OPTAX_CASES} == set(OPTAX_NAMES)


@pytest.mark.parametrize("name", OPTAX_NAMES)
def test_signature_matches_optax(name):
  def shape(fn):
    return [(p.name, p.kind, p.default)
            for p in inspect.signature(fn).parameters.values()]

  assert shape(getattr(S, name)) == shape(getattr(optax, name))


def test_all_lists_every_public_name():
  assert set(S.__all__) == set(OPTAX_NAMES) | set(NOTES_NAMES)
  modules = [importlib.import_module(f"{S.__name__}.{m}") for m in ("curves", "interpolated", "notes")]
  public = {n for mod in modules for n, v in vars(mod).items()
            if inspect.isfunction(v) and v.__module__ == mod.__name__
            and not n.startswith("_")}
  assert public == set(S.__all__)
  for n in S.__all__:
    assert getattr(S, n).__doc__, n


def test_join_accepts_optax_pieces_and_optax_accepts_ours():
  ours = S.join_schedules([optax.linear_schedule(0.0, 1.0, 50),
                           optax.cosine_decay_schedule(1.0, 500)], [50])
  ref = optax.join_schedules([S.linear_schedule(0.0, 1.0, 50),
                              S.cosine_decay_schedule(1.0, 500)], [50])
  assert_close(jax.vmap(ours)(STEPS), jax.vmap(ref)(STEPS))


# --- jit safety --------------------------------------------------------------

NOTES_CASES = [
    ("inverse_time_decay", lambda: S.inverse_time_decay(0.2, 1.0, 10, True)),
    ("inverse_time_decay", lambda: S.inverse_time_decay(0.2, 0.5, 3)),
    ("inverse_sqrt_decay", lambda: S.inverse_sqrt_decay(0.1, 2.0, 50)),
    ("step_decay", lambda: S.step_decay(0.1, 0.5, 100, 1e-3)),
    ("per_epoch", lambda: S.per_epoch(S.inverse_time_decay(0.2, 1.0), 50, 1)),
]


@pytest.mark.parametrize(
    "make", [lambda n=n, m=m: getattr(S, n)(**m(S)) for n, m, _ in OPTAX_CASES]
    + [m for _, m in NOTES_CASES],
    ids=OPTAX_IDS + [f"{n}-{i}" for i, (n, _) in enumerate(NOTES_CASES)])
def test_jit_equals_eager(make):
  sched = make()
  eager = jax.vmap(sched)(STEPS)
  assert_close_at_scale(jax.jit(jax.vmap(sched))(STEPS), eager)
  jitted = jax.jit(sched)
  steps = (0, 1, 2, 49, 50, 99, 100, 101, 999, 1000, 4321, 10**6)
  assert_close_at_scale([jitted(jnp.int32(s)) for s in steps],
                        [jnp.asarray(sched(s), eager.dtype) for s in steps])


@pytest.mark.parametrize("power", [0.5, 1.5, 2.0, 3])
@pytest.mark.parametrize("steps,begin", [(1000, 0), (4000, 300), (7, 3)])
def test_polynomial_fractional_power_is_finite_under_jit(power, steps, begin):
  ours = S.polynomial_schedule(0.5, 0.01, power, steps, begin)
  ref = optax.polynomial_schedule(0.5, 0.01, power, steps, begin)
  jitted = np.asarray(jax.jit(jax.vmap(ours))(STEPS))
  assert np.all(np.isfinite(jitted))
  assert_close_at_scale(jitted, jax.vmap(ref)(STEPS))


# Builders taking the value-like hyper-parameters that may be traced.
TRACED_CASES = [
    ("polynomial", lambda a, b: S.polynomial_schedule(a, b, 2, 1000, 10),
     (0.1, 0.001)),
    ("exponential", lambda a, r, e: S.exponential_decay(a, 100, r, 5, True, e),
     (0.1, 0.7, 0.01)),
    ("exponential-growth", lambda a, r, e: S.exponential_decay(a, 100, r, 0,
                                                               False, e),
     (0.1, 1.3, 0.5)),
    ("cosine", lambda a, al, ex: S.cosine_decay_schedule(a, 1000, al, ex),
     (0.1, 0.1, 2.0)),
    ("warmup-cosine", lambda i, p, e: S.warmup_cosine_decay_schedule(
        i, p, 100, 1000, e), (0.0, 0.5, 0.01)),
    ("warmup-cosine-zero-peak", lambda i, p, e: S.warmup_cosine_decay_schedule(
        i, p, 100, 1000, e), (0.1, 0.0, 0.01)),
    ("warmup-exponential", lambda i, p, r: S.warmup_exponential_decay_schedule(
        i, p, 100, 50, r, end_value=0.01), (0.0, 0.5, 0.8)),
    ("onecycle", lambda p: S.cosine_onecycle_schedule(1000, p), (0.3,)),
    ("piecewise", lambda a: S.piecewise_constant_schedule(a, {10: 0.5}),
     (0.2,)),
    ("piecewise-interpolate", lambda a: S.piecewise_interpolate_schedule(
        "cosine", a, {10: 0.5, 300: 0.1}), (0.2,)),
    ("warmup-constant", lambda i, p: S.warmup_constant_schedule(i, p, 100),
     (0.0, 0.4)),
    ("linear-onecycle", lambda p: S.linear_onecycle_schedule(1000, p), (0.3,)),
    ("inverse-time", lambda a, r: S.inverse_time_decay(a, r, 10), (0.2, 1.0)),
    ("inverse-sqrt", lambda a, k: S.inverse_sqrt_decay(a, k, 20), (0.2, 3.0)),
    ("step-decay", lambda a, f, e: S.step_decay(a, f, 100, e),
     (0.2, 0.5, 0.01)),
    ("step-decay-growth", lambda a, f, e: S.step_decay(a, f, 100, e),
     (0.01, 2.0, 0.3)),
]


@pytest.mark.parametrize("build,hparams", [c[1:] for c in TRACED_CASES],
                         ids=[c[0] for c in TRACED_CASES])
def test_traced_hyperparameters(build, hparams):
  steps = STEPS[:1500]

  @jax.jit
  def traced(h):
    return jax.vmap(build(*h))(steps)

  hp = tuple(jnp.float32(h) for h in hparams)
  eager = jax.vmap(build(*hparams))(steps)
  assert_close_at_scale(traced(hp), eager)


# --- bad arguments raise at construction, naming the argument ---------------

BAD = [
    (lambda: S.constant_schedule(lambda t: 0.1), TypeError, "`value`"),
    (lambda: S.polynomial_schedule(1.0, 0.0, 2, 0), ValueError,
     "`transition_steps`"),
    (lambda: S.polynomial_schedule(1.0, 0.0, 2, -5), ValueError,
     "`transition_steps`"),
    (lambda: S.polynomial_schedule(1.0, 0.0, 2, 10, -1), ValueError,
     "`transition_begin`"),
    (lambda: S.linear_schedule(1.0, 0.0, 0), ValueError, "`transition_steps`"),
    (lambda: S.linear_schedule(1.0, 0.0, "10"), TypeError,
     "`transition_steps`"),
    (lambda: S.exponential_decay(1.0, 0, 0.5), ValueError,
     "`transition_steps`"),
    (lambda: S.exponential_decay(1.0, 10, 0.0), ValueError, "`decay_rate`"),
    (lambda: S.exponential_decay(1.0, 10, -0.5), ValueError, "`decay_rate`"),
    (lambda: S.exponential_decay(1.0, 10, 0.5, -3), ValueError,
     "`transition_begin`"),
    (lambda: S.cosine_decay_schedule(1.0, 0), ValueError, "`decay_steps`"),
    (lambda: S.cosine_decay_schedule(1.0, -10), ValueError, "`decay_steps`"),
    (lambda: S.warmup_cosine_decay_schedule(0.0, 1.0, 100, 100), ValueError,
     "`decay_steps`.*`warmup_steps`"),
    (lambda: S.warmup_cosine_decay_schedule(0.0, 1.0, 10, -100), ValueError,
     "`decay_steps`"),
    (lambda: S.warmup_cosine_decay_schedule(0.0, 1.0, -1, 100), ValueError,
     "`warmup_steps`"),
    (lambda: S.warmup_exponential_decay_schedule(0.0, 1.0, 10, 0, 0.5),
     ValueError, "`transition_steps`"),
    (lambda: S.warmup_exponential_decay_schedule(0.0, 1.0, -1, 10, 0.5),
     ValueError, "`warmup_steps`"),
    (lambda: S.piecewise_constant_schedule(1.0, {200: 0.1, 100: 0.1}),
     ValueError, "`boundaries_and_scales`"),
    (lambda: S.piecewise_constant_schedule(1.0, {100: -0.1}), ValueError,
     "`boundaries_and_scales"),
    (lambda: S.piecewise_constant_schedule(1.0, [(100, 0.1)]), TypeError,
     "`boundaries_and_scales`"),
    (lambda: S.join_schedules([S.constant_schedule(1.0), 0.5], [10]),
     TypeError, r"`schedules\[1\]`"),
    (lambda: S.join_schedules([], []), ValueError, "`schedules`"),
    (lambda: S.join_schedules([S.constant_schedule(1.0)] * 3, [100, 50]),
     ValueError, "`boundaries`"),
    (lambda: S.join_schedules([S.constant_schedule(1.0)] * 3, [100, 100]),
     ValueError, "`boundaries`"),
    (lambda: S.join_schedules([S.constant_schedule(1.0)] * 3, [100]),
     ValueError, "`boundaries`"),
    (lambda: S.sgdr_schedule([]), ValueError, "`cosine_kwargs`"),
    (lambda: S.sgdr_schedule([dict(init_value=0.0, peak_value=1.0,
                                   warmup_steps=1)]),
     ValueError, r"`cosine_kwargs\[0\]`"),
    (lambda: S.cosine_onecycle_schedule(0, 1.0), ValueError,
     "`transition_steps`"),
    (lambda: S.cosine_onecycle_schedule(100, 1.0, pct_start=1.0), ValueError,
     "`pct_start`"),
    (lambda: S.cosine_onecycle_schedule(100, 1.0, pct_start=-0.1),
     ValueError, "`pct_start`"),
    (lambda: S.cosine_onecycle_schedule(100, 1.0, div_factor=0.0),
     ValueError, "`div_factor`"),
    (lambda: S.cosine_onecycle_schedule(100, 1.0, final_div_factor=-1.0),
     ValueError, "`final_div_factor`"),
    (lambda: S.piecewise_interpolate_schedule("cubic", 1.0), ValueError,
     "`interpolate_type`"),
    (lambda: S.piecewise_interpolate_schedule(None, 1.0), ValueError,
     "`interpolate_type`"),
    (lambda: S.piecewise_interpolate_schedule("linear", float("nan")),
     ValueError, "`init_value`"),
    (lambda: S.piecewise_interpolate_schedule("linear", 1.0, {10: -0.5}),
     ValueError, r"`boundaries_and_scales\[10\]`"),
    (lambda: S.piecewise_interpolate_schedule("linear", 1.0, {10: float("inf")}),
     ValueError, r"`boundaries_and_scales\[10\]`"),
    (lambda: S.piecewise_interpolate_schedule("linear", 1.0, {20: 0.5, 10: 0.5}),
     ValueError, "`boundaries_and_scales`"),
    (lambda: S.piecewise_interpolate_schedule("linear", 1.0, {-5: 0.5}),
     ValueError, "`boundaries_and_scales key -5`"),
    (lambda: S.piecewise_interpolate_schedule("cosine", 1.0, [(10, 0.5)]),
     TypeError, "`boundaries_and_scales`"),
    (lambda: S.warmup_constant_schedule(0.0, 1.0, 0), ValueError,
     "`warmup_steps`"),
    (lambda: S.warmup_constant_schedule(0.0, 1.0, -3), ValueError,
     "`warmup_steps`"),
    (lambda: S.warmup_constant_schedule(0.0, float("nan"), 10), ValueError,
     "`peak_value`"),
    (lambda: S.warmup_constant_schedule("0", 1.0, 10), TypeError,
     "`init_value`"),
    (lambda: S.linear_onecycle_schedule(0, 1.0), ValueError,
     "`transition_steps`"),
    (lambda: S.linear_onecycle_schedule(100, float("inf")), ValueError,
     "`peak_value`"),
    (lambda: S.linear_onecycle_schedule(100, 1.0, pct_start=1.0), ValueError,
     "`pct_start`"),
    (lambda: S.linear_onecycle_schedule(100, 1.0, pct_final=-0.2), ValueError,
     "`pct_final`"),
    (lambda: S.linear_onecycle_schedule(100, 1.0, pct_start=0.6, pct_final=0.5),
     ValueError, "`pct_start`.*`pct_final`"),
    (lambda: S.linear_onecycle_schedule(1, 1.0), ValueError,
     "`pct_start`.*`pct_final`.*`transition_steps`"),
    (lambda: S.linear_onecycle_schedule(100, 1.0, div_factor=0.0), ValueError,
     "`div_factor`"),
    (lambda: S.linear_onecycle_schedule(100, 1.0, final_div_factor=-1.0),
     ValueError, "`final_div_factor`"),
    (lambda: S.inverse_time_decay(0.2, 1.0, 0), ValueError, "`decay_steps`"),
    (lambda: S.inverse_time_decay(0.2, 1.0, -1), ValueError, "`decay_steps`"),
    (lambda: S.inverse_time_decay(0.2, -1.0), ValueError, "`decay_rate`"),
    (lambda: S.inverse_time_decay(0.2, 1.0, None), TypeError,
     "`decay_steps`"),
    (lambda: S.inverse_sqrt_decay(0.2, 1.0, 0), ValueError, "`warmup_steps`"),
    (lambda: S.inverse_sqrt_decay(0.2, 0.0), ValueError, "`k`"),
    (lambda: S.inverse_sqrt_decay(0.2, -1.0), ValueError, "`k`"),
    (lambda: S.step_decay(0.2, 0.5, 0), ValueError, "`every_steps`"),
    (lambda: S.step_decay(0.2, 0.5, -10), ValueError, "`every_steps`"),
    (lambda: S.step_decay(0.2, 0.0, 10), ValueError, "`factor`"),
    (lambda: S.per_epoch(0.1, 10), TypeError, "`schedule`"),
    (lambda: S.per_epoch(S.constant_schedule(0.1), 0), ValueError,
     "`steps_per_epoch`"),
    (lambda: S.per_epoch(S.constant_schedule(0.1), -2), ValueError,
     "`steps_per_epoch`"),
    (lambda: S.per_epoch(S.constant_schedule(0.1), 10, -1), ValueError,
     "`first_epoch`"),
]


@pytest.mark.parametrize("build,exc,match", BAD,
                         ids=[f"{m.split('`')[1]}-{i}"
                              for i, (_, _, m) in enumerate(BAD)])
def test_bad_arguments_raise_naming_the_argument(build, exc, match):
  with pytest.raises(exc, match=match):
    build()


# --- schedules as the learning rate of the optimizers ------------------------

OPTIMIZER_NAMES = ("sgd", "adagrad", "adadelta", "rmsprop", "adam", "adamw",
                   "nadam", "nadamw", "radam", "amsgrad", "adamax")

# One case per schedule, with its changes packed into the first 10 steps.
SHORT_CASES = [
    ("constant_schedule", _kw(value=0.05)),
    ("polynomial_schedule", _kw(init_value=0.1, end_value=0.01, power=2,
                                transition_steps=6, transition_begin=2)),
    ("linear_schedule", _kw(init_value=0.0, end_value=0.1,
                            transition_steps=5)),
    ("piecewise_constant_schedule", _kw(
        init_value=0.1, boundaries_and_scales={3: 0.5, 6: 0.1})),
    ("exponential_decay", _kw(init_value=0.1, transition_steps=2,
                              decay_rate=0.5, transition_begin=1,
                              staircase=True, end_value=0.02)),
    ("cosine_decay_schedule", _kw(init_value=0.1, decay_steps=8, alpha=0.1)),
    ("warmup_cosine_decay_schedule", _kw(
        init_value=0.0, peak_value=0.1, warmup_steps=3, decay_steps=9,
        end_value=0.01)),
    ("warmup_exponential_decay_schedule", _kw(
        init_value=0.0, peak_value=0.1, warmup_steps=3, transition_steps=2,
        decay_rate=0.7, transition_begin=1)),
    ("join_schedules", lambda m: dict(
        schedules=[m.linear_schedule(0.0, 0.1, 4),
                   m.cosine_decay_schedule(0.1, 6)], boundaries=[4])),
    ("sgdr_schedule", _kw(cosine_kwargs=[dict(
        init_value=0.0, peak_value=0.1, warmup_steps=1, decay_steps=4)] * 3)),
    ("cosine_onecycle_schedule", _kw(transition_steps=10, peak_value=0.1)),
    ("piecewise_interpolate_schedule", _kw(
        interpolate_type="cosine", init_value=0.1,
        boundaries_and_scales={3: 0.5, 7: 0.2})),
    ("warmup_constant_schedule", _kw(init_value=0.0, peak_value=0.1,
                                     warmup_steps=4)),
    ("linear_onecycle_schedule", _kw(transition_steps=9, peak_value=0.1)),
]
NOTES_SHORT = [
    ("inverse_time_decay", S.inverse_time_decay(0.1, 0.5, 2, True)),
    ("inverse_sqrt_decay", S.inverse_sqrt_decay(0.1, 1.0, 2)),
    ("step_decay", S.step_decay(0.1, 0.5, 3, 0.02)),
    ("per_epoch", S.per_epoch(S.inverse_time_decay(0.2, 1.0), 3, 1)),
]


def _trajectory(tx, params, num_steps=10):
  """Parameters after each of ``num_steps`` updates on note 001's bowl."""

  def loss(p):
    return p[0] ** 2 / 20 + p[1] ** 2

  def step(carry, _):
    p, state = carry
    updates, state = tx.update(jax.grad(loss)(p), state, p)
    p = optax.apply_updates(p, updates)
    return (p, state), p

  _, path = jax.lax.scan(step, (params, tx.init(params)), None, num_steps)
  return path


def test_short_cases_cover_every_schedule():
  names = {n for n, _ in SHORT_CASES} | {n for n, _ in NOTES_SHORT}
  assert names == set(S.__all__)


@pytest.mark.parametrize("opt_name", OPTIMIZER_NAMES)
def test_schedules_as_learning_rate_match_optax(opt_name):
  optimizers = importlib.import_module("jaxopt_notes")
  # Our schedules in our optimizer vs optax's schedule in optax's; the notes'
  # decays have no optax twin, so optax's optimizer gets the same callable.
  pairs = [(n,) + _pair(n, make) for n, make in SHORT_CASES]
  pairs += [(n, s, s) for n, s in NOTES_SHORT]
  ours = [getattr(optimizers, opt_name)(a) for _, a, _ in pairs]
  refs = [getattr(optax, opt_name)(b) for _, _, b in pairs]
  params = jnp.array([-7.0, 4.0])  # note 001's start on x**2/20 + y**2

  @jax.jit
  def run(p):
    return ([_trajectory(t, p) for t in ours],
            [_trajectory(t, p) for t in refs])

  got, want = run(params)
  for (name, _, _), g, w in zip(pairs, got, want):
    assert not np.allclose(g[-1], params), name  # it moved
    chex.assert_trees_all_close(g, w, rtol=RTOL, atol=1e-7,
                                custom_message=f"{opt_name} with {name}")
