"""madgrad and scale_by_madgrad (contrib/madgrad.py): 100-step trajectories
equal to optax.contrib's for the defaults, each kind of learning rate and
every option (momentum, eps, weight decay and its schedule), in float32 and
float64; argument checks name the argument."""

import chex
import jax.numpy as jnp
import optax
import pytest

from jaxopt_notes.contrib import _madgrad as mg
from tests import _trajectory as tj

# The same operations in the same order as optax's: equal bit for bit.
_EXACT = dict(rtol=0, atol=0)

_OPTIONS = {
    "madgrad-all-args": ("float64", lambda lib: lib.madgrad(0.02, 0.5, 0.1, 1e-4)),
    "madgrad-all-args-f32": ("float32", lambda lib: lib.madgrad(0.02, 0.0, 0.1, 1e-4)),
    "madgrad-wd-schedule": ("float64", lambda lib: lib.madgrad(
        tj.learning_rate("lambda", 0.02), weight_decay=lambda t: 0.1 / (1 + 0.05 * t))),
    "scale_by_madgrad-all-args": ("float32", lambda lib: lib.scale_by_madgrad(0.05, 0.8, 1e-5)),
}

_LR_AND_DTYPE = [
    ("float", "float32"), ("float", "float64"),
    ("lambda", "float32"), ("optax_schedule", "float64"),
]


class TestMatchesOptax(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("lr_kind,dtype", _LR_AND_DTYPE)
  def test_defaults(self, lr_kind, dtype):
    lr = tj.learning_rate(lr_kind, 0.02)
    tj.compare_with_optax(
        self.variant, lambda: mg.madgrad(lr), lambda: optax.contrib.madgrad(lr), dtype, **_EXACT)

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("case", sorted(_OPTIONS))
  def test_option(self, case):
    dtype, make = _OPTIONS[case]
    tj.compare_with_optax(self.variant, lambda: make(mg), lambda: make(optax.contrib), dtype, **_EXACT)


def test_state_fields_are_optax_s():
  params = tj.make_params()
  a = tj.to_plain(mg.scale_by_madgrad(0.1).init(params))
  b = tj.to_plain(optax.contrib.scale_by_madgrad(0.1).init(params))
  chex.assert_trees_all_equal_structs(a, b)
  chex.assert_trees_all_equal_shapes_and_dtypes(a, b)


def test_update_needs_params():
  tx = mg.madgrad(0.1)
  p = {"w": jnp.ones(2)}
  with pytest.raises(ValueError, match="needs the current parameters"):
    tx.update(p, tx.init(p))


_BAD = [
    (dict(learning_rate=float("inf")), ValueError, "`learning_rate`"),
    (dict(learning_rate=None), TypeError, "`learning_rate`"),
    (dict(momentum=1.0), ValueError, "`momentum`"),
    (dict(eps=0.0), ValueError, "`eps`"),
    (dict(weight_decay=float("nan")), ValueError, "`weight_decay`"),
]


@pytest.mark.parametrize("kwargs, error, named", _BAD, ids=[next(iter(b[0])) + str(i) for i, b in enumerate(_BAD)])
def test_bad_arguments_name_the_argument(kwargs, error, named):
  kwargs = {"learning_rate": 0.1, **kwargs}
  with pytest.raises(error, match=named):
    mg.madgrad(**kwargs)
