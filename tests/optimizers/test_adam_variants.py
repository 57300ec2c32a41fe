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
from tests.optimizers import _optax_properties


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


_TARGETS = [(n, t) for n in sorted(_OPTAX_SETTINGS) for t in ("parabola", "rosenbrock")]
(test_minimises_optax_targets, test_inject_hyperparams_gives_the_same_step,
 test_updates_keep_the_gradient_dtype, test_learning_rate_none_is_refused_naming_it) = (
    _optax_properties.property_tests(_OPTAX_SETTINGS, _TARGETS, _BASE))


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
