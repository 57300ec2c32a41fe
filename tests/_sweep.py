"""Bad argument values shared by the construction sweeps (test_bad_arguments and _breadth_sweeps)."""

import jax.numpy as jnp

import jaxopt_notes as jn

NAN, INF = float("nan"), float("inf")

# (bad value, error, text the message must contain besides the argument name)
UNIT = [(1.0, ValueError, "[0, 1)"), (-0.1, ValueError, "[0, 1)"), (NAN, ValueError, "[0, 1)"),
        ("0.9", TypeError, "number")]
NONNEG = [(-1.0, ValueError, ">= 0"), (NAN, ValueError, ">= 0"), (INF, ValueError, ">= 0"),
          ("1e-8", TypeError, "number")]
POSITIVE = [(0.0, ValueError, "> 0"), (-1.0, ValueError, "> 0"), (NAN, ValueError, "> 0")]
LR = [(NAN, ValueError, "finite"), (INF, ValueError, "finite"), (-INF, ValueError, "finite"),
      ("0.1", TypeError, "number"), (jnp.ones(2), TypeError, "scalar")]
POSINT = [(0, ValueError, ">= 1"), (-2, ValueError, ">= 1"), (2.5, ValueError, "integer")]
FLAG = [("yes", TypeError, "True or False"), (None, TypeError, "True or False")]
DTYPE = [("notadtype", TypeError, "dtype")]
TX = [("adam", TypeError, "GradientTransformation"), (jn.adam, TypeError, "GradientTransformation")]
CALLABLE = [(0.1, TypeError, "callable")]
MASK = [({"w": "yes", "b": False}, TypeError, "True or False"),
        ({"w": jnp.array([True, False]), "b": True}, TypeError, "True or False")]


def _named(arg, cases, name=None):
  """``cases`` with the message expected to name ``name`` (default ``arg``)."""
  return [(arg, value, error, hint, name or arg) for value, error, hint in cases]


ADAM_ARGS = {"b1": UNIT, "b2": UNIT, "eps": NONNEG, "eps_root": NONNEG, "mu_dtype": DTYPE,
             "nu_dtype": DTYPE}


def _sweep(**bad):
  return [case for arg, cases in bad.items() for case in _named(arg, cases)]


FINITE = [(NAN, ValueError, "finite"), (INF, ValueError, "finite"), ("0.1", TypeError, "number")]
