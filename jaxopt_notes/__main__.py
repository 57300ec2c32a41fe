"""``python -m jaxopt_notes``: the optimizer lab's anisotropy experiment.

Runs notes 001's experiment (``x^2/20 + y^2`` from ``(-7, 4)``) for the
notes' optimizers and prints how close each gets to the minimum.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from jaxopt_notes import lab


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m jaxopt_notes",
      description="Run the notes' anisotropic-bowl experiment and print a summary.",
  )
  parser.add_argument(
      "--optimizers", default=",".join(lab.DEFAULT_OPTIMIZERS),
      help=f"comma-separated names from: {', '.join(lab.DEFAULT_OPTIMIZERS)}",
  )
  parser.add_argument("--steps", type=int, default=100, help="steps per optimizer (default 100)")
  parser.add_argument("--tol", type=float, default=1e-2, help="loss counted as 'reached' (default 1e-2)")
  args = parser.parse_args(argv)
  if args.steps < 1:
    parser.error("--steps must be >= 1")
  names = [n.strip() for n in args.optimizers.split(",") if n.strip()]
  try:
    paths = lab.compare(names, steps=args.steps)
  except ValueError as err:
    parser.error(str(err))
  problem = lab.anisotropic_bowl()
  print(f"{problem.name}: f(x, y) = x^2/20 + y^2 from {problem.start}, {args.steps} steps")
  print(f"{'optimizer':<10} {'final loss':>12} {'distance':>10} {'steps to loss<' + str(args.tol):>20}")
  for row in lab.summary_rows(paths, problem, tol=args.tol):
    reached = "-" if row["steps_to_tol"] is None else str(row["steps_to_tol"])
    print(f"{row['optimizer']:<10} {row['final_loss']:>12.3e} {row['distance']:>10.4f} {reached:>20}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
