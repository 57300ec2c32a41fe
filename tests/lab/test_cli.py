"""``python -m jaxopt_notes``: lab (default), train, figures, help and argument errors."""

from __future__ import annotations

import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest

from jaxopt_notes import lab
from jaxopt_notes.lab.cli import main


def _table(out: str) -> dict[str, list[str]]:
  """The summary table's rows, by optimizer name."""
  lines = out.splitlines()
  head = next(i for i, line in enumerate(lines) if line.startswith("optimizer"))
  rows = {}
  for line in lines[head + 1:]:
    if not line.strip() or line.startswith(("figures", "first below")):
      break
    cells = line.split()
    rows[cells[0]] = cells[1:]
  return rows


def test_lab_is_the_default_and_prints_the_notes_experiment(capsys):
  assert main(["--no-plots"]) == 0
  out = capsys.readouterr().out
  assert "x^2/20 + y^2" in out and "(-7.0, 4.0)" in out
  rows = _table(out)
  assert tuple(rows) == lab.DEFAULT_NAMES
  # The printed numbers are the lab's summary of the same runs.
  problem = lab.anisotropic_bowl()
  expected = {r["optimizer"]: r for r in lab.summary_rows(lab.compare(problem=problem), problem)}
  for name, cells in rows.items():
    assert float(cells[0]) == pytest.approx(expected[name]["final_loss"], rel=1e-3, abs=1e-12)
    assert float(cells[1]) == pytest.approx(expected[name]["distance"], abs=1e-4)
    assert cells[2] == str(expected[name]["steps_to_tol"])


def _first_below(out: str) -> str:
  (line,) = [line for line in out.splitlines() if line.startswith("first below")]
  return line


def test_the_lab_says_who_got_below_the_tolerance_first(capsys):
  # The conclusion is computed from the table: on the bowl two optimizers tie
  # at step 22 and SGD (36) is not among them.
  assert main(["--no-plots"]) == 0
  out = capsys.readouterr().out
  rows = _table(out)
  first = min(int(c[2]) for c in rows.values() if c[2] != "-")
  winners = [n for n, c in rows.items() if c[2] == str(first)]
  assert _first_below(out) == f"first below tol=0.01: {', '.join(winners)} (step {first})"
  assert _first_below(out) == "first below tol=0.01: nesterov, adagrad (step 22)"
  # The guide page's prose: SGD next at 36, then Adadelta, Momentum, Adam, RMSProp.
  order = sorted(rows, key=lambda n: int(rows[n][2]))  # stable: ties keep the table's order
  assert order == ["nesterov", "adagrad", "sgd", "adadelta", "momentum", "adam", "rmsprop"]
  assert rows["sgd"][2] == "36"
  # kappa = 100: AdaGrad first, ahead of Adam; plain SGD not within 100 steps.
  assert main(["--problem", "ill_conditioned", "--no-plots"]) == 0
  out = capsys.readouterr().out
  rows = _table(out)
  assert _first_below(out) == "first below tol=0.01: adagrad (step 29)"
  reached = sorted((int(c[2]), n) for n, c in rows.items() if c[2] != "-")
  assert [n for _, n in reached[:2]] == ["adagrad", "adam"] and rows["sgd"][2] == "-"
  assert main(["--steps", "3", "--no-plots"]) == 0
  assert _first_below(capsys.readouterr().out) == "first below tol=0.01: none of them in 3 steps"
  assert main(["--problem", "saddle", "--tol", "0.5", "--no-plots"]) == 0
  assert "not defined" in _first_below(capsys.readouterr().out)


def test_first_to_tol_lists_ties_in_table_order():
  rows = [{"optimizer": n, "steps_to_tol": t, "distance": 0.0}
          for n, t in (("a", 9), ("b", 4), ("c", None), ("d", 4))]
  assert lab.first_to_tol(rows) == (4, ["b", "d"])
  assert lab.format_first_to_tol(rows, tol=1e-3) == "first below tol=0.001: b, d (step 4)"
  assert lab.first_to_tol(rows[2:3]) == (None, [])
  assert lab.format_first_to_tol(rows[2:3]) == "first below tol=0.01: none of them"


def test_lab_writes_the_figures(tmp_path, capsys):
  out_dir = tmp_path / "out"
  assert main(["lab", "--optimizers", "sgd,adam,newton", "--steps", "30",
               "--out", str(out_dir)]) == 0
  out = capsys.readouterr().out
  assert set(_table(out)) == {"sgd", "adam", "newton"}
  pngs = sorted(p.name for p in out_dir.glob("*.png"))
  assert pngs == ["anisotropic_bowl-loss.png", "anisotropic_bowl-panels.png",
                  "anisotropic_bowl-paths.png"]
  for name in pngs:
    assert (out_dir / name).stat().st_size > 10_000
    assert str(out_dir / name) in out
    assert matplotlib.image.imread(out_dir / name).ndim == 3


def test_lab_other_problems_noise_and_start(tmp_path, capsys):
  assert main(["--problem", "ill_conditioned", "--condition-number", "1000",
               "--optimizers", "sgd,newton", "--no-plots"]) == 0
  out = capsys.readouterr().out
  assert "kappa=1000" in out
  assert _table(out)["newton"][2] == "1"  # Newton: one step on a quadratic
  assert main(["--noise", "2", "--batch-size", "8", "--optimizers", "sgd", "--steps", "20",
               "--start", "1,1", "--out", str(tmp_path)]) == 0
  out = capsys.readouterr().out
  assert "noise(sigma=2, batch=8)" in out and "(1.0, 1.0)" in out
  assert (tmp_path / "anisotropic_bowl-noisy-paths.png").is_file()
  assert main(["--problem", "saddle", "--optimizers", "sgd", "--no-plots"]) == 0
  assert _table(capsys.readouterr().out)["sgd"][1] == "-"  # no minimum, no distance


@pytest.mark.parametrize("argv", [["--help"], ["lab", "--help"], ["train", "--help"],
                                  ["figures", "--help"]])
def test_help(argv, capsys):
  with pytest.raises(SystemExit) as exit_info:
    main(argv)
  assert exit_info.value.code == 0
  out = capsys.readouterr().out
  assert out.startswith("usage: python -m jaxopt_notes")
  if argv[0] == "--help":
    assert all(c in out for c in ("lab", "train", "figures"))
  else:
    assert "--out" in out


def test_train_help_lists_only_the_optimizers_train_accepts(capsys):
  with pytest.raises(SystemExit):
    main(["train", "--help"])
  listed = " ".join(capsys.readouterr().out.split()).split("valid: ")[1]
  names = [n.strip(" ,") for n in listed.split("--epochs")[0].split(",")]
  assert "newton" not in names
  assert set(names) == set(lab.OPTIMIZERS) - {"newton"}
  # The lab's own help still offers Newton, which it runs.
  with pytest.raises(SystemExit):
    main(["lab", "--help"])
  assert "newton" in capsys.readouterr().out


@pytest.mark.parametrize("argv,valid", [
    (["--optimizers", "sgd,adamm"], ["adagrad", "adam", "sgd", "newton"]),
    (["train", "--optimizers", "sdg"], ["adam", "sgd"]),
    (["lab", "--problem", "bowl"], sorted(lab.PROBLEMS)),
    (["lab", "--steps", "0"], []),
    (["lab", "--start", "1"], []),
    (["plot"], ["lab", "train", "figures"]),
    (["train", "--optimizers", "newton"], ["Hessian"]),
])
def test_bad_arguments_exit_2_and_list_the_valid_choices(argv, valid, capsys):
  with pytest.raises(SystemExit) as exit_info:
    main(argv)
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert "error:" in err
  for name in valid:
    assert name in err, (name, err)


def test_train_prints_accuracies_and_plots(tmp_path, capsys, monkeypatch):
  pytest.importorskip("sklearn")
  from jaxopt_notes.lab import plots
  saved, real_save = {}, plots.save

  def save(fig, path):
    saved[path.name] = fig
    return real_save(fig, path)

  monkeypatch.setattr(plots, "save", save)
  assert main(["train", "--epochs", "2", "--optimizers", "sgd,adam",
               "--out", str(tmp_path)]) == 0
  out = capsys.readouterr().out
  lines = out.splitlines()
  assert "held-out accuracy" in lines[0]
  assert lines[1].split() == ["epoch", "sgd", "adam"]
  for epoch, line in zip((1, 2), lines[2:4]):
    cells = line.split()
    assert cells[0] == str(epoch)
    accuracies = [float(cells[1]), float(cells[4])]
    assert all(0.0 <= a <= 1.0 for a in accuracies)
  # Far above chance (0.1) after two epochs on the digits.
  assert min(float(lines[3].split()[1]), float(lines[3].split()[4])) > 0.5
  assert (tmp_path / "digits-training.png").stat().st_size > 10_000
  title = saved["digits-training.png"].get_suptitle()
  assert "digits" in title and "64-64-10" in title and "batch 64" in title


@pytest.fixture(scope="module")
def notes_figures():
  from jaxopt_notes.lab import cli
  return cli.notes_figures()


def _titles(fig) -> str:
  return "\n".join([fig.get_suptitle()] + [ax.get_title() for ax in fig.axes])


def test_every_notes_figure_has_a_mathtext_title(notes_figures):
  for name, fig in notes_figures.items():
    title = _titles(fig).strip()
    assert title, name
    for internal in ("anisotropic_bowl", "ill_conditioned", "double_well", "alpha0", "beta="):
      assert internal not in title, (name, title)


def test_the_noisy_gradients_title_gives_the_noise(notes_figures):
  title = _titles(notes_figures["000-noisy-gradients.png"])
  assert "noisy gradients" in title and "$\\sigma = 2$" in title
  assert "batch sizes 1, 16, 256" in title


def test_halve_every_5_epochs_holds_each_level_for_5_epochs(notes_figures):
  ax = notes_figures["004-decay.png"].axes[0]
  (line,) = [line for line in ax.get_lines() if "halve every 5 epochs" in line.get_label()]
  values = np.asarray(line.get_ydata())
  # 10 steps per epoch, 200 steps: four levels of 50 steps (5 epochs) each.
  levels, lengths = np.unique(values, return_counts=True)
  np.testing.assert_allclose(sorted(levels, reverse=True), [0.2, 0.1, 0.05, 0.025], rtol=1e-6)
  assert list(lengths) == [50, 50, 50, 50]
  assert values[0] == pytest.approx(0.2) and values[49] == pytest.approx(0.2)
  assert values[50] == pytest.approx(0.1)


def test_figures_writes_every_notes_figure(tmp_path, capsys):
  assert main(["figures", "--out", str(tmp_path)]) == 0
  written = sorted(p.name for p in tmp_path.glob("*.png"))
  notes = {name.split("-")[0] for name in written}
  assert notes == {"000", "001", "002", "004"}
  assert {"004-ema.png", "004-bias-correction.png", "004-decay.png", "000-saddle.png",
          "000-local-minima.png", "002-batch-noise.png"} <= set(written)
  for name in written:
    assert (tmp_path / name).stat().st_size > 10_000
  assert len(capsys.readouterr().out.splitlines()) == len(written)


def test_the_module_runs_as_a_program(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "jaxopt_notes", "--optimizers", "adam", "--steps", "10",
       "--out", str(tmp_path)],
      capture_output=True, text=True, cwd=tmp_path,
  )
  assert result.returncode == 0, result.stderr
  assert "adam" in result.stdout
  assert (tmp_path / "anisotropic_bowl-paths.png").is_file()
  bad = subprocess.run([sys.executable, "-m", "jaxopt_notes", "--optimizers", "x"],
                       capture_output=True, text=True, cwd=tmp_path)
  assert bad.returncode == 2 and "valid names" in bad.stderr


def test_train_without_scikit_learn_says_what_to_install(monkeypatch, capsys):
  import importlib.util
  real = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *args: None if name == "sklearn" else real(name, *args))
  assert main(["train", "--epochs", "1", "--no-plots"]) == 1
  assert "pip install scikit-learn" in capsys.readouterr().err
