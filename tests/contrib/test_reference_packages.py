"""prodigy, dadapt_adamw and lion against their authors' PyTorch packages.

``prodigyopt.Prodigy`` (1.1.2), ``dadaptation.DAdaptAdam`` (3.2) and
``lion_pytorch.Lion`` (0.2.5, ``use_triton=False``), each in lockstep with
ours (tests/contrib/_torch_ref.py): both sides follow their own trajectory on
the same random non-quadratic problem, a matrix, a vector and a scalar, 50
steps, every step's params compared; float64, and one float32 case each.
Cases: the package's defaults and the options its README recommends (decay
decoupled or not, ``d_coef``, ``safeguard_warmup``, ``use_bias_correction``,
``betas``, ``d0``, ``beta3``, ``growth_rate``, cosine or warm-up schedules through
``LambdaLR``; Lion's README rates, betas and decay). The optimizers' own
optax tests stay in test_prodigy.py and tests/optimizers.

The authors' packages leave Adam's bias correction off by default
(``use_bias_correction=False``); optax's prodigy and dadapt_adamw always
apply it, so ours have ``reference=True`` for the packages' defaults, and
``bias_correction`` for either. The packages' coupled (L2) decay,
``decouple=False``, is ``chain(add_decayed_weights(w), ...)`` here.
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from dadaptation import DAdaptAdam
from lion_pytorch import Lion
from prodigyopt import Prodigy

import jaxopt_notes as jn
from jaxopt_notes.contrib import _prodigy as ours
from tests.contrib import _common as cm
from tests.contrib import _torch_ref as ref

SHAPES = {"w": (6, 4), "b": (5,), "s": ()}


# Multipliers of the rate at step k, in numpy for torch's LambdaLR and in jax.numpy for ours.
def _cosine(k, lib):
  return 0.5 * (1 + lib.cos(math.pi * k / ref.STEPS))


def _warmup(k, lib):
  return lib.minimum(1.0, (k + 1) / 10)


def _with_lambda_lr(cls, multiplier):
  """``cls`` whose ``step`` then steps a ``LambdaLR(multiplier)``: the rate of step k is ``lr * multiplier(k)``."""
  if multiplier is None:
    return cls

  class Scheduled(cls):

    def __init__(self, params, **kw):
      super().__init__(params, **kw)
      self.sched = torch.optim.lr_scheduler.LambdaLR(self, lambda k: float(multiplier(k, np)))

    def step(self, closure=None):
      out = super().step(closure)
      self.sched.step()
      return out

  return Scheduled


def _rate(lr, multiplier):
  # k as a float of the run's precision: an int32 count over a Python int would be float32.
  return lr if multiplier is None else (lambda k: lr * multiplier(jnp.asarray(k, jnp.result_type(float)), jnp))


# The packages' names to ours; `decouple` is handled by _adaptive.
RENAMES = {"betas": "betas", "d0": "estim_lr0", "d_coef": "estim_lr_coef",
           "use_bias_correction": "bias_correction", "decouple": None}


def _adaptive(factory, kw, multiplier, reference, decouple_default):
  """Ours for the package's keyword arguments ``kw``; coupled decay as a decay added to the gradient first."""
  coupled = not kw.get("decouple", decouple_default) and kw.get("weight_decay", 0) != 0
  args = ref.optax_names(kw, RENAMES)
  lr = args.pop("learning_rate", 1.0)
  decay = args.pop("weight_decay") if coupled else None
  tx = factory(_rate(lr, multiplier), reference=reference, **args)
  return tx if decay is None else jn.chain(jn.add_decayed_weights(decay), tx)


# name -> (package keyword arguments, LambdaLR multiplier or None, our reference flag).
PRODIGY_CASES = {
    "defaults": ({}, None, True),
    # optax's form is the package's use_bias_correction=True.
    "optax-form": (dict(use_bias_correction=True), None, False),
    "decoupled-decay-d-coef": (dict(weight_decay=0.01, d_coef=2.0), None, True),
    "coupled-decay": (dict(weight_decay=0.1, decouple=False, d_coef=0.5), None, True),
    # The README's diffusion advice, with the warm-up its safeguard is for.
    "diffusion-warmup": (dict(safeguard_warmup=True, use_bias_correction=True, weight_decay=0.01,
                              betas=(0.9, 0.99), d0=1e-4), _warmup, True),
    "cosine-beta3-eps": (dict(beta3=0.99, eps=1e-6, lr=0.8), _cosine, True),
    "growth-rate": (dict(growth_rate=1.2, d0=1e-4, use_bias_correction=True, weight_decay=0.01), None, True),
}
DADAPT_CASES = {
    # decouple=True: the AdamW form (the package's default is coupled, below).
    "defaults-decoupled": (dict(decouple=True), None, True),
    "optax-form": (dict(decouple=True, use_bias_correction=True, weight_decay=0.05), None, False),
    "coupled-decay": (dict(weight_decay=0.05), None, True),
    "growth-rate": (dict(decouple=True, growth_rate=1.1, d0=1e-3), None, True),
    "cosine-betas-eps": (dict(decouple=True, betas=(0.9, 0.99), eps=1e-6, weight_decay=0.02), _cosine, True),
}
# name -> (Lion keyword arguments, LambdaLR multiplier or None). Ours takes
# lr * lambda as the decay, as Lion does; decoupled_weight_decay=True divides
# its decay by the initial lr, i.e. ours with weight_decay / lr.
LION_CASES = {
    "defaults": (dict(), None),
    "readme": (dict(lr=1e-4, weight_decay=1e-2), None),
    "optax-default-decay": (dict(lr=0.01, weight_decay=1e-3), None),
    "stable-betas": (dict(lr=0.02, betas=(0.95, 0.98), weight_decay=0.1), None),
    "decoupled-cosine": (dict(lr=0.02, weight_decay=0.1, decoupled_weight_decay=True), _cosine),
}

# float64: the same rule, rounding only (op order: torch's in-place addcdiv
# and decay-then-step, its Python-float64 d and sums via .item(); optax's
# tree reductions). Measured worst over the cases, 50 steps: 3.4e-13
# absolute, 1.9e-12 relative on |x| > 0.1 (prodigy's growth-rate, a d that
# grows 1.2x a step for 30 steps; its diffusion-warmup 1.4e-13 / 6.5e-13);
# dadapt 1.1e-14, lion 1.3e-14.
F64 = dict(rtol=1e-11, atol=1e-12)
# While d grows (here 1e-6 to 0.38 in 13 steps, d_coef=2), each step's d is
# a ratio of sums that the last d weighted, so a rounding gap grows ~3x a
# step, from 2e-16 at step 0 to 8e-11 absolute (6.5e-10 relative) at step 13,
# and stays there once d stops growing.
F64_FAST_GROWTH = dict(rtol=1e-8, atol=1e-9)
# float32: the packages keep d, the numerator and the denominator as Python
# float64; ours are float32 (optax's dtypes), so d differs by ~1e-7 relative
# each step and the steps carry it (measured worst 3e-6 absolute, 1.3e-5
# relative: dadapt's defaults and lion's stable-betas).
F32 = dict(rtol=1e-4, atol=2e-5)


def _run(torch_cls, kw, multiplier, tx, dtype="float64", **run_kw):
  with ref.precision(dtype):
    return ref.run_lockstep(_with_lambda_lr(torch_cls, multiplier), kw, tx, SHAPES, dtype, **run_kw)


def _prodigy_run(case, dtype="float64", **run_kw):
  kw, multiplier, reference = PRODIGY_CASES[case]
  return _run(Prodigy, kw, multiplier, _adaptive(ours.prodigy, kw, multiplier, reference, True), dtype, **run_kw)


def _dadapt_run(case, dtype="float64", **run_kw):
  kw, multiplier, reference = DADAPT_CASES[case]
  tx = _adaptive(ours.dadapt_adamw, kw, multiplier, reference, False)
  return _run(DAdaptAdam, kw, multiplier, tx, dtype, **run_kw)


def _lion_tx(kw, multiplier):
  lr = kw.get("lr", 1e-4)
  decay = kw.get("weight_decay", 0.0) / (lr if kw.get("decoupled_weight_decay") else 1.0)
  b1, b2 = kw.get("betas", (0.9, 0.99))
  return jn.lion(_rate(lr, multiplier), b1, b2, weight_decay=decay)


class _Lion(Lion):
  """The plain PyTorch update, whatever is installed."""

  def __init__(self, params, **kw):
    super().__init__(params, use_triton=False, **kw)


def _lion_run(case, dtype="float64"):
  kw, multiplier = LION_CASES[case]
  return _run(_Lion, kw, multiplier, _lion_tx(kw, multiplier), dtype)


def _final_estim_lr(run):
  state = run.state
  state = state if hasattr(state, "estim_lr") or hasattr(state, "inner") else state[-1]  # coupled: a chain
  return float((state.inner if hasattr(state, "inner") else state).estim_lr)


@pytest.mark.parametrize("case", sorted(PRODIGY_CASES))
def test_prodigy_matches_prodigyopt(case):
  run = _prodigy_run(case)
  ref.assert_lockstep_close(run, **(F64_FAST_GROWTH if case == "decoupled-decay-d-coef" else F64))
  d0 = PRODIGY_CASES[case][0].get("d0", 1e-6)
  assert _final_estim_lr(run) > 100 * d0  # d grew: the estimate is what is compared


@pytest.mark.parametrize("case", sorted(DADAPT_CASES))
def test_dadapt_adamw_matches_dadaptation(case):
  run = _dadapt_run(case)
  ref.assert_lockstep_close(run, **F64)
  d0 = DADAPT_CASES[case][0].get("d0", 1e-6)
  assert _final_estim_lr(run) > 100 * d0


@pytest.mark.parametrize("case", sorted(LION_CASES))
def test_lion_matches_lion_pytorch(case):
  run = _lion_run(case)
  # Lion's steps are lr long: 50 steps of the default 1e-4 move by 5e-3.
  ref.assert_lockstep_close(run, moved=4e-3, **F64)


@pytest.mark.parametrize("name", ["prodigy", "dadapt", "lion"])
def test_float32(name):
  run = {"prodigy": lambda: _prodigy_run("defaults", "float32"),
         "dadapt": lambda: _dadapt_run("defaults-decoupled", "float32"),
         "lion": lambda: _lion_run("stable-betas", "float32")}[name]()
  ref.assert_lockstep_close(run, **F32)


@pytest.mark.parametrize("torch_cls, factory, kw", [
    (Prodigy, ours.prodigy, {}),
    (DAdaptAdam, ours.dadapt_adamw, dict(decouple=True)),
])
def test_optax_form_is_not_the_packages_default(torch_cls, factory, kw):
  """What reference=True changes is real: optax's always-on bias correction is far from the package's default."""
  run = _run(torch_cls, kw, None, factory())
  assert ref.max_errors(run)[0] > 0.1


def test_unlimited_growth_rate_is_the_default_program():
  """growth_rate=inf (a Python float) adds nothing: bitwise the default; a finite one changes the run."""
  a, b, c = (_run(DAdaptAdam, dict(decouple=True), None, ours.dadapt_adamw(reference=True, **kw))
             for kw in ({}, dict(growth_rate=float("inf")), dict(growth_rate=1.5)))
  chex.assert_trees_all_equal(a.got, b.got)
  assert ref.max_errors(ref.Lockstep(c.got, a.got, None, a.init))[0] > 1e-3


def test_prodigy_growth_rate_caps_d_after_its_first_rise():
  """Once off d_0, d grows by at most 1.2 a step, and the cap binds: d ends below the largest estimate."""
  ds = []
  tx = ours.prodigy(reference=True, bias_correction=True, growth_rate=1.2)
  capped = _run(Prodigy, dict(growth_rate=1.2, use_bias_correction=True), None, tx,
                after_step=lambda t, s, *_: ds.append(float(s.inner.estim_lr)))
  ref.assert_lockstep_close(capped, moved=1e-3, **F64)
  ds = np.array(ds)
  risen = ds[np.argmax(ds > 1e-6):]
  ratios = risen[1:] / risen[:-1]
  assert len(risen) > 10 and np.all(ratios <= 1.2 * (1 + 1e-12)) and np.sum(ratios > 1.19) > 10
  assert float(capped.state.estim_lr_max) > 1.5 * ds[-1]


@pytest.mark.parametrize("factory", [ours.prodigy, ours.dadapt_adamw])
def test_reference_init_state(factory):
  """The reference form keeps optax's state: same fields, shapes, dtypes and values as the optax form's."""
  for dtype in ("float32", "float64"):
    with ref.precision(dtype):
      params = {k: jnp.asarray(v, dtype) for k, v in ref.problem(SHAPES).init.items()}
      got, want = factory(reference=True).init(params), factory().init(params)
      assert type(got) is type(want)
      chex.assert_trees_all_equal(got, want)
      chex.assert_trees_all_equal_dtypes(got, want)
      assert got.estim_lr.dtype == jnp.dtype(dtype) and got.count.dtype == jnp.int32
      if factory is ours.prodigy:
        capped = factory(reference=True, growth_rate=1.02).init(params)
        assert isinstance(capped, ours.ProdigyCappedState)
        chex.assert_trees_all_equal(capped.inner, want)
        assert capped.estim_lr_max.dtype == jnp.dtype(dtype) and capped.estim_lr_max == want.estim_lr


@pytest.mark.parametrize("runner", [_prodigy_run, _dadapt_run])
def test_jit_equals_op_by_op(runner):
  """10 steps of the growth-rate cases (the capped paths), jitted and not."""
  jitted, eager = runner("growth-rate", steps=10), runner("growth-rate", steps=10, jit=False)
  for g, e in zip(jitted.got, eager.got):
    chex.assert_trees_all_close(g, e, **cm.JIT_EAGER_TOL)


@pytest.mark.parametrize("factory", [ours.prodigy, ours.dadapt_adamw])
def test_inject_hyperparams_over_the_learning_rate(factory):
  cm.assert_injectable(lambda learning_rate: factory(learning_rate, reference=True), learning_rate=0.7)


def test_multi_steps_of_the_reference_form():
  """MultiSteps(k=2) steps once per two gradients, on their mean."""
  params, grads = cm.random_grads(0, 4, {"w": (3,), "b": ()})
  # d_0 = 0.01, so that the 2 steps move the params visibly (d stays d_0 at the first).
  make = lambda: ours.prodigy(reference=True, estim_lr0=1e-2)
  cm.assert_multi_steps_is_the_mean_gradients_step(make, params, grads)
  means = [jax.tree.map(lambda a, b: (a + b) / 2, grads[i], grads[i + 1]) for i in (0, 2)]
  assert float(jnp.max(jnp.abs(cm.run_steps(make(), params, means)["w"] - params["w"]))) > 1e-3


@pytest.mark.parametrize("torch_cls, factory, kw", [
    (Prodigy, ours.prodigy, {}),
    (DAdaptAdam, ours.dadapt_adamw, dict(decouple=True)),
])
def test_zero_gradients_keep_d_where_optax_goes_nan(torch_cls, factory, kw):
  """Three all-zero gradients first: the package skips those steps, optax's d becomes 0 / 0."""
  with ref.precision("float64"):
    params, grads = cm.random_grads(1, 10, {"w": (3, 2), "b": (4,)})
    params = jax.tree.map(lambda p: p.astype(jnp.float64), params)
    grads = [jax.tree.map(jnp.zeros_like, params)] * 3 + [jax.tree.map(lambda g: g.astype(jnp.float64), g)
                                                          for g in grads]
    tparams = {k: torch.tensor(np.asarray(v), requires_grad=True) for k, v in params.items()}
    opt = torch_cls(list(tparams.values()), lr=1.0, d0=1e-2, **kw)
    for g in grads:
      for k, p in tparams.items():
        p.grad = torch.tensor(np.asarray(g[k]))
      opt.step()
    ours_ref = cm.run_steps(factory(1.0, estim_lr0=1e-2, reference=True), params, grads)
    for k in params:
      np.testing.assert_allclose(np.asarray(ours_ref[k]), tparams[k].detach().numpy(), rtol=1e-11, atol=1e-12)
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree.leaves(cm.run_steps(factory(1.0), params, grads)))
    optax_factory = optax.contrib.prodigy if factory is ours.prodigy else optax.contrib.dadapt_adamw
    theirs = cm.run_steps(optax_factory(1.0), params, grads)
    assert not all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree.leaves(theirs))


@pytest.mark.parametrize("factory, arg, value, error", [
    (ours.prodigy, "reference", 1, TypeError),
    (ours.prodigy, "bias_correction", "yes", TypeError),
    (ours.dadapt_adamw, "reference", None, TypeError),
    (ours.dadapt_adamw, "bias_correction", 0, TypeError),
    (ours.dadapt_adamw, "growth_rate", 0.5, ValueError),
    (ours.dadapt_adamw, "growth_rate", float("nan"), ValueError),
    (ours.dadapt_adamw, "growth_rate", "2", TypeError),
    (ours.prodigy, "growth_rate", 0.99, ValueError),
])
def test_bad_arguments_name_themselves(factory, arg, value, error):
  cm.assert_raises_naming(factory, {arg: value}, error, arg)
