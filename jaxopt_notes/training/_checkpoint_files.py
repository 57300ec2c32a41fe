"""The on-disk protocol of a checkpoint directory: step folders, locks, swaps.

What :mod:`jaxopt_notes.training.checkpoint` writes into a directory ``D``:

* ``D/<step>``: a complete checkpoint (``<step>`` in decimal, no leading
  zeros), the only name a reader restores from in normal operation.
* ``D/.<step>.lock``: held while a writer saves ``step`` (:func:`step_lock`).
* ``D/.<step>.new-<token>``: a writer's new checkpoint. orbax writes it into
  a temporary folder and renames it to this name once complete; only then is
  it moved to ``D/<step>``.
* ``D/.<step>.old-<token>``: the checkpoint being replaced, moved aside for
  the instant between the two renames of a swap (:func:`commit`). Where
  ``D/<step>`` is missing and this exists, a writer was killed in that
  instant: readers restore from it, and the next writer of ``step`` moves it
  back.
* ``D/.<step>.trash-<token>``: a folder being deleted (renamed first, so a
  half-deleted folder never carries a step's name).

Every change to a step's name is one ``os.rename`` of a complete folder,
made under the step's lock, so a writer killed at any instant leaves that
step restorable: the old checkpoint, or the new one. Leftovers of a killed
writer are removed by the next writer of the same step.

The lock is a file that records the writer's host, pid, process start time
and a random token. It is written whole under a private name and then
hard-linked to ``D/.<step>.lock`` (the link fails if the lock exists), so a
lock is never seen half-written. A second writer
finding it raises :class:`CheckpointBusyError` at once (it never waits). A
lock is stale, and is broken, when its writer is on this host and no longer
runs (the pid is gone, a zombie, or reused by a process with another start
time), when it is unreadable and older than ``_INCOMPLETE_LOCK_S``, or when it
is from another host and older than ``_OTHER_HOST_LOCK_S`` (the pid of another
host cannot be checked). Local filesystems only (``os.rename`` atomic). Before a new checkpoint is
renamed to its step, its files are flushed with ``fsync``, and the directory
after, so that a power loss, not only a killed process, leaves the old or the
new checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import time
import uuid
from typing import Any, Iterator, Optional

_INCOMPLETE_LOCK_S = 60.0
_OTHER_HOST_LOCK_S = 3600.0
_STEP = re.compile(r"(0|[1-9][0-9]*)")
_MOVED_ASIDE = re.compile(r"\.(0|[1-9][0-9]*)\.old-[0-9a-f]+")


class CheckpointBusyError(FileExistsError):
  """Another writer is saving the same step of the same directory right now."""


def _token() -> str:
  return uuid.uuid4().hex


def _isdir(path: str) -> bool:
  return os.path.isdir(path) and not os.path.islink(path)


def list_steps(directory: str) -> list[int]:
  """The restorable steps under ``directory``, ascending."""
  try:
    names = os.listdir(directory)
  except (FileNotFoundError, NotADirectoryError):
    return []
  steps = set()
  for name in names:
    if _STEP.fullmatch(name) and _isdir(os.path.join(directory, name)):
      steps.add(int(name))
    else:
      match = _MOVED_ASIDE.fullmatch(name)
      if match and _isdir(os.path.join(directory, name)):
        steps.add(int(match.group(1)))
  return sorted(steps)


def _aside(directory: str, step: int, kind: str) -> list[str]:
  prefix = f".{step}.{kind}-"
  try:
    names = os.listdir(directory)
  except FileNotFoundError:
    return []
  return sorted(os.path.join(directory, n) for n in names if n.startswith(prefix))


def step_path(directory: str, step: int) -> Optional[str]:
  """The folder to read ``step`` from, or ``None`` if it is not saved."""
  final = os.path.join(directory, str(step))
  if _isdir(final):
    return final
  moved = [p for p in _aside(directory, step, "old") if _MOVED_ASIDE.fullmatch(os.path.basename(p))]
  return moved[0] if moved else None


def new_path(directory: str, step: int) -> str:
  """A fresh name for a writer's new checkpoint of ``step`` (not created)."""
  return os.path.join(directory, f".{step}.new-{_token()}")


def _remove(path: str) -> None:
  """Deletes ``path``; a folder is renamed to a ``.trash-`` name first."""
  if _isdir(path):
    base = os.path.basename(path)
    step = base.split(".")[1] if base.startswith(".") else base.split(".")[0]
    trash = os.path.join(os.path.dirname(path), f".{step}.trash-{_token()}")
    try:
      os.rename(path, trash)
    except FileNotFoundError:
      return
    shutil.rmtree(trash, ignore_errors=True)
  else:
    with contextlib.suppress(FileNotFoundError):
      os.unlink(path)


def recover(directory: str, step: int) -> None:
  """Under ``step``'s lock: undoes a killed swap and removes a killed writer's leftovers."""
  final = os.path.join(directory, str(step))
  moved = [p for p in _aside(directory, step, "old") if _isdir(p)]
  if moved and not _isdir(final):
    os.rename(moved.pop(0), final)  # the swap was killed before the new one moved in
  leftovers = moved + _aside(directory, step, "new") + _aside(directory, step, "trash")
  try:
    names = os.listdir(directory)
  except FileNotFoundError:
    names = []
  leftovers += [
      os.path.join(directory, n) for n in names
      if n.startswith((f"{step}.orbax-checkpoint-tmp", f".{step}.lock.stale-", f".{step}.lock.stage-"))
  ]
  for path in leftovers:
    _remove(path)


def commit(directory: str, step: int, new: str) -> str:
  """Under ``step``'s lock: moves the complete checkpoint ``new`` to ``directory/<step>``.

  An existing ``directory/<step>`` is renamed aside first and deleted after;
  a reader arriving in between finds the old one under its ``.old-`` name.
  """
  final = os.path.join(directory, str(step))
  _sync_tree(new)
  if _isdir(final):
    old = os.path.join(directory, f".{step}.old-{_token()}")
    os.rename(final, old)
    os.rename(new, final)
    _remove(old)
  else:
    try:
      os.rename(new, final)
    except OSError as err:  # a folder appeared: a writer that ignored the lock
      _remove(new)
      raise FileExistsError(f"a checkpoint for step {step} appeared in {directory} while saving") from err
  _sync(directory)
  return final


def _sync(path: str) -> None:
  """Flushes ``path`` (a file, or a folder's entries) to the disk, where the OS allows."""
  try:
    fd = os.open(path, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass  # some filesystems refuse fsync on a folder
  finally:
    os.close(fd)


def _sync_tree(root: str) -> None:
  """Flushes every file and folder under ``root``, so the rename publishes durable bytes."""
  for folder, _, names in os.walk(root):
    for name in names:
      _sync(os.path.join(folder, name))
    _sync(folder)


def remove_step(directory: str, step: int) -> None:
  """Under ``step``'s lock: deletes the checkpoint ``step`` and its leftovers."""
  recover(directory, step)
  _remove(os.path.join(directory, str(step)))


# --- the lock ------------------------------------------------------------------


def _proc_stat(pid: int) -> Optional[tuple[str, str]]:
  """(state, start time) of ``pid`` from /proc (Linux), or ``None``."""
  try:
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
      fields = f.read().rsplit(")", 1)[1].split()
  except (OSError, IndexError):
    return None
  return (fields[0], fields[19]) if len(fields) > 19 else None


def _running(pid: int, start: Optional[str]) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    pass  # another user's process: it exists
  except OSError:
    return True
  stat = _proc_stat(pid)
  if stat is None:
    return True
  state, started = stat
  return state not in ("Z", "X") and (start is None or started == start)


def _me(token: str) -> dict[str, Any]:
  stat = _proc_stat(os.getpid())
  return {
      "host": socket.gethostname(), "pid": os.getpid(),
      "start": stat[1] if stat else None, "token": token, "time": time.time(),
  }


def _read_lock(path: str) -> tuple[Optional[dict[str, Any]], float]:
  """The lock's record (``None`` if unreadable) and its age in seconds."""
  age = time.time() - os.stat(path).st_mtime
  try:
    with open(path, encoding="utf-8") as f:
      info = json.load(f)
  except FileNotFoundError:
    raise  # released between the stat and the open: the caller tries again
  except (OSError, ValueError):
    return None, age
  ok = isinstance(info, dict) and isinstance(info.get("pid"), int) and "token" in info
  return (info if ok else None), age


def _stale(info: Optional[dict[str, Any]], age: float) -> Optional[str]:
  """Why the lock is stale, or ``None`` if its writer may still run."""
  if info is None:
    return "it is incomplete" if age > _INCOMPLETE_LOCK_S else None
  if info.get("host") == socket.gethostname():
    if _running(info["pid"], info.get("start")):
      return None
    return f"its writer (pid {info['pid']}) is no longer running"
  if age > _OTHER_HOST_LOCK_S:
    return f"it is from another host and older than {_OTHER_HOST_LOCK_S:.0f} s"
  return None


def _break(path: str, info: Optional[dict[str, Any]]) -> None:
  """Removes the stale lock ``path`` unless another writer replaced it meanwhile."""
  moved = f"{path}.stale-{_token()}"
  try:
    os.rename(path, moved)
  except FileNotFoundError:
    return
  try:
    now, _ = _read_lock(moved)
  except FileNotFoundError:
    return
  same = (now or {}).get("token") == (info or {}).get("token")
  if not same:  # a fresh lock was taken between our read and the rename: put it back
    with contextlib.suppress(OSError):
      os.link(moved, path)
  with contextlib.suppress(FileNotFoundError):
    os.unlink(moved)


def _stage_lock(path: str, token: str) -> str:
  """Writes the whole lock record to a private file beside ``path``; returns its name."""
  staged = f"{path}.stage-{token}"
  with open(staged, "w", encoding="utf-8") as f:
    json.dump(_me(token), f)
  return staged


def _link(staged: str, path: str) -> None:
  try:
    os.link(staged, path)
  except (FileExistsError, FileNotFoundError):
    raise
  except OSError:  # a filesystem without hard links: exclusive create, then write
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    with open(staged, "rb") as src, os.fdopen(fd, "wb") as dst:
      dst.write(src.read())


@contextlib.contextmanager
def step_lock(directory: str, step: int) -> Iterator[None]:
  """Holds the lock of ``step`` in ``directory``, or raises :class:`CheckpointBusyError`."""
  path = os.path.join(directory, f".{step}.lock")
  token = _token()
  info: Optional[dict[str, Any]] = None
  for _ in range(10):
    staged = _stage_lock(path, token)
    try:
      # A hard link appears whole or not at all, so no writer ever reads a
      # lock before its holder is recorded (O_EXCL then write would allow it).
      _link(staged, path)
    except FileExistsError:
      try:
        info, age = _read_lock(path)
      except FileNotFoundError:
        continue  # released meanwhile
      if _stale(info, age) is None:
        break
      _break(path, info)
      continue
    except FileNotFoundError:
      continue  # our staged file was swept by a recovering writer: stage again
    finally:
      with contextlib.suppress(FileNotFoundError):
        os.unlink(staged)
    try:
      yield
    finally:
      with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return
  who = (
      f"pid {info['pid']} on {info.get('host')}, since "
      f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(info.get('time', 0)))}"
      if info else "a writer whose lock file is unreadable"
  )
  raise CheckpointBusyError(
      f"step {step} in {directory!r} is being saved by another writer ({who}); "
      f"nothing was written by this call. If no writer is running, delete the lock file {path!r}."
  )
