"""``torch_compat.muon`` and ``torch_compat.adafactor`` against ``torch.optim`` itself.

Same harness as test_torch_compat.py (its helpers, imported): both optimizers
built from the same keyword arguments, run on the same loss with gradients
from torch autograd and ``jax.grad``, whole trajectories compared. Muon runs
on a wide and a tall matrix (torch's Muon takes 2-D params only), Adafactor
on a matrix, a vector, a scalar and a conv kernel in torch's (out, in, kh, kw)
layout. No reference numbers are pasted: torch computes them here.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch.optim._muon import _zeropower_via_newtonschulz

import jaxopt_notes as jn
import jaxopt_notes.contrib as jnc
from jaxopt_notes import torch_compat as tc
from jaxopt_notes.torch_compat.matrix import MUON_NS_COEFFICIENTS, _newton_schulz_like_torch
from tests.torch_compat import test_torch_compat as harness
from tests.torch_compat.test_torch_compat import (
    F32,
    F64,
    assert_trajectories_close,
    jax_trajectory,
    precision,
    torch_trajectory,
)

MUON_SHAPES = {"w": (3, 4), "v": (6, 2)}
ADAFACTOR_SHAPES = {"w": (3, 4), "b": (5,), "s": (), "k": (2, 3, 3, 3)}
# float32 Muon: compared over the first 50 of the 200 steps. The Newton-Schulz
# iteration rounds to bfloat16 (in torch too); a gradient an ulp apart (torch's
# and XLA's sin differ) now and then lands on the other side of a bfloat16
# rounding boundary, and from step ~60 on at lr=0.02 the two runs drift apart
# by up to 5e-3, exactly as far as torch float32 drifts from torch float64
# (measured: equal to 3 digits). Measured worst over the first 50 steps: 2.9e-6.
MUON_F32_STEPS = 50


@pytest.fixture
def shapes(monkeypatch):
  """Sets the harness's param shapes for one test (restored afterwards)."""
  return lambda s: monkeypatch.setattr(harness, "SHAPES", s)


def _head(traj, n):
  return {k: v[:n] for k, v in traj.items()}


# (torch keyword arguments shared by torch and torch_compat)
MUON_CASES = [
    {},  # torch's defaults: lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov
    {"lr": 0.02},  # Jordan's recommended lr with the default momentum 0.95 and Nesterov
    {"lr": 0.02, "adjust_lr_fn": "match_rms_adamw"},  # torch's doc: reuse AdamW's lr and decay
    {"lr": 0.02, "nesterov": False, "momentum": 0.9, "weight_decay": 0.0},
    {"lr": 0.02, "ns_coefficients": (2.0, -1.5, 0.5), "ns_steps": 3, "eps": 1e-3},
]
ADAFACTOR_CASES = [
    {},  # torch's defaults: lr=1e-2 (the paper's cap on rho_t), beta2_decay=-0.8
    {"lr": 0.05, "weight_decay": 0.1},
    {"maximize": True},
    {"eps": (1e-30, 1e-3), "d": 2.0, "beta2_decay": -0.5},
    {"eps": (1e-3, 0.1)},
]


def _ids(cases):
  return [",".join(f"{k}={v}" for k, v in kw.items()) or "defaults" for kw in cases]


@pytest.mark.parametrize("kw", MUON_CASES, ids=_ids(MUON_CASES))
def test_muon_matches_torch_float64(kw, shapes):
  shapes(MUON_SHAPES)
  with precision("float64"):
    ref = torch_trajectory(lambda ps: torch.optim.Muon(ps, **kw), "float64")
    got = jax_trajectory(tc.muon(**kw), "float64")
  assert_trajectories_close(got, ref, F64)  # measured worst: 1e-14 relative


@pytest.mark.parametrize("kw", MUON_CASES[:3], ids=_ids(MUON_CASES[:3]))
def test_muon_matches_torch_float32(kw, shapes):
  shapes(MUON_SHAPES)
  ref = torch_trajectory(lambda ps: torch.optim.Muon(ps, **kw), "float32")
  got = jax_trajectory(tc.muon(**kw), "float32")
  assert_trajectories_close(_head(got, MUON_F32_STEPS), _head(ref, MUON_F32_STEPS), F32)
  # Over all 200 steps: no further from torch float32 than torch float64 is.
  with precision("float64"):
    ref64 = torch_trajectory(lambda ps: torch.optim.Muon(ps, **kw), "float64")
  for k in ref:
    ours, torchs = np.abs(got[k] - ref[k]).max(), np.abs(ref64[k] - ref[k]).max()
    assert ours <= 1.5 * torchs + 2e-5, (k, ours, torchs)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kw", ADAFACTOR_CASES, ids=_ids(ADAFACTOR_CASES))
def test_adafactor_matches_torch(kw, dtype, shapes):
  # float64 measured worst 1.2e-11 relative; float32 2e-6 absolute (the
  # harness's 5e-5: the scalars torch forms in double from .item()).
  shapes(ADAFACTOR_SHAPES)
  with precision(dtype):
    ref = torch_trajectory(lambda ps: torch.optim.Adafactor(ps, **kw), dtype)
    got = jax_trajectory(tc.adafactor(**kw), dtype)
  assert_trajectories_close(got, ref, F64 if dtype == "float64" else F32)


SCHEDULED = [
    ("Muon", MUON_SHAPES, {"lr": 0.02}, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=80),
     tc.cosine_annealing_lr(0.02, 80)),
    ("Adafactor", ADAFACTOR_SHAPES, {"lr": 0.05, "weight_decay": 0.2},
     lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=30, gamma=0.3), tc.step_lr(0.05, 30, 0.3)),
]


@pytest.mark.parametrize("case", SCHEDULED, ids=[c[0] for c in SCHEDULED])
def test_scheduled_lr_matches_torch_scheduler(case, shapes):
  name, shape, kw, make_sched, schedule = case
  shapes(shape)
  with precision("float64"):
    ref = torch_trajectory(lambda ps: getattr(torch.optim, name)(ps, **kw), "float64", make_sched)
    got = jax_trajectory(getattr(tc, name.lower())(**{**kw, "lr": schedule}), "float64")
  assert_trajectories_close(got, ref, F64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(3, 4), (7, 2), (16, 16)])
def test_newton_schulz_is_torchs_bit_for_bit(shape, dtype):
  g = np.random.default_rng(1).normal(size=shape)
  ref = _zeropower_via_newtonschulz(torch.tensor(g, dtype=dtype), MUON_NS_COEFFICIENTS, 5, 1e-7)
  with jax.enable_x64(True):
    got = jax.jit(lambda x: _newton_schulz_like_torch(x, MUON_NS_COEFFICIENTS, 5, 1e-7))(
        jnp.asarray(g, str(dtype).removeprefix("torch.")))
    got = np.asarray(got, np.float64)
  np.testing.assert_array_equal(got, ref.double().numpy())  # the bf16 values: equal, not close
  # The library's own orthogonaliser (optax's: no bfloat16) gives other numbers.
  ours = jnc.orthogonalize_via_newton_schulz(jnp.asarray(g, jnp.float32), jnp.asarray(MUON_NS_COEFFICIENTS))
  assert np.abs(np.asarray(ours) - got).max() > 1e-3


def test_muon_differs_from_contrib_muon_as_documented():
  """Same lr, momentum and decay: optax's bias correction and layout give another path."""
  params = {"w": jnp.asarray(np.random.default_rng(2).normal(size=(3, 5)), jnp.float32)}
  grads = jax.tree.map(lambda x: 0.3 * x, params)
  outs = []
  for tx in (tc.muon(lr=0.02, weight_decay=0.0), jnc.muon(0.02, eps=1e-7)):
    u, _ = tx.update(grads, tx.init(params), params)
    outs.append(np.asarray(u["w"]))
  assert np.abs(outs[0] - outs[1]).max() > 1e-3


# --------------------------------------------------------- state, jit -----


def test_muon_state_is_torchs_momentum_buffer():
  params = {"w": jnp.ones((3, 4), jnp.bfloat16), "v": jnp.ones((2, 2), jnp.float32)}
  state = tc.muon().init(params)[0]
  assert isinstance(state, tc.TorchMuonState) and state._fields == ("momentum_buffer",)
  for k, p in params.items():
    assert state.momentum_buffer[k].dtype == p.dtype and state.momentum_buffer[k].shape == p.shape
    assert not np.any(np.asarray(state.momentum_buffer[k], np.float32))
  updates, _ = tc.muon().update(params, tc.muon().init(params), params)
  assert {k: u.dtype for k, u in updates.items()} == {k: p.dtype for k, p in params.items()}


def test_adafactor_state_factors_rank_two_and_up():
  params = {k: jnp.ones(s, jnp.float32) for k, s in ADAFACTOR_SHAPES.items()}
  state = tc.adafactor().init(params)[0]
  assert isinstance(state, tc.TorchAdafactorState)
  assert state._fields == ("count", "row_var", "col_var", "variance")
  assert state.count.dtype == jnp.int32 and int(state.count) == 0
  expect = {  # torch's state shapes: row_var [..., n, 1], col_var [..., 1, m], else variance
      "w": ((3, 1), (1, 4), (0,)), "k": ((2, 3, 3, 1), (2, 3, 1, 3), (0,)),
      "b": ((0,), (0,), (5,)), "s": ((0,), (0,), ()),
  }
  for k, shapes_k in expect.items():
    got = tuple(getattr(state, f)[k].shape for f in ("row_var", "col_var", "variance"))
    assert got == shapes_k, k
    assert all(getattr(state, f)[k].dtype == jnp.float32 for f in ("row_var", "col_var", "variance"))


@pytest.mark.parametrize("name", ["muon", "adafactor"])
def test_jit_equals_op_by_op(name):
  # Op by op is slow here (every eager op compiles once): a few steps, few leaves.
  make, shape, steps = {
      "muon": (lambda: tc.muon(lr=0.02), {"w": (3, 4)}, 3),
      "adafactor": (lambda: tc.adafactor(lr=0.05, weight_decay=0.1), {"w": (3, 4), "s": ()}, 5),
  }[name]  # 5 Adafactor steps reach both branches of torch.lerp (weight t^-0.8 falls below 0.5 at t=3)
  rng = np.random.default_rng(3)
  with jax.enable_x64(True):
    start = {k: jnp.asarray(rng.normal(size=s)) for k, s in shape.items()}
    grad = jax.grad(lambda p: sum(jnp.sum(jnp.sin(3 * x) + x**2) for x in p.values()))
    runs = []
    for jit in (True, False):
      tx, params = make(), start
      state, update = tx.init(params), (jax.jit(tx.update) if jit else tx.update)
      for _ in range(steps):
        u, state = update(grad(params), state, params)
        params = jn.apply_updates(params, u)
      runs.append(params)
  for k in start:
    np.testing.assert_allclose(runs[0][k], runs[1][k], rtol=1e-10, atol=1e-12)
    assert np.abs(np.asarray(runs[0][k] - start[k])).max() > 1e-3


def test_inject_hyperparams_over_lr():
  params = {"w": jnp.ones((3, 4)) * 0.5}
  grads = {"w": jnp.arange(12.0).reshape(3, 4) / 10}
  for factory in (tc.muon, tc.adafactor):
    static = tuple(n for n in inspect.signature(factory).parameters if n != "lr")
    plain, injected = factory(lr=0.03), jn.inject_hyperparams(factory, static_args=static)(lr=0.03)
    u1, _ = plain.update(grads, plain.init(params), params)
    u2, _ = jax.jit(injected.update)(grads, injected.init(params), params)
    np.testing.assert_allclose(u1["w"], u2["w"], rtol=1e-6, atol=1e-7)


# --------------------------------------------------------- validation -----


def test_muon_rejects_non_matrix_leaves_naming_them():
  with pytest.raises(ValueError, match=r"\['b'\].*\(5,\)"):
    tc.muon().init({"w": jnp.ones((2, 2)), "b": jnp.ones(5)})
  with pytest.raises(ValueError):  # torch's constructor does too
    torch.optim.Muon([torch.zeros(5, requires_grad=True)])


def test_adafactor_update_needs_params():
  tx = tc.adafactor()
  grads = {"w": jnp.ones(3)}
  with pytest.raises(ValueError, match="`params`"):
    tx.update(grads, tx.init(grads))


# (torch class, kwargs, exception, pattern naming the argument, torch's constructor raises too)
BAD_ARGS = [
    ("Muon", {"lr": -1.0}, ValueError, "`lr`", True),
    ("Muon", {"weight_decay": -0.1}, ValueError, "`weight_decay`", True),
    ("Muon", {"momentum": -0.5}, ValueError, "`momentum`", True),
    ("Muon", {"adjust_lr_fn": "spectral"}, ValueError, "`adjust_lr_fn`", True),
    ("Muon", {"nesterov": 1}, TypeError, "`nesterov`", False),
    ("Muon", {"ns_steps": 100}, ValueError, "`ns_steps`", False),  # torch: at the first step
    ("Muon", {"ns_steps": 2.5}, TypeError, "`ns_steps`", False),
    ("Muon", {"ns_coefficients": (1.0, 2.0)}, TypeError, "`ns_coefficients`", False),
    ("Muon", {"ns_coefficients": (1.0, float("nan"), 2.0)}, ValueError, r"`ns_coefficients\[1\]`", False),
    ("Muon", {"eps": -1e-7}, ValueError, "`eps`", False),
    ("Adafactor", {"lr": -1.0}, ValueError, "`lr`", True),
    ("Adafactor", {"beta2_decay": 0.5}, ValueError, "`beta2_decay`", True),
    ("Adafactor", {"eps": (-1.0, 1e-3)}, ValueError, r"`eps\[0\]`", True),
    ("Adafactor", {"eps": (None, -1e-3)}, ValueError, r"`eps\[1\]`", True),
    ("Adafactor", {"eps": 1e-3}, TypeError, "`eps`", True),
    ("Adafactor", {"d": 0.5}, ValueError, "`d`", True),
    ("Adafactor", {"weight_decay": -0.1}, ValueError, "`weight_decay`", True),
    ("Adafactor", {"maximize": "yes"}, TypeError, "`maximize`", False),
]


@pytest.mark.parametrize("case", BAD_ARGS, ids=[f"{c[0]}-{'-'.join(c[1])}-{i}" for i, c in enumerate(BAD_ARGS)])
def test_bad_arguments_raise_naming_the_argument(case):
  name, kw, exc, pattern, torch_raises = case
  with pytest.raises(exc, match=pattern):
    getattr(tc, name.lower())(**kw)
  if torch_raises:
    with pytest.raises((ValueError, TypeError)):
      getattr(torch.optim, name)([torch.zeros(2, 2, requires_grad=True)], **kw)
