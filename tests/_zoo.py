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
