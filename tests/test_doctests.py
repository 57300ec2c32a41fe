"""Every ``Examples`` section in the package's docstrings runs as written (doctest)."""

import doctest
import enum
import importlib
import inspect
import pkgutil

import pytest

import jaxopt_notes

# Python modules only: the compiled kernel has no docstrings to run.
MODULES = sorted(
    info.name for info in pkgutil.walk_packages(jaxopt_notes.__path__, "jaxopt_notes.")
    if not info.name.endswith("__main__")
    and str(getattr(info.module_finder.find_spec(info.name), "origin", "")).endswith(".py")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
  """The module's doctests pass (modules without examples have nothing to fail)."""
  module = importlib.import_module(name)
  result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
  assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_the_package_carries_examples():
  """The docstrings hold at least 100 examples, so the test above is not vacuous."""
  counts = {}
  for name in MODULES:
    module = importlib.import_module(name)
    counts[name] = sum(len(t.examples) for t in doctest.DocTestFinder().find(module))
  assert sum(counts.values()) >= 100, counts


def _needs_example(obj):
  """Functions and our own classes do; state NamedTuples, errors, enums and protocols don't."""
  if inspect.isclass(obj):
    if issubclass(obj, (tuple, BaseException, enum.Enum)) or getattr(obj, "_is_protocol", False):
      return False
    return obj.__module__.startswith("jaxopt_notes")
  return callable(obj) and getattr(obj, "__module__", "") != "typing"


def _public_callables():
  import jaxopt_notes.flax
  from jaxopt_notes import torch_compat

  for namespace in (jaxopt_notes, torch_compat, jaxopt_notes.flax, jaxopt_notes.contrib):
    for name in namespace.__all__:
      obj = getattr(namespace, name)
      if not inspect.ismodule(obj) and _needs_example(obj):
        yield f"{namespace.__name__}.{name}", obj


def test_every_public_function_has_a_running_example():
  """Every public optimizer, transform, wrapper, schedule and helper carries an ``Examples`` doctest.

  The doctests themselves run above (per module); this makes sure none is missing, so a new
  public name without an example fails here.
  """
  missing = []
  for path, obj in _public_callables():
    tests = doctest.DocTestFinder().find(obj, obj.__name__)
    if not any(t.examples for t in tests if t.name.split(".")[-1] == obj.__name__):
      missing.append(path)
    elif "Example" not in (inspect.getdoc(obj) or ""):
      missing.append(f"{path} (examples outside an Examples section)")
  assert not missing, missing
  assert len(list(_public_callables())) >= 200
