"""Distance over Gradients (DoG) and its weighted variant DoWG.

Both are SGD whose step is a ratio of two running quantities: how far the
iterates have moved from the start (the largest distance seen so far) over
the accumulated gradient norms. Neither needs a learning rate; the optional
``learning_rate`` multiplies the step (a schedule around 1).
"""

from __future__ import annotations

from typing import Any, Callable, Literal, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.transforms import scaling

__all__ = ["DoGState", "DoWGState", "dog", "dowg"]

_INIT_STEP_TAGS = ("distance", "learning_rate", "heuristic")
InitStep = tuple[Literal["distance", "learning_rate", "heuristic"], jax.typing.ArrayLike]


class DoGState(NamedTuple):
  """State of :func:`dog`'s scaling (the middle entry of its chain state)."""

  is_init_step: jax.Array  # bool scalar: True until the first update
  init_params: base.Params  # x_0, the params given to init
  max_dist: jax.Array  # r_bar: the largest ||x_t - x_0|| so far (from r_eps), scalar
  sum_sq_norm_grads: jax.Array  # G: the sum of ||g_t||^2, scalar


class DoWGState(NamedTuple):
  """State of :func:`dowg`'s scaling (the middle entry of its chain state)."""

  init_params: base.Params  # x_0, the params given to init
  weighted_sq_norm_grads: jax.Array  # v: the sum of r_bar_t^2 ||g_t||^2, scalar
  estim_sq_dist: jax.Array  # r_bar^2: the largest ||x_t - x_0||^2 so far, scalar


def _decay_then(weight_decay: Any, mask: Any, scaling_tx: base.GradientTransformation, learning_rate: Any):
  # optax keeps an identity in the first slot without decay, so the chain
  # state has the same three entries either way.
  decay = base.identity() if weight_decay is None else scaling.add_decayed_weights(weight_decay, mask)
  return combine.chain(decay, scaling_tx, scaling.scale_by_learning_rate(learning_rate))


def _needs_params(updates: Any, params: Any) -> None:
  if params is None:
    raise ValueError(base.NO_PARAMS_MSG)
  combine.check_updates_match_params(updates, params)


def _check_init_step(init_step: Any) -> tuple[str, Any]:
  if not isinstance(init_step, (tuple, list)) or len(init_step) != 2:
    raise ValueError(
        "`init_step` must be a pair (tag, value) with tag one of "
        f"{_INIT_STEP_TAGS}; got {init_step!r}"
    )
  tag, value = init_step
  if tag not in _INIT_STEP_TAGS:
    raise ValueError(f"`init_step`'s tag must be one of {_INIT_STEP_TAGS}; got {tag!r}")
  # A zero start (r_eps or the first step) makes every step zero: x never moves.
  validation.check_positive("init_step[1]", value)
  return tag, value


def _scale_by_dog(init_step: InitStep, eps: jax.typing.ArrayLike) -> base.GradientTransformation:
  """DoG's step ``r_bar / sqrt(G + eps)`` times the updates (see :func:`dog`)."""
  tag, value = init_step

  def init_fn(params):
    validation.check_float_params(params)
    dtype = tree_lib.dtype(params, "lowest")
    if tag == "distance":
      r_eps = value
    elif tag == "heuristic":
      r_eps = value * (1 + tree_lib.norm(params))
    else:
      r_eps = 0.0
    return DoGState(
        is_init_step=jnp.asarray(True),
        init_params=params,
        max_dist=jnp.asarray(r_eps, dtype=dtype),
        sum_sq_norm_grads=jnp.asarray(0.0, dtype=dtype),
    )

  def update_fn(updates, state, params=None):
    _needs_params(updates, params)
    max_dist = jnp.maximum(state.max_dist, tree_lib.norm(tree_lib.sub(state.init_params, params)))
    sum_sq = state.sum_sq_norm_grads + tree_lib.norm(updates, squared=True)
    step = max_dist / jnp.sqrt(sum_sq + eps)
    if tag == "learning_rate":
      step = jnp.where(state.is_init_step, value, step)
    return tree_lib.scale(step, updates), DoGState(
        is_init_step=jnp.asarray(False),
        init_params=state.init_params,
        max_dist=max_dist,
        sum_sq_norm_grads=sum_sq,
    )

  return base.GradientTransformation(init_fn, update_fn)


def dog(
    learning_rate: base.ScalarOrSchedule = 1.0,
    init_step: InitStep = ("heuristic", 1e-6),
    eps: jax.typing.ArrayLike = 1e-8,
    weight_decay: Optional[jax.typing.ArrayLike] = None,
    mask: Optional[Union[Any, Callable[[base.Params], Any]]] = None,
) -> base.GradientTransformationExtraArgs:
  r"""DoG: SGD with step "largest distance from the start over root of summed squared gradients".

  .. math::
     \bar r_t = \max\big(r_\epsilon, \max_{k \le t} \|x_k - x_0\|\big), \quad
     G_t = \sum_{k \le t} \|g_k\|^2, \quad
     x_{t+1} = x_t - \eta_t \frac{\bar r_t}{\sqrt{G_t + \epsilon}}\, g_t

  with :math:`g_t` the gradient plus ``weight_decay * x_t`` when a decay is
  given. Ivgi, Hinder & Carmon, "DoG is SGD's Best Friend: A Parameter-Free
  Dynamic Step Size Schedule", ICML 2023 (arXiv:2302.12022). ``init_step``
  sets the first step: ``("distance", r)`` gives :math:`r_\epsilon = r`,
  ``("heuristic", a)`` gives :math:`r_\epsilon = a (1 + \|x_0\|)` (the
  default, ``a = 1e-6``; the paper suggests 1e-4 with batch norm), and
  ``("learning_rate", e)`` takes a first step of size ``e`` and
  :math:`r_\epsilon = 0`. ``init`` must get the real params (for
  ``heuristic``); ``update`` needs ``params``. The authors recommend
  averaging the iterates. Chain: the decay (or an identity), the DoG
  scaling, :func:`scale_by_learning_rate`. Same as ``optax.contrib.dog``
  (state layout, dtypes and numbers); unlike optax, ``init_step`` and the
  other arguments are checked when it is built (optax checks the tag at
  ``init``).

  Args:
    learning_rate: :math:`\eta_t`, a number or a schedule (default 1.0).
    init_step: ``(tag, value)``, tag one of ``"distance"``,
      ``"learning_rate"``, ``"heuristic"``, value ``> 0`` (default
      ``("heuristic", 1e-6)``).
    eps: :math:`\epsilon \ge 0`, added to :math:`G_t` (default 1e-8).
    weight_decay: L2 rate added to the gradient, or ``None`` (default).
    mask: which leaves to decay (a pytree of booleans or a function of the
      params); ``None``: all.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> from jaxopt_notes.contrib import dog
    >>> f = lambda x: jnp.sum(x ** 2)
    >>> tx = dog(init_step=("distance", 0.1))
    >>> x = jnp.array([1.0, 2.0, 3.0])
    >>> state = tx.init(x)
    >>> for _ in range(20):
    ...   u, state = tx.update(jax.grad(f)(x), state, x)
    ...   x = jn.apply_updates(x, u)
    >>> print(round(float(f(x)), 4))  # from 14
    0.0026
  """
  validation.check_learning_rate(learning_rate)
  init_step = _check_init_step(init_step)  # type: ignore[assignment]
  validation.check_non_negative("eps", eps)
  return _decay_then(weight_decay, mask, _scale_by_dog(init_step, eps), learning_rate)


def _scale_by_dowg(
    init_estim_sq_dist: Optional[jax.typing.ArrayLike], eps: jax.typing.ArrayLike
) -> base.GradientTransformation:
  """DoWG's step ``r_bar^2 / (sqrt(v) + eps)`` times the updates (see :func:`dowg`)."""
  start = eps if init_estim_sq_dist is None else init_estim_sq_dist

  def init_fn(params):
    validation.check_float_params(params)
    dtype = tree_lib.dtype(params, "lowest")
    return DoWGState(
        init_params=params,
        weighted_sq_norm_grads=jnp.asarray(0.0, dtype=dtype),
        estim_sq_dist=jnp.asarray(start, dtype=dtype),
    )

  def update_fn(updates, state, params=None):
    _needs_params(updates, params)
    moved = tree_lib.norm(tree_lib.sub(state.init_params, params), squared=True)
    sq_dist = jnp.maximum(state.estim_sq_dist, moved)
    weighted = sq_dist * tree_lib.norm(updates, squared=True) + state.weighted_sq_norm_grads
    step = sq_dist / (jnp.sqrt(weighted) + eps)
    return tree_lib.scale(step, updates), state._replace(
        estim_sq_dist=sq_dist, weighted_sq_norm_grads=weighted
    )

  return base.GradientTransformation(init_fn, update_fn)


def dowg(
    learning_rate: base.ScalarOrSchedule = 1.0,
    init_estim_sq_dist: Optional[jax.typing.ArrayLike] = None,
    eps: jax.typing.ArrayLike = 1e-4,
    weight_decay: Optional[jax.typing.ArrayLike] = None,
    mask: Optional[Union[Any, Callable[[base.Params], Any]]] = None,
) -> base.GradientTransformationExtraArgs:
  r"""DoWG: DoG with the gradient norms weighted by the squared distance so far.

  .. math::
     \bar r_t^2 = \max\big(\bar r_{t-1}^2, \|x_t - x_0\|^2\big), \quad
     v_t = v_{t-1} + \bar r_t^2 \|g_t\|^2, \quad
     x_{t+1} = x_t - \eta_t \frac{\bar r_t^2}{\sqrt{v_t} + \epsilon}\, g_t

  with :math:`\bar r_0^2` = ``init_estim_sq_dist`` (``None``: ``eps``) and
  :math:`g_t` plus ``weight_decay * x_t`` when a decay is given. Khaled,
  Mishchenko & Jin, "DoWG Unleashed: An Efficient Universal Parameter-Free
  Gradient Descent Method", NeurIPS 2023 (arXiv:2305.16284). ``update``
  needs ``params``. Chain: the decay (or an identity), the DoWG scaling,
  :func:`scale_by_learning_rate`. Same as ``optax.contrib.dowg`` (state
  layout, dtypes and numbers); unlike optax, the arguments are checked when
  it is built.

  Args:
    learning_rate: :math:`\eta_t`, a number or a schedule (default 1.0).
    init_estim_sq_dist: :math:`\bar r_0^2 > 0`, the first guess of the
      squared distance to a solution; ``None`` (default): ``eps``.
    eps: :math:`\epsilon`, added to the root (default 1e-4); ``> 0`` when it
      is also the first guess, else ``>= 0``.
    weight_decay: L2 rate added to the gradient, or ``None`` (default).
    mask: which leaves to decay (a pytree of booleans or a function of the
      params); ``None``: all.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> from jaxopt_notes.contrib import dowg
    >>> f = lambda x: jnp.sum(x ** 2)
    >>> tx = dowg()
    >>> x = jnp.array([1.0, 2.0, 3.0])
    >>> state = tx.init(x)
    >>> for _ in range(20):
    ...   u, state = tx.update(jax.grad(f)(x), state, x)
    ...   x = jn.apply_updates(x, u)
    >>> print(round(float(f(x)), 4))  # from 14
    0.0097
  """
  validation.check_learning_rate(learning_rate)
  if init_estim_sq_dist is None:
    validation.check_positive("eps", eps)
  else:
    # A zero first guess gives a zero first step, so x never leaves x_0.
    validation.check_positive("init_estim_sq_dist", init_estim_sq_dist)
    validation.check_non_negative("eps", eps)
  return _decay_then(weight_decay, mask, _scale_by_dowg(init_estim_sq_dist, eps), learning_rate)
