"""The documentation site's API reference covers every public name (what the Sphinx build checks, fast)."""

import importlib.util
import inspect
import pathlib
import re

import jaxopt_notes
from jaxopt_notes import torch_compat

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


def _apigen():
  spec = importlib.util.spec_from_file_location("apigen", DOCS / "_ext" / "apigen.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_every_public_name_has_an_api_entry(tmp_path):
  """The generated pages list every name of ``__all__`` (flat and torch_compat), and none is undocumented."""
  gaps = _apigen().write_api(tmp_path)
  assert gaps == []
  pages = {p.stem: p.read_text() for p in (tmp_path / "api").glob("*.rst")}
  flat_pages = "\n".join(text for stem, text in pages.items() if stem in {layer for layer, _, _ in _apigen().LAYERS})
  for namespace, text in ((jaxopt_notes, flat_pages), (torch_compat, pages["torch_compat"])):
    entries = set(re.findall(r"^   (\w+)$", text, re.M))  # autosummary rows
    entries |= set(re.findall(r"^\.\. py:data:: (\w+)$", text, re.M))
    entries |= set(re.findall(r"^- :obj:`(\w+) <", text, re.M))  # names shared with the top level
    for name in namespace.__all__:
      if not inspect.ismodule(getattr(namespace, name)):
        assert name in entries, f"{namespace.__name__}.{name} has no API entry"


def test_a_public_name_without_a_docstring_is_caught(tmp_path, monkeypatch):
  """The check is real: a new undocumented public function is reported by name."""

  def undocumented_helper():
    pass

  monkeypatch.setattr(jaxopt_notes, "undocumented_helper", undocumented_helper, raising=False)
  monkeypatch.setattr(jaxopt_notes, "__all__", [*jaxopt_notes.__all__, "undocumented_helper"])
  assert _apigen().write_api(tmp_path) == ["jaxopt_notes.undocumented_helper"]
