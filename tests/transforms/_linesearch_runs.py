"""A driver for transforms whose ``update`` needs the loss: line searches and L-BFGS.

:mod:`tests._trajectory` calls ``update(grads, state, params)``; a line
search also needs ``value=``, ``grad=`` and ``value_fn=``. :func:`run` loops
``value, grad = value_and_grad(loss)(params)`` (or the library's own
``value_and_grad_from_state``), ``update(..., value=, grad=, value_fn=loss)``
and ``apply_updates``, with ``update`` wrapped by the chex variant (jitted
once, or op by op), and records params, updates and state after every step.
:func:`compare_with_optax` runs ours and optax's and compares all three at
every step, field by field.

The problems are smooth losses on pytrees (:data:`PROBLEMS`): an
ill-conditioned quadratic on the harness's nested tree (with its ``None``
leaf), Rosenbrock split over a dict and a tuple, and an L2-regularised
logistic regression.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxopt_notes as jn
from tests import _trajectory as tj


class Problem(NamedTuple):
  loss: Callable[[Any], jax.Array]
  params: Any


def quadratic(dtype) -> Problem:
  """``sum 0.5 h (p - c)^2`` on the nested tree, curvatures ``h`` in [0.5, 10] (condition 20)."""
  params = tj.make_params(3, dtype)
  rng = np.random.default_rng(4)
  curv = jax.tree.map(lambda p: jnp.asarray(rng.uniform(0.5, 10.0, np.shape(p)), dtype), params)
  target = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=np.shape(p)), dtype), params)

  def loss(p):
    terms = jax.tree.map(lambda h, c, x: jnp.sum(0.5 * h * (x - c) ** 2), curv, target, p)
    return sum(jax.tree.leaves(terms))

  return Problem(loss, params)


def rosenbrock_value(x):
  return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock(dtype) -> Problem:
  """Rosenbrock in 7 dimensions, the coordinates spread over ``{"a": (3,), "b": ((4,),)}``."""
  rng = np.random.default_rng(5)
  params = {"a": jnp.asarray(rng.uniform(-1.2, 1.2, 3), dtype), "b": (jnp.asarray(rng.uniform(-1.2, 1.2, 4), dtype),)}

  def loss(p):
    return rosenbrock_value(jnp.concatenate([p["a"], p["b"][0]]))

  return Problem(loss, params)


def logistic(dtype) -> Problem:
  """Mean logistic loss of a linear model on 32 random points, plus ``0.01 ||w||^2``."""
  rng = np.random.default_rng(6)
  x = jnp.asarray(rng.normal(size=(32, 4)), dtype)
  y = jnp.asarray(rng.uniform(size=32) < 0.5, dtype)
  params = {"w": jnp.asarray(rng.normal(size=4), dtype), "b": jnp.asarray(0.5, dtype)}

  def loss(p):
    z = x @ p["w"] + p["b"]
    return jnp.mean(jax.nn.softplus(z) - y * z) + 0.01 * jnp.sum(p["w"] ** 2)

  return Problem(loss, params)


PROBLEMS = {"quadratic": quadratic, "rosenbrock": rosenbrock, "logistic": logistic}


def steady_gradients(dtype, seed=0):
  """The harness's quadratic without its drift: ``grads_fn`` for ``tj.compare_with_optax``.

  L-BFGS estimates the curvature from gradient differences; the drift would
  feed it pairs from a moving target, on which a scaled memory-1 estimate
  shrinks the steps to exactly 0 within 80 steps (in optax too), leaving
  nothing to compare.
  """
  with tj.precision(dtype):
    problem = tj.make_problem(tj.make_params(seed, dtype), seed + 1)
    problem = problem._replace(drift=jax.tree.map(np.zeros_like, problem.drift))
  return lambda t, params: tj.loss_grad(problem, params, np.int32(t))


class Run(NamedTuple):
  params: list  # after each step
  updates: list
  states: list
  values: list  # the loss before each step


@functools.lru_cache(maxsize=None)
def _value_and_grad(loss):
  return jax.jit(jax.value_and_grad(loss))


def run(variant, lib, tx, loss, params, steps: int, *, reuse: bool = False) -> Run:
  """``steps`` iterations of ``tx`` (built from ``lib``, ours or optax) on ``loss``.

  ``reuse``: take the value and gradient from the state with ``lib``'s
  ``value_and_grad_from_state`` (also wrapped by ``variant``).
  """
  update = variant(functools.partial(tx.update, value_fn=loss))
  value_and_grad = variant(lib.value_and_grad_from_state(loss)) if reuse else _value_and_grad(loss)
  state = tx.init(params)
  out = Run([], [], [], [])
  for _ in range(steps):
    value, grad = value_and_grad(params, state=state) if reuse else value_and_grad(params)
    updates, state = update(grad, state, params, value=value, grad=grad)
    params = optax.apply_updates(params, updates)
    out.params.append(params)
    out.updates.append(updates)
    out.states.append(state)
    out.values.append(value)
  return out


def compare_with_optax(variant, make, problem: str, dtype, steps: int, *, reuse: bool = False) -> tuple[Run, Run]:
  """Runs ``make(jn)`` and ``make(optax)`` on ``PROBLEMS[problem]``; equal params, updates, states every step."""
  with tj.precision(dtype):
    prob = PROBLEMS[problem](dtype)
    ours = run(variant, jn, make(jn), prob.loss, prob.params, steps, reuse=reuse)
    ref = run(variant, optax, make(optax), prob.loss, prob.params, steps, reuse=reuse)
  tol = tj.tolerance(dtype)
  for t in range(steps):
    try:
      for got, want in [(ours.params[t], ref.params[t]), (ours.updates[t], ref.updates[t])]:
        chex.assert_trees_all_equal_structs(tj.to_plain(got), tj.to_plain(want))
        chex.assert_trees_all_equal_dtypes(tj.to_plain(got), tj.to_plain(want))
        chex.assert_trees_all_close(tj.to_plain(got), tj.to_plain(want), **tol)
      tj.assert_states_close(ours.states[t], ref.states[t], **tol)
    except AssertionError as err:
      raise AssertionError(f"differs from optax at step {t} of {steps}: {err}") from err
  chex.assert_tree_all_finite(ours.params[-1])
  moved = jax.tree.leaves(jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                                       ours.params[-1], prob.params))
  assert any(moved), "the params never moved: the comparison would be vacuous"
  return ours, ref
