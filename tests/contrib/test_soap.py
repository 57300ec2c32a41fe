"""soap against pytorch_optimizer.SOAP (4.1.0): 50-step trajectories on a
small model's shapes (a square matrix, a vector, a scalar, a conv kernel,
tall matrices and folded kernels), every option, float64 and float32, jitted
(one op-by-op run); the basis's column signs not mattering; jit,
inject_hyperparams and MultiSteps; init state; bad arguments.

Both sides follow their own trajectory on the same random non-quadratic
problem (tests/contrib/_torch_ref.py's), step by step. Where the first statistic is rank
deficient (a vector's ``g g^T`` with ``precondition_1d``, a tall matrix or a
folded axis longer than the rest), its null space has no preferred basis and
the two LAPACKs pick different ones, which changes Adam's diagonal there;
those cases copy torch's first basis into our state after the first step
("forced"), and everything after it (the refreshes included) is ours.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from pytorch_optimizer import SOAP

from jaxopt_notes.contrib import _soap as ours
from tests.contrib import _common as cm
from tests.contrib import _torch_ref as ref
from tests.contrib._torch_ref import precision

STEPS = cm.STEPS
BASE = {"w": (4, 4), "b": (5,), "k": (4, 3, 3, 3), "s": ()}
TALL = {"t": (6, 3)}

# (torch keyword arguments, leaf shapes, copy torch's first basis).
CASES = {
    "defaults": ({}, BASE, False),
    "hyper": (dict(lr=0.05, betas=(0.9, 0.99), shampoo_beta=0.8, weight_decay=0.1, eps=1e-6), BASE, False),
    "often-no-bias-normalized-no-decay": (
        dict(lr=0.02, precondition_frequency=3, correct_bias=False, normalize_gradient=True, weight_decay=0.0),
        BASE, False,
    ),
    # t's 6-long axis gets no basis, its 3-long one does (full rank).
    "max-dim": (dict(lr=0.02, max_precondition_dim=4, precondition_frequency=4), {**BASE, **TALL}, False),
    # (2, 3, 3, 4) folds to (6, 3, 4) as NCHW, to (8, 3, 3) as NHWC; the scalar
    # gets the reference's 1 x 1 basis. A vector would fold into one axis,
    # which the reference cannot reshape (see the docstring).
    "merge-channels-first": (
        dict(lr=0.02, merge_dims=True, max_precondition_dim=8, precondition_frequency=5),
        {"w": (4, 4), "k": (2, 3, 3, 4), "s": ()}, False,
    ),
    "merge-channels-last": (
        dict(lr=0.02, merge_dims=True, max_precondition_dim=8, data_format="channels_last", weight_decay=0.05),
        {"w": (4, 4), "k": (2, 3, 3, 4), "s": ()}, False,
    ),
    "precondition-1d-tall-forced": (
        dict(lr=0.02, precondition_1d=True, precondition_frequency=4), {**BASE, **TALL}, True,
    ),
    # (4, 3, 3, 3) folds to (12, 9) and t stays (6, 3): both rank deficient.
    "merge-deficient-forced": (
        dict(lr=0.02, merge_dims=True, max_precondition_dim=12, precondition_frequency=6),
        {"k": (4, 3, 3, 3), "t": (6, 3), "s": ()}, True,
    ),
}

# float64 with the QR in float64 on both sides (see qr64): only rounding is
# left, the two libraries' op order in tensordot/eigh/QR (measured worst over
# the cases, 50 steps: 4e-15 absolute, 2e-14 relative on |x| > 0.1).
F64 = dict(rtol=1e-11, atol=1e-12)
# float64 as the reference runs it: both sides round L Q to float32 before
# the QR, and two float32 LAPACK QRs differ by ~1e-7 in the bases, which the
# Adam step carries on (measured worst 4.1e-7 absolute, 3.5e-6 relative).
F64_AS_IS = dict(rtol=2e-5, atol=2e-6)
# float32: both eigendecompositions and QRs are float32 LAPACKs, ~1e-7 apart
# each step (measured worst 6e-6 absolute, 4e-5 relative, the precondition_1d
# case).
F32 = dict(rtol=2e-4, atol=3e-5)


@pytest.fixture
def qr64(monkeypatch):
  """Both sides factorise L Q in float64 (the reference's float32 cast is its only ``.to(float32)``)."""
  monkeypatch.setattr(ours, "_QR_DTYPE", jnp.float64)
  to = torch.Tensor.to

  def keep_float64(self, *args, **kwargs):
    if args and args[0] is torch.float32 and self.dtype == torch.float64:
      return self
    return to(self, *args, **kwargs)

  monkeypatch.setattr(torch.Tensor, "to", keep_float64)


def _torch_bases(opt, tparams):
  return {
      k: tuple(None if len(m) == 0 else jnp.asarray(m.numpy()) for m in opt.state[p]["Q"])
      for k, p in tparams.items()
  }


def run_both(
    kw, shapes, dtype, *, force=False, jit=True, edit_state=None, steps=STEPS, torch_cls=SOAP, factory=None
):
  """Lockstep runs of torch and ours (``soap`` unless ``factory``): ``(got, want, our final state, init)``."""

  def after_step(t, state, opt, tparams):
    if t == 0 and force:
      state = state._replace(q=_torch_bases(opt, tparams))
    if t == 0 and edit_state is not None:
      state = edit_state(state)
    return state

  tx = (factory or ours.soap)(**ref.optax_names(kw))
  run = ref.run_lockstep(torch_cls, kw, tx, shapes, dtype, steps=steps, jit=jit, after_step=after_step)
  return run.got, run.want, run.state, run.init


def assert_close(got, want, init, tol, first_step_moves=False):
  for k in want[0]:
    np.testing.assert_allclose(
        np.stack([g[k] for g in got]), np.stack([w[k] for w in want]), err_msg=f"leaf {k}", **tol
    )
  if not first_step_moves:
    # soap's first step only sets the bases up, in both.
    for k in want[0]:
      np.testing.assert_array_equal(got[0][k], init[k].astype(got[0][k].dtype))
  # Means something only if the params moved.
  assert max(np.max(np.abs(want[-1][k] - init[k])) for k in want[0]) > 1e-2


@pytest.mark.parametrize("case", sorted(CASES))
def test_float64_matches_torch(case, qr64):
  kw, shapes, force = CASES[case]
  with precision("float64"):
    got, want, _, init = run_both(kw, shapes, "float64", force=force)
  assert_close(got, want, init, F64)


@pytest.mark.parametrize("case", ["often-no-bias-normalized-no-decay"])
def test_float64_matches_torch_as_is(case):
  kw, shapes, force = CASES[case]
  with precision("float64"):
    got, want, _, init = run_both(kw, shapes, "float64", force=force)
  assert_close(got, want, init, F64_AS_IS)


# Three cases cover float32's own paths (the dtype reaches every option the
# same way; the float64 runs cover the options one by one).
@pytest.mark.parametrize("case", ["defaults", "merge-channels-last", "precondition-1d-tall-forced"])
def test_float32_matches_torch(case):
  kw, shapes, force = CASES[case]
  got, want, _, init = run_both(kw, shapes, "float32", force=force)
  assert_close(got, want, init, F32)


def test_op_by_op_matches_torch(qr64):
  """Eager dispatch is slow: 5 steps, with refreshes at 2 and 4."""
  kw, shapes, force = CASES["merge-channels-last"]
  kw = dict(kw, lr=0.05, precondition_frequency=2)
  with precision("float64"):
    got, want, _, init = run_both(kw, shapes, "float64", force=force, jit=False, steps=5)
  assert_close(got, want, init, F64)


def test_unforced_deficient_statistic_does_differ():
  """Why the forced cases exist: left alone, the null-space basis does change the run."""
  kw, shapes, _ = CASES["precondition-1d-tall-forced"]
  with precision("float64"):
    got, want, _, _ = run_both(kw, {"b": shapes["b"]}, "float64")
  assert np.max(np.abs(got[-1]["b"] - want[-1]["b"])) > 1e-6


def test_basis_signs_do_not_matter():
  """Flipping columns of the first bases (an eigenvector's sign is arbitrary) changes nothing."""
  kw, _, _ = CASES["often-no-bias-normalized-no-decay"]
  shapes = {"w": (4, 4), "k": (4, 3, 3, 3)}

  def flip(state):
    # Every other column, in every basis, before the second step.
    def leaf(q):
      return tuple(None if m is None else m * jnp.where(jnp.arange(m.shape[1]) % 2 == 0, -1.0, 1.0) for m in q)

    return state._replace(q={k: leaf(q) for k, q in state.q.items()})

  with precision("float64"):
    plain, _, plain_state, _ = run_both(kw, shapes, "float64")
    flipped, _, state, _ = run_both(kw, shapes, "float64", edit_state=flip)
  for k in plain[0]:
    np.testing.assert_allclose(
        np.stack([g[k] for g in flipped]), np.stack([g[k] for g in plain]), rtol=1e-12, atol=1e-13
    )
  # Update calls 2 to 4 ran on the flipped bases; the first refresh's Householder QR
  # then gives the same bases (its R takes the input columns' signs).
  chex.assert_trees_all_close(state.q, plain_state.q, rtol=1e-12, atol=1e-13)


def test_init_state():
  params = {"w": jnp.ones((4, 3)), "b": jnp.ones(5), "k": jnp.ones((4, 3, 3, 2)), "s": jnp.ones(())}
  state = ours.soap().init(params)
  assert isinstance(state, ours.SOAPState)
  assert state._fields == ("count", "exp_avg", "exp_avg_sq", "gg", "q")
  assert state.count.dtype == jnp.int32 and int(state.count) == 0
  chex.assert_trees_all_equal(state.exp_avg, jax.tree.map(jnp.zeros_like, params))
  chex.assert_trees_all_equal(state.exp_avg_sq, jax.tree.map(jnp.zeros_like, params))
  shapes = {k: tuple(None if m is None else m.shape for m in v) for k, v in state.gg.items()}
  assert shapes == {"w": ((4, 4), (3, 3)), "b": (None,), "k": ((4, 4), (3, 3), (3, 3), (2, 2)), "s": ()}
  chex.assert_trees_all_equal(state.q, state.gg)
  one_d = ours.soap(precondition_1d=True, max_precondition_dim=3).init(params)
  assert one_d.gg["b"] == (None,) and one_d.gg["w"][0] is None and one_d.gg["w"][1].shape == (3, 3)
  assert ours.soap(precondition_1d=True).init(params).gg["b"][0].shape == (5, 5)
  merged = ours.soap(merge_dims=True, max_precondition_dim=12).init(params)
  assert tuple(m.shape for m in merged.gg["k"]) == ((12, 12), (6, 6))
  assert tuple(m.shape for m in merged.gg["s"]) == ((1, 1),)
  # Where everything folds into one axis, that axis (the reference would fail to reshape).
  assert tuple(m.shape for m in merged.gg["w"]) == ((12, 12),)
  last = ours.soap(merge_dims=True, max_precondition_dim=12, data_format="channels_last").init(params)
  assert tuple(m.shape for m in last.gg["k"]) == ((8, 8), (9, 9))


def test_inject_hyperparams_and_schedule_equal_the_plain_run():
  params, grads = cm.random_grads(1, 8)
  kw = dict(precondition_frequency=3, weight_decay=0.1)
  plain = cm.run_steps(ours.soap(0.05, **kw), params, grads)
  injected = optax.inject_hyperparams(ours.soap, static_args=("max_precondition_dim",))(learning_rate=0.05, **kw)
  chex.assert_trees_all_close(cm.run_steps(injected, params, grads), plain, rtol=1e-6, atol=1e-7)
  chex.assert_trees_all_equal(cm.run_steps(ours.soap(lambda count: 0.05, **kw), params, grads), plain)
  # The injected rate is the one used: set in the state, it gives that rate's run.
  state = injected.init(params)
  state.hyperparams["learning_rate"] = jnp.asarray(0.025)
  halved = cm.run_steps(injected, params, grads, state)
  chex.assert_trees_all_close(halved, cm.run_steps(ours.soap(0.025, **kw), params, grads), rtol=1e-6, atol=1e-7)
  assert not np.allclose(np.asarray(halved["w"]), np.asarray(plain["w"]))


def test_traced_max_precondition_dim_names_static_args():
  tx = optax.inject_hyperparams(ours.soap)(learning_rate=0.05)
  params, grads = cm.random_grads(2, 1)
  with pytest.raises(TypeError, match="`max_precondition_dim`.*static_args"):
    jax.jit(tx.update)(grads[0], tx.init(params), params)


def test_multi_steps_equals_soap_on_the_mean_gradients():
  params, grads = cm.random_grads(3, 8)
  kw = dict(learning_rate=0.05, precondition_frequency=2)
  cm.assert_multi_steps_is_the_mean_gradients_step(lambda: ours.soap(**kw), params, grads)


def test_bfloat16_runs_and_keeps_its_dtype():
  params, grads = cm.random_grads(4, 7)
  params, grads = jax.tree.map(lambda x: x.astype(jnp.bfloat16), (params, grads))
  out = cm.run_steps(ours.soap(0.05, precondition_frequency=3, precondition_1d=True), params, grads)
  assert all(v.dtype == jnp.bfloat16 for v in jax.tree.leaves(out))
  assert cm.finite(out)


def test_update_needs_params_only_with_weight_decay():
  cm.assert_update_needs_params(ours.soap())
  tx = ours.soap(weight_decay=0.0)
  params = {"w": jnp.ones((2, 2))}
  state = tx.init(params)
  for _ in range(2):
    u, state = tx.update({"w": jnp.ones((2, 2))}, state, None)
  assert cm.finite(u) and float(jnp.max(jnp.abs(u["w"]))) > 0


NAN = float("nan")


@pytest.mark.parametrize("kwargs, error, name", [
    (dict(learning_rate=NAN), ValueError, "learning_rate"),
    (dict(learning_rate=None), TypeError, "learning_rate"),
    (dict(b1=1.0), ValueError, "b1"),
    (dict(b2=-0.1), ValueError, "b2"),
    (dict(shampoo_beta=1.5), ValueError, "shampoo_beta"),
    (dict(weight_decay=-1e-2), ValueError, "weight_decay"),
    (dict(precondition_frequency=0), ValueError, "precondition_frequency"),
    (dict(precondition_frequency=2.5), ValueError, "precondition_frequency"),
    (dict(max_precondition_dim=0), ValueError, "max_precondition_dim"),
    (dict(max_precondition_dim=2.5), TypeError, "max_precondition_dim"),
    (dict(merge_dims="yes"), TypeError, "merge_dims"),
    (dict(precondition_1d=1), TypeError, "precondition_1d"),
    (dict(correct_bias=None), TypeError, "correct_bias"),
    (dict(normalize_gradient=0), TypeError, "normalize_gradient"),
    (dict(data_format="NHWC"), ValueError, "data_format"),
    (dict(eps=-1.0), ValueError, "eps"),
])
def test_bad_arguments_raise_naming_the_argument(kwargs, error, name):
  cm.assert_raises_naming(ours.soap, kwargs, error, name)
