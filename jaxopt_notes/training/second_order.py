r"""Newton's method for small problems: a step through the exact Hessian.

Note 002 (SEEDS.md) explains why gradient descent crawls on ill-conditioned
losses. To second order,

.. math:: f(x - \epsilon g) \approx f(x) - \epsilon\, g^\top g + \tfrac{\epsilon^2}{2}\, g^\top H g,

so a step is only safe while ``eps < 2 g'g / g'Hg``: the largest curvature
caps the learning rate, and along the flattest direction each step then gains
only ``lambda_min / lambda_max`` (one over the condition number) of the way.
Newton's method rescales every direction by its own curvature,
``x <- x - H^{-1} g``, and minimizes a quadratic in one step, whatever its
conditioning.

The Hessian is dense: ``n^2`` numbers for ``n`` parameters and an ``O(n^3)``
solve per step, so this is for models with at most a few thousand
parameters (logistic regression, the notes' toy functions, teaching).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.transforms import scaling

__all__ = ["newton", "scale_by_newton"]

_NO_VALUE_FN_MSG = (
    "Newton's method builds the Hessian of the loss, so its `update` needs "
    "the loss as a function of the params: call `update(grads, state, params, "
    "value_fn=lambda p: loss(p, batch))` (fit does this for you)"
)


def _check_size(params: Any, max_params: int) -> int:
  size = sum(jnp.size(x) for x in jax.tree.leaves(params))
  if size > max_params:
    raise ValueError(
        f"Newton's method needs a dense {size:,} x {size:,} Hessian "
        f"({size * size * 4 / 2**30:.1f} GiB in float32) and a cubic-cost "
        f"solve per step; this model has {size:,} parameters, more than "
        f"max_params={max_params:,}. Use a first-order optimizer (adam, sgd) "
        "or raise max_params if you have the memory"
    )
  return size


def scale_by_newton(
    damping: float = 0.0,
    max_params: int = 10_000,
) -> base.GradientTransformationExtraArgs:
  r"""Turns the gradient into the Newton direction: :math:`u = (H + \lambda I)^{-1} g`.

  ``H`` is ``jax.hessian`` of ``value_fn`` over the flattened params
  (``ravel_pytree``); ``g`` is the incoming update (the gradient). Stateless.
  ``update(updates, state, params, *, value_fn)`` requires both ``params``
  and ``value_fn``. Note 002's second-order method; see :func:`newton`.

  Args:
    damping: ``lambda >= 0`` added to the diagonal (default 0.0).
    max_params: the most parameters allowed (default 10,000).

  Reference: Nocedal & Wright, *Numerical Optimization*, sec. 3.3.
  """
  validation.check_non_negative("damping", damping)
  validation.check_positive_int("max_params", max_params)

  def init_fn(params):
    tree_lib.check_params_tree(params)
    _check_size(params, max_params)
    return base.EmptyState()

  def update_fn(updates, state, params=None, *,
                value_fn: Optional[Callable[[Any], jax.Array]] = None, **extra_args):
    del extra_args
    if params is None:
      raise ValueError(base.NO_PARAMS_MSG + " Newton's method differentiates the loss at them.")
    if value_fn is None:
      raise ValueError(_NO_VALUE_FN_MSG)
    size = _check_size(params, max_params)
    flat_params, unravel = ravel_pytree(params)
    flat_grads, unravel_updates = ravel_pytree(updates)
    hessian = jax.hessian(lambda x: value_fn(unravel(x)))(flat_params)
    # Symmetrize: autodiff's H is symmetric only up to rounding.
    hessian = 0.5 * (hessian + hessian.T) + damping * jnp.eye(size, dtype=hessian.dtype)
    direction = jnp.linalg.solve(hessian, flat_grads.astype(hessian.dtype))
    return unravel_updates(direction.astype(flat_grads.dtype)), state

  return base.GradientTransformationExtraArgs(init_fn, update_fn)


def newton(
    learning_rate: base.ScalarOrSchedule = 1.0,
    damping: float = 0.0,
    max_params: int = 10_000,
) -> base.GradientTransformationExtraArgs:
  r"""Damped Newton's method: :math:`w \leftarrow w - \eta\, (H + \lambda I)^{-1} \nabla f(w)`.

  Note 002 (SEEDS.md): on an ill-conditioned loss gradient descent's step is
  capped by the largest curvature (``f(x - eps g) ~ f(x) - eps g'g +
  eps^2/2 g'Hg``) and crawls along the flattest direction; Newton's method
  divides each direction by its curvature and solves a quadratic in one
  step (``eta = 1, lambda = 0``). ``lambda > 0`` (Levenberg's damping)
  shortens steps where ``H`` is singular or indefinite, as on Rosenbrock's
  valley; ``eta < 1`` or a schedule damps them further.

  The loss enters as the extra argument ``value_fn`` (as in
  ``optax.lbfgs``'s line search)::

      updates, state = opt.update(grads, state, params, value_fn=loss)

  :func:`fit` passes ``value_fn`` for the current batch. Chain:
  :func:`scale_by_newton` then ``scale_by_learning_rate``.

  Args:
    learning_rate: ``eta``, a float or a schedule (default 1.0).
    damping: ``lambda >= 0`` (default 0.0).
    max_params: above this many parameters ``init`` and ``update`` raise,
      since the Hessian is ``n x n`` (default 10,000: 400 MB in float32).

  Raises:
    ValueError: for too many parameters, and in ``update`` when ``params`` or
      ``value_fn`` is missing.

  Reference: Nocedal & Wright, *Numerical Optimization*, ch. 3.3 and 10.3;
  Goodfellow et al., *Deep Learning*, sec. 8.6.1.
  """
  return combine.chain(
      scale_by_newton(damping=damping, max_params=max_params),
      scaling.scale_by_learning_rate(learning_rate),
  )
