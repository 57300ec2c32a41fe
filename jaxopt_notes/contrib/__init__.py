"""optax.contrib's optimizers, with optax.contrib's names, signatures and numbers.

``import jaxopt_notes as jn`` then ``jn.contrib.NAME`` (or ``import
jaxopt_notes.contrib as jnc``). Each is equal to ``optax.contrib.NAME`` of
optax 0.2.8 on the trajectory tests (``tests/contrib``), bitwise unless its
tests say otherwise, except where its docstring names a deliberate
difference (argument checks, ``learning_rate=None`` refused, a guard where
optax returns NaN).
"""

from jaxopt_notes.contrib._adam_mini import ScaleByAdamMiniState, adam_mini, adam_mini_partition, scale_by_adam_mini
from jaxopt_notes.contrib._ademamix import (
    ScaleByAdemamixState,
    ScaleBySimplifiedAdEMAMixState,
    ademamix,
    scale_by_ademamix,
    scale_by_simplified_ademamix,
    simplified_ademamix,
)
from jaxopt_notes.contrib._adopt import acprop, adopt, scale_by_acprop, scale_by_adopt
from jaxopt_notes.contrib._cautious import cautious, cautious_adamw, cautious_lion, cautious_mask
from jaxopt_notes.contrib._cocob import COCOBState, cocob, scale_by_cocob
from jaxopt_notes.contrib._complex_valued import (
    SplitRealAndImaginaryArrays,
    SplitRealAndImaginaryState,
    split_real_and_imaginary,
)
from jaxopt_notes.contrib._dog import DoGState, DoWGState, dog, dowg
from jaxopt_notes.contrib._galore import GaLoreDimensionNumbers, GaLoreState, galore, scale_by_galore
from jaxopt_notes.contrib._kron import KronState, kron, precond_update_prob_schedule, scale_by_kron
from jaxopt_notes.contrib._madgrad import MadgradState, madgrad, scale_by_madgrad
from jaxopt_notes.contrib._mars import ScaleByMarsState, mars_adamw, mars_lion, mars_shampoo, scale_by_mars
from jaxopt_notes.contrib._mechanic import MechanicState, mechanize
from jaxopt_notes.contrib._momo import MomoAdamState, MomoState, momo, momo_adam
from jaxopt_notes.contrib._muon import (
    MuonDimensionNumbers,
    MuonState,
    muon,
    orthogonalize_via_newton_schulz,
    scale_by_muon,
    scale_by_shape,
)
from jaxopt_notes.contrib._privacy import DifferentiallyPrivateAggregateState, differentially_private_aggregate, dpsgd
from jaxopt_notes.contrib._prodigy import DAdaptAdamWState, ProdigyCappedState, ProdigyState, dadapt_adamw, prodigy
from jaxopt_notes.contrib._sam import NormalizeState, SAMState, normalize, sam
from jaxopt_notes.contrib._schedule_free import (
    ScheduleFreeState,
    schedule_free,
    schedule_free_adamw,
    schedule_free_eval_params,
    schedule_free_sgd,
)
from jaxopt_notes.contrib._shampoo import ShampooState, shampoo
from jaxopt_notes.contrib._soap import SOAPState, soap
from jaxopt_notes.contrib._sophia import (
    HutchinsonState,
    SophiaState,
    hutchinson_estimator_diag_hessian,
    scale_by_sophia,
    sophia,
)
from jaxopt_notes.training.plateau import ReduceLROnPlateauState, reduce_on_plateau

__all__ = [
    "COCOBState", "DAdaptAdamWState", "DifferentiallyPrivateAggregateState", "DoGState", "DoWGState",
    "GaLoreDimensionNumbers", "GaLoreState", "HutchinsonState", "KronState", "MadgradState", "MechanicState",
    "MomoAdamState", "MomoState", "MuonDimensionNumbers", "MuonState", "NormalizeState", "ProdigyCappedState",
    "ProdigyState", "ReduceLROnPlateauState", "SAMState", "SOAPState", "ScaleByAdamMiniState", "ScaleByAdemamixState",
    "ScaleByMarsState", "ScaleBySimplifiedAdEMAMixState", "ScheduleFreeState", "ShampooState", "SophiaState",
    "SplitRealAndImaginaryArrays", "SplitRealAndImaginaryState", "acprop", "adam_mini", "adam_mini_partition",
    "ademamix", "adopt", "cautious", "cautious_adamw", "cautious_lion", "cautious_mask", "cocob", "dadapt_adamw",
    "differentially_private_aggregate", "dog", "dowg", "dpsgd", "galore", "hutchinson_estimator_diag_hessian", "kron",
    "madgrad", "mars_adamw", "mars_lion", "mars_shampoo", "mechanize", "momo", "momo_adam", "muon", "normalize",
    "orthogonalize_via_newton_schulz", "precond_update_prob_schedule", "prodigy", "reduce_on_plateau", "sam",
    "scale_by_acprop", "scale_by_adam_mini", "scale_by_ademamix", "scale_by_adopt", "scale_by_cocob", "scale_by_galore",
    "scale_by_kron", "scale_by_madgrad", "scale_by_mars", "scale_by_muon", "scale_by_shape",
    "scale_by_simplified_ademamix", "scale_by_sophia", "schedule_free", "schedule_free_adamw",
    "schedule_free_eval_params", "schedule_free_sgd", "shampoo", "simplified_ademamix", "soap", "sophia",
    "split_real_and_imaginary",
]
