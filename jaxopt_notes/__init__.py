"""jaxopt_notes: functional optimizer transforms for JAX, built from the notes.

Every optimizer is a pure ``(init, update)`` pair over pytrees
(:class:`GradientTransformation`), composed from small transforms with
:func:`chain`. Names, defaults and numbers follow optax, so the two mix
freely; the docstrings give each rule's formula and the lecture note it
comes from.
"""

from jaxopt_notes.core import tree as tree  # the module, as jaxopt_notes.tree
from jaxopt_notes.core.base import (
    EmptyState,
    GradientTransformation,
    GradientTransformationExtraArgs,
    OptState,
    Params,
    ScalarOrSchedule,
    Schedule,
    Updates,
    identity,
    init_empty_state,
    set_to_zero,
    stateless,
    stateless_with_tree_map,
    with_extra_args_support,
)
from jaxopt_notes.core.combine import chain, named_chain
from jaxopt_notes.core.tree import (
    apply_updates,
    bias_correction,
    global_norm,
    placed_like,
    safe_increment,
    safe_int32_increment,
    tree_bias_correction,
    tree_cast,
    tree_full_like,
    tree_ones_like,
    tree_update_infinity_moment,
    tree_update_moment,
    tree_update_moment_per_elem_norm,
    tree_zeros_like,
)
from jaxopt_notes.kernels.fused import FusedStatus, apply_step, fused_status
from jaxopt_notes.optimizers.adadelta import adadelta
from jaxopt_notes.optimizers.adagrad import adagrad
from jaxopt_notes.optimizers.adam import adam, adamax, adamw, amsgrad, nadam, nadamw, radam
from jaxopt_notes.optimizers.rmsprop import rmsprop
from jaxopt_notes.optimizers.sgd import sgd
from jaxopt_notes.parallel import sharding
from jaxopt_notes.parallel.sharding import bytes_per_device, shard_state, state_shardings, zero1_spec
from jaxopt_notes.schedules import (
    constant_schedule,
    cosine_decay_schedule,
    cosine_onecycle_schedule,
    exponential_decay,
    inverse_sqrt_decay,
    inverse_time_decay,
    join_schedules,
    linear_schedule,
    per_epoch,
    piecewise_constant_schedule,
    polynomial_schedule,
    sgdr_schedule,
    step_decay,
    warmup_cosine_decay_schedule,
    warmup_exponential_decay_schedule,
)
from jaxopt_notes.training.checkpoint import (
    CheckpointBusyError,
    CheckpointMismatchError,
    all_checkpoint_steps,
    latest_checkpoint_step,
    restore_checkpoint,
    save_checkpoint,
)
from jaxopt_notes.training.data import minibatches, steps_per_epoch
from jaxopt_notes.training.gradcheck import GradientCheckError, gradient_check
from jaxopt_notes.training.loop import fit
from jaxopt_notes.training.plateau import ReduceLROnPlateauState, reduce_on_plateau
from jaxopt_notes.training.second_order import newton, scale_by_newton
from jaxopt_notes.transforms.adam_family import (
    ScaleByAdamState,
    ScaleByAmsgradState,
    scale_by_adam,
    scale_by_adamax,
    scale_by_amsgrad,
    scale_by_radam,
)
from jaxopt_notes.transforms.adaptive import (
    ScaleByAdaDeltaState,
    ScaleByRmsState,
    ScaleByRmsWithCountState,
    ScaleByRssState,
    ScaleByRStdDevState,
    ScaleByRStdDevWithCountState,
    scale_by_adadelta,
    scale_by_rms,
    scale_by_rss,
    scale_by_stddev,
)
from jaxopt_notes.transforms.clipping import clip, clip_by_global_norm
from jaxopt_notes.transforms.masking import MaskedNode, MaskedState, masked
from jaxopt_notes.transforms.moments import EmaState, TraceState, ema, trace
from jaxopt_notes.transforms.scaling import (
    AddDecayedWeightsState,
    ScaleByScheduleState,
    add_decayed_weights,
    scale,
    scale_by_learning_rate,
    scale_by_schedule,
)
from jaxopt_notes.wrappers.accumulation import (
    MultiSteps,
    MultiStepsState,
    ShouldSkipUpdateFunction,
    skip_large_updates,
    skip_not_finite,
)
from jaxopt_notes.wrappers.finite import ApplyIfFiniteState, apply_if_finite
from jaxopt_notes.wrappers.flatten import flatten
from jaxopt_notes.wrappers.hyperparams import (
    InjectHyperparamsState,
    InjectStatefulHyperparamsState,
    WrappedSchedule,
    WrappedScheduleState,
    inject_hyperparams,
)
from jaxopt_notes.wrappers.lookahead import LookaheadParams, LookaheadState, lookahead
from jaxopt_notes.wrappers.param_groups import (
    MultiTransformState,
    PartitionState,
    freeze,
    multi_transform,
    partition,
    selective_transform,
)

__version__ = "0.1.0"

__all__ = [
    # protocol
    "EmptyState", "GradientTransformation", "GradientTransformationExtraArgs",
    "OptState", "Params", "ScalarOrSchedule", "Schedule", "Updates",
    "identity", "init_empty_state", "set_to_zero", "stateless",
    "stateless_with_tree_map", "with_extra_args_support",
    "chain", "named_chain", "masked", "MaskedNode", "MaskedState",
    # tree helpers
    "apply_updates", "bias_correction", "global_norm", "safe_increment",
    "safe_int32_increment", "tree_bias_correction", "tree_cast",
    "tree_full_like", "tree_ones_like", "tree_update_infinity_moment",
    "tree_update_moment", "tree_update_moment_per_elem_norm", "tree_zeros_like",
    # building blocks
    "AddDecayedWeightsState", "EmaState", "ScaleByAdaDeltaState",
    "ScaleByAdamState", "ScaleByAmsgradState", "ScaleByRStdDevState",
    "ScaleByRStdDevWithCountState", "ScaleByRmsState",
    "ScaleByRmsWithCountState", "ScaleByRssState", "ScaleByScheduleState",
    "TraceState", "add_decayed_weights", "clip", "clip_by_global_norm", "ema",
    "scale", "scale_by_adadelta", "scale_by_adam", "scale_by_adamax",
    "scale_by_amsgrad", "scale_by_learning_rate", "scale_by_radam",
    "scale_by_rms", "scale_by_rss", "scale_by_schedule", "scale_by_stddev",
    "trace", "LookaheadParams", "LookaheadState", "lookahead",
    # wrappers
    "ApplyIfFiniteState", "InjectHyperparamsState",
    "InjectStatefulHyperparamsState", "MultiSteps", "MultiStepsState",
    "MultiTransformState", "PartitionState", "ShouldSkipUpdateFunction",
    "WrappedSchedule", "WrappedScheduleState", "apply_if_finite", "flatten",
    "freeze", "inject_hyperparams", "multi_transform", "partition",
    "selective_transform", "skip_large_updates", "skip_not_finite",
    # schedules
    "constant_schedule",
    "cosine_decay_schedule",
    "cosine_onecycle_schedule",
    "exponential_decay",
    "inverse_sqrt_decay",
    "inverse_time_decay",
    "join_schedules",
    "linear_schedule",
    "per_epoch",
    "piecewise_constant_schedule",
    "polynomial_schedule",
    "sgdr_schedule",
    "step_decay",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
    # checkpoints
    "CheckpointBusyError", "CheckpointMismatchError", "all_checkpoint_steps", "latest_checkpoint_step",
    "restore_checkpoint", "save_checkpoint",
    # many devices
    "bytes_per_device", "placed_like", "shard_state", "sharding",
    "state_shardings", "zero1_spec",
    # fused steps
    "FusedStatus", "apply_step", "fused_status",
    # training helpers
    "GradientCheckError", "ReduceLROnPlateauState", "fit", "gradient_check",
    "minibatches", "newton", "reduce_on_plateau", "scale_by_newton",
    "steps_per_epoch",
    # optimizers
    "adadelta", "adagrad", "adam", "adamax", "adamw", "amsgrad", "nadam",
    "nadamw", "radam", "rmsprop", "sgd",
]
