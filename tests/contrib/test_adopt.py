"""adopt, acprop and their scalings (contrib/adopt.py): 100-step trajectories
equal to optax.contrib's for the defaults, each kind of learning rate and
every option (nesterov, use_clipping, clip_value_fn, weight decay and its
mask), in float32 and float64; argument checks name the argument."""

import chex
import jax
import jax.numpy as jnp
import optax
import pytest

from jaxopt_notes.contrib import _adopt as ad
from tests import _trajectory as tj

# The same operations in the same order as optax's: equal bit for bit.
_EXACT = dict(rtol=0, atol=0)


def _matrices(params):
  return jax.tree.map(lambda p: p.ndim == 2, params)


_BASE = {
    "adopt": lambda lib, lr: lib.adopt(lr),
    "acprop": lambda lib, lr: lib.acprop(lr),
}

_OPTIONS = {
    "adopt-all-args": ("float64", lambda lib: lib.adopt(
        0.02, 0.8, 0.99, 1e-4, None, nesterov=True, use_clipping=True,
        clip_value_fn=lambda t: 0.5 * t**0.5)),
    "adopt-nesterov-f32": ("float32", lambda lib: lib.adopt(0.02, nesterov=True)),
    "adopt-no-clipping": ("float64", lambda lib: lib.adopt(0.02, 0.8, 0.99, 1e-4, use_clipping=False)),
    "adopt-no-clipping-nesterov-f32": ("float32", lambda lib: lib.adopt(
        0.02, use_clipping=False, nesterov=True)),
    "scale_by_adopt-defaults": ("float64", lambda lib: optax.chain(
        lib.scale_by_adopt(), optax.scale(-0.02))),
    "acprop-all-args": ("float64", lambda lib: lib.acprop(0.02, 0.8, 0.99, 1e-8, 1e-10, 0.1, _matrices)),
    "acprop-all-args-f32": ("float32", lambda lib: lib.acprop(0.02, 0.8, 0.99, 1e-8, 1e-10, 0.1)),
    "acprop-wd-schedule-mask-tree": ("float64", lambda lib: lib.acprop(
        0.02, weight_decay=lambda t: 0.1 / (1 + 0.05 * t), mask=_matrices(tj.make_params()))),
    "scale_by_acprop-all-args": ("float32", lambda lib: optax.chain(
        lib.scale_by_acprop(0.5, 0.9, 1e-6, 0.0), optax.scale(-0.02))),
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
    lr = tj.learning_rate(lr_kind, 0.02)
    make = _BASE[name]
    tj.compare_with_optax(
        self.variant, lambda: make(ad, lr), lambda: make(optax.contrib, lr), dtype, **_EXACT)

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("case", sorted(_OPTIONS))
  def test_option(self, case):
    dtype, make = _OPTIONS[case]
    tj.compare_with_optax(self.variant, lambda: make(ad), lambda: make(optax.contrib), dtype, **_EXACT)


def test_state_fields_are_optax_s():
  params = tj.make_params()
  for ours, ref in [
      (ad.scale_by_adopt(), optax.contrib.scale_by_adopt()),
      (ad.scale_by_acprop(), optax.contrib.scale_by_acprop()),
  ]:
    a, b = tj.to_plain(ours.init(params)), tj.to_plain(ref.init(params))
    chex.assert_trees_all_equal_structs(a, b)
    chex.assert_trees_all_equal_shapes_and_dtypes(a, b)


def test_adopt_mu_dtype_is_kept():
  params = tj.make_params()
  tx = ad.scale_by_adopt(mu_dtype=jnp.bfloat16)
  state = tx.init(params)
  for _ in range(3):
    _, state = jax.jit(tx.update)(params, state)
  assert {x.dtype for x in jax.tree.leaves(state.mu)} == {jnp.dtype(jnp.bfloat16)}


_BAD = [
    ("adopt", dict(b1=1.0), ValueError, "`b1`"),
    ("adopt", dict(b2=1.0), ValueError, "`b2`"),
    ("adopt", dict(eps=0.0), ValueError, "`eps`"),
    ("adopt", dict(mu_dtype="nope"), TypeError, "`mu_dtype`"),
    ("adopt", dict(nesterov=1), TypeError, "`nesterov`"),
    ("adopt", dict(use_clipping="yes"), TypeError, "`use_clipping`"),
    ("adopt", dict(clip_value_fn=1.0), TypeError, "`clip_value_fn`"),
    ("adopt", dict(learning_rate=None), TypeError, "`learning_rate`"),
    ("acprop", dict(b1=-0.1), ValueError, "`b1`"),
    ("acprop", dict(b2=1.5), ValueError, "`b2`"),
    ("acprop", dict(eps=-1.0), ValueError, "`eps`"),
    ("acprop", dict(eps_root=float("nan")), ValueError, "`eps_root`"),
    ("acprop", dict(weight_decay=float("inf")), ValueError, "`weight_decay`"),
    ("acprop", dict(learning_rate=float("inf")), ValueError, "`learning_rate`"),
]


@pytest.mark.parametrize("name, kwargs, error, named", _BAD,
                         ids=[f"{b[0]}-{next(iter(b[1]))}" for b in _BAD])
def test_bad_arguments_name_the_argument(name, kwargs, error, named):
  kwargs = {"learning_rate": 0.1, **kwargs}
  with pytest.raises(error, match=named):
    getattr(ad, name)(**kwargs)
