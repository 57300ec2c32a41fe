r"""Cautious optimizers: keep only the coordinates where the step agrees with the gradient.

A momentum method's direction :math:`u_t` can point against the current
gradient :math:`g_t` in some coordinates (the momentum still remembers where
the loss used to go down). Cautious optimizers (Liang, Chen, Liu & Liu, 2024)
zero those coordinates and scale the rest up so that the step keeps its size.
:func:`cautious` wraps any transform this way; :func:`cautious_adamw` and
:func:`cautious_lion` are the paper's C-AdamW and C-Lion.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.optimizers._common import LR, Num, descent_step
from jaxopt_notes.transforms import adam_family, masking, scaling, sign

__all__ = ["cautious", "cautious_adamw", "cautious_lion", "cautious_mask"]


def cautious_mask(update: jax.Array, grad: jax.Array, *, descent: bool, normalize: bool = True) -> jax.Array:
  r"""``update`` zeroed where it disagrees with ``grad``, the rest rescaled (one leaf).

  .. math::
     \phi = \mathbb{1}[u \odot g > 0], \qquad
     u \leftarrow u \odot \phi \cdot \frac{n}{\textstyle\sum_i \phi_i + 1}

  with :math:`n` the leaf's size (``normalize=False`` drops the factor).
  ``descent=True`` reads ``update`` as a step added to the params (optax's
  sign, after the learning rate), so agreeing means :math:`u \odot g < 0`.
  The factor is ``pytorch_optimizer``'s ``apply_cautious`` (4.1.0); the
  paper's listing divides by :math:`\mathrm{mean}(\phi) + \epsilon` instead.
  Liang, Chen, Liu & Liu, "Cautious Optimizers: Improving Training with One
  Line of Code", 2024 (arXiv:2411.16085). The count of kept coordinates is
  summed in at least float32 (a bfloat16 sum stops counting at 256).

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxopt_notes.contrib._cautious import cautious_mask
    >>> u = cautious_mask(jnp.array([1.0, -2.0, 3.0]), jnp.array([2.0, 1.0, 1.0]), descent=False)
    >>> print(u + 0.0)  # two of three kept, times 3 / (2 + 1)
    [1. 0. 3.]
  """
  agree = update * grad < 0 if descent else update * grad > 0
  dtype = update.dtype
  keep = agree.astype(dtype)
  if normalize:
    count = jnp.sum(agree, dtype=jnp.promote_types(dtype, jnp.float32))
    keep = keep * (update.size / (count + 1)).astype(dtype)
  return update * keep


def cautious(
    inner: base.GradientTransformation, *, descent: bool, normalize: bool = True
) -> base.GradientTransformationExtraArgs:
  r"""Applies :func:`cautious_mask` to ``inner``'s updates, against the updates ``inner`` was given.

  .. math::
     u_t = T(g_t), \qquad
     \tilde u_t = u_t \odot \phi_t \cdot \frac{n}{\textstyle\sum_i \phi_{t,i} + 1},
     \qquad \phi_t = \mathbb{1}[\pm\, u_t \odot g_t > 0]

  per leaf, where :math:`g_t` is what reaches the wrapper in a chain (the
  gradient when it comes first). Where the learning rate's sign flip sits
  decides the comparison, so ``descent`` has no default: ``False`` when
  ``inner`` returns a direction that the chain later multiplies by
  :math:`-\eta` (``scale_by_adam``, ``scale_by_lion``; the reference's
  placement, before the weight decay); ``True`` when ``inner`` returns the
  step itself (a whole optimizer such as ``optax.adam(1e-3)``; then its weight
  decay, if any, is masked too). The state is ``inner``'s, unchanged; extra
  ``update`` arguments are passed on. Real leaves only. Liang, Chen, Liu &
  Liu, 2024 (arXiv:2411.16085); checked through :func:`cautious_adamw` and
  :func:`cautious_lion` against ``pytorch_optimizer`` (see there).

  Args:
    inner: the transform whose updates are masked.
    descent: ``inner``'s updates are steps to add (``True``) or directions
      of the gradient's sign (``False``); keyword only, required.
    normalize: rescale the kept coordinates by ``n / (kept + 1)``
      (default ``True``, the reference's).

  Examples:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> from jaxopt_notes.contrib._cautious import cautious
    >>> tx = cautious(optax.sgd(0.1, momentum=0.9), descent=True)
    >>> params = jnp.zeros(2)
    >>> state = tx.init(params)
    >>> _, state = tx.update(jnp.array([1.0, 1.0]), state, params)
    >>> u, _ = tx.update(jnp.array([1.0, -0.05]), state, params)  # the momentum now opposes g[1]
    >>> print(u.round(4) + 0.0)  # [-0.19, -0.085] by plain SGD; 2 / (1 + 1) on the kept one
    [-0.19  0.  ]
  """
  validation.check_flags(descent=descent, normalize=normalize)
  inner = base.with_extra_args_support(base.as_transform(inner, "inner"))

  def update_fn(updates, state, params=None, **extra_args):
    out, state = inner.update(updates, state, params, **extra_args)
    masked = jax.tree.map(
        lambda u, g: cautious_mask(u, g, descent=descent, normalize=normalize), out, updates
    )
    return masked, state

  return base.GradientTransformationExtraArgs(inner.init, update_fn)


_wrap = cautious  # the factories below take a flag of the same name


def cautious_adamw(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-8,
    eps_root: Num = 0.0,
    mu_dtype: Optional[Any] = None,
    weight_decay: LR = 1e-4,
    mask: Optional[masking.Mask] = None,
    *,
    cautious: bool = True,
) -> base.GradientTransformationExtraArgs:
  r"""C-AdamW: AdamW whose Adam direction is masked where it disagrees with the gradient.

  .. math::
     u_t = \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}, \qquad
     \theta_t = \theta_{t-1} - \eta_t \Big(u_t \odot \phi_t \frac{n}{\sum_i \phi_{t,i} + 1}
       + \lambda \theta_{t-1}\Big), \qquad \phi_t = \mathbb{1}[u_t \odot g_t > 0]

  per leaf of size :math:`n`; the decay is not masked. Liang, Chen, Liu &
  Liu, "Cautious Optimizers", 2024 (arXiv:2411.16085). Chain:
  ``cautious(scale_by_adam, descent=False)``, ``add_decayed_weights(weight_decay,
  mask)`` (``mask`` picks the leaves to decay), the step. Defaults are
  ``optax.adamw``'s; ``cautious=False`` is ``optax.adamw`` exactly.

  Checked against: ``pytorch_optimizer`` 4.1.0 has no cautious AdamW class
  (its ``AdamW`` is ``torch.optim.AdamW``), so the reference is its
  ``AdEMAMix(alpha=0, weight_decouple=True, cautious=True)``: with ``alpha=0``
  its slow EMA drops out and its arithmetic is torch's AdamW (its
  ``AdamP(delta=0)`` is not: its ``eps`` is divided by
  :math:`\sqrt{1-\beta_2^t}`). ``tests/contrib/test_cautious.py`` runs
  50-step trajectories against it in float64 (``rtol`` 1e-12) and float32
  (``rtol`` 2e-4, ``atol`` 3e-5); ``cautious=False`` against ``optax.adamw``
  bitwise.

  Args:
    learning_rate: ``eta``, a float or a schedule.
    b1: decay of the first moment in ``[0, 1)`` (default 0.9).
    b2: decay of the second moment in ``[0, 1)`` (default 0.999).
    eps: added after the root (default 1e-8).
    eps_root: added under the root (default 0.0).
    mu_dtype: dtype of the first moment (default: the params').
    weight_decay: ``lambda``, decoupled, a number or a schedule (default 1e-4).
    mask: which leaves to decay (booleans or a function of the params);
      ``None`` decays all (default).
    cautious: apply the mask (default ``True``).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> from jaxopt_notes.contrib._cautious import cautious_adamw
    >>> f = lambda x: jnp.sum((x - 1.0) ** 2)
    >>> tx = cautious_adamw(0.1)
    >>> x = jnp.array([0.0, 3.0, -2.0])
    >>> state = tx.init(x)
    >>> for _ in range(30):
    ...   u, state = tx.update(jax.grad(f)(x), state, x)
    ...   x = jn.apply_updates(x, u)
    >>> print(round(float(f(x)), 4))  # from 14
    0.4375
  """
  validation.check_learning_rate(learning_rate)
  validation.check_flags(cautious=cautious)
  direction = adam_family.scale_by_adam(b1, b2, eps, eps_root, mu_dtype)
  return combine.chain(
      _wrap(direction, descent=False) if cautious else direction,
      scaling.add_decayed_weights(weight_decay, mask),
      descent_step(learning_rate),
  )


def cautious_lion(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.99,
    mu_dtype: Optional[Any] = None,
    weight_decay: LR = 1e-3,
    mask: Optional[masking.Mask] = None,
    *,
    cautious: bool = True,
) -> base.GradientTransformationExtraArgs:
  r"""C-Lion: Lion's sign step masked where it disagrees with the gradient.

  .. math::
     u_t = \operatorname{sign}\big(\beta_1 m_{t-1} + (1-\beta_1) g_t\big), \qquad
     \theta_t = \theta_{t-1} - \eta_t \Big(u_t \odot \phi_t \frac{n}{\sum_i \phi_{t,i} + 1}
       + \lambda \theta_{t-1}\Big), \qquad m_t = \beta_2 m_{t-1} + (1-\beta_2) g_t

  with :math:`\phi_t = \mathbb{1}[u_t \odot g_t > 0]` per leaf of size
  :math:`n`; the decay is not masked. Liang, Chen, Liu & Liu, 2024
  (arXiv:2411.16085); Lion: Chen et al., 2023 (arXiv:2302.06675). Chain:
  ``cautious(scale_by_lion, descent=False)``, ``add_decayed_weights``, the
  step. Defaults are ``optax.lion``'s; ``cautious=False`` is ``optax.lion``.
  Checked against ``pytorch_optimizer.Lion(cautious=True)`` (4.1.0) by
  ``tests/contrib/test_cautious.py``: 50-step trajectories, float64 (``rtol``
  1e-12) and float32 (``rtol`` 2e-4, ``atol`` 3e-5).

  Args:
    learning_rate: ``eta``, a float or a schedule.
    b1: momentum weight in the step's direction, in ``[0, 1)`` (default 0.9).
    b2: decay of the momentum EMA, in ``[0, 1)`` (default 0.99).
    mu_dtype: dtype of the stored momentum (default: the params').
    weight_decay: ``lambda``, a number ``>= 0`` or a schedule (default 1e-3).
    mask: which leaves to decay; ``None`` decays all (default).
    cautious: apply the mask (default ``True``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from jaxopt_notes.contrib._cautious import cautious_lion
    >>> tx = cautious_lion(1e-3, weight_decay=0.0)
    >>> params = {"w": jnp.ones(3)}
    >>> u, _ = tx.update({"w": jnp.array([3.0, -0.5, 0.0])}, tx.init(params), params)
    >>> print(np.asarray(u["w"]) * 1e3 + 0.0)  # sign(g) kept on 2 of 3, times 3 / (2 + 1)
    [-1.  1.  0.]
  """
  validation.check_learning_rate(learning_rate)
  validation.check_flags(cautious=cautious)
  direction = sign.scale_by_lion(b1, b2, mu_dtype)
  return combine.chain(
      _wrap(direction, descent=False) if cautious else direction,
      scaling.add_decayed_weights(weight_decay, mask),
      descent_step(learning_rate),
  )
