"""Data-parallel training with jaxopt_notes on a device mesh, in one or many processes.

The batch is split over the mesh axis ``"data"``, the params are replicated,
and one ``jax.jit`` step (params and optimizer state donated) computes the
gradient; XLA all-reduces it over ``"data"``, and every device then applies
the same update. ``--zero1`` splits the optimizer's moments over ``"data"``
too (:func:`jaxopt_notes.sharding.shard_state`), so each device keeps a
fraction of them. The same script runs as one process with simulated CPU
devices or as several processes joined by ``jax.distributed``::

  python examples/data_parallel.py                      # 8 simulated CPU devices
  python examples/data_parallel.py --devices 2 --zero1  # moments split too
  python examples/data_parallel.py --launch 2           # 2 processes on localhost
  # one process per host, all with the same coordinator:
  python examples/data_parallel.py --coordinator HOST:PORT --num-processes N --process-id I

Every process builds the same synthetic data and initial params from the
seed, and hands JAX only the rows its own devices hold
(``jax.make_array_from_callback``), as a real input pipeline would. On CPUs
the processes' collectives go through gloo.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxopt_notes as jn
from jaxopt_notes.parallel import sharding as sharding_lib

__all__ = [
    "init_params",
    "launch_local",
    "loss_fn",
    "main",
    "make_data",
    "make_optimizer",
    "parse_args",
    "train",
]

SIZES = (8, 32, 1)  # input, hidden, output


def make_data(seed: int, n: int, d_in: int = SIZES[0]) -> tuple[np.ndarray, np.ndarray]:
  """``n`` examples of a noisy smooth target; identical in every process."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n, d_in)).astype(np.float32)
  y = (np.sin(x @ rng.standard_normal(d_in)) + 0.1 * rng.standard_normal(n)).astype(np.float32)
  return x, y


def init_params(seed: int, sizes: Sequence[int] = SIZES) -> dict[str, np.ndarray]:
  """A small MLP's weights (LeCun normal) and zero biases, on the host."""
  rng = np.random.default_rng(seed + 1)
  params = {}
  for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
    params[f"w{i}"] = (rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32)
    params[f"b{i}"] = np.zeros(b, np.float32)
  return params


def loss_fn(params: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
  """Mean squared error of a tanh MLP."""
  h = x
  layers = len(params) // 2
  for i in range(layers):
    h = h @ params[f"w{i}"] + params[f"b{i}"]
    if i < layers - 1:
      h = jnp.tanh(h)
  return jnp.mean((h[:, 0] - y) ** 2)


def make_optimizer(learning_rate: float) -> jn.GradientTransformation:
  """Clipped AdamW: the clip needs the global norm, one scalar all-reduce."""
  return jn.chain(jn.clip_by_global_norm(1.0), jn.adamw(learning_rate, weight_decay=1e-4))


def _global(host: np.ndarray, sharding: NamedSharding) -> jax.Array:
  # Each process reads only the slices its own devices hold.
  return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def _local_value(x: jax.Array) -> np.ndarray:
  """A replicated array's value, readable in any process."""
  return np.asarray(x.addressable_data(0))


def train(
    mesh: Mesh,
    *,
    steps: int,
    batch_size: int,
    learning_rate: float = 1e-2,
    zero1: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
  """Runs ``steps`` data-parallel steps on ``mesh`` (axis ``"data"``).

  Returns host values: ``params`` (dict of arrays), ``losses`` (per step,
  before the step) and ``state_bytes`` (optimizer-state bytes on each of
  this process's devices).
  """
  data_size = mesh.shape["data"]
  if batch_size % data_size:
    raise ValueError(f"batch_size {batch_size} must be a multiple of the {data_size} data shards")
  replicated = NamedSharding(mesh, P())
  split_rows = NamedSharding(mesh, P("data"))
  x_all, y_all = make_data(seed, steps * batch_size)
  params = jax.tree.map(lambda p: _global(p, replicated), init_params(seed))

  tx = make_optimizer(learning_rate)
  if zero1:
    tx = sharding_lib.shard_state(tx, mesh, "data")
  # Jitted init: the state is created on the devices, placed like the params
  # (or split over "data" with zero1), never gathered on one device.
  opt_state = jax.jit(tx.init)(params)
  state_bytes = sharding_lib.bytes_per_device(opt_state)

  def _step(params, opt_state, x, y):
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    updates, opt_state = tx.update(grads, opt_state, params)
    return jn.apply_updates(params, updates), opt_state, loss

  step = jax.jit(_step, donate_argnums=(0, 1))
  losses = []
  for i in range(steps):
    rows = slice(i * batch_size, (i + 1) * batch_size)
    x = _global(x_all[rows], split_rows)
    y = _global(y_all[rows], split_rows)
    params, opt_state, loss = step(params, opt_state, x, y)
    # One step in flight at a time. With steps dispatched ahead, XLA:CPU's
    # simulated devices (tasks on one shared thread pool) could leave one
    # participant of the gradient all-reduce unscheduled under CPU load until
    # XLA's 40 s rendezvous timeout aborted the process ("Expected 8 threads to
    # join the rendezvous, but only 7 of them arrived"): 3 of 6 runs beside two
    # busy processes on 2 cores, none of 20 with this wait.
    loss.block_until_ready()
    losses.append(loss)
  return {
      "params": jax.tree.map(_local_value, params),
      "losses": np.array([float(_local_value(loss)) for loss in losses]),
      "state_bytes": {d.id: b for d, b in state_bytes.items()},
  }


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def launch_local(num_processes: int, worker_args: Sequence[str], timeout: float = 300.0) -> int:
  """Runs this script as ``num_processes`` workers on localhost; returns the exit code.

  The coordinator listens on ``127.0.0.1`` only. If a worker fails, or all
  have not finished within ``timeout`` seconds, the others are killed.
  """
  coordinator = f"127.0.0.1:{_free_port()}"
  workers = [
      subprocess.Popen([
          sys.executable, os.path.abspath(__file__), *worker_args,
          "--coordinator", coordinator, "--num-processes", str(num_processes),
          "--process-id", str(i),
      ])
      for i in range(num_processes)
  ]
  deadline = time.monotonic() + timeout
  try:
    while True:
      codes = [w.poll() for w in workers]
      if any(c not in (None, 0) for c in codes):
        return next(c for c in codes if c not in (None, 0))
      if all(c == 0 for c in codes):
        return 0
      if time.monotonic() > deadline:
        print(f"workers still running after {timeout} s; killing them", file=sys.stderr)
        return 124
      time.sleep(0.05)
  finally:
    for w in workers:
      if w.poll() is None:
        w.kill()
        w.wait()


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  """Command-line options (see the module docstring)."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--steps", type=int, default=50)
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--learning-rate", type=float, default=1e-2)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--zero1", action="store_true", help="split the moments over 'data'")
  parser.add_argument("--devices", type=int, default=None,
                      help="CPU devices per process (default 8 alone, 1 with others)")
  parser.add_argument("--launch", type=int, default=0, metavar="N",
                      help="run N worker processes on localhost")
  parser.add_argument("--timeout", type=float, default=300.0, help="for --launch, seconds")
  parser.add_argument("--coordinator", help="HOST:PORT of process 0, for multi-process runs")
  parser.add_argument("--num-processes", type=int, default=1)
  parser.add_argument("--process-id", type=int, default=0)
  parser.add_argument("--out", help="process 0 saves params, losses and its devices' "
                      "optimizer-state bytes to this .npz")
  args = parser.parse_args(argv)
  if args.num_processes > 1 and args.coordinator is None:
    parser.error("--num-processes > 1 needs --coordinator HOST:PORT")
  return args


def _without_launch(argv: Optional[Sequence[str]]) -> list[str]:
  """The command line minus ``--launch N`` (or ``--launch=N``), for the workers."""
  args = list(sys.argv[1:] if argv is None else argv)
  out = []
  skip = False
  for a in args:
    if skip:
      skip = False
    elif a == "--launch":
      skip = True
    elif not a.startswith("--launch="):
      out.append(a)
  return out


def _start_runtime(args: argparse.Namespace) -> None:
  """Joins the processes, or sets the simulated device count; before any device use."""
  if args.num_processes > 1:
    # gloo is already the default in jax 0.10; set for older versions.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    host, port = args.coordinator.rsplit(":", 1)
    jax.distributed.initialize(
        coordinator_address=args.coordinator,
        num_processes=args.num_processes,
        process_id=args.process_id,
        # A loopback coordinator listens on loopback only.
        coordinator_bind_address=f"{host}:{port}" if host in ("127.0.0.1", "localhost") else None,
        initialization_timeout=120,
    )
  devices = args.devices or (8 if args.num_processes == 1 else 1)
  jax.config.update("jax_num_cpu_devices", devices)


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Trains and prints the first and last loss; see :func:`parse_args`."""
  args = parse_args(argv)
  if args.launch:
    return launch_local(args.launch, _without_launch(argv), args.timeout)
  _start_runtime(args)
  # Auto axes: XLA propagates the shardings given at the jit boundary.
  mesh = jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  result = train(
      mesh, steps=args.steps, batch_size=args.batch_size,
      learning_rate=args.learning_rate, zero1=args.zero1, seed=args.seed,
  )
  losses = result["losses"]
  print(
      f"process {jax.process_index()}/{jax.process_count()}: {jax.device_count()} devices, "
      f"loss {losses[0]:.4f} -> {losses[-1]:.4f}, optimizer state bytes per device "
      f"{sorted(set(result['state_bytes'].values()))}",
      flush=True,
  )
  if args.out and jax.process_index() == 0:
    np.savez(
        args.out, losses=losses, state_bytes=np.array(list(result["state_bytes"].values())),
        **result["params"],
    )
  if args.num_processes > 1:
    jax.distributed.shutdown()
  return 0


if __name__ == "__main__":
  sys.exit(main())
