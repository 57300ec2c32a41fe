"""jaxopt_notes.contrib.muon against optax.contrib.muon (optax 0.2.8)."""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest
from optax.contrib import _muon as optax_muon

from jaxopt_notes.contrib import _newton_schulz as ns
from jaxopt_notes.wrappers import hyperparams
from tests import _trajectory as tj

jm = importlib.import_module("jaxopt_notes.contrib._muon")

STEPS = 50


def _params(dtype):
  rng = np.random.default_rng(0)
  arr = lambda *s: jnp.asarray(rng.normal(size=s), dtype)
  return {"w": arr(4, 3), "wide": arr(2, 5), "v": arr(3), "s": arr(), "k": arr(3, 3, 2, 4)}


def _dims(lib):
  d = lib.MuonDimensionNumbers
  return {"w": d(), "wide": d(0, 1), "v": None, "s": None, "k": d((0, 1, 2), 3)}


CASES = {
    "defaults": {},
    "conv_dims": dict(dims=True),
    "all_options": dict(
        dims=True, ns_coeffs="dion", beta=0.9, eps=1e-7, weight_decay=0.1,
        weight_decay_mask={"w": True, "wide": False, "v": False, "s": False, "k": True},
        nesterov=False, adaptive=True, preconditioning="aol", adam_b1=0.8, adam_b2=0.99,
        adam_eps_root=1e-8, adam_weight_decay=0.01, adam_learning_rate=0.02, consistent_rms=0.2,
    ),
    "schatten": dict(dims=True, preconditioning="schatten", ns_steps=3),
    "spectral": dict(preconditioning="spectral", ns_coeffs=((3.0, -3.2, 1.2), (2.0, -1.5, 0.5))),
    "positional": dict(args=((2.5, -3.0, 1.0), 4, 0.9, 1e-6, 0.05)),
}


def _assert_bitwise(a, b):
  jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)


def _build(lib, case, lr):
  kw = dict(case)
  args = kw.pop("args", ())
  if kw.pop("dims", False):
    kw["muon_weight_dimension_numbers"] = _dims(lib)
  return lib.muon(lr, *args, **kw)


def _run(tx, params, jit=True, steps=STEPS):
  state = tx.init(params)
  update = jax.jit(tx.update) if jit else tx.update
  history = []
  for t in range(steps):
    grads = jax.tree.map(lambda p: p - 0.3 + 0.1 * jnp.sin(0.3 * t + jnp.zeros_like(p)), params)
    updates, state = update(grads, state, params)
    params = optax.apply_updates(params, updates)
    history.append(params)
  return history, state


@pytest.mark.parametrize("dtype", tj.DTYPES)
@pytest.mark.parametrize(
    "name, lr_kind",
    [(n, "float") for n in CASES] + [("defaults", "optax_schedule"), ("all_options", "optax_schedule")],
)
def test_trajectory_equals_optax(name, lr_kind, dtype):
  with tj.precision(dtype):
    lr = tj.learning_rate(lr_kind)
    params = _params(dtype)
    ours, s_ours = _run(_build(jm, CASES[name], lr), params)
    ref, s_ref = _run(_build(optax.contrib, CASES[name], lr), params)
    # Bitwise: the same operations in the same order.
    _assert_bitwise(ours, ref)
    tj.assert_states_close(s_ours, s_ref, rtol=0, atol=0)
    assert any(bool(jnp.any(a != b)) for a, b in zip(jax.tree.leaves(ours[-1]), jax.tree.leaves(params)))


def test_jit_equals_no_jit():
  params = _params("float32")
  # Op by op is slow (every Newton-Schulz matmul dispatched): 10 steps.
  a, _ = _run(jm.muon(0.05), params, jit=True, steps=10)
  b, _ = _run(jm.muon(0.05), params, jit=False, steps=10)
  # Op by op, XLA rounds the matmuls differently; the quintic (c0 = 3.4)
  # amplifies those ulps, so 50 steps drift by a few 1e-6.
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6), a[-1], b[-1])


@pytest.mark.parametrize("shape", [(7, 3), (3, 7), (5, 5)])
@pytest.mark.parametrize("preconditioning", ["frobenius", "spectral", "aol", "schatten"])
@pytest.mark.parametrize("coeffs", ["standard", "dion"])
def test_newton_schulz_equals_optax(shape, preconditioning, coeffs):
  x = jax.random.normal(jax.random.key(1), shape)
  c = jnp.asarray(ns.NS_COEFFS_PRESETS[coeffs])
  ours = jm.orthogonalize_via_newton_schulz(x, c, 5, preconditioning)
  ref = optax_muon.orthogonalize_via_newton_schulz(x, c, 5, preconditioning)
  np.testing.assert_array_equal(ours, ref)


def test_inject_hyperparams_learning_rate():
  params = _params("float32")
  tx = hyperparams.inject_hyperparams(jm.muon)(learning_rate=0.05)
  ref = optax.inject_hyperparams(optax.contrib.muon)(learning_rate=0.05)
  a, sa = _run(tx, params)
  b, _ = _run(ref, params)
  _assert_bitwise(a[-1], b[-1])
  assert float(sa.hyperparams["learning_rate"]) == pytest.approx(0.05)


def test_state_structure_matches_optax():
  params = _params("float32")
  tj.assert_states_close(jm.muon(0.1).init(params), optax.contrib.muon(0.1).init(params))


@pytest.mark.parametrize("kwargs, name", [
    (dict(ns_coeffs="nope"), "ns_coeffs"),
    (dict(ns_coeffs=(1.0, 2.0)), "ns_coeffs"),
    (dict(preconditioning="nope"), "preconditioning"),
    (dict(beta=1.5), "beta"),
    (dict(ns_coeffs="dion", ns_steps=3), "ns_steps"),
])
def test_bad_arguments_raise(kwargs, name):
  with pytest.raises(ValueError, match=name):
    tx = jm.muon(0.1, **kwargs)
    p = {"w": jnp.ones((2, 2))}
    tx.update(p, tx.init(p), p)


def test_learning_rate_none_raises():
  with pytest.raises(TypeError, match="learning_rate"):
    jm.muon(None)
