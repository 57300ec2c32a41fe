"""sign_sgd, signum and lion: 100-step trajectories equal to optax's for every
kind of learning rate and every option that changes the math (weight decay,
its mask and schedule, the dtypes), optax's alias properties (minimising its
parabola and Rosenbrock, inject_hyperparams, dtypes kept), and the argument
checks."""

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
    "sign_sgd": (0.02, lambda lib, lr: lib.sign_sgd(lr)),
    "signum": (0.02, lambda lib, lr: lib.signum(lr)),
    "lion": (0.01, lambda lib, lr: lib.lion(lr)),
}

# id -> (dtype, lib -> optimizer): each option that changes the math, positional
# where optax's signature allows, so a swapped argument shows.
_FLAGS = {
    "signum-beta": ("float64", lambda lib: lib.signum(0.02, 0.5)),
    "signum-bfloat16-ema": ("float32", lambda lib: lib.signum(0.02, 0.8, jnp.bfloat16)),
    "lion-all-args": ("float64", lambda lib: lib.lion(0.01, 0.5, 0.9, None, 0.1)),
    "lion-mu-bfloat16": ("float32", lambda lib: lib.lion(0.01, mu_dtype=jnp.bfloat16)),
    "lion-no-decay": ("float32", lambda lib: lib.lion(0.01, weight_decay=0.0)),
    "lion-wd-mask-tree": ("float64", lambda lib: lib.lion(
        0.01, weight_decay=0.1, mask=_matrices(tj.make_params()))),
    "lion-wd-schedule-mask": ("float32", lambda lib: lib.lion(
        0.01, weight_decay=lambda t: 0.1 / (1 + 0.05 * t), mask=_matrices)),
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
    ours, _ = tj.compare_with_optax(self.variant, lambda: make(jn), lambda: make(optax), dtype)
    if "bfloat16" in case:
      stored = ours.state[0].ema if case.startswith("signum") else ours.state[0].mu
      assert {x.dtype for x in jax.tree.leaves(stored)} == {jnp.dtype(jnp.bfloat16)}


class TestProperties:

  def test_steps_have_the_learning_rate_as_length(self):
    """signSGD and Lion (without decay) move every coordinate by exactly eta, or not at all."""
    params = {"w": jnp.ones(4)}
    g = {"w": jnp.array([5.0, -1e-3, 0.0, -20.0])}
    for tx in (jn.sign_sgd(0.125), jn.lion(0.125, weight_decay=0.0)):
      out, _ = tx.update(g, tx.init(params), params)
      np.testing.assert_array_equal(out["w"], [-0.125, 0.125, 0.0, 0.125])

  def test_lion_decay_is_decoupled_and_masked(self):
    """-eta (sign(c) + lambda w) on the masked leaves, -eta sign(c) on the others."""
    params = {"a": jnp.array([2.0, -4.0]), "b": jnp.array([3.0])}
    g = {"a": jnp.array([1.0, 1.0]), "b": jnp.array([-1.0])}
    tx = jn.lion(0.1, weight_decay=0.5, mask={"a": True, "b": False})
    out, _ = tx.update(g, tx.init(params), params)
    np.testing.assert_allclose(out["a"], [-0.1 * (1 + 1.0), -0.1 * (1 - 2.0)], rtol=1e-6)
    np.testing.assert_allclose(out["b"], [0.1], rtol=1e-6)


# optax's alias_test settings and targets (its _OPTIMIZERS_UNDER_TEST).
_OPTAX_SETTINGS = {
    "sign_sgd": dict(learning_rate=1e-1),
    "signum": dict(learning_rate=1e-2),
    "lion": dict(learning_rate=1e-2, weight_decay=1e-4),
}


# optax skips Rosenbrock for the sign methods: they need a decaying step there.
_TARGETS = [(n, "parabola") for n in sorted(_OPTAX_SETTINGS)] + [("lion", "rosenbrock")]
(test_minimises_optax_targets, test_inject_hyperparams_gives_the_same_step,
 test_updates_keep_the_gradient_dtype, test_learning_rate_none_is_refused_naming_it) = (
    _optax_properties.property_tests(_OPTAX_SETTINGS, _TARGETS, _BASE))


_BAD = [
    ("sign_sgd", dict(learning_rate=float("nan")), ValueError, "`learning_rate`"),
    ("signum", dict(learning_rate="0.1"), TypeError, "`learning_rate`"),
    ("signum", dict(beta=1.0), ValueError, "`beta`"),
    ("signum", dict(beta=-0.5), ValueError, "`beta`"),
    ("signum", dict(accumulator_dtype="notadtype"), TypeError, "`accumulator_dtype`"),
    ("lion", dict(b1=1.0), ValueError, "`b1`"),
    ("lion", dict(b2=float("nan")), ValueError, "`b2`"),
    ("lion", dict(mu_dtype="notadtype"), TypeError, "`mu_dtype`"),
    ("lion", dict(weight_decay=float("nan")), ValueError, "`weight_decay`"),
    ("lion", dict(mask={"w": "yes", "b": False}), TypeError, r"mask\['w'\] must be True or False"),
]


@pytest.mark.parametrize("name, kwargs, error, named", _BAD,
                         ids=[f"{b[0]}-{next(iter(b[1]))}-{i}" for i, b in enumerate(_BAD)])
def test_bad_arguments_name_the_argument(name, kwargs, error, named):
  kwargs = {"learning_rate": 0.1, **kwargs}
  with pytest.raises(error, match=named):
    getattr(jn, name)(**kwargs)
