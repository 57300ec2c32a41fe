"""The Adam family: Adam, AdamW, NAdam(W), RAdam, AMSGrad, Adamax(W) (notes 000, 001, 003, 004).

Each is a ``chain`` of a :mod:`jaxopt_notes.transforms.adam_family` block and
the step; the plain Adam and AdamW configurations carry the fused kernel.
"""

from __future__ import annotations

from typing import Any, Optional

from jaxopt_notes.core import base, combine
from jaxopt_notes.kernels import fused
from jaxopt_notes.optimizers._common import LR, Num, descent_step
from jaxopt_notes.transforms import adam_family, masking, scaling

__all__ = ["adam", "adamax", "adamaxw", "adamw", "amsgrad", "nadam", "nadamw", "radam"]

def adam(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-8,
    eps_root: Num = 0.0,
    mu_dtype: Optional[Any] = None,
    *,
    nesterov: bool = False,
    nu_dtype: Optional[Any] = None,
    bias_correction: bool = True,
) -> base.GradientTransformationExtraArgs:
  r"""Adam: bias-corrected momentum divided by a bias-corrected RMS.

  .. math:: w_t = w_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}

  Notes 000/003/004; defaults b1 0.9, b2 0.999, eps 1e-8 as there.
  ``bias_correction=False`` is note 000's "almost Adam". Chain:
  :func:`scale_by_adam` then the step. Same as ``optax.adam``.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.adam(0.1)
    >>> grad = jax.grad(lambda p: jnp.sum(p["w"] ** 2))
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> state = tx.init(params)
    >>> for _ in range(3):
    ...   updates, state = tx.update(grad(params), state, params)
    ...   params = jn.apply_updates(params, updates)
    >>> print(np.asarray(params["w"]).round(4))  # about lr per step whatever the gradient's size
    [ 0.7016 -1.7006]
  """
  return _adam_chain(
      learning_rate, None, None, b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype,
      nesterov=nesterov, nu_dtype=nu_dtype, bias_correction=bias_correction,
  )


def adamw(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-8,
    eps_root: Num = 0.0,
    mu_dtype: Optional[Any] = None,
    weight_decay: LR = 1e-4,
    mask: Optional[masking.Mask] = None,
    *,
    nesterov: bool = False,
    nu_dtype: Optional[Any] = None,
    bias_correction: bool = True,
) -> base.GradientTransformationExtraArgs:
  r"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

  .. math:: w_t = w_{t-1} - \eta \left(\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon} + \lambda w_{t-1}\right)

  The decay is added after Adam's scaling, so it is not divided by
  ``sqrt(v)`` (notes 001 name AdamW). Chain: :func:`scale_by_adam`,
  :func:`add_decayed_weights`, the step. Same as ``optax.adamw``. Defaults as
  :func:`adam`, with ``weight_decay=1e-4`` on every leaf (``mask=None``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.adamw(0.1, weight_decay=0.5)
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> updates, state = tx.update({"w": jnp.array([2.0, -1.0])}, tx.init(params), params)
    >>> print(np.asarray(updates["w"]).round(4))  # -eta (sign(g) + lambda w) on the first step
    [-0.15  0.2 ]
  """
  return _adam_chain(
      learning_rate, weight_decay, mask, b1=b1, b2=b2, eps=eps, eps_root=eps_root,
      mu_dtype=mu_dtype, nesterov=nesterov, nu_dtype=nu_dtype, bias_correction=bias_correction,
  )


def _adam_chain(learning_rate, weight_decay, mask, **adam_args):
  """``scale_by_adam``, the decoupled decay if ``weight_decay`` is not None, the step.

  The plain configurations (no NAdam, bias-corrected, no mask or schedule on
  the decay) carry the fused Adam(W) kernel.
  """
  lr_tx = descent_step(learning_rate)
  decay = [] if weight_decay is None else [scaling.add_decayed_weights(weight_decay, mask)]
  tx = combine.chain(adam_family.scale_by_adam(**adam_args), *decay, lr_tx)
  if adam_args["nesterov"] or not adam_args["bias_correction"]:
    return tx
  if mask is not None or callable(weight_decay):
    return tx
  if weight_decay is not None and scaling.skips_weight_decay(weight_decay):
    # add_decayed_weights(0.0) skips the add entirely: so does plain Adam's kernel.
    weight_decay = None
  a = adam_args
  return fused.attach(tx, fused.adam_rule(a["b1"], a["b2"], a["eps"], a["eps_root"], weight_decay, lr_tx))


def nadam(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-8,
    eps_root: Num = 0.0,
    mu_dtype: Optional[Any] = None,
    *,
    nu_dtype: Optional[Any] = None,
) -> base.GradientTransformationExtraArgs:
  r"""NAdam: Adam with Nesterov momentum (Dozat, 2016).

  .. math:: w_t = w_{t-1} - \eta\, \frac{\beta_1 \hat m_{t+1} + (1-\beta_1)\hat g_t}{\sqrt{\hat v_t} + \epsilon}

  Notes 000's Nesterov look-ahead applied to Adam's first moment. Same as
  ``optax.nadam`` (``adam(..., nesterov=True)``). Defaults as :func:`adam`.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.nadam(0.1)
    >>> grad = jax.grad(lambda p: jnp.sum(p["w"] ** 2))
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> state = tx.init(params)
    >>> for _ in range(3):
    ...   updates, state = tx.update(grad(params), state, params)
    ...   params = jn.apply_updates(params, updates)
    >>> print(np.asarray(params["w"]).round(4))
    [ 0.6406 -1.6343]
  """
  return adam(learning_rate, b1, b2, eps, eps_root, mu_dtype, nesterov=True, nu_dtype=nu_dtype)


def nadamw(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-8,
    eps_root: Num = 0.0,
    mu_dtype: Optional[Any] = None,
    weight_decay: LR = 1e-4,
    mask: Optional[masking.Mask] = None,
    *,
    nu_dtype: Optional[Any] = None,
) -> base.GradientTransformationExtraArgs:
  r"""NAdamW: NAdam with decoupled weight decay; see :func:`nadam`, :func:`adamw`.

  Same as ``optax.nadamw`` (``adamw(..., nesterov=True)``). Defaults as
  :func:`adamw` (Dozat, 2016; Loshchilov & Hutter, 2019).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.nadamw(0.1, weight_decay=0.5)
    >>> grad = jax.grad(lambda p: jnp.sum(p["w"] ** 2))
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> state = tx.init(params)
    >>> for _ in range(3):
    ...   updates, state = tx.update(grad(params), state, params)
    ...   params = jn.apply_updates(params, updates)
    >>> print(np.asarray(params["w"]).round(4))
    [ 0.523  -1.3734]
  """
  return adamw(
      learning_rate, b1, b2, eps, eps_root, mu_dtype, weight_decay, mask,
      nesterov=True, nu_dtype=nu_dtype,
  )


def radam(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-8,
    eps_root: Num = 0.0,
    threshold: Num = 5.0,
    *,
    nesterov: bool = False,
) -> base.GradientTransformationExtraArgs:
  r"""RAdam: Adam whose adaptive step is rectified while ``v`` is unreliable.

  .. math::
     w_t = w_{t-1} - \eta\, r_t\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}\ \ (\rho_t \ge 5),
     \ \text{else}\ w_{t-1} - \eta\, \hat m_t

  Notes 001 name RAdam. See :func:`scale_by_radam`. Same as ``optax.radam``.
  Defaults as :func:`adam`, ``threshold=5`` (Liu et al., 2020).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.radam(0.1)
    >>> grad = jax.grad(lambda p: jnp.sum(p["w"] ** 2))
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> state = tx.init(params)
    >>> for _ in range(3):
    ...   updates, state = tx.update(grad(params), state, params)
    ...   params = jn.apply_updates(params, updates)
    >>> print(np.asarray(params["w"]).round(4))  # the first steps are momentum steps, scaled by g
    [ 0.4623 -0.9246]
  """
  return combine.chain(
      adam_family.scale_by_radam(b1, b2, eps, eps_root, threshold, nesterov=nesterov),
      descent_step(learning_rate),
  )


def amsgrad(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-8,
    eps_root: Num = 0.0,
    mu_dtype: Optional[Any] = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    *,
    nu_dtype: Optional[Any] = None,
) -> base.GradientTransformationExtraArgs:
  r"""AMSGrad: Adam with the running maximum of the second moment.

  .. math:: w_t = w_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{\max_{s\le t} \hat v_s} + \epsilon}

  See :func:`scale_by_amsgrad`. Same as ``optax.amsgrad``. Defaults as
  :func:`adam`, both moments bias-corrected (Reddi et al., 2018).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.amsgrad(0.1)
    >>> grad = jax.grad(lambda p: jnp.sum(p["w"] ** 2))
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> state = tx.init(params)
    >>> for _ in range(3):
    ...   updates, state = tx.update(grad(params), state, params)
    ...   params = jn.apply_updates(params, updates)
    >>> print(np.asarray(params["w"]).round(4))
    [ 0.7158 -1.7079]
  """
  return combine.chain(
      adam_family.scale_by_amsgrad(
          b1, b2, eps, eps_root, mu_dtype, bias_correction_mu, bias_correction_nu,
          nu_dtype=nu_dtype,
      ),
      descent_step(learning_rate),
  )


def adamax(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-8,
) -> base.GradientTransformationExtraArgs:
  r"""Adamax: Adam with an infinity-norm second moment.

  .. math:: w_t = w_{t-1} - \eta\, \hat m_t / \max(\beta_2 u_{t-1}, |g_t| + \epsilon)

  See :func:`scale_by_adamax`. Same as ``optax.adamax``. Defaults ``b1=0.9``,
  ``b2=0.999``, ``eps=1e-8`` (Kingma & Ba, 2015, sec. 7).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.adamax(0.1)
    >>> grad = jax.grad(lambda p: jnp.sum(p["w"] ** 2))
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> state = tx.init(params)
    >>> for _ in range(3):
    ...   updates, state = tx.update(grad(params), state, params)
    ...   params = jn.apply_updates(params, updates)
    >>> print(np.asarray(params["w"]).round(4))
    [ 0.7155 -1.7076]
  """
  return combine.chain(
      adam_family.scale_by_adamax(b1, b2, eps),
      descent_step(learning_rate),
  )


def adamaxw(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-8,
    weight_decay: LR = 1e-4,
    mask: Optional[masking.Mask] = None,
) -> base.GradientTransformationExtraArgs:
  r"""AdamaxW: Adamax with decoupled weight decay.

  .. math::
     u_t = \max(\beta_2 u_{t-1}, |g_t| + \epsilon), \qquad
     w_t = w_{t-1} - \eta_t \left(\frac{\hat m_t}{u_t} + \lambda w_{t-1}\right)

  Adamax (Kingma & Ba, 2015, arXiv:1412.6980, sec. 7) with the decay added
  after the scaling, as AdamW does for Adam (Loshchilov & Hutter, 2019,
  arXiv:1711.05101; notes 001 name AdamW): notes 000/003/004's Adam family.
  The decay is multiplied by the learning rate. Chain:
  :func:`scale_by_adamax`, :func:`add_decayed_weights` (``mask``), the step.
  Same as ``optax.adamaxw``.

  Args:
    learning_rate: ``eta``, a float or a schedule.
    b1: first-moment decay in ``[0, 1)`` (default 0.9).
    b2: decay of the running max in ``[0, 1)`` (default 0.999).
    eps: added to ``|g|`` (default 1e-8).
    weight_decay: ``lambda``, a number ``>= 0`` or a schedule (default 1e-4).
    mask: which leaves to decay (a pytree of booleans or a function of the
      params); ``None`` decays all (default).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.adamaxw(0.1, weight_decay=0.5)
    >>> params = {"w": jnp.ones(2)}
    >>> updates, state = tx.update({"w": jnp.array([1.0, -4.0])}, tx.init(params), params)
    >>> print(np.asarray(updates["w"]).round(4))  # -eta (sign(g) + lambda w) on the first step
    [-0.15  0.05]
  """
  return combine.chain(
      adam_family.scale_by_adamax(b1, b2, eps),
      scaling.add_decayed_weights(weight_decay, mask),
      descent_step(learning_rate),
  )
