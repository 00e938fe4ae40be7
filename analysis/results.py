"""The PFL-TPS results table: the method against FedAvg, local training and its own ablations.

Reads finished run directories only. Each run is named on the command line by its
role; ``pfl_tps`` and ``fedavg`` are required, the others optional:

    python -m analysis results pfl_tps=RUN fedavg=RUN [local=RUN] [no_pruning=RUN] [LABEL=RUN]...

Rows: final accuracy (mean per-device test accuracy for personalized algorithms, and
FedAvg's global model), bytes per participating device per round (uplink, downlink,
relative to FedAvg), FFL sparsity (after the last round, and time-averaged over every
training step of the run: what sets the compute cost), threshold resets (layers that
fell to <= 1 % density and were reset to dense), simulated energy and time to finish all rounds
(and their ratio to FedAvg). With ``no_pruning`` it also gives the accuracy cost of
pruning in points.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from analysis.io import as_float, read_summary, read_trace
from analysis.table import render


@dataclass(frozen=True)
class RunFigures:
    """The numbers of one run that the results table needs."""

    label: str
    algorithm: str
    accuracy: float
    global_accuracy: float
    uplink_per_update_bytes: float
    downlink_per_update_bytes: float
    ffl_sparsity: float
    mean_ffl_sparsity: float
    threshold_resets: float
    energy_j: float
    sim_time_s: float


def run_figures(label: str, run_dir: str | Path) -> RunFigures:
    """Read one run directory's summary and rounds table."""
    summary = read_summary(run_dir)
    rounds = read_trace(run_dir, "rounds")
    updates = float(rounds["completed"].sum())
    density = as_float(summary.get("final_ffl_density"))
    mean_density = as_float(summary.get("mean_ffl_density"))
    return RunFigures(
        label=label,
        algorithm=str(summary.get("algorithm", "?")),
        accuracy=as_float(summary.get("final_accuracy")),
        global_accuracy=as_float(summary.get("final_global_accuracy")),
        uplink_per_update_bytes=float(rounds["uplink_bytes"].sum()) / updates if updates else math.nan,
        downlink_per_update_bytes=float(rounds["downlink_bytes"].sum()) / updates if updates else math.nan,
        ffl_sparsity=1.0 - density if math.isfinite(density) else math.nan,
        mean_ffl_sparsity=1.0 - mean_density if math.isfinite(mean_density) else math.nan,
        threshold_resets=as_float(summary.get("threshold_resets")),
        energy_j=as_float(summary.get("energy_j")),
        sim_time_s=as_float(summary.get("sim_time_s")),
    )


def _num(value: float, fmt: str) -> str:
    return "n/a" if not math.isfinite(value) else format(value, fmt)


def results_table(runs: Mapping[str, str | Path], fmt: str = "markdown") -> str:
    """The table for the runs named by role; `runs` must contain ``pfl_tps`` and ``fedavg``."""
    missing = [role for role in ("pfl_tps", "fedavg") if role not in runs]
    if missing:
        raise ValueError(f"results needs runs named {' and '.join(missing)} (e.g. pfl_tps=runs/x)")
    figures = [run_figures(label, path) for label, path in runs.items()]
    fedavg = next(f for f in figures if f.label == "fedavg")
    dense = next((f for f in figures if f.label == "no_pruning"), None)
    headers = ["run", "algorithm", "accuracy", "vs FedAvg global [points]", "uplink/update [B]", "uplink vs FedAvg",
               "downlink/update [B]", "downlink vs FedAvg", "FFL sparsity (final)", "FFL sparsity (time avg)",
               "threshold resets", "energy [J]", "energy vs FedAvg",
               "sim time [s]", "time vs FedAvg"]
    rows = []
    for f in figures:
        rows.append([
            f.label, f.algorithm, _num(f.accuracy, ".4f"),
            _num(100 * (f.accuracy - fedavg.global_accuracy), "+.1f"),
            _num(f.uplink_per_update_bytes, ",.0f"), _num(f.uplink_per_update_bytes / fedavg.uplink_per_update_bytes, ".2%"),
            _num(f.downlink_per_update_bytes, ",.0f"),
            _num(f.downlink_per_update_bytes / fedavg.downlink_per_update_bytes, ".2f") + "x",
            _num(f.ffl_sparsity, ".1%"), _num(f.mean_ffl_sparsity, ".1%"), _num(f.threshold_resets, ",.0f"),
            _num(f.energy_j, ",.1f"), _num(f.energy_j / fedavg.energy_j, ".3f"),
            _num(f.sim_time_s, ",.1f"), _num(f.sim_time_s / fedavg.sim_time_s, ".3f"),
        ])
    table = render(headers, rows, fmt)
    pfl = next(f for f in figures if f.label == "pfl_tps")
    notes = [f"FedAvg's global model: accuracy {_num(fedavg.global_accuracy, '.4f')}."]
    if dense is not None:
        cost = 100 * (dense.accuracy - pfl.accuracy)
        verb = "costs" if not cost < 0 else "gains"
        notes.append(f"Pruning {verb} {_num(abs(cost), '.2f')} accuracy points "
                     f"at {_num(pfl.ffl_sparsity, '.1%')} FFL sparsity (against `no_pruning`).")
    return table + "\n\n" + "\n".join(notes)
