"""ema_params / swa_params / averaged_params (wrappers/averaging.py): the averaged params of
50-step float64 runs equal torch's swa_utils.AveragedModel (EMA, SWA with start/every, warm-ups
through avg_fn) around torch_compat's sgd / adam, and optax.ema's debiased EMA of the params;
the inner updates are untouched; jit equals op-by-op; MultiSteps averages on real steps only;
averaged_params finds the state through chain / MultiSteps / inject_hyperparams; a float32
average of bfloat16 params; argument checks name the argument."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from torch.optim import swa_utils

import jaxopt_notes as jn
from jaxopt_notes import torch_compat as tc
from jaxopt_notes.wrappers import averaging as av
from tests.contrib import _torch_ref as tr

SHAPES = {"w": (4, 3), "b": (3,), "s": ()}
STEPS = 50
# float64, measured worst over every step and leaf: absolute 2.2e-16 (EMA, SWA) and 4.4e-16
# (warm-ups: the reference writes d*a + (1-d)*p, ours lerps as torch's EMA does); relative (on
# |avg| > 0.1) up to 1.9e-15, the size of the inner optimizers' own drift from torch's (1.8e-15).
# 1e-12 leaves room for other CPUs and BLAS builds.
RTOL_F64 = 1e-12


class _Net(torch.nn.Module):

  def __init__(self, init):
    super().__init__()
    self.p = torch.nn.ParameterDict({k: torch.nn.Parameter(torch.tensor(v)) for k, v in init.items()})


def _due(k, start, every):
  return k > start and (k - start) % every == 0


def _numpy(tree):
  return {k: np.asarray(v, np.float64) for k, v in tree.items()}


def _lockstep(torch_opt, averaged, tx, *, start=0, every=1):
  """``STEPS`` steps of torch (AveragedModel updated after due steps) and of ``tx``, side by side.

  Returns per step ``(ours, theirs)`` averages, ``(ours, theirs)`` params, and our final state.
  """
  prob = tr.problem(SHAPES, 0, STEPS)
  model = _Net(prob.init)
  opt = torch_opt(model.parameters())
  avg_model = averaged(model)
  tcurv = {k: torch.tensor(v) for k, v in prob.curv.items()}
  jcurv, jnoise, jscale = ({k: jnp.asarray(v) for k, v in d.items()} for d in (prob.curv, prob.noise, prob.scale))
  p = {k: jnp.asarray(v) for k, v in prob.init.items()}
  state, update, read = tx.init(p), jax.jit(tx.update), jax.jit(av.averaged_params)
  averages, params = [], []
  for t in range(STEPS):
    opt.zero_grad()
    tr.loss(prob, dict(model.p), tcurv, {k: torch.tensor(v[t]) for k, v in prob.noise.items()}, torch).backward()
    opt.step()
    if _due(t + 1, start, every):
      avg_model.update_parameters(model)
    u, state = update(tr.grad(p, jcurv, jnoise, jscale, t), state, p)
    p = jn.apply_updates(p, u)
    theirs = {k: v.detach().numpy().copy() for k, v in avg_model.module.p.items()}
    averages.append((_numpy(read(state)), theirs))
    params.append((_numpy(p), {k: v.detach().numpy().copy() for k, v in model.p.items()}))
  return averages, params, state


def _worst(pairs):
  """Worst relative difference over steps and leaves, on entries with |theirs| > 0.1."""
  worst = 0.0
  for ours, theirs in pairs:
    for k in theirs:
      big = np.abs(theirs[k]) > 0.1
      worst = max(worst, float(np.max(np.abs(ours[k] - theirs[k])[big] / np.abs(theirs[k][big]), initial=0.0)))
  return worst


def _check_run(averages, params):
  # The inner optimizers agree (else the averages' agreement would mean little)...
  assert _worst(params) < RTOL_F64
  assert _worst(averages) < RTOL_F64
  for ours, theirs in averages:
    for k in theirs:
      np.testing.assert_allclose(ours[k], theirs[k], rtol=RTOL_F64, atol=1e-14, err_msg=k)
  # ...and the average is not the params themselves.
  last_avg, last_p = averages[-1][1], params[-1][1]
  assert max(float(np.max(np.abs(last_avg[k] - last_p[k]))) for k in last_p) > 1e-3


_INNER = {
    "sgd-momentum": (lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9), lambda: tc.sgd(lr=0.05, momentum=0.9)),
    "adam": (lambda ps: torch.optim.Adam(ps, lr=0.05), lambda: tc.adam(lr=0.05)),
}


@pytest.mark.parametrize("inner,decay", [("sgd-momentum", 0.9), ("adam", 0.999), ("adam", 0.3)])
def test_ema_matches_torch_averaged_model(inner, decay):
  """torch's EMA recipe (get_ema_multi_avg_fn); 0.999 is torch's default, 0.3 takes lerp's other branch."""
  torch_opt, ours = _INNER[inner]
  with tr.precision("float64"):
    averages, params, state = _lockstep(
        torch_opt, lambda m: swa_utils.AveragedModel(m, multi_avg_fn=swa_utils.get_ema_multi_avg_fn(decay)),
        av.ema_params(ours(), decay),
    )
  _check_run(averages, params)
  assert int(state.n_averaged) == int(state.n_steps) == STEPS


@pytest.mark.parametrize("start,every", [(0, 1), (10, 5)])
def test_swa_matches_torch_averaged_model(start, every):
  """AveragedModel's default equal average, updated after `start` steps, every `every` steps."""
  torch_opt, ours = _INNER["sgd-momentum"]
  with tr.precision("float64"):
    averages, params, state = _lockstep(
        torch_opt, swa_utils.AveragedModel, av.swa_params(ours(), start=start, every=every),
        start=start, every=every,
    )
  _check_run(averages, params)
  assert int(state.n_averaged) == (STEPS - start) // every
  # Before the first average, the average is the initial params (torch's copy at construction).
  init = tr.problem(SHAPES, 0, STEPS).init
  for ours_avg, _ in averages[: start + every - 1]:
    for k in init:
      np.testing.assert_array_equal(ours_avg[k], init[k])


def _power_warmup(n):
  # diffusers' EMAModel.get_decay (use_ema_warmup=True, decay 0.999, defaults inv_gamma=1, power=2/3),
  # whose step is optimization_step - 1 = n_averaged.
  return 0.0 if n <= 0 else max(min(1 - (1 + n / 1.0) ** (-2 / 3), 0.999), 0.0)


def _tf_warmup(n):
  # min(decay, (1 + n) / (10 + n)), TensorFlow's ExponentialMovingAverage rule, with diffusers' step.
  return 0.0 if n <= 0 else max(min((1 + n) / (10 + n), 0.999), 0.0)


@pytest.mark.parametrize("name", ["power", "tf"])
def test_warmup_matches_torch_avg_fn(name):
  reference, ours_schedule = {
      "power": (_power_warmup, av.ema_power_warmup_decay(0.999)),
      "tf": (_tf_warmup, av.ema_warmup_decay(0.999)),
  }[name]

  def avg_fn(averaged, current, num_averaged):
    d = reference(int(num_averaged))
    return d * averaged + (1 - d) * current

  torch_opt, ours = _INNER["adam"]
  with tr.precision("float64"):
    averages, params, _ = _lockstep(
        torch_opt, lambda m: swa_utils.AveragedModel(m, avg_fn=avg_fn), av.ema_params(ours(), ours_schedule),
    )
    _check_run(averages, params)
    np.testing.assert_allclose([float(ours_schedule(n)) for n in range(200)], [reference(n) for n in range(200)],
                               rtol=1e-15)


@pytest.mark.parametrize("start,every", [(0, 1), (5, 3)])
def test_debiased_ema_matches_optax_ema_of_the_params(start, every):
  """optax.ema(decay, debias=True), fed the params after each due update, is the debiased EMA."""
  decay = 0.9
  with tr.precision("float64"):
    prob = tr.problem(SHAPES, 1, STEPS)
    p = {k: jnp.asarray(v) for k, v in prob.init.items()}
    tx = av.ema_params(tc.adam(lr=0.05), decay, debias=True, start=start, every=every)
    ref = optax.ema(decay, debias=True)
    state, ref_state = tx.init(p), ref.init(p)
    update, ref_update = jax.jit(tx.update), jax.jit(ref.update)
    want = p
    worst = 0.0
    for t in range(STEPS):
      u, state = update({k: jnp.asarray(n[t]) + 0.5 * p[k] for k, n in prob.noise.items()}, state, p)
      p = jn.apply_updates(p, u)
      if _due(t + 1, start, every):
        want, ref_state = ref_update(p, ref_state)
      got = av.averaged_params(state)
      # The stored EMA starts from zero; only the read is debiased.
      if _due(t + 1, start, every) and int(state.n_averaged) == 1:
        for k in p:
          np.testing.assert_allclose(state.average[k], (1 - decay) * np.asarray(p[k]), rtol=1e-14)
      for k in p:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-13, atol=1e-14, err_msg=k)
        worst = max(worst, float(np.max(np.abs(got[k] - want[k]))))
    # Measured worst 2.2e-16 absolute (an ulp: optax's arithmetic, our division done eagerly).
    assert worst < 1e-13
    assert int(state.n_averaged) == (STEPS - start) // every


def test_updates_and_inner_state_unchanged():
  """The wrapped optimizer's updates and state are the inner's alone, bit for bit."""
  inner = jn.adam(0.1)
  tx = av.ema_params(inner, 0.9)
  p = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.ones(3)}
  state, inner_state, q = tx.init(p), inner.init(p), p
  update, inner_update = jax.jit(tx.update), jax.jit(inner.update)
  for t in range(10):
    g = jax.tree.map(lambda x: jnp.sin(x * (t + 1)), q)
    u, state = update(g, state, q)
    v, inner_state = inner_update(g, inner_state, q)
    jax.tree.map(np.testing.assert_array_equal, u, v)
    jax.tree.map(np.testing.assert_array_equal, state.inner_state, inner_state)
    q = jn.apply_updates(q, u)
  assert not np.allclose(av.averaged_params(state)["w"], q["w"])


@pytest.mark.parametrize("make", [
    lambda: av.ema_params(jn.adam(0.1), 0.8),
    lambda: av.ema_params(jn.adam(0.1), 0.8, debias=True, start=2),
    lambda: av.swa_params(jn.sgd(0.1, momentum=0.9), every=2),
], ids=["ema", "ema-debias", "swa"])
def test_jit_equals_op_by_op(make):
  tx = make()
  p = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.ones(3)}
  runs = []
  for update in (tx.update, jax.jit(tx.update)):
    state, q = tx.init(p), p
    for t in range(10):
      u, state = update(jax.tree.map(lambda x: jnp.cos(x) + 0.1 * t, q), state, q)
      q = jn.apply_updates(q, u)
    runs.append((av.averaged_params(state), state))
  # float32: XLA fuses the jitted step differently (adam's too); measured worst 3.8e-7 relative.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), *runs)
  assert int(runs[1][1].n_averaged) > 0


@pytest.mark.parametrize("multi_steps", [jn.MultiSteps, optax.MultiSteps], ids=["ours", "optax"])
def test_multisteps_averages_only_on_real_steps(multi_steps):
  decay, k = 0.6, 2
  tx = multi_steps(av.ema_params(jn.sgd(0.1), decay), every_k_schedule=k)
  p = {"w": jnp.array([1.0, -2.0, 3.0])}
  state = tx.init(p)
  update = jax.jit(tx.update)
  stepped = []
  for t in range(10):
    u, state = update({"w": p["w"] + jnp.array([0.3, -0.1, 0.2]) * (t % 3)}, state, p)
    p = jn.apply_updates(p, u)
    if t % k == k - 1:
      stepped.append(np.asarray(p["w"], np.float64))
  inner = state.inner_opt_state
  assert int(inner.n_averaged) == int(inner.n_steps) == len(stepped) == 5
  want = stepped[0]
  for x in stepped[1:]:
    want = decay * want + (1 - decay) * x
  # float32 lerp vs the float64 formula: measured worst 2.5e-8 relative.
  np.testing.assert_allclose(av.averaged_params(state)["w"], want, rtol=1e-6)


def test_averaged_params_through_nested_states():
  p = {"w": jnp.array([1.0, -2.0])}
  g = {"w": jnp.array([0.5, 1.5])}
  wrappers = {
      "chain": jn.chain(jn.clip_by_global_norm(1.0), av.ema_params(jn.adam(0.1), 0.5)),
      "optax-chain": optax.chain(optax.clip_by_global_norm(1.0), av.swa_params(jn.adam(0.1))),
      "inject_hyperparams": jn.inject_hyperparams(
          lambda learning_rate: av.ema_params(jn.adam(learning_rate), 0.5))(learning_rate=0.1),
      "multi_steps-chain": jn.MultiSteps(jn.chain(jn.identity(), av.ema_params(jn.sgd(0.1), 0.5)), 1),
      "ema-of-inject": av.ema_params(jn.inject_hyperparams(jn.adam)(learning_rate=0.1), 0.5),
  }
  for name, tx in wrappers.items():
    state, q = tx.init(p), p
    for _ in range(3):
      u, state = tx.update(g, state, q)
      q = jn.apply_updates(q, u)
    found = [s for s in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, av.ParamsAverageState))
             if isinstance(s, av.ParamsAverageState)]
    assert len(found) == 1, name
    assert int(found[0].n_averaged) == 3, name
    np.testing.assert_array_equal(av.averaged_params(state)["w"], found[0].average["w"], err_msg=name)
    assert not np.allclose(av.averaged_params(state)["w"], p["w"]), name
  with pytest.raises(ValueError, match="`state`.*holds no"):
    av.averaged_params(jn.adam(0.1).init(p))
  two = jn.chain(av.ema_params(jn.sgd(0.1)), av.swa_params(jn.sgd(0.1)))
  with pytest.raises(ValueError, match="`state`.*holds 2"):
    av.averaged_params(two.init(p))


def test_inject_hyperparams_over_the_inner_learning_rate():
  """Changing the injected learning rate in the state changes the params, so the average."""
  tx = av.ema_params(jn.inject_hyperparams(jn.sgd)(learning_rate=0.1), 0.5)
  p = {"w": jnp.array([1.0])}
  state = tx.init(p)
  state = state._replace(inner_state=state.inner_state._replace(
      hyperparams={**state.inner_state.hyperparams, "learning_rate": jnp.asarray(0.5)}))
  u, state = jax.jit(tx.update)({"w": jnp.array([1.0])}, state, p)
  assert float(u["w"][0]) == pytest.approx(-0.5)
  assert float(av.averaged_params(state)["w"][0]) == pytest.approx(0.5)  # the first average copies


def test_float32_average_of_bfloat16_params():
  decay, steps = 0.99, 50
  p = {"w": jnp.linspace(-1.0, 1.0, 8, dtype=jnp.bfloat16)}
  runs = {}
  for dtype in (jnp.float32, None):
    tx = av.ema_params(jn.sgd(0.01), decay, average_dtype=dtype)
    state, q, seen = tx.init(p), p, []
    update = jax.jit(tx.update)
    for t in range(steps):
      u, state = update({"w": jnp.sin(q["w"].astype(jnp.float32) * (t + 1)).astype(jnp.bfloat16)}, state, q)
      q = jn.apply_updates(q, u)
      seen.append(np.asarray(q["w"], np.float32))
    runs[dtype] = (state, seen)
  state, seen = runs[jnp.float32]
  assert state.average["w"].dtype == jnp.float32 and runs[None][0].average["w"].dtype == jnp.bfloat16
  want = seen[0].astype(np.float64)
  for x in seen[1:]:
    want = decay * want + (1 - decay) * x
  # float32 lerp of the bf16 params vs the float64 formula: measured worst 1.0e-7 absolute.
  np.testing.assert_allclose(av.averaged_params(state)["w"], want, rtol=0, atol=1e-6)
  # A bfloat16 average rounds away most of each (1 - decay) step: measured 1.8e-2 off.
  bf16_err = float(np.max(np.abs(np.asarray(av.averaged_params(runs[None][0])["w"], np.float64) - want)))
  assert bf16_err > 1e-3


def test_init_state_fields_and_dtypes():
  p = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3, jnp.bfloat16)}
  state = av.ema_params(jn.adam(0.1)).init(p)
  assert isinstance(state, av.ParamsAverageState)
  assert state._fields == ("inner_state", "average", "weight", "n_averaged", "n_steps")
  assert state.average["w"].dtype == jnp.float32 and state.average["b"].dtype == jnp.bfloat16
  assert state.average["w"] is not p["w"]
  jax.tree.map(np.testing.assert_array_equal, state.average, p)
  assert state.n_averaged.dtype == state.n_steps.dtype == jnp.int32 and state.n_averaged.shape == ()
  assert state.weight.dtype == jnp.float32 and float(state.weight) == 1.0
  f32 = av.swa_params(jn.adam(0.1), average_dtype=jnp.float32).init(p)
  assert f32.average["b"].dtype == jnp.float32


def test_update_needs_params():
  tx = av.ema_params(jn.sgd(0.1))
  p = {"w": jnp.ones(2)}
  with pytest.raises(ValueError, match="`params`"):
    tx.update(p, tx.init(p))


@pytest.mark.parametrize("build,name", [
    (lambda: av.ema_params(jn.sgd(0.1), 1.5), "decay"),
    (lambda: av.ema_params(jn.sgd(0.1), -0.1), "decay"),
    (lambda: av.ema_params(jn.sgd(0.1), 1.0, debias=True), "decay"),
    (lambda: av.ema_params(jn.sgd(0.1), av.ema_warmup_decay(), debias=True), "decay"),
    (lambda: av.ema_params(jn.sgd(0.1), debias="yes"), "debias"),  # type: ignore[arg-type]
    (lambda: av.ema_params(jn.sgd(0.1), start=-1), "start"),
    (lambda: av.swa_params(jn.sgd(0.1), start=1.5), "start"),  # type: ignore[arg-type]
    (lambda: av.swa_params(jn.sgd(0.1), every=0), "every"),
    (lambda: av.ema_params(jn.sgd(0.1), every=2.5), "every"),
    (lambda: av.swa_params(jn.sgd(0.1), average_dtype="not a dtype"), "average_dtype"),
    (lambda: av.swa_params(jn.sgd(0.1), average_dtype=jnp.int32), "average_dtype"),
    (lambda: av.ema_params(3), "inner"),  # type: ignore[arg-type]
    (lambda: av.ema_warmup_decay(decay=0.9, min_decay=0.95), "min_decay"),
    (lambda: av.ema_power_warmup_decay(inv_gamma=0.0), "inv_gamma"),
    (lambda: av.ema_power_warmup_decay(power=-1.0), "power"),
    (lambda: av.ema_power_warmup_decay(decay=2.0), "decay"),
])
def test_bad_arguments_name_the_argument(build, name):
  with pytest.raises((ValueError, TypeError), match=f"`{name}`"):
    build()
