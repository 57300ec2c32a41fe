"""scale_by_belief, scale_by_yogi, scale_by_adan and scale_by_novograd:
100-step trajectories equal to optax's for every option that changes the
math, each rule's defining property on hand-made gradients, and the argument
checks."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj


def _then_sgd(lib, inner, lr=0.02):
  """``inner`` followed by a descent step of size ``lr``."""
  return lib.chain(inner, lib.scale(-lr))


def _dtypes(tree):
  return {x.dtype for x in jax.tree.leaves(tree)}


# name -> (args, kwargs): positional as in optax, so a swapped argument shows.
_CASES = {
    "belief-defaults": ("scale_by_belief", (), {}),
    "belief-nesterov": ("scale_by_belief", (), {"nesterov": True}),
    "belief-paper-eps": ("scale_by_belief", (0.8, 0.99, 1e-8, 0.0), {}),
    "yogi-defaults": ("scale_by_yogi", (), {}),
    "yogi-all-args": ("scale_by_yogi", (0.5, 0.9, 1e-2, 1e-6, 0.5), {}),
    "adan-defaults": ("scale_by_adan", (), {}),
    "adan-all-args": ("scale_by_adan", (0.9, 0.8, 0.95, 1e-6, 1e-8), {}),
    "novograd-defaults": ("scale_by_novograd", (), {}),
    "novograd-all-args": ("scale_by_novograd", (0.8, 0.5, 1e-6, 1e-8, 0.1), {}),
}


# Each block's defaults in both dtypes; each other option in one of them.
_CASE_DTYPES = [
    (case, dtype) for case in sorted(_CASES) for dtype in tj.DTYPES
    if case.endswith("defaults") or dtype == ("float64" if "all-args" in case else "float32")
]


class TestMatchesOptax(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("case, dtype", _CASE_DTYPES)
  def test_matches_optax(self, case, dtype):
    """Params every step, updates and the final state field by field."""
    name, args, kwargs = _CASES[case]
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, getattr(jn, name)(*args, **kwargs)),
        lambda: _then_sgd(optax, getattr(optax, name)(*args, **kwargs)),
        dtype,
    )
    state = ours.state[0]
    assert int(state.t if name == "scale_by_adan" else state.count) == tj.STEPS

  @chex.variants(with_jit=True, without_jit=True)
  def test_novograd_mu_dtype_bfloat16_matches_optax(self):
    """NovoGrad's momentum (and so its updates) in bfloat16, as optax's."""
    ours, _ = tj.compare_with_optax(
        self.variant,
        lambda: _then_sgd(jn, jn.scale_by_novograd(mu_dtype=jnp.bfloat16)),
        lambda: _then_sgd(optax, optax.scale_by_novograd(mu_dtype=jnp.bfloat16)),
    )
    assert _dtypes(ours.state[0].mu) == {jnp.dtype(jnp.bfloat16)}
    assert _dtypes(ours.state[0].nu) == {jnp.dtype(jnp.float32)}


def _run(tx, grads_seq, params):
  state = tx.init(params)
  outs = []
  for g in grads_seq:
    out, state = tx.update(g, state, params)
    outs.append(out)
  return outs, state


class TestBelief:

  def test_eps_root_accumulates_in_the_stored_second_moment(self):
    """Zero gradients: m = 0, so s_t = b2 s_{t-1} + eps_root, the updates exactly 0."""
    b2, eps_root = 0.5, 1e-3
    p = {"w": jnp.zeros(3)}
    outs, state = _run(jn.scale_by_belief(b2=b2, eps_root=eps_root), [p] * 5, p)
    np.testing.assert_allclose(state.nu["w"], eps_root * sum(b2**k for k in range(5)), rtol=1e-6)
    assert all(np.all(np.asarray(o["w"]) == 0) for o in outs)

  def test_a_steady_gradient_takes_larger_steps_than_adam(self):
    """The belief: a gradient equal to its mean has no surprise, so s shrinks and
    the step grows past Adam's (which tends to g / |g| = 1)."""
    g = {"w": jnp.array([0.3, -2.0])}
    belief, _ = _run(jn.scale_by_belief(eps=1e-8, eps_root=0.0), [g] * 30, g)
    adam, _ = _run(jn.scale_by_adam(), [g] * 30, g)
    np.testing.assert_allclose(np.abs(adam[-1]["w"]), 1.0, rtol=1e-5)
    assert np.all(np.abs(belief[-1]["w"]) > 2.0)
    np.testing.assert_array_equal(np.sign(belief[-1]["w"]), np.sign(g["w"]))


class TestYogi:

  @pytest.mark.parametrize("v0, g", [(100.0, 0.1), (1e-4, 3.0)])
  def test_second_moment_moves_by_at_most_one_minus_b2_g_squared(self, v0, g):
    """Adam moves v by (1-b2)(g^2 - v); Yogi by (1-b2) g^2 towards g^2."""
    b2 = 0.9
    p = {"w": jnp.zeros(1)}
    grads = {"w": jnp.full(1, g)}
    tx = jn.scale_by_yogi(b2=b2, initial_accumulator_value=v0)
    _, state = tx.update(grads, tx.init(p), p)
    expected = v0 + (1 - b2) * g**2 * np.sign(g**2 - v0)
    np.testing.assert_allclose(state.nu["w"], [expected], rtol=1e-6)
    if v0 > g**2:
      # After a small gradient Adam forgets most of v at once; Yogi barely moves.
      adam_drop = (1 - b2) * (v0 - g**2)
      assert v0 - float(state.nu["w"][0]) < adam_drop / 1000

  def test_state_is_adams_and_starts_at_the_initial_value(self):
    state = jn.scale_by_yogi(initial_accumulator_value=0.25).init({"w": jnp.zeros(2)})
    assert isinstance(state, jn.ScaleByAdamState)
    np.testing.assert_array_equal(state.mu["w"], [0.25, 0.25])
    np.testing.assert_array_equal(state.nu["w"], [0.25, 0.25])


class TestAdan:

  def test_two_steps_are_algorithm_one(self):
    """Step 1 has no gradient difference; step 2 uses g2 - g1 in v and in n."""
    b1, b2, b3, eps = 0.9, 0.8, 0.7, 1e-8
    g1, g2 = np.array([1.0, -2.0]), np.array([0.5, 1.0])
    p = {"w": jnp.zeros(2)}
    outs, state = _run(
        jn.scale_by_adan(b1, b2, b3, eps), [{"w": jnp.asarray(g1)}, {"w": jnp.asarray(g2)}], p
    )
    m1, v1, n1 = (1 - b1) * g1, 0 * g1, (1 - b3) * g1**2
    tol = dict(rtol=1e-5)  # float32 against a float64 formula
    np.testing.assert_allclose(outs[0]["w"], (m1 / (1 - b1)) / (np.sqrt(n1 / (1 - b3)) + eps), **tol)
    d = g2 - g1
    m2 = b1 * m1 + (1 - b1) * g2
    v2 = b2 * v1 + (1 - b2) * d
    n2 = b3 * n1 + (1 - b3) * (g2 + (1 - b2) * d) ** 2
    u2 = (m2 / (1 - b1**2) + (1 - b2) * v2 / (1 - b2**2)) / (np.sqrt(n2 / (1 - b3**2)) + eps)
    np.testing.assert_allclose(outs[1]["w"], u2, **tol)
    np.testing.assert_allclose(state.v["w"], v2, **tol)
    np.testing.assert_array_equal(state.g["w"], g2)  # the last gradient, kept exactly
    assert int(state.t) == 2


class TestNovograd:

  def test_one_second_moment_per_leaf(self):
    """nu holds a scalar per leaf: the EMA of that leaf's squared gradient norm."""
    p = {"a": jnp.zeros((2, 3)), "b": jnp.zeros(4)}
    g1 = {"a": jnp.full((2, 3), 2.0), "b": jnp.arange(4.0)}
    g2 = {"a": jnp.ones((2, 3)), "b": jnp.zeros(4)}
    _, state = _run(jn.scale_by_novograd(b2=0.25), [g1, g2], p)
    assert {k: v.shape for k, v in state.nu.items()} == {"a": (), "b": ()}
    np.testing.assert_allclose(state.nu["a"], 0.25 * 24.0 + 0.75 * 6.0, rtol=1e-6)
    np.testing.assert_allclose(state.nu["b"], 0.25 * 14.0, rtol=1e-6)

  def test_first_step_ignores_each_layers_gradient_scale(self):
    """The gradient is divided by its layer's norm before the momentum."""
    p = {"a": jnp.ones(3), "b": jnp.ones(2)}
    g = {"a": jnp.array([1.0, -2.0, 2.0]), "b": jnp.array([3.0, 4.0])}
    tx = jn.scale_by_novograd(eps=0.0)
    out, _ = tx.update(g, tx.init(p), p)
    scaled, _ = tx.update(jax.tree.map(lambda x, c: c * x, g, {"a": 100.0, "b": 1e-3}), tx.init(p), p)
    chex.assert_trees_all_close(out, scaled, rtol=1e-6)
    np.testing.assert_allclose(out["b"], [0.6, 0.8], rtol=1e-6)

  def test_update_needs_params(self):
    tx = jn.scale_by_novograd()
    p = {"w": jnp.ones(2)}
    with pytest.raises(ValueError, match="needs the current parameters"):
      tx.update(p, tx.init(p))


_BAD = [
    ("scale_by_belief", dict(b1=1.0), ValueError, "`b1`"),
    ("scale_by_belief", dict(b2=-0.5), ValueError, "`b2`"),
    ("scale_by_belief", dict(eps=-1e-8), ValueError, "`eps`"),
    ("scale_by_belief", dict(eps_root=float("nan")), ValueError, "`eps_root`"),
    ("scale_by_belief", dict(nesterov="yes"), TypeError, "`nesterov`"),
    ("scale_by_yogi", dict(b1=1.0), ValueError, "`b1`"),
    ("scale_by_yogi", dict(b2=1.0), ValueError, "`b2`"),
    ("scale_by_yogi", dict(eps=-1.0), ValueError, "`eps`"),
    ("scale_by_yogi", dict(eps_root=-1.0), ValueError, "`eps_root`"),
    ("scale_by_yogi", dict(initial_accumulator_value=-1e-6), ValueError, "`initial_accumulator_value`"),
    ("scale_by_adan", dict(b1=1.0), ValueError, "`b1`"),
    ("scale_by_adan", dict(b2="0.9"), TypeError, "`b2`"),
    ("scale_by_adan", dict(b3=1.0), ValueError, "`b3`"),
    ("scale_by_adan", dict(b3=-0.1), ValueError, "`b3`"),
    ("scale_by_adan", dict(eps=float("inf")), ValueError, "`eps`"),
    ("scale_by_adan", dict(eps_root=-1.0), ValueError, "`eps_root`"),
    ("scale_by_novograd", dict(b1=1.0), ValueError, "`b1`"),
    ("scale_by_novograd", dict(b2=2.0), ValueError, "`b2`"),
    ("scale_by_novograd", dict(eps=-1.0), ValueError, "`eps`"),
    ("scale_by_novograd", dict(eps_root=-1.0), ValueError, "`eps_root`"),
    ("scale_by_novograd", dict(weight_decay=-0.1), ValueError, "`weight_decay`"),
    ("scale_by_novograd", dict(weight_decay=lambda t: 0.1), TypeError, "`weight_decay`"),
    ("scale_by_novograd", dict(mu_dtype="notadtype"), TypeError, "`mu_dtype`"),
]


@pytest.mark.parametrize("name, kwargs, error, named", _BAD, ids=[f"{b[0]}-{next(iter(b[1]))}-{i}"
                                                                   for i, b in enumerate(_BAD)])
def test_bad_arguments_name_the_argument(name, kwargs, error, named):
  with pytest.raises(error, match=named):
    getattr(jn, name)(**kwargs)


@pytest.mark.parametrize("name, arg", [("scale_by_belief", "eps_root"), ("scale_by_yogi", "b2"),
                                       ("scale_by_adan", "b3"), ("scale_by_novograd", "weight_decay")])
def test_traced_numeric_arguments_work(name, arg):
  """A checked argument may be traced (inside jit, or fed by inject_hyperparams)."""
  p = {"w": jnp.array([1.0, -2.0])}

  def step(value):
    tx = getattr(jn, name)(**{arg: value})
    return tx.update(p, tx.init(p), p)[0]

  out = jax.jit(step)(0.5)
  eager = getattr(jn, name)(**{arg: 0.5})
  chex.assert_trees_all_close(out, eager.update(p, eager.init(p), p)[0], rtol=1e-6)
