"""Every optimizer alias: 100-step trajectories equal to optax's for every
flag that changes the math, with the learning rate as a float, a lambda
schedule and an optax schedule; our extra flags against numpy formulas."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj


def _matrices(params):
  """Mask: decay matrices only (not vectors, scalars)."""
  return jax.tree.map(lambda p: p.ndim == 2, params)


# name -> (learning rate, lr -> optimizer for a library). The base
# configuration of every alias, run with every kind of learning rate.
_BASE = {
    "sgd": (0.05, lambda lib, lr: lib.sgd(lr)),
    "adagrad": (0.1, lambda lib, lr: lib.adagrad(lr)),
    "adadelta": (1.0, lambda lib, lr: lib.adadelta(lr)),
    "rmsprop": (0.01, lambda lib, lr: lib.rmsprop(lr)),
    "adam": (0.02, lambda lib, lr: lib.adam(lr)),
    "adamw": (0.02, lambda lib, lr: lib.adamw(lr)),
    "nadam": (0.02, lambda lib, lr: lib.nadam(lr)),
    "nadamw": (0.02, lambda lib, lr: lib.nadamw(lr)),
    "radam": (0.02, lambda lib, lr: lib.radam(lr)),
    "amsgrad": (0.02, lambda lib, lr: lib.amsgrad(lr)),
    "adamax": (0.02, lambda lib, lr: lib.adamax(lr)),
}

# id -> lib -> optimizer: flag combinations that change the math, run with a
# float learning rate in both dtypes.
_FLAGS = {
    # sgd: momentum None is the base case.
    "sgd-momentum": lambda lib: lib.sgd(0.05, 0.9),
    "sgd-nesterov": lambda lib: lib.sgd(0.05, 0.9, True),
    "sgd-momentum0": lambda lib: lib.sgd(0.05, 0.0, True),
    # adagrad
    "adagrad-init0-eps": lambda lib: lib.adagrad(0.1, 0.0, 1e-3),
    # adadelta with a learning rate (optax's lr=None climbs; not compared)
    "adadelta-lr0.5-rho-eps": lambda lib: lib.adadelta(0.5, 0.5, 1e-4),
    "adadelta-wd": lambda lib: lib.adadelta(1.0, weight_decay=0.1),
    "adadelta-wd-mask": lambda lib: lib.adadelta(
        0.5, weight_decay=0.1, weight_decay_mask=_matrices
    ),
    # adam
    "adam-eps_root": lambda lib: lib.adam(0.02, eps_root=1e-8),
    "adam-b1-b2-eps": lambda lib: lib.adam(0.02, 0.5, 0.9, 1e-3),
    "adam-nesterov": lambda lib: lib.adam(0.02, nesterov=True),
    # adamw / nadamw: decoupled weight decay, masked or not
    "adamw-wd": lambda lib: lib.adamw(0.02, weight_decay=0.1),
    "adamw-wd-mask": lambda lib: lib.adamw(0.02, weight_decay=0.1, mask=_matrices),
    "adamw-wd-mask-tree": lambda lib: lib.adamw(
        0.02, weight_decay=0.1, mask=_matrices(tj.make_params())
    ),
    "adamw-wd-schedule": lambda lib: lib.adamw(
        0.02, weight_decay=lambda t: 0.1 / (1 + 0.05 * t)
    ),
    "nadam-b1-b2-eps_root": lambda lib: lib.nadam(0.02, 0.8, 0.99, 1e-8, 1e-8),
    "nadamw-wd-mask": lambda lib: lib.nadamw(0.02, weight_decay=0.1, mask=_matrices),
    # radam: both branches with b2 = 0.99 (threshold reached at step ~6/25)
    "radam-threshold": lambda lib: lib.radam(0.02, 0.9, 0.99, threshold=20.0),
    "radam-nesterov": lambda lib: lib.radam(0.02, 0.9, 0.99, nesterov=True),
    # amsgrad: each bias correction off
    "amsgrad-no-mu-correction": lambda lib: lib.amsgrad(
        0.02, 0.9, 0.99, bias_correction_mu=False
    ),
    "amsgrad-no-nu-correction": lambda lib: lib.amsgrad(
        0.02, 0.9, 0.99, bias_correction_nu=False
    ),
    "amsgrad-eps_root": lambda lib: lib.amsgrad(0.02, eps_root=1e-6),
    # adamax
    "adamax-b1-b2-eps": lambda lib: lib.adamax(0.02, 0.5, 0.9, 1e-3),
}

# rmsprop: (centered, momentum, nesterov, eps_in_sqrt, bias_correction,
# initial_scale). A subset of the 32 flag combinations: every value pair of
# centered, momentum (None or 0.9), eps_in_sqrt and bias_correction occurs,
# and among the momentum rows every flag, nesterov included, takes both
# values. Centred, eps outside the root and bias-corrected from nu = 0 is
# 0/0 at step 1 (NaN in optax too), so such rows start from initial_scale
# > 0.
_RMSPROP = [
    (False, None, False, True, False, 0.0),
    (True, None, False, True, False, 0.0),
    (False, None, False, False, True, 0.0),
    (True, None, False, True, True, 0.5),
    (False, 0.9, False, False, True, 0.0),
    (True, 0.9, True, True, True, 0.0),
    (False, 0.9, True, False, False, 0.0),
    (True, 0.9, False, False, False, 0.0),
    (True, 0.9, True, False, True, 0.1),
    (False, 0.9, True, True, False, 0.5),
]


def _rmsprop_id(row):
  centered, momentum, nesterov, eps_in_sqrt, bias_correction, initial_scale = row
  return "-".join([
      "centered" if centered else "plain",
      f"m{momentum}" + ("nesterov" if nesterov else ""),
      "eps_in" if eps_in_sqrt else "eps_out",
      "bc" if bias_correction else "nobc",
      f"nu0={initial_scale}",
  ])


# A float learning rate in both dtypes, each schedule in one of them.
_LR_AND_DTYPE = [
    ("float", "float32"), ("float", "float64"),
    ("lambda", "float32"), ("optax_schedule", "float64"),
]


class TestBaseConfigurations(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("lr_kind,dtype", _LR_AND_DTYPE)
  @pytest.mark.parametrize("name", sorted(_BASE))
  def test_matches_optax(self, name, lr_kind, dtype):
    """The alias with optax's defaults: params at every step, state, updates."""
    value, make = _BASE[name]
    lr = tj.learning_rate(lr_kind, value)
    ours, _ = tj.compare_with_optax(
        self.variant, lambda: make(jn, lr), lambda: make(optax, lr), dtype
    )
    if lr_kind != "float":
      # A schedule is evaluated through a counter in the state.
      counts = [
          int(x) for x in jax.tree.leaves(ours.state)
          if np.ndim(x) == 0 and jnp.issubdtype(jnp.asarray(x).dtype, jnp.integer)
      ]
      assert tj.STEPS in counts


class TestFlags(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("case", sorted(_FLAGS))
  def test_matches_optax(self, case, dtype):
    """One flag combination of one alias, against optax."""
    make = _FLAGS[case]
    tj.compare_with_optax(self.variant, lambda: make(jn), lambda: make(optax), dtype)

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("row", _RMSPROP, ids=[_rmsprop_id(r) for r in _RMSPROP])
  def test_rmsprop_matches_optax(self, row, dtype):
    """rmsprop: centred x momentum x Nesterov x eps placement x bias correction."""
    centered, momentum, nesterov, eps_in_sqrt, bias_correction, initial_scale = row
    make = lambda lib: lib.rmsprop(
        0.01, 0.9, 1e-6, initial_scale, eps_in_sqrt, centered, momentum, nesterov,
        bias_correction,
    )
    ours, _ = tj.compare_with_optax(self.variant, lambda: make(jn), lambda: make(optax), dtype)
    assert len(ours.state) == 3  # scaler, learning rate, trace or identity

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("name", ["sgd", "rmsprop"])
  def test_schedule_with_momentum(self, name):
    """Momentum after a scheduled step (the trace sees scaled updates)."""
    lr = tj.learning_rate("optax_schedule", 0.02)
    make = {
        "sgd": lambda lib: lib.sgd(lr, 0.9, True),
        "rmsprop": lambda lib: lib.rmsprop(lr, centered=True, momentum=0.9, nesterov=True),
    }[name]
    tj.compare_with_optax(self.variant, lambda: make(jn), lambda: make(optax))


class TestLowPrecisionAccumulators(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("case", ["sgd", "adam", "adamw", "nadam", "amsgrad"])
  def test_bfloat16_matches_optax(self, case):
    """accumulator_dtype / mu_dtype = bfloat16: stored and rounded as optax."""
    make = {
        "sgd": lambda lib: lib.sgd(0.05, 0.9, True, jnp.bfloat16),
        "adam": lambda lib: lib.adam(0.02, mu_dtype=jnp.bfloat16),
        "adamw": lambda lib: lib.adamw(0.02, mu_dtype=jnp.bfloat16, weight_decay=0.1),
        "nadam": lambda lib: lib.nadam(0.02, mu_dtype=jnp.bfloat16),
        "amsgrad": lambda lib: lib.amsgrad(0.02, mu_dtype=jnp.bfloat16),
    }[case]
    ours, _ = tj.compare_with_optax(self.variant, lambda: make(jn), lambda: make(optax))
    stored = ours.state[0].trace if case == "sgd" else ours.state[0].mu
    assert {x.dtype for x in jax.tree.leaves(stored)} == {jnp.dtype(jnp.bfloat16)}

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("case", ["adam", "adamw", "nadamw", "amsgrad"])
  def test_nu_dtype_float32_is_optax(self, case):
    """Our nu_dtype=float32 on float32 params gives optax's numbers."""
    f32 = jnp.float32
    ours_make = {
        "adam": lambda: jn.adam(0.02, nu_dtype=f32),
        "adamw": lambda: jn.adamw(0.02, weight_decay=0.1, nu_dtype=f32),
        "nadamw": lambda: jn.nadamw(0.02, weight_decay=0.1, nu_dtype=f32),
        "amsgrad": lambda: jn.amsgrad(0.02, nu_dtype=f32),
    }[case]
    ref_make = {
        "adam": lambda: optax.adam(0.02),
        "adamw": lambda: optax.adamw(0.02, weight_decay=0.1),
        "nadamw": lambda: optax.nadamw(0.02, weight_decay=0.1),
        "amsgrad": lambda: optax.amsgrad(0.02),
    }[case]
    tj.compare_with_optax(self.variant, ours_make, ref_make)


def _replay(variant, tx, dtype, seed):
  """Our run (as in compare_with_optax) for a numpy-formula check."""
  with tj.precision(dtype):
    params = tj.make_params(seed, dtype)
    run = tj.run_trajectories(variant, [tx()], params)[0]
  chex.assert_tree_all_finite(run.history)
  return run


class TestOurFlagsAgainstNumpy(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_adagrad_eps_outside_sqrt(self, dtype):
    """adagrad(eps_in_sqrt=False): w -= lr g / (sqrt(G) + eps), G = G0 + sum g^2."""
    lr, g0, eps = 0.1, 0.1, 1e-3
    run = _replay(self.variant, lambda: jn.adagrad(lr, g0, eps, eps_in_sqrt=False), dtype, 11)
    f = np.dtype(dtype).type

    def step(g, acc, t):
      acc = g * g + acc
      return -f(lr) * (g / (np.sqrt(acc) + f(eps))), acc

    expected, _ = tj.replay_numpy(run.grads, step, lambda x: np.full_like(x, g0))
    chex.assert_trees_all_close(run.updates, expected, **tj.formula_tolerance(dtype))

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("nesterov", [False, True])
  def test_sgd_average_momentum(self, nesterov, dtype):
    """sgd(average_momentum=True): v = b v + (1-b) g; w -= lr v
    (Nesterov: w -= lr (b v + (1-b) g))."""
    lr, b = 0.05, 0.9
    run = _replay(
        self.variant, lambda: jn.sgd(lr, b, nesterov, average_momentum=True), dtype, 12
    )
    f = np.dtype(dtype).type

    def step(g, v, t):
      v = (f(1) - f(b)) * g + f(b) * v
      d = (f(1) - f(b)) * g + f(b) * v if nesterov else v
      return -f(lr) * d, v

    expected, _ = tj.replay_numpy(run.grads, step, np.zeros_like)
    chex.assert_trees_all_close(run.updates, expected, **tj.formula_tolerance(dtype))

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("name", ["adam", "adamw"])
  def test_no_bias_correction(self, name, dtype):
    """adam/adamw(bias_correction=False): the uncorrected "almost Adam" step
    -lr (m / (sqrt(v) + eps) + wd w), with wd = 0 for adam."""
    lr, b1, b2, eps, wd = 0.02, 0.9, 0.99, 1e-7, (0.1 if name == "adamw" else 0.0)
    make = {
        "adam": lambda: jn.adam(lr, b1, b2, eps, bias_correction=False),
        "adamw": lambda: jn.adamw(lr, b1, b2, eps, weight_decay=wd, bias_correction=False),
    }[name]
    run = _replay(self.variant, make, dtype, 13)
    f = np.dtype(dtype).type
    # Params before each step: the initial params, then the history.
    with tj.precision(dtype):
      p0 = tj.make_params(13, dtype)
    before = jax.tree.map(
        lambda p, h: np.concatenate([np.asarray(p)[None], h[:-1]]), p0, run.history
    )
    params_seq = iter(jax.tree.leaves(before))

    def init(g0):
      return np.zeros_like(g0), np.zeros_like(g0), next(params_seq)

    def step(g, state, t):
      m, v, ws = state
      m = (f(1) - f(b1)) * g + f(b1) * m
      v = (f(1) - f(b2)) * g**2 + f(b2) * v
      u = m / (np.sqrt(v) + f(eps)) + f(wd) * ws[t - 1]
      return -f(lr) * u, (m, v, ws)

    expected, _ = tj.replay_numpy(run.grads, step, init)
    chex.assert_trees_all_close(run.updates, expected, **tj.formula_tolerance(dtype))


@pytest.mark.parametrize(
    "name", ["sgd", "adagrad", "rmsprop", "adam", "adamw", "nadam", "nadamw", "radam", "amsgrad", "adamax"]
)
def test_learning_rate_none_is_refused_naming_it(name):
  """optax reads None as "no scaling", which also skips the sign flip: optax.adam(None) climbs."""
  params, grads = {"w": jnp.array([1.0, -2.0])}, {"w": jnp.array([0.5, -0.5])}
  theirs = getattr(optax, name)(None)
  climbed = optax.apply_updates(params, theirs.update(grads, theirs.init(params), params)[0])
  # optax moves along the gradient (up the loss): the reason to refuse.
  assert float(jnp.vdot(climbed["w"] - params["w"], grads["w"])) > 0
  with pytest.raises(TypeError, match="`learning_rate` must be a number or a schedule, not None"):
    getattr(jn, name)(None)


def test_adadelta_none_descends():
  """adadelta keeps None, documented as eta = 1 with the sign flipped."""
  params, grads = {"w": jnp.array([1.0, -2.0])}, {"w": jnp.array([0.5, -0.5])}
  tx = jn.adadelta()
  moved = jn.apply_updates(params, tx.update(grads, tx.init(params), params)[0])
  assert float(jnp.vdot(moved["w"] - params["w"], grads["w"])) < 0
