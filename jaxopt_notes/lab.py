"""The optimizer lab: the notes' 2-D experiments, compiled with ``lax.scan``.

Notes 001 (SEEDS.md) minimise the anisotropic bowl ``f(x, y) = x^2/20 + y^2``
from ``(-7, 4)`` with SGD, Momentum, AdaGrad, RMSProp and Adam: SGD zig-zags
across the steep ``y`` direction while crawling along the flat ``x`` one,
momentum overshoots and curves back, the adaptive methods head straight for
the minimum. This module runs such experiments and summarises them.
"""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from jaxopt_notes import base
from jaxopt_notes import optimizers
from jaxopt_notes import tree as tree_lib

__all__ = [
    "DEFAULT_OPTIMIZERS",
    "Problem",
    "anisotropic_bowl",
    "compare",
    "summary_rows",
    "trajectory",
]


class Problem(NamedTuple):
  """A test function with its known minimiser and the notes' start point."""

  name: str
  loss: Callable[[jax.Array], jax.Array]
  minimum: tuple[float, ...]
  start: tuple[float, ...]


def anisotropic_bowl() -> Problem:
  r"""Notes 001's :math:`f(x, y) = x^2 / 20 + y^2`, from ``(-7, 4)`` to ``(0, 0)``.

  Its curvature is 20 times larger along ``y`` than along ``x`` (condition
  number 20), which makes plain SGD zig-zag.
  """
  return Problem(
      name="anisotropic_bowl",
      loss=lambda w: w[0] ** 2 / 20.0 + w[1] ** 2,
      minimum=(0.0, 0.0),
      start=(-7.0, 4.0),
  )


def trajectory(
    optimizer: base.GradientTransformation,
    problem: Problem,
    start: Sequence[float] | None = None,
    steps: int = 100,
) -> jax.Array:
  """The iterates ``w_0 .. w_steps`` of ``optimizer`` on ``problem``.

  The whole run is one ``lax.scan`` under ``jit``. Returns an array of shape
  ``(steps + 1, dim)`` whose first row is the start point.
  """
  w0 = jnp.asarray(problem.start if start is None else start, jnp.float32)
  grad = jax.grad(problem.loss)

  @jax.jit
  def run(w0):
    def step(carry, _):
      w, state = carry
      updates, state = optimizer.update(grad(w), state, w)
      w = tree_lib.apply_updates(w, updates)
      return (w, state), w

    _, path = jax.lax.scan(step, (w0, optimizer.init(w0)), None, length=steps)
    return jnp.concatenate([w0[None], path])

  return run(w0)


DEFAULT_OPTIMIZERS: Mapping[str, Callable[[], base.GradientTransformation]] = {
    # Learning rates chosen as in notes 001's figure: each reaches the bowl's
    # minimum in a few dozen to a few hundred steps.
    "sgd": lambda: optimizers.sgd(0.95),
    "momentum": lambda: optimizers.sgd(0.1, momentum=0.9),
    "nesterov": lambda: optimizers.sgd(0.1, momentum=0.9, nesterov=True),
    "adagrad": lambda: optimizers.adagrad(1.5),
    "rmsprop": lambda: optimizers.rmsprop(0.1),
    # Adadelta's first steps are about sqrt(eps) long; the default 1e-6 barely
    # moves on this 2-D toy in 100 steps, so the lab uses a larger eps.
    "adadelta": lambda: optimizers.adadelta(eps=1e-2),
    "adam": lambda: optimizers.adam(0.3),
}


def compare(
    names: Sequence[str] | None = None,
    problem: Problem | None = None,
    steps: int = 100,
) -> dict[str, jax.Array]:
  """Runs several of :data:`DEFAULT_OPTIMIZERS` on one problem."""
  problem = anisotropic_bowl() if problem is None else problem
  names = list(DEFAULT_OPTIMIZERS) if names is None else list(names)
  unknown = [n for n in names if n not in DEFAULT_OPTIMIZERS]
  if unknown:
    raise ValueError(
        f"unknown optimizer(s) {unknown}; valid names: {sorted(DEFAULT_OPTIMIZERS)}"
    )
  return {n: trajectory(DEFAULT_OPTIMIZERS[n](), problem, steps=steps) for n in names}


def summary_rows(
    paths: Mapping[str, jax.Array], problem: Problem, tol: float = 1e-2
) -> list[dict[str, float | int | str | None]]:
  """Final loss, distance to the minimum and first step with loss < ``tol``."""
  rows = []
  target = jnp.asarray(problem.minimum, jnp.float32)
  for name, path in paths.items():
    losses = jax.vmap(problem.loss)(path)
    below = jnp.nonzero(losses < tol, size=1, fill_value=-1)[0][0]
    rows.append({
        "optimizer": name,
        "final_loss": float(losses[-1]),
        "distance": float(jnp.linalg.norm(path[-1] - target)),
        "steps_to_tol": None if int(below) < 0 else int(below),
    })
  return rows
