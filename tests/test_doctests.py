"""Every ``Examples`` section in the package's docstrings runs as written (doctest)."""

import doctest
import importlib
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
