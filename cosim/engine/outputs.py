"""Turn a finished `Simulation` into a run directory: traces, summary and manifest.

Everything that depends only on the scenario and seed goes into the trace tables and
`summary.json` (byte-identical across reruns); wall-clock facts go into
`manifest.json` only.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from cosim.engine.fleet import ENERGY_COMPONENTS
from cosim.trace import write_json_atomic


def _finite_or_none(x) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and np.isfinite(v)]


def summary(sim) -> dict:
    """The run's headline numbers (deterministic for a scenario and seed)."""
    fleet = sim.fleet
    ev = sim.last_eval
    mean_device = _finite_or_none(ev.mean_accuracy) if ev is not None else None
    global_acc = _finite_or_none(ev.global_accuracy) if ev is not None and ev.global_accuracy is not None else None
    final = mean_device if sim.learning.personalized else global_acc
    densities = _finite(sim.trace.round_values("ffl_density"))
    mean_densities = _finite(sim.trace.round_values("ffl_density_mean"))
    resets = _finite(sim.trace.round_values("threshold_resets"))
    energy = {f"{c}_energy_j": float(fleet.energy_j[c].sum()) for c in ENERGY_COMPONENTS}
    return {
        "scenario": sim.scenario.name,
        "algorithm": sim.scenario.learning.algorithm.name,
        "mode": sim.learning.mode,
        "seed": int(sim.scenario.seed),
        "rounds": int(sim.rounds_done),
        "sim_time_s": float(sim.env.now),
        "energy_j": float(fleet.total_energy_j().sum()),
        **energy,
        "uplink_bytes": int(sim.uplink_bytes.sum()),
        "downlink_bytes": int(sim.downlink_bytes.sum()),
        "final_accuracy": final,
        "final_mean_device_accuracy": mean_device,
        "final_global_accuracy": global_acc,
        # mean per-device accuracy on the devices' validation splits: for tuning, never reported
        "final_val_accuracy": _finite_or_none(ev.val_accuracy) if ev is not None else None,
        # new-device generalization: mean accuracy of the held-out devices after they joined
        "holdout_accuracy": _holdout(sim),
        "final_ffl_density": densities[-1] if densities else None,
        # time average over the run: mean over rounds of the devices' mean density per step
        "mean_ffl_density": float(np.mean(mean_densities)) if mean_densities else None,
        "threshold_resets": int(np.sum(resets)) if resets else None,
        "devices": int(sim.n_devices),
        "devices_alive": int(fleet.alive.sum()),
        "handovers": int(sim.handovers),
        "ping_pongs": int(sim.ping_pongs),
        "events": int(sim.trace.num_events),
        **_mode_summary(sim),
    }


def _holdout(sim) -> float | None:
    """Mean of the held-out devices' finite accuracies (None without any)."""
    values = _finite(list(getattr(sim, "holdout_accuracy", {}).values()))
    return float(np.mean(values)) if values else None


def _mode_summary(sim) -> dict:
    """Server-mode facts of the non-sync modes (absent in sync mode, whose staleness is 0)."""
    server = sim.server_mode
    if server is None:
        return {}
    taus = server.staleness
    return {
        "fl_mode": sim.scenario.fl.mode,
        "updates_applied": len(taus),
        "model_versions": int(server.version),
        "mean_staleness": float(np.mean(taus)) if taus else None,
        "max_staleness": int(max(taus)) if taus else None,
    }


def _device_rows(sim) -> None:
    """The ``devices`` table, column by column (linear in the number of devices: a
    per-device loop that read ``positions_m`` -- a copy of all positions -- was quadratic)."""
    fleet = sim.fleet
    total = fleet.total_energy_j()
    positions = sim.world.mobility.positions_m
    names = np.array(list(fleet.profile_names), dtype=object)
    sim.trace.device_columns(
        device=np.arange(sim.n_devices, dtype=np.int64), profile=names[np.asarray(fleet.profile_index)],
        cell=np.asarray(sim.world.serving_cell, dtype=np.int64),
        samples=np.asarray(sim.learning.samples, dtype=np.int64),
        rounds_selected=np.asarray(sim.rounds_selected, dtype=np.int64),
        rounds_completed=np.asarray(sim.rounds_completed, dtype=np.int64),
        energy_j=np.asarray(total, dtype=np.float64),
        **{f"{c}_energy_j": np.asarray(fleet.energy_j[c], dtype=np.float64) for c in ENERGY_COMPONENTS},
        battery_j=np.asarray(fleet.battery_j, dtype=np.float64), alive=np.asarray(fleet.alive, dtype=bool),
        uplink_bytes=np.asarray(sim.uplink_bytes, dtype=np.int64),
        downlink_bytes=np.asarray(sim.downlink_bytes, dtype=np.int64),
        final_accuracy=np.asarray(sim.final_device_accuracy, dtype=np.float64),
        x_m=np.asarray(positions[:, 0], dtype=np.float64), y_m=np.asarray(positions[:, 1], dtype=np.float64),
    )


def _git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def manifest(sim, command: list[str] | None, wall_s: float) -> dict:
    """Versions, seed, command line and wall-clock facts of a run."""
    import pyarrow
    import simpy
    import torch

    import cosim

    return {
        "cosim_version": cosim.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {"torch": torch.__version__, "numpy": np.__version__, "simpy": simpy.__version__,
                     "pyarrow": pyarrow.__version__},
        "seed": int(sim.scenario.seed),
        "command": list(command) if command is not None else list(sys.argv),
        "git_revision": _git_revision(),
        "finished_at_unix_s": time.time(),
        "wall_time_s": wall_s,
        "learning_wall_s": sim.learning.learning_wall_s,
    }


def write_partial(sim, out_dir: Path, command: list[str] | None, wall_s: float) -> None:
    """Flush an interrupted run: its event and round rows so far, and a manifest.

    No `summary.json` is written, so tools treat the run as unfinished; the device
    table is written when the run completes.
    """
    sim.trace.write(out_dir, list(sim.scenario.output.formats))
    info = manifest(sim, command, wall_s)
    info["status"] = f"interrupted after round {sim.rounds_done}"
    write_json_atomic(out_dir / "manifest.json", info)


def write_run(sim, out_dir: Path, command: list[str] | None, wall_s: float) -> dict:
    """Write the whole run directory; return the summary.

    `summary.json` is written last: its presence marks a finished run.
    """
    _device_rows(sim)
    sim.trace.write(out_dir, list(sim.scenario.output.formats))
    info = manifest(sim, command, wall_s)
    info["status"] = "finished"
    write_json_atomic(out_dir / "manifest.json", info)
    result = summary(sim)
    write_json_atomic(out_dir / "summary.json", result)
    return result
