"""Step time of the matrix methods (Muon, SOAP): ours vs optax vs the torch references.

Run from the repository root (after ``pip install ".[test]"``, which brings optax, torch and
pytorch-optimizer)::

    python benchmarks/bench_matrix.py                     # 12 layers, width 768, 10 rounds
    python benchmarks/bench_matrix.py --layers 2 --repeats 20

The params are the matrices of a GPT-2-small-like transformer body (``--layers`` blocks of
width ``--width``): per block the query, key, value and output projections (width x width)
and the MLP's two matrices (width x 4 width, 4 width x width); 12 layers of width 768 are
72 matrices, 85M params. Only matrices, because torch's ``Muon`` takes nothing else and the
vectors' AdamW step is not what is measured here.

Each runner takes one whole step (the update and its application to the params) as one
jitted program with params and state donated, or torch's ``optimizer.step()`` with
``torch.set_num_threads`` set to the CPU count; the step time is the median of rounds that
interleave every runner in a fresh random order (``bench_step._timings``):

* Muon: ``jn.contrib.muon`` vs ``optax.contrib.muon`` (both Newton-Schulz in float32, the
  gradients' dtype), and ``jn.torch_compat.muon`` vs ``torch.optim.Muon`` (both in bfloat16,
  as torch casts the momentum before its 5 Newton-Schulz steps);
* SOAP: ours vs ``pytorch_optimizer.SOAP``, with the basis
  refreshed every 10 steps (the reference's default) so that a median over rounds includes
  the eigendecomposition's share.

It prints each median in ms and the ratios with the middle half of the round-by-round ratios
(the noise; an interval straddling 1 is no difference).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxopt_notes as jn
import jaxopt_notes.contrib as jnc
from jaxopt_notes import torch_compat as tc

sys.path.insert(0, os.path.dirname(__file__))
from bench_step import _Runner, _spread, _timings  # noqa: E402  # pylint: disable=wrong-import-position

LR = 1e-3


def _shapes(layers: int, width: int) -> list[tuple[int, int]]:
  block = [(width, width)] * 4 + [(width, 4 * width), (4 * width, width)]
  return block * layers


def _params(shapes, seed=0) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  return {f"m{i:03d}": (0.02 * rng.standard_normal(s)).astype(np.float32) for i, s in enumerate(shapes)}


def _jax_runner(tx, host: dict[str, np.ndarray]) -> _Runner:
  params = {k: jnp.asarray(v) for k, v in host.items()}
  grads = {k: jnp.asarray(0.01 * np.cos(v)) for k, v in host.items()}
  # Distinct buffers: a state may hold one zeros array twice, and donation takes each once.
  state = jax.tree.map(jnp.copy, tx.init(params))

  def step(params, state, grads):
    updates, state = tx.update(grads, state, params)
    return jn.apply_updates(params, updates), state

  return _Runner(step, params, state, grads)


def _torch_runner(make: Callable[[Any, list], Any], host: dict[str, np.ndarray]) -> Callable[[], None]:
  import torch  # pylint: disable=import-outside-toplevel

  torch.set_num_threads(os.cpu_count() or 1)
  params = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in host.values()]
  for p, v in zip(params, host.values()):
    p.grad = torch.from_numpy((0.01 * np.cos(v)).astype(np.float32))
  opt = make(torch, params)

  def run():
    opt.step()

  return run


def _row(name: str, samples: dict[str, list[float]], ours: str, others: list[str]) -> str:
  med = {k: float(np.median(v)) for k, v in samples.items()}
  cells = [name] + [f"{med[k] * 1e3:.1f}" if k in med else "-" for k in [ours, *others]]
  for other in others:
    cells.append(f"{med[ours] / med[other]:.2f} ({_spread(samples, ours, other)})" if other in med else "-")
  return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--layers", type=int, default=12)
  parser.add_argument("--width", type=int, default=768)
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--methods", default="muon,soap")
  args = parser.parse_args(argv)
  shapes = _shapes(args.layers, args.width)
  host = _params(shapes)
  n = sum(int(np.prod(s)) for s in shapes)
  print(f"jax {jax.__version__}, {os.cpu_count()} CPUs; {len(shapes)} matrices, {n / 1e6:.1f}M params\n")
  methods = args.methods.split(",")
  if "muon" in methods:
    ours, theirs = _jax_runner(jnc.muon(LR), host), _jax_runner(optax.contrib.muon(LR), host)
    runners: dict[str, Callable[[], None]] = {
        "ours": ours, "optax": theirs, "ours_torch": _jax_runner(tc.muon(LR), host),
        "torch": _torch_runner(lambda torch, ps: torch.optim.Muon(ps, lr=LR), host),
    }
    samples = _timings(runners, args.repeats)
    print("| method | ours ms | reference ms | ours/reference (noise) |")
    print("|---|---|---|---|")
    print(_row("muon vs optax.contrib.muon (float32)", samples, "ours", ["optax"]))
    print(_row("torch_compat.muon vs torch.optim.Muon (bfloat16)", samples, "ours_torch", ["torch"]), flush=True)
    print(f"\nours compiled to optax's program (equal instruction kinds and counts): {ours.ops == theirs.ops}")
  if "soap" in methods:
    import pytorch_optimizer  # pylint: disable=import-outside-toplevel

    runners = {
        "ours": _jax_runner(jnc.soap(LR), host),
        "torch": _torch_runner(lambda torch, ps: pytorch_optimizer.SOAP(ps, lr=LR), host),
    }
    print("\n| method | ours ms | reference ms | ours/reference (noise) |")
    print("|---|---|---|---|")
    print(_row("soap vs pytorch_optimizer.SOAP", _timings(runners, args.repeats), "ours", ["torch"]), flush=True)


if __name__ == "__main__":
  main()
