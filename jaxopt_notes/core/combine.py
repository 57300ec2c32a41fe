"""Combinators that build one optimizer out of several transforms."""

from __future__ import annotations

import collections

from jaxopt_notes.core import base
from jaxopt_notes.core import tree as tree_lib

__all__ = ["chain", "named_chain"]


def gradient_params(params):
  """The tree gradients are shaped like: ``params`` itself, unless its type says otherwise.

  A params container holding more than the trained weights (Lookahead's fast
  and slow copies) names the tree its gradients belong to with a
  ``__gradient_params__`` method on its class. It is looked up on the type, as
  Python looks up special methods, so a mapping or a pytree whose attribute
  access reaches its entries cannot answer by accident.
  """
  hook = getattr(type(params), "__gradient_params__", None)
  return params if hook is None else hook(params)


def check_updates_match_params(
    updates, params, name: str = "params", *, state=None, state_name: str = "state",
) -> None:
  """Raises a clear error when gradients and params disagree in structure or shape.

  The one check of the incoming updates that every update path runs: the
  combinators and wrappers, and each building block on its own. ``params``
  is compared through :func:`gradient_params`, so a container of several
  weight sets (Lookahead's) is checked against the set its gradients belong
  to. With ``params=None`` a block passes its own per-parameter state
  (``state=state.mu``, named ``state_name``) instead, so a ``(1,)`` gradient
  against a ``(3,)`` moment is refused rather than broadcast. Raises
  ``ValueError`` naming the first differing path and both shapes
  (:func:`~jaxopt_notes.core.tree.check_tree_like`).
  """
  if params is not None:
    tree_lib.check_tree_like(updates, gradient_params(params), ("updates", name))
  elif state is not None:
    tree_lib.check_tree_like(updates, state, ("updates", state_name))


def chain(*transforms: base.GradientTransformation) -> base.GradientTransformationExtraArgs:
  r"""Runs transforms one after another: the output of one feeds the next.

  .. math:: u = T_n(\dots T_2(T_1(g)))

  Every optimizer of the notes is such a pipeline: Adam is
  ``chain(scale_by_adam(), scale_by_learning_rate(lr))``. The state is a tuple
  with one entry per transform, in order, exactly as ``optax.chain`` lays it
  out, so optax and jaxopt_notes transforms can be mixed freely. Extra keyword
  arguments to ``update`` reach the transforms that accept them.

  Args:
    *transforms: ``GradientTransformation``\ s (ours or optax's).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.chain(jn.clip(1.0), jn.scale_by_learning_rate(0.1))
    >>> params = {"w": jnp.zeros(3)}
    >>> state = tx.init(params)
    >>> len(state)  # one entry per transform
    2
    >>> updates, state = tx.update({"w": jnp.array([0.5, -3.0, 2.0])}, state, params)
    >>> print(np.asarray(updates["w"]).round(4))
    [-0.05  0.1  -0.1 ]
  """
  txs = [
      base.with_extra_args_support(base.as_transform(t, f"transforms[{i}]"))
      for i, t in enumerate(transforms)
  ]

  def init_fn(params):
    tree_lib.check_params_tree(params)
    return tuple(tx.init(params) for tx in txs)

  def update_fn(updates, state, params=None, **extra_args):
    if not isinstance(state, tuple) or len(state) != len(txs):
      raise ValueError(
          f"chain of {len(txs)} transforms got a state with "
          f"{len(state) if isinstance(state, tuple) else 'no'} entries: pass "
          "the state returned by this chain's `init`."
      )
    check_updates_match_params(updates, params)
    new_state = []
    for s, tx in zip(state, txs):
      updates, s = tx.update(updates, s, params, **extra_args)
      new_state.append(s)
    return updates, tuple(new_state)

  return base.GradientTransformationExtraArgs(init_fn, update_fn)


def named_chain(
    *named: tuple[str, base.GradientTransformation],
) -> base.GradientTransformationExtraArgs:
  """Like :func:`chain`, with the state stored under a name per transform.

  ``named_chain(("clip", clip_by_global_norm(1.0)), ("adam", adam(1e-3)))``
  gives a state ``{"clip": ..., "adam": ...}`` (an ordered dict), which makes
  a state readable and lets a user find one transform's moments by name.
  Same layout as ``optax.named_chain``.

  Raises:
    ValueError: when two transforms share a name.

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import jaxopt_notes as jn
    >>> tx = jn.named_chain(("clip", jn.clip_by_global_norm(1.0)), ("sgd", jn.sgd(0.1)))
    >>> params = {"w": jnp.zeros(2)}
    >>> state = tx.init(params)
    >>> list(state)
    ['clip', 'sgd']
    >>> updates, state = tx.update({"w": jnp.array([3.0, 4.0])}, state, params)
    >>> print(np.asarray(updates["w"]).round(4))
    [-0.06 -0.08]
  """
  pairs = []
  for i, item in enumerate(named):
    if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
      raise TypeError(
          f"named_chain takes (name, transform) pairs; argument {i} is {item!r}"
      )
    pairs.append((item[0], base.with_extra_args_support(base.as_transform(item[1], item[0]))))
  names = [name for name, _ in pairs]
  if len(set(names)) != len(names):
    dupes = sorted({n for n in names if names.count(n) > 1})
    raise ValueError(f"named_chain needs unique names; repeated: {dupes}")

  def init_fn(params):
    tree_lib.check_params_tree(params)
    return collections.OrderedDict((name, tx.init(params)) for name, tx in pairs)

  def update_fn(updates, state, params=None, **extra_args):
    check_updates_match_params(updates, params)
    missing = [name for name in names if name not in state]
    if missing:
      raise ValueError(f"named_chain state lacks entries {missing}; pass the state from its `init`.")
    new_state = collections.OrderedDict()
    for name, tx in pairs:
      updates, new_state[name] = tx.update(updates, state[name], params, **extra_args)
    return updates, new_state

  return base.GradientTransformationExtraArgs(init_fn, update_fn)


