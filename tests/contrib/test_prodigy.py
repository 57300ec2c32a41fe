"""prodigy and dadapt_adamw: 100-step trajectories bitwise equal to
optax.contrib's (jit and op by op, float32 and float64, defaults and every
option, constant and scheduled learning rates), init states alike, jit equal
to op by op, bad arguments naming themselves."""

import chex
import jax.numpy as jnp
import pytest

from jaxopt_notes.contrib import _prodigy as ours
from tests import _trajectory as tj
from tests.contrib import _common as cm

_CASES = {
    "prodigy-defaults": lambda lib: lib.prodigy(),
    "prodigy-lambda-lr": lambda lib: lib.prodigy(tj.learning_rate("lambda", 1.0)),
    "prodigy-optax-schedule": lambda lib: lib.prodigy(tj.learning_rate("optax_schedule", 0.8)),
    "prodigy-betas": lambda lib: lib.prodigy(betas=(0.8, 0.99)),
    "prodigy-beta3": lambda lib: lib.prodigy(beta3=0.9),
    "prodigy-eps": lambda lib: lib.prodigy(eps=1e-3),
    "prodigy-estim-lr0": lambda lib: lib.prodigy(estim_lr0=1e-3),
    "prodigy-estim-lr-coef": lambda lib: lib.prodigy(estim_lr_coef=0.5),
    "prodigy-weight-decay": lambda lib: lib.prodigy(weight_decay=0.05),
    "prodigy-safeguard-warmup": lambda lib: lib.prodigy(
        tj.learning_rate("lambda", 0.5), safeguard_warmup=True
    ),
    "prodigy-all-positional": lambda lib: lib.prodigy(
        tj.learning_rate("optax_schedule", 0.7), (0.85, 0.995), 0.97, 1e-6, 1e-4, 0.9, 0.02, True
    ),
    "dadapt-defaults": lambda lib: lib.dadapt_adamw(),
    "dadapt-lambda-lr": lambda lib: lib.dadapt_adamw(tj.learning_rate("lambda", 1.0)),
    "dadapt-optax-schedule": lambda lib: lib.dadapt_adamw(tj.learning_rate("optax_schedule", 0.8)),
    "dadapt-betas": lambda lib: lib.dadapt_adamw(betas=(0.8, 0.99)),
    "dadapt-eps": lambda lib: lib.dadapt_adamw(eps=1e-3),
    "dadapt-estim-lr0": lambda lib: lib.dadapt_adamw(estim_lr0=1e-3),
    "dadapt-weight-decay": lambda lib: lib.dadapt_adamw(weight_decay=0.05),
    "dadapt-all-positional": lambda lib: lib.dadapt_adamw(
        tj.learning_rate("lambda", 0.7), (0.85, 0.995), 1e-6, 1e-4, 0.02
    ),
}


class TestMatchesOptax(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("case", sorted(_CASES))
  def test_trajectory(self, case, dtype):
    """Params every step, updates and the final state, bitwise."""
    cm.compare_case(self.variant, ours, _CASES[case], dtype)


@pytest.mark.parametrize("dtype", tj.DTYPES)
@pytest.mark.parametrize("case", ["prodigy-all-positional", "dadapt-all-positional"])
def test_init_state_like_optax(case, dtype):
  cm.assert_init_like_optax(ours, _CASES[case], dtype)


@pytest.mark.parametrize("case", ["prodigy-defaults", "dadapt-weight-decay"])
def test_jit_equals_eager(case):
  cm.assert_jit_equals_eager(ours, _CASES[case])


def test_state_scalars_take_the_lowest_params_dtype():
  params = {"a": jnp.ones(2, jnp.bfloat16), "b": jnp.ones(2)}
  for tx in (ours.prodigy(), ours.dadapt_adamw()):
    state = tx.init(params)
    assert state.estim_lr.dtype == jnp.bfloat16 and state.count.dtype == jnp.int32


@pytest.mark.parametrize("factory", [ours.prodigy, ours.dadapt_adamw])
def test_update_needs_params(factory):
  cm.assert_update_needs_params(factory())


NAN = float("nan")
_BAD = [
    ("learning_rate", NAN, ValueError, "learning_rate"),
    ("learning_rate", "1", TypeError, "learning_rate"),
    ("betas", (0.9,), ValueError, "betas"),
    ("betas", 0.9, ValueError, "betas"),
    ("betas", (1.0, 0.999), ValueError, "betas[0]"),
    ("betas", (0.9, -0.1), ValueError, "betas[1]"),
    ("eps", -1e-8, ValueError, "eps"),
    ("estim_lr0", 0.0, ValueError, "estim_lr0"),
    ("estim_lr0", NAN, ValueError, "estim_lr0"),
    ("weight_decay", float("inf"), ValueError, "weight_decay"),
]


@pytest.mark.parametrize("factory", [ours.prodigy, ours.dadapt_adamw])
@pytest.mark.parametrize("arg, value, error, name", _BAD)
def test_bad_arguments_name_themselves(factory, arg, value, error, name):
  cm.assert_raises_naming(factory, {arg: value}, error, name)


@pytest.mark.parametrize("arg, value, error", [
    ("beta3", 1.5, ValueError), ("estim_lr_coef", NAN, ValueError),
    ("safeguard_warmup", 1, TypeError),
])
def test_bad_prodigy_arguments_name_themselves(arg, value, error):
  cm.assert_raises_naming(ours.prodigy, {arg: value}, error, arg)


@pytest.mark.parametrize("factory", [ours.prodigy, ours.dadapt_adamw])
def test_traced_hyperparameters_pass_the_checks(factory):
  cm.assert_injectable(factory, learning_rate=0.5, eps=1e-6, estim_lr0=1e-3, weight_decay=0.01)
