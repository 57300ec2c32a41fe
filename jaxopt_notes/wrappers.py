"""Wrappers that change when, or on what layout, an inner transform runs.

* :func:`apply_if_finite` skips steps whose gradient holds a NaN or an Inf,
  the guard a long run needs against the "cliffs and exploding gradients"
  and "inexact gradients" of note 002 (SEEDS.md);
* :func:`flatten` runs the inner transform on one concatenated vector.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes import base
from jaxopt_notes import combine
from jaxopt_notes import fused
from jaxopt_notes import tree as tree_lib
from jaxopt_notes import validation

__all__ = ["ApplyIfFiniteState", "apply_if_finite", "flatten"]


def _all_finite(tree: Any) -> jax.Array:
  """A bool scalar: no leaf of ``tree`` holds a NaN or an Inf."""
  flags = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
  return jnp.all(jnp.stack(flags)) if flags else jnp.array(True)


def select_tree(pred: jax.Array, on_true: Any, on_false: Any) -> Any:
  """``on_true`` where the scalar ``pred`` holds, else ``on_false``, leaf by leaf.

  Leaves keep ``on_false``'s dtype (the state being carried). Shared by the
  wrappers here and :class:`~jaxopt_notes.accumulation.MultiSteps`.
  """
  # A select, unlike `pred * t + (1 - pred) * f`, returns `on_false` bit for
  # bit even when `on_true` holds NaN or Inf (0 * NaN is NaN).
  return tree_lib.tree_map_checked(
      lambda t, f: jnp.where(pred, t, f).astype(jnp.asarray(f).dtype),
      on_true, on_false, names=("selected tree", "kept tree"),
  )


class ApplyIfFiniteState(NamedTuple):
  """State of :func:`apply_if_finite`.

  Attributes:
    notfinite_count: consecutive steps with a non-finite gradient so far
      (reset to 0 by a finite one).
    last_finite: whether the last gradient was finite.
    total_notfinite: non-finite steps since ``init`` (never reset).
    inner_state: the wrapped transform's state.
  """

  notfinite_count: jax.Array  # int32 scalar
  last_finite: jax.Array  # bool scalar
  total_notfinite: jax.Array  # int32 scalar
  inner_state: base.OptState


def apply_if_finite(
    inner: base.GradientTransformation,
    max_consecutive_errors: int,
) -> base.GradientTransformationExtraArgs:
  r"""Skips a step whose gradient holds a NaN or an Inf, up to a limit.

  With :math:`n_t` the number of consecutive non-finite gradients up to and
  including step ``t``:

  .. math::
     (u_t, s_t) = \begin{cases} T(g_t, s_{t-1}) & g_t \text{ finite or } n_t > N \\
                                (0,\ s_{t-1}) & \text{otherwise}\end{cases}

  A skipped step returns zero updates and leaves the inner state exactly as
  it was; it is counted in ``notfinite_count`` and ``total_notfinite``. After
  more than ``N = max_consecutive_errors`` bad steps in a row the wrapper
  gives up and applies them, as optax does (a run that only produces NaNs
  should fail visibly). This is the step-skipping of dynamic loss scaling in
  mixed-precision training (Micikevicius et al., 2018, "Mixed Precision
  Training"), and a guard against note 002's exploding gradients.

  Same state layout and numbers as ``optax.apply_if_finite`` (up to float32
  rounding). optax branches with ``lax.cond``; here the inner update always
  runs and its results are chosen with selects (``jnp.where``), never with a
  multiplication by a mask, so a NaN never leaks into a kept value. XLA
  fuses the two forms differently, so results may differ from optax's in the
  last bit.

  Args:
    inner: the transform to protect.
    max_consecutive_errors: ``N >= 0``, how many non-finite steps in a row to
      skip before applying them.
  """
  inner = base.with_extra_args_support(base.as_transform(inner, "inner"))
  if isinstance(max_consecutive_errors, bool) or not isinstance(
      max_consecutive_errors, (numbers.Integral, np.integer)
  ):
    raise TypeError(
        "`max_consecutive_errors` must be an integer >= 0; got "
        f"{type(max_consecutive_errors).__name__}: {max_consecutive_errors!r}"
    )
  validation.check_non_negative("max_consecutive_errors", max_consecutive_errors)
  limit = int(max_consecutive_errors)

  def init_fn(params):
    return ApplyIfFiniteState(
        notfinite_count=jnp.zeros([], jnp.int32),
        last_finite=jnp.array(True, jnp.bool_),
        total_notfinite=jnp.zeros([], jnp.int32),
        inner_state=inner.init(params),
    )

  def update_fn(updates, state, params=None, **extra_args):
    finite = _all_finite(updates)
    notfinite_count = jnp.where(
        finite, jnp.zeros([], jnp.int32), tree_lib.safe_increment(state.notfinite_count)
    )
    total_notfinite = jnp.where(
        finite, state.total_notfinite, tree_lib.safe_increment(state.total_notfinite)
    )
    accept = jnp.logical_or(finite, notfinite_count > limit)
    new_updates, new_inner = inner.update(updates, state.inner_state, params, **extra_args)
    out = select_tree(accept, new_updates, jax.tree.map(jnp.zeros_like, new_updates))
    return out, ApplyIfFiniteState(
        notfinite_count=notfinite_count,
        last_finite=finite,
        total_notfinite=total_notfinite,
        inner_state=select_tree(accept, new_inner, state.inner_state),
    )

  return base.GradientTransformationExtraArgs(init_fn, update_fn)


def _concat_leaves(tree: Any) -> jax.Array:
  leaves = jax.tree.leaves(tree)
  if not leaves:
    return jnp.zeros([0])
  return jnp.concatenate([jnp.reshape(x, [-1]) for x in leaves])


def _split_like(template: Any, flat: jax.Array) -> Any:
  """Cuts ``flat`` into pieces shaped like the leaves of ``template``."""
  leaves, treedef = jax.tree.flatten(template)
  sizes = [int(np.size(x)) for x in leaves]
  cuts = np.cumsum(sizes)[:-1].tolist()
  pieces = jnp.split(flat, cuts) if leaves else []
  return jax.tree.unflatten(
      treedef, [jnp.reshape(p, np.shape(x)) for p, x in zip(pieces, leaves)]
  )


def flatten(inner: base.GradientTransformation) -> base.GradientTransformationExtraArgs:
  r"""Runs ``inner`` on all leaves concatenated into one vector.

  .. math:: u = \operatorname{unvec}\big(T(\operatorname{vec}(g))\big)

  ``vec`` ravels every leaf (in pytree order) and concatenates them, so a
  model with hundreds of small arrays costs the inner transform a few vector
  operations per step instead of a few per array (the design card's "jit-
  compiled for GPU/TPU": fewer, larger kernels), for one extra copy of the
  gradient. Transforms that act per coordinate or on the global norm give
  the same numbers as unflattened; one that looks at array shapes or
  per-array norms sees a single long vector instead. Mixed dtypes are
  promoted by the concatenation, and the updates come back promoted.

  Same state layout (the inner state of one vector) and numbers as
  ``optax.flatten``; an empty params tree gives an empty float32 vector where
  optax raises. Reference: optax documentation, "flatten".

  With :func:`~jaxopt_notes.apply_step`, an ``inner`` that has a fused kernel
  (plain sgd, adam, adamw, rmsprop, adagrad, adadelta) steps per-leaf params
  with its flat state in one pass, with no concatenation at all: a jitted
  step then passes a few state buffers instead of one per leaf, which is
  what makes many small leaves fast (optax has no such path).

  Args:
    inner: the transform to run on the flat vector.
  """
  inner = base.as_transform(inner, "inner")
  rule = fused.rule_of(inner)
  inner = base.with_extra_args_support(inner)

  def init_fn(params):
    # The concatenation would promote an integer leaf to float and hide it.
    validation.check_float_params(params)
    return inner.init(_concat_leaves(params))

  def update_fn(updates, state, params=None, **extra_args):
    # Once concatenated, a mismatch could only be reported as vector lengths.
    combine.check_updates_match_params(updates, params)
    flat_params = None if params is None else _concat_leaves(params)
    flat_updates, state = inner.update(
        _concat_leaves(updates), state, flat_params, **extra_args
    )
    return _split_like(updates, flat_updates), state

  tx = base.GradientTransformationExtraArgs(init_fn, update_fn)
  return tx if rule is None else fused.attach(tx, rule._replace(flat_state=True))
