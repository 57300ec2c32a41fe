"""cocob and scale_by_cocob: 50-step trajectories bitwise equal to
optax.contrib's (jit and op by op, float32 and float64, defaults and every
option, constant and scheduled learning rates), init states alike, jit equal
to op by op, bad arguments naming themselves."""

import chex
import jax.numpy as jnp
import optax
import pytest

from jaxopt_notes.contrib import _cocob as ours
from tests import _trajectory as tj
from tests.contrib import _common as cm

_CASES = {
    "cocob-defaults": lambda lib: lib.cocob(),
    "cocob-lr": lambda lib: lib.cocob(0.5),
    "cocob-lambda-lr": lambda lib: lib.cocob(tj.learning_rate("lambda", 1.0)),
    "cocob-optax-schedule": lambda lib: lib.cocob(tj.learning_rate("optax_schedule", 0.8)),
    "cocob-alpha": lambda lib: lib.cocob(alpha=10.0),
    "cocob-eps": lambda lib: lib.cocob(eps=1e-3),
    "cocob-weight-decay": lambda lib: lib.cocob(weight_decay=0.05),
    "cocob-weight-decay-mask": lambda lib: lib.cocob(weight_decay=0.05, mask=cm.decay_mask),
    "cocob-all-positional": lambda lib: lib.cocob(
        tj.learning_rate("lambda", 0.7), 20.0, 1e-4, 0.02, cm.decay_mask
    ),
    "scale-by-cocob-defaults": lambda lib: lib.scale_by_cocob(),
    "scale-by-cocob-positional": lambda lib: lib.scale_by_cocob(30.0, 1e-3),
}


class TestMatchesOptax(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("case", sorted(_CASES))
  def test_trajectory(self, case, dtype):
    """Params every step, updates and the final state, bitwise."""
    cm.compare_case(self.variant, ours, _CASES[case], dtype)


@pytest.mark.parametrize("dtype", tj.DTYPES)
@pytest.mark.parametrize("case", ["cocob-all-positional", "scale-by-cocob-positional"])
def test_init_state_like_optax(case, dtype):
  cm.assert_init_like_optax(ours, _CASES[case], dtype)


@pytest.mark.parametrize("case", ["cocob-defaults", "cocob-weight-decay-mask"])
def test_jit_equals_eager(case):
  cm.assert_jit_equals_eager(ours, _CASES[case])


@pytest.mark.parametrize("factory", [ours.cocob, ours.scale_by_cocob])
def test_update_needs_params(factory):
  cm.assert_update_needs_params(factory())


NAN = float("nan")


@pytest.mark.parametrize("factory", [ours.cocob, ours.scale_by_cocob])
@pytest.mark.parametrize("arg, value, error", [
    ("alpha", 0.0, ValueError), ("alpha", "1", TypeError),
    ("eps", 0.0, ValueError), ("eps", NAN, ValueError),
])
def test_bad_arguments_name_themselves(factory, arg, value, error):
  cm.assert_raises_naming(factory, {arg: value}, error, arg)


@pytest.mark.parametrize("arg, value, error", [
    ("learning_rate", NAN, ValueError), ("weight_decay", NAN, ValueError),
])
def test_bad_cocob_arguments_name_themselves(arg, value, error):
  cm.assert_raises_naming(ours.cocob, {arg: value}, error, arg)


def test_zero_eps_is_refused_where_optax_gives_nan():
  """A coordinate whose first gradient is 0 with eps=0: optax divides 0 by 0."""
  params, grads = {"w": jnp.ones(2)}, {"w": jnp.array([0.0, 1.0])}
  tx = optax.contrib.scale_by_cocob(eps=0.0)
  updates, _ = tx.update(grads, tx.init(params), params)
  assert not cm.finite(updates)
  with pytest.raises(ValueError, match="`eps`"):
    ours.scale_by_cocob(eps=0.0)


def test_traced_hyperparameters_pass_the_checks():
  cm.assert_injectable(ours.cocob, learning_rate=0.5, alpha=10.0, eps=1e-6, weight_decay=0.01)
