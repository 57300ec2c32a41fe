"""The lab's problems, runs and summaries, and the notes' figures stated as facts.

Each figure of the notes is checked as the property it shows (notes
000-004): SGD zig-zags on the anisotropic bowl, Adam gets to the minimum
sooner where the conditioning is poor, the uncorrected EMA starts near zero,
gradient descent stalls on a saddle's stable manifold and escapes off it,
the start decides which minimum of the double well is found, minibatch
noise falls as ``1/n``, and Newton's method solves a quadratic in one step.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as opt
from jaxopt_notes import lab


def _hessian_eigenvalues(problem, point):
  h = jax.hessian(problem.loss)(jnp.asarray(point, jnp.float32))
  return np.linalg.eigvalsh(np.asarray(h, np.float64))


# ---- problems -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(lab.PROBLEMS))
def test_problem_minima_are_minima_and_saddles_are_saddles(name):
  problem = lab.get_problem(name)
  (x0, x1), (y0, y1) = problem.bounds
  for point in (problem.start, *problem.all_minima, *problem.saddles):
    assert x0 <= point[0] <= x1 and y0 <= point[1] <= y1, (name, point)
  for m in problem.all_minima:
    g = jax.grad(problem.loss)(jnp.asarray(m, jnp.float32))
    chex.assert_tree_all_finite(g)
    assert float(jnp.linalg.norm(g)) < 1e-4, (name, m, g)
    assert np.all(_hessian_eigenvalues(problem, m) > 0), (name, m)
  for s in problem.saddles:
    assert float(jnp.linalg.norm(jax.grad(problem.loss)(jnp.asarray(s, jnp.float32)))) < 1e-4
    eig = _hessian_eigenvalues(problem, s)
    assert eig.min() < 0 < eig.max(), (name, s, eig)
  if problem.minimum is not None:
    assert problem.minimum == problem.all_minima[0]
    # The global minimiser is the lowest of the minimisers and below the start.
    values = [float(problem.loss(jnp.asarray(m, jnp.float32))) for m in problem.all_minima]
    assert values[0] == min(values)
    assert values[0] < float(problem.loss(jnp.asarray(problem.start, jnp.float32)))


def test_bowl_is_the_notes_function_and_the_kappa_20_quadratic():
  bowl, quad = lab.anisotropic_bowl(), lab.ill_conditioned_quadratic(20.0)
  assert bowl.start == (-7.0, 4.0) and bowl.minimum == (0.0, 0.0)
  w = jax.random.normal(jax.random.key(0), (16, 2)) * 5
  expected = w[:, 0] ** 2 / 20 + w[:, 1] ** 2
  np.testing.assert_allclose(jax.vmap(bowl.loss)(w), expected, rtol=1e-6)
  np.testing.assert_allclose(jax.vmap(quad.loss)(w), expected, rtol=1e-5)


@pytest.mark.parametrize("kappa,angle", [(10.0, 0.0), (1000.0, 0.0), (100.0, 0.7)])
def test_ill_conditioned_quadratic_has_the_asked_condition_number(kappa, angle):
  eig = _hessian_eigenvalues(lab.ill_conditioned_quadratic(kappa, angle), (0.3, -0.2))
  np.testing.assert_allclose(eig.max() / eig.min(), kappa, rtol=1e-3)
  np.testing.assert_allclose(eig.max(), 2.0, rtol=1e-5)


def test_unknown_names_and_bad_arguments_are_refused():
  with pytest.raises(ValueError, match="valid names:.*anisotropic_bowl.*saddle"):
    lab.get_problem("bowl")
  with pytest.raises(ValueError, match="valid names:.*adam.*sgd"):
    lab.make_optimizer("adamm")
  with pytest.raises(ValueError, match="unknown optimizer.*'foo'.*valid names"):
    lab.compare(["sgd", "foo"])
  with pytest.raises(TypeError, match="sequence or a mapping"):
    lab.compare(opt.sgd(0.1))
  with pytest.raises(ValueError, match="condition_number"):
    lab.ill_conditioned_quadratic(0.5)
  with pytest.raises(ValueError, match="batch_size"):
    lab.noisy(lab.anisotropic_bowl(), 1.0, batch_size=0)
  with pytest.raises(ValueError, match="steps"):
    lab.trajectory("sgd", lab.anisotropic_bowl(), steps=0)
  with pytest.raises(ValueError, match="key"):
    lab.noisy(lab.anisotropic_bowl()).gradient(jnp.zeros(2))


# ---- runs ---------------------------------------------------------------------------


def test_trajectory_is_the_notes_loop():
  problem, lr, steps = lab.anisotropic_bowl(), 0.3, 25
  w, expected = np.asarray(problem.start, np.float32), [np.asarray(problem.start, np.float32)]
  for _ in range(steps):
    w = w - lr * np.asarray([w[0] / 10, 2 * w[1]], np.float32)
    expected.append(w)
  path = lab.trajectory(opt.sgd(lr), problem, problem.start, steps)  # positional form
  assert path.shape == (steps + 1, 2) and path.dtype == jnp.float32
  np.testing.assert_allclose(path, np.stack(expected), rtol=1e-5, atol=1e-6)


def test_trajectory_accepts_names_optax_and_newton():
  problem = lab.rosenbrock()
  by_name = lab.trajectory("adam", problem, steps=50)
  ours = lab.trajectory(opt.adam(problem.learning_rates["adam"]), problem, steps=50)
  theirs = lab.trajectory(optax.adam(problem.learning_rates["adam"]), problem, steps=50)
  chex.assert_tree_all_finite((by_name, ours, theirs))
  np.testing.assert_array_equal(by_name, ours)
  np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
  # Newton needs the loss (value_fn), which the lab passes.
  newton = lab.trajectory("newton", problem, steps=10)
  np.testing.assert_allclose(newton[-1], problem.minimum, atol=1e-4)


def test_compare_labels_names_objects_and_mappings():
  problem = lab.anisotropic_bowl()
  paths = lab.compare(["sgd", opt.adam(0.3)], problem, steps=10)
  assert list(paths) == ["sgd", "optimizer1"]
  mapped = lab.compare({"fast": "sgd", "mine": opt.sgd(0.95)}, problem, steps=10)
  np.testing.assert_array_equal(mapped["fast"], mapped["mine"])
  np.testing.assert_array_equal(paths["sgd"], mapped["fast"])
  default = lab.compare(problem=problem, steps=5)
  assert tuple(default) == lab.DEFAULT_NAMES
  for path in default.values():
    chex.assert_shape(path, (6, 2))
    chex.assert_tree_all_finite(path)


def test_noisy_runs_are_seeded():
  noisy = lab.noisy(lab.anisotropic_bowl(), 1.0, batch_size=4, seed=3)
  a = lab.trajectory("sgd", noisy, steps=30)
  np.testing.assert_array_equal(a, lab.trajectory("sgd", noisy, steps=30))
  np.testing.assert_array_equal(a, lab.trajectory("sgd", noisy, steps=30, key=jax.random.key(3)))
  b = lab.trajectory("sgd", noisy._replace(seed=4), steps=30)
  assert not np.allclose(a, b)
  exact = lab.trajectory("sgd", lab.anisotropic_bowl(), steps=30)
  assert not np.allclose(a, exact)
  np.testing.assert_array_equal(
      lab.trajectory("sgd", lab.noisy(lab.anisotropic_bowl(), 0.0), steps=30), exact)


def test_summary_rows_agree_with_the_path():
  problem = lab.anisotropic_bowl()
  paths = lab.compare(["sgd", "adam"], problem, steps=100)
  rows = lab.summary_rows(paths, problem, tol=1e-2, radius=0.5)
  for row in rows:
    path = np.asarray(paths[row["optimizer"]], np.float64)
    loss = np.asarray(lab.losses(problem, path))
    t = row["steps_to_tol"]
    assert t is not None and loss[t] < 1e-2 and np.all(loss[:t] >= 1e-2)
    r = row["steps_to_radius"]
    dist = np.linalg.norm(path, axis=1)
    assert dist[r] < 0.5 and np.all(dist[:r] >= 0.5)
    np.testing.assert_allclose(row["distance"], dist[-1], rtol=1e-6)
    np.testing.assert_allclose(row["final_loss"], loss[-1], rtol=1e-6)
    assert row["ended_in"] == 0 and not row["diverged"]
  table = lab.format_table(rows, tol=1e-2)
  assert table.splitlines()[1].split()[0] == "sgd"
  assert table.splitlines()[1].split()[-1] == str(rows[0]["steps_to_tol"])


def test_summary_marks_divergence_and_problems_without_minimum():
  bowl = lab.anisotropic_bowl()
  rows = lab.summary_rows({"too_fast": lab.trajectory(opt.sgd(5.0), bowl, steps=100)}, bowl)
  assert rows[0]["diverged"] and rows[0]["steps_to_tol"] is None
  assert "diverged" in lab.format_table(rows)
  saddle = lab.saddle()
  row = lab.summary_rows({"sgd": lab.trajectory("sgd", saddle)}, saddle)[0]
  assert row["distance"] is None and row["steps_to_tol"] is None and row["ended_in"] is None


def test_sign_changes():
  assert lab.sign_changes([1.0, -2.0, 3.0, 0.0, -1.0]) == 3
  assert lab.sign_changes([1.0, 2.0, 0.0, 3.0]) == 0
  assert lab.sign_changes([]) == 0


# ---- the notes' figures as facts ------------------------------------------------------
# Settings: note 001's bowl x^2/20 + y^2 from (-7, 4), the figure's rates
# (SGD 0.95, Momentum 0.1 with rho 0.9, AdaGrad 1.5, Adam 0.3), RMSProp 0.1.


def test_sgd_zigzags_across_the_bowl_and_adaptive_methods_do_not():
  bowl = lab.anisotropic_bowl()
  turns = {n: lab.sign_changes(np.diff(np.asarray(lab.trajectory(n, bowl, steps=50))[:, 1]))
           for n in ("sgd", "adagrad", "rmsprop", "adam")}
  # y is multiplied by 1 - 2 * 0.95 = -0.9 each step: a turn every step.
  assert turns["sgd"] >= 10
  for name in ("adagrad", "rmsprop", "adam"):
    assert turns[name] <= turns["sgd"] // 5, turns


def test_adam_reaches_the_minimum_sooner_at_a_shared_learning_rate():
  bowl = lab.anisotropic_bowl()
  paths = {"sgd": lab.trajectory(opt.sgd(0.3), bowl, steps=300),
           "adam": lab.trajectory(opt.adam(0.3), bowl, steps=300)}
  rows = {r["optimizer"]: r for r in lab.summary_rows(paths, bowl, radius=0.5)}
  assert rows["adam"]["steps_to_radius"] is not None
  # SGD's flat direction shrinks by 1 - 0.3/10 per step; Adam's steps are ~lr long.
  assert rows["sgd"]["steps_to_radius"] > rows["adam"]["steps_to_radius"] * 1.3


def test_adam_beats_sgd_on_poor_conditioning_but_not_always():
  # kappa = 100, each at the notes' rate: Adam's per-coordinate scaling wins.
  kappa = lab.ill_conditioned_quadratic(100.0)
  rows = {r["optimizer"]: r
          for r in lab.summary_rows(lab.compare(["sgd", "adam"], kappa, 300), kappa, radius=0.5)}
  assert rows["adam"]["steps_to_radius"] < rows["sgd"]["steps_to_radius"]
  # On the notes' own bowl (kappa = 20) the figure's SGD rate 0.95, at the edge
  # of stability, gets there first: "no algorithm is always best" (note 001).
  bowl = lab.anisotropic_bowl()
  rows = {r["optimizer"]: r
          for r in lab.summary_rows(lab.compare(["sgd", "adam"], bowl, 300), bowl, radius=0.5)}
  assert rows["sgd"]["steps_to_radius"] < rows["adam"]["steps_to_radius"]
  # Rotate the kappa = 100 valley off the axes and Adam's advantage is gone.
  rotated = lab.ill_conditioned_quadratic(100.0, angle=0.5)
  rows = {r["optimizer"]: r
          for r in lab.summary_rows(lab.compare(["sgd", "adam"], rotated, 150), rotated)}
  assert rows["sgd"]["distance"] < rows["adam"]["distance"]


def test_gradient_descent_stalls_on_the_saddle_manifold_and_escapes_off_it():
  saddle = lab.saddle()
  on = np.asarray(lab.trajectory("sgd", saddle, (-1.5, 0.0), 100))
  off = np.asarray(lab.trajectory("sgd", saddle, (-1.5, 1e-6), 100))
  # On y = 0 it converges to the saddle, where the gradient vanishes.
  assert np.linalg.norm(on[-1]) < 1e-6
  assert np.all(on[:, 1] == 0)
  # A 1e-6 nudge grows by 1 + 2 * 0.1 per step: out of the window in 100 steps.
  assert abs(off[-1, 1]) > 1.0 and abs(off[-1, 0]) < 1e-6
  assert float(saddle.loss(jnp.asarray(off[-1]))) < -1.0


def test_the_start_decides_which_minimum_gradient_descent_finds():
  well = lab.double_well()
  glob, local = well.all_minima
  assert float(well.loss(jnp.asarray(glob))) < float(well.loss(jnp.asarray(local))) - 0.5
  starts = {"right": (1.5, 1.0), "left": (-1.5, 1.0)}
  paths = {side: lab.trajectory("sgd", well, start) for side, start in starts.items()}
  rows = {r["optimizer"]: r for r in lab.summary_rows(paths, well)}
  assert rows["right"]["ended_in"] == 1 and rows["left"]["ended_in"] == 0
  np.testing.assert_allclose(paths["right"][-1], local, atol=1e-3)
  np.testing.assert_allclose(paths["left"][-1], glob, atol=1e-3)
  # Momentum carries the right-hand start over the ridge (note 001).
  momentum = lab.summary_rows({"m": lab.trajectory("momentum", well, starts["right"])}, well)
  assert momentum[0]["ended_in"] == 0


def test_noisy_gradient_variance_falls_as_one_over_batch_size():
  sigma, sizes = 1.5, (1, 4, 16, 64)
  bowl = lab.anisotropic_bowl()
  variances = np.asarray(
      [lab.gradient_variance(lab.noisy(bowl, sigma, n), (1.0, 2.0)) for n in sizes])
  # E|xi_mean|^2 = d sigma^2 / n in d = 2 dimensions; 4096 draws: ~2% error.
  np.testing.assert_allclose(variances * np.asarray(sizes) / (2 * sigma**2), 1.0, rtol=0.1)
  assert lab.gradient_variance(bowl, (1.0, 2.0)) == 0.0


def test_minibatch_gradient_variance_of_real_data_falls_as_one_over_batch_size():
  k1, k2 = jax.random.split(jax.random.key(0))
  n_data = 4096
  x = jax.random.normal(k1, (n_data, 3))
  y = x @ jnp.asarray([1.0, -2.0, 0.5]) + 0.5 * jax.random.normal(k2, (n_data,))
  loss = lambda w, batch: jnp.mean((batch[0] @ w - batch[1]) ** 2)
  sizes = np.asarray([1, 4, 16, 64])
  var = lab.minibatch_gradient_variance(loss, jnp.zeros(3), (x, y), sizes,
                                        key=jax.random.key(1), samples=1024)
  # Sampling without replacement shrinks the variance by (N - n) / (N - 1).
  var = var / ((n_data - sizes) / (n_data - 1))
  slope = np.polyfit(np.log(sizes), np.log(var), 1)[0]
  assert -1.1 < slope < -0.9, (slope, var)
  with pytest.raises(ValueError, match="batch size"):
    lab.minibatch_gradient_variance(loss, jnp.zeros(3), (x, y), [n_data + 1], key=k1)


def test_newton_solves_the_ill_conditioned_quadratic_in_one_step():
  problem = lab.ill_conditioned_quadratic(1000.0, angle=0.3)
  newton = np.asarray(lab.trajectory("newton", problem, steps=1))
  np.testing.assert_allclose(newton[1], (0.0, 0.0), atol=1e-4)
  # Gradient descent at its notes rate is still far after 100 steps.
  sgd = lab.summary_rows({"sgd": lab.trajectory("sgd", problem, steps=100)}, problem)[0]
  assert sgd["distance"] > 1.0


# ---- note 004: the temperature series and its EMA --------------------------------------


def test_london_temperatures_are_seasonal_and_seeded():
  t = lab.london_temperatures()
  assert t.shape == (365,) and t.dtype == np.float32
  np.testing.assert_array_equal(t, lab.london_temperatures(seed=0))
  assert not np.allclose(t, lab.london_temperatures(seed=1))
  assert 9.0 < t.mean() < 13.5
  assert t[181:212].mean() - t[:31].mean() > 8.0  # July is warmer than January


def test_ema_matches_the_notes_recursion():
  theta = lab.london_temperatures(days=40)
  for beta in (0.5, 0.9, 0.98):
    v, expected = 0.0, []
    for x in theta.astype(np.float64):
      v = beta * v + (1 - beta) * x
      expected.append(v)
    expected = np.asarray(expected)
    np.testing.assert_allclose(lab.ema_series(theta, beta, False), expected, rtol=1e-5)
    corrected = expected / (1 - beta ** np.arange(1, 41))
    np.testing.assert_allclose(lab.ema_series(theta, beta, True), corrected, rtol=1e-5)


def test_bias_correction_fixes_the_low_early_values():
  theta = lab.london_temperatures()
  raw, fixed = lab.ema_series(theta, 0.98, False), lab.ema_series(theta, 0.98, True)
  level = theta[:10].mean()
  # Uncorrected, day t is (1 - 0.98^t) <= 18% of a weighted mean: near zero.
  assert raw[:10].mean() < 0.2 * level
  assert 0.7 * level < fixed[:10].mean() < 1.3 * level
  np.testing.assert_allclose(fixed[0], theta[0], rtol=1e-6)
  # The correction fades: after 300 days 0.98^300 ~ 0.2%.
  np.testing.assert_allclose(raw[300:], fixed[300:], rtol=3e-3)


def test_larger_beta_averages_more_days():
  theta = lab.london_temperatures()
  roughness = [np.std(np.diff(lab.ema_series(theta, b))) for b in (0.5, 0.9, 0.98)]
  assert roughness[0] > 2 * roughness[1] > 4 * roughness[2]
