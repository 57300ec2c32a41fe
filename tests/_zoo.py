"""Every optimizer and wrapper, with optax's counterpart, for the reliability tests.

Shared by test_reliability, test_checkpoint and test_properties, so that a new
optimizer added here is covered by all three. Each entry knows how to build
ours and optax's, whether its params are ``LookaheadParams`` and whether its
``update`` needs the loss (``value=``).
"""

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import optax

import jaxopt_notes as jn


def lr_schedule(count):
  """A decaying learning rate, finite for every int32 count."""
  return 0.1 / (1.0 + 0.01 * count)


def wd_schedule(count):
  return 1e-2 / (1.0 + count)


def _no_scalar_or_empty_matrix(params):
  return all(jnp.ndim(x) >= 1 and (jnp.size(x) > 0 or jnp.ndim(x) < 2) for x in jax.tree.leaves(params))


def labels(params):
  """Matrices to the "adam" group, everything else to "sgd"."""
  return jax.tree.map(lambda p: "adam" if jnp.ndim(p) > 1 else "sgd", params)


@dataclasses.dataclass(frozen=True)
class Entry:
  ours: Callable[[], Any]
  theirs: Optional[Callable[[], Any]] = None
  lookahead: bool = False  # params are LookaheadParams(fast, slow)
  needs_value: bool = False  # update(..., value=loss)
  weight_decay: bool = False  # a zero gradient still moves the params
  noise: bool = False  # the updates carry random noise: a zero gradient moves the params too
  # Where a NaN (an Inf) in one gradient coordinate shows in that step's
  # update: "coordinate" (there only), "leaf" (a per-leaf norm spreads it over
  # its leaf), "tree" (a norm over all leaves spreads it everywhere) or "none"
  # (the update stays finite).
  nan_update: str = "coordinate"
  inf_update: str = "coordinate"
  # Whether the state keeps that NaN/Inf in later steps; None: whenever the
  # optimizer has per-parameter state.
  keeps_non_finite: Optional[bool] = None
  finite_at_max_count: bool = True  # updates stay finite once the step counter saturates
  # Which params optax's counterpart can update (None: all); on others it raises.
  optax_runs_on: Optional[Callable[[Any], bool]] = None

  def params(self, params):
    return jn.LookaheadParams.init_synced(params) if self.lookahead else params

  def update(self, tx, grads, state, params, value=1.0):
    extra = {"value": jnp.asarray(value, jnp.float32)} if self.needs_value else {}
    return tx.update(grads, state, params, **extra)


# The optimizers of the README table, each with optax's equal.
OPTIMIZERS = {
    "sgd": Entry(lambda: jn.sgd(0.1), lambda: optax.sgd(0.1)),
    "sgd_momentum": Entry(lambda: jn.sgd(0.1, momentum=0.9), lambda: optax.sgd(0.1, momentum=0.9)),
    "sgd_nesterov": Entry(
        lambda: jn.sgd(0.1, momentum=0.9, nesterov=True),
        lambda: optax.sgd(0.1, momentum=0.9, nesterov=True),
    ),
    "sgd_schedule": Entry(lambda: jn.sgd(lr_schedule), lambda: optax.sgd(lr_schedule)),
    "adagrad": Entry(lambda: jn.adagrad(0.1), lambda: optax.adagrad(0.1)),
    "rmsprop": Entry(lambda: jn.rmsprop(0.01), lambda: optax.rmsprop(0.01)),
    "rmsprop_centered_momentum": Entry(
        lambda: jn.rmsprop(0.01, centered=True, momentum=0.9),
        lambda: optax.rmsprop(0.01, centered=True, momentum=0.9),
    ),
    "rmsprop_bias_correction": Entry(
        lambda: jn.rmsprop(0.01, bias_correction=True),
        lambda: optax.rmsprop(0.01, bias_correction=True),
    ),
    "adadelta": Entry(lambda: jn.adadelta(0.5), lambda: optax.adadelta(0.5)),
    "adam": Entry(lambda: jn.adam(0.1), lambda: optax.adam(0.1)),
    "adamw": Entry(lambda: jn.adamw(0.1), lambda: optax.adamw(0.1), weight_decay=True),
    "adamw_schedule_wd": Entry(
        lambda: jn.adamw(0.1, weight_decay=wd_schedule),
        lambda: optax.adamw(0.1, weight_decay=wd_schedule),
        weight_decay=True,
    ),
    "nadam": Entry(lambda: jn.nadam(0.1), lambda: optax.nadam(0.1)),
    "nadamw": Entry(lambda: jn.nadamw(0.1), lambda: optax.nadamw(0.1), weight_decay=True),
    "radam": Entry(lambda: jn.radam(0.1), lambda: optax.radam(0.1)),
    "amsgrad": Entry(lambda: jn.amsgrad(0.1), lambda: optax.amsgrad(0.1)),
    "adamax": Entry(lambda: jn.adamax(0.1), lambda: optax.adamax(0.1)),
    # --- optax breadth: the optimizers added to equal optax 0.2.8 -------------
    # Where one behaves unlike the generic expectations of test_reliability,
    # the field says how, and why in a comment; the numbers are always optax's.
    # sign(+-Inf) = +-1: an Inf gradient gives a finite step (and, kept in a
    # momentum, the same direction at every later step).
    "sign_sgd": Entry(lambda: jn.sign_sgd(0.1), lambda: optax.sign_sgd(0.1), inf_update="none"),
    "signum": Entry(lambda: jn.signum(0.1), lambda: optax.signum(0.1), inf_update="none"),
    "lion": Entry(lambda: jn.lion(0.01), lambda: optax.lion(0.01), weight_decay=True, inf_update="none"),
    "adabelief": Entry(lambda: jn.adabelief(0.1), lambda: optax.adabelief(0.1)),
    "yogi": Entry(lambda: jn.yogi(0.1), lambda: optax.yogi(0.1), weight_decay=True),
    "adan": Entry(lambda: jn.adan(0.1), lambda: optax.adan(0.1)),
    # The second moment is one norm per leaf: a NaN spreads over its leaf. An
    # Inf stays in its coordinate (0 * Inf = NaN): the leaf's other gradient
    # coordinates are divided by the infinite norm, to 0.
    "novograd": Entry(lambda: jn.novograd(0.1), lambda: optax.novograd(0.1), nan_update="leaf"),
    "adamaxw": Entry(lambda: jn.adamaxw(0.1), lambda: optax.adamaxw(0.1), weight_decay=True),
    # The trust ratio ||w|| / ||u|| is per leaf: NaN or Inf spreads over the leaf.
    "lamb": Entry(
        lambda: jn.lamb(0.1, weight_decay=0.01),
        lambda: optax.lamb(0.1, weight_decay=0.01),
        weight_decay=True, nan_update="leaf", inf_update="leaf",
    ),
    # The trust ratio ||w|| / ||g|| is per leaf: a NaN spreads over its leaf; an
    # Inf makes the ratio 0, so only its coordinate (0 * Inf) is NaN.
    "lars": Entry(lambda: jn.lars(0.1), lambda: optax.lars(0.1), nan_update="leaf"),
    # The step is g / ||g|| per leaf: as LARS (the Inf's leaf keeps only its decay step).
    "fromage": Entry(lambda: jn.fromage(0.1), lambda: optax.fromage(0.1), weight_decay=True, nan_update="leaf"),
    # The factored moment is the outer product of row and column means,
    # divided by their mean: one bad coordinate reaches the whole leaf. The
    # default decay 1 - (t + 1)^-0.8 forms t + 1 in int32, which wraps at the
    # int32 maximum to a negative base: NaN, exactly as optax's.
    "adafactor": Entry(
        lambda: jn.adafactor(0.1, min_dim_size_to_factor=2),
        lambda: optax.adafactor(0.1, min_dim_size_to_factor=2),
        nan_update="leaf", inf_update="leaf", finite_at_max_count=False,
    ),
    # optax's SM3 raises on a 0-d leaf (IndexError) and on an empty one of rank >= 2
    # (ValueError); ours updates both (documented in scale_by_sm3).
    "sm3": Entry(lambda: jn.sm3(0.1), lambda: optax.sm3(0.1), optax_runs_on=_no_scalar_or_empty_matrix),
    # The step (f - f*) / ||g||^2 uses the norm of all leaves: a NaN spreads
    # everywhere (an Inf makes the step 0, so only its coordinate, 0 * Inf, is NaN).
    "polyak_sgd": Entry(lambda: jn.polyak_sgd(), lambda: optax.polyak_sgd(), needs_value=True, nan_update="tree"),
    # optax's Rprop returns the previous step's update, so a bad gradient's own
    # update is finite; the stored step is sign(g) times a step size, which an
    # Inf leaves finite and a NaN leaves for one step only.
    "rprop": Entry(
        lambda: jn.rprop(0.1), lambda: optax.rprop(0.1),
        nan_update="none", inf_update="none", keeps_non_finite=False,
    ),
    # The state is the last gradient only: the NaN is gone one step later.
    "optimistic_gradient_descent": Entry(
        lambda: jn.optimistic_gradient_descent(0.1), lambda: optax.optimistic_gradient_descent(0.1),
        keeps_non_finite=False,
    ),
    "optimistic_adam_v2": Entry(lambda: jn.optimistic_adam_v2(0.1), lambda: optax.optimistic_adam_v2(0.1)),
    # The same key as optax's, so the same noise: compared with optax, never with 0.
    "noisy_sgd": Entry(lambda: jn.noisy_sgd(0.1, key=0), lambda: optax.noisy_sgd(0.1, key=0), noise=True),
    # Without its line search (which needs value_fn=): the two-loop direction and a fixed step.
    # Its first step divides by the norm of the whole gradient, so one NaN or Inf reaches every leaf.
    "lbfgs": Entry(lambda: jn.lbfgs(0.1, linesearch=None), lambda: optax.lbfgs(0.1, linesearch=None),
                   nan_update="tree", inf_update="tree"),
}

# Wrappers and composites around them.
WRAPPED = {
    "inject_hyperparams": Entry(
        lambda: jn.inject_hyperparams(jn.adam)(learning_rate=lr_schedule, b1=0.8),
        lambda: optax.inject_hyperparams(optax.adam)(learning_rate=lr_schedule, b1=0.8),
    ),
    "inject_hyperparams_sgd": Entry(
        lambda: jn.inject_hyperparams(jn.sgd)(learning_rate=0.1, momentum=0.9),
        lambda: optax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=0.9),
    ),
    "lookahead": Entry(
        lambda: jn.lookahead(jn.adam(0.1), sync_period=3, slow_step_size=0.5), lookahead=True
    ),
    "lookahead_reset": Entry(
        lambda: jn.lookahead(jn.sgd(0.1, momentum=0.9), 2, 0.5, reset_state=True),
        lookahead=True,
    ),
    "multisteps": Entry(
        lambda: jn.MultiSteps(jn.adam(0.1), every_k_schedule=3).gradient_transformation(),
        lambda: optax.MultiSteps(optax.adam(0.1), every_k_schedule=3).gradient_transformation(),
    ),
    "apply_if_finite": Entry(
        lambda: jn.apply_if_finite(jn.adam(0.1), 3),
        lambda: optax.apply_if_finite(optax.adam(0.1), 3),
    ),
    "clip_chain": Entry(
        lambda: jn.chain(jn.clip_by_global_norm(1.0), jn.adam(0.1)),
        lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.1)),
    ),
    "named_chain": Entry(
        lambda: jn.named_chain(("clip", jn.clip(0.5)), ("opt", jn.sgd(0.1, momentum=0.9))),
        lambda: optax.named_chain(("clip", optax.clip(0.5)), ("opt", optax.sgd(0.1, momentum=0.9))),
    ),
    "flatten": Entry(lambda: jn.flatten(jn.adam(0.1)), lambda: optax.flatten(optax.adam(0.1))),
    "partition": Entry(
        lambda: jn.partition({"adam": jn.adam(0.1), "sgd": jn.sgd(0.1, momentum=0.9)}, labels),
        lambda: optax.partition(
            {"adam": optax.adam(0.1), "sgd": optax.sgd(0.1, momentum=0.9)}, labels
        ),
    ),
    "reduce_on_plateau": Entry(
        lambda: jn.chain(jn.adam(0.1), jn.reduce_on_plateau(patience=2)),
        lambda: optax.chain(optax.adam(0.1), optax.contrib.reduce_on_plateau(patience=2)),
        needs_value=True,
    ),
}

ALL = {**OPTIMIZERS, **WRAPPED}
