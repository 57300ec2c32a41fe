r"""Newton's method for small problems: a step through the exact Hessian.

Note 002 explains why gradient descent crawls on ill-conditioned
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

Three curvature probes of ``optax.second_order`` sit beside it (this module
is also the namespace :mod:`jaxopt_notes.second_order`): :func:`hvp`, the
product ``H v`` without forming ``H``; :func:`hessian_diag`, the diagonal of
``H``; and :func:`fisher_diag`, the squared gradient (the diagonal of the
observed Fisher information, the quantity AdaGrad and RMSProp accumulate).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.transforms import scaling

__all__ = ["fisher_diag", "hessian_diag", "hvp", "newton", "scale_by_newton"]

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

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> loss = lambda p: 0.5 * (p["w"][0] ** 2 + 100.0 * p["w"][1] ** 2)  # H = diag(1, 100)
    >>> params = {"w": jnp.array([1.0, 1.0])}
    >>> tx = jn.scale_by_newton(damping=1.0)
    >>> updates, _ = tx.update(jax.grad(loss)(params), tx.init(params), params, value_fn=loss)
    >>> [round(float(x), 4) for x in updates["w"]]  # g / (h + 1) per direction
    [0.5, 0.9901]
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

  Note 002: on an ill-conditioned loss gradient descent's step is
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

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> loss = lambda p: 0.5 * (p["w"][0] ** 2 + 100.0 * p["w"][1] ** 2)  # condition number 100
    >>> params = {"w": jnp.array([1.0, 1.0])}
    >>> tx = jn.newton()
    >>> updates, _ = tx.update(jax.grad(loss)(params), tx.init(params), params, value_fn=loss)
    >>> [float(x) for x in jn.apply_updates(params, updates)["w"]]  # a quadratic's minimum in one step
    [0.0, 0.0]
  """
  return combine.chain(
      scale_by_newton(damping=damping, max_params=max_params),
      scaling.scale_by_learning_rate(learning_rate),
  )


def _loss_at(loss: Callable[..., jax.Array], inputs: Any, targets: Any) -> Callable[[Any], jax.Array]:
  validation.check_callable("loss", loss, "a function loss(params, inputs, targets) -> scalar")
  return lambda p: loss(p, inputs, targets)


def hvp(loss: Callable[..., jax.Array], v: jax.Array, params: Any, inputs: Any, targets: Any) -> Any:
  r"""The Hessian-vector product :math:`H v`, without forming :math:`H`.

  .. math:: H v = \frac{d}{d\epsilon} \nabla_w L(w + \epsilon v)\Big|_{\epsilon = 0}

  a forward-mode derivative of the gradient: one extra gradient's cost
  (Pearlmutter, "Fast exact multiplication by the Hessian", Neural
  Computation 1994). The curvature along ``v`` that notes 002's step bound
  ``eps < 2 g'g / g'Hg`` reads, and the building block of Newton-type
  methods (notes 002) too large for :func:`newton`'s dense Hessian. ``v`` is
  a flat vector (``ravel_pytree`` order of ``params``); the result is shaped
  like ``params``. Same as ``optax.second_order.hvp`` (which warns that it
  is deprecated; this one does not).

  Args:
    loss: ``loss(params, inputs, targets) -> scalar``.
    v: the direction, of size ``ravel_pytree(params)[0].size``.
    params: where the Hessian is taken.
    inputs: the loss's inputs.
    targets: the loss's targets.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> loss = lambda p, x, y: jnp.sum((x * p["w"] - y) ** 2)  # H = 2 diag(x^2)
    >>> jn.hvp(loss, jnp.array([1.0, 1.0]), {"w": jnp.ones(2)}, jnp.array([1.0, 3.0]), jnp.zeros(2))
    {'w': Array([ 2., 18.], dtype=float32)}
  """
  at = _loss_at(loss, inputs, targets)
  _, unravel = ravel_pytree(params)
  return jax.jvp(jax.grad(at), [params], [unravel(v)])[1]


def hessian_diag(loss: Callable[..., jax.Array], params: Any, inputs: Any, targets: Any) -> jax.Array:
  r"""The Hessian's diagonal :math:`(H_{11}, \dots, H_{nn})`, as ``e_i^T H e_i`` for each unit vector.

  Exact, at the cost of ``n`` Hessian-vector products (:func:`hvp`, run
  under ``vmap``), so for small models: the per-coordinate curvature a
  diagonal Newton step (notes 002) divides by. Flat, in ``ravel_pytree``
  order. Becker & LeCun, "Improving the convergence of back-propagation
  learning with second order methods", 1988 (the diagonal approximation).
  Same as ``optax.second_order.hessian_diag``.

  Args:
    loss: ``loss(params, inputs, targets) -> scalar``.
    params: where the Hessian is taken.
    inputs: the loss's inputs.
    targets: the loss's targets.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> loss = lambda p, x, y: jnp.sum((x * p["w"] - y) ** 2)
    >>> jn.hessian_diag(loss, {"w": jnp.ones(2)}, jnp.array([1.0, 3.0]), jnp.zeros(2))
    Array([ 2., 18.], dtype=float32)
  """
  _loss_at(loss, inputs, targets)
  units = jnp.eye(ravel_pytree(params)[0].size)
  along = lambda v: jnp.vdot(v, ravel_pytree(hvp(loss, v, params, inputs, targets))[0])
  return jax.vmap(along)(units)


def fisher_diag(
    negative_log_likelihood: Callable[..., jax.Array], params: Any, inputs: Any, targets: Any
) -> jax.Array:
  r"""The observed Fisher information's diagonal, the squared gradient :math:`(\nabla_w (-\log p))^2`.

  .. math:: F_{ii} = \big(\partial_{w_i} \ell(w; x, y)\big)^2

  for one batch's negative log-likelihood :math:`\ell`: the square that
  AdaGrad sums and RMSProp/Adam average (notes 000/003/004), here for the
  whole batch's gradient rather than per example. Amari, "Natural gradient
  works efficiently in learning", Neural Computation 1998; Kunstner et al.,
  "Limitations of the empirical Fisher approximation", NeurIPS 2019. Flat,
  in ``ravel_pytree`` order. Same as ``optax.second_order.fisher_diag``.

  Args:
    negative_log_likelihood: ``nll(params, inputs, targets) -> scalar``.
    params: where the gradient is taken.
    inputs: the inputs.
    targets: the targets.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> nll = lambda p, x, y: jnp.sum((x * p["w"] - y) ** 2)
    >>> jn.fisher_diag(nll, {"w": jnp.ones(2)}, jnp.array([1.0, 3.0]), jnp.zeros(2))
    Array([  4., 324.], dtype=float32)
  """
  validation.check_callable("negative_log_likelihood", negative_log_likelihood,
                            "a function nll(params, inputs, targets) -> scalar")
  return jnp.square(ravel_pytree(jax.grad(negative_log_likelihood)(params, inputs, targets))[0])
