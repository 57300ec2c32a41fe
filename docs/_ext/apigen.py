"""Writes the API reference from the package's ``__all__`` lists, and fails the build on a gap.

Every public name gets an entry: the flat namespace grouped by the layer that defines it, then
one page per public submodule. A name without a docstring (or, for a type alias or a constant,
without a description below) stops the build, so the reference cannot fall behind the code.
"""

import importlib
import inspect
import pathlib

# The flat namespace, grouped by the layer (package folder) that defines each name.
LAYERS = (
  ("optimizers", "Optimizers", "Ready-made optimizers: each a ``chain`` of the transforms below."),
  ("transforms", "Transforms", "The building blocks optimizers are composed from."),
  ("wrappers", "Wrappers", "Transforms that wrap others: schedules in the state, accumulation, masks, groups."),
  ("schedules", "Schedules", "Learning-rate (and other hyper-parameter) schedules: ``step -> value``."),
  ("training", "Training helpers", "fit, minibatches, gradient check, Newton, plateaus, checkpoints."),
  ("parallel", "Many devices", "Placing optimizer state on a mesh."),
  ("kernels", "Fused steps", "The single-pass update kernels and ``apply_step``."),
  ("core", "Protocol, composition and tree helpers", "The optax protocol, ``chain``, and pytree arithmetic."),
)

# Public submodules: each gets a page of its own.
SUBMODULES = (
  ("jaxopt_notes.tree", "Tree arithmetic with every name of ``optax.tree``."),
  ("jaxopt_notes.projections", "Euclidean projections onto convex sets."),
  ("jaxopt_notes.second_order", "Hessian-vector products and curvature diagonals."),
  ("jaxopt_notes.microbatching", "Running a function over a batch in microbatches inside one step."),
  ("jaxopt_notes.sharding", "State placement on meshes (also exported flat)."),
  ("jaxopt_notes.torch_compat", "torch.optim's optimizers and lr schedulers, with torch's names and numbers."),
  ("jaxopt_notes.contrib", "optax.contrib's optimizers, with optax.contrib's names and numbers."),
  ("jaxopt_notes.flax", "flax nnx: an ``nnx.Optimizer`` whose update is the fused step (needs flax)."),
  ("jaxopt_notes.schedules.torch_style", "torch.optim.lr_scheduler's schedulers as schedules."),
  ("jaxopt_notes.lab", "The optimizer lab: the notes' problems, runs and series."),
  ("jaxopt_notes.lab.plots", "The lab's matplotlib figures (pyplot is never touched)."),
)

# Names that are values, not functions or classes: they carry no docstring of their own.
DESCRIBED = {
  "jaxopt_notes.Params": "Type alias (``Any``): a pytree of parameters.",
  "jaxopt_notes.Updates": "Type alias (``Any``): a pytree of updates shaped like the params.",
  "jaxopt_notes.OptState": "Type alias (``Any``): an optimizer state, a pytree (often a NamedTuple).",
  "jaxopt_notes.Schedule": ("Type alias: a function from the step count to a value, "
                            "``Callable[[ArrayLike], ArrayLike]``."),
  "jaxopt_notes.ScalarOrSchedule": "Type alias: a float, a scalar array, or a :data:`Schedule`.",
  "jaxopt_notes.lab.DEFAULT_OPTIMIZERS": ("The optimizers ``python -m jaxopt_notes`` runs, with the notes' "
                                          "learning rates."),
  "jaxopt_notes.lab.DEFAULT_NAMES": "The names of :data:`DEFAULT_OPTIMIZERS`, in the order of the printed table.",
  "jaxopt_notes.lab.OPTIMIZERS": "Every optimizer name the lab accepts, mapped to its factory.",
  "jaxopt_notes.lab.PROBLEMS": "Every problem name the lab accepts, mapped to its constructor.",
}


def _namespace(path):
  head, *rest = path.split(".")
  obj = importlib.import_module(head)
  for part in rest:
    try:
      obj = getattr(obj, part)
    except AttributeError:
      obj = importlib.import_module(f"{obj.__name__}.{part}")
  return obj


def _layer(obj):
  """The package folder that defines ``obj`` (its ``__module__``), or ``core`` for typing aliases."""
  module = getattr(obj, "__module__", None) or ""
  parts = module.split(".")
  if len(parts) >= 2 and parts[0] == "jaxopt_notes":
    return parts[1]
  return "core"


def _is_value(obj):
  if getattr(obj, "__module__", "") == "typing":
    return True
  return not (inspect.isroutine(obj) or inspect.isclass(obj) or callable(obj))


def _gaps(namespace_path, names):
  """Public names with nothing to show: no docstring, and no description here."""
  ns = _namespace(namespace_path)
  missing = []
  for name in names:
    full = f"{namespace_path}.{name}"
    obj = getattr(ns, name)
    if inspect.ismodule(obj):
      continue
    if full in DESCRIBED:
      continue
    if _is_value(obj) or not (inspect.getdoc(obj) or "").strip():
      missing.append(full)
  return missing


def _entries(namespace_path, names):
  """autosummary for callables and classes; py:data with its description for values.

  A submodule's name that is the same object as a top-level one is documented once, at the
  top level, and linked from the submodule's page.
  """
  import jaxopt_notes

  ns = _namespace(namespace_path)
  documented = [n for n in names if not inspect.ismodule(getattr(ns, n))]
  flat = []
  if namespace_path != "jaxopt_notes":
    flat = [n for n in documented if getattr(jaxopt_notes, n, None) is getattr(ns, n)]
    documented = [n for n in documented if n not in flat]
  listed = [n for n in documented if f"{namespace_path}.{n}" not in DESCRIBED]
  values = [n for n in documented if f"{namespace_path}.{n}" in DESCRIBED]
  lines = [f".. currentmodule:: {namespace_path}", ""]
  if listed:
    lines += [".. autosummary::", "   :toctree: generated", "   :nosignatures:", ""]
    lines += [f"   {n}" for n in listed] + [""]
  for n in values:
    lines += [f".. py:data:: {n}", "", f"   {DESCRIBED[f'{namespace_path}.{n}']}", ""]
  if flat:
    lines += ["Also here, documented at the top level:", ""]
    lines += [f"- :obj:`{n} <jaxopt_notes.{n}>`" for n in flat] + [""]
  return lines


def _title(text):
  return [text, "=" * len(text), ""]


def write_api(docs_dir):
  """Write ``docs/api/*.rst``; return the public names that are undocumented."""
  import jaxopt_notes

  out = pathlib.Path(docs_dir) / "api"
  out.mkdir(exist_ok=True)
  gaps = []
  by_layer = {}
  for name in jaxopt_notes.__all__:
    obj = getattr(jaxopt_notes, name)
    if inspect.ismodule(obj):
      continue
    by_layer.setdefault(_layer(obj), []).append(name)
  unknown = set(by_layer) - {layer for layer, _, _ in LAYERS}
  if unknown:
    raise RuntimeError(f"apigen: names defined in layers with no API page: {sorted(unknown)}")
  pages = []
  for layer, title, blurb in LAYERS:
    names = sorted(by_layer.get(layer, []), key=str.lower)
    gaps += _gaps("jaxopt_notes", names)
    body = _title(title) + [blurb, "", "All of these are ``jaxopt_notes.NAME`` (``import jaxopt_notes as jn``).", ""]
    (out / f"{layer}.rst").write_text("\n".join(body + _entries("jaxopt_notes", names)))
    pages.append(layer)
  for path, blurb in SUBMODULES:
    module = _namespace(path)
    names = list(module.__all__)
    gaps += _gaps(path, names)
    body = _title(f"``{path}``") + [f".. py:module:: {path}", "", blurb, ""]
    doc = inspect.getdoc(module)
    if doc and path != "jaxopt_notes.sharding":
      body += [doc.split("\n\n")[0], ""]
    slug = path.replace("jaxopt_notes.", "").replace(".", "_")
    (out / f"{slug}.rst").write_text("\n".join(body + _entries(path, names)))
    pages.append(slug)
  index = _title("API reference") + [
    "Every public name of ``jaxopt_notes`` and of its public submodules, one page each.",
    "The pages are generated from the ``__all__`` lists at build time; the build fails when a",
    "public name has no docstring.",
    "",
    ".. toctree::",
    "   :maxdepth: 1",
    "",
  ] + [f"   {p}" for p in pages] + [""]
  (out / "index.rst").write_text("\n".join(index))
  return gaps
