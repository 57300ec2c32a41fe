"""scale_by_lbfgs: 100-step trajectories equal to optax's, the two-loop product
against the dense inverse-Hessian formula, the ring buffer against a plain
list-based L-BFGS, and argument checks."""

import collections

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from jaxopt_notes.transforms import lbfgs as lbfgs_lib
from tests import _trajectory as tj
from tests.transforms import _linesearch_runs as runs

_CONFIGS = [(10, True), (3, False), (1, True)]


class TestMatchesOptax(tj.VariantsTest):

  @chex.variants(with_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("memory_size, scale_init_precond", _CONFIGS)
  def test_matches_optax(self, memory_size, scale_init_precond, dtype):
    """The direction, then a 5% step: params every step, updates and ScaleByLBFGSState as optax's."""
    ours = self._compare(memory_size, scale_init_precond, dtype, tj.STEPS)
    weights = np.asarray(ours.state[0].weights_memory)
    assert weights.shape == (memory_size,) and np.all(weights > 0)  # every slot holds a convex pair
    # Still moving at the end: the last steps are not vacuous.
    assert all(np.abs(u[-1]).max() > 1e-5 for u in jax.tree.leaves(ours.updates))

  @chex.variants(without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_matches_optax_op_by_op(self, dtype):
    """Op by op each update compiles its two scans (in optax too): 12 steps, past a full memory of 3."""
    self._compare(3, True, dtype, 12)

  def _compare(self, memory_size, scale_init_precond, dtype, steps):
    make = lambda lib: lib.chain(lib.scale_by_lbfgs(memory_size, scale_init_precond), lib.scale(-0.05))
    ours, _ = tj.compare_with_optax(
        self.variant, lambda: make(jn), lambda: make(optax), dtype, steps=steps,
        grads_fn=runs.steady_gradients(dtype),
    )
    assert int(ours.state[0].count) == steps
    return ours


def _dense_inverse_hessian(dws, dgs, gamma=1.0):
  """N&W (7.19): ``H <- V' H V + rho s s'``, ``V = I - rho y s'``, from ``gamma I``, oldest pair first."""
  d = dws.shape[1]
  h = gamma * np.eye(d)
  for s, y in zip(dws, dgs):
    rho = 1.0 / (y @ s)
    v = np.eye(d) - rho * np.outer(y, s)
    h = v.T @ h @ v + rho * np.outer(s, s)
  return h


def _pairs(seed, m, shapes):
  """``m`` random pairs with positive curvature, stacked per leaf of a tuple of ``shapes``."""
  rng = np.random.default_rng(seed)
  dws = tuple(rng.normal(size=(m, *s)) for s in shapes)
  # y = s + small noise: <y, s> > 0, as a Wolfe step guarantees.
  dgs = tuple(x + 0.3 * rng.normal(size=x.shape) for x in dws)
  flat = lambda tree: np.concatenate([x.reshape(m, -1) for x in tree], axis=1)
  return dws, dgs, flat(dws), flat(dgs)


class TestTwoLoop:

  @pytest.mark.parametrize("oldest", [0, 1, 2, 3])
  @pytest.mark.parametrize("shapes", [((3,),), ((3, 2), (5,), ())], ids=["vector", "tree"])
  def test_equals_dense_formula(self, shapes, oldest):
    """The recursion from any ring-buffer position equals the product with the dense estimate."""
    m = 4
    with jax.enable_x64(True):
      dws, dgs, flat_dw, flat_dg = _pairs(0, m, shapes)
      rhos = 1.0 / np.sum(flat_dw * flat_dg, axis=1)
      vec = tuple(np.random.default_rng(1).normal(size=s) for s in shapes)
      got = lbfgs_lib._two_loop(
          jax.tree.map(jnp.asarray, vec), jax.tree.map(jnp.asarray, dws), jax.tree.map(jnp.asarray, dgs),
          jnp.asarray(rhos), 0.7, oldest,
      )
      # Slot `oldest` is the oldest pair: roll it to the front.
      order = [(oldest + i) % m for i in range(m)]
      h = _dense_inverse_hessian(flat_dw[order], flat_dg[order], gamma=0.7)
      flat_vec = np.concatenate([np.ravel(v) for v in vec])
      flat_got = np.concatenate([np.ravel(np.asarray(g)) for g in got])
    np.testing.assert_allclose(flat_got, h @ flat_vec, rtol=1e-10, atol=1e-12)

  def test_empty_memory_is_the_scaled_identity(self):
    zeros = jnp.zeros((3, 2))
    got = lbfgs_lib._two_loop(jnp.array([1.0, -2.0]), zeros, zeros, jnp.zeros(3), 0.5, 0)
    np.testing.assert_array_equal(got, [0.5, -1.0])


def _plain_lbfgs_directions(ws, gs, m, scale_init_precond):
  """Directions of L-BFGS with the pairs in a deque of length ``m`` (numpy, float64)."""
  pairs = collections.deque(maxlen=m)
  out = []
  for k, (w, g) in enumerate(zip(ws, gs)):
    if k > 0:
      pairs.append((w - ws[k - 1], g - gs[k - 1]))
    if not scale_init_precond:
      gamma = 1.0
    elif k == 0:
      gamma = min(1.0, 1.0 / np.linalg.norm(g))
    else:
      s, y = pairs[-1]
      gamma = (y @ s) / (y @ y)
    q, alphas = g.copy(), []
    for s, y in reversed(pairs):
      alphas.append((s @ q) / (y @ s))
      q = q - alphas[-1] * y
    r = gamma * q
    for (s, y), alpha in zip(pairs, reversed(alphas)):
      r = r + (alpha - (y @ r) / (y @ s)) * s
    out.append(r)
  return out


class TestRingBuffer:

  @pytest.mark.parametrize("scale_init_precond", [True, False])
  @pytest.mark.parametrize("memory_size", [1, 3])
  def test_keeps_the_last_pairs(self, memory_size, scale_init_precond):
    """Pair j (step j to j + 1) sits in slot j mod m; only the newest m shape the direction."""
    rng = np.random.default_rng(2)
    steps, d = 7, 4
    # Params and gradients of a convex quadratic, so every pair has positive curvature.
    a = rng.normal(size=(d, d))
    hess = a @ a.T + d * np.eye(d)
    ws = [rng.normal(size=d) for _ in range(steps)]
    gs = [hess @ w for w in ws]
    tx = jn.scale_by_lbfgs(memory_size, scale_init_precond)
    with jax.enable_x64(True):
      state = tx.init(jnp.zeros(d))
      update = jax.jit(tx.update)
      got = []
      for w, g in zip(ws, gs):
        direction, state = update(jnp.asarray(g), state, jnp.asarray(w))
        got.append(np.asarray(direction))
    want = _plain_lbfgs_directions(ws, gs, memory_size, scale_init_precond)
    np.testing.assert_allclose(np.stack(got), np.stack(want), rtol=1e-9, atol=1e-12)
    assert int(state.count) == steps
    for j in range(steps - 1 - memory_size, steps - 1):
      slot = j % memory_size
      s, y = ws[j + 1] - ws[j], gs[j + 1] - gs[j]
      np.testing.assert_allclose(state.diff_params_memory[slot], s, rtol=1e-12)
      np.testing.assert_allclose(state.diff_updates_memory[slot], y, rtol=1e-12)
      np.testing.assert_allclose(state.weights_memory[slot], 1.0 / (y @ s), rtol=1e-12)
    np.testing.assert_array_equal(state.params, ws[-1])
    np.testing.assert_array_equal(state.updates, gs[-1])

  def test_first_update_writes_a_zero_pair(self):
    """Before any step there is no pair: slot m - 1 gets zeros and weight 0, and the direction is g / max(1, |g|)."""
    tx = jn.scale_by_lbfgs(3)
    params = jnp.array([10.0, -3.0])
    direction, state = tx.update(jnp.array([3.0, 4.0]), tx.init(params), params)
    np.testing.assert_allclose(direction, [0.6, 0.8], rtol=1e-6)
    np.testing.assert_array_equal(state.diff_params_memory, np.zeros((3, 2)))
    np.testing.assert_array_equal(state.weights_memory, np.zeros(3))
    small, _ = tx.update(jnp.array([0.3, 0.4]), tx.init(params), params)
    np.testing.assert_allclose(small, [0.3, 0.4], rtol=1e-6)  # gamma_0 capped at 1

  def test_zero_curvature_pair_is_ignored(self):
    """<dg, dw> = 0 (here: params unchanged) gives weight 0, not Inf."""
    tx = jn.scale_by_lbfgs(2, scale_init_precond=False)
    params = jnp.array([1.0, 2.0])
    _, state = tx.update(jnp.array([1.0, 0.0]), tx.init(params), params)
    direction, state = tx.update(jnp.array([0.0, 1.0]), state, params)
    assert float(state.weights_memory[0]) == 0.0
    np.testing.assert_array_equal(direction, [0.0, 1.0])


@pytest.mark.parametrize("kwargs, error, name", [
    ({"memory_size": 0}, ValueError, "memory_size"),
    ({"memory_size": 2.0}, TypeError, "memory_size"),
    ({"scale_init_precond": 1}, TypeError, "scale_init_precond"),
])
def test_bad_argument_is_named(kwargs, error, name):
  with pytest.raises(error, match=f"`{name}`"):
    jn.scale_by_lbfgs(**kwargs)


def test_update_needs_params():
  tx = jn.scale_by_lbfgs()
  with pytest.raises(ValueError, match="needs the current parameters"):
    tx.update(jnp.ones(2), tx.init(jnp.ones(2)), None)


def test_integer_params_are_refused():
  with pytest.raises(TypeError, match="floating"):
    jn.scale_by_lbfgs().init({"w": jnp.arange(3)})
