"""SAM (sharpness-aware minimisation) as a wrapper of two optimizers, and the
gradient normalisation its adversarial step uses.

SAM alternates ``sync_period - 1`` adversarial steps (an inner optimizer
climbing the loss from the true params) with one outer step, taken from the
true params with the gradient found at the perturbed point. The true params
are kept in the state (``cache``) between the two, or, in opaque mode, the
adversarial steps run inside one ``update`` call.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib

__all__ = ["NormalizeState", "SAMState", "normalize", "sam"]

NormalizeState = base.EmptyState


def normalize() -> base.GradientTransformation:
  r"""Divides the updates by their global norm: :math:`u = g / \|g\|_2`.

  The norm is taken over all leaves together (:func:`jaxopt_notes.tree.norm`).
  The normalised ascent direction of SAM's adversarial step: chained before
  ``sgd(rho)`` it moves the params by exactly :math:`\rho` (Foret, Kleiner,
  Mobahi & Neyshabur, "Sharpness-Aware Minimization for Efficiently
  Improving Generalization", ICLR 2021, arXiv:2010.01412). Stateless
  (:data:`NormalizeState` is ``EmptyState``). Same numbers as
  ``optax.contrib.normalize`` (bitwise, see ``tests/contrib/test_sam.py``)
  wherever :math:`\|g\| > 0`; deliberate difference: an all-zero update
  stays zero here, where optax divides 0 by 0 and returns NaN.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxopt_notes.contrib import normalize
    >>> tx = normalize()
    >>> g = {"a": jnp.array([3.0]), "b": jnp.array([-4.0])}
    >>> u, _ = tx.update(g, tx.init(g))
    >>> print(u["a"], u["b"])
    [0.6] [-0.8]
  """

  def init_fn(params):
    del params
    return NormalizeState()

  def update_fn(updates, state, params=None):
    del params
    g_norm = tree_lib.norm(updates)
    # A zero norm means every entry is zero: dividing them by 1 keeps them
    # zero rather than 0 / 0, and leaves optax's division untouched elsewhere.
    g_norm = jnp.where(g_norm > 0, g_norm, jnp.ones_like(g_norm))
    return jax.tree.map(lambda g: g / g_norm, updates), state

  return base.GradientTransformation(init_fn, update_fn)


class SAMState(NamedTuple):
  """State of :func:`sam`."""

  steps_since_sync: jax.Array  # int32 scalar: adversarial steps since the last outer step
  opt_state: base.OptState  # the outer optimizer's state
  adv_state: base.OptState  # the adversarial optimizer's state
  cache: Optional[base.Params]  # the true params of the last outer step (None in opaque mode)


def _pick(cond: jax.Array, if_true: Any, if_false: Any) -> Any:
  # Arithmetic rather than a select, as optax's: the same rounding and the
  # same promotions (a bool times an integer count stays an integer).
  return jax.tree.map(lambda t, f: cond * t + (1 - cond) * f, if_true, if_false)


def sam(
    optimizer: base.GradientTransformation,
    adv_optimizer: base.GradientTransformation,
    sync_period: int = 2,
    reset_state: bool = True,
    opaque_mode: bool = False,
    batch_axis_name: Optional[str] = None,
) -> base.GradientTransformationExtraArgs:
  r"""SAM: step from the params with the gradient found at an adversarially perturbed point.

  .. math::
     \tilde x = x_t + \rho \frac{\nabla f(x_t)}{\|\nabla f(x_t)\|}, \qquad
     x_{t+1} = x_t + \mathrm{opt}\big(\nabla f(\tilde x)\big)

  (the paper's rule with ``adv_optimizer = chain(normalize(), sgd(rho))``
  and one adversarial step). Foret, Kleiner, Mobahi & Neyshabur,
  "Sharpness-Aware Minimization for Efficiently Improving Generalization",
  ICLR 2021 (arXiv:2010.01412). In general ``sync_period - 1`` adversarial
  steps of ``adv_optimizer`` (ascending: its updates are negated) are
  followed by one step of ``optimizer`` from the cached true params with the
  last gradient; ``reset_state`` (default ``True``) re-initialises the
  adversarial state after each outer step (``False``: keeps it, without the
  last adversarial update, as optax does).

  Transparent mode (default): each ``update(grads, state, params)`` call is
  one step; adversarial calls return the move to the perturbed point, the
  outer call returns the move from there to the new true params, so
  ``apply_updates`` always gives the right point. ``params`` is required.
  Opaque mode (``opaque_mode=True``): each call runs the whole cycle and
  needs ``grad_fn=`` ``(params, i) -> grads`` (called ``sync_period - 1``
  times, ``i`` the adversarial step), for models whose side effects (batch
  statistics) must only see true steps; ``batch_axis_name`` then averages
  those gradients with ``jax.lax.pmean`` over that axis (ignored in
  transparent mode, as in optax). Defaults: ``sync_period=2``,
  ``reset_state=True``, ``opaque_mode=False``.

  Same state layout, dtypes and numbers as ``optax.contrib.sam`` (bitwise
  on the trajectory tests, jitted and op by op, float32 and float64, both
  modes, with optimizers built from this package's transforms); unlike
  optax, the arguments are checked when it is built, and a transparent
  ``update`` without ``params`` raises a ``ValueError``.

  Args:
    optimizer: the outer optimizer, an ``(init, update)`` pair.
    adv_optimizer: the adversarial optimizer (e.g. ``chain(normalize(),
      sgd(rho))``).
    sync_period: integer ``>= 1``, calls per cycle (default 2).
    reset_state: reset the adversarial state after each outer step.
    opaque_mode: run the whole cycle inside each ``update``.
    batch_axis_name: axis name for ``pmean`` in opaque mode, or ``None``.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> from jaxopt_notes.contrib import normalize, sam
    >>> f = lambda x: jnp.sum(x ** 2)
    >>> tx = sam(jn.sgd(0.1), jn.chain(normalize(), jn.sgd(0.05)))
    >>> x = jnp.array([1.0, 2.0, 3.0])
    >>> state = tx.init(x)
    >>> for _ in range(40):  # 20 adversarial and 20 outer steps
    ...   u, state = tx.update(jax.grad(f)(x), state, x)
    ...   x = jn.apply_updates(x, u)
    >>> print(f"{float(f(x)):.1e}")  # from 14, at the true params after an outer step
    4.0e-05
  """
  optimizer = base.as_transform(optimizer, "optimizer")
  adv_optimizer = base.as_transform(adv_optimizer, "adv_optimizer")
  sync_period = validation.check_int("sync_period", sync_period, minimum=1)
  validation.check_flags(reset_state=reset_state, opaque_mode=opaque_mode)
  if batch_axis_name is not None and not isinstance(batch_axis_name, str):
    raise TypeError(f"`batch_axis_name` must be None or an axis name (a str); got {batch_axis_name!r}")

  def init_fn(params):
    return SAMState(
        steps_since_sync=jnp.zeros(shape=(), dtype=jnp.int32),
        opt_state=optimizer.init(params),
        adv_state=adv_optimizer.init(params),
        cache=None if opaque_mode else params,
    )

  def transparent_update_fn(
      updates, state, params=None, *, grad_fn: Optional[Callable[[base.Params, int], base.Updates]] = None
  ):
    del grad_fn
    if params is None:
      raise ValueError(base.NO_PARAMS_MSG)
    combine.check_updates_match_params(updates, params)
    first_step = state.steps_since_sync == 0
    last_step = state.steps_since_sync == sync_period - 1

    adv_updates, adv_state = adv_optimizer.update(updates, state.adv_state, params)
    adv_updates = jax.tree.map(lambda x: -x, adv_updates)  # ascend
    opt_updates, opt_state = optimizer.update(updates, state.opt_state, state.cache)
    # From the perturbed params back to the cache, then the outer step.
    opt_updates = jax.tree.map(lambda c, p, u: c - p + u, state.cache, params, opt_updates)

    cache = _pick(first_step, params, state.cache)
    new_updates = _pick(last_step, opt_updates, adv_updates)
    if reset_state:
      adv_state = _pick(last_step, adv_optimizer.init(params), adv_state)
    else:
      adv_state = _pick(last_step, state.adv_state, adv_state)
    opt_state = _pick(last_step, opt_state, state.opt_state)
    return new_updates, SAMState(
        steps_since_sync=(state.steps_since_sync + 1) % sync_period,
        adv_state=adv_state, opt_state=opt_state, cache=cache,
    )

  def opaque_update_fn(
      updates, state, params=None, *, grad_fn: Optional[Callable[[base.Params, int], base.Updates]] = None
  ):
    if grad_fn is None:
      raise ValueError("sam with `opaque_mode=True` needs `grad_fn=` ((params, i) -> grads) in `update`; got None")
    if params is None and sync_period > 1:
      raise ValueError(base.NO_PARAMS_MSG)  # the adversarial steps start from them
    adv_params, adv_updates, adv_state = params, updates, state.adv_state
    for i in range(sync_period - 1):
      adv_updates, adv_state = adv_optimizer.update(adv_updates, adv_state, adv_params)
      adv_updates = jax.tree.map(lambda x: -x, adv_updates)
      adv_params = tree_lib.apply_updates(adv_params, adv_updates)
      adv_updates = grad_fn(adv_params, i)
      if batch_axis_name is not None:
        adv_updates = jax.lax.pmean(adv_updates, axis_name=batch_axis_name)
    if reset_state:
      adv_state = adv_optimizer.init(params)
    new_updates, opt_state = optimizer.update(adv_updates, state.opt_state, params)
    return new_updates, SAMState(
        steps_since_sync=jnp.zeros(shape=(), dtype=jnp.int32),
        adv_state=adv_state, opt_state=opt_state, cache=None,
    )

  return base.GradientTransformationExtraArgs(init_fn, opaque_update_fn if opaque_mode else transparent_update_fn)
