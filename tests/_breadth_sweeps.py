"""Bad-argument sweeps of the factories added for optax breadth (merged into test_bad_arguments').

Same form as ``test_bad_arguments.FACTORIES``: name -> (factory, valid kwargs,
[(arg, bad value, error, hint, named)]).
"""

import jax

import jaxopt_notes as jn
from tests import _zoo
from tests._sweep import (
  CALLABLE,
  DTYPE,
  FINITE,
  FLAG,
  INF,
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

KEY = [(2.5, TypeError, "integer"), (-1, ValueError, ">= 0"), ("0", TypeError, "integer"),
       (jax.random.PRNGKey(0), TypeError, "jax.random.key")]
_M = ("mask", MASK, "mask['w']")
_MEMORY = [(0, ValueError, ">= 1"), (2.5, TypeError, "integer >= 1")]
_START = [(-1, ValueError, ">= 0"), (2.5, TypeError, "integer")]

NO_ARGUMENTS = {"scale_by_sign", "centralize", "keep_params_nonnegative", "zero_nans"}
# Factories whose result is a factory of transforms (run and traced through what they build).
MAKERS = {"inject_stateful_hyperparams"}

FACTORIES = {
    # sign and Adam variants
    "scale_by_lion": (jn.scale_by_lion, {}, _sweep(b1=UNIT, b2=UNIT, mu_dtype=DTYPE)
                      + _named("mode", [("invalid", ValueError, "one of")])
                      + _named("smooth_beta", [(NAN, ValueError, "finite")])),
    "scale_by_belief": (jn.scale_by_belief, {}, _sweep(b1=UNIT, b2=UNIT, eps=NONNEG, eps_root=NONNEG, nesterov=FLAG)),
    "scale_by_yogi": (jn.scale_by_yogi, {}, _sweep(b1=UNIT, b2=UNIT, eps=NONNEG, eps_root=NONNEG,
                                                   initial_accumulator_value=NONNEG)),
    "scale_by_adan": (jn.scale_by_adan, {}, _sweep(b1=UNIT, b2=UNIT, b3=UNIT, eps=NONNEG, eps_root=NONNEG)),
    "scale_by_novograd": (jn.scale_by_novograd, {}, _sweep(b1=UNIT, b2=UNIT, eps=NONNEG, eps_root=NONNEG,
                                                           weight_decay=NONNEG, mu_dtype=DTYPE)),
    "sign_sgd": (jn.sign_sgd, {"learning_rate": 0.1}, _sweep(learning_rate=LR)),
    "signum": (jn.signum, {"learning_rate": 0.1}, _sweep(learning_rate=LR, beta=UNIT, accumulator_dtype=DTYPE)),
    "lion": (jn.lion, {"learning_rate": 0.1}, _sweep(learning_rate=LR, b1=UNIT, b2=UNIT, mu_dtype=DTYPE,
                                                     weight_decay=FINITE) + _named(*_M)),
    "adabelief": (jn.adabelief, {"learning_rate": 0.1}, _sweep(learning_rate=LR, b1=UNIT, b2=UNIT, eps=NONNEG,
                                                               eps_root=NONNEG, nesterov=FLAG)),
    "yogi": (jn.yogi, {"learning_rate": 0.1}, _sweep(learning_rate=LR, b1=UNIT, b2=UNIT, eps=NONNEG)),
    "adan": (jn.adan, {"learning_rate": 0.1}, _sweep(learning_rate=LR, b1=UNIT, b2=UNIT, b3=UNIT, eps=NONNEG,
                                                     eps_root=NONNEG, weight_decay=FINITE) + _named(*_M)),
    "novograd": (jn.novograd, {"learning_rate": 0.1}, _sweep(learning_rate=LR, b1=UNIT, b2=UNIT, eps=NONNEG,
                                                             eps_root=NONNEG, weight_decay=NONNEG)),
    "adamaxw": (jn.adamaxw, {"learning_rate": 0.1}, _sweep(learning_rate=LR, b1=UNIT, b2=UNIT, eps=NONNEG,
                                                           weight_decay=FINITE) + _named(*_M)),
    # layer-wise and factored
    "scale_by_trust_ratio": (jn.scale_by_trust_ratio, {}, _sweep(min_norm=NONNEG, trust_coefficient=NONNEG,
                                                                 eps=NONNEG)),
    "scale_by_param_block_norm": (jn.scale_by_param_block_norm, {}, _sweep(min_scale=NONNEG)),
    "scale_by_param_block_rms": (jn.scale_by_param_block_rms, {}, _sweep(min_scale=NONNEG)),
    "clip_by_block_rms": (jn.clip_by_block_rms, {"threshold": 1.0}, _sweep(threshold=POSITIVE)),
    "adaptive_grad_clip": (jn.adaptive_grad_clip, {"clipping": 0.1}, _sweep(clipping=POSITIVE, eps=NONNEG)
                           + _named("axis", [(1.5, ValueError, "int"), (True, TypeError, "int")])),
    "scale_by_factored_rms": (jn.scale_by_factored_rms, {},
                              _sweep(factored=FLAG, decay_rate=NONNEG, epsilon=NONNEG, decay_rate_fn=CALLABLE)
                              + _named("step_offset", [(1.5, ValueError, "integer"), ("5", ValueError, "integer")])
                              + _named("min_dim_size_to_factor", [(-1, ValueError, ">= 0"),
                                                                  (2.5, TypeError, "integer")])),
    "scale_by_sm3": (jn.scale_by_sm3, {}, _sweep(b1=UNIT, eps=NONNEG)
                     + _named("b2", [(1.5, ValueError, "[0, 1]"), (-0.1, ValueError, "[0, 1]"),
                                     (NAN, ValueError, "[0, 1]")])),
    "lamb": (jn.lamb, {"learning_rate": 0.1}, _sweep(learning_rate=LR, b1=UNIT, b2=UNIT, eps=NONNEG,
                                                     eps_root=NONNEG, weight_decay=FINITE) + _named(*_M)),
    "lars": (jn.lars, {"learning_rate": 0.1},
             _sweep(learning_rate=LR, weight_decay=FINITE, trust_coefficient=NONNEG, eps=NONNEG, momentum=UNIT,
                    nesterov=FLAG)
             + _named("weight_decay_mask", MASK, "mask['w']") + _named("trust_ratio_mask", MASK, "mask['w']")),
    "fromage": (jn.fromage, {"learning_rate": 0.1}, _sweep(learning_rate=LR, min_norm=NONNEG)),
    "adafactor": (jn.adafactor, {},
                  _sweep(learning_rate=LR, decay_rate=NONNEG, multiply_by_parameter_scale=FLAG,
                         clipping_threshold=POSITIVE, momentum=UNIT, dtype_momentum=DTYPE,
                         weight_decay_rate=FINITE, eps=NONNEG, factored=FLAG)
                  + _named("min_dim_size_to_factor", [(2.5, TypeError, "integer"), (-1, ValueError, ">= 0")])
                  + _named("decay_offset", [(1.5, ValueError, "integer")])
                  + _named("weight_decay_mask", MASK, "mask['w']")),
    "sm3": (jn.sm3, {"learning_rate": 0.1}, _sweep(learning_rate=LR, momentum=UNIT)),
    # step sizes read off the loss or the signs, optimistic steps, noise
    "scale_by_polyak": (jn.scale_by_polyak, {}, _sweep(f_min=FINITE, max_learning_rate=POSITIVE, eps=NONNEG)
                        + _named("variant", [("sps-", ValueError, "'sps' or 'sps+'"), (True, TypeError, "'sps'")])),
    "scale_by_rprop": (jn.scale_by_rprop, {"learning_rate": 0.1},
                       _sweep(learning_rate=POSITIVE, min_step_size=NONNEG, max_step_size=POSITIVE)
                       + _named("learning_rate", [(_zoo.lr_schedule, TypeError, "initial step size")])
                       + _named("eta_minus", [(0.0, ValueError, "(0, 1]"), (1.5, ValueError, "(0, 1]"),
                                              (NAN, ValueError, "(0, 1]"), ("0.5", TypeError, "(0, 1]")])
                       + _named("eta_plus", [(0.9, ValueError, ">= 1"), (NAN, ValueError, ">= 1"),
                                             (INF, ValueError, ">= 1")])
                       + _named("min_step_size", [(100.0, ValueError, "<= max_step_size")])),
    "scale_by_distance_over_gradients": (jn.scale_by_distance_over_gradients, {},
                                         _sweep(reps_rel=POSITIVE, eps=NONNEG, param_dtype=DTYPE,
                                                global_scale=FINITE)),
    "scale_by_optimistic_gradient": (jn.scale_by_optimistic_gradient, {}, _sweep(alpha=FINITE, beta=FINITE)),
    "add_noise": (jn.add_noise, {"eta": 0.01, "gamma": 0.55, "key": 0},
                  _sweep(eta=NONNEG, gamma=NONNEG, key=KEY) + _named("seed", [(1, ValueError, "not both")], "`key`")),
    "noisy_sgd": (jn.noisy_sgd, {"learning_rate": 0.1, "key": 0},
                  _sweep(learning_rate=LR, eta=NONNEG, gamma=NONNEG, key=KEY)
                  + _named("seed", [(1, ValueError, "not both")], "`key`")),
    "polyak_sgd": (jn.polyak_sgd, {}, _sweep(max_learning_rate=POSITIVE, scaling=LR, f_min=FINITE, eps=NONNEG)
                   + _named("variant", [("sps-", ValueError, "'sps' or 'sps+'")])),
    "rprop": (jn.rprop, {"learning_rate": 0.1},
              _sweep(learning_rate=POSITIVE, min_step_size=NONNEG, max_step_size=POSITIVE)
              + _named("eta_minus", [(0.0, ValueError, "(0, 1]"), (NAN, ValueError, "(0, 1]")])
              + _named("eta_plus", [(0.9, ValueError, ">= 1"), (NAN, ValueError, ">= 1")])),
    "optimistic_gradient_descent": (jn.optimistic_gradient_descent, {"learning_rate": 0.1},
                                    _sweep(learning_rate=LR, alpha=FINITE, beta=FINITE)),
    "optimistic_adam": (jn.optimistic_adam, {"learning_rate": 0.1},
                        _sweep(learning_rate=LR[:-1] + [(_zoo.lr_schedule, ValueError, "optimistic_adam_v2")],
                               optimism=FINITE, b1=UNIT, b2=UNIT, eps=NONNEG, eps_root=NONNEG,
                               mu_dtype=DTYPE, nesterov=FLAG)),
    "optimistic_adam_v2": (jn.optimistic_adam_v2, {"learning_rate": 0.1},
                           _sweep(learning_rate=LR, alpha=FINITE, beta=FINITE, b1=UNIT, b2=UNIT, eps=NONNEG,
                                  eps_root=NONNEG, mu_dtype=DTYPE, nesterov=FLAG)),
    # gradient operations and wrappers
    "normalize_by_update_norm": (jn.normalize_by_update_norm, {},
                                 _named("scale_factor", [(0.0, ValueError, "non-zero"), (NAN, ValueError, "finite"),
                                                         ("1", TypeError, "finite")]) + _sweep(eps=NONNEG)),
    # weight averaging
    "ema_params": (jn.ema_params, {"inner": jn.sgd(0.1)},
                   _sweep(inner=TX, debias=FLAG, every=POSINT, average_dtype=DTYPE)
                   + _named("decay", [(1.5, ValueError, "[0, 1]"), (-0.1, ValueError, "[0, 1]"),
                                      (NAN, ValueError, "[0, 1]"), ("0.9", TypeError, "number")])
                   + _named("start", _START)),
    "swa_params": (jn.swa_params, {"inner": jn.sgd(0.1)},
                   _sweep(inner=TX, every=POSINT, average_dtype=DTYPE) + _named("start", _START)),
    "apply_every": (jn.apply_every, {"k": 2}, _sweep(k=POSINT) + _named("k", [("2", TypeError, "number")])),
    "conditionally_transform": (jn.conditionally_transform,
                                {"inner": jn.sgd(0.1), "should_transform_fn": lambda step: step >= 0},
                                _sweep(inner=TX, should_transform_fn=CALLABLE, forward_extra_args=FLAG)),
    "conditionally_mask": (jn.conditionally_mask, {"inner": jn.sgd(0.1), "should_transform_fn": lambda step: step >= 0},
                           _sweep(inner=TX, should_transform_fn=CALLABLE, forward_extra_args=FLAG)),
    "snapshot": (jn.snapshot, {"measure_name": "norm", "measure": jn.global_norm},
                 _sweep(measure=CALLABLE) + _named("measure_name", [([1], TypeError, "hashable")])),
    "monitor": (jn.monitor, {"measures": {"norm": jn.global_norm}},
                _named("measures", [([jn.global_norm], TypeError, "dict")])
                + _named("measures", [({"n": "norm"}, TypeError, "GradientTransformation")], "measures['n']")),
    # measure_with_ema's output is a measurement, not a step: swept inside monitor.
    "measure_with_ema": (lambda measure, decay, debias=True, accumulator_dtype=None: jn.monitor(
        {"m": jn.measure_with_ema(measure, decay, debias, accumulator_dtype)}),
                         {"measure": jn.global_norm, "decay": 0.9},
                         _sweep(measure=CALLABLE, decay=UNIT, debias=FLAG, accumulator_dtype=DTYPE)),
    "inject_stateful_hyperparams": (jn.inject_stateful_hyperparams, {"inner_factory": jn.adam},
                                    _sweep(inner_factory=CALLABLE, hyperparam_dtype=DTYPE)
                                    + _named("static_args", [(3, TypeError, "names"),
                                                             ("nonexistent", ValueError, "not parameters")])),
    # L-BFGS and line searches
    "scale_by_lbfgs": (jn.scale_by_lbfgs, {}, _sweep(memory_size=_MEMORY, scale_init_precond=FLAG)),
    "lbfgs": (jn.lbfgs, {}, _sweep(learning_rate=LR[:4], memory_size=_MEMORY, scale_init_precond=FLAG,
                                   linesearch=TX[:1])),
    "scale_by_backtracking_linesearch": (
        jn.scale_by_backtracking_linesearch, {"max_backtracking_steps": 5},
        _sweep(slope_rtol=[(-1.0, ValueError, "[0, 1)"), (NAN, ValueError, "[0, 1)")],
               decrease_factor=[(0.0, ValueError, "(0, 1)"), (1.5, ValueError, "(0, 1)"), (NAN, ValueError, "(0, 1)")],
               increase_factor=[(0.5, ValueError, ">= 1"), (NAN, ValueError, ">= 1")],
               max_learning_rate=POSITIVE, atol=NONNEG, rtol=NONNEG, store_grad=FLAG, verbose=FLAG)
        + _named("max_backtracking_steps", [(-1, ValueError, ">= 0"), (2.5, TypeError, "integer")])),
    "scale_by_zoom_linesearch": (
        jn.scale_by_zoom_linesearch, {"max_linesearch_steps": 5},
        _sweep(max_linesearch_steps=[(0, ValueError, ">= 1"), (2.5, TypeError, "integer")],
               max_learning_rate=[(0.0, ValueError, "> 0 or None"), (NAN, ValueError, "> 0 or None")],
               tol=NONNEG, increase_factor=[(1.0, ValueError, "> 1"), (NAN, ValueError, "> 1")],
               slope_rtol=[(-1.0, ValueError, "[0, 1)"), (NAN, ValueError, "[0, 1)")],
               curv_rtol=[(-1.0, ValueError, ">= 0"), (NAN, ValueError, ">= 0")],
               approx_dec_rtol=NONNEG, stepsize_precision=NONNEG, verbose=FLAG)
        + _named("initial_guess_strategy", [("bogus", ValueError, "'one' or 'keep'")])),
}
