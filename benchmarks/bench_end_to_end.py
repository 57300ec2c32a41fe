"""End-to-end training-step time (forward, backward, optimizer): ours vs optax vs torch.

Run from the repository root (after ``pip install ".[test]"``, which brings optax, flax and
torch)::

    python benchmarks/bench_end_to_end.py                      # every model, 20 rounds
    python benchmarks/bench_end_to_end.py --models mlp --repeats 40
    JAXOPT_NOTES_KEEP_HOST_MEMORY=0 python benchmarks/bench_end_to_end.py  # glibc's malloc defaults

Two flax nnx models with Adam(1e-3):

* ``mlp``: 512 -> 2048 -> 2048 -> 2048 -> 2048 -> 10, ReLU (13.6M params, 10 leaves), batch 64;
  ``mlp-batch8`` the same on batch 8, where the optimizer is a large share of the step
  (``mlp-batch<N>``: any batch size; ``mlp-batch1`` is in the default set);
* ``transformer``: a pre-norm encoder, 12 layers, width 384, 6 heads, MLP 1536, vocabulary
  8192, 64 tokens, batch 4 (about 28M params, 200 leaves), next-token cross-entropy.

Each step is one jitted program over the whole step with the model's params and the
optimizer's state donated, timed as the median of rounds that interleave every runner in a
fresh random order:

* ``optax``: ``optax.adam``'s ``update`` + ``optax.apply_updates`` (the pure-JAX loop every
  tutorial writes);
* ``ours``: ``jn.apply_step(jn.adam(...), ...)``, the default (the fused kernel where it
  applies);
* ``ours fused=False``: the same with the kernel off (optax's arithmetic);
* ``nnx.Optimizer`` and ``jaxopt_notes.flax.Optimizer`` under ``nnx.jit`` with the model and
  optimizer donated (what flax users write);
* ``torch``: the same architecture in torch, ``torch.optim.Adam(fused=True)``, eager
  forward, backward and step (torch's own fast path on the CPU).

Every runner shares the process: ``import jaxopt_notes`` has called
``jn.keep_freed_host_memory()``, which is in effect for all of them (optax's included). It prints
each median in ms, ``ours / optax`` with the middle half of the round-by-round
ratios (the noise; an interval straddling 1 is no difference) and the optimizer's share of
optax's step (optax's step alone, on the same params, over the whole step).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import jaxopt_notes as jn
import jaxopt_notes.flax as jnf

sys.path.insert(0, os.path.dirname(__file__))
from bench_step import _spread, _timings  # noqa: E402  # pylint: disable=wrong-import-position

LR = 1e-3


class MLP(nnx.Module):
  def __init__(self, sizes, rngs):
    self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])

  def __call__(self, x):
    for layer in self.layers[:-1]:
      x = jax.nn.relu(layer(x))
    return self.layers[-1](x)


class Block(nnx.Module):
  def __init__(self, width, heads, hidden, rngs):
    self.ln1, self.ln2 = nnx.LayerNorm(width, rngs=rngs), nnx.LayerNorm(width, rngs=rngs)
    self.attn = nnx.MultiHeadAttention(heads, width, decode=False, rngs=rngs)
    self.up, self.down = nnx.Linear(width, hidden, rngs=rngs), nnx.Linear(hidden, width, rngs=rngs)

  def __call__(self, x, mask):
    x = x + self.attn(self.ln1(x), mask=mask)
    return x + self.down(jax.nn.gelu(self.up(self.ln2(x))))


class Transformer(nnx.Module):
  def __init__(self, vocab, width, heads, hidden, depth, tokens, rngs):
    self.embed = nnx.Embed(vocab, width, rngs=rngs)
    self.position = nnx.Param(jax.random.normal(rngs.params(), (tokens, width)) * 0.02)
    self.blocks = nnx.List([Block(width, heads, hidden, rngs) for _ in range(depth)])
    self.ln = nnx.LayerNorm(width, rngs=rngs)
    self.head = nnx.Linear(width, vocab, rngs=rngs)

  def __call__(self, ids):
    x = self.embed(ids) + self.position[...]
    mask = nnx.make_causal_mask(ids)
    for block in self.blocks:
      x = block(x, mask)
    return self.head(self.ln(x))


def _problem(name: str):
  """(model, loss(model, batch), batch, torch builder)."""
  key = jax.random.key(0)
  if name == "mlp" or name.startswith("mlp-batch"):
    sizes = [512, 2048, 2048, 2048, 2048, 10]
    batch = 64 if name == "mlp" else int(name.removeprefix("mlp-batch"))
    x = jax.random.normal(key, (batch, 512))
    y = jax.random.randint(key, (batch,), 0, 10)

    def loss(model, batch):
      return optax.softmax_cross_entropy_with_integer_labels(model(batch[0]), batch[1]).mean()

    return MLP(sizes, nnx.Rngs(0)), loss, (x, y), lambda torch: _torch_mlp(torch, sizes, x, y)
  if name == "transformer":
    cfg = dict(vocab=8192, width=384, heads=6, hidden=1536, depth=12, tokens=64)
    ids = jax.random.randint(key, (4, cfg["tokens"]), 0, cfg["vocab"])

    def loss(model, ids):
      logits = model(ids)[:, :-1]
      return optax.softmax_cross_entropy_with_integer_labels(logits, ids[:, 1:]).mean()

    model = Transformer(**cfg, rngs=nnx.Rngs(0))
    return model, loss, ids, lambda torch: _torch_transformer(torch, cfg, ids)
  raise ValueError(f"unknown model {name!r}; valid: mlp, mlp-batch<N>, transformer")


def _torch_mlp(torch, sizes, x, y):
  layers = []
  for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
    layers += [torch.nn.Linear(a, b)] + ([torch.nn.ReLU()] if i < len(sizes) - 2 else [])
  model = torch.nn.Sequential(*layers)
  xt, yt = torch.tensor(np.asarray(x)), torch.tensor(np.asarray(y), dtype=torch.long)
  return model, lambda: torch.nn.functional.cross_entropy(model(xt), yt)


def _torch_transformer(torch, cfg, ids):
  width, tokens = cfg["width"], cfg["tokens"]

  class Model(torch.nn.Module):
    def __init__(self):
      super().__init__()
      self.embed = torch.nn.Embedding(cfg["vocab"], width)
      self.position = torch.nn.Parameter(torch.randn(tokens, width) * 0.02)
      layer = torch.nn.TransformerEncoderLayer(width, cfg["heads"], cfg["hidden"], dropout=0.0,
                                               activation="gelu", batch_first=True, norm_first=True)
      self.blocks = torch.nn.TransformerEncoder(layer, cfg["depth"], enable_nested_tensor=False)
      self.ln = torch.nn.LayerNorm(width)
      self.head = torch.nn.Linear(width, cfg["vocab"])

    def forward(self, t):
      mask = torch.nn.Transformer.generate_square_subsequent_mask(tokens)
      return self.head(self.ln(self.blocks(self.embed(t) + self.position, mask=mask, is_causal=True)))

  model = Model()
  t = torch.tensor(np.asarray(ids), dtype=torch.long)

  def loss():
    logits = model(t)[:, :-1]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, cfg["vocab"]), t[:, 1:].reshape(-1))

  return model, loss


def _pure_runner(model, loss, batch, kind: str) -> Callable[[], None]:
  """A jitted, donated step over the split params: optax's loop or ours."""
  graphdef, params = nnx.split(model)
  tx = optax.adam(LR) if kind == "optax" else jn.adam(LR)

  def step(params, state, batch):
    value, grads = jax.value_and_grad(lambda p: loss(nnx.merge(graphdef, p), batch))(params)
    if kind == "optax":
      updates, state = tx.update(grads, state, params)
      return optax.apply_updates(params, updates), state, value
    params, state = jn.apply_step(tx, grads, state, params, fused=None if kind == "ours" else False)
    return params, state, value

  run = jax.jit(step, donate_argnums=(0, 1))
  box = [jax.tree.map(jnp.copy, params), tx.init(params)]

  def once():
    box[0], box[1], value = run(box[0], box[1], batch)
    value.block_until_ready()

  return once


def _nnx_runner(model, loss, batch, cls) -> Callable[[], None]:
  graphdef, state = nnx.split(model)
  model = nnx.merge(graphdef, jax.tree.map(jnp.copy, state))  # its own buffers: they are donated
  optimizer = cls(model, jn.adam(LR) if cls is jnf.Optimizer else optax.adam(LR), wrt=nnx.Param)

  @nnx.jit(donate_argnums=(0, 1))
  def step(model, optimizer, batch):
    value, grads = nnx.value_and_grad(loss)(model, batch)
    optimizer.update(model, grads)
    return value

  return lambda: step(model, optimizer, batch).block_until_ready()


def _torch_runner(build) -> Callable[[], None] | None:
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  torch.manual_seed(0)
  model, loss = build(torch)
  opt = torch.optim.Adam(model.parameters(), lr=LR, fused=True)

  def once():
    opt.zero_grad(set_to_none=True)
    loss().backward()
    opt.step()

  return once


def _optimizer_share(model, samples_optax: list[float], repeats: int) -> float:
  """optax's Adam step alone on the model's params, over optax's whole step."""
  params = nnx.state(model, nnx.Param)
  tx = optax.adam(LR)

  def step(p, s, g):
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  run = jax.jit(step, donate_argnums=(0, 1))
  box = [jax.tree.map(jnp.copy, params), tx.init(params)]
  grads = jax.tree.map(jnp.ones_like, params)

  def once():
    box[0], box[1] = run(box[0], box[1], grads)
    jax.block_until_ready(box)

  alone = _timings({"alone": once}, repeats)["alone"]
  return float(np.median(alone) / np.median(samples_optax))


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--models", default="mlp,mlp-batch8,mlp-batch1,transformer")
  parser.add_argument("--repeats", type=int, default=20)
  args = parser.parse_args(argv)
  print(f"jax {jax.__version__}, {os.cpu_count()} CPUs, fused kernel: {jn.fused_status().available}\n")
  print("| model | params | leaves | optax ms | ours ms | ours fused=False ms | nnx.Optimizer ms "
        "| jnf.Optimizer ms | torch ms | ours/optax | noise | jnf/nnx | ours/torch | optimizer share |")
  print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
  for name in args.models.split(","):
    model, loss, batch, torch_build = _problem(name)
    params = nnx.state(model, nnx.Param)
    n = sum(x.size for x in jax.tree.leaves(params))
    runners = {
        "optax": _pure_runner(model, loss, batch, "optax"),
        "ours": _pure_runner(model, loss, batch, "ours"),
        "ours-ref": _pure_runner(model, loss, batch, "ours-ref"),
        "nnx": _nnx_runner(model, loss, batch, nnx.Optimizer),
        "jnf": _nnx_runner(model, loss, batch, jnf.Optimizer),
    }
    torch_run = _torch_runner(torch_build)
    if torch_run is not None:
      runners["torch"] = torch_run
    samples = _timings(runners, args.repeats)
    med = {k: float(np.median(v)) for k, v in samples.items()}
    ms = lambda k: f"{med[k] * 1e3:.1f}" if k in med else "-"  # pylint: disable=unnecessary-lambda-assignment
    ratio = lambda a, b: f"{med[a] / med[b]:.2f}" if a in med and b in med else "-"  # pylint: disable=unnecessary-lambda-assignment
    share = _optimizer_share(model, samples["optax"], args.repeats)
    print(f"| {name} | {n / 1e6:.1f}M | {len(jax.tree.leaves(params))} | {ms('optax')} | {ms('ours')} "
          f"| {ms('ours-ref')} | {ms('nnx')} | {ms('jnf')} | {ms('torch')} | {ratio('ours', 'optax')} "
          f"| {_spread(samples, 'ours', 'optax')} | {ratio('jnf', 'nnx')} | {ratio('ours', 'torch')} "
          f"| {share:.2f} |", flush=True)


if __name__ == "__main__":
  main()
