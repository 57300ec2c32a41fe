"""The bfloat16 Adadelta kernel: with every leaf bfloat16, apply_step rounds
each operation to bfloat16 exactly as XLA:CPU does on the reference path.

Checked: the kernel is in the compiled program and its results are bitwise
equal to the reference path (and to optax's adadelta) over 50 steps, per leaf
and around flatten; it holds no temporaries where XLA holds one; array or
scheduled hyper-parameters (float32 arithmetic in XLA) and mixed dtypes keep
the reference path.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests.kernels import test_fused as tf

STEPS = 50
_BF16 = jnp.bfloat16

# id -> (ours, optax's same optimizer)
_CASES = {
    "default": (lambda: jn.adadelta(), None),
    "lr-wd": (lambda: jn.adadelta(0.5, weight_decay=1e-2),
              lambda: optax.adadelta(0.5, weight_decay=1e-2)),
    "odd-hyperparams": (lambda: jn.adadelta(0.3, rho=0.95, eps=1e-8, weight_decay=3e-3),
                        lambda: optax.adadelta(0.3, rho=0.95, eps=1e-8, weight_decay=3e-3)),
    "small-lr": (lambda: jn.adadelta(1e-3, rho=0.99), lambda: optax.adadelta(1e-3, rho=0.99)),
    "int-lr": (lambda: jn.adadelta(1), lambda: optax.adadelta(1)),
    "flatten": (lambda: jn.flatten(jn.adadelta(0.7)), lambda: optax.flatten(optax.adadelta(0.7))),
}


@pytest.fixture(autouse=True)
def _default_fusing(monkeypatch):
  monkeypatch.delenv("JAXOPT_NOTES_FUSED", raising=False)


def _params(seed=21, big=300_000):
  return tf._bf16(tf._params(seed, big))


def _grads(like, step, seed=21):
  return tf._bf16(tf._grads(like, step, seed))


@tf.needs_kernel
@pytest.mark.parametrize("case", list(_CASES))
def test_bf16_adadelta_bitwise(case):
  """50 jitted steps: every step's params and state bitwise equal to the
  reference path's (one fused step from its inputs, and the fused path's own
  trajectory), and to optax's adadelta where it has the same arguments."""
  make, make_optax = _CASES[case]
  tx = make()
  params = _params()
  fused = jax.jit(tf._step_fn(tx))
  reference = jax.jit(tf._step_fn(tx, fused=False))
  state = tx.init(params)
  assert "jaxopt_notes_adadelta_bf16" in fused.lower(params, state, params).as_text()
  assert "jaxopt_notes_" not in reference.lower(params, state, params).as_text()
  pf, sf = pr, sr = params, state
  for t in range(STEPS):
    g = _grads(params, t)
    tf._assert_bitwise(fused(g, sr, pr), reference(g, sr, pr))
    pf, sf = fused(g, sf, pf)
    pr, sr = reference(g, sr, pr)
    tf._assert_bitwise((pf, sf), (pr, sr))
  chex.assert_tree_all_finite((pf, sf))
  assert not np.array_equal(tf._bits(pf["big"]), tf._bits(params["big"]))
  if make_optax is not None:
    opt = make_optax()
    po, so = params, opt.init(params)
    step = jax.jit(tf._step_fn(opt, fused=False))
    for t in range(STEPS):
      po, so = step(_grads(params, t), so, po)
    tf._assert_bitwise(pf, po)
    for a, b in zip(jax.tree.leaves(sf), jax.tree.leaves(so)):
      tf._assert_bitwise(a, b)


@tf.needs_kernel
def test_bf16_adadelta_has_no_temporaries():
  """XLA's reference step holds the bf16 update as a temporary (1.25x params +
  grads + state); the kernel writes everything in place (1.0x)."""
  tx = jn.adadelta()
  params = {"w": jnp.ones(100_000, _BF16)}
  state = tx.init(params)
  assert tf._donated_peak(tx, params, state, fused=True) <= 1.01
  # What the kernel saves; if XLA stops needing it, say so.
  assert tf._donated_peak(tx, params, state, fused=False) > 1.2


def _mixed(tree):
  return {**tree, "w": tree["w"].astype(jnp.float32)}


# id -> (optimizer, params cast): XLA computes these in float32, or the dtypes
# differ; no kernel may run.
_FALLBACKS = {
    "schedule": (lambda: jn.adadelta(jn.exponential_decay(1.0, 10, 0.9)), tf._bf16),
    "array-lr": (lambda: jn.adadelta(jnp.float32(0.5)), tf._bf16),
    "array-rho": (lambda: jn.adadelta(0.5, rho=jnp.float32(0.9)), tf._bf16),
    "array-weight-decay": (lambda: jn.adadelta(0.5, weight_decay=jnp.float32(1e-2)), tf._bf16),
    # numpy scalars are strongly typed in JAX (np.float64 even subclasses float).
    "numpy-lr": (lambda: jn.adadelta(np.float64(0.5)), tf._bf16),
    "numpy-rho": (lambda: jn.adadelta(0.5, rho=np.float64(0.9)), tf._bf16),
    "mixed-dtypes": (lambda: jn.adadelta(0.5), lambda t: _mixed(tf._bf16(t))),
}


@pytest.mark.parametrize("case", list(_FALLBACKS))
def test_bf16_fallbacks(case):
  """No kernel in the program; the step is exactly the reference path;
  fused=True raises, saying why."""
  make, cast = _FALLBACKS[case]
  tx = make()
  params = cast(tf._params(seed=22, big=1000))
  grads = jax.tree.map(lambda x: (x * 1e-2).astype(x.dtype), params)
  state = tx.init(params)
  assert "jaxopt_notes_" not in tf._hlo(tx, grads, state, params)
  tf._assert_bitwise(jax.jit(tf._step_fn(tx))(grads, state, params),
                     jax.jit(tf._step_fn(tx, fused=False))(grads, state, params))
  with pytest.raises(ValueError, match=r"^apply_step\(fused=True\) cannot use") as e:
    jn.apply_step(tx, grads, state, params, fused=True)
  if jn.fused_status().available:
    assert "float32" in str(e.value)
