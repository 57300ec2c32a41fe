"""Checkpoints: a run saved mid-way and resumed is bitwise the uninterrupted run.

Every optimizer and wrapper of ``_zoo`` is run for ``STEPS`` jitted steps,
once straight through and once saved at ``SAVE_AT``, restored by a freshly
built optimizer into a blank template, and continued. Restoring into an
optimizer configured differently must raise an error naming the first leaf
that differs.
"""

import os
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp  # a test extra: a missing install must fail, not skip
import pytest

import jaxopt_notes as jn
from jaxopt_notes.training import checkpoint as ckpt
from tests import _zoo

STEPS = 9
SAVE_AT = 4


def _params():
  return {
      "w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3),
      "b": jnp.array([0.5, -0.25, 1.0], jnp.bfloat16),
      "frozen": None,
      "empty": jnp.zeros((0, 2)),
  }


def _blank(params):
  """A template with the params' layout and other values, to prove they are restored."""
  return jax.tree.map(lambda p: jnp.full_like(p, 7), params)


def _loss(params, t):
  x = jax.random.normal(jax.random.fold_in(jax.random.key(0), t), (3,))
  pred = params["w"] @ x + jnp.sum(params["b"].astype(jnp.float32)) + jnp.sum(params["empty"])
  return jnp.sum((pred - 1.0) ** 2)


@jax.jit
def _loss_and_grads(fast, t, nan_at):
  loss, grads = jax.value_and_grad(_loss)(fast, t)
  grads["w"] = jnp.where(jnp.any(nan_at == t), jnp.nan, grads["w"])
  return loss, grads


def _run(entry, tx, params, state, start, stop, nan_at=(), jit=False):
  """Steps ``start..stop-1``; the update is eager unless ``jit`` (compiling costs more)."""

  def update(params, state, loss, grads):
    updates, state = entry.update(tx, grads, state, params, value=loss)
    return jn.apply_updates(params, updates), state

  update = jax.jit(update) if jit else update
  nan_at = jnp.asarray(list(nan_at) or [-1], jnp.int32)
  for t in range(start, stop):
    fast = params.fast if isinstance(params, jn.LookaheadParams) else params
    loss, grads = _loss_and_grads(fast, jnp.asarray(t, jnp.int32), nan_at)
    params, state = update(params, state, loss, grads)
  return params, state


def assert_bitwise_equal(a, b):
  """Same structure (node types included), dtypes and bytes; NaN equals NaN.

  A typed PRNG key (noisy_sgd's state) is compared by its implementation and key data.
  """
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
    if jax.dtypes.issubdtype(jnp.asarray(x).dtype, jax.dtypes.prng_key):
      assert jnp.asarray(x).dtype == jnp.asarray(y).dtype, jax.tree_util.keystr(path)
      x, y = jax.random.key_data(x), jax.random.key_data(y)
    x, y = np.asarray(x), np.asarray(y)
    assert x.dtype == y.dtype and x.shape == y.shape, jax.tree_util.keystr(path)
    assert x.tobytes() == y.tobytes(), jax.tree_util.keystr(path)


def _resume_equals_uninterrupted(entry, tmp_path, nan_at=(), jit=False):
  tx = entry.ours()
  params0 = entry.params(_params())
  straight = _run(entry, tx, params0, tx.init(params0), 0, STEPS, nan_at, jit)

  mid_params, mid_state = _run(entry, tx, params0, tx.init(params0), 0, SAVE_AT, nan_at, jit)
  ckpt.save_checkpoint(tmp_path, SAVE_AT, mid_params, mid_state)
  # A restarted process: a new optimizer object and a template with other values.
  fresh = entry.ours()
  params, state, step = ckpt.restore_checkpoint(tmp_path, _blank(params0), fresh)
  assert step == SAVE_AT
  assert_bitwise_equal((params, state), (mid_params, mid_state))
  resumed = _run(entry, fresh, params, state, SAVE_AT, STEPS, nan_at, jit)
  assert_bitwise_equal(resumed, straight)
  return straight


@pytest.mark.parametrize("name", list(_zoo.ALL))
def test_resumed_run_is_bitwise_the_uninterrupted_one(name, tmp_path):
  """Save at step 4, restore into a fresh optimizer, continue: identical to no restart."""
  params, _ = _resume_equals_uninterrupted(_zoo.ALL[name], tmp_path)
  fast = params.fast if isinstance(params, jn.LookaheadParams) else params
  # The run moved the trained leaves, so the comparison compared something.
  assert not np.allclose(np.asarray(fast["w"]), np.asarray(_params()["w"]))


@pytest.mark.parametrize("name", ["adam", "inject_hyperparams", "lookahead", "multisteps"])
def test_resumed_jitted_run_is_bitwise_the_uninterrupted_one(name, tmp_path):
  """The same with a jit-compiled update, recompiled after the restart."""
  params, _ = _resume_equals_uninterrupted(_zoo.ALL[name], tmp_path, jit=True)
  # The run moved the trained leaves, so the comparison compared something.
  fast = params.fast if isinstance(params, jn.LookaheadParams) else params
  assert not np.allclose(np.asarray(fast["w"]), np.asarray(_params()["w"]))


@pytest.mark.parametrize("wrap", ["multisteps", "apply_if_finite", "both"])
def test_resume_after_nan_minibatches(wrap, tmp_path):
  """NaN gradients before and after the checkpoint: resumed run identical, params finite."""
  inner = lambda: jn.adam(0.1)
  builders = {
      "multisteps": lambda: jn.MultiSteps(
          inner(), 2, should_skip_update_fn=jn.skip_not_finite
      ).gradient_transformation(),
      "apply_if_finite": lambda: jn.apply_if_finite(inner(), 2),
      # The combination where optax's MultiSteps keeps a NaN for ever.
      "both": lambda: jn.MultiSteps(jn.apply_if_finite(inner(), 5), 2).gradient_transformation(),
  }
  entry = _zoo.Entry(builders[wrap])
  params, state = _resume_equals_uninterrupted(entry, tmp_path, nan_at=(2, 3, 6))
  chex.assert_tree_all_finite((params, state))
  assert not np.allclose(np.asarray(params["w"]), np.asarray(_params()["w"]))


# --- what the helper guarantees ------------------------------------------------


def test_save_waits_for_completion_and_leaves_one_directory_per_step(tmp_path):
  """After save returns, the step directory is final (no orbax temporary left)."""
  params = _params()
  state = jn.adam(0.1).init(params)
  for step in (3, 10):
    path = ckpt.save_checkpoint(tmp_path / "run", step, params, state)
    assert os.path.isdir(path) and os.path.basename(path) == str(step)
  assert sorted(os.listdir(tmp_path / "run")) == ["10", "3"]
  assert ckpt.all_checkpoint_steps(tmp_path / "run") == [3, 10]
  assert ckpt.latest_checkpoint_step(tmp_path / "run") == 10
  assert ckpt.latest_checkpoint_step(tmp_path / "nothing") is None


def test_steps_existing_overwrite_older_and_max_to_keep(tmp_path):
  """An existing step raises unless overwrite=True; older steps save; max_to_keep prunes."""
  tx = jn.sgd(0.1, momentum=0.9)
  params = {"w": jnp.ones(3)}
  state = tx.init(params)
  ckpt.save_checkpoint(tmp_path, 5, params, state)
  with pytest.raises(FileExistsError, match="step 5"):
    ckpt.save_checkpoint(tmp_path, 5, params, state)
  later = {"w": jnp.full(3, 2.0)}
  ckpt.save_checkpoint(tmp_path, 5, later, state, overwrite=True)
  restored, _, _ = ckpt.restore_checkpoint(tmp_path, params, tx)
  np.testing.assert_array_equal(restored["w"], later["w"])
  # orbax's manager silently skips a step below the latest; ours saves it.
  ckpt.save_checkpoint(tmp_path, 2, params, state)
  assert ckpt.all_checkpoint_steps(tmp_path) == [2, 5]
  for step in (6, 7):
    ckpt.save_checkpoint(tmp_path, step, params, state, max_to_keep=2)
  assert ckpt.all_checkpoint_steps(tmp_path) == [6, 7]


def test_restore_picks_latest_or_the_given_step(tmp_path):
  """Without `step` the newest checkpoint is restored; with it, that one."""
  tx = jn.adam(0.1)
  params = {"w": jnp.zeros(2)}
  for step in (1, 2):
    ckpt.save_checkpoint(tmp_path, step, {"w": jnp.full(2, float(step))}, tx.init(params))
  assert ckpt.restore_checkpoint(tmp_path, params, tx)[2] == 2
  restored, _, step = ckpt.restore_checkpoint(tmp_path, params, tx, step=1)
  assert step == 1 and float(restored["w"][0]) == 1.0
  with pytest.raises(FileNotFoundError, match=r"step 4.*\[1, 2\]"):
    ckpt.restore_checkpoint(tmp_path, params, tx, step=4)
  with pytest.raises(FileNotFoundError, match="no checkpoints"):
    ckpt.restore_checkpoint(tmp_path / "missing", params, tx)


@pytest.mark.parametrize("step, error", [(-1, ValueError), (1.5, TypeError), (True, TypeError), ([1], TypeError)])
def test_bad_step_argument(step, error, tmp_path):
  with pytest.raises(error, match="`step`"):
    ckpt.save_checkpoint(tmp_path, step, {"w": jnp.ones(1)}, ())


def test_abstract_template_and_restored_types(tmp_path):
  """A template of ShapeDtypeStructs works; NamedTuple states come back as their classes."""
  tx = jn.chain(jn.clip_by_global_norm(1.0), jn.adam(0.1))
  params = _params()
  state = tx.init(params)
  ckpt.save_checkpoint(tmp_path, 0, params, state)
  abstract = jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), params)
  restored_params, restored_state, _ = ckpt.restore_checkpoint(tmp_path, abstract, tx)
  assert isinstance(restored_state[1][0], jn.ScaleByAdamState)
  assert isinstance(restored_state[0], jn.EmptyState)
  assert restored_params["frozen"] is None and restored_params["empty"].shape == (0, 2)
  assert_bitwise_equal((restored_params, restored_state), (params, state))


def test_explicit_opt_state_template(tmp_path):
  """opt_state_template replaces optimizer.init(params) and is named in errors."""
  tx, params = jn.adam(0.1), {"w": jnp.ones(3)}
  _, state = tx.update(params, tx.init(params), params)
  ckpt.save_checkpoint(tmp_path, 1, params, state)
  _, restored, _ = ckpt.restore_checkpoint(tmp_path, params, tx, opt_state_template=tx.init(params))
  assert_bitwise_equal(restored, state)
  with pytest.raises(ckpt.CheckpointMismatchError, match=r"opt_state_template has 4.*nu_max"):
    ckpt.restore_checkpoint(tmp_path, params, tx, opt_state_template=jn.amsgrad(0.1).init(params))


def test_prng_keys_and_custom_state_roundtrip(tmp_path):
  """Typed PRNG keys, scalars of every dtype and empty tuples survive a round trip."""
  state = {
      "key": jax.random.key(42),
      "count": jnp.asarray(2**31 - 1, jnp.int32),
      "flag": jnp.array(True),
      "half": jnp.array([1.5, -2.0], jnp.float16),
      "c": jnp.array([1 + 2j], jnp.complex64),
      "empty": (),
  }
  tx = jn.GradientTransformation(lambda p: jax.tree.map(jnp.zeros_like, state), lambda u, s, p=None: (u, s))
  ckpt.save_checkpoint(tmp_path, 1, {}, state)
  _, restored, _ = ckpt.restore_checkpoint(tmp_path, {}, tx)
  np.testing.assert_array_equal(jax.random.key_data(restored["key"]), jax.random.key_data(state["key"]))
  assert jax.random.key_impl(restored["key"]) == jax.random.key_impl(state["key"])
  rest = lambda s: {k: v for k, v in s.items() if k != "key"}
  assert_bitwise_equal(rest(restored), rest(state))


# --- mismatches are named ------------------------------------------------------


def _saved(tmp_path, tx, params):
  ckpt.save_checkpoint(tmp_path, 1, params, tx.init(params))


@pytest.mark.parametrize(
    "saved, restored, message",
    [
        (lambda: jn.adam(0.1), lambda: jn.amsgrad(0.1), r"opt_state\[0\]\.nu_max\['w'\]"),
        (lambda: jn.amsgrad(0.1), lambda: jn.adam(0.1), r"opt_state\[0\]\.nu_max\['w'\]"),
        (lambda: jn.rmsprop(0.1), lambda: jn.rmsprop(0.1, bias_correction=True),
         r"opt_state\[0\]\.nu\['w'\].*opt_state\[0\]\.count"),
        (lambda: jn.adam(0.1), lambda: jn.adam(0.1, mu_dtype=jnp.bfloat16),
         r"opt_state\[0\]\.mu\['w'\] is float32\[3\] in the checkpoint but bfloat16\[3\]"),
        (lambda: jn.adam(0.1), lambda: jn.sgd(0.1), r"opt_state\[0\]\.count"),
        (lambda: jn.sgd(0.1, momentum=0.9), lambda: jn.inject_hyperparams(jn.sgd)(0.1, 0.9),
         r"opt_state\.count|opt_state\[0\]\.trace"),
        (lambda: jn.adam(0.1), lambda: jn.chain(jn.clip(1.0), jn.adam(0.1)),
         r"opt_state\[0\]\.count.*opt_state\[1\]\[0\]\.count"),
    ],
    ids=["adam_to_amsgrad", "amsgrad_to_adam", "rmsprop_flag", "mu_dtype", "adam_to_sgd",
         "plain_to_injected", "extra_chain_link"],
)
def test_other_optimizer_is_named(saved, restored, message, tmp_path):
  """Restoring into a differently configured optimizer names the first differing leaf."""
  params = {"w": jnp.ones(3)}
  _saved(tmp_path, saved(), params)
  with pytest.raises(ckpt.CheckpointMismatchError, match=message):
    ckpt.restore_checkpoint(tmp_path, params, restored())


@pytest.mark.parametrize(
    "template, message",
    [
        ({"w": jnp.ones(4)}, r"params\['w'\] is float32\[3\] in the checkpoint but float32\[4\]"),
        ({"w": jnp.ones(3, jnp.bfloat16)}, r"params\['w'\] is float32\[3\].*bfloat16\[3\]"),
        ({"w": jnp.ones(3), "v": jnp.ones(1)}, r"params\['v'\]"),
        ({"v": jnp.ones(3)}, r"params\['w'\].*params\['v'\]"),
    ],
    ids=["shape", "dtype", "extra_leaf", "renamed"],
)
def test_other_params_are_named(template, message, tmp_path):
  """A params template of another shape, dtype or layout is rejected naming the leaf."""
  _saved(tmp_path, jn.sgd(0.1), {"w": jnp.ones(3)})
  with pytest.raises(ckpt.CheckpointMismatchError, match=message):
    ckpt.restore_checkpoint(tmp_path, template, jn.sgd(0.1))


def test_same_leaves_other_containers_are_named(tmp_path):
  """A list saved and a tuple expected (same leaf paths) is reported as a container change."""
  tx = jn.sgd(0.1)
  ckpt.save_checkpoint(tmp_path, 1, [jnp.ones(2), jnp.ones(3)], tx.init([jnp.ones(2), jnp.ones(3)]))
  with pytest.raises(ckpt.CheckpointMismatchError, match="different containers"):
    ckpt.restore_checkpoint(tmp_path, (jnp.ones(2), jnp.ones(3)), tx)


def test_foreign_checkpoint_is_rejected(tmp_path):
  """A directory written by orbax directly (not save_checkpoint) is named as such."""
  manager = ocp.CheckpointManager(os.fspath(tmp_path))
  manager.save(0, args=ocp.args.Composite(meta=ocp.args.JsonSave({"x": 1})))
  manager.wait_until_finished()
  manager.close()
  with pytest.raises(ckpt.CheckpointMismatchError, match="not written by"):
    ckpt.restore_checkpoint(tmp_path, {"w": jnp.ones(1)}, jn.sgd(0.1))


def test_missing_orbax_gives_install_hint(monkeypatch, tmp_path):
  """Without orbax-checkpoint the helpers raise ImportError with the pip command."""
  monkeypatch.setitem(sys.modules, "orbax.checkpoint", None)
  with pytest.raises(ImportError, match=r"jaxopt_notes\[checkpoint\]"):
    ckpt.save_checkpoint(tmp_path, 0, {"w": jnp.ones(1)}, ())
