"""Tests for the notes' decays in ``jaxopt_notes.schedules`` (``schedules/notes.py``).

Each is checked against its formula re-derived with numpy in float64; the only
literal numbers are the notes' printed table.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_notes import schedules as S
from tests.schedules._common import NP_STEPS, STEPS, assert_close, f32


@pytest.mark.parametrize("init,rate,every,staircase", [
    (0.2, 1.0, 1, False),
    (0.1, 0.5, 100, False),
    (0.1, 0.5, 100, True),
    (1.0, 2.0, 7, True),
    (0.3, 0.0, 10, True),
])
def test_inverse_time_decay_formula(init, rate, every, staircase):
  t = NP_STEPS
  p = np.floor(t / every) if staircase else t / every
  expected = f32(init) / (1.0 + f32(rate) * p)
  sched = S.inverse_time_decay(init, rate, every, staircase)
  assert_close(jax.vmap(sched)(STEPS), expected.astype(np.float32))
  assert_close([sched(int(s)) for s in range(0, 400, 7)],
               list(expected[0:400:7].astype(np.float32)))


@pytest.mark.parametrize("init,k,warmup", [
    (0.1, 1.0, 1), (0.5, 2.0, 100), (1e-3, 0.3, 4000)])
def test_inverse_sqrt_decay_formula(init, k, warmup):
  expected = f32(k) / np.sqrt(np.maximum(NP_STEPS, warmup)) * f32(init)
  sched = S.inverse_sqrt_decay(init, k, warmup)
  values = np.asarray(jax.vmap(sched)(STEPS))
  assert np.all(np.isfinite(values)) and np.isfinite(sched(0))
  assert_close(values, expected.astype(np.float32))
  # After the warm-up it is the notes' k / sqrt(t) * alpha0, unshifted.
  t = NP_STEPS[warmup:]
  assert_close(values[warmup:],
               (f32(k) / np.sqrt(t) * f32(init)).astype(np.float32))
  # The warm-up is a hold at the value of step `warmup`.
  assert np.all(values[:warmup] == values[warmup])


@pytest.mark.parametrize("init,factor,every,end", [
    (0.1, 0.5, 100, None),
    (1.0, 0.1, 1000, 1e-3),
    (0.01, 2.0, 500, 0.5),
    (0.3, 0.9, 37, None),
    (0.3, 0.99, 1, 1e-3),
])
def test_step_decay_formula(init, factor, every, end):
  expected = f32(init) * f32(factor) ** np.floor(NP_STEPS / every)
  if end is not None:
    expected = (np.maximum if factor < 1 else np.minimum)(expected, f32(end))
  sched = S.step_decay(init, factor, every, end)
  assert_close(jax.vmap(sched)(STEPS), expected.astype(np.float32))
  assert_close([sched(int(s)) for s in range(0, 3000, 31)],
               list(expected[0:3000:31].astype(np.float32)))


def test_step_decay_is_optax_staircase_exponential_decay():
  ours = S.step_decay(0.1, 0.5, 100)
  ref = optax.exponential_decay(0.1, 100, 0.5, staircase=True)
  assert_close(jax.vmap(ours)(STEPS), jax.vmap(ref)(STEPS))


def test_notes_table_via_per_epoch():
  """Note 004: alpha0 = 0.2, decay_rate = 1 -> 0.1, 0.067, 0.05, 0.04."""
  printed = [0.1, 0.067, 0.05, 0.04]  # epochs 1..4, as printed in the notes
  spe = 50
  sched = S.per_epoch(S.inverse_time_decay(0.2, decay_rate=1.0), spe,
                      first_epoch=1)
  steps = np.arange(4 * spe)
  epoch = np.repeat(np.arange(1, 5), spe)  # the notes count from epoch 1
  values = np.asarray(jax.vmap(sched)(jnp.asarray(steps)))
  assert_close(values, (f32(0.2) / (1 + 1 * epoch)).astype(np.float32))
  np.testing.assert_allclose(values[::spe], printed, rtol=0, atol=1e-3)
  assert_close([sched(int(s)) for s in steps[::spe]], list(values[::spe]))


def test_per_epoch_default_counts_from_zero():
  spe = 30
  sched = S.per_epoch(S.inverse_time_decay(0.2, 1.0), spe)
  epoch = NP_STEPS // spe
  assert_close(jax.vmap(sched)(STEPS),
               (f32(0.2) / (1 + epoch)).astype(np.float32))
  # the whole first epoch keeps alpha0; the second has alpha0 / (1 + 1)
  assert sched(spe - 1) == pytest.approx(0.2)
  assert sched(spe) == pytest.approx(0.2 / 2)


def test_per_epoch_exponential_and_sqrt_forms_of_the_notes():
  spe, alpha0 = 100, 0.2
  epoch = NP_STEPS[:2000] // spe
  # 0.95 ** epoch * alpha0, epochs from 0 (step 0 keeps alpha0)
  exp = S.per_epoch(S.exponential_decay(alpha0, 1, 0.95), spe)
  assert_close(jax.vmap(exp)(STEPS[:2000]),
               (f32(0.95) ** epoch * f32(alpha0)).astype(np.float32))
  # k / sqrt(epoch) * alpha0, epochs from 1 so no hold is needed
  sq = S.per_epoch(S.inverse_sqrt_decay(alpha0, k=0.5), spe, first_epoch=1)
  assert_close(jax.vmap(sq)(STEPS[:2000]),
               (f32(0.5) / np.sqrt(epoch + 1) * f32(alpha0)).astype(np.float32))
  # halve every 3 epochs
  half = S.per_epoch(S.step_decay(alpha0, 0.5, 3), spe)
  assert_close(jax.vmap(half)(STEPS[:2000]),
               (f32(alpha0) * 0.5 ** (epoch // 3)).astype(np.float32))


def test_per_epoch_with_one_step_epochs_gives_the_notes_iteration_count():
  sched = S.per_epoch(S.inverse_sqrt_decay(1.0), 1, first_epoch=1)
  assert_close(jax.vmap(sched)(STEPS),
               (1.0 / np.sqrt(NP_STEPS + 1)).astype(np.float32))


def test_clamped_pieces_keep_gradients_finite_inside_join():
  def value(lr):
    # the second piece is evaluated at count -1, where 1 + t would be 0
    return S.join_schedules(
        [S.constant_schedule(lr), S.inverse_time_decay(lr, 1.0)], [1])(0)

  assert jax.grad(value)(0.1) == 1.0
