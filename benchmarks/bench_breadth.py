"""Step time of the optimizers added for optax breadth: jaxopt_notes vs optax, side by side.

Run from the repository root (after `pip install ".[test]"`, which brings optax):

    python benchmarks/bench_breadth.py                        # every optimizer, shapes a-small, a-large, b, c
    python benchmarks/bench_breadth.py --optimizers lion,lamb --shapes b --repeats 20

For each (shape, optimizer) it builds ours and optax's with the same hyper-parameters, compiles
one jitted step each (``update`` + ``apply_updates``, params and state donated), and times them
interleaved in a fresh random order each round (``bench_step._timings``). It prints the median
step of each, the ratio ours/optax with the middle half of the round-by-round ratios (the
noise: an interval straddling 1 is no difference), and whether ours compiled to the same
program as optax's (instruction kinds and counts of the optimized HLO equal). Shapes are
``bench_step.py``'s: a-small ~200 leaves of 1k-10k params, a-large ~200 leaves totalling ~30M,
b one 50M leaf, c a tiny model (<10k params). Optimizers that need the loss (``polyak_sgd``)
get ``value=`` as an extra argument; L-BFGS is left out (its step runs a line search that calls
the loss, not a fixed program).
"""

from __future__ import annotations

import argparse
import statistics

import jax
import jax.numpy as jnp
from bench_step import _SMALL, _leaf_sizes, _problem, _program, _Runner, _spread, _timings

import jaxopt_notes as jn


def _optimizers(lib):
  """name -> factory of ``lib``'s optimizer (``lib`` is jaxopt_notes or optax)."""
  return {
      "lion": lambda: lib.lion(1e-4),
      "sign_sgd": lambda: lib.sign_sgd(1e-3),
      "signum": lambda: lib.signum(1e-3),
      "adabelief": lambda: lib.adabelief(1e-3),
      "yogi": lambda: lib.yogi(1e-3),
      "adan": lambda: lib.adan(1e-3),
      "novograd": lambda: lib.novograd(1e-3),
      "adamaxw": lambda: lib.adamaxw(1e-3),
      "lamb": lambda: lib.lamb(1e-3),
      "lars": lambda: lib.lars(1e-3),
      "fromage": lambda: lib.fromage(1e-3),
      "adafactor": lambda: lib.adafactor(1e-3),
      "sm3": lambda: lib.sm3(1e-3),
      "rprop": lambda: lib.rprop(1e-3),
      "noisy_sgd": lambda: lib.noisy_sgd(1e-3, key=0),
      "optimistic_gradient_descent": lambda: lib.optimistic_gradient_descent(1e-3),
      "optimistic_adam": lambda: lib.optimistic_adam(1e-3),
      "optimistic_adam_v2": lambda: lib.optimistic_adam_v2(1e-3),
      "polyak_sgd": lambda: lib.polyak_sgd(),
  }


_NEEDS_VALUE = {"polyak_sgd"}


def _runner(lib, tx, name: str, sizes: list[int]) -> _Runner:
  params, state, grads = _problem(tx, sizes, jnp.float32)
  extra = {"value": jnp.float32(1.0)} if name in _NEEDS_VALUE else {}

  def step(p, s, g):
    u, s = tx.update(g, s, p, **extra)
    return lib.apply_updates(p, u), s

  return _Runner(step, params, state, grads)


def main(argv: list[str] | None = None) -> None:
  import optax  # pylint: disable=g-import-not-at-top

  ours_all, theirs_all = _optimizers(jn), _optimizers(optax)
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--shapes", default="a-small,a-large,b,c")
  parser.add_argument("--optimizers", default=",".join(ours_all))
  parser.add_argument("--repeats", type=int, default=20)
  parser.add_argument("--small-repeats", type=int, default=100)
  args = parser.parse_args(argv)
  print(f"jax {jax.__version__}, optax {optax.__version__} on {jax.devices()[0].platform}; "
        f"median step of update + apply_updates, params and state donated")
  print()
  print("| shape | optimizer | program | ours ms | optax ms | ours/optax | middle half |")
  print("|---|---|---|---|---|---|---|")
  for shape in args.shapes.split(","):
    sizes = _leaf_sizes(shape)
    for name in args.optimizers.split(","):
      if name not in ours_all:
        raise SystemExit(f"unknown optimizer {name!r}; valid: {sorted(ours_all)}")
      runners = {"ours": _runner(jn, ours_all[name](), name, sizes),
                 "optax": _runner(optax, theirs_all[name](), name, sizes)}
      samples = _timings(runners, args.small_repeats if shape in _SMALL else args.repeats)
      t = {k: statistics.median(v) for k, v in samples.items()}
      print(f"| {shape} | {name} | {_program(runners['ours'], runners['optax'])} | {t['ours'] * 1e3:.3f} "
            f"| {t['optax'] * 1e3:.3f} | {t['ours'] / t['optax']:.2f} | {_spread(samples, 'ours', 'optax')} |",
            flush=True)
      del runners


if __name__ == "__main__":
  main()
