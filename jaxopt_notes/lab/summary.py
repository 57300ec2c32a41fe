"""Summaries of the lab's runs: the table ``python -m jaxopt_notes`` prints and its verdict.

:func:`summary_rows` measures each run (final loss, distance to the minimum,
steps to a loss gap), :func:`format_table` prints them and
:func:`format_first_to_tol` says which run got below the tolerance first, so
the conclusion under the table is computed from the same numbers. Re-exported
by :mod:`jaxopt_notes.lab`; nothing here imports matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

if TYPE_CHECKING:
  from jaxopt_notes.lab.problems import Problem

__all__ = ["first_to_tol", "format_first_to_tol", "format_table", "losses", "sign_changes", "summary_rows"]


def losses(problem: Problem, path: jax.typing.ArrayLike) -> jax.Array:
  """``problem.loss`` at every row of ``path``."""
  return jax.vmap(problem.loss)(jnp.asarray(path))


def sign_changes(values: Any) -> int:
  """How often consecutive nonzero entries of ``values`` change sign.

  ``sign_changes(jnp.diff(path[:, 1]))`` counts the zig-zags of a path
  across the ``y`` direction (note 000).
  """
  s = np.sign(np.asarray(values, np.float64))
  s = s[s != 0]
  return int(np.sum(s[1:] != s[:-1]))


def _first(mask: np.ndarray) -> Optional[int]:
  hits = np.flatnonzero(mask)
  return int(hits[0]) if hits.size else None


def summary_rows(
    paths: Mapping[str, jax.typing.ArrayLike],
    problem: Problem,
    tol: float = 1e-2,
    radius: Optional[float] = None,
) -> list[dict[str, Any]]:
  """One row per run: how far it got and how soon.

  Keys: ``optimizer``; ``final_loss``; ``distance`` (from the last iterate to
  the global minimiser); ``steps_to_tol``, the first step ``t`` with
  ``f(w_t) - f(w*) < tol``; ``steps_to_radius``, the first step with
  ``|w_t - w*| < radius`` (only with ``radius``); ``ended_in``, the index in
  ``problem.all_minima`` of the minimiser nearest the last iterate; and
  ``diverged``, true when the path left the floats. Fields that do not apply
  (a problem without a minimum, a target never reached) are ``None``.
  """
  rows = []
  f_min = problem.min_loss
  minima = np.asarray(problem.all_minima, np.float64).reshape(-1, 2)
  for name, path in paths.items():
    path = np.asarray(path, np.float64)
    loss = np.asarray(losses(problem, path), np.float64)
    finite = np.isfinite(path).all(axis=1) & np.isfinite(loss)
    row = {"optimizer": name, "final_loss": float(loss[-1]), "distance": None,
           "steps_to_tol": None, "steps_to_radius": None, "ended_in": None,
           "diverged": not bool(finite[-1])}
    if problem.minimum is not None:
      assert f_min is not None  # min_loss is None only without a minimum
      dist = np.linalg.norm(path - np.asarray(problem.minimum), axis=1)
      row["distance"] = float(dist[-1])
      row["steps_to_tol"] = _first(finite & (loss - f_min < tol))
      if radius is not None:
        row["steps_to_radius"] = _first(finite & (dist < radius))
    if len(minima) and finite[-1]:
      row["ended_in"] = int(np.argmin(np.linalg.norm(minima - path[-1], axis=1)))
    rows.append(row)
  return rows


def format_table(rows: Sequence[Mapping[str, Any]], tol: float = 1e-2) -> str:
  """:func:`summary_rows` as a fixed-width text table (``-``: not reached / not defined)."""
  cell = lambda v, fmt: "-" if v is None else format(v, fmt)
  width = max([12] + [len(str(r["optimizer"])) + 1 for r in rows])
  lines = [f"{'optimizer':<{width}} {'final loss':>12} {'distance':>10} "
           f"{'steps to gap<' + format(tol, 'g'):>20}"]
  for r in rows:
    final = "diverged" if r["diverged"] else format(r["final_loss"], ".3e")
    lines.append(f"{r['optimizer']:<{width}} {final:>12} {cell(r['distance'], '.4f'):>10} "
                 f"{cell(r['steps_to_tol'], 'd'):>20}")
  return "\n".join(lines)



def first_to_tol(rows: Sequence[Mapping[str, Any]]) -> tuple[Optional[int], list[str]]:
  """The earliest ``steps_to_tol`` of :func:`summary_rows`' rows, and who got there then.

  Returns ``(step, names)``, the names in the rows' order (several on a tie),
  or ``(None, [])`` when no run reached the tolerance.
  """
  reached = [r["steps_to_tol"] for r in rows if r["steps_to_tol"] is not None]
  if not reached:
    return None, []
  step = min(reached)
  return step, [str(r["optimizer"]) for r in rows if r["steps_to_tol"] == step]


def format_first_to_tol(rows: Sequence[Mapping[str, Any]], tol: float = 1e-2,
                        steps: Optional[int] = None) -> str:
  """The line ``python -m jaxopt_notes`` prints after the table: who got below ``tol`` first.

  ``first below tol=0.01: nesterov, adagrad (step 22)``; ties are listed
  together. When no run reached it: ``none of them`` (``in N steps`` with
  ``steps``); on a problem without a minimum the gap is not defined.
  """
  head = f"first below tol={tol:g}:"
  if rows and all(r["distance"] is None for r in rows):
    return f"{head} not defined (the problem has no minimum)"
  step, names = first_to_tol(rows)
  if step is None:
    return f"{head} none of them" + (f" in {steps} steps" if steps is not None else "")
  return f"{head} {', '.join(names)} (step {step})"
