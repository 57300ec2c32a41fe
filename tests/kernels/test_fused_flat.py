"""apply_step on ``flatten(tx)``: per-leaf params with one flat state vector per
moment, stepped by the fused kernel in one pass, with no concatenation.

Checked: the kernel is in the compiled program; params and state are bitwise
equal to flatten's reference path (concatenate, step the vector, split) and,
params, to the per-leaf fused step; the state is what optax.flatten keeps;
donated buffers are updated in place with no temporaries; unsupported layouts
fall back (or raise with fused=True); derivatives follow the reference path.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests.kernels import test_fused as tf

STEPS = 30

# id -> (ours, optax's same optimizer, kernel it should run)
_CASES = {
    "sgd": (lambda: jn.sgd(1e-2), lambda: optax.sgd(1e-2), "sgd"),
    "sgd-momentum": (lambda: jn.sgd(1e-2, 0.9), lambda: optax.sgd(1e-2, 0.9), "momentum"),
    "sgd-nesterov": (lambda: jn.sgd(1e-2, 0.9, nesterov=True),
                     lambda: optax.sgd(1e-2, 0.9, nesterov=True), "momentum"),
    "adam": (lambda: jn.adam(1e-2), lambda: optax.adam(1e-2), "adam"),
    "adamw": (lambda: jn.adamw(1e-2, weight_decay=1e-2),
              lambda: optax.adamw(1e-2, weight_decay=1e-2), "adam"),
    "adam-cosine": (lambda: jn.adam(jn.cosine_decay_schedule(1e-2, 100)),
                    lambda: optax.adam(optax.cosine_decay_schedule(1e-2, 100)), "adam"),
    "rmsprop": (lambda: jn.rmsprop(1e-2), lambda: optax.rmsprop(1e-2), "rms"),
    "adagrad": (lambda: jn.adagrad(1e-2), lambda: optax.adagrad(1e-2), "rss"),
    "adadelta": (lambda: jn.adadelta(0.5, weight_decay=1e-2),
                 lambda: optax.adadelta(0.5, weight_decay=1e-2), "adadelta"),
}


@pytest.fixture(autouse=True)
def _default_fusing(monkeypatch):
  monkeypatch.delenv("JAXOPT_NOTES_FUSED", raising=False)


def _skip_without_xla_rsqrt(kernel):
  if kernel == "adadelta" and jn.fused_status().rsqrt_steps == 0:
    pytest.skip("XLA's rsqrt is not reproduced on this CPU: Adadelta keeps the reference path")


def _ravel(tree):
  return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(tree)])


@tf.needs_kernel
@pytest.mark.parametrize("case", list(_CASES))
def test_flat_state_matches_reference_and_per_leaf(case):
  """30 jitted steps on a nested tree (matrix, vector, None, a leaf past the
  threading threshold): bitwise equal to flatten's reference path; params
  bitwise equal to the per-leaf fused step, moments equal to its moments
  concatenated; close to optax.flatten of optax's optimizer."""
  make, make_optax, kernel = _CASES[case]
  _skip_without_xla_rsqrt(kernel)
  tx, per_leaf, ref_tx = jn.flatten(make()), make(), optax.flatten(make_optax())
  params = tf._params(seed=11)
  fused = jax.jit(tf._step_fn(tx))
  reference = jax.jit(tf._step_fn(tx, fused=False))
  leafwise = jax.jit(tf._step_fn(per_leaf))
  optax_step = jax.jit(tf._step_fn(ref_tx, fused=False))
  state = tx.init(params)
  g0 = tf._grads(params, 0, seed=11)
  assert f"jaxopt_notes_{kernel}" in fused.lower(g0, state, params).as_text()
  assert "jaxopt_notes_" not in reference.lower(g0, state, params).as_text()

  pf, sf = pr, sr = params, state
  pl, sl = params, per_leaf.init(params)
  po, so = params, ref_tx.init(params)
  for t in range(STEPS):
    g = tf._grads(params, t, seed=11)
    pf, sf = fused(g, sf, pf)
    pr, sr = reference(g, sr, pr)
    pl, sl = leafwise(g, sl, pl)
    po, so = optax_step(g, so, po)
    tf._assert_bitwise((pf, sf), (pr, sr))
    tf._assert_bitwise(pf, pl)
  # Each moment vector is the per-leaf moments, concatenated in leaf order.
  flat_moments = [x for x in jax.tree.leaves(sf) if jnp.ndim(x) == 1]
  leaf_moments = [_ravel(m) for m in _moment_trees(sl, params)]
  assert len(flat_moments) == len(leaf_moments) == _n_moments(kernel)
  for a, b in zip(flat_moments, leaf_moments):
    tf._assert_bitwise(a, b)
  # optax's state classes are its own: compare its leaves, in order.
  chex.assert_trees_all_close(pf, po, rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(jax.tree.leaves(sf), jax.tree.leaves(so), rtol=1e-5, atol=1e-6)
  chex.assert_tree_all_finite((pf, sf))
  assert not np.array_equal(pf["big"], params["big"])


def _n_moments(kernel):
  return {"sgd": 0, "momentum": 1, "adam": 2, "rms": 1, "rss": 1, "adadelta": 2}[kernel]


def _moment_trees(state, params):
  """The state's subtrees laid out like params (its moments), in state order."""
  structure = jax.tree.structure(params)
  found = []

  def visit(node):
    if jax.tree.structure(node) == structure and node is not params:
      found.append(node)
      return
    if isinstance(node, (tuple, list)):
      for child in node:
        visit(child)

  visit(state)
  return found


@tf.needs_kernel
def test_donated_flat_state_is_updated_in_place():
  """Donated per-leaf params and flat moments keep their buffers; peak memory
  is params + grads + state (no temporaries), on 200 small leaves."""
  tx = jn.flatten(jn.adam(1e-3))
  rng = np.random.default_rng(12)
  params = {f"p{i:03d}": jnp.asarray(rng.normal(size=int(n)), jnp.float32)
            for i, n in enumerate(rng.integers(100, 2000, size=200))}
  grads = jax.tree.map(lambda x: x * 1e-3, params)
  state = tx.init(params)
  expected = jax.jit(tf._step_fn(tx, fused=False))(grads, state, params)
  donating = jax.jit(lambda p, s, g: jn.apply_step(tx, g, s, p), donate_argnums=(0, 1))
  compiled = donating.lower(params, state, grads).compile()
  assert "jaxopt_notes_adam" in compiled.as_text()
  assert tf._peak_of(compiled) <= 1.01
  mu, nu = state[0].mu, state[0].nu
  before = [params["p000"].unsafe_buffer_pointer(), params["p199"].unsafe_buffer_pointer(),
            mu.unsafe_buffer_pointer(), nu.unsafe_buffer_pointer()]
  new_params, new_state = compiled(params, state, grads)
  after = [new_params["p000"].unsafe_buffer_pointer(), new_params["p199"].unsafe_buffer_pointer(),
           new_state[0].mu.unsafe_buffer_pointer(), new_state[0].nu.unsafe_buffer_pointer()]
  assert all(x.is_deleted() for x in jax.tree.leaves((params, state)))
  assert after == before
  tf._assert_bitwise((new_params, new_state), expected)


def _mixed(tree):
  """One leaf in bfloat16: flatten promotes the state to float32, the leaf stays bf16."""
  return {**tree, "w": tree["w"].astype(jnp.bfloat16)}


# id -> (optimizer, params cast, reason fused=True gives): no kernel may run.
_FALLBACKS = {
    "nadam": (lambda: jn.flatten(jn.nadam(1e-2)), None, "no fused kernel"),
    "optax-inner": (lambda: jn.flatten(optax.adam(1e-2)), None, "no fused kernel"),
    "optax-flatten": (lambda: optax.flatten(jn.adam(1e-2)), None, "no fused kernel"),
    "bf16": (lambda: jn.flatten(jn.adam(1e-2)), tf._bf16, "float32"),
    "mixed-dtypes": (lambda: jn.flatten(jn.sgd(1e-2, 0.9)), _mixed, "float32"),
    "adam-bf16-mu": (lambda: jn.flatten(jn.adam(1e-2, mu_dtype=jnp.bfloat16)), None, "float32"),
}


@pytest.mark.parametrize("case", list(_FALLBACKS))
def test_flat_state_fallbacks(case):
  """Layouts the kernel cannot take: the reference path, bitwise, silently by
  default; fused=True raises and says why."""
  make, cast, reason = _FALLBACKS[case]
  tx = make()
  params = tf._params(seed=13, big=1000)
  if cast is not None:
    params = cast(params)
  grads = jax.tree.map(lambda x: (x * 1e-2).astype(x.dtype), params)
  state = tx.init(params)
  assert "jaxopt_notes_" not in tf._hlo(tx, grads, state, params)
  got = jax.jit(tf._step_fn(tx))(grads, state, params)
  want = jax.jit(tf._step_fn(tx, fused=False))(grads, state, params)
  tf._assert_bitwise(got, want)
  if reason == "float32" and not jn.fused_status().available:
    reason = jn.fused_status().reason
  with pytest.raises(ValueError, match=r"^apply_step\(fused=True\)") as e:
    jn.apply_step(tx, grads, state, params, fused=True)
  assert reason in str(e.value)


@tf.needs_kernel
def test_masked_optimizer_inside_flatten_has_no_kernel():
  """A mask is not a plain configuration: flatten(adamw(mask=...)) keeps the reference path."""
  tx = jn.flatten(jn.adamw(1e-2, weight_decay=1e-2, mask=lambda p: True))
  params = tf._params(seed=14, big=100)
  assert "jaxopt_notes_" not in tf._hlo(tx, params, tx.init(params), params)


@tf.needs_kernel
def test_grad_through_flat_state_step():
  """d/dparams and d/dgrads through one flat-state step follow the reference path."""
  tx = jn.flatten(jn.adam(1e-2))
  params = tf._params(seed=15, big=20_000)
  state = tx.init(params)
  for t in range(3):
    params, state = jn.apply_step(tx, tf._grads(params, t, seed=15), state, params)
  grads = tf._grads(params, 5, seed=15)
  assert "jaxopt_notes_adam" in tf._hlo(tx, grads, state, params)
  tf._grads_through_step(tx, params, state, grads)


@tf.needs_kernel
def test_flat_state_eager_and_vmap():
  """Without jit, and under vmap over a batch of problems, the same as the reference."""
  tx = jn.flatten(jn.sgd(1e-2, 0.9, nesterov=True))
  params = tf._params(seed=16, big=500)
  grads = tf._grads(params, 2, seed=16)
  state = tx.init(params)
  tf._assert_bitwise(jn.apply_step(tx, grads, state, params),
                     jn.apply_step(tx, grads, state, params, fused=False))
  stack = lambda t: jax.tree.map(lambda x: jnp.stack([x, 2 * x]), t)  # pylint: disable=unnecessary-lambda-assignment
  batched = jax.vmap(tf._step_fn(tx))
  assert "jaxopt_notes_momentum" in jax.jit(batched).lower(
      stack(grads), stack(state), stack(params)).as_text()
  tf._assert_bitwise(jax.jit(batched)(stack(grads), stack(state), stack(params)),
                     jax.vmap(tf._step_fn(tx, fused=False))(stack(grads), stack(state),
                                                            stack(params)))
