"""A pytest plugin that puts jaxopt_notes' objects in place of optax's.

Loaded with ``-p tests.optax_suite.swap`` before optax's test files are
collected. For every public name that jaxopt_notes shares with optax (the flat
namespace, ``jaxopt_notes.tree`` against ``optax.tree``, and the namespaces
``projections``, ``microbatching``, ``second_order``, ``contrib`` where we have
them), it rebinds that name in every ``optax`` module that holds optax's
object, so optax's tests, and optax's own internals, call ours. The protocol
types (``GradientTransformation``, ``EmptyState``, ...) are ours too, where we
define them.

The names swapped are written to the file named by the environment variable
``JAXOPT_NOTES_SWAPPED`` (one ``optax_module.name`` per line), so the test that
runs this plugin can prove the swap happened.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import sys
import types

import optax

import jaxopt_notes as jn

# Our namespace -> the optax namespace whose names it mirrors.
_NAMESPACES = [
    ("", "optax"),
    ("tree", "optax.tree"),
    ("tree", "optax.tree_utils"),
    ("projections", "optax.projections"),
    ("microbatching", "optax.microbatching"),
    ("second_order", "optax.second_order"),
    ("contrib", "optax.contrib"),
    # Classes optax keeps out of its namespaces, which its tests check with isinstance.
    ("core.numerics", "optax._src.utils"),
]


def _ours(namespace: str) -> dict[str, object]:
  module = jn if not namespace else sys.modules.get(f"jaxopt_notes.{namespace}", getattr(jn, namespace, None))
  if module is None:
    return {}
  names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
  return {n: getattr(module, n) for n in names if hasattr(module, n)}


def _is_optax_object(obj: object) -> bool:
  return (inspect.isfunction(obj) or inspect.isclass(obj)) and (
      getattr(obj, "__module__", "") or "").startswith("optax")


def _import_all_optax() -> list[types.ModuleType]:
  for info in pkgutil.walk_packages(optax.__path__, "optax."):
    if info.name.endswith("_test") or ".experimental" in info.name:
      continue
    try:
      importlib.import_module(info.name)
    except Exception:  # noqa: BLE001  # an optional dependency missing: nothing of ours to swap there
      pass
  return [m for name, m in sorted(sys.modules.items()) if name.split(".")[0] == "optax" and m is not None]


def swap() -> list[str]:
  """Rebinds optax's objects to ours; returns ``module.name`` for each rebinding."""
  modules = _import_all_optax()
  # optax's object for each public name of each namespace -> ours.
  replacement: dict[int, object] = {}
  for ours_ns, theirs_ns in _NAMESPACES:
    theirs_module = sys.modules.get(theirs_ns)
    if theirs_module is None:
      continue
    for name, obj in _ours(ours_ns).items():
      theirs = getattr(theirs_module, name, None)
      if theirs is not None and _is_optax_object(theirs) and not _is_optax_object(obj):
        replacement[id(theirs)] = obj
  swapped = []
  for module in modules:
    for name, value in list(vars(module).items()):
      if id(value) in replacement and _is_optax_object(value):
        setattr(module, name, replacement[id(value)])
        swapped.append(f"{module.__name__}.{name}")
  return swapped


def pytest_configure(config):
  del config
  swapped = swap()
  out = os.environ.get("JAXOPT_NOTES_SWAPPED")
  if out:
    with open(out, "w", encoding="utf-8") as f:
      f.write("\n".join(swapped) + "\n")
