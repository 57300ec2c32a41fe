"""lamb, lars and fromage: 100-step trajectories equal to optax's for every
flag that changes the math, with the learning rate as a float, a lambda
schedule and an optax schedule; the per-layer step lengths their trust ratios
impose; optax's alias_test properties (a parabola solved, bfloat16 kept)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj


def _matrices(params):
  """Mask: matrices only (not vectors, scalars)."""
  return jax.tree.map(lambda p: p.ndim == 2, params)


_BASE = {
    "lamb": (0.02, lambda lib, lr: lib.lamb(lr)),
    "lars": (1.0, lambda lib, lr: lib.lars(lr)),
    "fromage": (0.05, lambda lib, lr: lib.fromage(lr)),
}

# id -> (dtype, lib -> optimizer). Every option that changes the math, each
# run jitted and op by op; the dtypes alternate (the base cases run both).
_FLAGS = {
    "lamb-b1-b2-eps-eps_root": ("float32", lambda lib: lib.lamb(0.02, 0.5, 0.9, 1e-3, 1e-8)),
    "lamb-wd": ("float64", lambda lib: lib.lamb(0.02, weight_decay=0.1)),
    "lamb-wd-mask": ("float32", lambda lib: lib.lamb(0.02, weight_decay=0.1, mask=_matrices)),
    "lamb-wd-schedule": ("float64", lambda lib: lib.lamb(0.02, weight_decay=lambda t: 0.1 / (1 + 0.05 * t))),
    "lars-wd": ("float32", lambda lib: lib.lars(1.0, weight_decay=0.1)),
    "lars-wd-mask-tree": ("float64", lambda lib: lib.lars(
        1.0, weight_decay=0.1, weight_decay_mask=_matrices(tj.make_params())
    )),
    "lars-trust_ratio_mask": ("float32", lambda lib: lib.lars(0.05, trust_ratio_mask=_matrices)),
    "lars-coefficient-eps": ("float64", lambda lib: lib.lars(1.0, trust_coefficient=0.01, eps=1e-3)),
    "lars-nesterov": ("float32", lambda lib: lib.lars(1.0, nesterov=True)),
    "lars-momentum0": ("float64", lambda lib: lib.lars(1.0, momentum=0.0)),
    # The floor binds for the scalar leaf and for small gradients.
    "fromage-min_norm": ("float32", lambda lib: lib.fromage(0.05, min_norm=0.5)),
}

_LR_AND_DTYPE = [
    ("float", "float32"), ("float", "float64"),
    ("lambda", "float32"), ("optax_schedule", "float64"),
]


def _before_each_step(run, dtype):
  """Stacked params each update was computed at."""
  with tj.precision(dtype):
    start = tj.make_params(0, dtype)
  return jax.tree.map(lambda p0, h: np.concatenate([np.asarray(p0)[None], h[:-1]]), start, run.history)


def _norms(stacked):
  return [np.sqrt(np.sum(np.asarray(x, np.float64) ** 2, axis=tuple(range(1, np.ndim(x)))))
          for x in jax.tree.leaves(stacked)]


class TestBaseConfigurations(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("lr_kind,dtype", _LR_AND_DTYPE)
  @pytest.mark.parametrize("name", sorted(_BASE))
  def test_matches_optax(self, name, lr_kind, dtype):
    """optax's defaults: params at every step, state, updates."""
    value, make = _BASE[name]
    lr = tj.learning_rate(lr_kind, value)
    ours, _ = tj.compare_with_optax(self.variant, lambda: make(jn, lr), lambda: make(optax, lr), dtype)
    if lr_kind != "float":
      counts = [
          int(x) for x in jax.tree.leaves(ours.state)
          if np.ndim(x) == 0 and jnp.issubdtype(jnp.asarray(x).dtype, jnp.integer)
      ]
      assert tj.STEPS in counts
    # The trust ratio sets each layer's step length from its weight norm.
    lrs = np.array([lr(t) if callable(lr) else lr for t in range(tj.STEPS)], np.float64)
    before = _before_each_step(ours, dtype)
    if name == "lamb":
      for u, w in zip(_norms(ours.updates), _norms(before)):
        np.testing.assert_allclose(u, lrs * w, rtol=1e-5)
    if name == "fromage":
      # w_t = (w - lr r) / sqrt(1 + lr^2) with ||r|| = ||w||: w_t - shrink * w has length shrink * lr ||w||.
      shrink = 1 / np.sqrt(1 + lrs**2)
      for w, after in zip(jax.tree.leaves(before), jax.tree.leaves(ours.history)):
        axes = tuple(range(1, np.ndim(w)))
        s = shrink.reshape((-1,) + (1,) * len(axes))
        moved = np.sqrt(np.sum((np.asarray(after, np.float64) - s * w) ** 2, axis=axes))
        w_norm = np.sqrt(np.sum(np.asarray(w, np.float64) ** 2, axis=axes))
        np.testing.assert_allclose(moved, shrink * lrs * w_norm, rtol=1e-4)


class TestFlags(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("case", sorted(_FLAGS))
  def test_matches_optax(self, case):
    dtype, make = _FLAGS[case]
    ours, _ = tj.compare_with_optax(self.variant, lambda: make(jn), lambda: make(optax), dtype)
    if case == "lars-momentum0":
      # No momentum, no decay: each layer moves by lr * 0.001 * ||w|| per step.
      for u, w in zip(_norms(ours.updates), _norms(_before_each_step(ours, dtype))):
        np.testing.assert_allclose(u, 1e-3 * w, rtol=1e-5)
    if case == "lars-trust_ratio_mask":
      # Unmasked leaves take the plain momentum step: their trace is the sum of decayed gradients.
      trace = ours.state[3].trace
      for keep, g, m in zip(jax.tree.leaves(_matrices(tj.make_params())), jax.tree.leaves(ours.grads),
                            jax.tree.leaves(trace)):
        if not keep:
          weights = 0.9 ** np.arange(tj.STEPS - 1, -1, -1).reshape((-1,) + (1,) * (np.ndim(g) - 1))
          np.testing.assert_allclose(m, -0.05 * np.sum(weights * g, axis=0), rtol=1e-4)


def _parabola_solution(opt, steps=10_000):
  """optax's alias_test: minimise |w - (1, -1, 1)|^2 from (-1, 10, 1), jitted."""
  target = jnp.array([1.0, -1.0, 1.0])
  loss = lambda w: jnp.sum((w - target) ** 2)

  def body(_, carry):
    w, state = carry
    updates, state = opt.update(jax.grad(loss)(w), state, w)
    return optax.apply_updates(w, updates), state

  w0 = jnp.array([-1.0, 10.0, 1.0])
  w, _ = jax.jit(lambda w, s: jax.lax.fori_loop(0, steps, body, (w, s)))(w0, opt.init(w0))
  return w, target


@pytest.mark.parametrize("make", [
    lambda: jn.lamb(1e-3), lambda: jn.lars(1.0), lambda: jn.fromage(5e-3),
], ids=["lamb", "lars", "fromage"])
def test_solves_a_parabola(make):
  """optax's learning rates for these three reach the minimum within 3e-2 in 10k steps."""
  w, target = _parabola_solution(make())
  np.testing.assert_allclose(w, target, rtol=3e-2, atol=3e-2)


@pytest.mark.parametrize("name", sorted(_BASE))
def test_bfloat16_updates_keep_the_grads_dtype(name):
  """optax's alias_test: updates are bfloat16 for bfloat16 params and gradients."""
  opt = _BASE[name][1](jn, 1e-2)
  params = jnp.array([1.0, 2.0], jnp.bfloat16)
  grads = 2 * params
  updates, _ = jax.jit(opt.update)(grads, jax.jit(opt.init)(params), params)
  assert updates.dtype == jnp.bfloat16


@pytest.mark.parametrize("name,lr", [("lamb", 1e-3), ("lars", 1.0), ("fromage", 5e-3)])
def test_inject_hyperparams_gives_the_same_step(name, lr):
  """optax's alias_test: the optimizer wrapped in inject_hyperparams steps as itself."""
  factory = getattr(jn, name)
  opt, injected = factory(lr), jn.inject_hyperparams(factory)(lr)
  params = [-jnp.ones((2, 3)), jnp.ones((2, 5, 2))]
  grads = [jnp.ones((2, 3)), -jnp.ones((2, 5, 2))]
  updates, state = jax.jit(opt.update)(grads, opt.init(params), params)
  updates_i, state_i = jax.jit(injected.update)(grads, injected.init(params), params)
  # Injected hyper-parameters are float32 arrays: 1 - b2 rounds in float32, not in Python (optax's tolerances).
  chex.assert_trees_all_close(updates_i, updates, rtol=1e-3)
  chex.assert_trees_all_close(state_i.inner_state, state, rtol=1e-4)


@pytest.mark.parametrize("factory,kwargs,arg,error", [
    (jn.lamb, {"learning_rate": None}, "learning_rate", TypeError),
    (jn.lamb, {"learning_rate": 0.1, "b1": 1.0}, "b1", ValueError),
    (jn.lamb, {"learning_rate": 0.1, "weight_decay": float("nan")}, "weight_decay", ValueError),
    (jn.lars, {"learning_rate": None}, "learning_rate", TypeError),
    (jn.lars, {"learning_rate": 0.1, "momentum": 1.0}, "momentum", ValueError),
    (jn.lars, {"learning_rate": 0.1, "momentum": None}, "momentum", TypeError),
    (jn.lars, {"learning_rate": 0.1, "trust_coefficient": -1.0}, "trust_coefficient", ValueError),
    (jn.lars, {"learning_rate": 0.1, "eps": -1.0}, "eps", ValueError),
    (jn.lars, {"learning_rate": 0.1, "nesterov": "yes"}, "nesterov", TypeError),
    (jn.lars, {"learning_rate": 0.1, "trust_ratio_mask": {"w": "yes"}}, r"mask\['w'\]", TypeError),
    (jn.fromage, {"learning_rate": None}, "learning_rate", TypeError),
    (jn.fromage, {"learning_rate": float("inf")}, "learning_rate", ValueError),
    (jn.fromage, {"learning_rate": 0.1, "min_norm": -1.0}, "min_norm", ValueError),
])
def test_bad_argument_names_it(factory, kwargs, arg, error):
  with pytest.raises(error, match=arg if arg.startswith("mask") else f"`{arg}`"):
    factory(**kwargs)
