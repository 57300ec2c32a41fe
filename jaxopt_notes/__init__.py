"""jaxopt_notes: functional optimizer transforms for JAX, built from the notes.

Every optimizer is a pure ``(init, update)`` pair over pytrees
(:class:`GradientTransformation`), composed from small transforms with
:func:`chain`. Names, defaults and numbers follow optax, so the two mix
freely; the docstrings give each rule's formula and the lecture note it
comes from ("note 004"). The notes themselves, their ideas and formulas in
English, are the pages ``docs/notes/000.md`` to ``004.md`` of the repository
(the "notes" section of the documentation site).
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
from jaxopt_notes.kernels.host_memory import keep_at_import as _keep_at_import
from jaxopt_notes.kernels.host_memory import keep_freed_host_memory
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
    "FusedStatus", "apply_step", "fused_status", "keep_freed_host_memory",
    # training helpers
    "GradientCheckError", "ReduceLROnPlateauState", "fit", "gradient_check",
    "minibatches", "newton", "reduce_on_plateau", "scale_by_newton",
    "steps_per_epoch",
    # optimizers
    "adadelta", "adagrad", "adam", "adamax", "adamw", "amsgrad", "nadam",
    "nadamw", "radam", "rmsprop", "sgd",
]

# The rest of optax's optimizers and building blocks, one block per family.
from jaxopt_notes.core.base import TransformInitFn, TransformUpdateExtraArgsFn, TransformUpdateFn  # noqa: E402

# optax's names for the (empty) states of clip, clip_by_global_norm and scale.
ClipState = ClipByGlobalNormState = ScaleState = EmptyState
__all__ += [
    "ClipByGlobalNormState", "ClipState", "ScaleState", "TransformInitFn",
    "TransformUpdateExtraArgsFn", "TransformUpdateFn",
]

# sign-adam
from jaxopt_notes.optimizers.adam import adamaxw  # noqa: E402
from jaxopt_notes.optimizers.adam_variants import adabelief, adan, novograd, yogi  # noqa: E402
from jaxopt_notes.optimizers.sign import lion, sign_sgd, signum  # noqa: E402
from jaxopt_notes.transforms.adam_variants import (  # noqa: E402
    ScaleByAdanState,
    ScaleByBeliefState,
    ScaleByNovogradState,
    scale_by_adan,
    scale_by_belief,
    scale_by_novograd,
    scale_by_yogi,
)
from jaxopt_notes.transforms.sign import ScaleByLionState, scale_by_lion, scale_by_sign  # noqa: E402

__all__ += [
    "ScaleByAdanState", "ScaleByBeliefState", "ScaleByLionState", "ScaleByNovogradState",
    "adabelief", "adamaxw", "adan", "lion", "novograd", "scale_by_adan", "scale_by_belief",
    "scale_by_lion", "scale_by_novograd", "scale_by_sign", "scale_by_yogi", "sign_sgd", "signum",
    "yogi",
]
# layerwise-factored
from jaxopt_notes.optimizers.factored import adafactor, sm3  # noqa: E402
from jaxopt_notes.optimizers.layerwise import fromage, lamb, lars  # noqa: E402
from jaxopt_notes.transforms.clipping import AdaptiveGradClipState, adaptive_grad_clip, clip_by_block_rms  # noqa: E402
from jaxopt_notes.transforms.factored import FactoredState, ScaleBySM3State, scale_by_factored_rms, scale_by_sm3  # noqa: E402
from jaxopt_notes.transforms.trust_ratio import (  # noqa: E402
    ScaleByTrustRatioState,
    scale_by_param_block_norm,
    scale_by_param_block_rms,
    scale_by_trust_ratio,
)

__all__ += [
    "AdaptiveGradClipState", "FactoredState", "ScaleBySM3State", "ScaleByTrustRatioState",
    "adafactor", "adaptive_grad_clip", "clip_by_block_rms", "fromage", "lamb", "lars",
    "scale_by_factored_rms", "scale_by_param_block_norm", "scale_by_param_block_rms",
    "scale_by_sm3", "scale_by_trust_ratio", "sm3",
]
# lbfgs-linesearch
from jaxopt_notes.optimizers.lbfgs import lbfgs  # noqa: E402
from jaxopt_notes.transforms.lbfgs import ScaleByLBFGSState, scale_by_lbfgs  # noqa: E402
from jaxopt_notes.transforms.linesearch import (  # noqa: E402
    BacktrackingLinesearchInfo,
    ScaleByBacktrackingLinesearchState,
    ScaleByZoomLinesearchState,
    ZoomLinesearchInfo,
    scale_by_backtracking_linesearch,
    scale_by_zoom_linesearch,
    value_and_grad_from_state,
)

__all__ += [
    "BacktrackingLinesearchInfo", "ScaleByBacktrackingLinesearchState", "ScaleByLBFGSState",
    "ScaleByZoomLinesearchState", "ZoomLinesearchInfo", "lbfgs", "scale_by_backtracking_linesearch",
    "scale_by_lbfgs", "scale_by_zoom_linesearch", "value_and_grad_from_state",
]
# stepsize-optimistic
from jaxopt_notes.optimizers.optimistic import optimistic_adam, optimistic_adam_v2, optimistic_gradient_descent  # noqa: E402
from jaxopt_notes.optimizers.polyak import polyak_sgd  # noqa: E402
from jaxopt_notes.optimizers.rprop import rprop  # noqa: E402
from jaxopt_notes.optimizers.sgd import noisy_sgd  # noqa: E402
from jaxopt_notes.transforms.step_size import (  # noqa: E402
    AddNoiseState,
    ScaleByDistanceOverGradientsState,
    ScaleByOptimisticGradientState,
    ScaleByRpropState,
    add_noise,
    scale_by_distance_over_gradients,
    scale_by_optimistic_gradient,
    scale_by_polyak,
    scale_by_rprop,
)

__all__ += [
    "AddNoiseState", "ScaleByDistanceOverGradientsState", "ScaleByOptimisticGradientState",
    "ScaleByRpropState", "add_noise", "scale_by_distance_over_gradients",
    "scale_by_optimistic_gradient", "scale_by_polyak", "scale_by_rprop",
    "noisy_sgd", "optimistic_adam", "optimistic_adam_v2", "optimistic_gradient_descent",
    "polyak_sgd", "rprop",
]
# gradient-ops-wrappers
from jaxopt_notes.transforms.gradient_ops import (  # noqa: E402
    NonNegativeParamsState,
    ZeroNansState,
    centralize,
    keep_params_nonnegative,
    normalize_by_update_norm,
    scale_gradient,
    zero_nans,
)
from jaxopt_notes.transforms.per_example_clipping import per_example_global_norm_clip, per_example_layer_norm_clip  # noqa: E402
from jaxopt_notes.wrappers import microbatching  # noqa: E402
from jaxopt_notes.wrappers.conditional import (  # noqa: E402
    ConditionallyMaskState,
    ConditionallyTransformState,
    ConditionFn,
    conditionally_mask,
    conditionally_transform,
)
from jaxopt_notes.wrappers.hyperparams import inject_stateful_hyperparams  # noqa: E402
from jaxopt_notes.wrappers.microbatching import (  # noqa: E402
    AccumulationType,
    Accumulator,
    micro_grad,
    micro_vmap,
    microbatch,
    reshape_batch_axis,
)
from jaxopt_notes.wrappers.monitoring import MonitorState, SnapshotState, measure_with_ema, monitor, snapshot  # noqa: E402
from jaxopt_notes.wrappers.periodic import ApplyEvery, apply_every  # noqa: E402

__all__ += [
    "AccumulationType", "Accumulator", "ApplyEvery", "ConditionFn", "ConditionallyMaskState",
    "ConditionallyTransformState", "MonitorState", "NonNegativeParamsState", "SnapshotState",
    "ZeroNansState", "apply_every", "centralize", "conditionally_mask", "conditionally_transform",
    "inject_stateful_hyperparams", "keep_params_nonnegative", "measure_with_ema", "micro_grad",
    "micro_vmap", "microbatch", "microbatching", "monitor", "normalize_by_update_norm",
    "per_example_global_norm_clip", "per_example_layer_norm_clip", "reshape_batch_axis",
    "scale_gradient", "snapshot", "zero_nans",
]
# tree-numerics-projections
from jaxopt_notes.core import projections  # noqa: E402
from jaxopt_notes.core.numerics import (  # noqa: E402
    incremental_update,
    matrix_inverse_pth_root,
    multi_normal,
    periodic_update,
    power_iteration,
    safe_norm,
    safe_root_mean_squares,
)
from jaxopt_notes.core.projections import (  # noqa: E402
    projection_box,
    projection_halfspace,
    projection_hypercube,
    projection_hyperplane,
    projection_l1_ball,
    projection_l1_sphere,
    projection_l2_ball,
    projection_l2_sphere,
    projection_linf_ball,
    projection_non_negative,
    projection_simplex,
    projection_vector,
)
from jaxopt_notes.schedules.interpolated import (  # noqa: E402
    linear_onecycle_schedule,
    piecewise_interpolate_schedule,
    warmup_constant_schedule,
)
from jaxopt_notes.training import second_order  # noqa: E402
from jaxopt_notes.training.second_order import fisher_diag, hessian_diag, hvp  # noqa: E402

__all__ += [
    "fisher_diag", "hessian_diag", "hvp", "incremental_update", "linear_onecycle_schedule",
    "matrix_inverse_pth_root", "multi_normal", "periodic_update", "piecewise_interpolate_schedule",
    "power_iteration", "projection_box", "projection_halfspace", "projection_hypercube",
    "projection_hyperplane", "projection_l1_ball", "projection_l1_sphere", "projection_l2_ball",
    "projection_l2_sphere", "projection_linf_ball", "projection_non_negative", "projection_simplex",
    "projection_vector", "projections", "safe_norm", "safe_root_mean_squares", "second_order",
    "warmup_constant_schedule",
]

# Weight averaging (EMA, SWA) of the params, kept in the optimizer state.
from jaxopt_notes.wrappers.averaging import (  # noqa: E402
    ParamsAverageState,
    averaged_params,
    ema_params,
    ema_power_warmup_decay,
    ema_warmup_decay,
    swa_params,
)

__all__ += [
    "ParamsAverageState", "averaged_params", "ema_params", "ema_power_warmup_decay", "ema_warmup_decay",
    "swa_params",
]

# optax.contrib's optimizers: jn.contrib.NAME, as optax.contrib.NAME after `import optax`.
from jaxopt_notes import contrib  # noqa: E402

__all__ += ["contrib"]

# The namespaces above are modules defined in the layers; registering them under their short
# paths makes `import jaxopt_notes.tree` and `from jaxopt_notes.projections import ...` work too.
import sys as _sys  # noqa: E402

for _alias, _module in (("tree", tree), ("projections", projections), ("second_order", second_order),
                        ("microbatching", microbatching), ("sharding", sharding)):
  _sys.modules.setdefault(f"{__name__}.{_alias}", _module)
del _alias, _module

# Before JAX's CPU client starts its threads: freed step temporaries are then reused, not mapped
# afresh every step (jaxopt_notes/kernels/host_memory.py; JAXOPT_NOTES_KEEP_HOST_MEMORY=0: off).
_keep_at_import()
