"""Optimizer step time: jaxopt_notes vs optax vs torch.optim, side by side.

Run from the repository root (after `pip install ".[test]"`, which brings optax and torch):

    python benchmarks/bench_step.py                      # every shape, the default optimizers
    python benchmarks/bench_step.py --shapes b --optimizers adam --repeats 30

For each (shape, optimizer) it measures, in one process and alternating between the libraries:

* the median time of one jit-compiled update step with params and optimizer state donated
  (``donate_argnums``), after warm-up;
* the compile time of that step;
* for torch, ``optimizer.step()`` with ``fused=True`` where torch has a fused CPU kernel
  (SGD, Adam, AdamW, Adagrad), else its default.

and prints a markdown table with the ratios ``ours / optax`` and ``ours / torch`` (below 1 is
faster). Shapes (issue "Speed"): a-small ~200 leaves of 1k-10k float32 params; a-large ~200
leaves totalling ~30M; b one 50M leaf; c a tiny model (<10k params, dispatch-bound); d bf16
params with float32 moments (ours and optax only: torch's fused kernels need one dtype).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

import jaxopt_notes as jn


def _leaf_sizes(shape: str) -> list[int]:
  rng = np.random.default_rng(0)
  if shape == "a-small":
    return list(rng.integers(1_000, 10_001, size=200))
  if shape == "a-large":
    sizes = rng.integers(50_000, 250_000, size=200)
    return list((sizes * (30_000_000 / sizes.sum())).astype(int))
  if shape == "b":
    return [50_000_000]
  if shape in ("c",):
    return [64 * 32, 32, 32 * 16, 16, 16 * 10, 10]
  if shape == "d":
    return list(rng.integers(50_000, 250_000, size=40))
  raise ValueError(f"unknown shape {shape!r}; valid: a-small, a-large, b, c, d")


# name -> (ours, optax, torch factory or None); the same hyper-parameters in all three.
def _optimizers(name: str, bf16: bool):
  import optax  # pylint: disable=g-import-not-at-top
  mu = {"mu_dtype": jnp.float32} if bf16 else {}
  table = {
      "adam": (lambda: jn.adam(1e-3, **mu), lambda: optax.adam(1e-3, **mu),
               lambda p, torch: torch.optim.Adam(p, lr=1e-3, fused=True)),
      "adamw": (lambda: jn.adamw(1e-3, weight_decay=1e-2, **mu),
                lambda: optax.adamw(1e-3, weight_decay=1e-2, **mu),
                lambda p, torch: torch.optim.AdamW(p, lr=1e-3, weight_decay=1e-2, fused=True)),
      "sgd_momentum": (lambda: jn.sgd(1e-2, momentum=0.9), lambda: optax.sgd(1e-2, momentum=0.9),
                       lambda p, torch: torch.optim.SGD(p, lr=1e-2, momentum=0.9, fused=True)),
      "rmsprop": (lambda: jn.rmsprop(1e-3), lambda: optax.rmsprop(1e-3),
                  lambda p, torch: torch.optim.RMSprop(p, lr=1e-3, alpha=0.9)),
      "adagrad": (lambda: jn.adagrad(1e-2), lambda: optax.adagrad(1e-2),
                  lambda p, torch: torch.optim.Adagrad(p, lr=1e-2, fused=True)),
  }
  if name not in table:
    raise ValueError(f"unknown optimizer {name!r}; valid: {sorted(table)}")
  return table[name]


def _jax_runner(tx, sizes: list[int], dtype) -> tuple[Callable[[], None], float]:
  """A zero-argument callable that runs one donated step, and the compile time."""
  keys = jax.random.split(jax.random.key(0), len(sizes))
  params = {f"p{i}": jax.random.normal(k, (n,), dtype) for i, (k, n) in enumerate(zip(keys, sizes))}
  grads = jax.tree.map(lambda p: (p * 1e-3).astype(p.dtype), params)
  state = tx.init(params)

  def step(params, state, grads):
    updates, state = tx.update(grads, state, params)
    return jn.apply_updates(params, updates), state

  jitted = jax.jit(step, donate_argnums=(0, 1))
  t0 = time.perf_counter()
  compiled = jitted.lower(params, state, grads).compile()
  compile_s = time.perf_counter() - t0
  box = [params, state]

  def run():
    box[0], box[1] = compiled(box[0], box[1], grads)
    jax.block_until_ready(box[0])

  return run, compile_s


def _torch_runner(factory, sizes: list[int]) -> Callable[[], None] | None:
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  gen = torch.Generator().manual_seed(0)
  params = [torch.randn(n, generator=gen, requires_grad=True) for n in sizes]
  for p in params:
    p.grad = p.detach() * 1e-3
  opt = factory(params, torch)
  return opt.step


def _median_times(runners: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
  for run in runners.values():  # warm-up
    run()
    run()
  samples: dict[str, list[float]] = {k: [] for k in runners}
  names = list(runners)
  for r in range(repeats):
    # Alternate so drift hits every library alike, and rotate the order: a step
    # that follows another library's step finds the cache full of its buffers.
    for name in names[r % len(names):] + names[:r % len(names)]:
      t0 = time.perf_counter()
      runners[name]()
      samples[name].append(time.perf_counter() - t0)
  return {k: statistics.median(v) for k, v in samples.items()}


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--shapes", default="a-small,a-large,b,c,d")
  parser.add_argument("--optimizers", default="adam,adamw,sgd_momentum,rmsprop,adagrad")
  parser.add_argument("--repeats", type=int, default=20)
  args = parser.parse_args(argv)
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {args.repeats} repeats, median step")
  print("| shape | optimizer | ours ms | optax ms | torch ms | ours/optax | ours/torch | compile ours s | compile optax s |")
  print("|---|---|---|---|---|---|---|---|---|")
  for shape in args.shapes.split(","):
    sizes = _leaf_sizes(shape)
    bf16 = shape == "d"
    dtype = jnp.bfloat16 if bf16 else jnp.float32
    for name in args.optimizers.split(","):
      ours_f, optax_f, torch_f = _optimizers(name, bf16)
      runners: dict[str, Any] = {}
      runners["ours"], c_ours = _jax_runner(ours_f(), sizes, dtype)
      runners["optax"], c_optax = _jax_runner(optax_f(), sizes, dtype)
      torch_run = None if bf16 else _torch_runner(torch_f, sizes)
      if torch_run is not None:
        runners["torch"] = torch_run
      t = _median_times(runners, args.repeats)
      torch_ms = f"{t['torch'] * 1e3:.3f}" if "torch" in t else "-"
      vs_torch = f"{t['ours'] / t['torch']:.2f}" if "torch" in t else "-"
      print(f"| {shape} | {name} | {t['ours'] * 1e3:.3f} | {t['optax'] * 1e3:.3f} | {torch_ms} | "
            f"{t['ours'] / t['optax']:.2f} | {vs_torch} | {c_ours:.2f} | {c_optax:.2f} |", flush=True)
      del runners


if __name__ == "__main__":
  main()
