"""Differentially private SGD: clip every example's gradient, sum, add noise.

Both transforms take *per-example* gradients (a leading batch axis on every
leaf, e.g. ``jax.vmap(jax.grad(loss), in_axes=(None, 0))``) and return one
aggregated update shaped like the params, so they must come first in a
chain. Gradient accumulation (``MultiSteps``, ``apply_every``) would average
noised sums and break the privacy accounting.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.transforms import moments, scaling
from jaxopt_notes.transforms.per_example_clipping import per_example_global_norm_clip

__all__ = ["DifferentiallyPrivateAggregateState", "differentially_private_aggregate", "dpsgd"]


class DifferentiallyPrivateAggregateState(NamedTuple):
  """State of :func:`differentially_private_aggregate`."""

  rng_key: jax.Array  # typed PRNG key; split once per update into the next key and the leaves' noise keys


def _canonical_key(key: Any) -> jax.Array:
  if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    return key
  if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
    return jax.random.key(key)
  # A raw uint32 key (jax.random.PRNGKey) wraps to the same stream; optax refuses one.
  if isinstance(key, (jax.Array,)) and key.dtype == jnp.uint32 and key.shape == (2,):
    return jax.random.wrap_key_data(key)
  raise TypeError(
      "`key` must be an int seed or a jax.random.key (or a raw jax.random.PRNGKey); "
      f"got {type(key).__name__}: {key!r}"
  )


def _check_clip_and_noise(l2_norm_clip: Any, noise_multiplier: Any) -> None:
  validation.check_that("l2_norm_clip", l2_norm_clip, lambda v: v >= 0, "a number >= 0 (inf: no clipping)")
  validation.check_non_negative("noise_multiplier", noise_multiplier)


def differentially_private_aggregate(
    l2_norm_clip: jax.typing.ArrayLike,
    noise_multiplier: jax.typing.ArrayLike,
    key: Union[jax.Array, int, None] = None,
    *,
    seed: Optional[int] = None,
) -> base.GradientTransformation:
  r"""DP-SGD's aggregation: clip each example to norm ``C``, sum, add Gaussian noise, average.

  .. math::
     \bar g = \frac{1}{B}\Big(\sum_{b=1}^{B} g_b
        \min\!\big(1, \tfrac{C}{\lVert g_b \rVert_2}\big)
        + \mathcal N(0, \sigma^2 C^2 I)\Big)

  with :math:`\lVert g_b \rVert_2` the norm of example ``b``'s whole gradient
  (all leaves), :math:`C` = ``l2_norm_clip`` and :math:`\sigma` =
  ``noise_multiplier``. Abadi et al., "Deep Learning with Differential
  Privacy", CCS 2016 (arXiv:1607.00133). ``update`` takes per-example
  gradients, every leaf with a leading batch axis of size ``B`` (a
  ``ValueError`` otherwise), and returns updates shaped like one example;
  ``params`` is ignored. Each update splits the stored key into the next key
  and one key per leaf (in ``jax.tree.leaves`` order) and draws the leaf's
  noise in its dtype, so the noise equals optax's draw for draw.

  Same as ``optax.contrib.differentially_private_aggregate`` of optax 0.2.8:
  state and numbers bitwise (``tests/contrib/test_privacy.py``). Deliberate
  differences: ``l2_norm_clip`` and ``noise_multiplier`` are checked when it
  is built, and a raw ``jax.random.PRNGKey`` is accepted (wrapped, the same
  stream). As in optax, ``key=None`` warns and uses ``jax.random.key(0)``,
  and ``seed=`` (deprecated) warns.

  Args:
    l2_norm_clip: :math:`C \ge 0`, the bound on each example's L2 norm
      (``inf``: no clipping).
    noise_multiplier: :math:`\sigma \ge 0`, the noise's standard deviation
      over ``C``.
    key: an int seed or a ``jax.random.key`` (default ``None``: key 0, with
      a warning).
    seed: deprecated spelling of an int ``key``; not both.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from jaxopt_notes.contrib import differentially_private_aggregate
    >>> tx = differentially_private_aggregate(l2_norm_clip=1.0, noise_multiplier=0.0, key=0)
    >>> per_example = {"w": jnp.array([[3.0, 4.0], [0.3, 0.4]])}  # batch of 2
    >>> state = tx.init({"w": jnp.zeros(2)})
    >>> u, state = tx.update(per_example, state)
    >>> print([round(float(v), 4) for v in u["w"]])  # (clipped [0.6, 0.8] + [0.3, 0.4]) / 2
    [0.45, 0.6]
  """
  if seed is not None:
    warnings.warn('"seed" is deprecated, use "key".', DeprecationWarning, stacklevel=2)
    if key is not None:
      raise ValueError("Only one of `seed` or `key` can be given; got both")
    key = jax.random.key(seed)
  if key is None:
    warnings.warn("No `key` given to differentially_private_aggregate: using jax.random.key(0).", stacklevel=2)
    key = jax.random.key(0)
  key = _canonical_key(key)
  _check_clip_and_noise(l2_norm_clip, noise_multiplier)
  noise_std = l2_norm_clip * noise_multiplier

  def init_fn(params):
    del params
    return DifferentiallyPrivateAggregateState(rng_key=key)

  def update_fn(updates, state, params=None):
    del params
    leaves, treedef = jax.tree.flatten(updates)
    summed, _ = per_example_global_norm_clip(leaves, l2_norm_clip)
    batch = leaves[0].shape[0]
    new_key, *leaf_keys = jax.random.split(state.rng_key, len(leaves) + 1)
    noised = [
        (g + noise_std * jax.random.normal(k, g.shape, g.dtype)) / batch
        for g, k in zip(summed, leaf_keys)
    ]
    return jax.tree.unflatten(treedef, noised), DifferentiallyPrivateAggregateState(rng_key=new_key)

  return base.GradientTransformation(init_fn, update_fn)


def dpsgd(
    learning_rate: base.ScalarOrSchedule,
    l2_norm_clip: jax.typing.ArrayLike,
    noise_multiplier: jax.typing.ArrayLike,
    seed: int,
    momentum: Optional[jax.typing.ArrayLike] = None,
    nesterov: bool = False,
) -> base.GradientTransformationExtraArgs:
  r"""DP-SGD: the private aggregate of per-example gradients, optional momentum, then the step.

  .. math::
     \bar g_t = \frac{1}{B}\Big(\sum_{b} g_{t,b}
        \min\!\big(1, \tfrac{C}{\lVert g_{t,b} \rVert_2}\big)
        + \mathcal N(0, \sigma^2 C^2 I)\Big), \quad
     v_t = \mu v_{t-1} + \bar g_t, \quad
     x_{t+1} = x_t - \eta_t v_t

  (without momentum :math:`v_t = \bar g_t`; with Nesterov the step is
  :math:`\bar g_t + \mu v_t`). Abadi et al., "Deep Learning with
  Differential Privacy", CCS 2016 (arXiv:1607.00133). ``update`` takes
  per-example gradients (a leading batch axis on every leaf); see
  :func:`differentially_private_aggregate`. Chain: the aggregate (keyed by
  ``jax.random.key(seed)``), :func:`trace` or an identity,
  :func:`scale_by_learning_rate`.

  Same as ``optax.contrib.dpsgd`` of optax 0.2.8: state and numbers bitwise
  (``tests/contrib/test_privacy.py``). Deliberate differences: the arguments
  are checked when it is built, and no deprecation warning is raised (optax
  passes ``seed`` on to the aggregate's deprecated ``seed=``).

  Args:
    learning_rate: :math:`\eta_t`, a number or a schedule.
    l2_norm_clip: :math:`C \ge 0`, the bound on each example's L2 norm.
    noise_multiplier: :math:`\sigma \ge 0`, noise standard deviation over ``C``.
    seed: int seed of the noise's PRNG key.
    momentum: :math:`\mu \in [0, 1]`, or ``None`` (default) for no momentum.
    nesterov: Nesterov momentum (default ``False``).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> from jaxopt_notes.contrib import dpsgd
    >>> data = jnp.array([[1.0], [2.0], [3.0], [4.0]])
    >>> loss = lambda w, x: jnp.sum((w - x) ** 2)
    >>> per_example_grads = jax.vmap(jax.grad(loss), in_axes=(None, 0))
    >>> tx = dpsgd(0.1, l2_norm_clip=10.0, noise_multiplier=0.01, seed=0, momentum=0.5)
    >>> w = jnp.zeros(1)
    >>> state = tx.init(w)
    >>> for _ in range(30):
    ...   u, state = tx.update(per_example_grads(w, data), state)
    ...   w = jn.apply_updates(w, u)
    >>> print(round(float(w[0]), 1))  # the mean, 2.5
    2.5
  """
  validation.check_learning_rate(learning_rate)
  _check_clip_and_noise(l2_norm_clip, noise_multiplier)
  if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
    raise TypeError(f"`seed` must be an int; got {seed!r}")
  validation.check_bool("nesterov", nesterov)
  if momentum is not None:
    validation.check_unit_interval("momentum", momentum, closed_right=True)
  aggregate = differentially_private_aggregate(l2_norm_clip, noise_multiplier, key=jax.random.key(seed))
  rest = combine.chain(
      base.identity() if momentum is None else moments.trace(decay=momentum, nesterov=nesterov),
      scaling.scale_by_learning_rate(learning_rate),
  )

  # The chain's state layout (aggregate, momentum or identity, step), but
  # chain's check that the updates are shaped like the params can only hold
  # after the aggregate has removed the batch axis.
  def init_fn(params):
    return (aggregate.init(params), *rest.init(params))

  def update_fn(updates, state, params=None, **extra_args):
    updates, agg_state = aggregate.update(updates, state[0], params)
    updates, rest_state = rest.update(updates, tuple(state[1:]), params, **extra_args)
    return updates, (agg_state, *rest_state)

  return base.GradientTransformationExtraArgs(init_fn, update_fn)
