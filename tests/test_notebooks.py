"""The notebooks: stripped, Colab-ready, and every one runs without a cell error.

Each notebook is executed with nbclient in a kernel started from a kernelspec
written to a temporary folder and pointing at ``sys.executable``, so the
kernel is the interpreter running pytest (with its test extras) even in a
fresh virtual environment where no kernel was ever installed, and whatever
other ``python3`` kernels the user has. The kernel's ``PYTHONPATH`` starts
with the folder holding the ``jaxopt_notes`` that pytest imports, so the
notebooks test the same code, installed or not.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import AsyncKernelManager  # noqa: E402

import jaxopt_notes  # noqa: E402

NOTEBOOKS = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
EXPECTED = {
    "01_gradient_descent_and_gradient_check",
    "02_momentum_and_nesterov",
    "03_adagrad_rmsprop_adadelta_adam",
    "04_ema_and_bias_correction",
    "05_learning_rate_decay",
    "06_batch_size_and_gradient_noise",
    "07_ill_conditioning_saddles_newton",
    "08_compose_your_own_optimizer",
}
KERNEL = "jaxopt-notes-test"


def _read(name: str):
  return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def test_the_eight_notebooks_are_there():
  assert {p.stem for p in NOTEBOOKS.glob("*.ipynb")} == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_is_stripped_and_colab_ready(name):
  nb = _read(name)
  nbformat.validate(nb)
  code = [c for c in nb.cells if c.cell_type == "code"]
  for cell in code:
    assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]
  first = nb.cells[0]
  assert first.cell_type == "code"
  assert '"google.colab" in sys.modules' in first.source and "pip" in first.source
  # The idea and its formula in markdown, the figure drawn with jaxopt_notes.plots.
  markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
  assert markdown.startswith("# ") and "$" in markdown
  assert any("plots.show(" in c.source for c in code)


def _install_cell() -> str:
  return _read(sorted(EXPECTED)[0]).cells[0].source


def test_the_install_cell_is_the_same_everywhere_and_has_no_placeholder():
  cells = {name: _read(name).cells[0].source for name in EXPECTED}
  assert len(set(cells.values())) == 1, sorted(cells)
  cell = _install_cell()
  assert "<owner>" not in cell and "git+https" not in cell
  assert len(cell.splitlines()) <= 25


class _Pip:
  """Stands in for ``subprocess.run``: records what the cell would install."""

  def __init__(self):
    self.installed = []

  def __call__(self, argv, check):
    assert argv[:5] == [sys.executable, "-m", "pip", "install", "-q"] and check
    self.installed.append(argv[5])


@pytest.fixture
def run_cell(monkeypatch, tmp_path):
  """Runs the install cell as if ``jaxopt_notes`` were not importable, with ``/content`` in tmp_path."""
  import importlib.util
  import subprocess

  real = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *a: None if name == "jaxopt_notes" else real(name, *a))
  pip = _Pip()
  monkeypatch.setattr(subprocess, "run", pip)
  content = tmp_path / "content"
  content.mkdir()
  source = _install_cell()
  assert source.count('"/content"') == 1
  source = source.replace('"/content"', repr(str(content)))

  def run(cwd, colab=False):
    monkeypatch.chdir(cwd)
    if colab:
      monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    else:
      monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(source, "install-cell", "exec"), {})
    return pip.installed

  run.content = content
  return run


def test_the_install_cell_installs_the_checkout_it_runs_in(run_cell, tmp_path):
  checkout = tmp_path / "checkout"
  (checkout / "notebooks").mkdir(parents=True)
  (checkout / "pyproject.toml").write_text('[project]\nname = "jaxopt_notes"\n')
  assert run_cell(checkout / "notebooks") == [str(checkout)]


def test_the_install_cell_in_colab_takes_a_checkout_then_a_wheel(run_cell, tmp_path):
  content = run_cell.content
  (content / "jaxopt_notes-0.1.0-py3-none-any.whl").write_bytes(b"")
  (content / "jaxopt_notes").mkdir()
  (content / "jaxopt_notes" / "pyproject.toml").write_text('name = "jaxopt_notes"\n')
  assert run_cell(content, colab=True) == [str(content / "jaxopt_notes")]
  (content / "jaxopt_notes" / "pyproject.toml").unlink()
  assert run_cell(content, colab=True)[-1] == str(content / "jaxopt_notes-0.1.0-py3-none-any.whl")


def test_the_install_cell_says_how_to_provide_the_package(run_cell, tmp_path):
  for colab in (True, False):
    with pytest.raises(ModuleNotFoundError) as error:
      run_cell(run_cell.content, colab=colab)
    message = str(error.value)
    assert "/content/jaxopt_notes" in message and "python -m build --wheel" in message
    assert "checkout" in message
  # Outside Colab a wheel in /content is not looked for.
  (run_cell.content / "jaxopt_notes-0.1.0-py3-none-any.whl").write_bytes(b"")
  with pytest.raises(ModuleNotFoundError):
    run_cell(tmp_path)


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory) -> KernelSpecManager:
  root = tmp_path_factory.mktemp("kernels")
  spec_dir = root / KERNEL
  spec_dir.mkdir()
  package_root = str(pathlib.Path(jaxopt_notes.__file__).resolve().parent.parent)
  path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
  (spec_dir / "kernel.json").write_text(json.dumps({
      "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": f"Python ({sys.executable})",
      "language": "python",
      "env": {"PYTHONPATH": path},
  }))
  return KernelSpecManager(kernel_dirs=[str(root)])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_without_errors(name, kernel_specs, tmp_path):
  nb = _read(name)
  manager = AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=kernel_specs)
  client = nbclient.NotebookClient(
      nb, km=manager, timeout=300, resources={"metadata": {"path": str(tmp_path)}},
  )
  client.execute()  # raises CellExecutionError on the first failing cell
  outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
  assert not [o for o in outputs if o.output_type == "error"]
  # The Colab cell does nothing here; the figures come out as PNG images.
  assert nb.cells[0].outputs == []
  images = [o for o in outputs if "image/png" in o.get("data", {})]
  assert len(images) >= 2, f"{name} drew {len(images)} figures"
