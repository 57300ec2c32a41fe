"""Small training problems shared by tests that compare whole runs."""

from __future__ import annotations

import jax.numpy as jnp


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
