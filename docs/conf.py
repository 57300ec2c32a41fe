"""Sphinx configuration: ``python -m sphinx -W -b html docs docs/_build/html``.

Before the build reads a page, three things are generated (and ignored by git): the API
reference from ``__all__`` (``docs/api``, see ``_ext/apigen.py``), the lab's figures
(``docs/_generated/figures``) and copies of the notebooks (``docs/notebooks``), which myst-nb
executes, so the rendered gallery shows this checkout's outputs.
"""

import pathlib
import shutil
import subprocess
import sys

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT))

import apigen  # noqa: E402

import jaxopt_notes  # noqa: E402

project = "jaxopt_notes"
author = "the jaxopt_notes authors"
copyright = "the jaxopt_notes authors"
release = version = jaxopt_notes.__version__

extensions = [
  "sphinx.ext.autodoc",
  "sphinx.ext.autosummary",
  "sphinx.ext.napoleon",
  "sphinx.ext.mathjax",
  "myst_nb",
]
templates_path = ["_templates"]
exclude_patterns = ["_build", "_generated", "**.ipynb_checkpoints", "README.md"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

autosummary_generate = True
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # the signatures stay readable; the docstrings say the types
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # NamedTuple fields are documented once, by :members:
add_module_names = False

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "force"
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_merge_streams = True

html_theme = "furo"
html_title = f"jaxopt_notes {release}"


def _generate():
  gaps = apigen.write_api(DOCS)
  if gaps:
    raise RuntimeError("public names with no documentation (add a docstring, or a description in "
                       "docs/_ext/apigen.py for a value): " + ", ".join(gaps))
  notebooks = DOCS / "notebooks"
  notebooks.mkdir(exist_ok=True)
  for source in sorted((ROOT / "notebooks").glob("*.ipynb")):
    shutil.copyfile(source, notebooks / source.name)
  figures = DOCS / "_generated" / "figures"
  figures.mkdir(parents=True, exist_ok=True)
  for command in (["figures"], ["lab"]):
    subprocess.run([sys.executable, "-m", "jaxopt_notes", *command, "--out", str(figures)], check=True,
                   cwd=ROOT, stdout=subprocess.DEVNULL)


_generate()
