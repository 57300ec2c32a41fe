"""Checkpoints survive what they exist for: killed writers, concurrent writers, bad bytes.

A writer killed at any instant of an overwrite leaves the old or the new
checkpoint; two writers of one step give one clear error and one checkpoint;
``max_to_keep`` keeps the highest step numbers; flipped bytes in a data chunk
are caught by the per-leaf checksum; folders and leaves ``save_checkpoint``
cannot round-trip exactly are refused with an error that says why.
"""

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

import jaxopt_notes as jn
from jaxopt_notes.training import checkpoint as ckpt
from tests.training import _ckpt_writer

KILLS = 10


def _bytes_equal(a, b):
  if jax.tree.structure(a) != jax.tree.structure(b):
    return False
  return all(
      np.asarray(x).dtype == np.asarray(y).dtype and np.asarray(x).tobytes() == np.asarray(y).tobytes()
      for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
  )


def _version(seed, size=50_000):
  """(params, opt_state) as numpy trees, with a momentum that differs per seed."""
  tx = _ckpt_writer.optimizer()
  params = {"w": jnp.asarray(np.random.default_rng(seed).standard_normal(size, dtype=np.float32))}
  _, state = tx.update(params, tx.init(params))
  return jax.tree.map(np.asarray, (params, state))


def _restore(directory, template, step):
  params, state, _ = ckpt.restore_checkpoint(directory, template[0], _ckpt_writer.optimizer(), step=step)
  return params, state


# --- 1. a writer killed mid-overwrite -----------------------------------------


def test_writer_killed_mid_overwrite_leaves_old_or_new(tmp_path):
  """SIGKILL a process overwriting one step, at varied delays: it restores to one version, exactly."""
  versions = [_version(1), _version(2)]
  step = _ckpt_writer.STEP
  ckpt.save_checkpoint(tmp_path, step, *versions[0])
  ctx = multiprocessing.get_context("forkserver")
  ctx.set_forkserver_preload(["tests.training._ckpt_writer"])
  rng = np.random.default_rng(0)
  seen = []
  for _ in range(KILLS):
    writer = ctx.Process(target=_ckpt_writer.overwrite_forever, args=(os.fspath(tmp_path), versions))
    writer.start()
    # From before its first save (the previous writer's lock is stale) to mid-way through later ones.
    time.sleep(rng.uniform(0.15, 0.75))
    os.kill(writer.pid, signal.SIGKILL)
    writer.join()
    assert ckpt.all_checkpoint_steps(tmp_path) == [step]
    restored = _restore(tmp_path, versions[0], step)
    matches = [i for i, v in enumerate(versions) if _bytes_equal(restored, v)]
    assert len(matches) == 1, "the restored checkpoint is neither the old nor the new one"
    seen.append(matches[0])
  # The last writer's lock and leftovers do not block the next save.
  third = _version(3)
  ckpt.save_checkpoint(tmp_path, step, *third, overwrite=True)
  assert _bytes_equal(_restore(tmp_path, third, step), third)
  assert sorted(os.listdir(tmp_path)) == [str(step)]


def test_swap_interrupted_between_renames_restores_the_old_one(tmp_path, monkeypatch):
  """The instant the old checkpoint is moved aside and the new not yet in: old restores, next save heals."""
  old, new = _version(1, 10), _version(2, 10)
  ckpt.save_checkpoint(tmp_path, 4, *old)
  real_rename = os.rename

  class Killed(Exception):
    pass

  def rename(src, dst):
    if os.path.basename(os.fspath(dst)) == "4" and ".new-" in os.fspath(src):
      raise Killed()
    return real_rename(src, dst)

  monkeypatch.setattr(os, "rename", rename)
  with pytest.raises(Killed):
    ckpt.save_checkpoint(tmp_path, 4, *new, overwrite=True)
  monkeypatch.setattr(os, "rename", real_rename)
  assert not os.path.exists(tmp_path / "4")  # really interrupted between the two renames
  assert ckpt.all_checkpoint_steps(tmp_path) == [4]
  assert _bytes_equal(_restore(tmp_path, old, 4), old)
  with pytest.raises(FileExistsError, match="already exists"):
    ckpt.save_checkpoint(tmp_path, 4, *new)
  ckpt.save_checkpoint(tmp_path, 4, *new, overwrite=True)
  assert _bytes_equal(_restore(tmp_path, new, 4), new)
  assert sorted(os.listdir(tmp_path)) == ["4"]


# --- 2. max_to_keep ------------------------------------------------------------


def test_max_to_keep_keeps_the_highest_step_numbers(tmp_path):
  """Steps 5 and 10 saved: saving 3 with max_to_keep=2 is refused, 7 replaces 5."""
  versions = {s: _version(s, 10) for s in (3, 5, 7, 10)}
  for s in (5, 10):
    ckpt.save_checkpoint(tmp_path, s, *versions[s])
  with pytest.raises(ValueError, match=r"`step` 3 would not be kept.*`max_to_keep`=2.*\[5, 10\]"):
    ckpt.save_checkpoint(tmp_path, 3, *versions[3], max_to_keep=2)
  assert ckpt.all_checkpoint_steps(tmp_path) == [5, 10]
  assert _bytes_equal(_restore(tmp_path, versions[5], 5), versions[5])
  ckpt.save_checkpoint(tmp_path, 7, *versions[7], max_to_keep=2)
  assert ckpt.all_checkpoint_steps(tmp_path) == [7, 10]
  for s in (7, 10):
    assert _bytes_equal(_restore(tmp_path, versions[s], s), versions[s])
  # Overwriting a kept step is allowed.
  ckpt.save_checkpoint(tmp_path, 7, *versions[3], max_to_keep=2, overwrite=True)
  assert _bytes_equal(_restore(tmp_path, versions[3], 7), versions[3])
  assert sorted(os.listdir(tmp_path)) == ["10", "7"]


# --- 3. concurrent writers -----------------------------------------------------


def test_two_threads_saving_one_step_one_clear_error(tmp_path):
  """Both start together: one checkpoint is written and kept, the other gets a busy error."""
  versions = [_version(1, 2_000_000), _version(2, 2_000_000)]
  barrier = threading.Barrier(2)
  outcome = [None, None]

  def save(i):
    barrier.wait()
    try:
      ckpt.save_checkpoint(tmp_path, 1, *versions[i])
      outcome[i] = "saved"
    except Exception as err:  # pylint: disable=broad-except
      outcome[i] = err

  threads = [threading.Thread(target=save, args=(i,)) for i in range(2)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert outcome.count("saved") == 1, outcome
  winner = outcome.index("saved")
  error = outcome[1 - winner]
  assert isinstance(error, FileExistsError), error
  assert "being saved by another writer" in str(error)
  # The lock appears whole (written aside, then linked), so the holder is always named.
  assert f"pid {os.getpid()}" in str(error), error
  assert isinstance(error, ckpt.CheckpointBusyError)
  assert _bytes_equal(_restore(tmp_path, versions[winner], 1), versions[winner])
  assert sorted(os.listdir(tmp_path)) == ["1"]


def test_lock_of_a_dead_writer_is_broken_and_of_a_live_one_is_not(tmp_path):
  """A lock whose pid has exited is stale; one held by a running process blocks."""
  versions = _version(1, 10)
  dead = subprocess.Popen(["true"])
  dead.wait()
  for pid, start, blocks in [(dead.pid, None, False), (os.getpid(), None, True)]:
    lock = tmp_path / ".2.lock"
    info = {"host": socket.gethostname(), "pid": pid, "start": start, "token": "t", "time": 0}
    lock.write_text(json.dumps(info))
    if blocks:
      with pytest.raises(ckpt.CheckpointBusyError, match=rf"pid {pid}.*delete the lock file"):
        ckpt.save_checkpoint(tmp_path, 2, *versions, overwrite=True)
      assert lock.exists()
    else:
      ckpt.save_checkpoint(tmp_path, 2, *versions, overwrite=True)
      assert not lock.exists()
  assert ckpt.all_checkpoint_steps(tmp_path) == [2]


@pytest.mark.parametrize("hard_links", [True, False])
def test_a_contended_lock_always_names_its_holder(hard_links, tmp_path, monkeypatch):
  """Many rounds of two threads taking one step's lock: the loser always sees a whole record."""
  from jaxopt_notes.training import _checkpoint_files as files

  if not hard_links:  # a filesystem without hard links takes the exclusive-create path
    def no_link(src, dst):
      raise PermissionError(1, "Operation not permitted")
    monkeypatch.setattr(files.os, "link", no_link)
  errors, held = [], []
  for _ in range(100):
    barrier = threading.Barrier(2)

    def take():
      barrier.wait()
      try:
        with files.step_lock(str(tmp_path), 7):
          held.append(1)
          time.sleep(0.002)
      except files.CheckpointBusyError as err:
        errors.append(str(err))

    threads = [threading.Thread(target=take) for _ in range(2)]
    for t in threads:
      t.start()
    for t in threads:
      t.join()
  assert len(held) + len(errors) == 200 and held
  unnamed = [e for e in errors if f"pid {os.getpid()}" not in e]
  if hard_links:
    assert not unnamed, unnamed[:1]
  assert sorted(os.listdir(tmp_path)) == []  # no lock and no staged record left behind


def test_a_lock_released_between_its_stat_and_its_read_is_taken(tmp_path, monkeypatch):
  """The race CI found: the holder let go after the loser's stat and before its open. The
  loser used to report an unreadable holder and give up; it now takes the free lock."""
  from jaxopt_notes.training import _checkpoint_files as files

  path = tmp_path / ".7.lock"
  path.write_text(json.dumps({"pid": os.getpid(), "token": "holder", "host": "elsewhere", "time": 0}))
  real_stat, released = files.os.stat, []

  def stat_then_release(p, *args, **kwargs):
    out = real_stat(p, *args, **kwargs)
    if os.fspath(p) == str(path) and not released:
      released.append(True)
      os.unlink(path)  # the holder's release, between the loser's stat and open
    return out

  monkeypatch.setattr(files.os, "stat", stat_then_release)
  with files.step_lock(str(tmp_path), 7):
    assert json.loads(path.read_text())["pid"] == os.getpid()
    assert json.loads(path.read_text())["token"] != "holder"
  assert released and not path.exists()


def test_a_killed_writers_staged_lock_record_is_swept(tmp_path):
  """A record staged by a writer killed before linking it is removed by the next writer."""
  versions = _version(1, 10)
  (tmp_path / ".3.lock.stage-0123abcd").write_text("{}")
  ckpt.save_checkpoint(tmp_path, 3, *versions)
  assert sorted(os.listdir(tmp_path)) == ["3"]


def test_new_checkpoint_is_flushed_before_it_takes_the_steps_name(tmp_path, monkeypatch):
  """Every file of the new checkpoint is fsynced before the rename that publishes it."""
  from jaxopt_notes.training import _checkpoint_files as files

  events = []
  real_fsync, real_rename = os.fsync, os.rename

  def fsync(fd):
    events.append(("sync", os.readlink(f"/proc/self/fd/{fd}")))
    real_fsync(fd)

  def rename(src, dst):
    events.append(("rename", os.fspath(src), os.fspath(dst)))
    real_rename(src, dst)

  monkeypatch.setattr(files.os, "fsync", fsync)
  monkeypatch.setattr(files.os, "rename", rename)
  ckpt.save_checkpoint(tmp_path, 4, *_version(1, 10))
  final = str(tmp_path / "4")
  publish = next(i for i, e in enumerate(events) if e[0] == "rename" and e[2] == final)
  new = events[publish][1]
  synced = {e[1] for e in events[:publish] if e[0] == "sync"}
  written = {os.path.join(new, os.path.relpath(os.path.join(d, n), final))
             for d, _, names in os.walk(final) for n in names}
  assert written and written <= synced, sorted(written - synced)[:3]
  assert ("sync", str(tmp_path)) in events[publish:]


# --- 4. checksums ----------------------------------------------------------------


def _flip_in_files(root, raw):
  """Flips 16 bytes of ``raw`` where it is stored under ``root``; the file flipped."""
  for folder, _, names in os.walk(root):
    for name in names:
      path = os.path.join(folder, name)
      with open(path, "rb") as f:
        data = bytearray(f.read())
      at = data.find(raw[64:128])
      if at >= 0:
        data[at:at + 16] = bytes(b ^ 0xFF for b in data[at:at + 16])
        with open(path, "wb") as f:
          f.write(data)
        return path
  return None


@pytest.mark.parametrize("checksum", [True, False])
def test_flipped_bytes_in_a_moment_are_caught(checksum, tmp_path):
  """16 flipped bytes in mu's chunk: CheckpointMismatchError naming it (silent without checksum)."""
  tx = jn.adam(0.1)
  params = {"w": jnp.ones(1000), "b": jnp.ones(3)}
  state = tx.init(params)
  # Random bits do not compress, so the chunk holds mu's bytes as they are.
  bits = np.random.default_rng(0).integers(0, 2**32, 1000, dtype=np.uint32).view(np.float32)
  state = (state[0]._replace(mu={"w": jnp.asarray(bits), "b": state[0].mu["b"]}), state[1])
  ckpt.save_checkpoint(tmp_path, 1, params, state, **({} if checksum else {"checksum": False}))
  assert _flip_in_files(tmp_path / "1", bits.tobytes()) is not None
  if checksum:
    with pytest.raises(ckpt.CheckpointMismatchError, match=r"corrupted.*opt_state\[0\]\.mu\['w'\]"):
      ckpt.restore_checkpoint(tmp_path, params, tx)
  else:  # what the checksum guards against: wrong numbers, no error
    _, restored, _ = ckpt.restore_checkpoint(tmp_path, params, tx)
    assert np.asarray(restored[0].mu["w"]).tobytes() != bits.tobytes()


# --- 5. what cannot be restored exactly --------------------------------------------


def test_foreign_orbax_checkpoint_without_meta_names_what_it_holds(tmp_path):
  manager = ocp.CheckpointManager(os.fspath(tmp_path))
  manager.save(0, args=ocp.args.Composite(state=ocp.args.StandardSave({"x": jnp.ones(2)})))
  manager.wait_until_finished()
  manager.close()
  with pytest.raises(ckpt.CheckpointMismatchError, match=r"not written by.*\['state'\].*no 'meta'"):
    ckpt.restore_checkpoint(tmp_path, {"w": jnp.ones(1)}, jn.sgd(0.1))


@pytest.mark.skipif(jax.config.jax_enable_x64, reason="64-bit leaves round-trip with x64 on")
@pytest.mark.parametrize(
    "params, opt_state, message",
    [
        ({"n": np.array([2**63, 1], np.uint64)}, (), r"`params` leaf params\['n'\] is a numpy uint64"),
        ({"w": np.ones(2, np.float32)}, {"acc": np.array(1 / 3, np.float64)},
         r"`opt_state` leaf opt_state\['acc'\] is a numpy float64"),
        ({"i": np.array([2**40], np.int64)}, (), r"params\['i'\] is a numpy int64.*int32"),
    ],
    ids=["uint64", "float64", "int64"],
)
def test_numpy_64_bit_leaves_are_refused_with_x64_off(params, opt_state, message, tmp_path):
  """What JAX would truncate is refused before anything is written."""
  with pytest.raises(ValueError, match=message):
    ckpt.save_checkpoint(tmp_path, 1, params, opt_state)
  assert ckpt.all_checkpoint_steps(tmp_path) == []


@pytest.mark.parametrize(
    "kwargs, error, name",
    [({"checksum": "yes"}, TypeError, "checksum"), ({"overwrite": 1}, TypeError, "overwrite"),
     ({"max_to_keep": 0}, ValueError, "max_to_keep"), ({"max_to_keep": 1.5}, TypeError, "max_to_keep")],
)
def test_bad_arguments_are_named(kwargs, error, name, tmp_path):
  with pytest.raises(error, match=f"`{name}`"):
    ckpt.save_checkpoint(tmp_path, 1, {"w": jnp.ones(1)}, (), **kwargs)
  assert ckpt.all_checkpoint_steps(tmp_path) == []
