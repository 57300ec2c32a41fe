"""The data-parallel example as two processes on localhost, against one process.

Each run is a subprocess of ``examples/data_parallel.py``: its own JAX
runtime, joined by ``jax.distributed`` (coordinator on 127.0.0.1, gloo CPU
collectives) for the multi-process runs. A run that outlives its time limit
is killed with its whole process group. The reference is optax on one
device, computed here from the example's data, params and loss.
"""

import importlib.util
import os
import pathlib
import signal
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "data_parallel.py"
STEPS, BATCH, LR = 12, 32, 1e-2
TIMEOUT_S = 180


def _example():
  spec = importlib.util.spec_from_file_location("data_parallel_example", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _start(out: pathlib.Path, *args: str) -> subprocess.Popen:
  cmd = [sys.executable, str(SCRIPT), "--steps", str(STEPS), "--batch-size", str(BATCH),
         "--learning-rate", str(LR), "--out", str(out), "--timeout", str(TIMEOUT_S - 20), *args]
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env["JAX_PLATFORMS"] = "cpu"
  # A session of its own, so a hung run is killed with all its workers.
  return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _finish(proc: subprocess.Popen, out: pathlib.Path) -> dict[str, np.ndarray]:
  try:
    log, _ = proc.communicate(timeout=TIMEOUT_S)
  except subprocess.TimeoutExpired:
    os.killpg(proc.pid, signal.SIGKILL)
    log, _ = proc.communicate()
    pytest.fail(f"{proc.args} ran over {TIMEOUT_S} s and was killed:\n{log[-3000:]}")
  finally:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
  assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}:\n{log[-3000:]}"
  with np.load(out) as saved:
    return dict(saved)


def _optax_reference():
  """The same training on one device, with optax."""
  ex = _example()
  x_all, y_all = ex.make_data(0, STEPS * BATCH)
  params = jax.tree.map(np.asarray, ex.init_params(0))
  tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(LR, weight_decay=1e-4))
  state = tx.init(params)

  @jax.jit
  def step(params, state, x, y):
    loss, grads = jax.value_and_grad(ex.loss_fn)(params, x, y)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state, loss

  losses = []
  for i in range(STEPS):
    rows = slice(i * BATCH, (i + 1) * BATCH)
    params, state, loss = step(params, state, x_all[rows], y_all[rows])
    losses.append(float(loss))
  return {k: np.asarray(v) for k, v in params.items()}, np.array(losses)


def _assert_close(run, params, losses, rtol=1e-5, atol=1e-6):
  assert set(params) <= set(run)
  for name, value in params.items():
    np.testing.assert_allclose(run[name], value, rtol=rtol, atol=atol, err_msg=name)
  np.testing.assert_allclose(run["losses"], losses, rtol=rtol)


def test_two_processes_match_one_process_and_optax(tmp_path):
  """2 processes x 1 device equal 1 process x 2 devices; both equal optax on one device."""
  one, two = tmp_path / "one.npz", tmp_path / "two.npz"
  procs = [(_start(one, "--devices", "2"), one), (_start(two, "--launch", "2"), two)]
  single, multi = [_finish(p, out) for p, out in procs]
  ref_params, ref_losses = _optax_reference()
  assert ref_losses[-1] < ref_losses[0]
  # Same program on a mesh of the same size, only split over processes: the
  # all-reduce adds the same two partial sums, so the runs agree bit for bit.
  for name in [*ref_params, "losses"]:
    np.testing.assert_array_equal(multi[name], single[name], err_msg=name)
  # One device sums the batch in another order.
  _assert_close(multi, ref_params, ref_losses)


def test_two_processes_zero1_splits_state_and_matches_optax(tmp_path):
  """2 processes x 2 devices with the moments split over all 4: optax's numbers, 1/4 of the state."""
  out = tmp_path / "zero1.npz"
  run = _finish(_start(out, "--launch", "2", "--devices", "2", "--zero1"), out)
  ref_params, ref_losses = _optax_reference()
  _assert_close(run, ref_params, ref_losses)
  param_bytes = sum(v.nbytes for v in ref_params.values())
  # Replicated, every device would hold mu and nu whole: 2 * param_bytes (+ the count).
  held = run["state_bytes"]
  assert len(held) == 2 and held.max() < 2 * param_bytes / 3, (held, param_bytes)


def test_launcher_kills_its_workers_when_they_run_too_long(tmp_path):
  """A launch over its time limit exits 124 and leaves no worker alive."""
  proc = subprocess.Popen(
      [sys.executable, str(SCRIPT), "--launch", "2", "--timeout", "1", "--steps", "1000"],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
      start_new_session=True,
  )
  try:
    log, _ = proc.communicate(timeout=60)
  finally:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
  assert proc.returncode == 124, log[-3000:]
  # The workers shared the launcher's process group; none of it is left.
  with pytest.raises(ProcessLookupError):
    os.killpg(proc.pid, 0)


# The module docstring's invocations, as written there (default 50 steps).
DOCUMENTED = [(), ("--devices", "2", "--zero1")]


@pytest.mark.parametrize("args", DOCUMENTED, ids=lambda a: " ".join(a) or "default")
def test_documented_invocation_succeeds_every_time(args):
  """Each documented command, three times in a row: no run may abort (XLA rendezvous timeout)."""
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env["JAX_PLATFORMS"] = "cpu"
  for attempt in range(3):
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, f"run {attempt}: exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    assert "loss" in proc.stdout and "rendezvous" not in proc.stderr, proc.stderr[-3000:]
