"""Plots of the asynchronous server modes and of device availability (from traces only).

- ``staleness_hist.png``: the staleness of every applied update (the ``updates`` table
  the non-sync modes write), one histogram per series; a sync run applies every update
  with staleness 0 and writes no ``updates`` table, so it contributes a bar at 0 of
  height = the ``ul_end`` events it aggregated.
- ``availability.png``: for one run, each device's available intervals (rebuilt from its
  ``available``/``unavailable`` events, the first of which, at t = 0 with detail
  ``initial``, gives its starting state) and, on top, its updates from ``selected`` to
  the event that ended them (``ul_end``, ``dropout``, ``straggler``, ``cancelled``).
  Without availability events every device is available throughout.

Accuracy against simulated time for several modes on one figure is
``accuracy_vs_time.png`` of a comparison directory made with ``--vary fl.mode=...``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from analysis.io import find_table, read_table_file, read_trace  # noqa: E402

FIGSIZE = (8.0, 5.0)
DPI = 100
#: Events that end a device's update.
UPDATE_ENDS = ("ul_end", "dropout", "straggler", "cancelled")


def read_updates(run: Path) -> pd.DataFrame | None:
    """The ``updates`` table of a run (non-sync modes), or None when it has none."""
    try:
        return read_table_file(find_table(run, "updates"))
    except FileNotFoundError:
        return None


def staleness_values(run: Path) -> np.ndarray:
    """Staleness of every applied update of a run, shape (updates,); sync: zeros, one per upload."""
    updates = read_updates(run)
    if updates is not None:
        return updates["staleness"].to_numpy(dtype=float)
    events = read_trace(run, "events")
    return np.zeros(int((events["kind"] == "ul_end").sum()))


def plot_staleness_hist(series: Sequence, path: Path) -> Path:
    """Histogram of update staleness [model versions] per series (all its runs pooled)."""
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    pooled = [(s.label, np.concatenate([staleness_values(r) for r in s.runs])) for s in series]
    top = max([int(v.max()) for _, v in pooled if v.size] + [0])
    bins = np.arange(-0.5, top + 1.5, 1.0)
    width = 0.8 / max(len(pooled), 1)
    for i, (label, values) in enumerate(pooled):
        if not values.size:
            continue
        counts, _ = np.histogram(values, bins=bins)
        x = np.arange(top + 1) - 0.4 + (i + 0.5) * width
        ax.bar(x, counts / values.size, width=width,
               label=f"{label} (mean {values.mean():.2f}, max {int(values.max())}, n={values.size})")
    ax.set_xticks(range(top + 1))
    ax.set(xlabel="staleness [model versions]", ylabel="fraction of applied updates [-]",
           title="staleness of applied updates")
    if not any(v.size for _, v in pooled):
        ax.plot([], [], " ", label="no applied updates")
    ax.legend(loc="best", fontsize="small")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def availability_intervals(events: pd.DataFrame, devices: Sequence[int], end_s: float) -> list[tuple[int, float, float]]:
    """``(device, start_s, end_s)`` of every available interval, from availability events.

    A device with no availability event is available on [0, end_s].
    """
    marks = events[events["kind"].isin(["available", "unavailable"])]
    out: list[tuple[int, float, float]] = []
    for d in devices:
        mine = marks[marks["device"] == d]
        if mine.empty:
            out.append((int(d), 0.0, end_s))
            continue
        on_since: float | None = None
        for time_s, kind in zip(mine["time_s"].to_numpy(float), mine["kind"].astype(str)):
            if kind == "available" and on_since is None:
                on_since = time_s
            elif kind == "unavailable" and on_since is not None:
                out.append((int(d), on_since, time_s))
                on_since = None
        if on_since is not None:
            out.append((int(d), on_since, end_s))
    return out


def update_intervals(events: pd.DataFrame) -> list[tuple[int, float, float, str]]:
    """``(device, start_s, end_s, how it ended)`` of every update: ``selected`` to its end event."""
    open_at: dict[int, float] = {}
    out: list[tuple[int, float, float, str]] = []
    for time_s, device, kind in zip(events["time_s"].to_numpy(float), events["device"].to_numpy(int),
                                    events["kind"].astype(str)):
        if kind == "selected":
            open_at[device] = time_s
        elif kind in UPDATE_ENDS and device in open_at:
            out.append((device, open_at.pop(device), time_s, kind))
    return out


def plot_availability(run: Path, path: Path, max_devices: int = 50) -> Path:
    """Availability timeline of one run (first `max_devices` devices): available intervals
    (light) and updates (dark; red when they ended in a dropout)."""
    events = read_trace(run, "events")
    devices = sorted(int(d) for d in read_trace(run, "devices")["device"])[:max_devices]
    end_s = float(events["time_s"].max()) if len(events) else 0.0
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    for d, start, stop in availability_intervals(events, devices, end_s):
        ax.broken_barh([(start, stop - start)], (d - 0.4, 0.8), facecolors="tab:green", alpha=0.3)
    shown = set(devices)
    for d, start, stop, how in update_intervals(events):
        if d in shown:
            color = "tab:red" if how == "dropout" else "tab:blue"
            ax.broken_barh([(start, stop - start)], (d - 0.2, 0.4), facecolors=color)
    ax.legend(handles=[Patch(color="tab:green", alpha=0.3, label="available"),
                       Patch(color="tab:blue", label="update (selected to end)"),
                       Patch(color="tab:red", label="update cut by a dropout")], loc="upper right", fontsize="small")
    ax.set(xlabel="simulated time [s]", ylabel="device [id]", title=f"device availability: {Path(run).resolve().name}",
           xlim=(0, max(end_s, 1e-9)))
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
