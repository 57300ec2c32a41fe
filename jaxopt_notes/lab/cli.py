"""``python -m jaxopt_notes``: the optimizer lab on the command line.

Three commands (``python -m jaxopt_notes COMMAND --help`` for each):

* ``lab`` (the default): note 001's anisotropy experiment, ``x^2/20 + y^2``
  from ``(-7, 4)``, for SGD, Momentum, Nesterov, AdaGrad, RMSProp, Adadelta
  and Adam (or any optimizer and problem named), a summary table and PNG
  figures of the paths and the losses;
* ``train``: a small MLP on scikit-learn's bundled digits with several
  optimizers through :func:`jaxopt_notes.fit`, held-out accuracy and loss per
  epoch (notes 002-004);
* ``figures``: every figure of the notes (EMA of daily temperatures, the
  learning-rate decays, zig-zag, saddle, local minima, gradient noise,
  Newton's method) as PNG files.

matplotlib is imported only when a figure is drawn, scikit-learn only by
``train``.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import pathlib
import sys
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.lab import problems as lab

COMMANDS = ("lab", "train", "figures")
TRAIN_DEFAULT = ("sgd", "momentum", "adam")
# Newton builds the dense Hessian: for the digits MLP that is (thousands of weights)^2.
TRAIN_OPTIMIZERS = tuple(sorted(n for n in lab.OPTIMIZERS if n != "newton"))


def _names(text: str, valid: Sequence[str] = tuple(sorted(lab.OPTIMIZERS))) -> list[str]:
  """``--optimizers`` as a list; names outside ``valid`` are an argparse error (exit 2)."""
  names = [n.strip() for n in text.split(",") if n.strip()]
  unknown = [n for n in names if n not in valid]
  if not names or unknown:
    why = ("newton builds a dense Hessian (thousands squared for this MLP): use it on the lab's "
           "2-D problems; " if "newton" in unknown else "")
    raise argparse.ArgumentTypeError(
        f"{why}unknown optimizer(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
        f"valid names: {', '.join(valid)}"
    )
  return names


def _train_names(text: str) -> list[str]:
  return _names(text, TRAIN_OPTIMIZERS)


def _point(text: str) -> tuple[float, float]:
  try:
    x, y = (float(v) for v in text.split(","))
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected X,Y (two numbers); got {text!r}") from None
  return x, y


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m jaxopt_notes",
      description="The optimizer lab of the notes. Without a command, runs `lab`.",
      epilog="`python -m jaxopt_notes COMMAND --help` lists each command's options.",
  )
  sub = parser.add_subparsers(dest="command", metavar="{lab,train,figures}")

  p = sub.add_parser(
      "lab", help="run optimizers on a 2-D problem; print a table, write figures (default)",
      description="Runs optimizers on a 2-D problem (default: note 001's anisotropic bowl "
      "x^2/20 + y^2 from (-7, 4)), prints final loss, distance to the minimum and steps "
      "to reach a loss gap, and writes PNG figures of the paths and losses.",
  )
  p.add_argument("--optimizers", type=_names, default=",".join(lab.DEFAULT_NAMES),
                 help="comma-separated names (default: %(default)s); valid: "
                 + ", ".join(sorted(lab.OPTIMIZERS)))
  p.add_argument("--problem", choices=sorted(lab.PROBLEMS), default="anisotropic_bowl",
                 help="the function to minimise (default: %(default)s)")
  p.add_argument("--steps", type=int, default=None, help="steps per optimizer "
                 "(default: the problem's, 100 for the bowl)")
  p.add_argument("--tol", type=float, default=1e-2,
                 help="loss gap f - f* counted as reached (default: %(default)s)")
  p.add_argument("--start", type=_point, default=None, metavar="X,Y",
                 help="start point (default: the problem's, (-7, 4) for the bowl)")
  p.add_argument("--condition-number", type=float, default=100.0,
                 help="kappa of the ill_conditioned problem (default: %(default)s)")
  p.add_argument("--noise", type=float, default=0.0, metavar="SIGMA",
                 help="per-example gradient noise; > 0 makes the gradients stochastic "
                 "(default: 0)")
  p.add_argument("--batch-size", type=int, default=1,
                 help="examples averaged per noisy gradient (default: %(default)s)")
  p.add_argument("--seed", type=int, default=0, help="noise seed (default: %(default)s)")
  _add_output(p)
  p.set_defaults(run=run_lab, parser=p)

  t = sub.add_parser(
      "train", help="train an MLP on scikit-learn's digits with several optimizers",
      description="Trains a 64-hidden-unit MLP on scikit-learn's bundled digits (no "
      "download; 80/20 split) with each optimizer, prints held-out accuracy and loss per "
      "epoch and writes a plot. Needs scikit-learn.",
  )
  t.add_argument("--optimizers", type=_train_names, default=",".join(TRAIN_DEFAULT),
                 help="comma-separated names (default: %(default)s); valid: "
                 + ", ".join(TRAIN_OPTIMIZERS))
  t.add_argument("--epochs", type=int, default=10, help="default: %(default)s")
  t.add_argument("--batch-size", type=int, default=64, help="default: %(default)s")
  t.add_argument("--hidden", type=int, default=64, help="hidden units (default: %(default)s)")
  t.add_argument("--seed", type=int, default=0, help="split, init and shuffle seed")
  _add_output(t)
  t.set_defaults(run=run_train, parser=t)

  f = sub.add_parser("figures", help="write every figure of the notes as PNG files",
                     description="Writes the notes' figures (notes 000-004) to --out.")
  f.add_argument("--out", type=pathlib.Path, default=pathlib.Path("lab-output"),
                 help="output folder (default: ./lab-output)")
  f.set_defaults(run=run_figures, parser=f)
  return parser


def _add_output(p: argparse.ArgumentParser) -> None:
  p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("lab-output"),
                 help="folder for the PNG figures (default: ./lab-output)")
  p.add_argument("--no-plots", action="store_true", help="print the table only")


def _check_positive(parser, args, *names: str) -> None:
  for name in names:
    value = getattr(args, name.replace("-", "_"))
    if value is not None and value < 1:
      parser.error(f"--{name} must be >= 1; got {value}")


# ---- lab ------------------------------------------------------------------------------


def run_lab(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
  _check_positive(parser, args, "steps", "batch-size")
  if args.noise < 0:
    parser.error(f"--noise must be >= 0; got {args.noise}")
  if args.problem == "ill_conditioned":
    if args.condition_number < 1:
      parser.error(f"--condition-number must be >= 1; got {args.condition_number}")
    problem = lab.ill_conditioned_quadratic(args.condition_number)
  else:
    problem = lab.get_problem(args.problem)
  if args.noise > 0:
    problem = lab.noisy(problem, args.noise, args.batch_size, args.seed)
  steps = args.steps or problem.steps
  paths = lab.compare(args.optimizers, problem, steps, start=args.start)
  start = problem.start if args.start is None else args.start
  print(f"{problem.name}: f(x, y) = {problem.formula} from {tuple(start)}, {steps} steps")
  rows = lab.summary_rows(paths, problem, tol=args.tol)
  print(lab.format_table(rows, tol=args.tol))
  print(lab.format_first_to_tol(rows, tol=args.tol, steps=steps))
  if not args.no_plots:
    from jaxopt_notes.lab import plots
    stem = args.problem + ("-noisy" if args.noise > 0 else "")
    written = [
        plots.save(plots.contour(problem, paths), args.out / f"{stem}-paths.png"),
        plots.save(plots.path_panels(problem, paths), args.out / f"{stem}-panels.png"),
        plots.save(plots.loss_curves(problem, paths), args.out / f"{stem}-loss.png"),
    ]
    print("figures: " + ", ".join(str(w) for w in written))
  return 0


# ---- train: the digits MLP --------------------------------------------------------------

# Each reaches ~97% held-out accuracy in 10 epochs at batch 64 (seed 0).
DIGITS_LEARNING_RATES = {
    "sgd": 0.3, "momentum": 0.05, "nesterov": 0.05, "adagrad": 0.1, "rmsprop": 3e-3,
    "adadelta": 0.3, "adam": 3e-3,
}


def _digits(seed: int, test_fraction: float = 0.2):
  # scikit-learn ships the 1,797 8x8 digits with the package: no download.
  from sklearn.datasets import load_digits
  x, y = load_digits(return_X_y=True)
  order = np.random.default_rng(seed).permutation(len(y))
  x, y = x[order].astype(np.float32) / 16.0, y[order].astype(np.int32)
  n_test = int(len(y) * test_fraction)
  return (x[n_test:], y[n_test:]), (x[:n_test], y[:n_test])


def _mlp_logits(params, x):
  for layer in params[:-1]:
    x = jax.nn.relu(x @ layer["w"] + layer["b"])
  return x @ params[-1]["w"] + params[-1]["b"]


def _cross_entropy(params, batch):
  x, y = batch
  logp = jax.nn.log_softmax(_mlp_logits(params, x))
  return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def train_digits(
    optimizer: Any, *, epochs: int = 10, batch_size: int = 64, hidden: int = 64, seed: int = 0,
) -> dict[str, list[float]]:
  """Trains a ``64 -> hidden -> 10`` ReLU MLP on the digits with :func:`jaxopt_notes.fit`.

  scikit-learn's bundled 8x8 digits (pixels scaled to ``[0, 1]``), split
  80/20 by ``seed``; softmax cross-entropy; minibatches reshuffled every
  epoch (notes 002 and 004). ``optimizer`` is a transform or a name from
  ``lab.OPTIMIZERS`` at :data:`DIGITS_LEARNING_RATES`. Returns per epoch
  ``epoch``, ``train_loss`` (mean batch loss), ``val_loss`` and
  ``val_accuracy`` on the held-out 20%.
  """
  from jaxopt_notes.training import loop as training
  if isinstance(optimizer, str):
    optimizer = lab.make_optimizer(optimizer, rates=DIGITS_LEARNING_RATES)
  train, test = _digits(seed)
  key = jax.random.key(seed)
  sizes = (64, hidden, 10)
  # He initialisation: ReLU layers keep their activations' scale.
  params = [{"w": jax.random.normal(k, (m, n)) * math.sqrt(2.0 / m), "b": jnp.zeros(n)}
            for k, m, n in zip(jax.random.split(key, 2), sizes[:-1], sizes[1:])]
  accuracy = jax.jit(lambda p, x, y: jnp.mean(jnp.argmax(_mlp_logits(p, x), -1) == y))
  acc: list[float] = []
  _, history = training.fit(
      _cross_entropy, params, optimizer, train, epochs=epochs, batch_size=batch_size,
      key=jax.random.fold_in(key, 1), validation=test, progress=False,
      callbacks=(lambda epoch, p, state, h: acc.append(float(accuracy(p, *test))),),
  )
  return {"epoch": list(range(1, len(acc) + 1)), "train_loss": history["epoch_loss"],
          "val_loss": history["val_loss"], "val_accuracy": acc}


def run_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
  _check_positive(parser, args, "epochs", "batch-size", "hidden")
  if importlib.util.find_spec("sklearn") is None:
    print("error: `train` needs scikit-learn for its digits data: pip install scikit-learn",
          file=sys.stderr)
    return 1
  histories = {
      name: train_digits(name, epochs=args.epochs, batch_size=args.batch_size,
                         hidden=args.hidden, seed=args.seed)
      for name in args.optimizers
  }
  print(f"digits MLP (64-{args.hidden}-10), batch {args.batch_size}: held-out accuracy / loss")
  print(f"{'epoch':>5} " + " ".join(f"{n:>18}" for n in histories))
  for e in range(args.epochs):
    cells = [f"{h['val_accuracy'][e]:>9.3f} / {h['val_loss'][e]:<6.3f}" for h in histories.values()]
    print(f"{e + 1:>5} " + " ".join(f"{c:>18}" for c in cells))
  if not args.no_plots:
    from jaxopt_notes.lab import plots
    title = (f"digits MLP (64-{args.hidden}-10, batch {args.batch_size}): held-out accuracy "
             "and loss per epoch")
    path = plots.save(plots.training_curves(histories, title=title), args.out / "digits-training.png")
    print(f"figure: {path}")
  return 0


# ---- figures: every picture of the notes ------------------------------------------------


def notes_figures() -> dict[str, Any]:
  """Every figure of the notes, ``{file name: matplotlib Figure}``, in the order written."""
  from jaxopt_notes import schedules as sch
  from jaxopt_notes.lab import plots
  from jaxopt_notes.optimizers.sgd import sgd
  figs: dict[str, Any] = {}

  bowl = lab.anisotropic_bowl()
  figs["001-anisotropy-paths.png"] = plots.contour(bowl, lab.compare(problem=bowl))
  kappa = lab.ill_conditioned_quadratic(100.0)
  paths = lab.compare(["sgd", "momentum", "adam", "newton"], kappa)
  figs["002-ill-conditioning-paths.png"] = plots.contour(kappa, paths)
  figs["002-ill-conditioning-loss.png"] = plots.loss_curves(kappa, paths)
  saddle = lab.saddle()
  figs["000-saddle.png"] = plots.contour(saddle, {
      "GD on $y = 0$": lab.trajectory("sgd", saddle, (-1.5, 0.0), 60),
      "GD from $y = 10^{-2}$": lab.trajectory("sgd", saddle, (-1.5, 1e-2), 60),
      "Adam from $y = 10^{-2}$": lab.trajectory("adam", saddle, (-1.5, 1e-2), 60),
  })
  well = lab.double_well()
  figs["000-local-minima.png"] = plots.contour(well, {
      "GD from (1.5, 1)": lab.trajectory("sgd", well, (1.5, 1.0)),
      "GD from (-1.5, 1)": lab.trajectory("sgd", well, (-1.5, 1.0)),
      "momentum from (1.5, 1)": lab.trajectory("momentum", well, (1.5, 1.0)),
  })
  sigma, rate, batches = 2.0, 0.3, (1, 16, 256)
  figs["000-noisy-gradients.png"] = plots.contour(bowl, {
      f"batch {n}": lab.trajectory(sgd(rate), lab.noisy(bowl, sigma, n), steps=60) for n in batches
  }, title=(f"SGD (rate {rate:g}) on {bowl.title}\nnoisy gradients: $\\sigma = {sigma:g}$ per example, "
            f"batch sizes {', '.join(map(str, batches))}"))
  sizes = [1, 2, 4, 8, 16, 32, 64]
  variances = [lab.gradient_variance(lab.noisy(bowl, 1.0, n), bowl.start) for n in sizes]
  figs["002-batch-noise.png"] = plots.batch_noise(sizes, variances)
  temps = lab.london_temperatures()
  figs["004-ema.png"] = plots.ema(temps)
  figs["004-bias-correction.png"] = plots.ema_bias(temps)
  # The notes number epochs from 1 (first_epoch=1). The staircase counts the
  # epochs before the current one, so each level holds 5 whole epochs (1-5,
  # 6-10, ...) in that numbering; step_decay on the 1-based number would
  # halve after only 4.
  figs["004-decay.png"] = plots.schedules({
      r"$\alpha_0 / (1 + \mathrm{epoch})$": sch.per_epoch(sch.inverse_time_decay(0.2, 1.0), 10, 1),
      r"$0.95^{\mathrm{epoch}}\,\alpha_0$": sch.per_epoch(sch.exponential_decay(0.2, 1, 0.95), 10, 1),
      r"$\alpha_0 / \sqrt{\mathrm{epoch}}$": sch.per_epoch(sch.inverse_sqrt_decay(0.2), 10, 1),
      r"$\alpha_0 \cdot 0.5^{\lfloor (\mathrm{epoch} - 1) / 5 \rfloor}$ (halve every 5 epochs)":
          sch.per_epoch(sch.step_decay(0.2, 0.5, 5), 10, 0),
  }, 200, title=r"note 004's learning-rate decays, $\alpha_0 = 0.2$ (10 steps per epoch, epochs from 1)")
  return figs


def run_figures(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
  from jaxopt_notes.lab import plots
  written = [plots.save(fig, args.out / name) for name, fig in notes_figures().items()]
  print("\n".join(str(w) for w in written))
  return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Runs the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status.

  Argument errors exit with status 2 (argparse's ``SystemExit``).
  """
  argv = list(sys.argv[1:] if argv is None else argv)
  parser = _parser()
  if not argv or (argv[0] not in COMMANDS and argv[0].startswith("-")
                  and argv[0] not in ("-h", "--help")):
    argv = ["lab"] + argv
  elif argv[0] not in COMMANDS and argv[0] not in ("-h", "--help"):
    parser.error(f"unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}")
  args = parser.parse_args(argv)
  # Each command reports its own argument errors, with its own usage line.
  return args.run(args, args.parser)


if __name__ == "__main__":
  sys.exit(main())
