"""ademamix, simplified_ademamix and their scalings (contrib/ademamix.py):
100-step trajectories equal to optax.contrib's for the defaults, each kind of
learning rate, every option (schedules of b3 and alpha, weight decay and its
mask), in float32 and float64; mu_dtype keeps the state's dtype; argument
checks name the argument."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_notes.contrib import _ademamix as am
from tests import _trajectory as tj

# The same operations in the same order as optax's: equal bit for bit.
_EXACT = dict(rtol=0, atol=0)


def _matrices(params):
  return jax.tree.map(lambda p: p.ndim == 2, params)


def _warmup(final, steps=60):
  return lambda t: final * jnp.minimum(1.0, t / steps)


# lib -> optimizer, lib being our module or optax.contrib.
_BASE = {
    "ademamix": lambda lib, lr: lib.ademamix(lr),
    "simplified_ademamix": lambda lib, lr: lib.simplified_ademamix(lr),
}

_OPTIONS = {
    "ademamix-all-args": ("float64", lambda lib: lib.ademamix(
        0.02, 0.8, 0.99, 0.995, 3.0, 1e-6, 1e-8, None, 0.1, _matrices)),
    "ademamix-all-args-f32": ("float32", lambda lib: lib.ademamix(
        0.02, 0.8, 0.99, 0.995, 3.0, 1e-6, 1e-8, None, 0.1)),
    "ademamix-schedules": ("float64", lambda lib: lib.ademamix(
        0.02, b3=lambda t: 0.9 + 0.09 * jnp.minimum(1.0, t / 50), alpha=_warmup(4.0),
        weight_decay=lambda t: 0.1 / (1 + 0.05 * t), mask=_matrices(tj.make_params()))),
    "ademamix-schedules-f32": ("float32", lambda lib: lib.ademamix(
        tj.learning_rate("lambda", 0.02), b3=lambda t: 0.9 + 0.09 * jnp.minimum(1.0, t / 50),
        alpha=_warmup(4.0))),
    "scale_by_ademamix-defaults": ("float64", lambda lib: optax.chain(
        lib.scale_by_ademamix(), optax.scale(-0.01))),
    "scale_by_ademamix-all-args": ("float32", lambda lib: optax.chain(
        lib.scale_by_ademamix(0.5, 0.9, 0.99, 2.0, 1e-4, 1e-6), optax.scale(-0.01))),
    "simplified-all-args": ("float64", lambda lib: lib.simplified_ademamix(
        0.002, 0.9, 0.99, 2.0, 1e-6, 1e-8, 0.1, _matrices)),
    "simplified-all-args-f32": ("float32", lambda lib: lib.simplified_ademamix(
        0.002, 0.9, 0.99, 2.0, 1e-6, 1e-8, 0.1)),
    "simplified-alpha-schedule": ("float32", lambda lib: lib.simplified_ademamix(
        tj.learning_rate("optax_schedule", 0.002), alpha=_warmup(3.0),
        weight_decay=lambda t: 0.1 / (1 + 0.05 * t))),
    "scale_by_simplified-defaults": ("float64", lambda lib: optax.chain(
        lib.scale_by_simplified_ademamix(), optax.scale(-0.002))),
}

_LR_AND_DTYPE = [
    ("float", "float32"), ("float", "float64"),
    ("lambda", "float32"), ("optax_schedule", "float64"),
]


class TestMatchesOptax(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("lr_kind,dtype", _LR_AND_DTYPE)
  @pytest.mark.parametrize("name", sorted(_BASE))
  def test_defaults(self, name, lr_kind, dtype):
    lr = tj.learning_rate(lr_kind, 0.02 if name == "ademamix" else 0.002)
    make = _BASE[name]
    tj.compare_with_optax(
        self.variant, lambda: make(am, lr), lambda: make(optax.contrib, lr), dtype, **_EXACT)

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("case", sorted(_OPTIONS))
  def test_option(self, case):
    dtype, make = _OPTIONS[case]
    tj.compare_with_optax(self.variant, lambda: make(am), lambda: make(optax.contrib), dtype, **_EXACT)


def test_state_fields_are_optax_s():
  params = tj.make_params()
  for ours, ref in [
      (am.scale_by_ademamix(), optax.contrib.scale_by_ademamix()),
      (am.scale_by_simplified_ademamix(), optax.contrib.scale_by_simplified_ademamix()),
  ]:
    a, b = tj.to_plain(ours.init(params)), tj.to_plain(ref.init(params))
    chex.assert_trees_all_equal_structs(a, b)
    chex.assert_trees_all_equal_shapes_and_dtypes(a, b)


def test_mu_dtype_is_kept_and_first_step_is_optax_s():
  """optax's moments drift back to float32 after a step; ours stay in mu_dtype."""
  params = tj.make_params()
  grads = jax.tree.map(lambda p: p + 0.5, params)
  ours = am.scale_by_ademamix(mu_dtype=jnp.bfloat16)
  ref = optax.contrib.scale_by_ademamix(mu_dtype=jnp.bfloat16)
  u, state = jax.jit(ours.update)(grads, ours.init(params))
  u_ref, _ = ref.update(grads, ref.init(params))
  chex.assert_trees_all_close(u, u_ref, rtol=1e-6)
  for moment in (state.m1, state.m2, state.nu):
    assert {x.dtype for x in jax.tree.leaves(moment)} == {jnp.dtype(jnp.bfloat16)}

  def body(s, _):
    return ours.update(grads, s)[1], None

  jax.lax.scan(body, ours.init(params), None, length=3)  # a carry of fixed dtype


def test_alpha_zero_simplified_is_adam_like():
  """alpha = 0, b1 -> EMA: simplified AdEMAMix's first step is sign(g) (Adam's)."""
  g = {"w": jnp.array([0.3, -2.0])}
  tx = am.scale_by_simplified_ademamix()
  u, _ = tx.update(g, tx.init(g))
  np.testing.assert_allclose(u["w"], [1.0, -1.0], rtol=1e-6)


_BAD = [
    ("ademamix", dict(b1=1.0), ValueError, "`b1`"),
    ("ademamix", dict(b2=-0.1), ValueError, "`b2`"),
    ("ademamix", dict(b3=1.0), ValueError, "`b3`"),
    ("ademamix", dict(alpha=-1.0), ValueError, "`alpha`"),
    ("ademamix", dict(eps=-1.0), ValueError, "`eps`"),
    ("ademamix", dict(eps_root=float("nan")), ValueError, "`eps_root`"),
    ("ademamix", dict(mu_dtype="nope"), TypeError, "`mu_dtype`"),
    ("ademamix", dict(weight_decay=float("inf")), ValueError, "`weight_decay`"),
    ("ademamix", dict(learning_rate=None), TypeError, "`learning_rate`"),
    ("simplified_ademamix", dict(b1=1.5), ValueError, "`b1`"),
    ("simplified_ademamix", dict(alpha="1"), TypeError, "`alpha`"),
    ("simplified_ademamix", dict(learning_rate=float("nan")), ValueError, "`learning_rate`"),
]


@pytest.mark.parametrize("name, kwargs, error, named", _BAD,
                         ids=[f"{b[0]}-{next(iter(b[1]))}" for b in _BAD])
def test_bad_arguments_name_the_argument(name, kwargs, error, named):
  kwargs = {"learning_rate": 0.1, **kwargs}
  with pytest.raises(error, match=named):
    getattr(am, name)(**kwargs)


def test_traced_hyperparameters_pass():
  tx = optax.inject_hyperparams(am.ademamix)(learning_rate=0.1, b3=0.99, alpha=2.0)
  p = {"w": jnp.ones(2)}
  u, _ = jax.jit(tx.update)(p, tx.init(p), p)
  assert np.all(np.isfinite(u["w"]))
