"""Lookahead: a slow copy of the weights pulled towards a fast optimizer."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, validation

__all__ = ["LookaheadParams", "LookaheadState", "lookahead"]


class LookaheadState(NamedTuple):
  """State of :func:`lookahead`."""

  fast_state: base.OptState
  steps_since_sync: jax.Array  # int32 scalar in [0, sync_period)


class LookaheadParams(NamedTuple):
  """The two weight sets of Lookahead: ``fast`` (trained) and ``slow``.

  Same fields as ``optax.LookaheadParams``; Zhang et al., "Lookahead
  Optimizer: k steps forward, 1 step back", NeurIPS 2019.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> params = jn.LookaheadParams.init_synced({"w": jnp.ones(2)})
    >>> [float(x) for x in params.slow["w"]], params.slow["w"] is params.fast["w"]  # equal, not shared
    ([1.0, 1.0], False)
  """

  fast: base.Params
  slow: base.Params

  @classmethod
  def init_synced(cls, params: base.Params) -> "LookaheadParams":
    """Both copies start equal to ``params``.

    ``slow`` is a copy, not the same buffers: a jitted step that donates its
    params would otherwise donate one buffer twice (optax shares them).
    """
    return cls(fast=params, slow=jax.tree.map(jnp.copy, params))

  def __gradient_params__(self) -> base.Params:
    """Gradients are taken at the fast weights: what ``chain`` checks them against."""
    return self.fast


def lookahead(
    fast_optimizer: base.GradientTransformation,
    sync_period: int,
    slow_step_size: jax.typing.ArrayLike,
    reset_state: bool = False,
) -> base.GradientTransformation:
  r"""Lookahead (Zhang et al., 2019) around any fast optimizer.

  The fast weights take ``k = sync_period`` steps of ``fast_optimizer``; then
  the slow weights move a fraction ``alpha`` of the way towards them and the
  fast weights restart from there:

  .. math::
     \phi \leftarrow \phi + \alpha\,(\theta_k - \phi), \qquad \theta \leftarrow \phi

  One of the notes' "composed from small transforms" building blocks (design
  card). ``params`` must be :class:`LookaheadParams`; gradients are taken at
  ``params.fast``. The returned updates are a ``LookaheadParams`` to apply
  with :func:`apply_updates`. Same state layout and numbers as
  ``optax.lookahead``; where optax resets the fast state by multiplying with
  ``1 - sync`` (so a NaN in it survives the reset), we select, and where
  optax moves the slow weights by ``alpha * sync * gap`` on every step (so a
  NaN gradient on a step between syncs turns them NaN at once), we select
  too: between syncs they get an exact zero update.

  Args:
    fast_optimizer: the inner optimizer.
    sync_period: ``k >= 1`` fast steps per synchronisation.
    slow_step_size: ``alpha`` in ``[0, 1]``.
    reset_state: re-initialise the fast optimizer's state at each sync
      (default ``False``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> tx = jn.lookahead(jn.sgd(0.1), sync_period=2, slow_step_size=0.5)
    >>> params = jn.LookaheadParams.init_synced({"w": jnp.zeros(1)})
    >>> state, path = tx.init(params), []
    >>> for _ in range(2):
    ...   updates, state = tx.update({"w": jnp.ones(1)}, state, params)
    ...   params = jn.apply_updates(params, updates)
    ...   path.append((round(float(params.fast["w"][0]), 4), round(float(params.slow["w"][0]), 4)))
    >>> path  # (fast, slow): the sync moves slow halfway to -0.2, and fast restarts there
    [(-0.1, 0.0), (-0.1, -0.1)]
  """
  fast_optimizer = base.as_transform(fast_optimizer, "fast_optimizer")
  validation.check_positive_int("sync_period", sync_period)
  validation.check_unit_interval("slow_step_size", slow_step_size, closed_right=True)
  validation.check_flags(reset_state=reset_state)
  every_step_syncs = validation.is_concrete_one(sync_period)

  def init_fn(params):
    fast = params.fast if isinstance(params, LookaheadParams) else params
    return LookaheadState(
        fast_state=fast_optimizer.init(fast),
        steps_since_sync=jnp.zeros([], jnp.int32),
    )

  def update_fn(updates, state, params=None):
    if not isinstance(params, LookaheadParams):
      raise TypeError(
          "lookahead's update needs `params` as LookaheadParams(fast=..., slow=...) "
          f"(see LookaheadParams.init_synced); got {type(params).__name__}"
      )
    updates, fast_state = fast_optimizer.update(updates, state.fast_state, params.fast)
    sync = state.steps_since_sync == (sync_period - 1)
    gap = jax.tree.map(lambda f, u, s: f + u - s, params.fast, updates, params.slow)
    # A select around optax's product: off a sync step the slow weights get an
    # exact zero, so a NaN or Inf gradient there (0 * NaN is NaN) cannot reach
    # them before the next sync; on a sync step optax's very arithmetic. As
    # MultiSteps guards its accumulator. The fast side keeps optax's form (its
    # weights take the NaN anyway). With sync_period 1 every step syncs, so
    # there is nothing to guard, and the select (which XLA fuses differently,
    # ~1 ulp under jit) is left out.
    if every_step_syncs:
      slow_updates = jax.tree.map(lambda d: slow_step_size * sync * d, gap)
    else:
      slow_updates = jax.tree.map(
          lambda d: jnp.where(sync, slow_step_size * sync * d, jnp.zeros_like(d)), gap
      )
    fast_updates = jax.tree.map(
        lambda u, d: u - sync * (1 - slow_step_size) * d, updates, gap
    )
    if reset_state:
      fresh = fast_optimizer.init(params.fast)
      fast_state = jax.tree.map(lambda cur, new: jnp.where(sync, new, cur), fast_state, fresh)
    steps = (state.steps_since_sync + 1) % sync_period
    return LookaheadParams(fast=fast_updates, slow=slow_updates), LookaheadState(fast_state, steps)

  return base.GradientTransformation(init_fn, update_fn)
