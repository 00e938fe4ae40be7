"""``python -m analysis paper``: the experiments behind the README's Results section, end to end.

A *paper spec* (YAML, default ``analysis/paper.yaml``) names a scenario, the number of
seeds, overrides applied to every run, the data *settings* (label → overrides, e.g. a
pathological or a Dirichlet split) and the *methods* (label → the ``learning.algorithm``
value: a name or ``{name, params}``, so that ablations are methods too). For every
setting and method the command runs ::

    python -m cosim compare SCENARIO --set learning.algorithm=METHOD --set KEY=VALUE ... \\
        --repeats N --out OUT/<setting>/<method>

as a child process (``analysis`` never imports the engine). With ``workers`` W, W
comparisons run side by side with one run each (a lone comparison gets all W): a
comparison of 5 seeds on 2 workers would leave a core idle for its fifth run, and
``paper`` runs dozens of them. A comparison's finished runs are reused, so an interrupted
``paper`` resumes where it stopped. Every method of a setting runs the same seeds (the scenario's seed + repeat),
which pairs them for the tests in :mod:`analysis.paper_tables`. Then ``OUT/results.md``
gets, per setting, mean ± 95 % CI of every metric per method and the paired tests of the
spec's ``method`` against every other one, and ``OUT/paper.json`` the wall time spent
running (summed over invocations, so a resumed regeneration reports its whole cost).
An optional ``convergence_rounds: K`` adds each run's late gain (:func:`late_gain_pts`:
the accuracy it gained over its last K rounds) to the tables.
:func:`write_figures` draws, per setting, every method's mean accuracy against simulated
time and its energy against accuracy, and one round of the spec's method on the network,
into ``OUT/figures/<setting>/`` (``results.md`` links them).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from analysis.io import as_float, is_comparison_dir, read_comparison_frame, read_summary, read_trace

__all__ = ["PaperSpec", "load_spec", "compare_commands", "reuse_runs", "run_paper", "collect", "write_figures",
           "late_gain_pts", "DEFAULT_SPEC", "FIGURES"]

#: the spec that regenerates the README's Results section
DEFAULT_SPEC = Path(__file__).with_name("paper.yaml")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SPEC_KEYS = {"scenario", "repeats", "target_accuracy", "method", "set", "settings", "methods", "reuse",
              "convergence_rounds"}
#: summary fields read besides the comparison metrics (PFL-TPS pruning statistics, the
#: held-out devices' accuracy after joining)
SUMMARY_EXTRAS = ("final_val_accuracy", "mean_ffl_density", "threshold_resets", "holdout_accuracy")
#: figures written per setting by :func:`write_figures` (file stem -> caption)
FIGURES = {"accuracy_vs_time": "mean test accuracy against simulated time, every method",
           "energy_vs_accuracy": "cumulative energy of all devices against accuracy, every method",
           "timeline": "round 0 of the method under test (first seed): download, compute and upload per device"}


@dataclass(frozen=True)
class PaperSpec:
    """A validated paper spec (see the module docstring); ``source`` is the file it came from."""

    scenario: Path
    repeats: int
    target_accuracy: float
    method: str
    overrides: dict[str, Any]
    settings: dict[str, dict[str, Any]]
    methods: dict[str, Any]
    source: Path = field(default=DEFAULT_SPEC)
    reuse: dict[str, str] = field(default_factory=dict)
    #: with K, the tables add each run's late gain (:func:`late_gain_pts` over K rounds)
    convergence_rounds: int | None = None


def _flow(value: Any) -> str:
    """``value`` as one-line YAML for ``--set KEY=VALUE``."""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def load_spec(path: str | Path = DEFAULT_SPEC) -> PaperSpec:
    """Read and check a paper spec; every problem is one line of the ``ValueError``.

    ``scenario`` is relative to the current directory (as on the command line).
    """
    source = Path(path)
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    where = str(source)
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: a paper spec is a mapping with keys {', '.join(sorted(_SPEC_KEYS))}")
    problems = [f"{where}: unknown key {k!r} (allowed: {', '.join(sorted(_SPEC_KEYS))})"
                for k in data if k not in _SPEC_KEYS]
    problems += [f"{where}: missing key {k!r}" for k in ("scenario", "methods", "method") if k not in data]
    repeats = data.get("repeats", 5)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= 1000:
        problems.append(f"{where}: repeats={repeats!r}: need an integer in [1, 1000]")
    target = data.get("target_accuracy", 0.85)
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 < target <= 1:
        problems.append(f"{where}: target_accuracy={target!r}: need a number in (0, 1]")
    sections: dict[str, dict[str, Any]] = {}
    for name, default in (("set", {}), ("settings", {"default": {}}), ("methods", None)):
        value = data.get(name, default)
        if not isinstance(value, Mapping) or (name != "set" and not value):
            problems.append(f"{where}: {name} must be a non-empty mapping" if name != "set"
                            else f"{where}: set must be a mapping of scenario keys to values")
            value = {}
        sections[name] = {str(k): v for k, v in value.items()}
    for name in ("settings", "methods"):
        problems += [f"{where}: {name} label {k!r}: use letters, digits, '_', '.', '-' (at most 64)"
                     for k in sections[name] if not _LABEL.match(k)]
    for label, overrides in sections["settings"].items():
        if not isinstance(overrides, Mapping):
            problems.append(f"{where}: settings.{label} must be a mapping of scenario keys to values")
    for label, algorithm in sections["methods"].items():
        if not (isinstance(algorithm, str) or (isinstance(algorithm, Mapping) and "name" in algorithm)):
            problems.append(f"{where}: methods.{label}: an algorithm name or a mapping with 'name' and 'params'")
    reuse = data.get("reuse", {})
    if not isinstance(reuse, Mapping) or not all(isinstance(v, str) and v for v in reuse.values()):
        problems.append(f"{where}: reuse must map SETTING/METHOD to a comparison directory (relative to --out)")
        reuse = {}
    for key in reuse:
        setting, _, label = str(key).partition("/")
        if setting not in sections["settings"] or label not in sections["methods"]:
            problems.append(f"{where}: reuse {key!r}: not a SETTING/METHOD of this spec")
    convergence = data.get("convergence_rounds")
    if convergence is not None and (isinstance(convergence, bool) or not isinstance(convergence, int)
                                    or convergence < 1):
        problems.append(f"{where}: convergence_rounds={convergence!r}: need an integer >= 1 (or leave it out)")
        convergence = None
    method = data.get("method")
    if "methods" in data and method not in sections["methods"]:
        problems.append(f"{where}: method {method!r} is not among the methods ({', '.join(sections['methods'])})")
    if problems:
        raise ValueError("\n".join(problems))
    return PaperSpec(scenario=Path(str(data["scenario"])), repeats=int(repeats), target_accuracy=float(target),
                     method=str(method), overrides=sections["set"],
                     settings={k: dict(v) for k, v in sections["settings"].items()},
                     methods=sections["methods"], source=source, reuse={str(k): str(v) for k, v in reuse.items()},
                     convergence_rounds=convergence)


def compare_commands(spec: PaperSpec, out: str | Path, workers: int = 1) -> list[tuple[str, str, list[str]]]:
    """``(setting, method, argv)`` of every ``cosim compare`` the spec needs, in run order.

    ``workers`` is the number of runs at a time over the whole spec: each comparison gets
    ``workers // min(workers, comparisons)`` of them (:func:`run_paper` runs that many
    comparisons side by side).
    """
    per_compare = max(1, workers // max(1, min(workers, len(spec.settings) * len(spec.methods))))
    commands = []
    for setting, overrides in spec.settings.items():
        for label, algorithm in spec.methods.items():
            argv = [sys.executable, "-m", "cosim", "compare", str(spec.scenario),
                    "--set", f"learning.algorithm={_flow(algorithm)}"]
            for key, value in {**spec.overrides, **overrides}.items():  # after the method: may set its params
                argv += ["--set", f"{key}={_flow(value)}"]
            argv += ["--repeats", str(spec.repeats),
                     "--workers", str(per_compare), "--target-accuracy", repr(spec.target_accuracy),
                     "--out", str(Path(out) / setting / label)]
            commands.append((setting, label, argv))
    return commands


def _record_wall(out: Path, seconds: float) -> float:
    """Add ``seconds`` to the wall time stored in ``OUT/paper.json``; returns the total."""
    path = out / "paper.json"
    meta = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    meta["run_wall_s"] = float(meta.get("run_wall_s", 0.0)) + seconds
    meta["cpu_count"] = os.cpu_count()
    tmp = path.with_name(f".paper.json.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return meta["run_wall_s"]


def reuse_runs(spec: PaperSpec, out: str | Path, log: Callable[[str], None] = print) -> int:
    """Copy the finished runs named by ``spec.reuse`` into ``OUT/<setting>/<method>/`` where
    that run has not finished; returns how many were copied.

    A spec reuses another spec's runs of the same scenario (e.g. the tuned baselines' PFL-TPS
    runs are the main tables' own): ``reuse: {dirichlet-0.5/pfl_tps:
    ../paper_quick/dirichlet-0.5/pfl_tps}`` (relative to ``OUT``). Copied runs are checked
    like any finished run: ``cosim compare`` refuses one whose ``scenario.yaml`` differs from
    what this spec asks for. A missing source is reported and its runs are computed.
    """
    total = 0
    for key, source_text in spec.reuse.items():
        source = Path(out) / source_text
        if not (source / "cells").is_dir():
            log(f"reuse {key}: {source} has no runs; they will be computed")
            continue
        copied = 0
        for summary in sorted(source.glob("cells/*/*/summary.json")):
            run = summary.parent
            target = Path(out) / key / run.relative_to(source)
            if (target / "summary.json").is_file():
                continue
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(run, target)
            copied += 1
        log(f"reuse {key}: {copied} finished run(s) copied from {source}")
        total += copied
    return total


def run_paper(spec: PaperSpec, out: str | Path, workers: int = 1,
              log: Callable[[str], None] = print) -> float:
    """Run every comparison of ``spec`` under ``out`` (skipping finished runs), ``workers``
    runs at a time (see :func:`compare_commands`); returns the total wall time in s.

    ``OUT/paper.json`` gains the wall time of this invocation as comparisons finish (not the
    sum of their times: side by side, they overlap). After a failure no further comparison
    starts; the running ones finish.

    Raises:
        RuntimeError: naming the first failed comparison and its exit status.
    """
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    reuse_runs(spec, root, log)
    commands = compare_commands(spec, root, workers)
    side_by_side = max(1, min(workers, len(commands)))
    lock = threading.Lock()
    last = [time.perf_counter()]

    def record() -> None:
        with lock:
            now = time.perf_counter()
            _record_wall(root, now - last[0])
            last[0] = now

    def one(index: int, setting: str, label: str, argv: list[str]) -> str | None:
        with lock:  # side-by-side threads: one whole line each
            log(f"[{index}/{len(commands)}] {setting}/{label}: {' '.join(argv[1:])}")
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, check=False)
        record()
        if done.returncode != 0:
            return (f"{setting}/{label}: cosim compare exited with status {done.returncode} "
                    f"(rerun the command above to see why; finished runs are kept)")
        return None

    failure: str | None = None
    pending = list(enumerate(commands, 1))
    with ThreadPoolExecutor(max_workers=side_by_side) as pool:
        running: set[Future] = set()
        while pending or running:
            while pending and failure is None and len(running) < side_by_side:
                index, (setting, label, argv) = pending.pop(0)
                running.add(pool.submit(one, index, setting, label, argv))
            if not running:
                break
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                failure = failure or future.result()
    if failure is not None:
        raise RuntimeError(failure)
    meta = json.loads((root / "paper.json").read_text(encoding="utf-8")) if (root / "paper.json").is_file() else {}
    return float(meta.get("run_wall_s", 0.0))


def comparison_dir(out: str | Path, setting: str, label: str) -> Path:
    """``OUT/<setting>/<label>``, the finished comparison of one method on one setting.

    Raises:
        ValueError: naming the directory when no comparison is there.
    """
    directory = Path(out) / setting / label
    if not is_comparison_dir(directory):
        raise ValueError(f"{directory}: no comparison here; run `python -m analysis paper` "
                         f"without --tables-only first")
    return directory


def collect(spec: PaperSpec, out: str | Path) -> pd.DataFrame:
    """One row per setting, method and repeat: ``setting``, ``method``, ``repeat``, ``seed``,
    the comparison metrics and :data:`SUMMARY_EXTRAS` (NaN where a run lacks them).

    Raises:
        ValueError: naming the directory when a comparison is missing or incomplete.
    """
    frames = []
    for setting in spec.settings:
        for label in spec.methods:
            directory = comparison_dir(out, setting, label)
            frame = read_comparison_frame(directory)
            if len(frame) < spec.repeats:
                raise ValueError(f"{directory}: {len(frame)} of {spec.repeats} repeats finished")
            summaries = [read_summary(directory / run) for run in frame["run_dir"]]
            for extra in SUMMARY_EXTRAS:
                frame[extra] = [as_float(summary.get(extra)) for summary in summaries]
            if spec.convergence_rounds is not None:
                frame["late_gain_pts"] = [late_gain_pts(directory / run, spec.convergence_rounds)
                                          for run in frame["run_dir"]]
            frame.insert(0, "method", label)
            frame.insert(0, "setting", setting)
            frames.append(frame.drop(columns=list(frame.attrs.get("varied", []))))
    table = pd.concat(frames, ignore_index=True)
    metrics = [c for c in table.columns if c not in ("setting", "method", "repeat", "seed", "run_dir")]
    return table.astype({c: "float64" for c in metrics})


def late_gain_pts(run_dir: Path, rounds: int) -> float:
    """How much a run was still learning at its end: 100 × (test accuracy at its last
    evaluation − at its last evaluation at least ``rounds`` rounds before that), in points.

    NaN when the run has no evaluation that early (fewer than ``rounds`` rounds evaluated).
    """
    trace = read_trace(run_dir, "rounds")
    evaluated = trace.loc[trace["accuracy"].notna(), ["round", "accuracy"]]
    if evaluated.empty:
        return float("nan")
    last_round, last_accuracy = int(evaluated["round"].iloc[-1]), float(evaluated["accuracy"].iloc[-1])
    earlier = evaluated[evaluated["round"] <= last_round - rounds]
    return float("nan") if earlier.empty else 100.0 * (last_accuracy - float(earlier["accuracy"].iloc[-1]))


def write_figures(spec: PaperSpec, out: str | Path) -> dict[str, list[Path]]:
    """Per setting, the :data:`FIGURES` PNGs under ``OUT/figures/<setting>/`` from finished
    comparisons (one line per method, its seeds averaged round by round); returns
    ``{setting: [paths]}``.

    Raises:
        ValueError: naming the directory when a comparison is missing (:func:`comparison_dir`).
    """
    from analysis.plots import collect_series, plot_accuracy_vs_time, plot_energy_vs_accuracy, plot_timeline

    written: dict[str, list[Path]] = {}
    for setting in spec.settings:
        directories = [comparison_dir(out, setting, label) for label in spec.methods]
        series = collect_series(directories)  # one comparison per method: labelled by its directory name
        target = Path(out) / "figures" / setting
        target.mkdir(parents=True, exist_ok=True)
        first = next(s for s in series if s.label == spec.method).runs[0]
        written[setting] = [plot_accuracy_vs_time(series, target / "accuracy_vs_time.png"),
                            plot_energy_vs_accuracy(series, target / "energy_vs_accuracy.png"),
                            plot_timeline(first, target / "timeline.png", 0)]
    return written
