"""Command line: ``cosim {run,validate,compare,tune} SCENARIO [--set key.path=value]...``.

A thin layer over the Python API (:mod:`cosim.api`): parse arguments, call
``cosim.api.load_scenario`` / ``run`` / ``resume`` / ``compare`` / ``tune``, print the result.
``cosim`` is the console script; ``python -m cosim`` is the same.
User errors (invalid scenario, missing files or datasets, bad setup values) print
``cosim: error: <message>`` (one line per problem) on stderr and exit with status 2,
never a traceback (``--debug`` shows it). Ctrl-C exits with status 130, SIGTERM 143,
SIGHUP 129 (a first one stops cleanly at a round boundary, see ``cosim.engine.signals``).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from cosim import __version__, api
from cosim.progress import Progress, ProgressReporter, format_progress, usable_tty  # noqa: F401 - re-exported
from cosim.scenario import Scenario, ScenarioError
from cosim.scenario.text import escape_controls

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _error(message: object, stream: TextIO) -> int:
    for line in str(message).split("\n") if str(message).strip() else [type(message).__name__]:
        print(f"cosim: error: {escape_controls(line)}", file=stream)
    return EXIT_USAGE


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
        _execution_line(scenario),
        f"output: {scenario.output_dir} ({', '.join(scenario.output.formats)})",
    ]


def _execution_line(scenario: Scenario) -> str:
    """How local updates run: executor, processes x threads, and for batched its device and stacks."""
    ex = scenario.execution
    if ex.executor == "sequential":
        return f"execution: sequential, {ex.threads} thread(s)"
    line = f"execution: {ex.executor}, {ex.workers} worker(s) x {ex.threads} thread(s)"
    if ex.executor == "batched":
        from learning.execution.batched import default_max_devices

        stack = ex.max_devices or default_max_devices(ex.device)
        line += (f", on {ex.device} in stacks of up to {stack} devices (algorithms without a batched plan "
                 f"train one device at a time on the cpu)")
    elif ex.executor == "ray":
        line += f", cluster {ex.address}"
    return line


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
    return api.load_scenario(args.scenario, args.set)


def _cmd_validate(args: argparse.Namespace) -> int:
    from cosim.scenario.capacity import gib
    from cosim.scenario.components import train_memory

    scenario = _load(args)
    for line in describe(scenario):
        print(line)
    memory = train_memory(scenario)
    if memory is not None:
        machine = "unknown" if memory.available_b is None else gib(memory.available_b)
        print(f"memory: about {gib(memory.total_b)} estimated for train mode (this machine: {machine})")
    print("ok")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from cosim.engine import RunInterrupted

    if args.resume is not None:
        if args.scenario is not None or args.set or args.out or args.overwrite or args.params:
            raise ValueError("--resume RUN_DIR takes no SCENARIO, --set, --params, --out or --overwrite: the run "
                             "directory has them")
    elif args.scenario is None:
        raise ValueError("run needs a SCENARIO file (or --resume RUN_DIR)")
    try:
        if args.resume is not None:
            result = api.resume(args.resume, progress=not args.quiet, command=args.rerun)
        else:
            result = api.run(args.scenario, out=args.out or None, overrides=args.set, progress=not args.quiet,
                             command=args.rerun, overwrite=args.overwrite, params=args.params or None)
    except RunInterrupted as stop:
        print(f"cosim: {escape_controls(str(stop))}", file=sys.stderr)
        return getattr(stop, "exit_status", EXIT_INTERRUPTED)
    for line in _summary_lines(result.path, result.summary):
        print(line)
    return EXIT_OK


def _cmd_compare(args: argparse.Namespace) -> int:
    from analysis.io import read_comparison
    from analysis.table import format_cells, parse_assignments

    if args.workers < 1:
        raise ValueError(f"--workers {args.workers}: must be >= 1")
    api.compare(args.scenario, args.vary, args.out, overrides=args.set, repeats=args.repeats, workers=args.workers,
                baseline=args.baseline, target_accuracy=args.target_accuracy, progress=not args.quiet,
                backend=args.backend, address=args.address, params=args.params or None)
    baseline = parse_assignments(args.baseline) if args.baseline else None
    print(format_cells(read_comparison(args.out), baseline, args.format))
    print(f"comparison: {Path(args.out) / 'comparison.parquet'} (and .csv)")
    return EXIT_OK


def _cmd_tune(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise ValueError(f"--workers {args.workers}: must be >= 1")
    result = api.tune(args.scenario, args.algorithm, args.grid, args.out, metric=args.metric, seeds=args.seeds,
                      overrides=args.set, workers=args.workers, progress=not args.quiet, backend=args.backend,
                      address=args.address)
    print(result.table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    best = result.table[result.table["chosen"]].iloc[0]
    chosen = ", ".join(f"{k}={v}" for k, v in result.chosen.items())
    print(f"chosen for {args.algorithm}: {chosen} ({args.metric} {best[f'{args.metric}_mean']:.4f}, mean over "
          f"{args.seeds} seed(s))")
    print(f"tuned parameters: {result.file} (cosim compare/run ... --params {result.file})")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The ``cosim`` argument parser with its ``run``, ``validate``, ``compare`` and ``tune`` sub-commands."""
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
    tuned = argparse.ArgumentParser(add_help=False)
    tuned.add_argument("--params", metavar="FILE", action="append", default=[],
                       help="tuned values (cosim tune's DIR/tuned.yaml) for the runs of the algorithms it names, "
                            "applied after --set, before --vary; repeatable (one file per algorithm)")
    grid = argparse.ArgumentParser(add_help=False)
    grid.add_argument("--workers", metavar="W", type=int, default=1, help="parallel worker processes (default 1)")
    grid.add_argument("--backend", choices=("local", "ray"), default="local",
                      help="where runs execute: this machine (--workers processes) or Ray tasks on a cluster")
    grid.add_argument("--address", metavar="HOST:PORT", default="auto",
                      help="Ray cluster head for --backend ray (default auto: the cluster running here; "
                           "local: a Ray instance in this process)")
    grid.add_argument("--quiet", action="store_true", help="no per-run progress lines")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = sub.add_parser("run", parents=[options, tuned], help="run a scenario and write its traces",
                         description="Run a scenario and write its traces to the run directory, or continue an "
                                     "interrupted run with --resume RUN_DIR.")
    run.add_argument("scenario", metavar="SCENARIO", nargs="?", help="scenario YAML file (not with --resume)")
    run.add_argument("--resume", metavar="RUN_DIR",
                     help="continue the run in RUN_DIR from its last checkpoint (same traces as an uninterrupted run)")
    run.add_argument("--out", metavar="DIR", help="run directory (default: the scenario's output.directory)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace an earlier cosim run in the run directory (never a directory cosim did not write)")
    run.add_argument("--quiet", action="store_true", help="no per-round progress")
    run.set_defaults(handler=_cmd_run)
    validate = sub.add_parser("validate", parents=[common], help="check a scenario and print a summary",
                              description="Validate a scenario (with overrides) and print a short summary.")
    validate.set_defaults(handler=_cmd_validate)
    comp = sub.add_parser(
        "compare", parents=[common, tuned, grid], help="run a grid of scenario variants x repeats and tabulate them",
        description="Run the Cartesian grid of --vary values x --repeats (seed + k for repeat k) in parallel, "
                    "resuming finished runs; write OUT/comparison.{parquet,csv} and print mean ± std per cell.")
    comp.add_argument("--vary", metavar="KEY.PATH=V1,V2", action="append", default=[],
                      help="a scenario key and its values (YAML, comma-separated); a key holding a mapping with "
                           "'name' means KEY.name (learning.algorithm=fedavg,local); repeatable")
    comp.add_argument("--repeats", metavar="N", type=int, default=1, help="runs per cell (default 1)")
    comp.add_argument("--baseline", metavar="KEY=VALUE[,KEY=VALUE]",
                      help="cell the ratios are relative to; keys not named match each cell's own (default: first cell)")
    comp.add_argument("--target-accuracy", metavar="ACC", type=float,
                      help="accuracy (0-1) for time_to_target_s: end of the first round reaching it")
    comp.add_argument("--format", choices=("text", "markdown"), default="text", help="table format")
    comp.add_argument("--out", metavar="DIR", required=True, help="comparison directory (runs go to DIR/cells/)")
    comp.set_defaults(handler=_cmd_compare)
    tune = sub.add_parser(
        "tune", parents=[common, grid], help="choose an algorithm's parameters on the validation splits",
        description="Run the grid of --grid values for --algorithm x --seeds (resuming finished runs), pick the "
                    "setting with the best mean validation metric (ties: first in grid order) and write "
                    "OUT/tuned.yaml for compare/run --params.")
    tune.add_argument("--algorithm", metavar="NAME", required=True, help="the algorithm to tune")
    tune.add_argument("--grid", metavar="KEY=V1,V2", action="append", default=[],
                      help="a key and its values (YAML, comma-separated); a key without a dot is an algorithm "
                           "parameter (lr=1e-3,5e-3 means learning.algorithm.params.lr); repeatable")
    tune.add_argument("--metric", default="val_accuracy",
                      help="validation metric to maximise (default val_accuracy); test metrics are refused")
    tune.add_argument("--seeds", metavar="N", type=int, default=1, help="runs per setting, seed + k (default 1)")
    tune.add_argument("--out", metavar="DIR", required=True, help="tuning directory (runs go to DIR/cells/)")
    tune.set_defaults(handler=_cmd_tune)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m cosim``; returns the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.rerun = api.rerun_command(argv)  # what manifest.json records: it re-runs this command
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt as stop:  # a signal during set-up, or a second one (cosim.engine.signals)
        print(f"cosim: {escape_controls(str(stop) or 'interrupted')}", file=sys.stderr)
        return getattr(stop, "exit_status", EXIT_INTERRUPTED)
    except (ScenarioError, OSError, ValueError) as exc:
        if args.debug:
            raise
        if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
            return _error(f"{escape_controls(str(exc.filename))}: {exc.strerror}", sys.stderr)
        key = None if isinstance(exc, ScenarioError) else _scenario_key(exc)
        if key is not None:
            lines = str(exc).splitlines() or [type(exc).__name__]
            return _error("\n".join(f"{key}: {line}" for line in lines), sys.stderr)
        return _error(exc, sys.stderr)
