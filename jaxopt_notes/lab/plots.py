"""The notes' figures, drawn with matplotlib from the lab's results.

Every function returns a :class:`matplotlib.figure.Figure` built directly,
with its own Agg canvas: nothing here touches pyplot's global state or the
backend a user has chosen, so these work in scripts, in tests, in a headless
``python -m jaxopt_notes`` and in notebooks alike. :func:`save` writes a PNG;
:func:`show` displays a figure in Jupyter or Colab.

* :func:`contour`, :func:`path_panels`: optimizer paths over a problem's level
  sets (note 001's anisotropy figures; notes 000 and 002's zig-zag, saddle
  and local minima);
* :func:`loss_curves`: loss against step on a log scale (symmetric log for
  a problem without a minimum, whose loss can fall without bound);
* :func:`curves`, :func:`schedules`: any series, e.g. note 004's learning
  rate decays;
* :func:`ema`, :func:`ema_bias`: note 004's daily temperatures and their
  exponentially weighted averages, with and without bias correction;
* :func:`batch_noise`: gradient variance against batch size (note 002);
* :func:`training_curves`: held-out accuracy and loss per epoch.

Importing this module imports matplotlib (the rest of the package does not).
"""

from __future__ import annotations

import io
import pathlib
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from jaxopt_notes.lab import problems as lab

__all__ = [
    "batch_noise",
    "contour",
    "curves",
    "ema",
    "ema_bias",
    "figure",
    "loss_curves",
    "path_panels",
    "png_bytes",
    "save",
    "schedules",
    "show",
    "training_curves",
]

PathLike = Union[str, pathlib.Path]
# The paths' markers; "*" and "P" are kept for the global and local minima.
_MARKERS = "os^vD<>phd"
# Above the paths (lines are drawn at zorder 2): a minimum stays visible where
# the paths converge onto it.
MARKER_ZORDER = 5


def figure(width: float = 6.4, height: float = 4.8, dpi: int = 100) -> Figure:
  """A new figure of ``width x height`` inches at ``dpi``, on its own Agg canvas.

  Saved with :func:`save`, its PNG is ``width * dpi`` by ``height * dpi``
  pixels (defaults: matplotlib's 6.4 x 4.8 in at 100 dpi, 640 x 480).
  """
  fig = Figure(figsize=(width, height), dpi=dpi)
  FigureCanvasAgg(fig)
  return fig


def save(fig: Figure, path: PathLike) -> pathlib.Path:
  """Writes ``fig`` as a PNG at its own size and dpi; creates parent folders.

  Returns the path written.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, format="png", dpi=fig.dpi)
  return path


def png_bytes(fig: Figure) -> bytes:
  """``fig`` encoded as PNG."""
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=fig.dpi)
  return buf.getvalue()


def show(fig: Figure) -> None:
  """Displays ``fig`` as an image in IPython (Jupyter, Colab); else does nothing."""
  try:
    from IPython import get_ipython
    from IPython.display import Image, display
  except ImportError:
    return
  if get_ipython() is not None:
    display(Image(data=png_bytes(fig), format="png"))


# ---- paths on level sets -----------------------------------------------------------


def _grid(problem: lab.Problem, resolution: int):
  (x0, x1), (y0, y1) = problem.bounds
  xs, ys = np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution)
  gx, gy = np.meshgrid(xs, ys)
  points = jnp.asarray(np.stack([gx.ravel(), gy.ravel()], axis=1), jnp.float32)
  z = np.asarray(jax.jit(jax.vmap(problem.loss))(points), np.float64).reshape(gx.shape)
  return gx, gy, z


def _draw_levels(ax, problem: lab.Problem, resolution: int, levels: int) -> None:
  gx, gy, z = _grid(problem, resolution)
  if problem.minimum is not None:
    # Level sets of the gap f - f*, spaced geometrically: even rings near
    # the minimum and on the steep walls (the notes' contour pictures).
    gap = np.maximum(z - problem.min_loss, 1e-12)
    lo, hi = max(np.percentile(gap, 0.5), 1e-4 * np.max(gap)), np.max(gap)
    ax.contour(gx, gy, gap, levels=np.geomspace(lo, hi, levels), cmap="viridis",
               norm=LogNorm(lo, hi), linewidths=0.8)
  else:
    ax.contour(gx, gy, z, levels=levels, cmap="viridis", linewidths=0.8)
  minima = problem.all_minima
  for i, m in enumerate(minima):
    kind = "minimum" if len(minima) == 1 else ("global minimum" if i == 0 else "local minimum")
    ax.plot(*m, marker="*" if i == 0 else "P", color="k", markeredgecolor="w", markersize=14,
            linestyle="none", label=kind, gid=kind, zorder=MARKER_ZORDER)
  for i, s in enumerate(problem.saddles):
    ax.plot(*s, marker="X", color="k", markeredgecolor="w", markersize=10, linestyle="none",
            label="saddle point" if i == 0 else None, gid="saddle point", zorder=MARKER_ZORDER)
  (x0, x1), (y0, y1) = problem.bounds
  ax.set_xlim(x0, x1)
  ax.set_ylim(y0, y1)
  ax.set_xlabel("x")
  ax.set_ylabel("y")


def _draw_path(ax, path, label: Optional[str], index: int, markevery: int = 1) -> None:
  path = np.asarray(path, np.float64)
  path = path[np.isfinite(path).all(axis=1)]
  ax.plot(path[:, 0], path[:, 1], marker=_MARKERS[index % len(_MARKERS)], markersize=3,
          markevery=markevery, linewidth=1.2, label=label, color=f"C{index % 10}")
  ax.plot(*path[0], marker="o", color="k", markersize=5, fillstyle="none", linestyle="none",
          label="start" if index == 0 and label is not None else None, gid="start")


def contour(
    problem: lab.Problem,
    paths: Optional[Mapping[str, Any]] = None,
    *,
    title: Optional[str] = None,
    levels: int = 25,
    resolution: int = 200,
    width: float = 7.0,
    height: float = 5.0,
    dpi: int = 100,
) -> Figure:
  """The level sets of ``problem`` over its plotting window, with optimizer paths.

  Note 001's anisotropy figure when ``problem`` is the bowl and ``paths`` is
  :func:`~jaxopt_notes.lab.compare`'s output. The global minimiser is a star,
  a local one a filled plus, saddle points crosses (each named in the legend
  and drawn above the paths), start points open circles; iterates that left
  the floats are dropped. Levels are geometric in ``f - f*`` (linear in ``f``
  when the problem has no minimum). The title defaults to ``problem.title``
  (its name and formula in mathtext).
  """
  fig = figure(width, height, dpi)
  ax = fig.add_subplot()
  _draw_levels(ax, problem, resolution, levels)
  for i, (name, path) in enumerate((paths or {}).items()):
    _draw_path(ax, path, name, i, markevery=max(1, len(path) // 100))
  if paths or problem.all_minima or problem.saddles:
    ax.legend(loc="best", fontsize=8)
  ax.set_title(title or problem.title, fontsize=10)
  fig.tight_layout()
  return fig


def path_panels(
    problem: lab.Problem,
    paths: Mapping[str, Any],
    *,
    ncols: int = 4,
    title: Optional[str] = None,
    levels: int = 20,
    resolution: int = 120,
    panel_size: float = 3.0,
    dpi: int = 100,
) -> Figure:
  """One panel per optimizer, each path on the level sets (note 001's per-method figures).

  Markers as in :func:`contour`; the figure's title defaults to ``problem.title``.
  """
  n = max(1, len(paths))
  ncols = min(ncols, n)
  nrows = -(-n // ncols)
  fig = figure(panel_size * ncols, panel_size * 0.8 * nrows, dpi)
  for i, (name, path) in enumerate(paths.items()):
    ax = fig.add_subplot(nrows, ncols, i + 1)
    _draw_levels(ax, problem, resolution, levels)
    _draw_path(ax, path, None, i, markevery=max(1, len(path) // 100))
    ax.set_title(name, fontsize=10)
  fig.suptitle(title or problem.title, fontsize=11)
  fig.tight_layout()
  return fig


def loss_curves(
    problem: lab.Problem,
    paths: Mapping[str, Any],
    *,
    log: bool = True,
    title: Optional[str] = None,
    width: float = 6.4,
    height: float = 4.0,
    dpi: int = 100,
) -> Figure:
  """``f(w_t) - f*`` against step ``t`` for each path (``f`` itself without a minimum).

  On a log scale by default, where linear convergence is a straight line
  whose slope shows the conditioning (note 002). Gaps below ``1e-14`` times
  the largest starting gap (float32 round-off, or an exact zero after a
  Newton step) are drawn at that floor. A problem without a minimum (the
  saddle) has no gap, and its loss can fall without bound, so one escaping
  run would flatten every other curve on a linear axis: ``f`` is drawn on a
  symmetric log axis, linear within 1% of the largest starting ``|f|`` of
  zero, and the title says so. ``log=False`` gives a linear axis in both
  cases. The title defaults to ``problem.title`` and the quantity drawn.
  """
  fig = figure(width, height, dpi)
  ax = fig.add_subplot()
  offset = problem.min_loss
  series = {name: np.asarray(lab.losses(problem, p), np.float64) for name, p in paths.items()}
  if offset is not None:
    top = max((abs(v[0] - offset) for v in series.values()), default=1.0)
    floor = 1e-14 * top if top > 0 else np.finfo(np.float32).tiny
    series = {name: np.maximum(v - offset, floor) for name, v in series.items()}
  for i, (name, values) in enumerate(series.items()):
    ax.plot(np.arange(len(values)), values, label=name, color=f"C{i % 10}", linewidth=1.2)
  if offset is not None:
    quantity = "$f(w_t) - f^*$ per step" + (", log axis" if log else "")
    if log:
      ax.set_yscale("log")
  else:
    quantity = "$f(w_t)$ per step"
    if log:
      starts = [abs(v[0]) for v in series.values() if len(v) and np.isfinite(v[0])]
      linthresh = 1e-2 * max(starts) if starts and max(starts) > 0 else 1.0
      ax.set_yscale("symlog", linthresh=linthresh)
      quantity += f", symmetric log axis (linear for $|f| < {linthresh:.2g}$)"
  ax.set_xlabel("step $t$")
  ax.set_ylabel("$f(w_t) - f^*$" if offset is not None else "$f(w_t)$")
  ax.set_title(title or f"{problem.title}\n{quantity}", fontsize=10)
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  return fig


# ---- series ----------------------------------------------------------------------


def curves(
    series: Mapping[str, Union[Sequence[float], jax.typing.ArrayLike]],
    *,
    x: Optional[Sequence[float]] = None,
    xlabel: str = "step",
    ylabel: str = "",
    log: bool = False,
    title: str = "",
    width: float = 6.4,
    height: float = 4.0,
    dpi: int = 100,
) -> Figure:
  """Several named series against a shared ``x`` (default ``0, 1, ...``)."""
  fig = figure(width, height, dpi)
  ax = fig.add_subplot()
  for i, (name, values) in enumerate(series.items()):
    values = np.asarray(values, np.float64)
    xs = np.arange(len(values)) if x is None else np.asarray(x)[: len(values)]
    ax.plot(xs, values, label=name, color=f"C{i % 10}", linewidth=1.4)
  if log:
    ax.set_yscale("log")
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=10)
  ax.grid(True, alpha=0.3)
  if series:
    ax.legend(fontsize=8)
  fig.tight_layout()
  return fig


def schedules(
    named: Mapping[str, Callable[[Any], Any]],
    steps: int,
    *,
    log: bool = False,
    title: str = "learning-rate schedules",
    **kwargs: Any,
) -> Figure:
  """Learning-rate schedules evaluated at ``0`` to ``steps - 1`` (note 004's decays)."""
  counts = jnp.arange(steps)
  series = {name: np.asarray(jax.vmap(s)(counts)) for name, s in named.items()}
  return curves(series, xlabel="step", ylabel="learning rate", log=log, title=title, **kwargs)


def ema(
    values: Any,
    betas: Sequence[float] = (0.5, 0.9, 0.98),
    *,
    bias_correction: bool = True,
    title: str = (r"daily temperature $\theta_t$ and its exponentially weighted averages "
                  r"$V_t = \beta V_{t-1} + (1 - \beta)\,\theta_t$"),
    width: float = 8.0,
    height: float = 4.5,
    dpi: int = 100,
) -> Figure:
  """Note 004's figure: a daily series as dots, its EMA for each ``beta`` as lines.

  ``beta = 0.5, 0.9, 0.98`` average about 2, 10 and 50 days: the larger
  ``beta``, the smoother the line and the later it follows a change.
  """
  values = np.asarray(values, np.float64)
  fig = figure(width, height, dpi)
  ax = fig.add_subplot()
  days = np.arange(1, len(values) + 1)
  ax.plot(days, values, ".", color="0.6", markersize=3, label=r"daily temperature $\theta_t$")
  for i, beta in enumerate(betas):
    smooth = lab.ema_series(values, beta, bias_correction)
    ax.plot(days, smooth, color=f"C{i % 10}", linewidth=1.6,
            label=rf"$\beta = {beta:g}$ (~{1 / (1 - beta):.0f} days)")
  ax.set_xlabel("day")
  ax.set_ylabel(r"temperature ($\degree$C)")
  ax.set_title(title, fontsize=10)
  ax.legend(fontsize=8)
  ax.grid(True, alpha=0.3)
  fig.tight_layout()
  return fig


def ema_bias(
    values: Any,
    beta: float = 0.98,
    days: int = 60,
    *,
    width: float = 7.0,
    height: float = 4.0,
    dpi: int = 100,
) -> Figure:
  """Note 004's bias correction: the EMA's first ``days`` values with and without it.

  Uncorrected, ``V_t = (1 - beta^t)`` times a weighted mean of the data, so
  it starts near 0 (the purple curve of the notes); ``V_t / (1 - beta^t)``
  follows the data from day 1.
  """
  values = np.asarray(values, np.float64)[:days]
  t = np.arange(1, len(values) + 1)
  fig = figure(width, height, dpi)
  ax = fig.add_subplot()
  ax.plot(t, values, ".", color="0.6", label=r"data $\theta_t$")
  ax.plot(t, lab.ema_series(values, beta, False), color="C4",
          label=r"$V_t$ (no correction)")
  ax.plot(t, lab.ema_series(values, beta, True), color="C2", label=r"$V_t / (1 - \beta^t)$")
  ax.set_xlabel("day")
  ax.set_ylabel(r"temperature ($\degree$C)")
  ax.set_title(rf"bias correction of the average $V_t$ ($\beta = {beta:g}$, first {len(values)} days)",
               fontsize=10)
  ax.legend(fontsize=8)
  ax.grid(True, alpha=0.3)
  fig.tight_layout()
  return fig


def batch_noise(
    batch_sizes: Sequence[int],
    variances: Sequence[float],
    *,
    width: float = 6.0,
    height: float = 4.0,
    dpi: int = 100,
) -> Figure:
  """Gradient variance against batch size on log-log axes, with the ``sigma^2 / n`` line.

  The reference line goes through the first point; note 002's standard
  error ``sigma / sqrt(n)`` predicts slope -1.
  """
  n = np.asarray(batch_sizes, np.float64)
  v = np.asarray(variances, np.float64)
  fig = figure(width, height, dpi)
  ax = fig.add_subplot()
  ax.loglog(n, v, "o-", label="measured variance of the minibatch gradient")
  ax.loglog(n, v[0] * n[0] / n, "k--", linewidth=1, label=r"$\propto \sigma^2 / n$")
  ax.set_xlabel("batch size $n$")
  ax.set_ylabel(r"$E\,\|g_B - \nabla f\|^2$")
  ax.set_title(r"gradient noise against batch size: $E\,\|g_B - \nabla f\|^2 \propto \sigma^2 / n$",
               fontsize=10)
  ax.legend(fontsize=8)
  ax.grid(True, which="both", alpha=0.3)
  fig.tight_layout()
  return fig


def training_curves(
    histories: Mapping[str, Mapping[str, Sequence[float]]],
    *,
    title: str = "digits MLP: held-out accuracy and loss per epoch",
    width: float = 10.0,
    height: float = 4.0,
    dpi: int = 100,
) -> Figure:
  """Held-out accuracy and loss per epoch, one line per optimizer.

  ``histories[name]`` has ``"epoch"``, ``"val_accuracy"`` and ``"val_loss"``
  (as returned by ``python -m jaxopt_notes train``'s training function).
  ``title`` heads the figure (the command line adds the layer sizes and
  batch size).
  """
  fig = figure(width, height, dpi)
  acc_ax, loss_ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
  for i, (name, h) in enumerate(histories.items()):
    acc_ax.plot(h["epoch"], h["val_accuracy"], "o-", color=f"C{i % 10}", label=name,
                markersize=3)
    loss_ax.plot(h["epoch"], h["val_loss"], "o-", color=f"C{i % 10}", label=name,
                 markersize=3)
  acc_ax.set_ylabel("held-out accuracy")
  loss_ax.set_ylabel("held-out loss")
  loss_ax.set_yscale("log")
  for ax in (acc_ax, loss_ax):
    ax.set_xlabel("epoch")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
  fig.suptitle(title, fontsize=11)
  fig.tight_layout()
  return fig
