"""Tests for the interpolated schedules (``schedules/interpolated.py``): where
optax silently misbehaves, each refuses or keeps its peak; the levels are the
products of the scales, reached at the boundaries.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_notes import schedules as S
from tests.schedules._common import STEPS, assert_close


def test_optax_sorts_interpolation_boundaries_we_require_them_sorted():
  ref = optax.piecewise_interpolate_schedule("linear", 1.0, {20: 0.5, 10: 0.1})
  ours = S.piecewise_interpolate_schedule("linear", 1.0, {10: 0.1, 20: 0.5})
  assert_close(jax.vmap(ours)(STEPS[:100]), jax.vmap(ref)(STEPS[:100]))


def test_optax_warmup_constant_with_no_warmup_never_reaches_the_peak():
  ref = optax.warmup_constant_schedule(0.0, 1.0, 0)
  assert float(jnp.max(jax.vmap(ref)(STEPS))) == 0.0  # stuck at init_value
  with pytest.raises(ValueError, match="`warmup_steps`"):
    S.warmup_constant_schedule(0.0, 1.0, 0)


def test_optax_linear_onecycle_drops_the_peak_when_boundaries_collide():
  ref = optax.linear_onecycle_schedule(1, 1.0)  # int(0.3) == int(0.85) == 0
  assert float(jnp.max(jax.vmap(ref)(jnp.arange(10)))) < 0.05  # never near peak_value
  ours = S.linear_onecycle_schedule(2, 1.0)  # the shortest default cycle that keeps it
  assert float(ours(0)) == pytest.approx(1.0)


def test_interpolated_schedules_hit_their_levels():
  # The levels are products of the scales, reached exactly at the boundaries;
  # the expected values are those products and the cosine's half-way point.
  sched = S.piecewise_interpolate_schedule("cosine", 2.0, {10: 0.5, 30: 0.1})
  want = {0: 2.0, 10: 1.0, 20: 0.55, 30: 0.1, 31: 0.1, 10**6: 0.1}
  for t, v in want.items():
    np.testing.assert_allclose(float(sched(t)), v, rtol=1e-6)
  np.testing.assert_allclose(float(sched(5)), 1.0 + 0.5 * (2.0 - 1.0) * (1 + np.cos(np.pi * 0.5)), rtol=1e-6)
  assert float(sched(-1)) == 0.0  # before step 0, as optax
  onecycle = S.linear_onecycle_schedule(100, 1.0)
  for t, v in {0: 0.04, 15: 0.52, 30: 1.0, 85: 0.04, 100: 4e-6, 500: 4e-6}.items():
    np.testing.assert_allclose(float(onecycle(t)), v, rtol=1e-5)
