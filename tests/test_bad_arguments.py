"""Bad arguments: every argument of every public transform factory is swept.

Each bad value must raise at construction, naming the argument and what was
expected; the valid baseline of every sweep builds a working transform, and
traced values of the checked numeric arguments still work.
"""

import inspect
import math
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_notes as jn
from tests import _breadth_sweeps, _zoo
from tests._problems import linspace_params as _params
from tests._problems import normal_grads as _grads
from tests._sweep import (
  ADAM_ARGS,
  CALLABLE,
  DTYPE,
  FINITE,
  FLAG,
  LR,
  MASK,
  NAN,
  NONNEG,
  POSINT,
  POSITIVE,
  TX,
  UNIT,
  _named,
  _sweep,
)

# name -> (factory, valid kwargs, [(arg, bad value, error, hint, named)])
# shard_state's arguments need a mesh; one device is enough to check them.
_ONE_DEVICE_MESH = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))

FACTORIES = {
    "stateless": (jn.stateless, {"f": lambda u, p: u}, _sweep(f=CALLABLE)),
    "stateless_with_tree_map": (jn.stateless_with_tree_map, {"f": lambda u, p: u}, _sweep(f=CALLABLE)),
    "with_extra_args_support": (jn.with_extra_args_support, {"tx": jn.sgd(0.1)}, _sweep(tx=TX)),
    "chain": (lambda transforms: jn.chain(*transforms), {"transforms": [jn.sgd(0.1)]},
              _named("transforms", [(["adam"], TypeError, "GradientTransformation")], "transforms[0]")),
    "named_chain": (lambda named: jn.named_chain(*named), {"named": [("opt", jn.sgd(0.1))]},
                    _named("named", [([("opt", "adam")], TypeError, "GradientTransformation")], "`opt`")
                    + _named("named", [(["opt"], TypeError, "(name, transform) pairs")], "argument 0")
                    + _named("named", [([("a", jn.sgd(0.1)), ("a", jn.sgd(0.1))], ValueError, "unique")],
                             "'a'")),
    "masked": (jn.masked, {"inner": jn.adam(0.1), "mask": {"w": True, "b": False}},
               _sweep(inner=TX) + _named("mask", MASK, "mask['w']")),
    "add_decayed_weights": (jn.add_decayed_weights, {"weight_decay": 1e-2},
                            _sweep(weight_decay=FINITE) + _named("mask", MASK, "mask['w']")),
    "clip": (jn.clip, {"max_delta": 1.0}, _sweep(max_delta=NONNEG)),
    "clip_by_global_norm": (jn.clip_by_global_norm, {"max_norm": 1.0}, _sweep(max_norm=POSITIVE)),
    "ema": (jn.ema, {"decay": 0.9}, _sweep(decay=UNIT, debias=FLAG, accumulator_dtype=DTYPE)),
    # decay = 1.0 (a running sum) is allowed, as in optax.
    "trace": (jn.trace, {"decay": 0.9},
              _sweep(decay=[(1.5, ValueError, "[0, 1]"), (-0.1, ValueError, "[0, 1]"),
                            (NAN, ValueError, "[0, 1]"), ("0.9", TypeError, "number")],
                     nesterov=FLAG, accumulator_dtype=DTYPE, average=FLAG)),
    "scale": (jn.scale, {"step_size": 0.1},
              _sweep(step_size=LR) + _named("step_size", [(_zoo.lr_schedule, TypeError, "scale_by_schedule")])),
    "scale_by_learning_rate": (jn.scale_by_learning_rate, {"learning_rate": 0.1},
                               _sweep(learning_rate=LR, flip_sign=FLAG)),
    "scale_by_schedule": (jn.scale_by_schedule, {"step_size_fn": _zoo.lr_schedule},
                          _sweep(step_size_fn=CALLABLE)),
    "scale_by_rss": (jn.scale_by_rss, {},
                     _sweep(initial_accumulator_value=NONNEG, eps=NONNEG, eps_in_sqrt=FLAG)),
    "scale_by_rms": (jn.scale_by_rms, {}, _sweep(decay=UNIT, eps=NONNEG, initial_scale=NONNEG,
                                                 eps_in_sqrt=FLAG, bias_correction=FLAG)),
    "scale_by_stddev": (jn.scale_by_stddev, {}, _sweep(decay=UNIT, eps=NONNEG, initial_scale=NONNEG,
                                                       eps_in_sqrt=FLAG, bias_correction=FLAG)),
    "scale_by_adadelta": (jn.scale_by_adadelta, {}, _sweep(rho=UNIT, eps=NONNEG)),
    "scale_by_adam": (jn.scale_by_adam, {},
                      _sweep(**ADAM_ARGS, nesterov=FLAG, bias_correction=FLAG)),
    "scale_by_amsgrad": (jn.scale_by_amsgrad, {},
                         _sweep(**ADAM_ARGS, bias_correction_mu=FLAG, bias_correction_nu=FLAG)),
    "scale_by_adamax": (jn.scale_by_adamax, {}, _sweep(b1=UNIT, b2=UNIT, eps=NONNEG)),
    "scale_by_radam": (jn.scale_by_radam, {},
                       _sweep(b1=UNIT, b2=UNIT, eps=NONNEG, eps_root=NONNEG, nesterov=FLAG)
                       + _named("threshold", [(NAN, ValueError, "finite"), ("5", TypeError, "number")])),
    "lookahead": (jn.lookahead, {"fast_optimizer": jn.sgd(0.1), "sync_period": 2, "slow_step_size": 0.5},
                  _sweep(fast_optimizer=TX, sync_period=POSINT, reset_state=FLAG)
                  + _named("slow_step_size", [(1.5, ValueError, "[0, 1]"), (-0.1, ValueError, "[0, 1]"),
                                              (NAN, ValueError, "[0, 1]")])),
    "MultiSteps": (jn.MultiSteps, {"opt": jn.sgd(0.1), "every_k_schedule": 2},
                   _sweep(opt=TX, use_grad_mean=FLAG, accumulator_dtype=DTYPE)
                   + _named("every_k_schedule", POSINT[:2] + [(2.5, TypeError, "integer"),
                                                              ("2", TypeError, "integer")])
                   + _named("should_skip_update_fn", [("no", TypeError, "callable")])),
    "apply_if_finite": (jn.apply_if_finite, {"inner": jn.sgd(0.1), "max_consecutive_errors": 2},
                        _sweep(inner=TX) + _named("max_consecutive_errors", [
                            (-1, ValueError, ">= 0"), (1.5, TypeError, "integer"),
                            (True, TypeError, "integer")])),
    "flatten": (jn.flatten, {"inner": jn.adam(0.1)}, _sweep(inner=TX)),
    "partition": (jn.partition, {"transforms": {"a": jn.sgd(0.1)}, "param_labels": {"w": "a", "b": "a"}},
                  _sweep(mask_compatible_extra_args=FLAG)
                  + _named("transforms", [(["adam"], TypeError, "mapping"),
                                          ({"a": "adam"}, TypeError, "GradientTransformation")])
                  + _named("param_labels", [({"w": "a", "b": "z"}, ValueError, "no transform")], "'z'")),
    "freeze": (jn.freeze, {"mask": {"w": True, "b": False}}, _named("mask", MASK, "mask['w']")),
    "selective_transform": (jn.selective_transform,
                            {"optimizer": jn.adam(0.1), "freeze_mask": {"w": True, "b": False}},
                            _named("optimizer", TX[:1], "transforms['train']")
                            + _named("freeze_mask", MASK, "mask['w']")),
    "inject_hyperparams": (jn.inject_hyperparams, {"inner_factory": jn.adam},
                           _sweep(inner_factory=CALLABLE, hyperparam_dtype=DTYPE)
                           + _named("static_args", [(3, TypeError, "names"),
                                                    ("nonexistent", ValueError, "not parameters")])),
    # The factory inject_hyperparams returns checks the injected values too.
    "inject_hyperparams(adam)": (jn.inject_hyperparams(jn.adam), {"learning_rate": 0.1},
                                 _sweep(learning_rate=LR, b1=UNIT, b2=UNIT, eps=NONNEG)),
    "reduce_on_plateau": (jn.reduce_on_plateau, {},
                          _sweep(patience=POSINT, accumulation_size=POSINT, min_scale=NONNEG)
                          + _named("factor", [(1.0, ValueError, "(0, 1)"), (0.0, ValueError, "(0, 1)"),
                                              (NAN, ValueError, "(0, 1)")])
                          + _named("rtol", [(-0.1, ValueError, ">= 0"), (2.0, ValueError, "<= 1")])
                          + _named("atol", NONNEG[:2])
                          + _named("cooldown", [(-1, ValueError, ">= 0"), (1.5, ValueError, "integer")])),
    "scale_by_newton": (jn.scale_by_newton, {}, _sweep(damping=NONNEG, max_params=POSINT)),
    "newton": (jn.newton, {}, _sweep(learning_rate=LR, damping=NONNEG, max_params=POSINT)),
    "sgd": (jn.sgd, {"learning_rate": 0.1, "momentum": 0.9},
            _sweep(learning_rate=LR, momentum=UNIT, nesterov=FLAG, accumulator_dtype=DTYPE,
                   average_momentum=FLAG)),
    "adagrad": (jn.adagrad, {"learning_rate": 0.1},
                _sweep(learning_rate=LR, initial_accumulator_value=NONNEG, eps=NONNEG, eps_in_sqrt=FLAG)),
    "adadelta": (jn.adadelta, {},
                 _sweep(learning_rate=LR, rho=UNIT, eps=NONNEG, weight_decay=FINITE)
                 + _named("weight_decay_mask", MASK, "mask['w']")),
    "rmsprop": (jn.rmsprop, {"learning_rate": 0.1},
                _sweep(learning_rate=LR, decay=UNIT, eps=NONNEG, initial_scale=NONNEG, eps_in_sqrt=FLAG,
                       centered=FLAG, momentum=UNIT, nesterov=FLAG, bias_correction=FLAG)),
    "adam": (jn.adam, {"learning_rate": 0.1},
             _sweep(learning_rate=LR, **ADAM_ARGS, nesterov=FLAG, bias_correction=FLAG)),
    "adamw": (jn.adamw, {"learning_rate": 0.1},
              _sweep(learning_rate=LR, **ADAM_ARGS, weight_decay=FINITE, nesterov=FLAG,
                     bias_correction=FLAG) + _named("mask", MASK, "mask['w']")),
    "nadam": (jn.nadam, {"learning_rate": 0.1}, _sweep(learning_rate=LR, **ADAM_ARGS)),
    "nadamw": (jn.nadamw, {"learning_rate": 0.1},
               _sweep(learning_rate=LR, **ADAM_ARGS, weight_decay=FINITE) + _named("mask", MASK, "mask['w']")),
    "radam": (jn.radam, {"learning_rate": 0.1},
              _sweep(learning_rate=LR, b1=UNIT, b2=UNIT, eps=NONNEG, eps_root=NONNEG, nesterov=FLAG)
              + _named("threshold", [(NAN, ValueError, "finite")])),
    "amsgrad": (jn.amsgrad, {"learning_rate": 0.1},
                _sweep(learning_rate=LR, **ADAM_ARGS, bias_correction_mu=FLAG, bias_correction_nu=FLAG)),
    "adamax": (jn.adamax, {"learning_rate": 0.1}, _sweep(learning_rate=LR, b1=UNIT, b2=UNIT, eps=NONNEG)),
    "shard_state": (jn.shard_state, {"tx": jn.adam(0.1), "mesh": _ONE_DEVICE_MESH, "axis": "data"},
                    _sweep(tx=TX)
                    + _named("mesh", [("notamesh", TypeError, "jax.sharding.Mesh")])
                    + _named("axis", [("model", ValueError, "must name axes of the mesh"),
                                      ((), ValueError, "must name axes of the mesh")])),
}
FACTORIES.update(_breadth_sweeps.FACTORIES)
NO_ARGUMENTS = {"identity", "set_to_zero", *_breadth_sweeps.NO_ARGUMENTS}
ALIASES = {"multi_transform": "partition"}
# Arguments that take any value of their kind, so there is nothing to reject.
UNCHECKED = {
    ("partition", "param_labels"),  # any labels tree (checked against `transforms`)
    ("scale_by_radam", "threshold"),  # checked: only NaN is invalid (swept above)
}


def _public_factories():
  """Every public function returning a transform, plus the MultiSteps class."""
  names = {"MultiSteps"}
  for name in jn.__all__:
    obj = getattr(jn, name)
    if inspect.isfunction(obj) and "GradientTransformation" in str(
        inspect.signature(obj).return_annotation
    ):
      names.add(name)
  return names


def test_every_public_factory_and_argument_is_swept():
  """The sweep below covers every public transform factory and each of its arguments."""
  factories = _public_factories()
  missing = factories - set(FACTORIES) - NO_ARGUMENTS - set(ALIASES)
  assert not missing, f"add bad-argument cases for {sorted(missing)}"
  for name in factories - NO_ARGUMENTS - set(ALIASES) - {"chain", "named_chain"}:
    factory = getattr(jn, name)
    swept = {case[0] for case in FACTORIES[name][2]}
    unswept = set(inspect.signature(factory).parameters) - swept - {a for n, a in UNCHECKED if n == name}
    assert not unswept, f"{name}: no bad values for {sorted(unswept)}"


_CASES = [
    pytest.param(name, *case, id=f"{name}-{case[0]}-{i}")
    for name, (_, _, cases) in FACTORIES.items()
    for i, case in enumerate(cases)
]


@pytest.mark.parametrize("name, arg, value, error, hint, named", _CASES)
def test_bad_argument_raises_at_construction_naming_it(name, arg, value, error, hint, named):
  """Each bad value raises ValueError/TypeError naming the argument and what is allowed."""
  factory, valid, _ = FACTORIES[name]
  with pytest.raises(error) as info:
    factory(**{**valid, arg: value})
  message = str(info.value)
  assert named in message, message
  assert hint in message, message


def _run_once(tx, params=None):
  """init + one update, with what the transform needs (params, value=, grad=, value_fn=)."""
  params = _params() if params is None else params
  loss = lambda p: sum(jnp.sum(x**2) for x in jax.tree.leaves(p))
  extra = {"value": loss(params), "grad": jax.grad(loss)(params), "value_fn": loss}
  state = tx.init(params)
  with_extra = jn.chain(tx)  # forwards only the extra arguments tx takes
  return with_extra.update(_grads(), (state,), params, **extra)


@pytest.mark.parametrize("name", sorted(set(FACTORIES) - {"inject_hyperparams", *_breadth_sweeps.MAKERS}))
def test_valid_arguments_build_a_working_transform(name):
  """The valid baseline of each sweep builds, inits and updates (so a raise is the bad value's)."""
  factory, valid, _ = FACTORIES[name]
  tx = factory(**valid)
  tx = tx.gradient_transformation() if isinstance(tx, jn.MultiSteps) else tx
  if name == "lookahead":
    updates, _ = tx.update(_grads(), tx.init(_params()), jn.LookaheadParams.init_synced(_params()))
    updates = updates.fast
  else:
    updates, _ = _run_once(tx)
  chex.assert_trees_all_equal_shapes(updates, _params())


def _traced_cases():
  for name, (factory, valid, cases) in FACTORIES.items():
    if name in ("lookahead", "inject_hyperparams", "MultiSteps", "apply_if_finite", *_breadth_sweeps.MAKERS):
      continue
    numeric = {arg for arg, value, error, *_ in cases
               if error is ValueError and isinstance(value, float) and math.isnan(value)}
    signature = inspect.signature(factory)
    for arg in sorted(numeric):
      default = valid.get(arg, signature.parameters[arg].default if arg in signature.parameters else None)
      if isinstance(default, float) and not isinstance(default, bool):
        yield pytest.param(name, arg, default, id=f"{name}-{arg}")


@pytest.mark.parametrize("name, arg, value", list(_traced_cases()))
def test_traced_numeric_arguments_still_work(name, arg, value):
  """A checked numeric argument given as a traced array (inside jit) is accepted."""
  factory, valid, _ = FACTORIES[name]

  def build_and_step(v):
    return _run_once(factory(**{**valid, arg: v}))[0]

  out = jax.eval_shape(build_and_step, jnp.float32(value))
  chex.assert_trees_all_equal_shapes(out, _params())


def test_traced_lookahead_and_injected_arguments():
  """lookahead's slow_step_size and inject_hyperparams' values may be traced too."""
  params = jn.LookaheadParams.init_synced(_params())

  def lookahead_step(alpha):
    tx = jn.lookahead(jn.adam(0.1), 2, alpha)
    return tx.update(_grads(), tx.init(params), params)[0]

  def injected_step(lr):
    tx = jn.inject_hyperparams(jn.adam)(learning_rate=lr, b1=0.8)
    return tx.update(_grads(), tx.init(_params()), _params())[0]

  chex.assert_trees_all_equal_shapes(jax.eval_shape(lookahead_step, jnp.float32(0.5)), params)
  chex.assert_trees_all_equal_shapes(jax.eval_shape(injected_step, jnp.float32(0.1)), _params())


def test_no_argument_factories_are_transforms():
  """identity and set_to_zero take no arguments and keep shapes."""
  for factory in (jn.identity, jn.set_to_zero):
    assert not inspect.signature(factory).parameters
    updates, _ = _run_once(factory())
    chex.assert_trees_all_equal_shapes(updates, _params())


def test_messages_name_the_argument_with_backticks():
  """Range errors quote the argument as `name` (spot check of the format)."""
  with pytest.raises(ValueError, match=re.escape("`b2` must lie in [0, 1)")):
    jn.adam(0.1, b2=1.0)
