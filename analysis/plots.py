"""PNG plots from run and comparison directories (matplotlib, headless Agg backend).

Inputs become *series*: a run directory is one series (one run); a comparison directory
gives one series per grid cell, labelled by its varied values, whose repeats are
averaged round by round (round ``r``'s mean end time and mean accuracy over the repeats
that reached round ``r``), or one series per run with ``each_run=True``.

Every figure is ``FIGSIZE`` inches at ``DPI`` (800 × 500 pixels), axis labels carry
units, and each has a legend. ``timeline.png`` and ``map.png`` show one *chosen run*
(the first run of the first input unless given). Mobility trajectories are not traced,
so ``map.png`` shows final device positions (``devices`` table ``x_m``/``y_m``) only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after selecting the backend
import numpy as np  # noqa: E402
from cycler import cycler  # noqa: E402 - matplotlib's own dependency
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from analysis.async_plots import plot_availability, plot_staleness_hist  # noqa: E402
from analysis.io import (  # noqa: E402
    as_float, is_comparison_dir, is_run_dir, read_comparison, read_scenario, read_trace, require_finished,
)
from analysis.table import short_key  # noqa: E402

FIGSIZE = (8.0, 5.0)
DPI = 100
PLOTS = ("accuracy_vs_time", "accuracy_vs_rounds", "energy_vs_accuracy", "energy_cdf",
         "bytes_per_round", "timeline", "map", "staleness_hist", "availability")
PHASES = (("dl_end", "download", "tab:blue"), ("compute_end", "compute", "tab:orange"), ("ul_end", "upload", "tab:green"))


@dataclass(frozen=True)
class Series:
    """One plotted line: a label and the run directories averaged into it."""

    label: str
    runs: tuple[Path, ...]


def collect_series(paths: Sequence[str | Path], each_run: bool = False) -> list[Series]:
    """Series for run directories and comparison directories (see the module docstring)."""
    series: list[Series] = []
    for raw in paths:
        path = Path(raw)
        if is_comparison_dir(path):
            comp = read_comparison(path)
            for cell in comp.cells():
                label = ", ".join(f"{short_key(k)}={v}" for k, v in zip(comp.varied, cell)) or path.name
                rows = comp.rows_of(cell)
                if each_run:
                    series += [Series(f"{label} rep{int(row.repeat)}", (comp.run_dir(row.run_dir),))
                               for row in rows.itertuples()]
                else:
                    series.append(Series(label, tuple(comp.run_dir(d) for d in rows["run_dir"])))
        elif is_run_dir(path):
            require_finished(path)
            series.append(Series(path.resolve().name or str(path), (path,)))
        else:
            raise FileNotFoundError(2, "neither a run directory nor a comparison directory", str(path))
    labels = [s.label for s in series]
    return [Series(f"{s.label} ({s.runs[0]})", s.runs) if labels.count(s.label) > 1 else s for s in series]


def mean_rounds(runs: Sequence[Path]) -> pd.DataFrame:
    """Round-by-round mean over runs of ``end_s``, ``accuracy``, cumulative energy and bytes.

    Rounds are aligned by position (each run's rounds sorted by ``round``); a round's
    mean is over the runs that reached it and have a finite value there. Columns:
    ``round`` (0, 1, ...), ``end_s``, ``accuracy``, ``energy_j``, ``uplink_bytes``,
    ``downlink_bytes``, ``cum_energy_j`` (each run's running total, then averaged).
    """
    names = ["end_s", "accuracy", "energy_j", "uplink_bytes", "downlink_bytes"]
    frames = []
    for run in runs:
        rounds = read_trace(run, "rounds").sort_values("round", kind="stable")
        own = rounds[names].astype("float64").reset_index(drop=True)
        own["cum_energy_j"] = own["energy_j"].cumsum(skipna=False)
        frames.append(own)
    if not frames:
        return pd.DataFrame({"round": np.arange(0), **{n: [] for n in [*names, "cum_energy_j"]}})
    stacked = pd.concat(frames).replace([np.inf, -np.inf], np.nan)
    mean = stacked.groupby(level=0).mean()
    mean.insert(0, "round", mean.index.to_numpy())
    return mean.reset_index(drop=True)


def run_name(run: Path) -> str:
    """Short name of a run: ``<cell>/<repN>`` inside a comparison (``<comparison>/<repN>``
    when nothing was varied, whose only cell is ``base``), else the directory name."""
    resolved = run.resolve()
    if resolved.name.startswith("rep") and resolved.parent.parent.name == "cells":
        cell = resolved.parent.name
        if cell == "base" and resolved.parent.parent.parent.name:
            cell = resolved.parent.parent.parent.name
        return f"{cell}/{resolved.name}"
    return resolved.name


def _figure() -> tuple[Figure, Axes]:
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    # 10 colours, solid first, then dashed and dotted: up to 30 series stay distinguishable
    # (the default cycle repeats its first colour at the 11th line)
    ax.set_prop_cycle(cycler(linestyle=["-", "--", ":"]) * cycler(color=plt.get_cmap("tab10").colors))
    return fig, ax


def _finish(fig: Figure, ax: Axes, path: Path, empty_note: str | None = None, outside: bool = False) -> Path:
    handles, _ = ax.get_legend_handles_labels()
    if handles and outside:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", borderaxespad=0.0)
    elif handles:
        ax.legend(loc="best", fontsize="small")
    else:
        ax.plot([], [], " ", label=empty_note or "no data")
        ax.legend(loc="center")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _line(ax: Axes, x: np.ndarray, y: np.ndarray, label: str, **kwargs: object) -> bool:
    keep = np.isfinite(x) & np.isfinite(y)
    if not keep.any():
        return False
    style: dict[str, object] = {"marker": "o", "markersize": 3, **kwargs}
    ax.plot(x[keep], y[keep], label=label, **style)  # type: ignore[arg-type]
    return True


_NO_ACC = "no accuracy in the traces (surrogate mode?)"


def plot_accuracy_vs_time(series: Sequence[Series], path: Path) -> Path:
    """Accuracy [%] against simulated time at each round's end [s]."""
    fig, ax = _figure()
    for s in series:
        m = mean_rounds(s.runs)
        _line(ax, m["end_s"].to_numpy(), 100 * m["accuracy"].to_numpy(), s.label)
    ax.set(xlabel="simulated time [s]", ylabel="accuracy [%]", title="accuracy vs simulated time")
    return _finish(fig, ax, path, _NO_ACC)


def plot_accuracy_vs_rounds(series: Sequence[Series], path: Path) -> Path:
    """Accuracy [%] against round index."""
    fig, ax = _figure()
    for s in series:
        m = mean_rounds(s.runs)
        _line(ax, m["round"].to_numpy(float), 100 * m["accuracy"].to_numpy(), s.label)
    ax.set(xlabel="round [index]", ylabel="accuracy [%]", title="accuracy vs rounds")
    return _finish(fig, ax, path, _NO_ACC)


def plot_energy_vs_accuracy(series: Sequence[Series], path: Path) -> Path:
    """Cumulative energy of all devices [J] against accuracy [%], points in round order."""
    fig, ax = _figure()
    for s in series:
        m = mean_rounds(s.runs)
        _line(ax, 100 * m["accuracy"].to_numpy(), m["cum_energy_j"].to_numpy(), s.label)
    ax.set(xlabel="accuracy [%]", ylabel="cumulative energy, all devices [J]", title="energy spent vs accuracy")
    return _finish(fig, ax, path, _NO_ACC)


def plot_energy_cdf(series: Sequence[Series], path: Path) -> Path:
    """Empirical CDF of per-device total energy (devices of all runs of a series pooled)."""
    fig, ax = _figure()
    for s in series:
        pooled = pd.concat([read_trace(r, "devices")["energy_j"].astype("float64") for r in s.runs])
        energy = np.sort(pooled[np.isfinite(pooled)].to_numpy())
        if energy.size:
            ax.step(energy, np.arange(1, energy.size + 1) / energy.size, where="post", label=s.label)
    ax.set(xlabel="per-device total energy [J]", ylabel="fraction of devices [-]", title="per-device energy CDF",
           ylim=(0, 1.02))
    return _finish(fig, ax, path)


def plot_bytes_per_round(series: Sequence[Series], path: Path) -> Path:
    """Uplink (solid) and downlink (dashed) bytes per round [MB]."""
    fig, ax = _figure()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, s in enumerate(series):
        m = mean_rounds(s.runs)
        color = colors[i % len(colors)]
        x = m["round"].to_numpy(float)
        _line(ax, x, m["uplink_bytes"].to_numpy() / 1e6, f"{s.label} uplink", color=color)
        _line(ax, x, m["downlink_bytes"].to_numpy() / 1e6, f"{s.label} downlink", color=color, linestyle="--",
              marker="s", markersize=6, markerfacecolor="none")
    ax.set(xlabel="round [index]", ylabel="bytes per round [MB]", title="uplink / downlink bytes per round")
    return _finish(fig, ax, path)


def phase_intervals(events: pd.DataFrame, round_index: int) -> list[tuple[int, str, float, float]]:
    """``(device, phase, start_s, end_s)`` of round ``round_index``: ``*_end`` time minus its duration."""
    in_round = events[events["round"] == round_index]
    out: list[tuple[int, str, float, float]] = []
    for kind, label, _color in PHASES:
        ends = in_round[in_round["kind"] == kind]
        out += [(int(dev), label, float(end) - float(dur), float(end))
                for end, dur, dev in zip(ends["time_s"], ends["duration_s"], ends["device"])]
    return out


def plot_timeline(run: Path, path: Path, round_index: int = 0) -> Path:
    """Per-device download/compute/upload bars of one round (see :func:`phase_intervals`)."""
    events = read_trace(run, "events")
    present = sorted(int(r) for r in events["round"].unique())
    if round_index not in present:
        span = f"{present[0]}..{present[-1]}" if present else "none"
        raise ValueError(f"--round {round_index}: not in {run} (rounds {span})")
    fig, ax = _figure()
    intervals = phase_intervals(events, round_index)
    devices = sorted({dev for dev, *_ in intervals})
    row = {d: i for i, d in enumerate(devices)}
    color = {label: c for _kind, label, c in PHASES}
    for dev, label, start, end in intervals:
        ax.broken_barh([(start, end - start)], (row[dev] - 0.35, 0.7), facecolors=color[label])
    in_round = events[(events["round"] == round_index) & events["device"].isin(devices)]
    for kind, marker in (("straggler", "x"), ("dropout", "v")):
        marked = in_round[in_round["kind"] == kind]
        if len(marked):
            ys = [row[int(d)] for d in marked["device"]]
            ax.scatter(marked["time_s"].to_numpy(float), ys, marker=marker, color="red", zorder=3, label=kind)
    extra, _labels = ax.get_legend_handles_labels()
    ax.set_yticks(range(len(devices)), [str(d) for d in devices])
    ax.set(xlabel="simulated time [s]", ylabel="device [id]", title=f"round {round_index} timeline: {run_name(run)}")
    if devices:
        phases = [Patch(color=c, label=label) for _kind, label, c in PHASES]
        ax.legend(handles=[*phases, *extra], loc="best", fontsize="small")
    else:
        ax.legend(handles=[Patch(color="none", label="no device finished a phase in this round")], loc="center")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def map_figure(run: Path) -> Figure:
    """The ``map.png`` figure: base stations and final device positions, coloured by serving cell.

    The legend sits outside the axes on the right; the figure uses matplotlib's
    constrained layout, which shrinks the axes until the legend fits inside the
    figure (long cell names included).
    """
    scenario = read_scenario(run)
    devices = read_trace(run, "devices")
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    area = scenario.get("area") or {}
    width, height = as_float(area.get("width_m")), as_float(area.get("height_m"))
    if math.isfinite(width) and math.isfinite(height):
        ax.add_patch(plt.Rectangle((0, 0), width, height, fill=False, linestyle=":", color="gray", label="area"))
        ax.set_xlim(-0.05 * width, 1.05 * width)
        ax.set_ylim(-0.05 * height, 1.05 * height)
    cells = scenario.get("cells") or []
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    cell_of = devices["cell"].to_numpy(int)
    x, y = devices["x_m"].to_numpy(float), devices["y_m"].to_numpy(float)
    for i, cell in enumerate(cells):
        color = colors[i % len(colors)]
        ax.scatter([as_float(cell.get("x_m"))], [as_float(cell.get("y_m"))], marker="^", s=160, color=color,
                   edgecolors="black", zorder=3, label=f"base station {cell.get('name', i)}")
        mine = cell_of == i
        if mine.any():
            ax.scatter(x[mine], y[mine], s=18, color=color, alpha=0.8, label=f"devices on {cell.get('name', i)}")
    orphan = (cell_of < 0) | (cell_of >= len(cells))
    if orphan.any():
        ax.scatter(x[orphan], y[orphan], s=18, color="gray", label="devices, no cell")
    ax.set_aspect("equal", adjustable="box")
    ax.set(xlabel="x [m]", ylabel="y [m]",
           title=f"cells and devices (final positions; trajectories not traced): {run_name(run)}")
    ax.title.set_fontsize("medium")
    ax.grid(True, alpha=0.3)
    fig.legend(loc="outside right upper", fontsize="small")
    return fig


def plot_map(run: Path, path: Path) -> Path:
    """Write :func:`map_figure` of ``run`` to ``path`` (PNG, :data:`FIGSIZE` at :data:`DPI`)."""
    fig = map_figure(run)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_all(
    paths: Sequence[str | Path],
    out: str | Path,
    round_index: int = 0,
    run: str | Path | None = None,
    each_run: bool = False,
) -> list[Path]:
    """Write every plot of :data:`PLOTS` into ``out``; returns the PNG paths."""
    series = collect_series(paths, each_run)
    if not series:
        raise ValueError("no runs to plot")
    chosen = Path(run) if run is not None else series[0].runs[0]
    if not is_run_dir(chosen):
        raise FileNotFoundError(2, "not a run directory", str(chosen))
    require_finished(chosen)
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    return [
        plot_accuracy_vs_time(series, target / "accuracy_vs_time.png"),
        plot_accuracy_vs_rounds(series, target / "accuracy_vs_rounds.png"),
        plot_energy_vs_accuracy(series, target / "energy_vs_accuracy.png"),
        plot_energy_cdf(series, target / "energy_cdf.png"),
        plot_bytes_per_round(series, target / "bytes_per_round.png"),
        plot_timeline(chosen, target / "timeline.png", round_index),
        plot_map(chosen, target / "map.png"),
        plot_staleness_hist(series, target / "staleness_hist.png"),
        plot_availability(chosen, target / "availability.png"),
    ]
