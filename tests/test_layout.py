"""The package's layers import downward only, and no module outgrows a reader.

Each subpackage of ``jaxopt_notes`` is a layer; a module may import its own
layer and the layers listed before it in ``LAYERS``, never one after. The
top-level ``__init__`` (the flat public namespace) and ``__main__`` stand
outside the layers and may import anything.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

import jaxopt_notes

PACKAGE = pathlib.Path(jaxopt_notes.__file__).resolve().parent

# Lowest first. The teaching lab may use everything; core uses nothing of ours.
LAYERS = (
    "core", "transforms", "schedules", "kernels", "wrappers", "optimizers",
    "parallel", "training", "contrib", "torch_compat", "flax", "lab",
)
MAX_LINES = 600


def _module_name(root: pathlib.Path, path: pathlib.Path) -> str:
  parts = path.relative_to(root.parent).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(module: str, path: pathlib.Path, is_package: bool):
  """Every module ``path`` imports, absolute, with the line it is on."""
  tree = ast.parse(path.read_text(), filename=str(path))
  here = module.split(".") if is_package else module.split(".")[:-1]
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield alias.name, node.lineno
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        base = here[: len(here) - node.level + 1]
        name = ".".join(base + ([node.module] if node.module else []))
      else:
        name = node.module or ""
      yield name, node.lineno
      # `from pkg import submodule` imports the submodule too.
      for alias in node.names:
        yield f"{name}.{alias.name}", node.lineno


def layer_violations(root: pathlib.Path, layers=LAYERS) -> list[str]:
  """``"importer:line imports target"`` for each import that runs upward."""
  package = root.name
  rank = {name: i for i, name in enumerate(layers)}
  found = []
  for path in sorted(root.rglob("*.py")):
    module = _module_name(root, path)
    parts = module.split(".")
    if len(parts) < 2 or parts[1] not in rank:
      continue  # the top-level __init__ / __main__: the public face, outside the layers
    own = rank[parts[1]]
    for target, line in _imports(module, path, path.name == "__init__.py"):
      bits = target.split(".")
      if bits[0] != package or len(bits) < 2:
        continue
      if bits[1] not in rank:
        if (root / bits[1]).with_suffix(".py").exists() or (root / bits[1]).is_dir():
          found.append(f"{module}:{line} imports {target}, which is in no layer")
        continue
      if rank[bits[1]] > own:
        found.append(f"{module}:{line} imports {target} (layer {bits[1]} is above {parts[1]})")
  return sorted(set(found))


def test_every_subpackage_is_a_layer():
  subpackages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
  assert subpackages == sorted(LAYERS)
  loose = sorted(p.name for p in PACKAGE.glob("*.py"))
  assert loose == ["__init__.py", "__main__.py"]


def test_layers_import_downward_only():
  assert layer_violations(PACKAGE) == []


def test_checker_catches_an_upward_import(tmp_path):
  root = tmp_path / "pkg"
  for layer in ("core", "optimizers", "lab"):
    (root / layer).mkdir(parents=True)
    (root / layer / "__init__.py").write_text("")
  (root / "__init__.py").write_text("from pkg.lab import x\n")  # the façade: allowed
  (root / "core" / "base.py").write_text("from pkg.optimizers import adam\n")
  (root / "core" / "tree.py").write_text("from . import base\nfrom ..lab import plots\n")
  (root / "optimizers" / "adam.py").write_text("from pkg.core import base\nimport pkg.core.tree\n")
  (root / "lab" / "x.py").write_text("from pkg import optimizers, core\n")
  found = layer_violations(root, layers=("core", "optimizers", "lab"))
  assert found == [
      "pkg.core.base:1 imports pkg.optimizers (layer optimizers is above core)",
      "pkg.core.base:1 imports pkg.optimizers.adam (layer optimizers is above core)",
      "pkg.core.tree:2 imports pkg.lab (layer lab is above core)",
      "pkg.core.tree:2 imports pkg.lab.plots (layer lab is above core)",
  ]


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_module_over_the_limit(path):
  assert len(path.read_text().splitlines()) <= MAX_LINES


REPOSITORY = PACKAGE.parent
_OUTSIDE = ("SEEDS" + ".md", "../" + "shared")  # split so that this file does not match itself
_SKIP = {".git", "build", "dist", "_build", "_generated", "api", "__pycache__", ".venv", "venv"}


def _repository_text_files():
  for path in REPOSITORY.rglob("*"):
    relative = path.relative_to(REPOSITORY)
    parts = set(relative.parts)
    if relative.parts[:2] == ("docs", "notebooks"):  # the docs build's copies of notebooks/
      continue
    if path.is_file() and not parts & _SKIP and not any(p.endswith(".egg-info") for p in parts) \
        and path.suffix in {".py", ".md", ".ipynb", ".toml", ".cfg", ".txt", ".in", ".cc", ".h", ""}:
      yield path


def test_nothing_points_outside_the_repository():
  """The notes are told in docs/notes; no file sends a reader to the notes' source outside the repository."""
  files = list(_repository_text_files())
  assert any(p.name == "README.md" for p in files) and len(files) > 100
  hits = [f"{p.relative_to(REPOSITORY)}: {needle}" for p in files
          for needle in _OUTSIDE if needle in p.read_text(errors="replace")]
  assert not hits, hits
