"""Lockstep runs of a torch reference optimizer and one of ours, for the contrib tests.

Both sides start from the same params and each follows its own trajectory on
the same random, non-quadratic problem (one leaf per named shape)::

    f_t(p) = sum_k s_k sum(0.5 c_k p_k^2 + 0.2 sin(2 p_k) + n_{k,t} p_k)

whose gradient ``s_k (c_k p_k + 0.4 cos(2 p_k) + n_{k,t})`` changes every step
(the noise ``n``), so methods that remember the last gradient see real
differences. :func:`run_lockstep` takes a torch optimizer class and its
keyword arguments (given the params as a list, or as ``(name, param)`` pairs
with ``named=True``) and our transform, and returns both trajectories.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import torch

import jaxopt_notes as jn

STEPS = 50


@contextlib.contextmanager
def precision(dtype: str):
  """float64 on both sides (jax x64, torch's default dtype for its scalars); float32 as is."""
  if dtype == "float32":
    yield
    return
  old = torch.get_default_dtype()
  torch.set_default_dtype(torch.float64)
  try:
    with jax.enable_x64(True):
      yield
  finally:
    torch.set_default_dtype(old)


class Problem(NamedTuple):
  init: dict  # leaf name -> initial value (numpy float64)
  curv: dict  # leaf name -> per-coordinate curvature in [1, 2]
  noise: dict  # leaf name -> (steps, *shape) noise
  scale: dict  # leaf name -> the leaf's loss weight s_k


def problem(shapes: dict, seed: int = 0, steps: int = STEPS, scale: Optional[dict] = None) -> Problem:
  rng = np.random.default_rng(seed)
  return Problem(
      init={k: rng.normal(size=s) for k, s in shapes.items()},
      curv={k: rng.uniform(1.0, 2.0, size=s) for k, s in shapes.items()},
      noise={k: rng.normal(size=(steps,) + tuple(s)) for k, s in shapes.items()},
      scale={k: (scale or {}).get(k, 1.0) for k in shapes},
  )


def loss(prob: Problem, params: dict, curv: dict, noise: dict, lib: Any) -> Any:
  return sum(
      prob.scale[k] * lib.sum(0.5 * curv[k] * p ** 2 + 0.2 * lib.sin(2 * p) + noise[k] * p)
      for k, p in params.items()
  )


@jax.jit
def grad(params, curv, noise, scale, t):
  # One compiled gradient per set of shapes and dtype, shared by every run.
  prob = Problem({}, {}, {}, scale)
  return jax.grad(lambda p: loss(prob, p, curv, {k: n[t] for k, n in noise.items()}, jnp))(params)


class Lockstep(NamedTuple):
  got: list  # our params after each step, {name: numpy array}
  want: list  # the reference's, the same way
  state: Any  # our final state
  init: dict  # the initial params (numpy float64)


def run_lockstep(
    torch_cls: Any,
    torch_kwargs: dict,
    tx: Any,
    shapes: dict,
    dtype: str,
    *,
    steps: int = STEPS,
    jit: bool = True,
    named: bool = False,
    seed: int = 0,
    scale: Optional[dict] = None,
    before_step: Optional[Callable[[int, Any], None]] = None,
    after_step: Optional[Callable[[int, Any, Any, dict], Any]] = None,
) -> Lockstep:
  """``steps`` steps of ``torch_cls(params, **torch_kwargs)`` and of ``tx``, side by side.

  Call it under :func:`precision` of ``dtype``. ``before_step(t, state)``
  runs before step ``t`` of both (e.g. to hand the reference the random
  numbers our state will draw); ``after_step(t, state, torch_opt,
  torch_params)`` after it, and may return an edited state of ours (e.g. a
  basis copied from the reference where the decomposition is not unique).
  """
  prob = problem(shapes, seed, steps, scale)
  tdt = getattr(torch, dtype)
  tparams = {k: torch.tensor(v, dtype=tdt, requires_grad=True) for k, v in prob.init.items()}
  tcurv = {k: torch.tensor(v, dtype=tdt) for k, v in prob.curv.items()}
  opt = torch_cls(list(tparams.items()) if named else list(tparams.values()), **torch_kwargs)
  jcurv = {k: jnp.asarray(v, dtype) for k, v in prob.curv.items()}
  jnoise = {k: jnp.asarray(v, dtype) for k, v in prob.noise.items()}
  jscale = {k: jnp.asarray(v, dtype) for k, v in prob.scale.items()}
  update = jax.jit(tx.update) if jit else tx.update
  p = {k: jnp.asarray(v, dtype) for k, v in prob.init.items()}
  state = tx.init(p)
  got, want = [], []
  for t in range(steps):
    if before_step is not None:
      before_step(t, state)
    opt.zero_grad()
    loss(prob, tparams, tcurv, {k: torch.tensor(v[t], dtype=tdt) for k, v in prob.noise.items()}, torch).backward()
    opt.step()
    want.append({k: v.detach().numpy().copy() for k, v in tparams.items()})
    u, state = update(grad(p, jcurv, jnoise, jscale, t), state, p)
    p = jn.apply_updates(p, u)
    if after_step is not None:
      edited = after_step(t, state, opt, tparams)
      state = state if edited is None else edited
    got.append({k: np.asarray(v) for k, v in p.items()})
  assert all(v.dtype == np.dtype(dtype) for v in got[-1].values())
  return Lockstep(got, want, state, prob.init)


def max_errors(run: Lockstep) -> tuple[float, float]:
  """Worst absolute and relative (on ``|want| > 0.1``) differences over the trajectory."""
  keys = sorted(run.want[0])
  got = np.concatenate([np.ravel(g[k]) for g in run.got for k in keys]).astype(np.float64)
  want = np.concatenate([np.ravel(w[k]) for w in run.want for k in keys]).astype(np.float64)
  big = np.abs(want) > 0.1
  return float(np.max(np.abs(got - want))), float(np.max(np.abs(got - want)[big] / np.abs(want[big])))


def assert_lockstep_close(run: Lockstep, *, moved: float = 1e-2, **tol: Any) -> None:
  """Every leaf's whole trajectory within ``tol``, and the params moved by more than ``moved``."""
  for k in run.want[0]:
    np.testing.assert_allclose(
        np.stack([g[k] for g in run.got]), np.stack([w[k] for w in run.want]), err_msg=f"leaf {k}", **tol
    )
  assert max(np.max(np.abs(run.want[-1][k] - run.init[k])) for k in run.want[0]) > moved


def optax_names(torch_kwargs: dict, renames: Optional[dict] = None) -> dict:
  """torch's names to ours: ``lr`` -> ``learning_rate``, ``betas[_x]`` -> ``b1[_x], b2[_x], ...``."""
  out = {}
  for k, v in torch_kwargs.items():
    if renames and k in renames:
      if renames[k] is not None:
        out[renames[k]] = v
    elif k == "lr":
      out["learning_rate"] = v
    elif k.startswith("betas"):
      suffix = k[len("betas"):]
      out.update({f"b{i + 1}{suffix}": b for i, b in enumerate(v)})
    else:
      out[k] = v
  return out
