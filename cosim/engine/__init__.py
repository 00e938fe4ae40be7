"""The discrete-event engine: world, flows, fleet, policies, checkpoints, and the run entry points.

- `run_simulation(scenario, out_dir)` runs a scenario and writes its run directory,
  checkpointing every `output.checkpoint_every` rounds;
- `resume_simulation(run_dir)` continues a run from its last checkpoint (or from the
  start when it has none) and yields the same trace files as an uninterrupted run;
- a first Ctrl-C (SIGINT) stops at the end of the current round, flushes the traces
  so far and a checkpoint, and raises `RunInterrupted`; a second one aborts at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from cosim.engine.checkpoint import CHECKPOINT_NAME, save_checkpoint
from cosim.engine.policies import SELECTION_POLICIES, SelectionContext
from cosim.engine.simulation import RoundProgress, Simulation
from cosim.progress import cosim_command


class RunInterrupted(Exception):
    """The run stopped cleanly at a round boundary on request (Ctrl-C)."""

    def __init__(self, run_dir: Path, rounds_done: int, rounds: int) -> None:
        self.run_dir = run_dir
        self.rounds_done = rounds_done
        super().__init__(
            f"interrupted after round {rounds_done}/{rounds}; traces and a checkpoint are in {run_dir}; "
            f"continue with: {cosim_command('run', '--resume', str(run_dir))}"
        )


@contextlib.contextmanager
def _stop_on_sigint(sim: Simulation) -> Iterator[None]:
    """First SIGINT: stop at the next round boundary; second: the usual KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame) -> None:
        if sim.stop_requested:
            raise KeyboardInterrupt
        sim.stop_requested = True
        print("\nstopping after this round (Ctrl-C again to abort now)", flush=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_simulation(scenario, out_dir: Path, progress=None, command: list[str] | None = None,
                   checkpoint_path: Path | None = None) -> dict:
    """Run `scenario` to the end and write its run directory `out_dir`; return the summary.

    Nothing is written until the scenario has been set up successfully (data found,
    models built), so a bad scenario never leaves a half-written run directory.
    """
    from cosim.engine.outputs import write_partial, write_run
    from cosim.trace import write_text_atomic

    started = time.perf_counter()
    out_dir = Path(out_dir)
    sim = Simulation(scenario, progress=progress, checkpoint_path=checkpoint_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.tmp-*"):  # left by a writer killed mid-write (atomic writes)
        stale.unlink(missing_ok=True)
    write_text_atomic(out_dir / "scenario.yaml", scenario.to_yaml())
    every = scenario.output.checkpoint_every
    checkpoint_file = out_dir / CHECKPOINT_NAME

    def checkpoint(sim: Simulation) -> None:
        save_checkpoint(checkpoint_file, sim.checkpoint_state(), data=sim.learning.data)

    def on_round_end(sim: Simulation, round_idx: int) -> None:
        if every and (round_idx + 1) % every == 0 and round_idx + 1 < scenario.fl.rounds:
            checkpoint(sim)

    sim.on_round_end = on_round_end
    with _stop_on_sigint(sim):
        sim.run()
    if sim.stopped_early:
        checkpoint(sim)
        write_partial(sim, out_dir, command, time.perf_counter() - started)
        raise RunInterrupted(out_dir, sim.rounds_done, scenario.fl.rounds)
    summary = write_run(sim, out_dir, command, time.perf_counter() - started)
    checkpoint_file.unlink(missing_ok=True)
    return summary


def resume_simulation(run_dir: Path, progress=None, command: list[str] | None = None) -> dict:
    """Continue the run in `run_dir` from its last checkpoint; return the summary."""
    from cosim.scenario import load_scenario

    run_dir = Path(run_dir)
    scenario_file = run_dir / "scenario.yaml"
    if not scenario_file.is_file():
        raise FileNotFoundError(f"{run_dir}: not a run directory (no scenario.yaml)")
    scenario = load_scenario(scenario_file)
    checkpoint_file = run_dir / CHECKPOINT_NAME
    return run_simulation(scenario, run_dir, progress=progress, command=command,
                          checkpoint_path=checkpoint_file if checkpoint_file.is_file() else None)


__all__ = ["RoundProgress", "RunInterrupted", "SELECTION_POLICIES", "SelectionContext", "Simulation",
           "resume_simulation", "run_simulation"]
