"""scale, scale_by_learning_rate, scale_by_schedule and add_decayed_weights:
100-step trajectories equal to optax's."""

import chex
import jax
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj


class TestScale(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_matches_optax(self, dtype):
    """scale(s) multiplies by s exactly as optax.scale (EmptyState kept)."""
    step_size = -0.1
    tj.compare_with_optax(
        self.variant, lambda: jn.scale(step_size), lambda: optax.scale(step_size), dtype
    )


class TestScaleByLearningRate(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize(
      "lr_kind,flip_sign,dtype",
      [(k, True, d) for k in tj.LR_KINDS for d in tj.DTYPES]
      + [(k, False, "float32") for k in tj.LR_KINDS],
  )
  def test_matches_optax(self, lr_kind, flip_sign, dtype):
    """A float, a lambda schedule or an optax schedule, either sign.

    flip_sign=False climbs the loss; with lr 0.01 it stays finite for 100
    steps and must still equal optax's trajectory.
    """
    lr = tj.learning_rate(lr_kind, 0.05 if flip_sign else 0.01)
    tj.compare_with_optax(
        self.variant,
        lambda: jn.scale_by_learning_rate(lr, flip_sign=flip_sign),
        lambda: optax.scale_by_learning_rate(lr, flip_sign=flip_sign),
        dtype,
    )

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_none_is_identity_as_in_optax(self, dtype):
    """learning_rate=None: no scaling and no sign flip, as in optax.

    Followed by a descent step so the params move; the updates of the None
    link itself are the gradients.
    """
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: jn.chain(jn.scale_by_learning_rate(None), jn.scale(-0.05)),
        lambda: optax.chain(optax.scale_by_learning_rate(None), optax.scale(-0.05)),
        dtype,
    )
    chex.assert_trees_all_close(
        ours.updates, jax.tree.map(lambda g: -0.05 * g, ours.grads), **tj.tolerance(dtype)
    )


class TestScaleBySchedule(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("lr_kind", ["lambda", "optax_schedule"])
  def test_matches_optax(self, lr_kind, dtype):
    """scale_by_schedule(s) uses s(count) with count from 0, as optax."""
    schedule = tj.learning_rate(lr_kind, -0.05)
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: jn.scale_by_schedule(schedule),
        lambda: optax.scale_by_schedule(schedule),
        dtype,
    )
    assert int(ours.state.count) == tj.STEPS

  @chex.variants(with_jit=True, without_jit=True)
  def test_piecewise_schedule_matches_optax(self):
    """A schedule with a jump (optax.piecewise_constant_schedule) at step 30."""
    schedule = optax.piecewise_constant_schedule(-0.05, {30: 0.1, 60: 5.0})
    tj.compare_with_optax(
        self.variant,
        lambda: jn.scale_by_schedule(schedule),
        lambda: optax.scale_by_schedule(schedule),
    )


def _decay_then_sgd(lib, weight_decay, mask=None):
  return lib.chain(lib.add_decayed_weights(weight_decay, mask), lib.scale(-0.05))


def _matrices_only(params):
  return jax.tree.map(lambda p: p.ndim == 2, params)


class TestAddDecayedWeights(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("weight_decay", [0.0, 0.3, -0.2])
  def test_float_matches_optax(self, weight_decay, dtype):
    """A constant decay (including the 0.0 shortcut) adds wd * params like optax.

    A negative one (fromage adds 1/sqrt(1 + lr^2) - 1) is accepted as in optax.
    """
    tj.compare_with_optax(
        self.variant,
        lambda: _decay_then_sgd(jn, weight_decay),
        lambda: _decay_then_sgd(optax, weight_decay),
        dtype,
    )

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("lr_kind", ["lambda", "optax_schedule"])
  def test_schedule_matches_optax(self, lr_kind, dtype):
    """A scheduled decay is evaluated at the pre-increment count, as in optax."""
    schedule = tj.learning_rate(lr_kind, 0.5)
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _decay_then_sgd(jn, schedule),
        lambda: _decay_then_sgd(optax, schedule),
        dtype,
    )
    assert int(ours.state[0].count) == tj.STEPS

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("mask_kind,wd_kind", [("tree", "float"), ("callable", "lambda")])
  def test_mask_matches_optax(self, wd_kind, mask_kind, dtype):
    """Decay on matrices only, the mask as a bool tree or a callable.

    Checks that the unmasked leaves receive exactly the plain gradient step
    and the masked state layout (MaskedState, MaskedNode) equals optax's.
    """
    wd = tj.learning_rate(wd_kind, 0.3)
    mask = _matrices_only if mask_kind == "callable" else _matrices_only(tj.make_params())
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _decay_then_sgd(jn, wd, mask),
        lambda: _decay_then_sgd(optax, wd, mask),
        dtype,
    )
    plain_step = jax.tree.map(lambda g: -0.05 * g, ours.grads)
    flags = _matrices_only(jax.tree.map(lambda h: h[0], ours.history))
    for decayed, got, plain in zip(
        jax.tree.leaves(flags), jax.tree.leaves(ours.updates), jax.tree.leaves(plain_step)
    ):
      assert decayed != np.allclose(got, plain, rtol=0, atol=0)


  @chex.variants(with_jit=True, without_jit=True)
  def test_negative_schedule_matches_optax(self):
    """A schedule of negative rates, as fromage builds from a learning-rate schedule."""
    schedule = lambda t: -0.3 / (1 + 0.05 * t)
    ours, _ = tj.compare_with_optax(
        self.variant, lambda: _decay_then_sgd(jn, schedule), lambda: _decay_then_sgd(optax, schedule)
    )
    # u = g - 0.3 w / (1 + 0.05 t), stepped by -0.05: the decay pushes the params outwards.
    before = jax.tree.map(
        lambda p0, h: np.concatenate([np.asarray(p0)[None], h[:-1]]), tj.make_params(), ours.history
    )
    rate = np.array([schedule(t) for t in range(tj.STEPS)], np.float32)
    for g, u, w in zip(*map(jax.tree.leaves, (ours.grads, ours.updates, before))):
      r = rate.reshape((-1,) + (1,) * (np.ndim(w) - 1))
      np.testing.assert_allclose(u, -0.05 * (g + r * w), **tj.formula_tolerance("float32"))

  @pytest.mark.parametrize("value,error", [
      (float("nan"), ValueError), (float("inf"), ValueError), (-float("inf"), ValueError),
      (True, TypeError), ("0.1", TypeError), (None, TypeError),
  ])
  def test_non_finite_or_non_number_is_refused(self, value, error):
    """Any finite rate is allowed; NaN, infinities, bools and strings raise naming `weight_decay`."""
    with pytest.raises(error, match="`weight_decay`"):
      jn.add_decayed_weights(value)
    jn.add_decayed_weights(-1.0)  # a finite negative rate builds


class TestHarness(tj.VariantsTest):
  """The shared harness (tests/_trajectory.py) can fail: sanity checks."""

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_detects_a_small_difference(self, dtype):
    """A step size off by 1e-5 (relative) is caught in either dtype."""
    with pytest.raises(AssertionError):
      tj.compare_with_optax(
          self.variant, lambda: jn.scale(-0.1), lambda: optax.scale(-0.1 * (1 + 1e-5)), dtype
      )

  def test_state_comparator_checks_field_names_and_order(self):
    """Same-named fields in another class pass; reordered or renamed fail."""
    from typing import NamedTuple

    class A(NamedTuple):
      mu: object
      nu: object

    class B(NamedTuple):
      mu: object
      nu: object

    class Swapped(NamedTuple):
      nu: object
      mu: object

    class Renamed(NamedTuple):
      mu: object
      nus: object

    x, y = np.ones(3, np.float32), np.zeros(2, np.float32)
    tj.assert_states_close((A(x, y), {"k": [A(x, None)]}), (B(x, y), {"k": [B(x, None)]}))
    for other in (Swapped(x, y), Renamed(x, y)):
      with pytest.raises(AssertionError):
        tj.assert_states_close(A(x, y), other)
    with pytest.raises(AssertionError):
      tj.assert_states_close(A(x, y), B(x, y + 1e-3))
    with pytest.raises(AssertionError):  # dtype
      tj.assert_states_close(A(x, y), B(x.astype(np.float64), y))

  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_params_and_problem(self, dtype):
    """Nested dict/list/tuple with a scalar, vector, matrix and None, in dtype;
    the gradient depends on the params and on the step."""
    with tj.precision(dtype):
      params = tj.make_params(0, dtype)
      leaves = jax.tree.leaves(params)
      assert {x.ndim for x in leaves} == {0, 1, 2}
      assert {x.dtype for x in leaves} == {np.dtype(dtype)}
      assert None in params["layer"][1]
      assert isinstance(params["layer"], list) and isinstance(params["layer"][1], tuple)
      problem = tj.make_problem(params)
      g = tj.loss_grad(problem, params, np.int32(0))
      g_moved = tj.loss_grad(problem, jax.tree.map(lambda p: p + 1, params), np.int32(0))
      g_later = tj.loss_grad(problem, params, np.int32(1))
    for a, b, c in zip(*map(jax.tree.leaves, (g, g_moved, g_later))):
      assert a.dtype == np.dtype(dtype)
      assert not np.allclose(a, b) and not np.allclose(a, c)
