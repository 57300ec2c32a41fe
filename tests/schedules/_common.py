"""What the schedule tests share: the steps they sweep and float32 tolerances."""

import chex
import jax.numpy as jnp
import numpy as np

RTOL = 1e-6
STEPS = jnp.arange(5000)
NP_STEPS = np.arange(5000, dtype=np.float64)


def assert_close(actual, expected):
  chex.assert_trees_all_close(actual, expected, rtol=RTOL, atol=0.0)


def assert_close_at_scale(actual, expected):
  """Equal to float32 rounding at the size of the schedule's values.

  Under jit XLA rewrites ``x / c`` as ``x * (1/c)`` and contracts FMAs: a
  one-ulp change of an intermediate, which is not small relative to the
  output where a schedule approaches 0 (``1 - t/T`` at ``t ~ T``).
  """
  scale = float(np.max(np.abs(np.asarray(expected))))
  chex.assert_trees_all_close(actual, expected, rtol=RTOL, atol=RTOL * scale)


def f32(x):
  """The float32 value a hyper-parameter takes inside the schedule."""
  return np.float64(np.float32(x))
