"""What the line searches and L-BFGS share: the real inner product of two
pytrees, the loss's dtype, the checks of the loss arguments ``value=``,
``grad=``, ``value_fn=`` and the split of ``value_fn``'s extra inputs, and
the traced ``verbose`` prints. The tree arithmetic itself is
:mod:`jaxopt_notes.core.tree_math`'s (optax's numbers).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxopt_notes.core import tree_math

__all__ = ["cond_print", "require_loss", "split_value_fn_kwargs", "tree_real_vdot", "value_dtype"]


def tree_real_vdot(x: Any, y: Any, *, conj_y: bool = False) -> jax.Array:
  r"""``Re <x, y>`` over whole pytrees, :math:`\mathrm{Re} \sum_i \bar x_i\, y_i` (``tree_vdot``'s real part).

  ``conj_y`` conjugates ``y`` first (the backtracking search's slope does).
  """
  if conj_y:
    y = tree_math.tree_conj(y)
  return jnp.real(tree_math.tree_vdot(x, y))


def value_dtype(params: Any, owner: str) -> Any:
  """The real dtype of the loss for ``params``: that of the first leaf (its real part)."""
  leaves = jax.tree.leaves(params)
  if not leaves:
    raise ValueError(f"{owner} needs params with at least one array leaf; got {params!r}")
  return jnp.real(jnp.empty((), jnp.asarray(leaves[0]).dtype)).dtype


def require_loss(owner: str, value: Any, grad: Any, value_fn: Any) -> None:
  """Raises ``TypeError`` naming whichever of ``value``, ``grad``, ``value_fn`` is missing."""
  missing = [name for name, arg in (("value", value), ("grad", grad), ("value_fn", value_fn)) if arg is None]
  if missing:
    raise TypeError(
        f"`{owner}.update` needs the loss: pass {', '.join(f'`{m}=`' for m in missing)} as in "
        "`update(updates, state, params, value=loss, grad=grads, value_fn=loss_fn)` "
        "(chain forwards them; fit passes them)."
    )
  if not callable(value_fn):
    raise TypeError(f"`value_fn` of `{owner}.update` must be the loss function; got {value_fn!r}")


def split_value_fn_kwargs(value_fn: Callable[..., Any], extra_args: dict, owner: str) -> dict:
  """The extra keyword arguments that ``value_fn`` names; any other one raises.

  Raises:
    TypeError: naming the arguments ``value_fn`` does not take (a typo in a
      batch argument would otherwise be dropped and the loss evaluated on
      the wrong data).
  """
  names = set(inspect.signature(value_fn).parameters)
  unused = sorted(k for k in extra_args if k not in names)
  if unused:
    raise TypeError(
        f"Unexpected keyword arguments passed to `{owner}.update`: {unused} are not "
        "parameters of `value_fn`. Pass only the extra inputs `value_fn` takes "
        "(e.g. `update(..., value_fn=loss, batch=batch)` for `loss(params, batch)`)."
    )
  return {k: v for k, v in extra_args.items() if k in names}


def cond_print(condition: Any, message: str, **values: Any) -> None:
  """``jax.debug.print(message)`` when the traced ``condition`` holds."""
  jax.lax.cond(
      condition,
      lambda: jax.debug.print(message, **values, ordered=True),
      lambda: None,
  )
