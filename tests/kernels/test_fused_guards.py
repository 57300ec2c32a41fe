"""apply_step's guards around the kernel: a state of another optimizer's
layout is rejected on both paths, and a pickled optimizer keeps its kernel."""

import copy
import functools

import jax
import pytest

import jaxopt_notes as jn
from jaxopt_notes.kernels import fused as fused_lib
from tests.kernels import test_fused as tf

cloudpickle = pytest.importorskip("cloudpickle")


@pytest.mark.parametrize("fused", [None, True, False], ids=["default", "fused", "reference"])
@pytest.mark.parametrize("make,other", [
    (lambda: jn.adam(1e-2), lambda: jn.adamw(1e-2, weight_decay=1e-2)),
    (lambda: jn.adamw(1e-2, weight_decay=1e-2), lambda: jn.adam(1e-2)),
    (lambda: jn.adamw(1e-2, weight_decay=0.0), lambda: jn.adam(1e-2)),
], ids=["adam-given-adamw-state", "adamw-given-adam-state", "adamw-wd0-given-adam-state"])
def test_other_optimizers_state_is_rejected_on_every_path(make, other, fused):
  """adam's kernel reads state[0] and state[-1] only: it took an adamw state and
  returned the adamw layout, where the reference path raises."""
  tx = make()
  params = tf._params(big=100)
  state = other().init(params)
  if fused and not jn.fused_status().available:
    pytest.skip(jn.fused_status().reason)
  match = "state is not this optimizer's" if fused else "state"
  with pytest.raises(ValueError, match=match):
    jn.apply_step(tx, params, state, params, fused=fused)
  with pytest.raises(ValueError):
    jax.jit(tf._step_fn(tx, fused=fused))(params, state, params)


@tf.needs_kernel
@pytest.mark.parametrize("make,kernel", [
    (lambda: jn.adam(jn.cosine_decay_schedule(1e-2, 100)), "adam"),
    (lambda: jn.sgd(1e-2, 0.9), "momentum"),
    (lambda: jn.rmsprop(1e-2), "rms"),
    (lambda: jn.flatten(jn.adagrad(1e-2)), "rss"),
], ids=["adam-schedule", "momentum", "rmsprop", "flatten-adagrad"])
def test_pickled_optimizer_keeps_its_kernel(make, kernel):
  """cloudpickle (and copy) round trips keep the kernel: same program, same bits."""
  tx = make()
  params = tf._params(big=1000)
  state = tx.init(params)
  grads = tf._grads(params, 2)
  want = jax.jit(tf._step_fn(tx))(grads, state, params)
  for clone in (cloudpickle.loads(cloudpickle.dumps(tx)), copy.deepcopy(tx), copy.copy(tx)):
    assert fused_lib.rule_of(clone) is not None
    assert f"jaxopt_notes_{kernel}" in tf._hlo(clone, grads, clone.init(params), params)
    tf._assert_bitwise(jax.jit(tf._step_fn(clone))(grads, state, params), want)


def test_wrapped_update_does_not_inherit_the_kernel():
  """functools.wraps copies the update's __dict__: the wrapper (which may do
  anything) must not take the kernel of the function it wraps."""
  tx = jn.adam(1e-2)

  @functools.wraps(tx.update)
  def update(updates, state, params=None, **extra):
    updates, state = tx.update(updates, state, params, **extra)
    return jax.tree.map(lambda u: 2 * u, updates), state

  wrapped = jn.GradientTransformationExtraArgs(tx.init, update)
  assert fused_lib.rule_of(tx) is not None
  assert fused_lib.rule_of(wrapped) is None
  params = tf._params(big=100)
  assert "jaxopt_notes_" not in tf._hlo(wrapped, params, wrapped.init(params), params)
