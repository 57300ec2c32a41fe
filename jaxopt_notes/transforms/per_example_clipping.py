"""Per-example clipping: bound each example's gradient, then sum the batch.

The clipping step of differentially private SGD. Unlike
:func:`clip_by_global_norm`, which shortens the batch's summed gradient, these
take gradients with a leading batch axis (one slice per example, e.g. from
``jax.vmap(jax.grad(loss))``) and clip every slice before summing, so no single
example can move the parameters by more than the bound: the sensitivity that
the privacy noise is calibrated to.

* :func:`per_example_global_norm_clip` one bound on each example's whole gradient;
* :func:`per_example_layer_norm_clip`  a bound per leaf (layer) and example.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.core import validation

__all__ = ["per_example_global_norm_clip", "per_example_layer_norm_clip"]


def _check_batched(grads: Any) -> None:
  """Every leaf has a leading batch axis, of one common size; the error names `grads`."""
  leaves = jax.tree_util.tree_leaves_with_path(grads)
  if not leaves:
    raise ValueError("`grads` must hold at least one array with a leading batch axis; got no leaves")
  shapes = [(jax.tree_util.keystr(path), jnp.shape(leaf)) for path, leaf in leaves]
  batch = shapes[0][1][0] if shapes[0][1] else None
  for where, shape in shapes:
    if not shape or shape[0] != batch:
      raise ValueError(
          "`grads` must have a leading batch axis (one slice per example) of the same "
          f"size in every leaf: grads{where} has shape {shape}, the first leaf's batch "
          f"size is {batch}. Per-example gradients come from jax.vmap(jax.grad(loss))."
      )


def _check_clip(name: str, value: Any) -> None:
  # inf is allowed (no clipping), NaN and negative bounds are not.
  validation.check_that(name, value, lambda v: v >= 0, "a number >= 0 (inf: no clipping)")


def _clip_and_sum(grads: Any, bound: jax.typing.ArrayLike) -> tuple[Any, jax.Array]:
  norms = jax.vmap(tree_lib.global_norm)(grads)
  # 0 / 0 (a zero gradient with a zero bound) needs no clipping: factor 1.
  factors = jnp.nan_to_num(jnp.minimum(bound / norms, 1.0), nan=1.0)
  clipped = jnp.sum(factors < 1.0)
  return jax.tree.map(lambda g: jnp.tensordot(factors, g, axes=1), grads), clipped


def per_example_global_norm_clip(
    grads: Any, l2_norm_clip: jax.typing.ArrayLike
) -> tuple[Any, jax.Array]:
  r"""Clips each example's gradient to L2 norm ``C`` (over all leaves), then sums them.

  .. math::
     \tilde g = \sum_{b=1}^{B} g_b \min\!\left(1, \frac{C}{\lVert g_b \rVert_2}\right)

  The clipping of DP-SGD (Abadi et al., 2016, "Deep Learning with
  Differential Privacy", arXiv:1607.00133): note 002's norm clipping applied
  per example rather than per batch, so that every example's influence on
  the SGD step (notes 000) is bounded by ``C``. Divide by ``B`` for a mean
  and add Gaussian noise for privacy. Not a transform: a function of a
  batch of gradients. Same as ``optax.per_example_global_norm_clip``.

  Args:
    grads: a pytree whose every leaf has a leading batch axis of size ``B``.
    l2_norm_clip: ``C >= 0``; ``inf`` clips nothing.

  Returns:
    ``(summed, num_clipped)``: the sum of the clipped per-example gradients
    (shaped like one example) and how many examples were shortened.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> grads = {"w": jnp.array([[0.0, 0.0], [3.0, 4.0], [0.6, 0.8]])}
    >>> summed, n = jn.per_example_global_norm_clip(grads, 1.0)
    >>> summed["w"], n
    (Array([1.2, 1.6], dtype=float32), Array(1, dtype=int32))
  """
  _check_clip("l2_norm_clip", l2_norm_clip)
  _check_batched(grads)
  return _clip_and_sum(grads, l2_norm_clip)


def per_example_layer_norm_clip(
    grads: Any, global_l2_norm_clip: jax.typing.ArrayLike, uniform: bool = True
) -> tuple[Any, Any]:
  r"""Clips each leaf of each example separately, then sums over the batch.

  .. math::
     \tilde g^{(k)} = \sum_{b=1}^{B} g^{(k)}_b
        \min\!\left(1, \frac{C_k}{\lVert g^{(k)}_b \rVert_2}\right), \qquad
     C_k = \begin{cases} C / \sqrt{K} & \text{uniform} \\
                         C \sqrt{D_k / D} & \text{otherwise}\end{cases}

  for ``K`` leaves (layers) of ``D_k`` parameters each (``D`` in all). Since
  :math:`\sum_k C_k^2 = C^2`, each example's whole gradient still has norm at
  most ``C``, as with :func:`per_example_global_norm_clip` (to which it
  reduces for a single leaf). Per-layer clipping of McMahan et al., 2018,
  "Learning Differentially Private Recurrent Language Models" (ICLR,
  arXiv:1710.06963); note 002's clipping per layer and per example. Same as
  ``optax.per_example_layer_norm_clip``.

  Args:
    grads: a pytree whose every leaf has a leading batch axis of size ``B``.
    global_l2_norm_clip: ``C >= 0``; ``inf`` clips nothing.
    uniform: split ``C`` evenly over the leaves (default) or by their sizes.

  Returns:
    ``(summed, num_clipped)``, both shaped like ``grads``' tree: per leaf,
    the summed clipped gradient and how many examples it shortened.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> grads = {"a": jnp.array([[3.0, 4.0]]), "b": jnp.array([[0.5]]),
    ...          "c": jnp.array([[0.0]]), "d": jnp.array([[-2.0]])}
    >>> summed, n = jn.per_example_layer_norm_clip(grads, 2.0)  # 2 / sqrt(4) = 1 per leaf
    >>> summed["a"], summed["b"], summed["d"]
    (Array([0.6, 0.8], dtype=float32), Array([0.5], dtype=float32), Array([-1.], dtype=float32))
    >>> [int(n[k]) for k in "abcd"]
    [1, 0, 0, 1]
  """
  _check_clip("global_l2_norm_clip", global_l2_norm_clip)
  validation.check_flags(uniform=uniform)
  _check_batched(grads)
  if uniform:
    layers = len(jax.tree.leaves(grads))
    bounds = jax.tree.map(lambda _: global_l2_norm_clip * (1.0 / layers) ** 0.5, grads)
  else:
    total = jax.tree.reduce(lambda acc, g: acc + g[0].size, grads, 0)
    bounds = jax.tree.map(lambda g: global_l2_norm_clip * (g[0].size / total) ** 0.5, grads)
  per_leaf = jax.tree.map(_clip_and_sum, grads, bounds)
  return jax.tree.transpose(jax.tree.structure(grads), jax.tree.structure((0, 0)), per_leaf)
