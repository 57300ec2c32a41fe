"""The public names of release 0.1.0 still import, as the objects they were.

The layout moved every module into a layer; these lists are the 0.1.0
``__all__`` of ``jaxopt_notes`` and of ``jaxopt_notes.torch_compat``, kept so
that a later move cannot drop a name a user imports.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import jax.numpy as jnp
import pytest

import jaxopt_notes as jn
from jaxopt_notes import torch_compat as tc

NAMES_0_1_0 = (
    "AddDecayedWeightsState", "ApplyIfFiniteState", "CheckpointMismatchError", "EmaState",
    "EmptyState", "FusedStatus", "GradientCheckError", "GradientTransformation",
    "GradientTransformationExtraArgs", "InjectHyperparamsState", "InjectStatefulHyperparamsState",
    "LookaheadParams", "LookaheadState", "MaskedNode", "MaskedState", "MultiSteps",
    "MultiStepsState", "MultiTransformState", "OptState", "Params", "PartitionState",
    "ReduceLROnPlateauState", "ScalarOrSchedule", "ScaleByAdaDeltaState", "ScaleByAdamState",
    "ScaleByAmsgradState", "ScaleByRStdDevState", "ScaleByRStdDevWithCountState",
    "ScaleByRmsState", "ScaleByRmsWithCountState", "ScaleByRssState", "ScaleByScheduleState",
    "Schedule", "ShouldSkipUpdateFunction", "TraceState", "Updates", "WrappedSchedule",
    "WrappedScheduleState", "adadelta", "adagrad", "adam", "adamax", "adamw",
    "add_decayed_weights", "all_checkpoint_steps", "amsgrad", "apply_if_finite", "apply_step",
    "apply_updates", "bias_correction", "bytes_per_device", "chain", "clip", "clip_by_global_norm",
    "constant_schedule", "cosine_decay_schedule", "cosine_onecycle_schedule", "ema",
    "exponential_decay", "fit", "flatten", "freeze", "fused_status", "global_norm",
    "gradient_check", "identity", "init_empty_state", "inject_hyperparams", "inverse_sqrt_decay",
    "inverse_time_decay", "join_schedules", "latest_checkpoint_step", "linear_schedule",
    "lookahead", "masked", "minibatches", "multi_transform", "nadam", "nadamw", "named_chain",
    "newton", "partition", "per_epoch", "piecewise_constant_schedule", "placed_like",
    "polynomial_schedule", "radam", "reduce_on_plateau", "restore_checkpoint", "rmsprop",
    "safe_increment", "safe_int32_increment", "save_checkpoint", "scale", "scale_by_adadelta",
    "scale_by_adam", "scale_by_adamax", "scale_by_amsgrad", "scale_by_learning_rate",
    "scale_by_newton", "scale_by_radam", "scale_by_rms", "scale_by_rss", "scale_by_schedule",
    "scale_by_stddev", "selective_transform", "set_to_zero", "sgd", "sgdr_schedule", "shard_state",
    "sharding", "skip_large_updates", "skip_not_finite", "state_shardings", "stateless",
    "stateless_with_tree_map", "step_decay", "steps_per_epoch", "trace", "tree_bias_correction",
    "tree_cast", "tree_full_like", "tree_ones_like", "tree_update_infinity_moment",
    "tree_update_moment", "tree_update_moment_per_elem_norm", "tree_zeros_like",
    "warmup_cosine_decay_schedule", "warmup_exponential_decay_schedule", "with_extra_args_support",
    "zero1_spec",
)

TORCH_COMPAT_NAMES_0_1_0 = (
    "TorchMomentumState", "TorchNAdamState", "adadelta", "adagrad", "adam", "adamax", "adamw",
    "cosine_annealing_lr", "exponential_lr", "linear_lr", "multi_step_lr", "nadam", "one_cycle_lr",
    "polynomial_lr", "radam", "rmsprop", "scale_by_torch_amsgrad", "scale_by_torch_nadam",
    "scale_by_torch_radam", "sgd", "step_lr", "torch_momentum",
)


@pytest.mark.parametrize("module, names", [(jn, NAMES_0_1_0), (tc, TORCH_COMPAT_NAMES_0_1_0)],
                         ids=["jaxopt_notes", "torch_compat"])
def test_every_released_name_is_still_public(module, names):
  assert set(names) <= set(module.__all__)
  missing = [n for n in module.__all__ if not hasattr(module, n)]
  assert missing == []


def test_names_are_the_objects_of_their_layer():
  assert jn.adam.__module__ == "jaxopt_notes.optimizers.adam"
  assert jn.chain.__module__ == "jaxopt_notes.core.combine"
  assert jn.apply_step.__module__ == "jaxopt_notes.kernels.fused"
  assert tc.step_lr is importlib.import_module("jaxopt_notes.schedules.torch_style").step_lr
  assert jn.cosine_decay_schedule is jn.schedules.cosine_decay_schedule
  assert isinstance(jn.sharding, types.ModuleType) and jn.sharding.shard_state is jn.shard_state
  assert isinstance(jn.tree, types.ModuleType) and jn.tree.apply_updates is jn.apply_updates


def test_from_import_forms_of_the_modules_users_had():
  from jaxopt_notes import lab, schedules, sharding, torch_compat, tree  # noqa: F401
  assert lab.compare is importlib.import_module("jaxopt_notes.lab.problems").compare
  assert schedules.step_decay(1.0, 0.5, 2)(4) == pytest.approx(0.25)
  assert float(tree.global_norm({"a": jnp.array([3.0, 4.0])})) == pytest.approx(5.0)


def test_python_dash_m_runs_the_cli():
  out = subprocess.run([sys.executable, "-m", "jaxopt_notes", "--help"], capture_output=True, text=True,
                       timeout=120)
  assert out.returncode == 0, out.stderr
  assert "lab" in out.stdout
