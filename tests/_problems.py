"""Small training problems shared by tests that compare whole runs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def two_leaf_params():
  """A matrix and a vector: enough structure for per-leaf and global transforms."""
  return {
      "w": jnp.array([[1.0, -2.0, 0.5], [0.3, 2.0, -1.0]], jnp.float32),
      "b": jnp.array([0.25, -0.75], jnp.float32),
  }


def smooth_loss(params):
  """A smooth non-quadratic loss so that gradients depend on the iterate."""
  w, b = params["w"], params["b"]
  return jnp.sum(jnp.sin(w) ** 2) + 0.5 * jnp.sum((w @ jnp.ones(3) - b) ** 2) + jnp.sum(b**4)


def linspace_params(dtype=jnp.float32):
  """A (2, 3) matrix and a 3-vector of fixed, distinct values in ``dtype``."""
  return {
      "w": jnp.linspace(-1.0, 1.0, 6, dtype=dtype).reshape(2, 3),
      "b": jnp.array([0.5, -0.25, 1.0], dtype),
  }


def normal_grads(seed=0, dtype=jnp.float32):
  """Standard-normal gradients shaped like :func:`linspace_params`."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape), dtype), linspace_params())
