"""The discrete-event engine: world, flows, fleet, policies, and `run_simulation`."""

from __future__ import annotations

import time
from pathlib import Path

from cosim.engine.policies import SELECTION_POLICIES, SelectionContext
from cosim.engine.simulation import RoundProgress, Simulation


def run_simulation(scenario, out_dir: Path, progress=None, command: list[str] | None = None) -> dict:
    """Run `scenario` to the end and write its run directory `out_dir`; return the summary."""
    from cosim.engine.outputs import write_run

    started = time.perf_counter()
    sim = Simulation(scenario, progress=progress)
    sim.run()
    return write_run(sim, Path(out_dir), command, time.perf_counter() - started)


__all__ = ["RoundProgress", "SELECTION_POLICIES", "SelectionContext", "Simulation", "run_simulation"]
