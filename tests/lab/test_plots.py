"""The plotting functions write real PNGs, at the asked size, without pyplot."""

from __future__ import annotations

import subprocess
import sys

import matplotlib
import matplotlib.image
import numpy as np
import pytest

from jaxopt_notes import lab, schedules
from jaxopt_notes.lab import plots


def _bowl_paths():
  return lab.compare(["sgd", "adam"], lab.anisotropic_bowl(), steps=30)


FIGURES = {
    "contour": lambda: plots.contour(lab.anisotropic_bowl(), _bowl_paths(), width=6, height=4),
    "contour_saddle": lambda: plots.contour(
        lab.saddle(), {"sgd": lab.trajectory("sgd", lab.saddle())}, dpi=80),
    "panels": lambda: plots.path_panels(lab.double_well(), {
        "sgd": lab.trajectory("sgd", lab.double_well()),
        "momentum": lab.trajectory("momentum", lab.double_well()),
        "adam": lab.trajectory("adam", lab.double_well()),
    }, ncols=2, panel_size=2.5),
    "loss": lambda: plots.loss_curves(lab.anisotropic_bowl(), _bowl_paths()),
    "curves": lambda: plots.curves({"a": [1, 2, 3], "b": [3, 2, 1]}, ylabel="y", log=True),
    "schedules": lambda: plots.schedules({
        "inverse time": schedules.inverse_time_decay(0.2, 1.0),
        "step": schedules.step_decay(0.2, 0.5, 10),
    }, 50),
    "ema": lambda: plots.ema(lab.london_temperatures()),
    "ema_bias": lambda: plots.ema_bias(lab.london_temperatures(), 0.98, 40),
    "batch_noise": lambda: plots.batch_noise([1, 4, 16], [2.0, 0.5, 0.125]),
    "training": lambda: plots.training_curves({
        "sgd": {"epoch": [1, 2], "val_accuracy": [0.5, 0.8], "val_loss": [1.0, 0.5]},
        "adam": {"epoch": [1, 2], "val_accuracy": [0.6, 0.9], "val_loss": [0.9, 0.3]},
    }),
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figures_are_written_as_pngs_of_their_size(name, tmp_path):
  fig = FIGURES[name]()
  path = plots.save(fig, tmp_path / "sub" / f"{name}.png")
  assert path.is_file() and path.stat().st_size > 5_000
  image = matplotlib.image.imread(path)
  width, height = fig.get_size_inches()
  assert image.shape == (round(height * fig.dpi), round(width * fig.dpi), 4)
  # Something was drawn: not a blank canvas.
  assert np.std(image[..., :3]) > 0.02


def test_contour_marks_minima_and_drops_non_finite_points():
  problem = lab.double_well()
  path = np.asarray(lab.trajectory("sgd", problem, steps=20))
  broken = np.concatenate([path, np.full((3, 2), np.nan)])
  fig = plots.contour(problem, {"sgd": broken})
  ax = fig.axes[0]
  drawn = [line for line in ax.get_lines() if line.get_label() == "sgd"][0]
  assert len(drawn.get_xdata()) == len(path)
  minima = [line for line in ax.get_lines() if line.get_gid() in ("global minimum", "local minimum")]
  assert len(minima) == len(problem.all_minima)
  assert ax.get_xlim() == problem.bounds[0]


def _markers(ax, gid):
  return [line for line in ax.get_lines() if line.get_gid() == gid]


@pytest.mark.parametrize("name", ["anisotropic_bowl", "double_well", "saddle"])
def test_minima_and_saddles_are_drawn_above_every_path(name):
  problem = lab.get_problem(name)
  paths = lab.compare(["sgd", "momentum", "adam"], problem, steps=40)
  for fig in (plots.contour(problem, paths), plots.path_panels(problem, paths)):
    for ax in fig.axes:
      special = [line for line in ax.get_lines()
                 if line.get_gid() in ("minimum", "global minimum", "local minimum", "saddle point")]
      assert len(special) == len(problem.all_minima) + len(problem.saddles)
      path_lines = [line for line in ax.get_lines() if line.get_gid() is None]
      assert path_lines
      assert min(m.get_zorder() for m in special) > max(p.get_zorder() for p in path_lines)


def test_the_double_wells_minima_have_different_markers_and_labels():
  problem = lab.double_well()
  ax = plots.contour(problem, {"sgd": lab.trajectory("sgd", problem)}).axes[0]
  (glob,), (local,) = _markers(ax, "global minimum"), _markers(ax, "local minimum")
  assert glob.get_marker() != local.get_marker()
  np.testing.assert_allclose([glob.get_xdata()[0], glob.get_ydata()[0]], problem.all_minima[0])
  np.testing.assert_allclose([local.get_xdata()[0], local.get_ydata()[0]], problem.all_minima[1])
  legend = [t.get_text() for t in ax.get_legend().get_texts()]
  assert {"global minimum", "local minimum", "saddle point", "sgd"} <= set(legend)
  # No path shares a minimum's marker.
  path_markers = {line.get_marker() for line in ax.get_lines() if line.get_gid() is None}
  assert not path_markers & {glob.get_marker(), local.get_marker()}
  # A problem with one minimum just calls it the minimum.
  bowl = plots.contour(lab.anisotropic_bowl(), _bowl_paths()).axes[0]
  assert len(_markers(bowl, "minimum")) == 1 and not _markers(bowl, "local minimum")


@pytest.mark.parametrize("name", sorted(lab.PROBLEMS))
def test_titles_are_mathtext_formulas_not_internal_names(name):
  problem = lab.get_problem(name)
  paths = {"sgd": lab.trajectory("sgd", problem, steps=10)}
  titles = [plots.contour(problem, paths).axes[0].get_title(),
            plots.loss_curves(problem, paths).axes[0].get_title(),
            plots.path_panels(problem, paths).get_suptitle()]
  for title in titles:
    assert f"${problem.tex}$" in title, title
    assert problem.label in title and problem.name not in title.replace(problem.label, ""), title
    outside_math = title.split("$")[::2]
    assert not any("^" in part or "_" in part for part in outside_math), title
  # Every title renders: mathtext errors surface when the figure is drawn.
  plots.png_bytes(plots.contour(problem, paths))
  noisy = lab.noisy(problem, 2.0, 8)
  assert "$\\sigma = 2$" in noisy.title and "batch 8" in noisy.title


def test_a_problem_without_a_minimum_gets_a_symlog_loss_axis():
  saddle = lab.saddle()
  paths = lab.compare(["sgd", "momentum", "adam"], saddle)
  ax = plots.loss_curves(saddle, paths).axes[0]
  # Momentum falls to ~-4e7 while Adam stays near -10: on a linear axis only
  # one curve would be visible.
  assert ax.get_yscale() == "symlog"
  assert "symmetric log" in ax.get_title()
  np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), lab.losses(saddle, paths["sgd"]), rtol=1e-6)
  assert plots.loss_curves(saddle, paths, log=False).axes[0].get_yscale() == "linear"
  bowl = plots.loss_curves(lab.anisotropic_bowl(), _bowl_paths()).axes[0]
  assert bowl.get_yscale() == "log" and "log axis" in bowl.get_title()


def test_training_curves_have_a_title():
  history = {"sgd": {"epoch": [1, 2], "val_accuracy": [0.5, 0.8], "val_loss": [1.0, 0.5]}}
  assert "held-out accuracy" in plots.training_curves(history).get_suptitle()
  assert plots.training_curves(history, title="mine").get_suptitle() == "mine"


def test_loss_curves_are_gaps_on_a_log_scale():
  problem = lab.double_well()
  paths = {"sgd": lab.trajectory("sgd", problem, steps=20)}
  ax = plots.loss_curves(problem, paths).axes[0]
  assert ax.get_yscale() == "log"
  gaps = ax.get_lines()[0].get_ydata()
  expected = np.asarray(lab.losses(problem, paths["sgd"])) - problem.min_loss
  np.testing.assert_allclose(gaps[:5], expected[:5], rtol=1e-5)
  assert np.all(gaps > 0)


def test_png_bytes_and_show_outside_ipython():
  fig = plots.figure(2, 1, dpi=50)
  fig.add_subplot().plot([0, 1], [1, 0])
  assert plots.png_bytes(fig).startswith(b"\x89PNG\r\n\x1a\n")
  assert plots.show(fig) is None


def test_plots_leave_pyplot_and_the_backend_alone():
  code = (
      "import sys, matplotlib\n"
      "matplotlib.use('svg')\n"
      "from jaxopt_notes import lab\nfrom jaxopt_notes.lab import plots\n"
      "plots.contour(lab.anisotropic_bowl())\n"
      "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
      "assert 'matplotlib.pyplot' not in sys.modules\n"
  )
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
  assert result.returncode == 0, result.stderr


def test_the_lab_and_the_command_line_do_not_import_matplotlib():
  code = (
      "import sys\n"
      "from jaxopt_notes import lab\n"
      "from jaxopt_notes.lab.cli import main\n"
      "main(['lab', '--no-plots', '--steps', '3', '--optimizers', 'sgd'])\n"
      "assert 'matplotlib' not in sys.modules\n"
      "assert 'sklearn' not in sys.modules\n"
  )
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
  assert result.returncode == 0, result.stderr
  assert "sgd" in result.stdout
