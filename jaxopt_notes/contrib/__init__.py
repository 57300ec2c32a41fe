"""optax.contrib's optimizers, with optax.contrib's names, signatures and numbers.

``import jaxopt_notes as jn`` then ``jn.contrib.NAME`` (or ``import
jaxopt_notes.contrib as jnc``). Each is equal to ``optax.contrib.NAME`` of
optax 0.2.8 on the trajectory tests (``tests/contrib``), bitwise unless its
tests say otherwise, except where its docstring names a deliberate
difference (argument checks, ``learning_rate=None`` refused, a guard where
optax returns NaN).
"""

from jaxopt_notes.contrib._ademamix import (
    ScaleByAdemamixState,
    ScaleBySimplifiedAdEMAMixState,
    ademamix,
    scale_by_ademamix,
    scale_by_simplified_ademamix,
    simplified_ademamix,
)
from jaxopt_notes.contrib._adopt import acprop, adopt, scale_by_acprop, scale_by_adopt
from jaxopt_notes.contrib._cocob import COCOBState, cocob, scale_by_cocob
from jaxopt_notes.contrib._dog import DoGState, DoWGState, dog, dowg
from jaxopt_notes.contrib._madgrad import MadgradState, madgrad, scale_by_madgrad
from jaxopt_notes.contrib._momo import MomoAdamState, MomoState, momo, momo_adam
from jaxopt_notes.contrib._muon import (
    MuonDimensionNumbers,
    MuonState,
    muon,
    orthogonalize_via_newton_schulz,
    scale_by_muon,
    scale_by_shape,
)
from jaxopt_notes.contrib._prodigy import DAdaptAdamWState, ProdigyState, dadapt_adamw, prodigy
from jaxopt_notes.training.plateau import ReduceLROnPlateauState, reduce_on_plateau

__all__ = [
    "COCOBState", "DAdaptAdamWState", "DoGState", "DoWGState", "MadgradState", "MomoAdamState",
    "MomoState", "MuonDimensionNumbers", "MuonState", "ProdigyState", "ReduceLROnPlateauState",
    "ScaleByAdemamixState", "ScaleBySimplifiedAdEMAMixState", "acprop", "ademamix", "adopt",
    "cocob", "dadapt_adamw", "dog", "dowg", "madgrad", "momo", "momo_adam", "muon",
    "orthogonalize_via_newton_schulz", "prodigy", "reduce_on_plateau", "scale_by_acprop",
    "scale_by_ademamix", "scale_by_adopt", "scale_by_cocob", "scale_by_madgrad", "scale_by_muon",
    "scale_by_shape", "scale_by_simplified_ademamix", "simplified_ademamix",
]
