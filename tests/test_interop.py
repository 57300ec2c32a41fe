"""Drop-in interoperability with optax and flax, in both directions."""

import os
import pathlib
import subprocess
import sys
import textwrap

import chex
import jax
import jax.numpy as jnp
import optax
import pytest
from flax import nnx

import jaxopt_notes as jn
from tests import _problems

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


_params = _problems.two_leaf_params
_loss = _problems.smooth_loss


def _run(tx, steps=100):
  """Trains _loss with `tx` for `steps` steps (jit + lax.scan); returns params, state."""

  @jax.jit
  def go(params):
    def body(carry, _):
      p, s = carry
      u, s = tx.update(jax.grad(_loss)(p), s, p)
      return (optax.apply_updates(p, u), s), None

    return jax.lax.scan(body, (params, tx.init(params)), None, length=steps)[0]

  return go(_params())


def test_our_scale_by_adam_inside_optax_chain_equals_optax_adam():
  """optax.chain(our scale_by_adam, optax.scale_by_learning_rate) == optax.adam."""
  lr = 0.02
  p_mixed, s_mixed = _run(optax.chain(jn.scale_by_adam(), optax.scale_by_learning_rate(lr)))
  p_ref, s_ref = _run(optax.adam(lr))
  chex.assert_tree_all_finite(p_mixed)
  chex.assert_trees_all_close(p_mixed, p_ref, rtol=1e-5, atol=1e-6)
  assert isinstance(s_mixed[0], jn.ScaleByAdamState)
  assert int(s_mixed[0].count) == int(s_ref[0].count) == 100
  chex.assert_trees_all_close(s_mixed[0].mu, s_ref[0].mu, rtol=1e-5, atol=1e-7)
  chex.assert_trees_all_close(s_mixed[0].nu, s_ref[0].nu, rtol=1e-5, atol=1e-7)
  assert _loss(p_mixed) < 0.5 * _loss(_params())


def test_optax_clip_inside_our_chain_equals_optax_chain():
  """optax.clip_by_global_norm inside our chain equals the all-optax chain."""
  mixed = jn.chain(optax.clip_by_global_norm(0.5), jn.trace(0.9), jn.scale_by_learning_rate(0.05))
  ref = optax.chain(optax.clip_by_global_norm(0.5), optax.trace(0.9), optax.scale_by_learning_rate(0.05))
  p_mixed, s_mixed = _run(mixed)
  p_ref, _ = _run(ref)
  chex.assert_trees_all_close(p_mixed, p_ref, rtol=1e-5, atol=1e-6)
  assert isinstance(s_mixed[0], optax.EmptyState)
  # The clip is active: the initial gradient norm exceeds the threshold.
  assert float(optax.tree.norm(jax.grad(_loss)(_params()))) > 0.5


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (jn.adam(0.05), optax.adam(0.05)),
        (jn.sgd(0.05, momentum=0.9, nesterov=True), optax.sgd(0.05, momentum=0.9, nesterov=True)),
    ],
    ids=["adam", "sgd_nesterov"],
)
def test_our_optimizer_inside_optax_multisteps(ours, theirs):
  """optax.MultiSteps(ours, 3) equals optax.MultiSteps(optax's, 3) over 30 micro-steps."""
  p_ours, s_ours = _run(optax.MultiSteps(ours, every_k_schedule=3).gradient_transformation(), 30)
  p_ref, s_ref = _run(optax.MultiSteps(theirs, every_k_schedule=3).gradient_transformation(), 30)
  chex.assert_trees_all_close(p_ours, p_ref, rtol=1e-5, atol=1e-6)
  assert int(s_ours.gradient_step) == int(s_ref.gradient_step) == 10
  chex.assert_trees_all_close(
      jax.tree.leaves(s_ours.inner_opt_state), jax.tree.leaves(s_ref.inner_opt_state),
      rtol=1e-5, atol=1e-6,
  )


def _optax_value_reader():
  """An optax extra-args transform: scales by `value` and stores it."""

  def init_fn(params):
    del params
    return jnp.zeros([], jnp.float32)

  def update_fn(updates, state, params=None, *, value, **extra):
    del state, params, extra
    return jax.tree.map(lambda u: u * value, updates), jnp.asarray(value, jnp.float32)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _our_value_reader():
  """The same transform built on jaxopt_notes' extra-args class."""
  init_fn, update_fn = _optax_value_reader()
  return jn.GradientTransformationExtraArgs(init_fn, update_fn)


def test_optax_extra_args_transform_inside_our_chain_gets_kwargs():
  """An optax GradientTransformationExtraArgs in our chain receives value=."""
  tx = jn.chain(optax.scale(2.0), _optax_value_reader(), jn.scale(-1.0))
  params = _params()
  u, state = jax.jit(lambda g, s, v: tx.update(g, s, params, value=v))(
      params, tx.init(params), jnp.float32(1.5)
  )
  chex.assert_trees_all_close(u, jax.tree.map(lambda p: -3.0 * p, params))
  assert float(state[1]) == 1.5


def test_optax_extra_args_transform_inside_our_named_chain_gets_kwargs():
  """An optax extra-args transform in our named_chain receives value=."""
  tx = jn.named_chain(("reader", _optax_value_reader()), ("plain", optax.scale(1.0)))
  params = _params()
  u, state = tx.update(params, tx.init(params), params, value=4.0)
  chex.assert_trees_all_close(u, jax.tree.map(lambda p: 4.0 * p, params))
  assert float(state["reader"]) == 4.0


def test_our_extra_args_transform_inside_optax_chain_gets_kwargs():
  """Our extra-args transforms (and our chain) inside optax.chain receive value=."""
  params = _params()
  for tx in (optax.chain(_our_value_reader()), optax.chain(jn.chain(_optax_value_reader()))):
    u, _ = tx.update(params, tx.init(params), params, value=2.0)
    chex.assert_trees_all_close(u, jax.tree.map(lambda p: 2.0 * p, params))


class _MLP(nnx.Module):
  """2 -> 16 -> 1 tanh network."""

  def __init__(self, rngs):
    self.l1 = nnx.Linear(2, 16, rngs=rngs)
    self.l2 = nnx.Linear(16, 1, rngs=rngs)

  def __call__(self, x):
    return self.l2(jnp.tanh(self.l1(x)))


def _train_mlp(tx, steps=200):
  """Trains _MLP on a synthetic regression with nnx.Optimizer; returns losses, params."""
  x = jax.random.normal(jax.random.key(0), (128, 2))
  y = jnp.tanh(2.0 * x[:, :1]) - x[:, 1:]
  model = _MLP(nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

  def loss_fn(m):
    return jnp.mean((m(x) - y) ** 2)

  @nnx.jit
  def train_step(model, optimizer):
    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss

  first = float(loss_fn(model))
  for _ in range(steps):
    train_step(model, optimizer)
  return first, float(loss_fn(model)), nnx.state(model, nnx.Param)


def test_flax_nnx_optimizer_trains_mlp_like_optax():
  """nnx.Optimizer with our adam(1e-3) cuts the loss >= 5x in 200 steps, as optax.adam does."""
  first, last, params = _train_mlp(jn.adam(1e-3))
  ref_first, ref_last, ref_params = _train_mlp(optax.adam(1e-3))
  assert first == ref_first
  assert last < first / 5.0, (first, last)
  chex.assert_trees_all_close(
      jax.tree.leaves(params), jax.tree.leaves(ref_params), rtol=1e-5, atol=1e-6
  )
  assert abs(last - ref_last) <= 1e-5 * ref_last + 1e-7


_NO_OPTAX_SCRIPT = textwrap.dedent(
    """
    import importlib.abc
    import sys

    class _BlockOptax(importlib.abc.MetaPathFinder):
      def find_spec(self, name, path=None, target=None):
        if name == "optax" or name.startswith("optax."):
          raise ImportError("optax is blocked in this test")
        return None

    sys.meta_path.insert(0, _BlockOptax())
    sys.modules.pop("optax", None)
    try:
      import optax  # noqa: F401
    except ImportError:
      pass
    else:
      raise SystemExit("the optax blocker does not work")

    import jax
    import jax.numpy as jnp
    import jaxopt_notes as jn

    assert "optax" not in sys.modules, "jaxopt_notes imported optax"

    def loss(p):
      return jnp.sum(p["w"] ** 2 / jnp.array([20.0, 1.0]))

    params = {"w": jnp.array([-7.0, 4.0])}
    tx = jn.adam(0.1)
    state = tx.init(params)

    @jax.jit
    def step(params, state):
      updates, state = tx.update(jax.grad(loss)(params), state, params)
      return jn.apply_updates(params, updates), state

    first = float(loss(params))
    for _ in range(20):
      params, state = step(params, state)
    last = float(loss(params))
    assert int(state[0].count) == 20, state
    assert last < first, (first, last)
    assert "optax" not in sys.modules
    print("NO_OPTAX_OK", first, last)
    """
)


def test_package_works_without_optax():
  """jaxopt_notes imports and trains Adam in a process where optax cannot be imported."""
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
  env.setdefault("JAX_PLATFORMS", "cpu")
  result = subprocess.run(
      [sys.executable, "-c", _NO_OPTAX_SCRIPT],
      cwd=str(REPO_ROOT), env=env, capture_output=True, text=True, timeout=120,
  )
  assert result.returncode == 0, result.stdout + result.stderr
  assert "NO_OPTAX_OK" in result.stdout
