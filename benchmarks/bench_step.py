"""Optimizer step time: jaxopt_notes vs optax vs torch.optim, side by side.

Run from the repository root (after `pip install ".[test]"`, which brings optax and torch):

    python benchmarks/bench_step.py                      # every shape, every optimizer
    python benchmarks/bench_step.py --shapes b --optimizers adam --repeats 30

For each (shape, optimizer) it measures, in one process, interleaving the runners in a fresh
random order each round:

* the median time of one jit-compiled step with params and optimizer state donated
  (``donate_argnums``), after warm-up: ours is ``jn.apply_step`` (the fused single-pass kernel
  where it applies, see ``jaxopt_notes/fused.py``), optax's is ``update`` + ``apply_updates``;
* for the shapes with many leaves, two layouts for many small arrays: "flat state" is
  ``apply_step`` on ``jn.flatten(tx)`` (per-leaf params and grads, one state vector per
  moment: the fused kernel steps it with no concatenation), "flat params" the same optimizer
  on the params concatenated into one vector (what ``fit(..., flat_params=True)`` trains);
* for torch, ``optimizer.step()`` with ``fused=True`` where torch has a fused CPU kernel
  (SGD, Adam, AdamW, Adagrad), else its default (RMSprop);
* the compile time of each jitted step, and its peak memory from XLA's memory analysis
  (arguments + outputs not aliased to a donated input + temporaries) as a multiple of
  params + grads + state;
* for shape b, the achieved bandwidth (nominal bytes: 28 per parameter for Adam/AdamW, 20 for the
  others) next to an in-place streaming kernel with Adam's traffic and no arithmetic;
* for shape b and Adam, the floor of any plain-path kernel: the stream kernel's time plus
  ``apply_updates`` alone (params donated), over optax's ``update`` + ``apply_updates``;
* once, the trace + compile time of a 10-transform chain over 200 leaves, ours vs optax.

It prints markdown tables with the ratios ``ours / optax`` and ``ours / torch`` (below 1 is
faster), and the middle half (quartiles) of the round-by-round ``ours / optax`` ratios: the
noise of that comparison. Shapes (issue "Speed"): a-small ~200 leaves of 1k-10k float32 params; a-large ~200
leaves totalling ~30M; b one 50M leaf; c a tiny model (<10k params, dispatch-bound); d bf16
params with float32 moments where the optimizer has ``mu_dtype`` (ours and optax only: torch's
fused kernels need one dtype; of the kernels only Adadelta's all-bf16 one applies there, the
others run the reference path).
"""

from __future__ import annotations

import argparse
import collections
import random
import re
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
      "sgd": (lambda: jn.sgd(1e-2), lambda: optax.sgd(1e-2),
              lambda p, torch: torch.optim.SGD(p, lr=1e-2, fused=True)),
      "nadam": (lambda: jn.nadam(1e-3, **mu), lambda: optax.nadam(1e-3, **mu),
                lambda p, torch: torch.optim.NAdam(p, lr=1e-3)),
      "nadamw": (lambda: jn.nadamw(1e-3, weight_decay=1e-2, **mu),
                 lambda: optax.nadamw(1e-3, weight_decay=1e-2, **mu),
                 lambda p, torch: torch.optim.NAdam(p, lr=1e-3, weight_decay=1e-2,
                                                    decoupled_weight_decay=True)),
      "radam": (lambda: jn.radam(1e-3), lambda: optax.radam(1e-3),
                lambda p, torch: torch.optim.RAdam(p, lr=1e-3)),
      "amsgrad": (lambda: jn.amsgrad(1e-3, **mu), lambda: optax.amsgrad(1e-3, **mu),
                  lambda p, torch: torch.optim.Adam(p, lr=1e-3, amsgrad=True, fused=True)),
      "adamax": (lambda: jn.adamax(1e-3), lambda: optax.adamax(1e-3),
                 lambda p, torch: torch.optim.Adamax(p, lr=1e-3)),
      "adadelta": (lambda: jn.adadelta(1.0), lambda: optax.adadelta(1.0),
                   lambda p, torch: torch.optim.Adadelta(p, lr=1.0)),
  }
  if name not in table:
    raise ValueError(f"unknown optimizer {name!r}; valid: {sorted(table)}")
  return table[name]


class _Runner:
  """One compiled, donated step: ``run()`` advances it; compile time and memory."""

  def __init__(self, step, params, state, grads):
    jitted = jax.jit(step, donate_argnums=(0, 1))
    t0 = time.perf_counter()
    self.compiled = jitted.lower(params, state, grads).compile()
    self.compile_s = time.perf_counter() - t0
    mem = self.compiled.memory_analysis()
    # Live at the peak: inputs, plus outputs that could not reuse a donated
    # input, plus XLA's temporaries.
    self.peak_bytes = (mem.argument_size_in_bytes + mem.output_size_in_bytes
                       - mem.alias_size_in_bytes + mem.temp_size_in_bytes)
    self.budget_bytes = sum(x.nbytes for x in jax.tree.leaves((params, state, grads)))
    cost = self.compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    # XLA's own count of the bytes its program reads and writes (None where unreported).
    self.bytes_accessed = (cost or {}).get("bytes accessed")
    self.box = [params, state]
    self.grads = grads
    text = self.compiled.as_text()
    self.fused = "jaxopt_notes_" in text
    # Instruction kinds and counts: equal for the same program up to names.
    self.ops = collections.Counter(re.findall(r"= \S+ ([\w-]+)\(", text))

  def __call__(self):
    self.box[0], self.box[1] = self.compiled(self.box[0], self.box[1], self.grads)
    jax.block_until_ready(self.box[0])


def _problem(tx, sizes: list[int], dtype, flat: bool = False):
  keys = jax.random.split(jax.random.key(0), len(sizes))
  params = {f"p{i:03d}": jax.random.normal(k, (n,), dtype) for i, (k, n) in enumerate(zip(keys, sizes))}
  if flat:
    params = {"flat": jnp.concatenate(list(params.values()))}
  grads = jax.tree.map(lambda p: (p * 1e-3).astype(p.dtype), params)
  return params, tx.init(params), grads


def _jax_runner(tx, sizes: list[int], dtype, *, fused: bool | None, flat: bool = False) -> _Runner:
  """Our step (``apply_step``; ``fused=False`` is the reference path, which
  for optax's transforms is exactly ``update`` + ``apply_updates``)."""
  params, state, grads = _problem(tx, sizes, dtype, flat)
  return _Runner(lambda p, s, g: jn.apply_step(tx, g, s, p, fused=fused), params, state, grads)


def _stream_runner(n: int) -> _Runner | None:
  """The in-place streaming kernel: Adam's traffic (4 reads, 3 writes), no math."""
  if not jn.fused_status().available:
    return None
  from jaxopt_notes.kernels import fused  # pylint: disable=g-import-not-at-top
  params = {"p": jnp.ones((n,), jnp.float32)}
  state = (jnp.ones((n,), jnp.float32), jnp.ones((n,), jnp.float32))
  grads = {"p": jnp.ones((n,), jnp.float32)}

  def step(p, s, g):
    new_p, (m, v) = fused.call_kernel("stream", False, jnp.ones((1,), jnp.float32),
                                      [p["p"]], [g["p"]], [[s[0]], [s[1]]])
    return {"p": new_p[0]}, (m[0], v[0])

  return _Runner(step, params, state, grads)


def _add_runner(n: int) -> _Runner:
  """``apply_updates`` alone, params donated: the pass the protocol adds after any ``update``."""
  params, updates = {"p": jnp.ones((n,), jnp.float32)}, {"p": jnp.ones((n,), jnp.float32)}
  return _Runner(lambda p, s, g: (jn.apply_updates(p, g), s), params, (), updates)


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


_SMALL = ("a-small", "c")  # shapes whose step takes milliseconds or less


def _timings(runners: dict[str, Callable[[], None]], repeats: int) -> dict[str, list[float]]:
  """``repeats`` step times per runner, taken in rounds (one step of each)."""
  for run in runners.values():  # warm-up
    run()
    run()
  samples: dict[str, list[float]] = {k: [] for k in runners}
  names = list(runners)
  rng = random.Random(0)
  for _ in range(repeats):
    # Interleave so drift hits every runner alike, in a fresh random order each
    # round: a step pays for the cache its predecessor left, and a fixed
    # (even rotated) cycle gives every runner the same predecessor each time.
    order = names[:]
    rng.shuffle(order)
    for name in order:
      t0 = time.perf_counter()
      runners[name]()
      samples[name].append(time.perf_counter() - t0)
  return samples


def _median_times(runners: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
  return {k: statistics.median(v) for k, v in _timings(runners, repeats).items()}


def _spread(samples: dict[str, list[float]], num: str, den: str) -> str:
  """The middle half of the round-by-round ratios ``num / den``: the noise a
  ratio of medians carries (an interval straddling 1 is no difference)."""
  if num not in samples or den not in samples:
    return "-"
  q = statistics.quantiles([a / b for a, b in zip(samples[num], samples[den])], n=4)
  return f"{q[0]:.2f}-{q[2]:.2f}"


def _ms(t: dict[str, float], key: str) -> str:
  return f"{t[key] * 1e3:.3f}" if key in t else "-"


def _ratio(t: dict[str, float], num: str, den: str) -> str:
  return f"{t[num] / t[den]:.2f}" if num in t and den in t else "-"


def _program(ours: _Runner, opt: _Runner) -> str:
  """Which program ours ran: the fused kernel, or the same HLO as optax's."""
  if ours.fused:
    return "fused"
  return "= optax" if ours.ops == opt.ops else "differs"


def _peak(r: _Runner) -> str:
  """Peak memory as a multiple of params + grads + state (the floor)."""
  return f"{r.peak_bytes / r.budget_bytes:.2f}x"


# Nominal bytes moved per float32 parameter: reads of params, grads and state,
# writes of params and state.
_BYTES_PER_PARAM = {"adam": 28, "adamw": 28, "sgd_momentum": 20, "rmsprop": 20, "adagrad": 20,
                    "sgd": 12, "nadam": 28, "nadamw": 28, "radam": 28, "amsgrad": 36,
                    "adamax": 28, "adadelta": 28}
_ALL = tuple(_BYTES_PER_PARAM)  # every optimizer of the library, in table order


def _chain_compile_times(n_leaves: int = 200, size: int = 1000, tries: int = 3) -> tuple[float, float]:
  """Trace+compile seconds of a 10-transform chain over ``n_leaves`` leaves: ours, optax."""
  import optax  # pylint: disable=g-import-not-at-top

  def build(lib):
    return lib.chain(
        lib.clip_by_global_norm(1.0), lib.add_decayed_weights(1e-4), lib.scale_by_adam(),
        lib.trace(0.9), lib.scale_by_rms(), lib.clip(1.0), lib.add_decayed_weights(1e-5),
        lib.scale(0.5), lib.ema(0.99), lib.scale_by_learning_rate(1e-3),
    )

  params = {f"p{i:03d}": jnp.ones((size,), jnp.float32) for i in range(n_leaves)}
  out = []
  for lib in (jn, optax):
    times = []
    for _ in range(tries):
      tx = build(lib)  # a new chain each time: nothing comes from jit's cache
      state = tx.init(params)

      def step(p, s, g, tx=tx, lib=lib):
        u, s = tx.update(g, s, p)
        return lib.apply_updates(p, u), s

      t0 = time.perf_counter()
      jax.jit(step, donate_argnums=(0, 1)).lower(params, state, params).compile()
      times.append(time.perf_counter() - t0)
    out.append(statistics.median(times))
  return out[0], out[1]


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--shapes", default="a-small,a-large,b,c,d")
  parser.add_argument("--optimizers", default=",".join(_ALL))
  parser.add_argument("--repeats", type=int, default=30)
  parser.add_argument("--small-repeats", type=int, default=150,
                      help="repeats for the millisecond-scale shapes a-small and c, whose "
                           "medians need more samples to settle")
  parser.add_argument("--no-compile-chain", action="store_true",
                      help="skip the 10-transform chain compile-time comparison")
  args = parser.parse_args(argv)
  status = jn.fused_status()
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {args.repeats} repeats "
        f"({args.small_repeats} for a-small and c), median step; "
        f"fused kernel: {'built' if status.available else 'not built: ' + status.reason}")
  print()
  print("| shape | optimizer | ours | ours ms | optax ms | torch ms | ours/optax "
        "| ours/optax middle half | ours/torch | flat state ms | flat state/optax | flat params ms | flat params/optax "
        "| compile ours s | compile optax s | peak ours | peak optax |")
  print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
  b_rows, plain_floor = [], None
  for shape in args.shapes.split(","):
    sizes = _leaf_sizes(shape)
    bf16 = shape == "d"
    dtype = jnp.bfloat16 if bf16 else jnp.float32
    for name in args.optimizers.split(","):
      ours_f, optax_f, torch_f = _optimizers(name, bf16)
      runners: dict[str, Any] = {}
      runners["ours"] = _jax_runner(ours_f(), sizes, dtype, fused=None)
      runners["optax"] = _jax_runner(optax_f(), sizes, dtype, fused=False)
      if len(sizes) > 1 and not bf16:
        runners["state"] = _jax_runner(jn.flatten(ours_f()), sizes, dtype, fused=None)
        runners["flat"] = _jax_runner(ours_f(), sizes, dtype, fused=None, flat=True)
      if shape == "b" and (stream := _stream_runner(sizes[0])) is not None:
        runners["stream"] = stream
        if name == "adam":
          runners["add"] = _add_runner(sizes[0])
      torch_run = None if bf16 else _torch_runner(torch_f, sizes)
      if torch_run is not None:
        runners["torch"] = torch_run
      samples = _timings(runners, args.small_repeats if shape in _SMALL else args.repeats)
      t = {k: statistics.median(v) for k, v in samples.items()}
      ours, opt = runners["ours"], runners["optax"]
      print("| " + " | ".join([
          shape, name, _program(ours, opt), _ms(t, "ours"), _ms(t, "optax"), _ms(t, "torch"),
          _ratio(t, "ours", "optax"), _spread(samples, "ours", "optax"), _ratio(t, "ours", "torch"),
          _ms(t, "state"), _ratio(t, "state", "optax"), _ms(t, "flat"), _ratio(t, "flat", "optax"),
          f"{ours.compile_s:.2f}", f"{opt.compile_s:.2f}", _peak(ours), _peak(opt),
      ]) + " |", flush=True)
      if shape == "b":
        nbytes = _BYTES_PER_PARAM[name] * sizes[0]
        gbs = {k: nbytes / v / 1e9 for k, v in t.items()}
        if "stream" in t:
          gbs["stream"] = 28 * sizes[0] / t["stream"] / 1e9
        b_rows.append((name, gbs))
        if "add" in t:
          plain_floor = (t["stream"] + t["add"]) / t["optax"], opt.bytes_accessed, sizes[0], t
      del runners
  if b_rows:
    print()
    print("Shape b, achieved GB/s of nominal traffic (stream: the in-place kernel with Adam's "
          "4 reads + 3 writes per element and no math):")
    print()
    print("| optimizer | ours GB/s | optax GB/s | torch GB/s | stream GB/s | ours/stream |")
    print("|---|---|---|---|---|---|")
    for name, gbs in b_rows:
      cells = [f"{gbs[k]:.1f}" if k in gbs else "-" for k in ("ours", "optax", "torch", "stream")]
      share = f"{gbs['ours'] / gbs['stream']:.2f}" if "stream" in gbs else "-"
      print("| " + " | ".join([name, *cells, share]) + " |")
  if plain_floor is not None:
    floor, optax_bytes, n, t = plain_floor
    print()
    print("Floor of the plain protocol path for Adam on shape b (an update kernel moving no more than "
          "the stream kernel, then apply_updates' own pass over params and updates): "
          f"(stream + apply_updates) / optax = {floor:.2f}")
    if optax_bytes:
      # The protocol's least traffic: update reads g, m, v and writes m, v, u
      # (24 B); apply_updates reads p, u and writes p (12 B).
      stream_bw = 28 * n / t["stream"]
      print(f"Bytes: optax's update + apply_updates program moves {optax_bytes / n:.0f} B/param "
            "(XLA's cost analysis); any kernel behind tx.update, then apply_updates, moves at least "
            f"24 + 12 = 36: {36 * n / optax_bytes:.2f} of optax's traffic, and at the stream kernel's "
            f"bandwidth {36 * n / stream_bw / t['optax']:.2f} of optax's time")
  if not args.no_compile_chain:
    ours_c, optax_c = _chain_compile_times()
    print()
    print(f"Compile (trace + lower + XLA) of a 10-transform chain over 200 leaves: ours {ours_c:.2f} s, "
          f"optax {optax_c:.2f} s, ratio {ours_c / optax_c:.2f}")


if __name__ == "__main__":
  main()
