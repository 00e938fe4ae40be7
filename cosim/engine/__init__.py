"""The discrete-event engine: world, flows, fleet, policies, checkpoints, and the run entry points.

- `run_simulation(scenario, out_dir)` runs a scenario and writes its run directory,
  checkpointing every `output.checkpoint_every` rounds; the directory must be its own
  (`cosim.engine.rundir`: new, empty, or an earlier cosim run with ``overwrite``);
- `resume_simulation(run_dir)` continues a run from its last checkpoint (or from the
  start when it has none) and yields the same trace files as an uninterrupted run; the
  checkpoint is verified first (`cosim.engine.checkpoint`);
- a first stop signal (Ctrl-C; with ``stop_signals=ALL_STOP_SIGNALS`` also SIGTERM and
  SIGHUP) stops at the end of the current round, flushes the traces so far and a
  checkpoint, and raises `RunInterrupted`; a second one aborts at once
  (`cosim.engine.signals`).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from cosim.engine.checkpoint import CHECKPOINT_NAME, CheckpointError, check_owner, read_checkpoint, save_checkpoint
from cosim.engine.policies import SELECTION_POLICIES, SelectionContext
from cosim.engine.rundir import (RunDir, RunDirError, acquire_fresh, acquire_resume, check_location,
                                 remove_stale_temps, scenario_sha256)
from cosim.engine.signals import ALL_STOP_SIGNALS, Interrupted, StopSignals
from cosim.engine.simulation import RoundProgress, Simulation
from cosim.engine.trace_journal import JOURNAL_NAME, TraceJournal
from cosim.progress import cosim_command


class RunInterrupted(Exception):
    """The run stopped cleanly at a round boundary on request (a stop signal)."""

    def __init__(self, run_dir: Path, rounds_done: int, rounds: int, signum: int = signal.SIGINT) -> None:
        self.run_dir = run_dir
        self.rounds_done = rounds_done
        self.signum = signum
        self.exit_status = 128 + signum
        super().__init__(
            f"interrupted after round {rounds_done}/{rounds}; traces and a checkpoint are in {run_dir}; "
            f"continue with: {cosim_command('run', '--resume', str(run_dir))}"
        )


def _after_abort(checkpoint_file: Path, out_dir: Path) -> str:
    """What `--resume` does with the run directory an aborted run left."""
    command = cosim_command("run", "--resume", str(out_dir))
    try:
        rounds_done = read_checkpoint(checkpoint_file)[0].get("rounds_done") if checkpoint_file.is_file() else None
    except (OSError, CheckpointError):
        rounds_done = None
    if rounds_done is None:
        return f"no checkpoint was written: {command} restarts the run from round 0"
    return f"continue from the checkpoint after round {rounds_done} with: {command}"


def _play(sim: Simulation, run_dir: RunDir, scenario_hash: str, journal: TraceJournal, signals: StopSignals,
          command: list[str] | None, started: float) -> dict:
    """Run `sim` to its end (or a stop) in `run_dir`; write its files; return the summary."""
    from cosim.engine.outputs import write_partial, write_run

    out_dir, scenario = run_dir.path, sim.scenario
    every = scenario.output.checkpoint_every
    checkpoint_file = out_dir / CHECKPOINT_NAME

    def checkpoint(sim: Simulation) -> None:
        position = journal.append(sim.trace)  # the rows: appended once (linear in rounds)
        state = sim.checkpoint_state()
        state["trace"] = None
        save_checkpoint(checkpoint_file, state, data=sim.learning.data, scenario_sha256=scenario_hash,
                        run_id=run_dir.run_id, journal=position)

    def on_round_end(sim: Simulation, round_idx: int) -> None:
        if every and (round_idx + 1) % every == 0 and round_idx + 1 < scenario.fl.rounds:
            checkpoint(sim)

    sim.on_round_end = on_round_end
    signals.attach(sim)
    try:
        sim.run()
    except Interrupted as stop:  # a second signal: say what a resume will do
        raise Interrupted(stop.signum, f"{stop}; {_after_abort(checkpoint_file, out_dir)}") from None
    if sim.stopped_early:
        checkpoint(sim)
        write_partial(sim, out_dir, command, time.perf_counter() - started)
        raise RunInterrupted(out_dir, sim.rounds_done, scenario.fl.rounds, signals.received or signal.SIGINT)
    summary = write_run(sim, out_dir, command, time.perf_counter() - started)
    checkpoint_file.unlink(missing_ok=True)
    journal.discard()
    return summary


def run_simulation(scenario, out_dir: Path, progress=None, command: list[str] | None = None, *,
                   overwrite: bool = False, explicit_out: bool = True, scenario_file: str | Path | None = None,
                   stop_signals: tuple[int, ...] = (signal.SIGINT,)) -> dict:
    """Run `scenario` to the end and write its run directory `out_dir`; return the summary.

    `out_dir` must be cosim's to write (`cosim.engine.rundir`; `overwrite` replaces an
    earlier cosim run; `explicit_out` False means it came from the scenario and must lie
    in ``runs/``; `scenario_file` is the input file, whose folder is refused). The
    directory is locked first, so a concurrent run into it fails at once; the run's
    files are written only once the scenario has been set up (data found, models built).
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    check_location(out_dir, explicit_out, scenario_file)
    scenario_hash = scenario_sha256(scenario)
    existed = out_dir.exists()
    with StopSignals(stop_signals) as signals:
        run_dir = acquire_fresh(out_dir, scenario_hash, overwrite)
        with run_dir:
            try:
                sim = Simulation(scenario, progress=progress)
            except BaseException:
                run_dir.abandon(remove_dir=not existed)
                raise
            run_dir.start()  # an earlier run's files go, the marker of this run is written
            remove_stale_temps(out_dir)
            from cosim.trace import write_text_atomic

            write_text_atomic(out_dir / "scenario.yaml", scenario.to_yaml())
            journal = TraceJournal(out_dir / JOURNAL_NAME)
            journal.discard()
            return _play(sim, run_dir, scenario_hash, journal, signals, command, started)


def resume_simulation(run_dir: Path, progress=None, command: list[str] | None = None, *,
                      stop_signals: tuple[int, ...] = (signal.SIGINT,)) -> dict:
    """Continue the run in `run_dir` from its last checkpoint; return the summary.

    Refused with one line (`RunDirError`, `CheckpointError`) when the directory is not a
    cosim run, its scenario.yaml was edited, or the checkpoint is foreign, corrupt,
    truncated or of another format.
    """
    from cosim.scenario import load_scenario

    started = time.perf_counter()
    run_dir = Path(run_dir)
    with StopSignals(stop_signals) as signals:
        owned, marker = acquire_resume(run_dir)
        with owned:
            scenario = load_scenario(run_dir / "scenario.yaml")
            scenario_hash = scenario_sha256(scenario)
            if marker.get("scenario_sha256") != scenario_hash:
                raise RunDirError(f"{run_dir / 'scenario.yaml'}: edited since the run started (scenario hash "
                                  f"{scenario_hash[:12]} != {str(marker.get('scenario_sha256'))[:12]}); a resume "
                                  "continues the scenario it started with; run the edited one into a new directory")
            checkpoint_file = run_dir / CHECKPOINT_NAME
            journal = TraceJournal(run_dir / JOURNAL_NAME)
            header = None
            if checkpoint_file.is_file():
                header, _ = read_checkpoint(checkpoint_file)
                check_owner(checkpoint_file, header, scenario_hash, owned.run_id)
            remove_stale_temps(run_dir)
            sim = Simulation(scenario, progress=progress, checkpoint_path=checkpoint_file if header else None)
            if header is not None:
                sim.trace = journal.restore((header["journal_bytes"], header["journal_sha256"]),
                                            scenario.output.events)
            else:
                journal.discard()
            return _play(sim, owned, scenario_hash, journal, signals, command, started)


__all__ = ["ALL_STOP_SIGNALS", "CheckpointError", "Interrupted", "RoundProgress", "RunDirError", "RunInterrupted",
           "SELECTION_POLICIES", "SelectionContext", "Simulation", "resume_simulation", "run_simulation"]
