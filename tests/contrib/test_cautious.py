"""cautious, cautious_adamw and cautious_lion against pytorch_optimizer (4.1.0).

C-AdamW's reference is ``AdEMAMix(alpha=0, weight_decouple=True,
cautious=True)`` (pytorch_optimizer has no cautious AdamW: its ``AdamW`` is
torch's; with ``alpha=0`` AdEMAMix is torch's AdamW, checked below), C-Lion's
is ``Lion(cautious=True)``: 50-step lockstep trajectories on a matrix, a
vector, a scalar and a conv kernel, float64 and float32. ``cautious=False``
equals optax's adamw / lion bitwise; where the mask compares (``descent``);
jit, inject_hyperparams, MultiSteps; init state; bad arguments.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from pytorch_optimizer import AdEMAMix, Lion

import jaxopt_notes as jn
from jaxopt_notes.contrib import _cautious as ours
from tests import _trajectory as tj
from tests.contrib import _common as cm
from tests.contrib import _torch_ref as ref

SHAPES = {"w": (4, 4), "b": (5,), "s": (), "k": (4, 3, 3, 3)}
# Both sides do the same IEEE operations but in different orders (torch's
# addcdiv / lerp and decay-then-step vs optax's moments and decay added to
# the direction): float64 rounding, carried by 50 steps (measured worst over
# the cases 7.3e-15 absolute, 1.9e-14 relative on |x| > 0.1).
F64 = dict(rtol=1e-12, atol=1e-13)
# float32: the same at float32's rounding (measured worst 9.2e-6 absolute,
# 5e-5 relative, C-AdamW's defaults: with b2 = 0.999 the small-gradient
# coordinates' m / sqrt(v) carries the rounding of both moments; C-Lion
# 2.9e-6). A mask bit flipped by rounding would move a whole leaf by about
# lr / n (1e-3 here), far above.
F32 = dict(rtol=2e-4, atol=3e-5)

# The torch keyword arguments; weight decay given explicitly where our default (optax's) is not torch's.
ADAMW_CASES = {
    "defaults": dict(lr=0.02, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-4),
    "hyper": dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
    # The paper's C-AdamW runs: AdamW's usual LLM settings, unchanged (arXiv:2411.16085, sec. 5).
    "paper": dict(lr=0.01, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1),
}
LION_CASES = {
    "defaults": dict(lr=0.01, betas=(0.9, 0.99), weight_decay=1e-3),
    "hyper": dict(lr=0.02, betas=(0.95, 0.98), weight_decay=0.1),
}


def _adamw_reference(params, lr, betas, eps, weight_decay, cautious=True):
  return AdEMAMix(
      params, lr=lr, betas=(*betas, 0.9999), alpha=0.0, eps=eps, weight_decay=weight_decay,
      weight_decouple=True, cautious=cautious,
  )


def _run(torch_cls, kw, factory, dtype, **run_kw):
  with ref.precision(dtype):
    return ref.run_lockstep(torch_cls, kw, factory(**ref.optax_names(kw)), SHAPES, dtype, **run_kw)


@pytest.mark.parametrize("dtype, tol", [("float64", F64), ("float32", F32)])
@pytest.mark.parametrize("case", sorted(ADAMW_CASES))
def test_cautious_adamw_matches_pytorch_optimizer(case, dtype, tol):
  run = _run(_adamw_reference, ADAMW_CASES[case], ours.cautious_adamw, dtype)
  ref.assert_lockstep_close(run, **tol)


@pytest.mark.parametrize("dtype, tol", [("float64", F64), ("float32", F32)])
@pytest.mark.parametrize("case", sorted(LION_CASES))
def test_cautious_lion_matches_pytorch_optimizer(case, dtype, tol):
  run = _run(lambda p, **kw: Lion(p, cautious=True, **kw), LION_CASES[case], ours.cautious_lion, dtype)
  ref.assert_lockstep_close(run, **tol)


def test_the_mask_changes_the_run():
  """What the tests above compare is the mask: without it, torch's run is another one."""
  kw = ADAMW_CASES["hyper"]
  plain = _run(lambda p, **k: _adamw_reference(p, cautious=False, **k), kw, ours.cautious_adamw, "float64")
  assert ref.max_errors(plain)[0] > 1e-2


def test_the_adamw_reference_is_torch_adamw():
  """AdEMAMix with alpha=0 and decoupled decay is torch.optim.AdamW, to rounding."""
  kw = ADAMW_CASES["hyper"]
  with ref.precision("float64"):
    a = ref.run_lockstep(
        lambda p, **k: _adamw_reference(p, cautious=False, **k), kw, jn.sgd(0.0), SHAPES, "float64"
    )
    b = ref.run_lockstep(torch.optim.AdamW, kw, jn.sgd(0.0), SHAPES, "float64")
  for x, y in zip(a.want, b.want):
    chex.assert_trees_all_close(x, y, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name, dtype", [("adamw", "float32"), ("adamw", "float64"), ("lion", "float32")])
def test_without_the_mask_equals_optax(name, dtype):
  ours_tx = {"adamw": ours.cautious_adamw, "lion": ours.cautious_lion}[name]
  optax_tx = {"adamw": optax.adamw, "lion": optax.lion}[name]
  tj.compare_with_optax(
      lambda f: jax.jit(f), lambda: ours_tx(0.02, cautious=False), lambda: optax_tx(0.02), dtype,
      steps=cm.STEPS, **cm.BITWISE,
  )


def test_descent_compares_the_other_sign():
  """The mask after the learning rate (descent=True) is the mask before it: same run."""
  with jax.enable_x64(True):
    params = tj.make_params(0, "float64")
    before = ours.cautious_adamw(0.03, weight_decay=0.0)
    after = ours.cautious(optax.adam(0.03), descent=True)
    wrong = ours.cautious(optax.adam(0.03), descent=False)
    runs = tj.run_trajectories(lambda f: jax.jit(f), [before, after, wrong], params, 30)
    chex.assert_trees_all_close(runs[1].history, runs[0].history, rtol=1e-13, atol=1e-15)
    # The wrong sign keeps the coordinates that climb: far from the right run.
    diff = jax.tree.map(lambda a, b: jnp.max(jnp.abs(a - b)), runs[2].params, runs[0].params)
    assert max(float(d) for d in jax.tree.leaves(diff)) > 1e-2


def test_cautious_mask_values():
  u, g = jnp.array([1.0, -2.0, 3.0, 4.0]), jnp.array([2.0, 1.0, -1.0, 0.0])
  # g = 0 agrees with neither sign.
  np.testing.assert_array_equal(ours.cautious_mask(u, g, descent=False), [4 / 2, 0.0, 0.0, 0.0])
  np.testing.assert_array_equal(ours.cautious_mask(u, g, descent=False, normalize=False), [1.0, 0.0, 0.0, 0.0])
  np.testing.assert_allclose(ours.cautious_mask(u, g, descent=True), [0.0, -2.0 * 4 / 3, 3.0 * 4 / 3, 0.0], rtol=1e-7)
  # bfloat16: the kept count (300 of 300) is not rounded to bfloat16's 300 -> 300, 301 -> 300 steps.
  big = ours.cautious_mask(jnp.ones(300, jnp.bfloat16), jnp.ones(300, jnp.bfloat16), descent=False)
  assert big.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(big, np.float32), 300 / 301, rtol=4e-3)


def test_extra_args_and_partition():
  """The wrapper passes extra update arguments on and skips leaves masked out by partition."""
  tx = jn.partition(
      {"c": ours.cautious(optax.sgd(0.1, momentum=0.9), descent=True), "f": jn.set_to_zero()},
      {"w": "c", "b": "f"},
  )
  params = {"w": jnp.ones(3), "b": jnp.ones(2)}
  state = tx.init(params)
  for g in ([1.0, 1.0, 1.0], [1.0, -0.05, 1.0]):
    u, state = tx.update({"w": jnp.array(g), "b": jnp.ones(2)}, state, params, value=1.0)
  np.testing.assert_allclose(u["w"], [-0.19 * 3 / 3, 0.0, -0.19 * 3 / 3], rtol=1e-6)
  np.testing.assert_array_equal(u["b"], 0.0)


def test_jit_equals_op_by_op():
  kw = ADAMW_CASES["hyper"]
  with ref.precision("float64"):
    jitted = ref.run_lockstep(_adamw_reference, kw, ours.cautious_adamw(**ref.optax_names(kw)), SHAPES,
                              "float64", steps=10)
    eager = ref.run_lockstep(_adamw_reference, kw, ours.cautious_adamw(**ref.optax_names(kw)), SHAPES,
                             "float64", steps=10, jit=False)
  for a, b in zip(jitted.got, eager.got):
    chex.assert_trees_all_close(a, b, rtol=1e-13, atol=1e-15)


def _run_grads(tx, params, grads, state=None):
  state = tx.init(params) if state is None else state
  update = jax.jit(tx.update)
  for g in grads:
    u, state = update(g, state, params)
    params = jn.apply_updates(params, u)
  return params


@pytest.mark.parametrize("factory", [ours.cautious_adamw, ours.cautious_lion])
def test_inject_hyperparams_over_the_learning_rate(factory):
  params = {"w": jnp.array([1.0, -2.0, 0.5, 0.1]), "b": jnp.array(0.3)}
  rng = np.random.default_rng(0)
  grads = [jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params) for _ in range(5)]
  injected = optax.inject_hyperparams(factory)(learning_rate=0.05)
  # Every numeric argument is traced there (decay, eps), so float32 rounding
  # differs (optax.adamw itself: 1.1e-6 relative against its plain run).
  chex.assert_trees_all_close(_run_grads(injected, params, grads), _run_grads(factory(0.05), params, grads),
                              rtol=1e-5, atol=1e-6)
  state = injected.init(params)
  state.hyperparams["learning_rate"] = jnp.asarray(0.02)
  chex.assert_trees_all_close(_run_grads(injected, params, grads, state), _run_grads(factory(0.02), params, grads),
                              rtol=1e-5, atol=1e-6)


def test_multi_steps_equals_the_mean_gradients():
  params = {"w": jnp.array([1.0, -2.0, 0.5])}
  rng = np.random.default_rng(0)
  grads = [{"w": jnp.asarray(rng.normal(size=3), jnp.float32)} for _ in range(6)]
  run = lambda tx, gs: _run_grads(tx, params, gs)
  means = [jax.tree.map(lambda a, b: (a + b) / 2, grads[i], grads[i + 1]) for i in range(0, 6, 2)]
  multi = optax.MultiSteps(ours.cautious_lion(0.05), every_k_schedule=2)
  chex.assert_trees_all_close(run(multi, grads), run(ours.cautious_lion(0.05), means), rtol=1e-6)


def test_init_state_is_the_inner_chain_state():
  params = {"w": jnp.ones((2, 3)), "b": jnp.ones(3, jnp.float32)}
  state = ours.cautious_adamw(0.1).init(params)
  chex.assert_trees_all_equal_structs(state, jn.adamw(0.1).init(params))
  adam_state = state[0]
  assert adam_state._fields == optax.adamw(0.1).init(params)[0]._fields == ("count", "mu", "nu")
  assert adam_state.count.dtype == jnp.int32
  chex.assert_trees_all_equal(adam_state.mu, jax.tree.map(jnp.zeros_like, params))
  lion_state = ours.cautious_lion(0.1, mu_dtype=jnp.bfloat16).init(params)[0]
  assert all(m.dtype == jnp.bfloat16 for m in jax.tree.leaves(lion_state.mu))


NAN = float("nan")


@pytest.mark.parametrize("factory, kwargs, error, name", [
    (ours.cautious_adamw, dict(learning_rate=None), TypeError, "learning_rate"),
    (ours.cautious_adamw, dict(learning_rate=NAN), ValueError, "learning_rate"),
    (ours.cautious_adamw, dict(learning_rate=0.1, b1=1.0), ValueError, "b1"),
    (ours.cautious_adamw, dict(learning_rate=0.1, b2=-0.1), ValueError, "b2"),
    (ours.cautious_adamw, dict(learning_rate=0.1, eps=-1.0), ValueError, "eps"),
    (ours.cautious_adamw, dict(learning_rate=0.1, cautious="yes"), TypeError, "cautious"),
    (ours.cautious_lion, dict(learning_rate=0.1, b1=1.5), ValueError, "b1"),
    (ours.cautious_lion, dict(learning_rate=0.1, cautious=1), TypeError, "cautious"),
    (lambda **kw: ours.cautious(optax.sgd(0.1), **kw), dict(descent="yes"), TypeError, "descent"),
    (lambda **kw: ours.cautious(optax.sgd(0.1), descent=True, **kw), dict(normalize=None), TypeError, "normalize"),
])
def test_bad_arguments_raise_naming_the_argument(factory, kwargs, error, name):
  cm.assert_raises_naming(factory, kwargs, error, name)


def test_descent_is_required():
  with pytest.raises(TypeError, match="descent"):
    ours.cautious(optax.sgd(0.1))  # type: ignore[call-arg]
