"""Compile time of one jitted, donated optimizer step against the number of leaves.

Run from the repository root::

    python benchmarks/bench_compile.py                        # 200, 1000, 2000 leaves
    python benchmarks/bench_compile.py --leaves 200,1000,2000,5000 --optimizers adam

For each leaf count and optimizer it lowers and compiles (each in a fresh trace, so no
cache is shared) three steps side by side: ours by default (``apply_step``, the fused kernel
where one applies, in calls of at most ``kernels.fused._GROUP`` leaves), ours with
``fused=False`` (optax's computation), and optax's ``update`` + ``apply_updates``. It prints
the seconds of each and the ratio ours/optax. Leaves are small float32 vectors (50-56
elements), as in a model of many small layers.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import optax

import jaxopt_notes as jn

OPTIMIZERS = {
    "adam": (lambda: jn.adam(1e-3), lambda: optax.adam(1e-3)),
    "sgd_momentum": (lambda: jn.sgd(1e-3, momentum=0.9), lambda: optax.sgd(1e-3, momentum=0.9)),
}


def compile_seconds(tx, n, kind):
  params = {f"p{i:05d}": jnp.ones((50 + i % 7,), jnp.float32) for i in range(n)}
  state = tx.init(params)
  if kind == "optax":
    def step(p, s, g):
      updates, s = tx.update(g, s, p)
      return optax.apply_updates(p, updates), s
  else:
    def step(p, s, g):
      return jn.apply_step(tx, g, s, p, fused=None if kind == "default" else False)
  start = time.perf_counter()
  jax.jit(step, donate_argnums=(0, 1)).lower(params, state, params).compile()
  return time.perf_counter() - start


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--leaves", default="200,1000,2000", help="comma-separated leaf counts")
  parser.add_argument("--optimizers", default="adam,sgd_momentum", help=f"of {', '.join(OPTIMIZERS)}")
  args = parser.parse_args()
  print(f"{'optimizer':<14}{'leaves':>7}{'ours':>9}{'fused=False':>13}{'optax':>9}{'ours/optax':>12}")
  for name in args.optimizers.split(","):
    ours, theirs = OPTIMIZERS[name]
    for n in map(int, args.leaves.split(",")):
      default = compile_seconds(ours(), n, "default")
      plain = compile_seconds(ours(), n, "plain")
      reference = compile_seconds(theirs(), n, "optax")
      print(f"{name:<14}{n:>7}{default:>8.2f}s{plain:>12.2f}s{reference:>8.2f}s{default / reference:>12.2f}")


if __name__ == "__main__":
  main()
