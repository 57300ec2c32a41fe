"""Learning-rate schedules: pure, jit-safe functions ``count -> value``.

``curves`` and ``interpolated`` have optax's schedules (same names and
numbers), ``notes`` the decays of lecture note 004 that optax lacks,
``torch_style`` torch's ``lr_scheduler`` classes as schedules (re-exported
by :mod:`jaxopt_notes.torch_compat`). This package re-exports the first
three, so ``jaxopt_notes.schedules.X`` can replace ``optax.X``.

May import: :mod:`jaxopt_notes.core`.
"""

from jaxopt_notes.schedules.curves import (
    constant_schedule,
    cosine_decay_schedule,
    cosine_onecycle_schedule,
    exponential_decay,
    join_schedules,
    linear_schedule,
    piecewise_constant_schedule,
    polynomial_schedule,
    sgdr_schedule,
    warmup_cosine_decay_schedule,
    warmup_exponential_decay_schedule,
)
from jaxopt_notes.schedules.interpolated import (
    linear_onecycle_schedule,
    piecewise_interpolate_schedule,
    warmup_constant_schedule,
)
from jaxopt_notes.schedules.notes import inverse_sqrt_decay, inverse_time_decay, per_epoch, step_decay

__all__ = [
    "constant_schedule",
    "cosine_decay_schedule",
    "cosine_onecycle_schedule",
    "exponential_decay",
    "inverse_sqrt_decay",
    "inverse_time_decay",
    "join_schedules",
    "linear_onecycle_schedule",
    "linear_schedule",
    "per_epoch",
    "piecewise_constant_schedule",
    "piecewise_interpolate_schedule",
    "polynomial_schedule",
    "sgdr_schedule",
    "step_decay",
    "warmup_constant_schedule",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
]
