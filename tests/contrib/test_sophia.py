"""sophia, scale_by_sophia and hutchinson_estimator_diag_hessian: 50-step
trajectories bitwise equal to optax.contrib's (jitted in float32 and float64
for the defaults and every option, op by op for a few), with ``obj_fn`` and
other extra keyword arguments passed to ``update`` as optax's API takes
them; the PRNG draws of the estimator (raw and typed keys) equal optax's bit
for bit; init states alike; bad arguments naming themselves."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib._sophia as optax_sophia
import pytest

import jaxopt_notes as jn
from jaxopt_notes.contrib import _sophia as ours
from tests import _trajectory as tj
from tests.contrib import _common as cm


def _obj(params):
  """A loss with a non-diagonal, params-dependent Hessian.

  Hutchinson's estimate of a diagonal Hessian is exact whatever the signs,
  which would hide a wrong draw; the coupling term makes every estimate
  depend on the random signs (and the quartic on the params).
  """
  leaves = jax.tree.leaves(params)
  total = sum(jnp.sum(x) for x in leaves)
  return sum(jnp.sum(0.5 * x**2 + 0.1 * x**4) for x in leaves) + 0.3 * total**2


def _with_kwargs(tx, **kwargs):
  """``tx`` whose update gets ``obj_fn`` (and ``kwargs``) as sophia's callers pass them."""
  kwargs.setdefault("obj_fn", _obj)
  return tx._replace(update=lambda u, s, p: tx.update(u, s, p, **kwargs))


def _top(lib):
  return jn if lib is ours else optax


def _module(lib):
  return ours if lib is ours else optax_sophia


def _squared_grads(lib):
  """A plain transform (no extra args) as the estimator: the squared gradient."""
  return _top(lib).stateless(lambda g, p: jax.tree.map(lambda x: x * x, g))


def _scaled_hutchinson(lib):
  """An extra-args estimator taking a keyword of its own (``hess_scale``) besides obj_fn."""
  inner = lib.hutchinson_estimator_diag_hessian(jax.random.PRNGKey(11))

  def update(updates, state, params=None, *, hess_scale, **extra):
    diag, state = inner.update(updates, state, params, **extra)
    return jax.tree.map(lambda d: hess_scale * d, diag), state

  return _top(lib).GradientTransformationExtraArgs(inner.init, update)


_KWARGS = {"extra-args-estimator": dict(hess_scale=2.0, unexpected=1)}

_CASES = {
    "defaults": lambda lib: lib.sophia(0.05),
    "schedules": lambda lib: lib.sophia(
        tj.learning_rate("optax_schedule", 0.05), weight_decay=lambda t: 0.1 / (1 + t)
    ),
    "betas-eps-gamma-clip": lambda lib: lib.sophia(
        0.05, b1=0.9, b2=0.95, eps=1e-3, gamma=0.5, clip_threshold=0.2
    ),
    "no-clip-update-interval-3": lambda lib: lib.sophia(0.05, clip_threshold=None, eps=0.1, update_interval=3),
    "weight-decay-mask-tree": lambda lib: lib.sophia(
        0.05, weight_decay=0.1,
        weight_decay_mask={"layer": [True, (False, None)], "out": {"b": True}},
    ),
    "mu-dtype": lambda lib: lib.sophia(0.05, mu_dtype=jnp.bfloat16),
    "seeded-key": lambda lib: lib.sophia(
        0.05, update_interval=2, hessian_diagonal_fn=lib.hutchinson_estimator_diag_hessian(jax.random.PRNGKey(42))
    ),
    "squared-grads-estimator": lambda lib: lib.sophia(0.05, update_interval=2, hessian_diagonal_fn=_squared_grads(lib)),
    "extra-args-estimator": lambda lib: lib.sophia(
        0.05, update_interval=2, hessian_diagonal_fn=_scaled_hutchinson(lib)
    ),
    "all-positional": lambda lib: lib.sophia(
        tj.learning_rate("lambda", 0.03), 0.9, 0.98, 1e-6, 0.01, cm.decay_mask, 0.05, 0.5, 4,
        lib.hutchinson_estimator_diag_hessian(jax.random.PRNGKey(3)), jnp.float32, False, 0,
    ),
    # optax.contrib does not export scale_by_sophia: its module's is the reference.
    "scale-by-sophia": lambda lib: _module(lib).scale_by_sophia(gamma=0.5, clip_threshold=0.1, update_interval=2),
    "scale-by-sophia-all-positional": lambda lib: _module(lib).scale_by_sophia(
        0.9, 0.95, 1e-4, 0.3, None, 1, lib.hutchinson_estimator_diag_hessian(jax.random.PRNGKey(5)),
        None, False, 0,
    ),
}


def _case(name):
  return lambda lib: _with_kwargs(_CASES[name](lib), **_KWARGS.get(name, {}))


class TestMatchesOptax(tj.VariantsTest):

  @chex.variants(with_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("case", sorted(_CASES))
  def test_trajectory(self, case, dtype):
    """Params every step, updates and the final state (PRNG key included), bitwise."""
    run, _ = cm.compare_case(self.variant, ours, _case(case), dtype)
    sophia_state = run.state if case.startswith("scale-by") else run.state[0]
    assert isinstance(sophia_state, ours.SophiaState)
    assert int(sophia_state.count) == cm.STEPS

  # Op by op each step costs ~0.6 s here (the estimator's jvp retraced):
  # 7 steps still refresh the estimate (every 3rd step) 3 times.
  @chex.variants(without_jit=True)
  @pytest.mark.parametrize(
      "case, dtype", [("no-clip-update-interval-3", "float32"), ("extra-args-estimator", "float64")]
  )
  def test_trajectory_op_by_op(self, case, dtype):
    tj.compare_with_optax(
        self.variant, lambda: _case(case)(ours), lambda: _case(case)(optax.contrib), dtype, steps=7, **cm.BITWISE
    )


@pytest.mark.parametrize("dtype", tj.DTYPES)
def test_typed_key_draws_like_optax(dtype):
  """A typed key (``jax.random.key``) gives optax's estimates and keys, bit for bit."""
  with tj.precision(dtype):
    params = tj.make_params(0, dtype)
    results = []
    for lib in (ours, optax.contrib):
      est = lib.hutchinson_estimator_diag_hessian(jax.random.key(7))
      update = jax.jit(lambda u, s, p, est=est: est.update(u, s, p, obj_fn=_obj))
      state, diags = est.init(params), []
      for _ in range(3):
        diag, state = update(params, state, params)
        diags.append(diag)
      results.append((diags, jax.random.key_data(state.key)))
  chex.assert_trees_all_equal(results[0], results[1])
  assert not np.array_equal(np.asarray(results[0][0][0]["out"]["b"]), np.asarray(results[0][0][1]["out"]["b"]))


def test_estimates_are_unbiased():
  """Averaged over many draws, Hutchinson's estimate approaches diag(H)."""
  x = jnp.array([0.3, -0.5, 0.8])
  want = jnp.diag(jax.hessian(_obj)(x))
  est = ours.hutchinson_estimator_diag_hessian(jax.random.PRNGKey(1))

  def draw(state, _):
    diag, state = est.update(x, state, x, obj_fn=_obj)
    return state, diag

  _, diags = jax.lax.scan(draw, est.init(x), None, length=4000)
  np.testing.assert_allclose(diags.mean(0), want, atol=0.05)  # the spread of one draw is 0.6
  assert float(jnp.abs(diags[0] - want).max()) > 0.1  # one draw alone is off


@pytest.mark.parametrize("dtype", tj.DTYPES)
@pytest.mark.parametrize("case", ["defaults", "mu-dtype", "seeded-key", "all-positional", "scale-by-sophia"])
def test_init_state_like_optax(case, dtype):
  cm.assert_init_like_optax(ours, _CASES[case], dtype)


def test_refresh_waits_for_update_interval():
  """nu changes on steps 1, k+1, ... only (the count before the increment)."""
  tx = ours.scale_by_sophia(update_interval=3)
  x = jnp.array([0.3, -0.5, 0.8])
  state, changed = tx.init(x), []
  for _ in range(7):
    _, new = tx.update(x, state, x, obj_fn=_obj)
    changed.append(bool(jnp.any(new.nu != state.nu)))
    state = new
  assert changed == [True, False, False, True, False, False, True]


def test_verbose_prints_like_optax(capfd):
  x = jnp.array([0.3, -0.5, 0.8])
  outputs = []
  for lib in (ours, optax.contrib):
    tx = lib.sophia(0.05, verbose=True, print_win_rate_every_n_steps=2, gamma=5.0, eps=0.1)
    update = jax.jit(lambda g, s, p, tx=tx: tx.update(g, s, p, obj_fn=_obj))
    state = tx.init(x)
    for _ in range(4):
      _, state = update(jax.grad(_obj)(x), state, x)
    jax.effects_barrier()
    outputs.append(capfd.readouterr().out)
  assert outputs[0] == outputs[1]
  assert outputs[0].count("Sophia optimizer win rate:") == 2


def test_update_needs_params_and_obj_fn():
  cm.assert_update_needs_params(ours.sophia(0.1))
  est = ours.hutchinson_estimator_diag_hessian()
  x = jnp.ones(2)
  with pytest.raises(ValueError, match="params"):
    est.update(x, est.init(x), None, obj_fn=_obj)
  with pytest.raises(ValueError, match="obj_fn"):
    est.update(x, est.init(x), x)
  tx = ours.sophia(0.1)
  with pytest.raises(ValueError, match="obj_fn"):
    tx.update(x, tx.init(x), x)


NAN = float("nan")


@pytest.mark.parametrize("factory, kwargs, error, name", [
    (ours.sophia, dict(learning_rate=None), TypeError, "learning_rate"),
    (ours.sophia, dict(learning_rate=NAN), ValueError, "learning_rate"),
    (ours.sophia, dict(learning_rate=0.1, b1=1.0), ValueError, "b1"),
    (ours.sophia, dict(learning_rate=0.1, b2=-0.1), ValueError, "b2"),
    (ours.sophia, dict(learning_rate=0.1, eps=-1.0), ValueError, "eps"),
    (ours.sophia, dict(learning_rate=0.1, gamma=0.0), ValueError, "gamma"),
    (ours.sophia, dict(learning_rate=0.1, clip_threshold=0.0), ValueError, "clip_threshold"),
    (ours.sophia, dict(learning_rate=0.1, update_interval=0), ValueError, "update_interval"),
    (ours.sophia, dict(learning_rate=0.1, update_interval=2.5), ValueError, "update_interval"),
    (ours.sophia, dict(learning_rate=0.1, weight_decay=NAN), ValueError, "weight_decay"),
    (ours.sophia, dict(learning_rate=0.1, hessian_diagonal_fn=lambda g: g), TypeError, "hessian_diagonal_fn"),
    (ours.sophia, dict(learning_rate=0.1, mu_dtype="not-a-dtype"), TypeError, "mu_dtype"),
    (ours.sophia, dict(learning_rate=0.1, verbose=1), TypeError, "verbose"),
    (ours.sophia, dict(learning_rate=0.1, print_win_rate_every_n_steps=-1), ValueError,
     "print_win_rate_every_n_steps"),
    (ours.scale_by_sophia, dict(b1=NAN), ValueError, "b1"),
    (ours.hutchinson_estimator_diag_hessian, dict(random_seed=0), TypeError, "random_seed"),
    (ours.hutchinson_estimator_diag_hessian, dict(random_seed=jnp.zeros(2)), TypeError, "random_seed"),
])
def test_bad_arguments_name_themselves(factory, kwargs, error, name):
  cm.assert_raises_naming(factory, kwargs, error, name)


def test_traced_hyperparameters_pass_the_checks():
  """Under inject_hyperparams (as optax's own contrib test runs sophia) the step is the plain one."""
  params = [-jnp.ones((2, 3)), jnp.ones((2, 5, 2))]
  grads = [jnp.ones((2, 3)), -jnp.ones((2, 5, 2))]
  kwargs = dict(learning_rate=0.1, b1=0.9, gamma=0.05, clip_threshold=0.5, update_interval=2, weight_decay=0.01)
  injected = optax.inject_hyperparams(ours.sophia)(**kwargs)
  plain = ours.sophia(**kwargs)
  obj = lambda x: optax.tree.norm(x, squared=True)
  got, _ = jax.jit(lambda g, s, p: injected.update(g, s, p, obj_fn=obj))(grads, injected.init(params), params)
  want, _ = jax.jit(lambda g, s, p: plain.update(g, s, p, obj_fn=obj))(grads, plain.init(params), params)
  chex.assert_trees_all_close(got, want, rtol=1e-6)
