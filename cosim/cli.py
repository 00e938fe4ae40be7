"""Command line: ``python -m cosim {run,validate,compare} SCENARIO [--set key.path=value]...``.

User errors (invalid scenario, missing files or datasets, bad setup values) print
``cosim: error: <message>`` (one line per problem) on stderr and exit with status 2,
never a traceback (``--debug`` shows it). Ctrl-C exits with status 130.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TextIO

from cosim import __version__
from cosim.scenario import Scenario, ScenarioError, load_scenario
from cosim.scenario.components import check_components

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class Progress(Protocol):
    """What the engine reports after each round (``cosim.engine.RoundProgress``)."""

    round: int
    rounds: int
    sim_time_s: float
    accuracy: float | None
    energy_j: float


def _error(message: object, stream: TextIO) -> int:
    for line in str(message).splitlines() or [type(message).__name__]:
        print(f"cosim: error: {line}", file=stream)
    return EXIT_USAGE


def format_progress(p: Progress) -> str:
    """One plain log line per round: ``round 3/30  sim 412.3 s  acc 0.712  energy 1234.5 J``."""
    acc = "-" if p.accuracy is None else f"{p.accuracy:.3f}"
    return f"round {p.round}/{p.rounds}  sim {p.sim_time_s:.1f} s  acc {acc}  energy {p.energy_j:.1f} J"


class ProgressReporter:
    """Round progress as a tqdm bar (interactive) or one log line per round (otherwise)."""

    def __init__(self, rounds: int, stream: TextIO, quiet: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet
        self._bar: Any = None
        if not quiet and stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=rounds, unit="round", file=stream, dynamic_ncols=True)

    def __call__(self, p: Progress) -> None:
        if self.quiet:
            return
        if self._bar is None:
            print(format_progress(p), file=self.stream, flush=True)
            return
        self._bar.total = p.rounds
        self._bar.set_postfix(
            sim=f"{p.sim_time_s:.1f}s",
            acc="-" if p.accuracy is None else f"{p.accuracy:.3f}",
            energy=f"{p.energy_j:.1f}J",
            refresh=False,
        )
        self._bar.update(max(0, p.round - self._bar.n))

    def close(self) -> None:
        """Finish the bar, if any."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def describe(scenario: Scenario) -> list[str]:
    """Short human summary of a validated scenario (used by ``validate``)."""
    d, fl, lr = scenario.devices, scenario.fl, scenario.learning
    mix = ", ".join(f"{name} {share:g}" for name, share in d.profiles.items())
    cells = ", ".join(f"{c.name} ({c.pathloss})" for c in scenario.cells)
    deadline = "none" if fl.deadline_s is None else f"{fl.deadline_s:g} s"
    return [
        f"name: {scenario.name}",
        f"devices: {d.count} ({mix}), mobility {d.mobility.model}",
        f"cells: {len(scenario.cells)}: {cells}",
        f"rounds: {fl.rounds} x {fl.devices_per_round} devices, selection {fl.selection}, "
        f"allocator {fl.allocator}, deadline {deadline}",
        f"algorithm: {lr.algorithm.name}, model {lr.model['name']}, dataset {lr.dataset.name} "
        f"({lr.partition.name}), mode {lr.mode}",
        f"output: {scenario.output_dir} ({', '.join(scenario.output.formats)})",
    ]


def _summary_lines(out_dir: Path, summary: Mapping[str, Any]) -> list[str]:
    lines = [f"run directory: {out_dir}"]
    for key in sorted(summary):
        value = summary[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        lines.append(f"  {key}: {value:.6g}" if isinstance(value, float) else f"  {key}: {value}")
    return lines


#: Where a setup error was raised (a path fragment of the raising module) -> the scenario key it is about.
_LAYER_KEYS = (
    ("learning/data/partition", "learning.partition"),
    ("learning/data/federated", "learning.partition"),
    ("learning/data/", "learning.dataset"),
    ("learning/models/", "learning.model"),
    ("learning/algorithms/", "learning.algorithm"),
    ("learning/execution/", "execution"),
    ("radio/mobility/", "devices.mobility"),
    ("radio/pathloss/", "cells"),
    ("radio/channel", "radio"),
)


def _scenario_key(exc: BaseException) -> str | None:
    """The scenario key an error raised inside the radio or learning layer is about, if known."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        filename = frame.filename.replace(os.sep, "/")
        for fragment, key in _LAYER_KEYS:
            if f"/{fragment}" in filename:
                return key
    return None


def _load(args: argparse.Namespace) -> Scenario:
    """Load and validate the scenario, including the parameters only the radio/learning layers know."""
    scenario = load_scenario(args.scenario, args.set)
    check_components(scenario)
    return scenario


def _check_out_dir(out_dir: Path) -> None:
    """Fail before simulating if ``out_dir`` can never become a directory."""
    node = out_dir
    while not node.exists() and node != node.parent:
        node = node.parent
    if node.exists() and not node.is_dir():
        raise ScenarioError(f"--out {out_dir}: {node} exists and is not a directory")


def _cmd_validate(args: argparse.Namespace) -> int:
    scenario = _load(args)
    for line in describe(scenario):
        print(line)
    print("ok")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    if args.resume is not None:
        if args.scenario is not None or args.set or args.out:
            raise ValueError("--resume RUN_DIR takes no SCENARIO, --set or --out: the run directory has them")
        return _resume(args)
    if args.scenario is None:
        raise ValueError("run needs a SCENARIO file (or --resume RUN_DIR)")
    scenario = _load(args)
    out_dir = Path(args.out) if args.out else scenario.output_dir
    _check_out_dir(out_dir)
    from cosim.engine import RunInterrupted, run_simulation

    reporter = ProgressReporter(scenario.fl.rounds, sys.stdout, quiet=args.quiet)
    try:
        summary = run_simulation(scenario, out_dir, progress=reporter, command=list(sys.argv))
    except RunInterrupted as stop:
        reporter.close()
        print(f"cosim: {stop}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        reporter.close()
    for line in _summary_lines(out_dir, summary or {}):
        print(line)
    return EXIT_OK


def _resume(args: argparse.Namespace) -> int:
    from cosim.engine import RunInterrupted, resume_simulation

    run_dir = Path(args.resume)
    rounds = load_scenario(run_dir / "scenario.yaml").fl.rounds if (run_dir / "scenario.yaml").is_file() else 0
    reporter = ProgressReporter(rounds, sys.stdout, quiet=args.quiet)
    try:
        summary = resume_simulation(run_dir, progress=reporter, command=list(sys.argv))
    except RunInterrupted as stop:
        reporter.close()
        print(f"cosim: {stop}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        reporter.close()
    out_dir = run_dir
    for line in _summary_lines(out_dir, summary or {}):
        print(line)
    return EXIT_OK


def _cmd_compare(args: argparse.Namespace) -> int:
    from analysis.io import read_comparison
    from analysis.table import format_cells, parse_assignments
    from cosim.compare import compare

    if args.workers < 1:
        raise ValueError(f"--workers {args.workers}: must be >= 1")
    log = None if args.quiet else (lambda line: print(line, flush=True))
    compare(args.scenario, args.vary, args.out, sets=args.set, repeats=args.repeats, workers=args.workers,
            baseline=args.baseline, target_accuracy=args.target_accuracy, log=log)
    baseline = parse_assignments(args.baseline) if args.baseline else None
    print(format_cells(read_comparison(args.out), baseline, args.format))
    print(f"comparison: {Path(args.out) / 'comparison.parquet'} (and .csv)")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The ``cosim`` argument parser with its ``run``, ``validate`` and ``compare`` sub-commands."""
    parser = argparse.ArgumentParser(
        prog="cosim", description="Co-simulation of federated learning over wireless networks."
    )
    parser.add_argument("--version", action="version", version=f"cosim {__version__}")
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--set", metavar="KEY.PATH=VALUE", action="append", default=[],
        help="override a scenario value (YAML-typed; list indices allowed: cells.0.tx_power_dbm=40); repeatable",
    )
    options.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    common = argparse.ArgumentParser(add_help=False, parents=[options])
    common.add_argument("scenario", metavar="SCENARIO", help="scenario YAML file")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = sub.add_parser("run", parents=[options], help="run a scenario and write its traces",
                         description="Run a scenario and write its traces to the run directory, or continue an "
                                     "interrupted run with --resume RUN_DIR.")
    run.add_argument("scenario", metavar="SCENARIO", nargs="?", help="scenario YAML file (not with --resume)")
    run.add_argument("--resume", metavar="RUN_DIR",
                     help="continue the run in RUN_DIR from its last checkpoint (same traces as an uninterrupted run)")
    run.add_argument("--out", metavar="DIR", help="run directory (default: the scenario's output.directory)")
    run.add_argument("--quiet", action="store_true", help="no per-round progress")
    run.set_defaults(handler=_cmd_run)
    validate = sub.add_parser("validate", parents=[common], help="check a scenario and print a summary",
                              description="Validate a scenario (with overrides) and print a short summary.")
    validate.set_defaults(handler=_cmd_validate)
    comp = sub.add_parser(
        "compare", parents=[common], help="run a grid of scenario variants x repeats and tabulate them",
        description="Run the Cartesian grid of --vary values x --repeats (seed + k for repeat k) in parallel, "
                    "resuming finished runs; write OUT/comparison.{parquet,csv} and print mean ± std per cell.")
    comp.add_argument("--vary", metavar="KEY.PATH=V1,V2", action="append", default=[],
                      help="a scenario key and its values (YAML, comma-separated); a key holding a mapping with "
                           "'name' means KEY.name (learning.algorithm=fedavg,local); repeatable")
    comp.add_argument("--repeats", metavar="N", type=int, default=1, help="runs per cell (default 1)")
    comp.add_argument("--workers", metavar="W", type=int, default=1, help="parallel worker processes (default 1)")
    comp.add_argument("--baseline", metavar="KEY=VALUE[,KEY=VALUE]",
                      help="cell the ratios are relative to; keys not named match each cell's own (default: first cell)")
    comp.add_argument("--target-accuracy", metavar="ACC", type=float,
                      help="accuracy (0-1) for time_to_target_s: end of the first round reaching it")
    comp.add_argument("--format", choices=("text", "markdown"), default="text", help="table format")
    comp.add_argument("--out", metavar="DIR", required=True, help="comparison directory (runs go to DIR/cells/)")
    comp.add_argument("--quiet", action="store_true", help="no per-run progress lines")
    comp.set_defaults(handler=_cmd_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m cosim``; returns the process exit status."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("cosim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ScenarioError, OSError, ValueError) as exc:
        if args.debug:
            raise
        if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
            return _error(f"{exc.filename}: {exc.strerror}", sys.stderr)
        key = None if isinstance(exc, ScenarioError) else _scenario_key(exc)
        if key is not None:
            lines = str(exc).splitlines() or [type(exc).__name__]
            return _error("\n".join(f"{key}: {line}" for line in lines), sys.stderr)
        return _error(exc, sys.stderr)
