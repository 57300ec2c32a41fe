"""adabelief, yogi, adan, novograd (optimizers/adam_variants.py) and adamaxw
(optimizers/adam.py): 100-step trajectories equal to optax's for every kind
of learning rate and every option that changes the math (weight decay, its
mask and schedule), optax's alias properties (minimising its parabola and
Rosenbrock, inject_hyperparams, dtypes kept), and the argument checks."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj


def _matrices(params):
  """Mask: decay matrices only (not vectors, scalars)."""
  return jax.tree.map(lambda p: p.ndim == 2, params)


# name -> (learning rate, (lib, lr) -> optimizer): optax's defaults.
_BASE = {
    "adabelief": (0.02, lambda lib, lr: lib.adabelief(lr)),
    "yogi": (0.02, lambda lib, lr: lib.yogi(lr)),
    "adan": (0.02, lambda lib, lr: lib.adan(lr)),
    "novograd": (0.02, lambda lib, lr: lib.novograd(lr)),
    "adamaxw": (0.02, lambda lib, lr: lib.adamaxw(lr)),
}

# id -> (dtype, lib -> optimizer): each option that changes the math, with
# every argument non-default and positional where optax's signature allows,
# so a swapped or dropped argument shows.
_FLAGS = {
    "adabelief-all-args": ("float64", lambda lib: lib.adabelief(0.02, 0.8, 0.99, 1e-8, 0.0, nesterov=True)),
    "yogi-all-args": ("float64", lambda lib: lib.yogi(0.02, 0.5, 0.9, 1e-2)),
    "adan-all-args": ("float32", lambda lib: lib.adan(0.02, 0.9, 0.8, 0.95, 1e-6, 0.0, 0.1)),
    "adan-wd-schedule-mask": ("float64", lambda lib: lib.adan(
        0.02, weight_decay=lambda t: 0.1 / (1 + 0.05 * t), mask=_matrices)),
    "novograd-all-args": ("float64", lambda lib: lib.novograd(0.02, 0.8, 0.5, 1e-8, 1e-8, 0.1)),
    "adamaxw-all-args": ("float32", lambda lib: lib.adamaxw(0.02, 0.5, 0.9, 1e-3, 0.1)),
    "adamaxw-wd-schedule-mask-tree": ("float64", lambda lib: lib.adamaxw(
        0.02, weight_decay=lambda t: 0.1 / (1 + 0.05 * t), mask=_matrices(tj.make_params()))),
}

# A float learning rate in both dtypes, each schedule in one of them.
_LR_AND_DTYPE = [
    ("float", "float32"), ("float", "float64"),
    ("lambda", "float32"), ("optax_schedule", "float64"),
]


class TestMatchesOptax(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("lr_kind,dtype", _LR_AND_DTYPE)
  @pytest.mark.parametrize("name", sorted(_BASE))
  def test_base_configuration(self, name, lr_kind, dtype):
    """optax's defaults: params at every step, updates, the state field by field."""
    value, make = _BASE[name]
    lr = tj.learning_rate(lr_kind, value)
    ours, _ = tj.compare_with_optax(
        self.variant, lambda: make(jn, lr), lambda: make(optax, lr), dtype
    )
    if lr_kind != "float":
      assert int(ours.state[-1].count) == tj.STEPS  # the schedule's counter

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("case", sorted(_FLAGS))
  def test_option(self, case):
    dtype, make = _FLAGS[case]
    tj.compare_with_optax(self.variant, lambda: make(jn), lambda: make(optax), dtype)


class TestProperties:

  @pytest.mark.parametrize("name", ["adan", "adamaxw"])
  def test_decay_is_decoupled_and_masked(self, name):
    """The decay is added after the scaling: u = -eta (scaled + lambda w) where masked."""
    params = {"a": jnp.array([2.0, -4.0]), "b": jnp.array([3.0])}
    g = {"a": jnp.array([1.0, 1.0]), "b": jnp.array([-1.0])}
    plain_tx = getattr(jn, name)(0.1, weight_decay=0.0)
    plain, _ = plain_tx.update(g, plain_tx.init(params), params)
    tx = getattr(jn, name)(0.1, weight_decay=0.5, mask={"a": True, "b": False})
    out, _ = tx.update(g, tx.init(params), params)
    np.testing.assert_allclose(out["a"], plain["a"] - 0.1 * 0.5 * params["a"], rtol=1e-6)
    np.testing.assert_array_equal(out["b"], plain["b"])

  def test_adamaxw_without_decay_is_adamax(self):
    params = {"w": jnp.array([1.0, -2.0])}
    g = {"w": jnp.array([0.5, 3.0])}
    outs = []
    for tx in (jn.adamaxw(0.1, 0.8, 0.9, weight_decay=0.0), jn.adamax(0.1, 0.8, 0.9)):
      state = tx.init(params)
      for _ in range(3):
        out, state = tx.update(g, state, params)
      outs.append(out)
    chex.assert_trees_all_equal(*outs)

  def test_novograd_weight_decay_enters_the_momentum(self):
    """NovoGrad's decay is inside the momentum: it compounds with b1."""
    params = {"w": jnp.array([1.0, 2.0])}
    zero = {"w": jnp.zeros(2)}
    tx = jn.novograd(1.0, b1=0.5, eps=1.0, weight_decay=0.1)
    state = tx.init(params)
    out1, state = tx.update(zero, state, params)
    out2, _ = tx.update(zero, state, params)
    np.testing.assert_allclose(out1["w"], -0.1 * params["w"], rtol=1e-6)
    np.testing.assert_allclose(out2["w"], -(0.5 * 0.1 + 0.1) * params["w"], rtol=1e-6)

  def test_novograd_update_needs_params(self):
    tx = jn.novograd(0.1)
    p = {"w": jnp.ones(2)}
    with pytest.raises(ValueError, match="needs the current parameters"):
      tx.update(p, tx.init(p))


# optax's alias_test settings (its _OPTIMIZERS_UNDER_TEST).
_OPTAX_SETTINGS = {
    "adabelief": dict(learning_rate=1e-2),
    "yogi": dict(learning_rate=1e-1),
    "adan": dict(learning_rate=1e-1),
    "novograd": dict(learning_rate=1e-3),
    "adamaxw": dict(learning_rate=1e-1),
}


def _parabola():
  start, target = jnp.array([-1.0, 10.0, 1.0]), jnp.array([1.0, -1.0, 1.0])
  return start, target, lambda p: jnp.sum(jnp.square(p - target))


def _rosenbrock():
  start, target = jnp.array([0.0, 0.0]), jnp.array([1.0, 1.0])
  return start, target, lambda p: (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2


def _minimise(tx, start, objective, steps=10_000):
  def step(carry, _):
    params, state = carry
    updates, state = tx.update(jax.grad(objective)(params), state, params)
    return (optax.apply_updates(params, updates), state), None

  (params, _), _ = jax.jit(lambda c: jax.lax.scan(step, c, None, length=steps))((start, tx.init(start)))
  return params


@pytest.mark.parametrize("target", ["parabola", "rosenbrock"])
@pytest.mark.parametrize("name", sorted(_OPTAX_SETTINGS))
def test_minimises_optax_targets(name, target):
  """optax's test_optimization: 10,000 steps reach the minimiser within 3e-2."""
  start, minimiser, objective = {"parabola": _parabola, "rosenbrock": _rosenbrock}[target]()
  params = _minimise(getattr(jn, name)(**_OPTAX_SETTINGS[name]), start, objective)
  np.testing.assert_allclose(params, minimiser, rtol=3e-2, atol=3e-2)


@pytest.mark.parametrize("name", sorted(_OPTAX_SETTINGS))
def test_inject_hyperparams_gives_the_same_step(name):
  """optax's test_optimizers_can_be_wrapped_in_inject_hyperparams (its tolerances:
  injected hyperparameters are float32 arrays, so ``1 - b2`` rounds differently),
  and the injected step equal to optax's injected step."""
  kwargs = _OPTAX_SETTINGS[name]
  params = [-jnp.ones((2, 3)), jnp.ones((2, 5, 2))]
  grads = [jnp.ones((2, 3)), -jnp.ones((2, 5, 2))]

  def step(tx):
    return jax.jit(tx.update)(grads, jax.jit(tx.init)(params), params)

  updates, state = step(getattr(jn, name)(**kwargs))
  updates_i, state_i = step(jn.inject_hyperparams(getattr(jn, name))(**kwargs))
  chex.assert_trees_all_close(updates_i, updates, rtol=1e-3)
  chex.assert_trees_all_close(state_i.inner_state, state, rtol=1e-4)
  updates_o, state_o = step(optax.inject_hyperparams(getattr(optax, name))(**kwargs))
  chex.assert_trees_all_close(updates_i, updates_o, **tj.tolerance("float32"))
  tj.assert_states_close(state_i.inner_state, state_o.inner_state)


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
@pytest.mark.parametrize("name", sorted(_OPTAX_SETTINGS))
def test_updates_keep_the_gradient_dtype(name, dtype):
  """optax's test_preserve_dtype, jitted."""
  tx = getattr(jn, name)(**_OPTAX_SETTINGS[name])
  params = jnp.array([1.0, 2.0], dtype)
  grads = jax.grad(lambda x: jnp.sum(x**2))(params)
  updates, _ = jax.jit(tx.update)(grads, jax.jit(tx.init)(params), params)
  assert updates.dtype == grads.dtype


@pytest.mark.parametrize("name", sorted(_BASE))
def test_learning_rate_none_is_refused_naming_it(name):
  """optax reads None as no scaling, which also skips the sign flip (it climbs)."""
  params, grads = {"w": jnp.array([1.0, -2.0])}, {"w": jnp.array([0.5, -0.5])}
  theirs = getattr(optax, name)(None)
  climbed = optax.apply_updates(params, theirs.update(grads, theirs.init(params), params)[0])
  assert float(jnp.vdot(climbed["w"] - params["w"], grads["w"])) > 0
  with pytest.raises(TypeError, match="`learning_rate` must be a number or a schedule, not None"):
    getattr(jn, name)(None)


_BAD = [
    ("adabelief", dict(learning_rate=float("inf")), ValueError, "`learning_rate`"),
    ("adabelief", dict(b1=1.0), ValueError, "`b1`"),
    ("adabelief", dict(eps_root=-1.0), ValueError, "`eps_root`"),
    ("adabelief", dict(nesterov=1), TypeError, "`nesterov`"),
    ("yogi", dict(b2=1.0), ValueError, "`b2`"),
    ("yogi", dict(eps=-1e-3), ValueError, "`eps`"),
    ("adan", dict(b3=1.0), ValueError, "`b3`"),
    ("adan", dict(eps_root=float("nan")), ValueError, "`eps_root`"),
    ("adan", dict(weight_decay=float("nan")), ValueError, "`weight_decay`"),
    ("adan", dict(weight_decay="0.1"), TypeError, "`weight_decay`"),
    ("adan", dict(mask={"w": "yes"}), TypeError, r"mask\['w'\] must be True or False"),
    ("novograd", dict(b1=-0.1), ValueError, "`b1`"),
    ("novograd", dict(weight_decay=-0.1), ValueError, "`weight_decay`"),
    ("novograd", dict(weight_decay=lambda t: 0.1), TypeError, "`weight_decay`"),
    ("adamaxw", dict(b1=1.0), ValueError, "`b1`"),
    ("adamaxw", dict(eps=-1.0), ValueError, "`eps`"),
    ("adamaxw", dict(weight_decay=float("inf")), ValueError, "`weight_decay`"),
    ("adamaxw", dict(mask={"w": jnp.array([True, False])}), TypeError, r"mask\['w'\] must be True or False"),
]


@pytest.mark.parametrize("name, kwargs, error, named", _BAD,
                         ids=[f"{b[0]}-{next(iter(b[1]))}-{i}" for i, b in enumerate(_BAD)])
def test_bad_arguments_name_the_argument(name, kwargs, error, named):
  kwargs = {"learning_rate": 0.1, **kwargs}
  with pytest.raises(error, match=named):
    getattr(jn, name)(**kwargs)
