"""``torch.optim`` equivalents: torch's argument names, defaults and numbers.

For porting a PyTorch training loop to JAX, where optax's "same" optimizer
(and so the library's own optimizers) often is not torch's: eps placement,
initial accumulators, SGD's dampening and first-step buffer, L2 vs decoupled
decay, AMSGrad's max, NAdam's and RAdam's formulas. Each function reproduces
``torch.optim.X`` (torch 2.x, default for-loop implementation) step for step;
its docstring says what differs from ``jaxopt_notes.X``/``optax.X``.

Usage mirrors torch's, with the params left out::

    from jaxopt_notes import torch_compat as tc

    tx = tc.adamw(lr=tc.cosine_annealing_lr(1e-3, T_max=1000), weight_decay=0.05)
    state = tx.init(params)
    updates, state = tx.update(grads, state, params)
    params = jaxopt_notes.apply_updates(params, updates)

``update`` needs ``params`` whenever ``weight_decay`` is non-zero. ``lr``
may be a number or a schedule ``t -> lr`` (such as the torch-scheduler
equivalents re-exported here from :mod:`jaxopt_notes.schedules.torch_style`);
``t`` counts updates already applied. Arguments are checked when the
optimizer is built and errors name the argument, as torch's constructors do.
torch's implementation switches (``foreach``, ``fused``, ``capturable``,
``differentiable``) do not change the math and are not taken; nor are
Tensor-valued hyper-parameters or per-parameter-group options (wrap a
transform in :func:`~jaxopt_notes.masked` to apply it to part of the params).

Step-dependent scalars are computed in the default float dtype (float64
only under ``jax.enable_x64``), as torch uses its default dtype for them.
"""

from jaxopt_notes.schedules.torch_style import (
    cosine_annealing_lr,
    exponential_lr,
    linear_lr,
    multi_step_lr,
    one_cycle_lr,
    polynomial_lr,
    step_lr,
)
from jaxopt_notes.torch_compat.matrix import (
    TorchAdafactorState,
    TorchMuonState,
    adafactor,
    muon,
    scale_by_torch_adafactor,
    scale_by_torch_muon,
)
from jaxopt_notes.torch_compat.optimizers import adadelta, adagrad, adam, adamax, adamw, nadam, radam, rmsprop, sgd
from jaxopt_notes.torch_compat.transforms import (
    TorchMomentumState,
    TorchNAdamState,
    scale_by_torch_amsgrad,
    scale_by_torch_nadam,
    scale_by_torch_radam,
    torch_momentum,
)

__all__ = [
    # optimizers, named like torch.optim's classes
    "adadelta", "adagrad", "adam", "adamax", "adamw", "nadam", "radam", "rmsprop", "sgd",
    "adafactor", "muon",
    # the transforms whose math differs from the library's
    "TorchMomentumState", "TorchNAdamState", "scale_by_torch_amsgrad",
    "scale_by_torch_nadam", "scale_by_torch_radam", "torch_momentum",
    "TorchAdafactorState", "TorchMuonState", "scale_by_torch_adafactor", "scale_by_torch_muon",
    # schedules, from jaxopt_notes.schedules.torch_style
    "cosine_annealing_lr", "exponential_lr", "linear_lr", "multi_step_lr",
    "one_cycle_lr", "polynomial_lr", "step_lr",
]
