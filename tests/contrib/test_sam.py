"""sam and normalize against optax.contrib's (optax 0.2.8).

50-step trajectories bitwise equal (params every step, updates, final
state), jitted in float32 and float64 and op by op for one case: transparent
mode with sync periods 2 and 3, with and without ``reset_state``, around our
optimizers and around optax's; opaque mode with a ``grad_fn``. normalize:
bitwise where the norm is positive, zero (not NaN) where it is zero. Also:
the paper's rule by hand, bad arguments naming themselves.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

import jaxopt_notes as jn
from jaxopt_notes.contrib import _sam as ours
from tests import _trajectory as tj
from tests.contrib import _common as cm


def _core(lib):
  return optax if lib is optax.contrib else jn


def _adv(lib, rho=0.05):
  return _core(lib).chain(lib.normalize(), _core(lib).sgd(rho))


_CASES = {
    "sgd-defaults": lambda lib: lib.sam(_core(lib).sgd(0.1), _adv(lib)),
    "adam-period-3": lambda lib: lib.sam(_core(lib).adam(0.05), _adv(lib, 0.02), sync_period=3),
    "momentum-adv-keep-state": lambda lib: lib.sam(
        _core(lib).sgd(0.1, momentum=0.9), _core(lib).sgd(0.03, momentum=0.5), sync_period=3, reset_state=False
    ),
    "period-1": lambda lib: lib.sam(_core(lib).adam(0.05), _adv(lib), sync_period=1),
}


def _opaque(lib, sync_period, problem):
  tx = lib.sam(_core(lib).adam(0.05), _adv(lib), sync_period=sync_period, opaque_mode=True)
  # The adversarial gradients at a fixed step of the problem: the same for both.
  grad_fn = lambda p, i: tj.loss_grad(problem, p, np.int32(i))
  return tx._replace(update=lambda g, s, p: tx.update(g, s, p, grad_fn=grad_fn))


class TestMatchesOptax(tj.VariantsTest):

  @chex.variants(with_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("case", sorted(_CASES))
  def test_trajectory(self, case, dtype):
    run, _ = cm.compare_case(self.variant, ours, _CASES[case], dtype)
    assert isinstance(run.state, ours.SAMState)
    period = {"adam-period-3": 3, "momentum-adv-keep-state": 3, "period-1": 1}.get(case, 2)
    assert int(run.state.steps_since_sync) == cm.STEPS % period

  @chex.variants(without_jit=True)
  def test_trajectory_op_by_op(self):
    cm.compare_case(self.variant, ours, _CASES["adam-period-3"], "float32")

  @chex.variants(with_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_around_optax_optimizers(self, dtype):
    tj.compare_with_optax(
        self.variant,
        lambda: ours.sam(optax.adam(0.05), optax.chain(ours.normalize(), optax.sgd(0.05))),
        lambda: optax.contrib.sam(optax.adam(0.05), optax.chain(optax.contrib.normalize(), optax.sgd(0.05))),
        dtype, steps=cm.STEPS, **cm.BITWISE,
    )

  @chex.variants(with_jit=True)
  @pytest.mark.parametrize("sync_period", [1, 3])
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_opaque_mode(self, sync_period, dtype):
    with tj.precision(dtype):
      problem = tj.make_problem(tj.make_params(0, dtype), 1, cm.STEPS)
    run, _ = tj.compare_with_optax(
        self.variant, lambda: _opaque(ours, sync_period, problem), lambda: _opaque(optax.contrib, sync_period, problem),
        dtype, steps=cm.STEPS, **cm.BITWISE,
    )
    assert run.state.cache is None and int(run.state.steps_since_sync) == 0


@pytest.mark.parametrize("dtype", tj.DTYPES)
@pytest.mark.parametrize("case", ["sgd-defaults", "momentum-adv-keep-state"])
def test_init_state_like_optax(case, dtype):
  cm.assert_init_like_optax(ours, _CASES[case], dtype)


def test_one_cycle_is_the_papers_rule():
  """x~ = x + rho g / |g|, then x' = x - lr grad f(x~), on f = sum(c x^2 / 2)."""
  c = jnp.array([1.0, 3.0, 0.5])
  f = lambda x: jnp.sum(0.5 * c * x**2)
  lr, rho = 0.1, 0.05
  tx = ours.sam(jn.sgd(lr), jn.chain(ours.normalize(), jn.sgd(rho)))
  x = jnp.array([1.0, -2.0, 4.0])
  state = tx.init(x)
  g = jax.grad(f)(x)
  perturbed = x + rho * g / jnp.linalg.norm(g)
  u, state = tx.update(g, state, x)
  np.testing.assert_allclose(x + u, perturbed, rtol=1e-6)
  u, state = tx.update(jax.grad(f)(perturbed), state, perturbed)
  np.testing.assert_allclose(perturbed + u, x - lr * jax.grad(f)(perturbed), rtol=1e-6)
  chex.assert_trees_all_equal(state.cache, x)


class TestNormalize:

  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_equals_optax_where_the_norm_is_positive(self, dtype):
    with tj.precision(dtype):
      g = tj.make_params(3, dtype)
      got, _ = jax.jit(ours.normalize().update)(g, ours.normalize().init(g))
      want, _ = jax.jit(optax.contrib.normalize().update)(g, optax.contrib.normalize().init(g))
    chex.assert_trees_all_equal(got, want)
    np.testing.assert_allclose(float(jn.tree.norm(got)), 1.0, rtol=1e-6)

  def test_zero_updates_stay_zero_where_optax_gives_nan(self):
    g = {"a": jnp.zeros(3), "b": jnp.zeros(())}
    got, _ = ours.normalize().update(g, ours.normalize().init(g))
    chex.assert_trees_all_equal(got, g)
    want, _ = optax.contrib.normalize().update(g, optax.contrib.normalize().init(g))
    assert np.isnan(np.asarray(want["a"])).all()  # the difference the docstring names


def test_transparent_update_needs_params():
  tx = ours.sam(jn.sgd(0.1), _adv(ours))
  with pytest.raises(ValueError, match="params"):
    tx.update({"a": jnp.ones(2)}, tx.init({"a": jnp.ones(2)}))


def test_opaque_update_needs_grad_fn():
  tx = ours.sam(jn.sgd(0.1), _adv(ours), opaque_mode=True)
  p = {"a": jnp.ones(2)}
  with pytest.raises(ValueError, match="`grad_fn=`"):
    tx.update(p, tx.init(p), p)


@pytest.mark.parametrize("kwargs, error, name", [
    (dict(sync_period=0), ValueError, "sync_period"),
    (dict(sync_period=1.5), TypeError, "sync_period"),
    (dict(reset_state="yes"), TypeError, "reset_state"),
    (dict(opaque_mode=1), TypeError, "opaque_mode"),
    (dict(batch_axis_name=3), TypeError, "batch_axis_name"),
    (dict(optimizer=0.1), TypeError, "optimizer"),
    (dict(adv_optimizer=None), TypeError, "adv_optimizer"),
])
def test_bad_arguments_name_themselves(kwargs, error, name):
  full = dict(optimizer=jn.sgd(0.1), adv_optimizer=_adv(ours))
  full.update(kwargs)
  cm.assert_raises_naming(ours.sam, full, error, name)
