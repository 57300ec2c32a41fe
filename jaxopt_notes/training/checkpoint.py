"""Saving and restoring a run (params plus optimizer state) with orbax.

A long run must survive a restart: the design card's "jit-compiled
experiments on accelerators" are preempted, and a resumed run should go on
exactly where it stopped. Two calls do it::

    save_checkpoint(ckpt_dir, step, params, opt_state)
    params, opt_state, step = restore_checkpoint(ckpt_dir, params, optimizer)

The state is restored into the layout of ``optimizer.init(params)`` (its
NamedTuple classes, dicts, ``None`` entries), so the resumed run is bitwise
the uninterrupted one, for every optimizer and wrapper. A checkpoint that
does not fit that layout (another optimizer, other hyper-parameter flags,
other params) raises :class:`CheckpointMismatchError` naming the first leaf
that differs, instead of restoring a state the update would misread.

How it is stored: each tree is flattened to its leaves, which orbax writes
as arrays (``ocp.args.StandardSave`` inside a ``CheckpointManager``, one
directory per step), and a JSON record of every leaf's path, shape and dtype
and of the tree structure, which restore compares with the template before
reading any array. Zero-size leaves carry no data and are rebuilt from the
record; typed PRNG keys are stored as their key data.

orbax-checkpoint is an optional dependency (``pip install
"jaxopt_notes[checkpoint]"``); it is imported when a function here is first
called, so the rest of the package works without it.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.core import base, validation

__all__ = [
    "CheckpointMismatchError",
    "all_checkpoint_steps",
    "latest_checkpoint_step",
    "restore_checkpoint",
    "save_checkpoint",
]

_FORMAT = "jaxopt_notes.checkpoint/1"
_TREES = ("params", "opt_state")


class CheckpointMismatchError(ValueError):
  """A checkpoint's params or optimizer state do not fit the template's layout."""


def _orbax():
  try:
    import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  except ImportError as err:
    raise ImportError(
        "jaxopt_notes.checkpoint needs orbax-checkpoint: install it with "
        '`pip install "jaxopt_notes[checkpoint]"` (or `pip install '
        'orbax-checkpoint`).'
    ) from err
  return ocp


def _is_key(dtype: Any) -> bool:
  return jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _leaf_record(path, leaf) -> dict[str, Any]:
  dtype = leaf.dtype if hasattr(leaf, "dtype") else jnp.asarray(leaf).dtype
  shape = tuple(leaf.shape) if hasattr(leaf, "shape") else ()
  record = {"path": jax.tree_util.keystr(path), "shape": list(shape), "dtype": str(dtype)}
  if _is_key(dtype):
    record["key_impl"] = str(jax.random.key_impl(leaf)) if isinstance(leaf, jax.Array) else None
  return record


def _describe(tree: Any) -> dict[str, Any]:
  """Structure, leaf paths, shapes and dtypes of ``tree`` (JSON-able)."""
  with_path, treedef = jax.tree_util.tree_flatten_with_path(tree)
  return {
      "treedef": str(treedef),
      "leaves": [_leaf_record(path, leaf) for path, leaf in with_path],
  }


def _fmt(record: dict[str, Any]) -> str:
  return f"{record['dtype']}{record['shape']}"


def _first_difference(
    name: str, saved: dict[str, Any], expected: dict[str, Any], source: str
) -> Optional[str]:
  """Describes the first way ``saved`` and ``expected`` (from ``source``) differ."""
  for s, e in zip(saved["leaves"], expected["leaves"]):
    if s["path"] != e["path"]:
      return (
          f"the checkpoint has a leaf at {name}{s['path']} where {source} has "
          f"one at {name}{e['path']}"
      )
    if (s["shape"], s["dtype"]) != (e["shape"], e["dtype"]):
      return (
          f"{name}{s['path']} is {_fmt(s)} in the checkpoint but {_fmt(e)} in "
          f"{source}"
      )
  n_saved, n_expected = len(saved["leaves"]), len(expected["leaves"])
  if n_saved != n_expected:
    longer = saved if n_saved > n_expected else expected
    extra = longer["leaves"][min(n_saved, n_expected)]["path"]
    who = "checkpoint" if n_saved > n_expected else source
    return (
        f"the checkpoint's {name} has {n_saved} leaves, {source} has "
        f"{n_expected}; the first one only the {who} has is {name}{extra}"
    )
  if saved["treedef"] != expected["treedef"]:
    return (
        f"{name} has the same leaves but different containers (NamedTuple "
        f"classes, dict vs list): checkpoint {saved['treedef']}, {source} "
        f"{expected['treedef']}"
    )
  return None


def _payload(tree: Any) -> dict[str, jax.Array]:
  """The leaves that hold data, keyed by their position in the flattened tree."""
  out = {}
  for i, leaf in enumerate(jax.tree.leaves(tree)):
    if hasattr(leaf, "dtype") and _is_key(leaf.dtype):
      leaf = jax.random.key_data(leaf)
    leaf = leaf if isinstance(leaf, jax.Array) else jnp.asarray(leaf)
    if leaf.size:
      out[f"{i:06d}"] = leaf
  return out


def _manager(directory: Any, *, read_only: bool, max_to_keep: Optional[int] = None):
  ocp = _orbax()
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, read_only=read_only, create=not read_only
  )
  return ocp.CheckpointManager(os.path.abspath(os.fspath(directory)), options=options)


def save_checkpoint(
    directory: Any,
    step: int,
    params: base.Params,
    opt_state: base.OptState,
    *,
    overwrite: bool = False,
    max_to_keep: Optional[int] = None,
) -> str:
  """Writes ``params`` and ``opt_state`` as checkpoint ``step`` under ``directory``.

  Blocks until the files are complete (orbax writes asynchronously; this
  waits), so the process may exit or be preempted right after it returns.
  Each step is its own subdirectory, ``directory/<step>``.

  Args:
    directory: the run's checkpoint directory (created if missing).
    step: the step number to store it under, an integer ``>= 0``.
    params: the parameter pytree.
    opt_state: the optimizer state, as returned by ``init``/``update``.
    overwrite: replace an existing checkpoint of the same step (default
      ``False``: that raises ``FileExistsError``).
    max_to_keep: keep only this many newest checkpoints (default: all).

  Returns:
    The path of the written step directory.

  Raises:
    FileExistsError: the step exists and ``overwrite`` is false.
    ImportError: orbax-checkpoint is not installed.
  """
  ocp = _orbax()
  step = validation.check_int("step", step, minimum=0)
  if max_to_keep is not None:
    validation.check_positive_int("max_to_keep", max_to_keep)
  trees = {"params": params, "opt_state": opt_state}
  meta = {"format": _FORMAT, "step": step, **{n: _describe(t) for n, t in trees.items()}}
  items = {"meta": ocp.args.JsonSave(meta)}
  for name, tree in trees.items():
    payload = _payload(tree)
    if payload:
      items[name] = ocp.args.StandardSave(payload)
  manager = _manager(directory, read_only=False, max_to_keep=max_to_keep)
  try:
    if step in manager.all_steps():
      if not overwrite:
        raise FileExistsError(
            f"a checkpoint for step {step} already exists in {manager.directory}; "
            "pass overwrite=True to replace it"
        )
      manager.delete(step)
    # force: orbax would otherwise skip, silently, any step below the latest.
    manager.save(step, args=ocp.args.Composite(**items), force=True)
    manager.wait_until_finished()
    return os.fspath(manager.directory / str(step))
  finally:
    manager.close()


def all_checkpoint_steps(directory: Any) -> list[int]:
  """The steps saved under ``directory``, ascending (empty if there are none)."""
  if not os.path.isdir(os.fspath(directory)):
    return []
  manager = _manager(directory, read_only=True)
  try:
    return sorted(manager.all_steps())
  finally:
    manager.close()


def latest_checkpoint_step(directory: Any) -> Optional[int]:
  """The newest step saved under ``directory``, or ``None``."""
  steps = all_checkpoint_steps(directory)
  return steps[-1] if steps else None


def _template_state(optimizer: base.GradientTransformation, params: Any) -> Any:
  # Shapes only: the template state is never allocated.
  return jax.eval_shape(optimizer.init, params)


def _abstract_leaf(record: dict[str, Any], template_leaf: Any):
  dtype = jnp.dtype(record["dtype"]) if not record.get("key_impl") else None
  shape = tuple(record["shape"])
  if dtype is None:
    data_shape = jax.eval_shape(jax.random.key_data, template_leaf)
    shape, dtype = data_shape.shape, data_shape.dtype
  sharding = getattr(template_leaf, "sharding", None)
  if sharding is None:
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)


def _rebuild(template: Any, meta: dict[str, Any], restored: dict[str, jax.Array]) -> Any:
  leaves, treedef = jax.tree.flatten(template)
  out = []
  for i, (record, _leaf) in enumerate(zip(meta["leaves"], leaves)):
    key = f"{i:06d}"
    if record.get("key_impl"):
      out.append(jax.random.wrap_key_data(restored[key], impl=record["key_impl"]))
    elif key in restored:
      out.append(restored[key])
    else:
      out.append(jnp.zeros(tuple(record["shape"]), jnp.dtype(record["dtype"])))
  return jax.tree.unflatten(treedef, out)


def restore_checkpoint(
    directory: Any,
    params_template: base.Params,
    optimizer: base.GradientTransformation,
    *,
    step: Optional[int] = None,
    opt_state_template: Optional[base.OptState] = None,
) -> tuple[base.Params, base.OptState, int]:
  """Reads the checkpoint of ``step`` (default: the newest) under ``directory``.

  The params come back in the layout of ``params_template`` and the state in
  the layout of ``optimizer.init(params_template)``, so NamedTuple states,
  ``None`` entries and empty states are the classes ``update`` expects. The
  template may hold arrays or ``jax.ShapeDtypeStruct``s; it is only used for
  its structure (and, where given, its leaves' sharding). Before any array is
  read, the saved structure, leaf paths, shapes and dtypes are compared with
  the template's.

  Args:
    directory: the directory given to :func:`save_checkpoint`.
    params_template: params (or abstract params) of the run being resumed.
    optimizer: the run's optimizer, built exactly as before the restart.
    step: the step to restore (default: the newest saved).
    opt_state_template: the state (or abstract state) to restore into, in
      place of ``optimizer.init(params_template)``: pass it to place the
      state's leaves with their own shardings on a mesh.

  Returns:
    ``(params, opt_state, step)``.

  Raises:
    FileNotFoundError: no checkpoint (of that step) in ``directory``.
    CheckpointMismatchError: the checkpoint does not fit the template; the
      message names the first differing leaf.
    ImportError: orbax-checkpoint is not installed.
  """
  ocp = _orbax()
  optimizer = base.as_transform(optimizer, "optimizer")
  steps = all_checkpoint_steps(directory)
  if not steps:
    raise FileNotFoundError(f"no checkpoints in {os.fspath(directory)!r}")
  step = steps[-1] if step is None else validation.check_int("step", step, minimum=0)
  if step not in steps:
    raise FileNotFoundError(
        f"no checkpoint for step {step} in {os.fspath(directory)!r}; saved steps: {steps}"
    )
  sources = {"params": "params_template", "opt_state": "opt_state_template"}
  if opt_state_template is None:
    opt_state_template = _template_state(optimizer, params_template)
    sources["opt_state"] = "optimizer.init(params_template)"
  templates = {"params": params_template, "opt_state": opt_state_template}
  manager = _manager(directory, read_only=True)
  try:
    meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
      raise CheckpointMismatchError(
          f"step {step} in {os.fspath(directory)!r} was not written by "
          "jaxopt_notes.save_checkpoint"
      )
    for name in _TREES:
      problem = _first_difference(name, meta[name], _describe(templates[name]), sources[name])
      if problem:
        raise CheckpointMismatchError(
            f"checkpoint step {step} in {os.fspath(directory)!r} does not fit "
            f"this run: {problem}. Restore with the params and the optimizer "
            "(same transforms, flags and dtypes) the checkpoint was saved with."
        )
    abstract = {}
    for name in _TREES:
      leaves = jax.tree.leaves(templates[name])
      abstract[name] = {
          f"{i:06d}": _abstract_leaf(record, leaf)
          for i, (record, leaf) in enumerate(zip(meta[name]["leaves"], leaves))
          if record.get("key_impl") or np.prod(record["shape"], dtype=int) > 0
      }
    items = {n: ocp.args.StandardRestore(a) for n, a in abstract.items() if a}
    restored = manager.restore(step, args=ocp.args.Composite(**items)) if items else {}
    out = {
        name: _rebuild(templates[name], meta[name], restored[name] if abstract[name] else {})
        for name in _TREES
    }
  finally:
    manager.close()
  return out["params"], out["opt_state"], step
