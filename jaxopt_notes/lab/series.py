"""Data series of the lab: note 004's daily temperatures and their EMA, and
note 002's minibatch gradient noise.

Re-exported by :mod:`jaxopt_notes.lab`; nothing here imports matplotlib.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.transforms import moments

__all__ = ["ema_series", "london_temperatures", "minibatch_gradient_variance"]


def london_temperatures(days: int = 365, seed: int = 0) -> np.ndarray:
  """A synthetic year of daily mean temperatures in London, in degrees Celsius.

  Note 004 smooths a year of London's daily temperatures; that data set is
  not available offline, so this is a stand-in with the same shape: a
  seasonal cycle (mean 11.3 C, amplitude 6.7 C, coldest around 15 January,
  close to London's 1991-2020 normals) plus day-to-day weather, an AR(1)
  process with lag-one correlation 0.7 and standard deviation 2.5 C. Day 0
  is 1 January. Deterministic: the same ``seed`` gives the same series.
  """
  rng = np.random.default_rng(seed)
  t = np.arange(days, dtype=np.float64)
  season = 11.3 - 6.7 * np.cos(2 * np.pi * (t - 15) / 365.25)
  phi, sd = 0.7, 2.5
  shocks = rng.normal(0.0, sd * math.sqrt(1 - phi**2), days)
  weather = np.empty(days)
  weather[0] = rng.normal(0.0, sd)
  for i in range(1, days):
    weather[i] = phi * weather[i - 1] + shocks[i]
  return (season + weather).astype(np.float32)


def ema_series(values: Any, beta: float, bias_correction: bool = True) -> np.ndarray:
  r"""Note 004's exponentially weighted average of a series, one value per step.

  .. math:: V_0 = 0,\quad V_t = \beta V_{t-1} + (1 - \beta)\,\theta_t,
     \quad\text{reported as } V_t / (1 - \beta^t) \text{ with bias correction}

  ``V_t`` averages roughly the last ``1 / (1 - beta)`` values (0.5: 2 days,
  0.9: 10, 0.98: 50). Without correction the first values are pulled toward
  the zero start (``V_1 = (1 - beta) theta_1``). Computed by running the
  library's :func:`~jaxopt_notes.ema` transform over the series in one
  ``lax.scan``.
  """
  tx = moments.ema(beta, debias=bias_correction)
  theta = jnp.asarray(values, jnp.float32)

  def step(state, x):
    out, state = tx.update(x, state)
    return state, out

  _, out = jax.lax.scan(step, tx.init(theta[0]), theta)
  return np.asarray(out)


def minibatch_gradient_variance(
    loss_fn: Callable[[Any, Any], jax.Array],
    params: Any,
    data: Any,
    batch_sizes: Sequence[int],
    *,
    key: jax.Array,
    samples: int = 256,
) -> np.ndarray:
  r"""The variance of minibatch gradients, for each batch size.

  .. math:: \mathrm{Var}_n = \mathbb{E}\,\lVert \nabla L_B(w) - \nabla L(w) \rVert^2
     \approx \frac{\sigma^2}{n}\cdot\frac{N - n}{N - 1}

  over batches ``B`` of ``n`` examples drawn without replacement from the
  ``N`` in ``data`` (``sigma^2``: the total variance of one example's
  gradient). Note 002: the standard error of a mean of ``n`` samples is
  ``sigma / sqrt(n)``, so quadrupling the batch halves the noise. Estimated
  from ``samples`` batches per size.

  Args:
    loss_fn: ``loss_fn(params, batch) -> scalar``, the mean over the batch.
    params: the point at which gradients are taken.
    data: a pytree of arrays with a leading axis of ``N`` examples.
    batch_sizes: the sizes ``n`` to measure (each ``<= N``).
    key: ``jax.random`` key for the batches.
    samples: batches per size (default 256).

  Returns:
    A float64 array, one variance per batch size.
  """
  n_total = jax.tree.leaves(data)[0].shape[0]
  grad = jax.grad(loss_fn)
  flat = lambda g: jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(g)])
  full = flat(grad(params, data))
  out = []
  for i, n in enumerate(batch_sizes):
    if not 1 <= n <= n_total:
      raise ValueError(f"batch size {n} is not in 1..{n_total}")

    @jax.jit
    def sample(k, n=n):
      # The n largest of N uniforms are a uniform n-subset; top_k is ~10x
      # faster on a CPU than choice(replace=False)'s full permutation.
      idx = jax.lax.top_k(jax.random.uniform(k, (n_total,)), n)[1]
      batch = jax.tree.map(lambda x: x[idx], data)
      return jnp.sum((flat(grad(params, batch)) - full) ** 2)

    keys = jax.random.split(jax.random.fold_in(key, i), samples)
    # Vectorised in chunks: one sampled batch at a time is slow on a CPU.
    out.append(float(jnp.mean(jax.lax.map(sample, keys, batch_size=min(samples, 128)))))
  return np.asarray(out, np.float64)
