"""The lecture notes' own update formulas (docs/notes), each recomputed in numpy.

Every reference below is the note's formula written out in float64 numpy,
step by step, and compared with the library's float32 trajectory.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_notes as jn

STEPS = 30
DIM = 5
RTOL, ATOL = 2e-5, 1e-6


def _grads(seed=0, steps=STEPS, dim=DIM):
  """A fixed sequence of gradients, one row per step, with mixed scales."""
  rng = np.random.default_rng(seed)
  scales = np.array([0.01, 0.3, 1.0, 3.0, 10.0])[:dim]
  return rng.normal(size=(steps, dim)) * scales


def _w0(dim=DIM):
  return np.linspace(-1.0, 2.0, dim)


def _library_path(tx, grads, w0=None):
  """Params after each step of `tx` fed the rows of `grads` (jit + lax.scan)."""
  w0 = _w0(grads.shape[1]) if w0 is None else w0
  p0 = jnp.asarray(w0, jnp.float32)

  @jax.jit
  def go(p0, gs):
    def body(carry, g):
      p, s = carry
      u, s = tx.update(g, s, p)
      p = jn.apply_updates(p, u)
      return (p, s), p

    return jax.lax.scan(body, (p0, tx.init(p0)), gs)[1]

  return np.asarray(go(p0, jnp.asarray(grads, jnp.float32)), np.float64)


def _assert_paths_close(ours, reference, rtol=RTOL, atol=ATOL):
  assert ours.shape == reference.shape
  np.testing.assert_allclose(ours, reference, rtol=rtol, atol=atol)
  # The run is not trivial: parameters moved.
  assert np.max(np.abs(reference[-1] - reference[0])) > 1e-3


# --- note 000: gradient descent, momentum, AdaGrad, RMSProp, "almost Adam" --


def test_note000_gradient_descent_is_sgd():
  """Note 000: `w -= lr * dw` equals sgd(lr)."""
  lr, grads = 0.1, _grads()
  w, ref = _w0(), []
  for g in grads:
    w = w - lr * g
    ref.append(w)
  _assert_paths_close(_library_path(jn.sgd(lr), grads), np.array(ref))


@pytest.mark.parametrize("rho", [0.9, 0.99])
def test_note000_and_003_momentum_is_sgd_momentum(rho):
  """Notes 000/003: `a <- beta a + g; W <- W - eta a` equals sgd(eta, momentum=beta)."""
  eta, grads = 0.05, _grads(1)
  w, a, ref = _w0(), np.zeros(DIM), []
  for g in grads:
    a = rho * a + g
    w = w - eta * a
    ref.append(w)
  _assert_paths_close(_library_path(jn.sgd(eta, momentum=rho), grads), np.array(ref))


def test_note004_average_momentum():
  """Note 004: `v = b v + (1-b) g; w -= lr v` equals sgd(lr, momentum=b, average_momentum=True)."""
  lr, b, grads = 0.2, 0.9, _grads(2)
  w, v, ref = _w0(), np.zeros(DIM), []
  for g in grads:
    v = b * v + (1 - b) * g
    w = w - lr * v
    ref.append(w)
  tx = jn.sgd(lr, momentum=b, average_momentum=True)
  _assert_paths_close(_library_path(tx, grads), np.array(ref))


def test_note004_average_momentum_nesterov():
  """EMA momentum with Nesterov: `v = b v + (1-b) g; w -= lr (b v + (1-b) g)`."""
  lr, b, grads = 0.2, 0.8, _grads(3)
  w, v, ref = _w0(), np.zeros(DIM), []
  for g in grads:
    v = b * v + (1 - b) * g
    w = w - lr * (b * v + (1 - b) * g)
    ref.append(w)
  tx = jn.sgd(lr, momentum=b, nesterov=True, average_momentum=True)
  _assert_paths_close(_library_path(tx, grads), np.array(ref))


def test_note004_average_momentum_is_rescaled_plain_momentum():
  """Note 004: the EMA form equals plain momentum with lr rescaled by (1 - b)."""
  lr, b, grads = 0.2, 0.9, _grads(4)
  avg = _library_path(jn.sgd(lr, momentum=b, average_momentum=True), grads)
  plain = _library_path(jn.sgd(lr * (1 - b), momentum=b), grads)
  np.testing.assert_allclose(avg, plain, rtol=1e-5, atol=1e-6)


def test_note000_adagrad():
  """Note 000: `g2 += g*g; w -= lr g / (sqrt(g2) + 1e-7)` equals adagrad(eps_in_sqrt=False)."""
  lr, grads = 0.1, _grads(5)
  w, g2, ref = _w0(), np.zeros(DIM), []
  for g in grads:
    g2 = g2 + g * g
    w = w - lr * g / (np.sqrt(g2) + 1e-7)
    ref.append(w)
  tx = jn.adagrad(lr, initial_accumulator_value=0.0, eps=1e-7, eps_in_sqrt=False)
  _assert_paths_close(_library_path(tx, grads), np.array(ref))


def test_note003_adagrad():
  """Note 003: `W <- W - eta / sqrt(G + eps) g` (G: sum of squares) equals adagrad(eta, 0, eps)."""
  eta, eps, grads = 0.1, 1e-7, _grads(6)
  w, big_g, ref = _w0(), np.zeros(DIM), []
  for g in grads:
    big_g = big_g + g * g
    w = w - eta / np.sqrt(big_g + eps) * g
    ref.append(w)
  tx = jn.adagrad(eta, initial_accumulator_value=0.0, eps=eps)
  _assert_paths_close(_library_path(tx, grads), np.array(ref))


def test_note000_rmsprop_eps_outside_root():
  """Note 000: `g2 = d g2 + (1-d) dw^2; w -= lr dw / (sqrt(g2) + 1e-7)` equals rmsprop(eps_in_sqrt=False)."""
  lr, decay, grads = 0.01, 0.9, _grads(7)
  w, g2, ref = _w0(), np.zeros(DIM), []
  for g in grads:
    g2 = decay * g2 + (1 - decay) * g * g
    w = w - lr * g / (np.sqrt(g2) + 1e-7)
    ref.append(w)
  tx = jn.rmsprop(lr, decay=decay, eps=1e-7, eps_in_sqrt=False)
  _assert_paths_close(_library_path(tx, grads), np.array(ref))


@pytest.mark.parametrize("b2, eps", [(0.9, 1e-8), (0.999, 1e-6)])
def test_note004_rmsprop(b2, eps):
  """Notes 003/004: `S = b2 S + (1-b2) dw^2; w -= alpha dw / sqrt(S + eps)` equals rmsprop."""
  alpha, grads = 0.01, _grads(8)
  w, s, ref = _w0(), np.zeros(DIM), []
  for g in grads:
    s = b2 * s + (1 - b2) * g * g
    w = w - alpha * g / np.sqrt(s + eps)
    ref.append(w)
  _assert_paths_close(_library_path(jn.rmsprop(alpha, decay=b2, eps=eps), grads), np.array(ref))


def test_note000_almost_adam():
  """Note 000: "almost Adam" `w -= lr m / (sqrt(v) + eps)` equals adam(bias_correction=False)."""
  lr, b1, b2, eps, grads = 1e-2, 0.9, 0.999, 1e-7, _grads(9)
  w, m, v, ref = _w0(), np.zeros(DIM), np.zeros(DIM), []
  for g in grads:
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    w = w - lr * m / (np.sqrt(v) + eps)
    ref.append(w)
  tx = jn.adam(lr, b1=b1, b2=b2, eps=eps, bias_correction=False)
  _assert_paths_close(_library_path(tx, grads), np.array(ref))


@pytest.mark.parametrize("b1, b2, eps", [(0.9, 0.999, 1e-8), (0.8, 0.99, 1e-3)])
def test_note004_full_adam(b1, b2, eps):
  """Note 004: bias-corrected `w -= alpha m_hat / (sqrt(v_hat) + eps)` equals adam."""
  alpha, grads = 1e-2, _grads(10)
  w, m, v, ref = _w0(), np.zeros(DIM), np.zeros(DIM), []
  for t, g in enumerate(grads, start=1):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    w = w - alpha * m_hat / (np.sqrt(v_hat) + eps)
    ref.append(w)
  tx = jn.adam(alpha, b1=b1, b2=b2, eps=eps)
  _assert_paths_close(_library_path(tx, grads), np.array(ref), rtol=1e-4)


def test_note003_adam_rearranged():
  """Note 003: `W -= eta / sqrt(v) * sqrt(1 - b2^t) / (1 - b1^t) * m` equals adam(eps=0)."""
  eta, b1, b2, grads = 1e-2, 0.9, 0.999, _grads(11)
  w, m, v, ref = _w0(), np.zeros(DIM), np.zeros(DIM), []
  for t, g in enumerate(grads, start=1):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    w = w - eta / np.sqrt(v) * np.sqrt(1 - b2**t) / (1 - b1**t) * m
    ref.append(w)
  _assert_paths_close(_library_path(jn.adam(eta, eps=0.0), grads), np.array(ref), rtol=1e-4)


# --- note 003: Adadelta -----------------------------------------------------


def _adadelta_reference(grads, gamma=0.9, eps=1e-6, eta=1.0):
  """Note 003's Adadelta: G, dW = -sqrt(H + eps) / sqrt(G + eps) g, H; W += eta dW."""
  w, big_g, big_h, ref = _w0(grads.shape[1]), np.zeros(grads.shape[1]), np.zeros(grads.shape[1]), []
  for g in grads:
    big_g = gamma * big_g + (1 - gamma) * g * g
    dw = -np.sqrt(big_h + eps) / np.sqrt(big_g + eps) * g
    big_h = gamma * big_h + (1 - gamma) * dw * dw
    w = w + eta * dw
    ref.append(w)
  return np.array(ref)


def test_note003_adadelta_without_learning_rate():
  """Note 003's Adadelta (no learning rate) equals adadelta()."""
  grads = _grads(12, steps=50)
  _assert_paths_close(_library_path(jn.adadelta(), grads), _adadelta_reference(grads))


def test_note003_adadelta_with_rho_eps_and_learning_rate():
  """Note 003's Adadelta with gamma=0.95, eps=1e-4, scaled by eta=0.5 equals adadelta(0.5, 0.95, 1e-4)."""
  grads = _grads(13, steps=50)
  ref = _adadelta_reference(grads, gamma=0.95, eps=1e-4, eta=0.5)
  # H accumulates eta-free steps (eta only scales the applied update).
  _assert_paths_close(_library_path(jn.adadelta(0.5, rho=0.95, eps=1e-4), grads), ref)


# --- notes 000/003: Nesterov on a quadratic (gradients depend on the point) --

_A = np.diag([0.1, 1.0, 2.0, 5.0, 8.0]) + 0.05 * np.ones((DIM, DIM))
_B = np.array([1.0, -1.0, 0.5, 2.0, -0.25])


def _quad_grad_np(w):
  return _A @ w - _B


def _quad_loss(w):
  a, b = jnp.asarray(_A, jnp.float32), jnp.asarray(_B, jnp.float32)
  return 0.5 * w @ a @ w - b @ w


def _sgd_path_on_quadratic(tx, steps):
  @jax.jit
  def go(p0):
    def body(carry, _):
      p, s = carry
      u, s = tx.update(jax.grad(_quad_loss)(p), s, p)
      p = jn.apply_updates(p, u)
      return (p, s), p

    return jax.lax.scan(body, (p0, tx.init(p0)), None, length=steps)[1]

  return np.asarray(go(jnp.asarray(_w0(), jnp.float32)), np.float64)


def test_note003_nag_lookahead_is_sgd_nesterov():
  """Note 003's NAG `a <- beta a + grad L(W - eta beta a); W <- W - eta a` equals sgd(nesterov) at W - eta beta a."""
  eta, beta, steps = 0.05, 0.9, 40
  w, a, shifted = _w0(), np.zeros(DIM), []
  for _ in range(steps):
    a = beta * a + _quad_grad_np(w - eta * beta * a)
    w = w - eta * a
    shifted.append(w - eta * beta * a)
  ours = _sgd_path_on_quadratic(jn.sgd(eta, momentum=beta, nesterov=True), steps)
  _assert_paths_close(ours, np.array(shifted), rtol=1e-4, atol=1e-5)


def test_note000_nesterov_change_of_variables_is_sgd_nesterov():
  """Note 000's `v' = rho v - lr grad(x + rho v); x' = x + v'` equals sgd(nesterov) at x~ = x + rho v."""
  lr, rho, steps = 0.05, 0.9, 40
  x, v, shifted = _w0(), np.zeros(DIM), []
  for _ in range(steps):
    v = rho * v - lr * _quad_grad_np(x + rho * v)
    x = x + v
    shifted.append(x + rho * v)
  ours = _sgd_path_on_quadratic(jn.sgd(lr, momentum=rho, nesterov=True), steps)
  _assert_paths_close(ours, np.array(shifted), rtol=1e-4, atol=1e-5)


# --- note 004: exponentially weighted average and its bias correction ------


@pytest.mark.parametrize("debias", [False, True])
@pytest.mark.parametrize("beta", [0.5, 0.9, 0.98])
def test_note004_ema(beta, debias):
  """Note 004: `V_t = beta V + (1-beta) theta_t` (optionally / (1 - beta^t)) equals ema()."""
  thetas = _grads(14, steps=20, dim=3)
  v, ref = np.zeros(3), []
  for t, th in enumerate(thetas, start=1):
    v = beta * v + (1 - beta) * th
    ref.append(v / (1 - beta**t) if debias else v)
  tx = jn.ema(beta, debias=debias)

  def body(state, th):
    out, state = tx.update(th, state)
    return state, out

  outs = jax.lax.scan(body, tx.init(jnp.zeros(3)), jnp.asarray(thetas, jnp.float32))[1]
  np.testing.assert_allclose(np.asarray(outs), np.array(ref), rtol=1e-4, atol=1e-6)


def test_note004_bias_correction_fixes_low_start():
  """Note 004: on a constant signal the debiased EMA is exact from step 1; the raw one starts low."""
  tx_raw, tx_hat = jn.ema(0.98, debias=False), jn.ema(0.98, debias=True)
  s_raw, s_hat = tx_raw.init(jnp.zeros(2)), tx_hat.init(jnp.zeros(2))
  signal = jnp.array([10.0, -4.0])
  raw, s_raw = tx_raw.update(signal, s_raw)
  hat, s_hat = tx_hat.update(signal, s_hat)
  np.testing.assert_allclose(raw, 0.02 * np.asarray(signal), rtol=1e-5)
  np.testing.assert_allclose(hat, signal, rtol=1e-4)


# --- state dtypes: mu_dtype and nu_dtype -------------------------------------


def _dtypes(tree):
  return {jnp.dtype(x.dtype) for x in jax.tree.leaves(tree)}


def _run_adam_scanned(tx, params, steps=5):
  """Runs `steps` updates under lax.scan (which also fails if a state dtype drifts)."""
  grads = jax.tree.map(lambda p: (jnp.arange(p.size, dtype=jnp.float32).reshape(p.shape) - 1.5).astype(p.dtype), params)

  @jax.jit
  def go(params):
    def body(carry, _):
      p, s = carry
      u, s = tx.update(grads, s, p)
      return (jn.apply_updates(p, u), s), None

    return jax.lax.scan(body, (params, tx.init(params)), None, length=steps)[0]

  return go(params)


def test_adam_nu_dtype_bfloat16():
  """adam(nu_dtype=bfloat16) stores nu in bfloat16 and mu in the params' float32."""
  params = {"w": jnp.ones((2, 3), jnp.float32), "b": jnp.zeros(4, jnp.float32)}
  tx = jn.adam(1e-3, nu_dtype=jnp.bfloat16)
  state = tx.init(params)
  assert _dtypes(state[0].mu) == {jnp.dtype(jnp.float32)}
  assert _dtypes(state[0].nu) == {jnp.dtype(jnp.bfloat16)}
  new_params, new_state = _run_adam_scanned(tx, params)
  assert _dtypes(new_state[0].mu) == {jnp.dtype(jnp.float32)}
  assert _dtypes(new_state[0].nu) == {jnp.dtype(jnp.bfloat16)}
  chex.assert_tree_all_finite(new_params)
  # The numbers stay those of float32 Adam up to bfloat16 rounding of nu.
  ref_params, ref_state = _run_adam_scanned(jn.adam(1e-3), params)
  chex.assert_trees_all_close(new_params, ref_params, rtol=1e-3, atol=1e-5)
  chex.assert_trees_all_close(
      jax.tree.map(lambda x: x.astype(jnp.float32), new_state[0].nu), ref_state[0].nu, rtol=1e-2
  )


@pytest.mark.parametrize(
    "param_dtype, mu_dtype, nu_dtype",
    [
        (jnp.float32, jnp.bfloat16, jnp.bfloat16),
        (jnp.float32, jnp.bfloat16, jnp.float16),
        (jnp.bfloat16, jnp.float32, jnp.float32),
        (jnp.bfloat16, None, jnp.float32),
        (jnp.bfloat16, jnp.float32, None),
    ],
)
def test_adam_mu_and_nu_dtypes_both_honoured(param_dtype, mu_dtype, nu_dtype):
  """mu_dtype and nu_dtype each set their moment's dtype, at init and after updates."""
  params = {"w": jnp.ones((2, 3), param_dtype), "b": jnp.zeros(4, param_dtype)}
  tx = jn.adam(1e-3, mu_dtype=mu_dtype, nu_dtype=nu_dtype)
  want_mu = jnp.dtype(mu_dtype or param_dtype)
  want_nu = jnp.dtype(nu_dtype or param_dtype)
  state = tx.init(params)
  assert _dtypes(state[0].mu) == {want_mu}
  assert _dtypes(state[0].nu) == {want_nu}
  new_params, new_state = _run_adam_scanned(tx, params)
  assert _dtypes(new_state[0].mu) == {want_mu}
  assert _dtypes(new_state[0].nu) == {want_nu}
  assert _dtypes(new_params) == {jnp.dtype(param_dtype)}
  chex.assert_tree_all_finite(new_state)


def test_adam_nu_dtype_first_step_value():
  """After one step, a bfloat16 nu holds (1 - b2) g^2 rounded to bfloat16."""
  g = jnp.array([0.5, -2.0, 3.0], jnp.float32)
  tx = jn.adam(1e-3, nu_dtype=jnp.bfloat16)
  _, state = tx.update(g, tx.init(jnp.zeros(3)), jnp.zeros(3))
  expected = ((1 - 0.999) * np.asarray(g, np.float64) ** 2).astype(np.float32)
  np.testing.assert_allclose(np.asarray(state[0].nu, np.float32), expected, rtol=1e-2)
  np.testing.assert_allclose(np.asarray(state[0].mu), 0.1 * np.asarray(g), rtol=1e-6)


def test_amsgrad_nu_dtype_for_nu_and_nu_max():
  """amsgrad(nu_dtype=bfloat16) keeps nu and nu_max in bfloat16 and mu in float32."""
  params = {"w": jnp.ones((2, 3), jnp.float32)}
  tx = jn.amsgrad(1e-3, nu_dtype=jnp.bfloat16)
  _, new_state = _run_adam_scanned(tx, params)
  assert _dtypes(new_state[0].mu) == {jnp.dtype(jnp.float32)}
  assert _dtypes(new_state[0].nu) == {jnp.dtype(jnp.bfloat16)}
  assert _dtypes(new_state[0].nu_max) == {jnp.dtype(jnp.bfloat16)}
