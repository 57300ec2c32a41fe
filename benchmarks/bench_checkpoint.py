"""Cost of the per-leaf checksum of ``save_checkpoint`` / ``restore_checkpoint``.

Run from the repository root::

    python benchmarks/bench_checkpoint.py            # 100M parameters (800 MB with momentum)
    python benchmarks/bench_checkpoint.py --params 10_000_000 --repeats 5

It saves a float32 params tree of ``--params`` parameters (in 10 leaves) with
its SGD-momentum state (as many parameters again) ``--repeats`` times with
``checksum=True`` and with ``checksum=False``, interleaved, into a temporary
directory, and restores each, then prints the median seconds of each, the
ratios with/without, and the time of the checksums alone (on a shared
machine the save/restore medians are noisy; the checksum time is what the
option adds to each). The figures quoted in ``save_checkpoint``'s docstring
come from this script on the project's 2-core CPU machine.
"""

import argparse
import shutil
import statistics
import tempfile
import time

import jax

import jaxopt_notes as jn
from jaxopt_notes.training import checkpoint as ckpt


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--params", type=int, default=100_000_000)
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  leaves = 10
  keys = jax.random.split(jax.random.key(0), leaves)
  params = {f"w{i}": jax.random.normal(k, (args.params // leaves,)) for i, k in enumerate(keys)}
  tx = jn.sgd(0.1, momentum=0.9)
  _, state = tx.update(params, tx.init(params))
  jax.block_until_ready((params, state))
  times = {(op, c): [] for op in ("save", "restore") for c in (True, False)}
  root = tempfile.mkdtemp()
  try:
    for r in range(args.repeats):
      for checksum in ((True, False) if r % 2 == 0 else (False, True)):
        directory = f"{root}/{checksum}"
        t = time.perf_counter()
        ckpt.save_checkpoint(directory, r, params, state, checksum=checksum, max_to_keep=1)
        times["save", checksum].append(time.perf_counter() - t)
        t = time.perf_counter()
        out = ckpt.restore_checkpoint(directory, params, tx)
        jax.block_until_ready(out)
        times["restore", checksum].append(time.perf_counter() - t)
        del out
  finally:
    shutil.rmtree(root, ignore_errors=True)
  t = time.perf_counter()
  for leaf in jax.tree.leaves((params, state)):
    ckpt._crc32(leaf)  # pylint: disable=protected-access
  crc = time.perf_counter() - t
  nbytes = sum(x.nbytes for x in jax.tree.leaves((params, state)))
  print(f"{args.params:,} parameters + momentum = {nbytes / 1e6:.0f} MB, {args.repeats} repeats, "
        f"{jax.device_count()} {jax.devices()[0].platform} device(s)")
  for op in ("save", "restore"):
    with_c = statistics.median(times[op, True])
    without = statistics.median(times[op, False])
    print(f"{op:8s} with checksum {with_c:.2f} s, without {without:.2f} s, ratio {with_c / without:.3f}")


  print(f"the checksums alone (CRC-32 of every leaf, as save and restore compute them): {crc:.2f} s")


if __name__ == "__main__":
  main()
