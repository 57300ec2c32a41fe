"""momo and momo_adam (contrib/momo.py): 50-step trajectories, fed the loss
as ``value=``, equal to optax.contrib's for the defaults, each kind of
learning rate and every option (weight decay, lower bound, its adaptation),
in float32 and float64; argument checks name the argument."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_notes.contrib import _momo as mm
from tests import _trajectory as tj

_value_and_grad = jax.jit(jax.value_and_grad(tj._loss, argnums=1))  # pylint: disable=protected-access


# 50 steps (not the harness's 100): every step here runs the loss eagerly too.
_STEPS = 50


def _run(variant, tx, params, problem, steps=_STEPS):
  update = variant(tx.update)
  state = tx.init(params)
  history = []
  for t in range(steps):
    loss, grads = _value_and_grad(problem, params, np.int32(t))
    updates, state = update(grads, state, params, value=loss)
    params = optax.apply_updates(params, updates)
    history.append(tj.to_plain(params))
  return history, state


def _compare(variant, make, dtype):
  with tj.precision(dtype):
    params = tj.make_params(0, dtype)
    problem = tj.make_problem(params, 1, _STEPS)
    ours, ours_state = _run(variant, make(mm), params, problem)
    ref, ref_state = _run(variant, make(optax.contrib), params, problem)
    tol = dict(rtol=0, atol=0)  # the same operations in the same order as optax's
    chex.assert_tree_all_finite(ours)
    chex.assert_trees_all_close(ours, ref, **tol)
    tj.assert_states_close(ours_state, ref_state, **tol)
    assert np.any(np.asarray(ours[-1]["out"]["b"]) != np.asarray(params["out"]["b"]))


_BASE = {
    "momo": lambda lib, lr: lib.momo(lr),
    "momo_adam": lambda lib, lr: lib.momo_adam(lr),
}

_OPTIONS = {
    "momo-all-args": ("float64", lambda lib: lib.momo(0.5, 0.8, -1.0, 0.01, True)),
    "momo-all-args-f32": ("float32", lambda lib: lib.momo(0.5, 0.8, -1.0, 0.01, True)),
    "momo-adapt": ("float64", lambda lib: lib.momo(adapt_lower_bound=True)),
    "momo_adam-all-args": ("float64", lambda lib: lib.momo_adam(0.05, 0.8, 0.99, 1e-6, -1.0, 0.01, True)),
    "momo_adam-all-args-f32": ("float32", lambda lib: lib.momo_adam(0.05, 0.8, 0.99, 1e-6, -1.0, 0.01, True)),
    "momo_adam-adapt": ("float32", lambda lib: lib.momo_adam(adapt_lower_bound=True)),
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
    lr = tj.learning_rate(lr_kind, 0.5 if name == "momo" else 0.05)
    _compare(self.variant, lambda lib: _BASE[name](lib, lr), dtype)

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("case", sorted(_OPTIONS))
  def test_option(self, case):
    dtype, make = _OPTIONS[case]
    _compare(self.variant, make, dtype)


@pytest.mark.parametrize("name", sorted(_BASE))
def test_state_fields_are_optax_s(name):
  params = tj.make_params()
  a = tj.to_plain(getattr(mm, name)().init(params))
  b = tj.to_plain(getattr(optax.contrib, name)().init(params))
  chex.assert_trees_all_equal_structs(a, b)
  chex.assert_trees_all_equal_shapes_and_dtypes(a, b)


@pytest.mark.parametrize("name", sorted(_BASE))
def test_update_needs_params_and_value(name):
  tx = getattr(mm, name)()
  p = {"w": jnp.ones(2)}
  with pytest.raises(ValueError, match="needs the current parameters"):
    tx.update(p, tx.init(p), value=1.0)
  with pytest.raises(ValueError, match="`value`"):
    tx.update(p, tx.init(p), p)


_BAD = [
    ("momo", dict(learning_rate=float("inf")), ValueError, "`learning_rate`"),
    ("momo", dict(beta=1.0), ValueError, "`beta`"),
    ("momo", dict(lower_bound=float("nan")), ValueError, "`lower_bound`"),
    ("momo", dict(weight_decay=-0.1), ValueError, "`weight_decay`"),
    ("momo", dict(adapt_lower_bound=1), TypeError, "`adapt_lower_bound`"),
    ("momo_adam", dict(b1=1.0), ValueError, "`b1`"),
    ("momo_adam", dict(b2=-0.5), ValueError, "`b2`"),
    ("momo_adam", dict(eps=-1.0), ValueError, "`eps`"),
]


@pytest.mark.parametrize("name, kwargs, error, named", _BAD,
                         ids=[f"{b[0]}-{next(iter(b[1]))}" for b in _BAD])
def test_bad_arguments_name_the_argument(name, kwargs, error, named):
  with pytest.raises(error, match=named):
    getattr(mm, name)(**kwargs)
