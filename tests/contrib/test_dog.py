"""dog and dowg: 50-step trajectories bitwise equal to optax.contrib's (jit
and op by op, float32 and float64, defaults and every option: each init_step
form, eps, weight decay with and without a mask, constant and scheduled
learning rates), init states alike, jit equal to op by op, bad arguments
naming themselves."""

import chex
import jax.numpy as jnp
import pytest

from jaxopt_notes.contrib import _dog as ours
from tests import _trajectory as tj
from tests.contrib import _common as cm

_CASES = {
    "dog-defaults": lambda lib: lib.dog(),
    "dog-lambda-lr": lambda lib: lib.dog(tj.learning_rate("lambda", 1.0)),
    "dog-optax-schedule": lambda lib: lib.dog(tj.learning_rate("optax_schedule", 0.8)),
    "dog-distance": lambda lib: lib.dog(init_step=("distance", 1e-2)),
    "dog-learning-rate": lambda lib: lib.dog(init_step=("learning_rate", 1e-2)),
    "dog-heuristic": lambda lib: lib.dog(init_step=("heuristic", 1e-4)),
    "dog-eps": lambda lib: lib.dog(init_step=("distance", 1e-2), eps=1e-2),
    "dog-weight-decay": lambda lib: lib.dog(weight_decay=0.05),
    "dog-weight-decay-mask": lambda lib: lib.dog(weight_decay=0.05, mask=cm.decay_mask),
    "dog-all-positional": lambda lib: lib.dog(
        tj.learning_rate("lambda", 0.7), ("learning_rate", 1e-3), 1e-6, 0.02, cm.decay_mask
    ),
    "dowg-defaults": lambda lib: lib.dowg(),
    "dowg-lambda-lr": lambda lib: lib.dowg(tj.learning_rate("lambda", 1.0)),
    "dowg-optax-schedule": lambda lib: lib.dowg(tj.learning_rate("optax_schedule", 0.8)),
    "dowg-init-estim-sq-dist": lambda lib: lib.dowg(init_estim_sq_dist=1e-2),
    "dowg-eps": lambda lib: lib.dowg(eps=1e-3),
    "dowg-weight-decay": lambda lib: lib.dowg(weight_decay=0.05),
    "dowg-weight-decay-mask": lambda lib: lib.dowg(weight_decay=0.05, mask=cm.decay_mask),
    "dowg-all-positional": lambda lib: lib.dowg(
        tj.learning_rate("optax_schedule", 0.7), 1e-3, 1e-6, 0.02, cm.decay_mask
    ),
}


class TestMatchesOptax(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("case", sorted(_CASES))
  def test_trajectory(self, case, dtype):
    """Params every step, updates and the final chain state, bitwise."""
    run, _ = cm.compare_case(self.variant, ours, _CASES[case], dtype)
    assert len(run.state) == 3  # decay (or identity), the scaling, the step
    assert isinstance(run.state[1], ours.DoGState if case.startswith("dog") else ours.DoWGState)


@pytest.mark.parametrize("dtype", tj.DTYPES)
@pytest.mark.parametrize("case", ["dog-heuristic", "dog-learning-rate", "dog-all-positional", "dowg-all-positional"])
def test_init_state_like_optax(case, dtype):
  cm.assert_init_like_optax(ours, _CASES[case], dtype)


@pytest.mark.parametrize("case", ["dog-weight-decay-mask", "dowg-defaults"])
def test_jit_equals_eager(case):
  cm.assert_jit_equals_eager(ours, _CASES[case])


def test_state_scalars_take_the_lowest_params_dtype():
  params = {"a": jnp.ones(2, jnp.bfloat16), "b": jnp.ones(2)}
  assert ours.dog().init(params)[1].max_dist.dtype == jnp.bfloat16
  assert ours.dowg().init(params)[1].estim_sq_dist.dtype == jnp.bfloat16


@pytest.mark.parametrize("factory", [ours.dog, ours.dowg])
def test_update_needs_params(factory):
  cm.assert_update_needs_params(factory())


NAN = float("nan")


@pytest.mark.parametrize("factory, kwargs, error, name", [
    (ours.dog, dict(learning_rate=NAN), ValueError, "learning_rate"),
    (ours.dog, dict(init_step=("typo", 1e-6)), ValueError, "init_step"),
    (ours.dog, dict(init_step=1e-6), ValueError, "init_step"),
    (ours.dog, dict(init_step=("distance", 0.0)), ValueError, "init_step[1]"),
    (ours.dog, dict(init_step=("learning_rate", -1.0)), ValueError, "init_step[1]"),
    (ours.dog, dict(init_step=("heuristic", "1")), TypeError, "init_step[1]"),
    (ours.dog, dict(eps=-1.0), ValueError, "eps"),
    (ours.dog, dict(weight_decay=NAN), ValueError, "weight_decay"),
    (ours.dowg, dict(learning_rate="1"), TypeError, "learning_rate"),
    (ours.dowg, dict(eps=0.0), ValueError, "eps"),
    (ours.dowg, dict(init_estim_sq_dist=1.0, eps=-1.0), ValueError, "eps"),
    (ours.dowg, dict(init_estim_sq_dist=0.0), ValueError, "init_estim_sq_dist"),
    (ours.dowg, dict(weight_decay=NAN), ValueError, "weight_decay"),
])
def test_bad_arguments_name_themselves(factory, kwargs, error, name):
  cm.assert_raises_naming(factory, kwargs, error, name)


def test_dowg_accepts_zero_eps_with_a_first_guess():
  tx = ours.dowg(init_estim_sq_dist=1.0, eps=0.0)
  params = {"w": jnp.ones(2)}
  updates, _ = tx.update({"w": jnp.ones(2)}, tx.init(params), params)
  assert cm.finite(updates)


def test_traced_hyperparameters_pass_the_checks():
  cm.assert_injectable(ours.dog, learning_rate=0.5, eps=1e-6, weight_decay=0.01)
  cm.assert_injectable(ours.dowg, learning_rate=0.5, init_estim_sq_dist=1e-2, eps=1e-6, weight_decay=0.01)
