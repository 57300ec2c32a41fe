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
as arrays (``ocp.args.StandardSave`` through a ``Checkpointer``, one
directory per step), and a JSON record of every leaf's path, shape, dtype and
CRC-32 and of the tree structure, which restore compares with the template
before reading any array (and, for the CRC, after). Zero-size leaves carry no
data and are rebuilt from the record; typed PRNG keys are stored as their key
data. How step folders are written, swapped, locked and pruned so that a
killed or concurrent writer never loses a step is in ``_checkpoint_files``.

orbax-checkpoint is an optional dependency (``pip install
"jaxopt_notes[checkpoint]"``); it is imported when a function here is first
called, so the rest of the package works without it.
"""

from __future__ import annotations

import os
import zlib
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.core import base, validation
from jaxopt_notes.training import _checkpoint_files as _files
from jaxopt_notes.training._checkpoint_files import CheckpointBusyError

__all__ = [
    "CheckpointBusyError",
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
  record: dict[str, Any] = {"path": jax.tree_util.keystr(path), "shape": list(shape), "dtype": str(dtype)}
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


def _refuse_inexact(name: str, tree: Any) -> None:
  """Raises for a leaf JAX would store in another dtype (numpy 64-bit with x64 off)."""
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    dtype = getattr(leaf, "dtype", None)
    if dtype is None or isinstance(leaf, jax.Array) or _is_key(dtype):
      continue
    canonical = jax.dtypes.canonicalize_dtype(dtype)
    if np.dtype(canonical) != np.dtype(dtype):
      raise ValueError(
          f"`{name}` leaf {name}{jax.tree_util.keystr(path)} is a numpy {np.dtype(dtype)} "
          f"array, which JAX (jax_enable_x64 off) would store as {np.dtype(canonical)}: it "
          "could not be restored exactly. Cast it, or enable x64 "
          '(jax.config.update("jax_enable_x64", True)) before saving.'
      )


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


def _crc32(array: Any) -> Optional[str]:
  """CRC-32 of the array's bytes (C order), or ``None`` if this process lacks some shards."""
  if not getattr(array, "is_fully_addressable", True):
    return None
  data = np.ascontiguousarray(np.asarray(array)).reshape(-1).view(np.uint8)
  return f"{zlib.crc32(data) & 0xFFFFFFFF:08x}"  # type: ignore[arg-type]  # numpy's stubs: a Buffer only on 3.12+


def _checkpointer():
  ocp = _orbax()
  return ocp.Checkpointer(ocp.CompositeCheckpointHandler())


def _directory(directory: Any) -> str:
  try:
    return os.path.abspath(os.fspath(directory))
  except TypeError:
    raise TypeError(f"`directory` must be a path (str or os.PathLike); got {directory!r}") from None


def save_checkpoint(
    directory: Any,
    step: int,
    params: base.Params,
    opt_state: base.OptState,
    *,
    overwrite: bool = False,
    max_to_keep: Optional[int] = None,
    checksum: bool = True,
) -> str:
  """Writes ``params`` and ``opt_state`` as checkpoint ``step`` under ``directory``.

  Blocks until the files are complete, so the process may exit or be
  preempted right after it returns. Each step is its own subdirectory,
  ``directory/<step>``. The new checkpoint is written in full under a
  temporary name and then renamed into place (an existing one is renamed
  aside first and deleted after), so a writer killed at any instant leaves
  the step restorable: the old checkpoint or the new one, never neither.

  Only one writer saves a given step at a time: a lock file
  ``directory/.<step>.lock`` (created with ``O_CREAT | O_EXCL``) makes a second
  concurrent writer, thread or process, raise :class:`CheckpointBusyError`
  while the first's checkpoint is kept. A lock left by a killed writer on
  this host is stale once its pid no longer runs and is broken by the next
  writer; a lock from another host is broken after an hour (see
  ``_checkpoint_files``). The next writer of a step also removes what a
  killed writer of it left behind.

  With ``checksum`` (the default) the CRC-32 of every leaf's bytes is stored
  in the checkpoint's record and :func:`restore_checkpoint` verifies it.
  Its cost, measured with ``benchmarks/bench_checkpoint.py`` on this
  project's shared 2-core CPU machine for 100M float32 parameters plus SGD
  momentum (800 MB): computing the CRCs takes 0.23 s, added once to a save
  and once to a restore. End to end that is within the machine's noise:
  three runs gave save 2.77 / 2.60 / 2.18 s with the checksum against
  3.62 / 1.81 / 3.76 s without, restore 1.85 / 1.96 / 3.13 s against
  1.29 / 2.05 / 2.79 s (medians of 3, 5 and 3 repeats), so about +13% of
  the fastest save seen (1.81 s) and +18% of the fastest restore (1.29 s).
  The checksum needs each array on the host, an extra
  device-to-host copy on an accelerator; leaves this process holds only
  some shards of are not checksummed.

  Numpy leaves JAX would store in another dtype (``float64``, ``int64``,
  ``uint64`` while ``jax_enable_x64`` is off) are refused, as they could not
  be restored exactly.

  Written through orbax-checkpoint, in the layout the module docstring
  describes; optax has no counterpart.

  Args:
    directory: the run's checkpoint directory (created if missing).
    step: the step number to store it under, an integer ``>= 0``.
    params: the parameter pytree.
    opt_state: the optimizer state, as returned by ``init``/``update``.
    overwrite: replace an existing checkpoint of the same step (default
      ``False``: that raises ``FileExistsError``).
    max_to_keep: keep only the ``max_to_keep`` highest step numbers (default:
      all); the lower ones are deleted after this step is written. A step
      that would not be among them (``max_to_keep`` higher steps are already
      saved) is refused with ``ValueError`` before anything is written.
    checksum: store a CRC-32 of each leaf, verified on restore (default
      ``True``).

  Returns:
    The path of the written step directory.

  Raises:
    FileExistsError: the step exists and ``overwrite`` is false.
    CheckpointBusyError: (a ``FileExistsError``) another writer is saving
      this step right now; nothing was written.
    ValueError: a bad argument, a numpy leaf that could not be restored
      exactly, or a step below the ``max_to_keep`` highest saved ones.
    ImportError: orbax-checkpoint is not installed.

  Examples:
    >>> import os, shutil, tempfile
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> ckpt_dir = tempfile.mkdtemp()
    >>> tx = jn.adam(0.1)
    >>> params = {"w": jnp.array([1.0, 2.0])}
    >>> state = tx.init(params)
    >>> for step in (0, 10, 20):
    ...   path = jn.save_checkpoint(ckpt_dir, step, params, state, max_to_keep=2)
    >>> os.path.basename(path), jn.all_checkpoint_steps(ckpt_dir)  # step 0 was pruned
    ('20', [10, 20])
    >>> shutil.rmtree(ckpt_dir)
  """
  ocp = _orbax()
  step = validation.check_int("step", step, minimum=0)
  if max_to_keep is not None:
    max_to_keep = validation.check_int("max_to_keep", max_to_keep, minimum=1)
  validation.check_flags(overwrite=overwrite, checksum=checksum)
  root = _directory(directory)
  trees = {"params": params, "opt_state": opt_state}
  meta: dict[str, Any] = {"format": _FORMAT, "step": step}
  items = {}
  for name, tree in trees.items():
    _refuse_inexact(name, tree)
    meta[name] = _describe(tree)
    payload = _payload(tree)
    if checksum:
      for key, array in payload.items():
        meta[name]["leaves"][int(key)]["crc32"] = _crc32(array)
    if payload:
      items[name] = ocp.args.StandardSave(payload)
  items["meta"] = ocp.args.JsonSave(meta)
  os.makedirs(root, exist_ok=True)
  with _files.step_lock(root, step):
    _files.recover(root, step)
    saved = _files.list_steps(root)
    if step in saved and not overwrite:
      raise FileExistsError(
          f"a checkpoint for step {step} already exists in {root}; "
          "pass overwrite=True to replace it"
      )
    higher = [s for s in saved if s > step]
    if max_to_keep is not None and len(higher) >= max_to_keep:
      raise ValueError(
          f"`step` {step} would not be kept: `max_to_keep`={max_to_keep} keeps the highest "
          f"step numbers and {root} already holds {higher[-max_to_keep:]}; nothing was written"
      )
    new = _files.new_path(root, step)
    checkpointer = _checkpointer()
    try:
      checkpointer.save(new, args=ocp.args.Composite(**items))
    finally:
      checkpointer.close()
    path = _files.commit(root, step, new)
  if max_to_keep is not None:
    for old in _files.list_steps(root)[:-max_to_keep]:
      try:
        with _files.step_lock(root, old):
          _files.remove_step(root, old)
      except CheckpointBusyError:
        pass  # being rewritten right now; pruned by a later save
  return path


def all_checkpoint_steps(directory: Any) -> list[int]:
  """The steps saved under ``directory``, ascending (empty if there are none).

  Reads the directory listing only, so it needs no orbax-checkpoint; a step
  folder that a killed writer had moved aside still counts, as
  :func:`save_checkpoint` keeps such a step restorable. Not in optax.

  Examples:
    >>> import os, tempfile
    >>> import jaxopt_notes as jn
    >>> jn.all_checkpoint_steps(os.path.join(tempfile.gettempdir(), "no-such-run"))  # see save_checkpoint
    []
  """
  return _files.list_steps(_directory(directory))


def latest_checkpoint_step(directory: Any) -> Optional[int]:
  """The newest step saved under ``directory``, or ``None``.

  The last of :func:`all_checkpoint_steps`; needs no orbax-checkpoint. Not
  in optax.

  Examples:
    >>> import os, tempfile
    >>> import jaxopt_notes as jn
    >>> ckpt_dir = tempfile.mkdtemp()
    >>> print(jn.latest_checkpoint_step(ckpt_dir))  # nothing saved yet: start from scratch
    None
    >>> os.rmdir(ckpt_dir)
  """
  steps = all_checkpoint_steps(directory)
  return steps[-1] if steps else None


def _holds(path: str) -> str:
  """What a step folder holds, for an error message."""
  try:
    names = sorted(n for n in os.listdir(path) if not n.startswith(("_", ".")) and n != "commit_success.txt")
  except OSError:
    return "nothing readable"
  return f"the items {names}" if names else "no items"


def _verify(step: int, path: str, name: str, meta: dict[str, Any], restored: dict[str, Any]) -> None:
  for key, array in restored.items():
    record = meta["leaves"][int(key)]
    want = record.get("crc32")
    if want is None:
      continue
    got = _crc32(array)
    if got is not None and got != want:
      raise CheckpointMismatchError(
          f"checkpoint step {step} at {path!r} is corrupted: the data of {name}{record['path']} "
          f"does not match its checksum (crc32 {got}, saved {want})"
      )


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
  template may hold arrays or ``jax.ShapeDtypeStruct`` values; it is only used for
  its structure (and, where given, its leaves' sharding). Before any array is
  read, the saved structure, leaf paths, shapes and dtypes are compared with
  the template's.

  Read through orbax-checkpoint; optax has no counterpart.

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
    CheckpointMismatchError: the checkpoint does not fit the template (the
      message names the first differing leaf), a leaf's data does not match
      the checksum saved with it (the message names the leaf), or the folder
      was not written by :func:`save_checkpoint` (the message says what it
      holds).
    ImportError: orbax-checkpoint is not installed.

  Examples:
    >>> import shutil, tempfile
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> ckpt_dir = tempfile.mkdtemp()
    >>> tx = jn.adam(0.1)
    >>> params = {"w": jnp.array([1.0, 2.0])}
    >>> state = tx.init(params)
    >>> updates, state = tx.update({"w": jnp.ones(2)}, state, params)
    >>> path = jn.save_checkpoint(ckpt_dir, 1, jn.apply_updates(params, updates), state)
    >>> params, state, step = jn.restore_checkpoint(ckpt_dir, {"w": jnp.zeros(2)}, tx)
    >>> step, [round(float(x), 4) for x in params["w"]], type(state[0]).__name__, int(state[0].count)
    (1, [0.9, 1.9], 'ScaleByAdamState', 1)
    >>> shutil.rmtree(ckpt_dir)
  """
  ocp = _orbax()
  optimizer = base.as_transform(optimizer, "optimizer")
  root = _directory(directory)
  steps = all_checkpoint_steps(root)
  if not steps:
    raise FileNotFoundError(f"no checkpoints in {os.fspath(directory)!r}")
  step = steps[-1] if step is None else validation.check_int("step", step, minimum=0)
  path = _files.step_path(root, step) if step in steps else None
  if path is None:
    raise FileNotFoundError(
        f"no checkpoint for step {step} in {os.fspath(directory)!r}; saved steps: {steps}"
    )
  sources = {"params": "params_template", "opt_state": "opt_state_template"}
  if opt_state_template is None:
    opt_state_template = _template_state(optimizer, params_template)
    sources["opt_state"] = "optimizer.init(params_template)"
  templates = {"params": params_template, "opt_state": opt_state_template}
  foreign = (
      f"step {step} in {os.fspath(directory)!r} was not written by "
      f"jaxopt_notes.save_checkpoint: its folder holds {_holds(path)}"
  )
  if not os.path.isdir(os.path.join(path, "meta")):
    raise CheckpointMismatchError(f"{foreign}, and no 'meta' record")
  checkpointer = _checkpointer()
  try:
    meta = checkpointer.restore(path, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
      raise CheckpointMismatchError(f"{foreign}, and its 'meta' record is not jaxopt_notes'")
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
    restored = checkpointer.restore(path, args=ocp.args.Composite(**items)) if items else {}
  finally:
    checkpointer.close()
  out = {}
  for name in _TREES:
    arrays = restored[name] if abstract[name] else {}
    _verify(step, path, name, meta[name], arrays)
    out[name] = _rebuild(templates[name], meta[name], arrays)
  return out["params"], out["opt_state"], step
