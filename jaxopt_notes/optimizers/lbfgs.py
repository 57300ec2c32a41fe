"""L-BFGS: a quasi-Newton direction and a line search (notes 002's second-order family)."""

from __future__ import annotations

from typing import Optional

from jaxopt_notes.core import base, combine
from jaxopt_notes.optimizers._common import LR, descent_step
from jaxopt_notes.transforms import lbfgs as lbfgs_lib
from jaxopt_notes.transforms import linesearch_zoom, scaling

__all__ = ["lbfgs"]

# optax's default: strong Wolfe, 20 evaluations, first trial step 1 (suited to quasi-Newton directions).
_ZOOM_20 = linesearch_zoom.scale_by_zoom_linesearch(max_linesearch_steps=20, initial_guess_strategy="one")


def lbfgs(
    learning_rate: Optional[LR] = None,
    memory_size: int = 10,
    scale_init_precond: bool = True,
    linesearch: Optional[base.GradientTransformation] = _ZOOM_20,
) -> base.GradientTransformationExtraArgs:
  r"""L-BFGS: step along minus the inverse-Hessian estimate times the gradient.

  .. math:: w_{k+1} = w_k - \eta_k\, P_k \nabla f(w_k)

  with ``P_k`` L-BFGS's estimate of ``H^{-1}`` from the last ``memory_size``
  pairs of parameter and gradient differences (:func:`scale_by_lbfgs`;
  Liu & Nocedal, Math. Programming 1989; Nocedal & Wright, *Numerical
  Optimization*, 1999, algorithm 7.5) and ``eta_k`` chosen by the line
  search, by default :func:`scale_by_zoom_linesearch` (strong Wolfe, 20
  evaluations, first trial step 1). Notes 002 introduce Newton's method for
  ill-conditioned losses; L-BFGS gets its curvature from gradients alone,
  at ``O(m n)`` memory. Best on small to medium deterministic problems.

  Chain: :func:`scale_by_lbfgs`, then ``scale(-1)`` when ``learning_rate``
  is ``None`` (the default: the line search picks the step, and the chain
  still descends) or ``scale_by_learning_rate(learning_rate)``, then the
  line search (``linesearch=None``: none). With a line search ``update``
  needs ``value=``, ``grad=`` and ``value_fn=`` (see
  :func:`value_and_grad_from_state` to reuse its evaluations). Same as
  ``optax.lbfgs``, including ``learning_rate=None``.

  Args:
    learning_rate: ``None`` (default) or a fixed factor or schedule applied
      before the line search.
    memory_size: pairs kept, ``>= 1`` (default 10).
    scale_init_precond: scale the initial estimate by
      ``<dg, dw> / ||dg||^2`` (default ``True``).
    linesearch: a transform choosing the step (default: the zoom search
      above), or ``None``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> fn = lambda w: jnp.sum((w - jnp.array([1.0, -2.0])) ** 2 * jnp.array([1.0, 100.0]))
    >>> tx = jn.lbfgs()
    >>> params = jnp.zeros(2)
    >>> state = tx.init(params)
    >>> value_and_grad = jn.value_and_grad_from_state(fn)
    >>> for _ in range(5):
    ...   value, grad = value_and_grad(params, state=state)
    ...   updates, state = tx.update(grad, state, params, value=value, grad=grad, value_fn=fn)
    ...   params = jn.apply_updates(params, updates)
    >>> print(jnp.round(params, 4))
    [ 1. -2.]
  """
  if learning_rate is None:
    step = scaling.scale(-1.0)
  else:
    step = descent_step(learning_rate)
  search = base.identity() if linesearch is None else base.as_transform(linesearch, "linesearch")
  return combine.chain(
      lbfgs_lib.scale_by_lbfgs(memory_size=memory_size, scale_init_precond=scale_init_precond),
      step,
      search,
  )
