"""Argument checks run when a transform is built, not when it is stepped.

optax checks almost none of its hyper-parameters; a ``b2=1.0`` or a negative
``eps`` there trains silently wrong. Here every check raises at construction
with the argument's name and the allowed range. Values that are traced (a jax
array inside ``jit``, or one that ``inject_hyperparams`` feeds in) cannot be
inspected and are accepted as they are.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import jax
import numpy as np

__all__ = [
    "check_bool",
    "check_callable",
    "check_dtype",
    "check_finite",
    "check_flags",
    "check_float_params",
    "check_int",
    "check_learning_rate",
    "check_non_negative",
    "check_positive",
    "check_positive_int",
    "check_real",
    "check_shape_int",
    "check_steps",
    "check_that",
    "check_unit_interval",
    "is_concrete_one",
    "is_python_number",
]


def is_python_number(value: Any) -> bool:
  """A Python int or float (not a bool, not a numpy scalar such as
  ``np.float64``, which subclasses float): what JAX turns into a weakly typed
  constant of the array's dtype, where an array or numpy scalar promotes."""
  return isinstance(value, (int, float)) and not isinstance(value, (bool, np.generic))


def is_concrete_one(value: Any) -> bool:
  """``value`` is a known (not traced) scalar equal to 1: a Python or numpy
  number, or a concrete array. XLA folds a constant step of -1 into a sign."""
  return _concrete(value) == 1.0 and not isinstance(value, bool)


def _concrete(value: Any) -> Optional[float]:
  """``value`` as a Python float, or ``None`` if it is traced or not a scalar."""
  if isinstance(value, jax.core.Tracer):
    return None
  try:
    arr = np.asarray(value)
  except Exception:  # pylint: disable=broad-except
    return None
  if arr.shape != () or not np.issubdtype(arr.dtype, np.number):
    return None
  return float(arr.real)


def _check_number(name: str, value: Any) -> Optional[float]:
  # A bool is an int to Python and a number to numpy, but never a meant one.
  if isinstance(value, (str, bytes, bool, np.bool_)) or value is None:
    raise TypeError(f"`{name}` must be a number; got {value!r}")
  v = _concrete(value)
  if v is None and not isinstance(value, jax.core.Tracer):
    arr = np.asarray(value) if not callable(value) else None
    if arr is None or arr.shape != ():
      raise TypeError(f"`{name}` must be a scalar; got {value!r}")
  return v


def check_learning_rate(value: Any, name: str = "learning_rate") -> None:
  """A finite scalar or a callable schedule ``step -> value``."""
  if callable(value):
    return
  v = _check_number(name, value)
  if v is not None and not math.isfinite(v):
    raise ValueError(
        f"`{name}` must be a finite number or a schedule (a callable "
        f"step -> value); got {value!r}"
    )


def check_unit_interval(name: str, value: Any, *, closed_right: bool = False) -> None:
  """``0 <= value < 1`` (``<= 1`` with ``closed_right``)."""
  v = _check_number(name, value)
  if v is None:
    return
  ok = 0.0 <= v <= 1.0 if closed_right else 0.0 <= v < 1.0
  if not ok:
    interval = "[0, 1]" if closed_right else "[0, 1)"
    raise ValueError(f"`{name}` must lie in {interval}; got {value!r}")


def check_non_negative(name: str, value: Any) -> None:
  """``value >= 0`` and finite."""
  v = _check_number(name, value)
  if v is not None and not (math.isfinite(v) and v >= 0.0):
    raise ValueError(f"`{name}` must be a finite number >= 0; got {value!r}")


def check_positive(name: str, value: Any) -> None:
  """``value > 0`` and finite."""
  v = _check_number(name, value)
  if v is not None and not (math.isfinite(v) and v > 0.0):
    raise ValueError(f"`{name}` must be a finite number > 0; got {value!r}")


def check_bool(name: str, value: Any) -> None:
  """A Python or numpy bool (a flag that selects code, so never traced)."""
  if not isinstance(value, (bool, np.bool_)):
    raise TypeError(f"`{name}` must be True or False; got {value!r}")


def check_flags(**flags: Any) -> None:
  """Every keyword is a bool flag: ``check_flags(nesterov=nesterov, ...)``."""
  for name, value in flags.items():
    check_bool(name, value)


def check_finite(name: str, value: Any) -> None:
  """A finite number."""
  v = _check_number(name, value)
  if v is not None and not math.isfinite(v):
    raise ValueError(f"`{name}` must be a finite number; got {value!r}")


def check_positive_int(name: str, value: Any) -> None:
  """An integer ``>= 1``."""
  v = _check_number(name, value)
  if v is None:
    return
  # A NaN or Inf has no int(); it is refused here, naming the argument.
  if not math.isfinite(v) or v != int(v) or v < 1:
    raise ValueError(f"`{name}` must be an integer >= 1; got {value!r}")


def check_callable(name: str, value: Any, what: str = "callable") -> None:
  """``value`` can be called; ``what`` says what was expected in the error."""
  if not callable(value):
    raise TypeError(f"`{name}` must be {what}; got {type(value).__name__}: {value!r}")


def check_real(name: str, value: Any, *, minimum: float = 0.0, strict: bool = False) -> float:
  """A concrete finite real ``>= minimum`` (``>`` with ``strict``), as a Python float.

  For arguments used in Python arithmetic when an object is built, so a
  traced value, an array or a callable is refused as well.
  """
  v = _check_number(name, value)
  if v is None or callable(value):
    raise TypeError(f"`{name}` must be a real number; got {value!r}")
  if not (math.isfinite(v) and (v > minimum if strict else v >= minimum)):
    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
    raise ValueError(f"`{name}` must be a finite number {bound}; got {value!r}")
  return v


def check_int(name: str, value: Any, *, minimum: int = 1, meaning: str = "") -> int:
  """An integer ``>= minimum`` (Python, numpy or a 0-d integer array), as a Python int.

  What is not an integer (a bool, a float even if whole, a string, ``None``,
  a non-scalar) raises ``TypeError``, as ``range(2.5)`` does; an integer
  below ``minimum`` raises ``ValueError``. ``meaning`` is appended to what the
  error says was expected (``" (1: stochastic)"``).
  """
  expected = f"an integer >= {minimum}{meaning}"
  if isinstance(value, (bool, np.bool_, str, bytes)) or value is None or np.ndim(value) != 0:
    raise TypeError(f"`{name}` must be {expected}; got {value!r}")
  arr = np.asarray(value)
  if not np.issubdtype(arr.dtype, np.integer):
    raise TypeError(f"`{name}` must be {expected}; got {value!r}")
  if int(arr) < minimum:
    raise ValueError(f"`{name}` must be {expected}; got {value!r}")
  return int(arr)


def check_shape_int(name: str, value: Any, sets: str, *, minimum: int = 1) -> int:
  """:func:`check_int` for an argument that sets array shapes (``sets``: which),
  so it cannot be traced: under ``inject_hyperparams`` it must be a static arg."""
  if isinstance(value, jax.core.Tracer):
    raise TypeError(
        f"`{name}` sets {sets}, so it must be concrete (name it in "
        f"inject_hyperparams' static_args); got {value!r}"
    )
  return check_int(name, value, minimum=minimum)


def check_that(name: str, value: Any, test: Callable[[np.ndarray], Any], expected: str) -> None:
  """Raises naming ``name`` unless ``test(value)`` holds everywhere; a traced value passes.

  For numbers that may be arrays or tracers (a schedule's arguments): a traced
  value has nothing to check until it runs. A non-number raises ``TypeError``,
  a failed test ``ValueError``.
  """
  if isinstance(value, jax.core.Tracer):
    return
  if isinstance(value, (bool, np.bool_)):
    raise TypeError(f"`{name}` must be {expected}; got {value!r}")
  try:
    ok = bool(np.all(test(np.asarray(value))))
  except TypeError as e:  # strings, None, objects: not a number at all
    raise TypeError(f"`{name}` must be {expected}; got {value!r}") from e
  if not ok:
    raise ValueError(f"`{name}` must be {expected}; got {value!r}")


def check_steps(name: str, value: Any, *, allow_zero: bool = False) -> None:
  """A positive (or, with ``allow_zero``, non-negative) number of steps; tracers pass."""
  if allow_zero:
    check_that(name, value, lambda v: v >= 0, "a non-negative number of steps")
  else:
    check_that(name, value, lambda v: v > 0, "a positive number of steps")


def check_dtype(name: str, value: Any) -> Any:
  """A dtype-like or ``None``; returns the canonical dtype (or ``None``)."""
  if value is None:
    return None
  try:
    return jax.dtypes.canonicalize_dtype(np.dtype(value))
  except TypeError as err:
    raise TypeError(f"`{name}` must be a dtype (e.g. jnp.bfloat16) or None; got {value!r}") from err


def check_float_params(params: Any, name: str = "params") -> None:
  """Every array leaf of ``params`` has a floating or complex dtype.

  An integer or boolean parameter cannot take a fractional step: optax
  accepts one, and ``apply_updates`` then truncates ``1 - 0.1`` to ``0``
  while its moments silently turn into floats. Run by every transform that
  keeps per-parameter state or scales per parameter, at ``init``, so frozen
  integer leaves kept out with ``masked``/``partition`` are still allowed.

  Raises:
    TypeError: naming the path and dtype of the first such leaf.
  """
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    if isinstance(leaf, (str, bytes)):
      continue  # not an array at all: check_params_tree's error is clearer
    dtype = getattr(leaf, "dtype", None)
    if dtype is None:
      try:
        dtype = np.result_type(leaf)
      except TypeError:
        continue
    if not jax.dtypes.issubdtype(dtype, np.inexact):
      where = jax.tree_util.keystr(path)
      raise TypeError(
          f"optimizers need floating (or complex) params; {name}{where} has "
          f"dtype {dtype}. Cast it (e.g. to float32), or keep it out of the "
          "optimizer with masked(..., mask) / partition({..., 'frozen': "
          "set_to_zero()}, labels)."
      )
