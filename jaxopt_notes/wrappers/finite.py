"""apply_if_finite: skip the steps whose gradient holds a NaN or an Inf.

The guard a long run needs against the "cliffs and exploding gradients" and
"inexact gradients" of note 002.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.core import base, validation
from jaxopt_notes.core import tree as tree_lib

__all__ = ["ApplyIfFiniteState", "apply_if_finite"]


def _all_finite(tree: Any) -> jax.Array:
  """A bool scalar: no leaf of ``tree`` holds a NaN or an Inf."""
  flags = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
  return jnp.all(jnp.stack(flags)) if flags else jnp.array(True)


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

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.apply_if_finite(jn.sgd(0.1), max_consecutive_errors=2)
    >>> params = {"w": jnp.ones(2)}
    >>> state = tx.init(params)
    >>> u1, state = tx.update({"w": jnp.array([jnp.nan, 1.0])}, state, params)  # skipped
    >>> u2, state = tx.update({"w": jnp.array([1.0, 1.0])}, state, params)
    >>> [float(x) for x in u1["w"]], [round(float(x), 4) for x in u2["w"]], int(state.total_notfinite)
    ([0.0, 0.0], [-0.1, -0.1], 1)
  """
  inner = base.with_extra_args_support(base.as_transform(inner, "inner"))
  if isinstance(max_consecutive_errors, jax.core.Tracer):
    # Injected (inject_hyperparams) or traced: an integer scalar, checked
    # for its type only, as optax compares it with the count as it is.
    if np.ndim(max_consecutive_errors) != 0 or not jnp.issubdtype(
        max_consecutive_errors.dtype, jnp.integer
    ):
      raise TypeError(
          "`max_consecutive_errors` must be an integer >= 0; got "
          f"{type(max_consecutive_errors).__name__}: {max_consecutive_errors!r}"
      )
    limit = max_consecutive_errors
  else:
    # A Python or numpy int, or a 0-d integer array (what inject_hyperparams
    # stores); a bool or a float raises TypeError, a negative ValueError.
    limit = validation.check_int("max_consecutive_errors", max_consecutive_errors, minimum=0)

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
    out = tree_lib.select_tree(accept, new_updates, jax.tree.map(jnp.zeros_like, new_updates))
    return out, ApplyIfFiniteState(
        notfinite_count=notfinite_count,
        last_finite=finite,
        total_notfinite=total_notfinite,
        inner_state=tree_lib.select_tree(accept, new_inner, state.inner_state),
    )

  return base.GradientTransformationExtraArgs(init_fn, update_fn)
