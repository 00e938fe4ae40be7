"""Grid runner behind ``python -m cosim compare``: a Cartesian grid of scenario overrides × repeats.

``--vary KEY=V1,V2,...`` (repeatable) names a scenario key and its values; the grid is the
Cartesian product of all value lists (first ``--vary`` varies slowest), each cell run
``repeats`` times. Repeat ``k`` uses ``seed = <the cell's scenario seed> + k`` (set with a
``seed=...`` override). Values are YAML like ``--set`` values and split on top-level
commas (commas inside ``[]``, ``{}`` or quotes do not split). A key whose value in the
scenario is a mapping with a ``name`` field is a shorthand for ``<key>.name``
(``--vary learning.algorithm=fedavg,local`` varies ``learning.algorithm.name``).

Every cell's scenario is validated before anything runs (all problems are reported at
once, as :class:`ScenarioError` lines). Each run is an ordinary run directory
``OUT/cells/<slug>/rep<k>/`` where ``slug`` joins the cell's values filesystem-safely.
Runs execute one after another in this process (``workers=1``), in a ``spawn``
process pool (a script calling it with ``workers > 1`` needs the usual
``if __name__ == "__main__":`` guard; a worker that dies fails only its own run, see
``cosim.grid_pool``), or as Ray tasks on a Ray cluster
(``backend="ray"``, ``address="HOST:PORT"``; see ``cosim.grid_ray``); a run whose ``summary.json`` exists is skipped
(resume), after checking that its ``scenario.yaml`` is the one this grid would run.
Finally (:mod:`cosim.grid_table`) ``OUT/comparison.parquet``/``.csv`` get one row per cell and repeat (varied
columns are named by the resolved key; a varied ``seed`` is ``varied.seed``, the ``seed``
column being each run's own) and ``OUT/comparison.json`` the grid description.
"""

from __future__ import annotations

import itertools
import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.table import parse_assignments
from cosim.grid_table import collect_rows, write_comparison
from cosim.params import params_overrides
from cosim.scenario import ScenarioError, load_scenario
from cosim.scenario.components import algorithm_param_problems
from cosim.scenario.loader import same_resolved_scenario

#: Most runs (cells x repeats) of one comparison: every run is validated before any starts.
MAX_GRID_RUNS = 10_000


class CompareError(ValueError):
    """Some runs of the grid failed; one line per failed run."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def split_values(text: str) -> list[str]:
    """Split ``text`` on commas outside brackets, braces and quotes; strip each part."""
    parts: list[str] = []
    depth, quote, start = 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def parse_vary(items: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``["fl.selection=random,channel_aware"]`` -> ``[("fl.selection", ["random", "channel_aware"])]``."""
    result: list[tuple[str, list[str]]] = []
    problems: list[str] = []
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        values = split_values(text) if sep else []
        if not sep or not key or any(not part for part in key.split(".")):
            problems.append(f"--vary {item}: expected KEY.PATH=VALUE[,VALUE...]")
        elif any(not v for v in values):
            problems.append(f"--vary {item}: empty value")
        elif len(set(values)) != len(values):
            problems.append(f"--vary {item}: repeated value")
        else:
            result.append((key, values))
    if problems:
        raise ScenarioError(problems)
    return result


def expand_grid(value_lists: Sequence[Sequence[str]]) -> list[tuple[str, ...]]:
    """Cartesian product of the value lists (the first list varies slowest)."""
    return list(itertools.product(*value_lists))


def slugify(values: Sequence[str]) -> str:
    """Filesystem-safe directory name from a cell's values (``"base"`` for no values)."""
    text = "__".join(re.sub(r"[^A-Za-z0-9_.-]+", "-", v).strip("-.") or "x" for v in values)
    return text[:120] or "base"


def unique_slugs(cells: Sequence[Sequence[str]]) -> list[str]:
    """One slug per cell; cells whose slugs collide get ``-2``, ``-3``... suffixes."""
    slugs: list[str] = []
    seen: set[str] = set()
    for cell in cells:
        slug = base = slugify(cell)
        n = 1
        while slug in seen:
            n += 1
            slug = f"{base}-{n}"
        seen.add(slug)
        slugs.append(slug)
    return slugs


def resolve_key(data: Any, key: str) -> str:
    """``key`` or ``key + ".name"`` when the scenario's value there is a mapping with ``name``."""
    node = data
    for part in key.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and re.fullmatch(r"-?[0-9]+", part) and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            return key  # validation reports unknown keys by name
    return f"{key}.name" if isinstance(node, Mapping) and "name" in node else key


@dataclass(frozen=True)
class RunSpec:
    """One run of the grid: its cell's values, repeat, seed, overrides and directory (relative)."""

    values: tuple[str, ...]
    repeat: int
    seed: int
    overrides: tuple[str, ...]
    run_dir: str


@dataclass
class Plan:
    """A validated grid: resolved keys, cells (in grid order) and every run."""

    scenario: Path
    sets: tuple[str, ...]
    keys: tuple[str, ...]
    cells: list[tuple[str, ...]]
    slugs: list[str]
    runs: list[RunSpec]
    repeats: int
    baseline: dict[str, str] | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # tuned values (cosim.params), by algorithm
    expected_yaml: dict[str, str] = field(default_factory=dict, repr=False)


def build_plan(
    scenario: str | Path,
    vary: Sequence[str],
    sets: Sequence[str] = (),
    repeats: int = 1,
    baseline: str | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> Plan:
    """Parse ``--vary`` items, expand the grid and validate every cell's scenario up front.

    ``params`` (see :mod:`cosim.params`) adds its tuned values for a cell's algorithm
    after ``sets``, before the cell's values.
    """
    if repeats < 1:
        raise ScenarioError(f"--repeats {repeats}: must be >= 1")
    if repeats > MAX_GRID_RUNS:
        raise ScenarioError(f"--repeats {repeats}: at most {MAX_GRID_RUNS} runs per comparison")
    base = load_scenario(scenario, sets)
    dumped = base.model_dump(mode="python")
    parsed = parse_vary(vary)
    n_runs = math.prod(len(values) for _, values in parsed) * repeats
    if n_runs > MAX_GRID_RUNS:
        sizes = " x ".join(str(len(values)) for _, values in parsed) or "1"
        raise ScenarioError(f"--vary/--repeats: {sizes} cells x {repeats} repeats = {n_runs} runs, "
                            f"at most {MAX_GRID_RUNS} per comparison")
    keys = tuple(resolve_key(dumped, key) for key, _ in parsed)
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ScenarioError([f"--vary {k}: given more than once" for k in duplicates])
    cells = expand_grid([values for _, values in parsed])
    slugs = unique_slugs(cells)
    problems: list[str] = []
    runs: list[RunSpec] = []
    expected: dict[str, str] = {}
    for cell, slug in zip(cells, slugs):
        cell_overrides = [f"{k}={v}" for k, v in zip(keys, cell)]
        try:
            resolved = load_scenario(scenario, [*sets, *cell_overrides])
            tuned = params_overrides(params or {}, resolved.learning.algorithm.name)
            full = load_scenario(scenario, [*sets, *tuned, *cell_overrides]) if tuned else resolved
        except ScenarioError as exc:
            problems.extend(p for p in exc.problems if p not in problems)
            continue
        problems.extend(f"cell {', '.join(cell_overrides) or 'base'}: {p}" for p in algorithm_param_problems(full))
        seed = full.seed
        for k in range(repeats):
            overrides = (*sets, *tuned, *cell_overrides, f"seed={seed + k}")
            run_dir = f"cells/{slug}/rep{k}"
            runs.append(RunSpec(values=tuple(cell), repeat=k, seed=seed + k, overrides=overrides, run_dir=run_dir))
            expected[run_dir] = load_scenario(scenario, overrides).to_yaml()
    if problems:
        raise ScenarioError(problems)
    chosen: dict[str, str] | None = None
    if baseline:
        chosen = {}
        for key, value in parse_assignments(baseline).items():
            resolved = resolve_key(dumped, key)
            if resolved not in keys:
                raise ScenarioError(f"--baseline {key}: not a varied key (varied: {', '.join(keys) or 'none'})")
            allowed = [c[keys.index(resolved)] for c in cells]
            if value not in allowed:
                raise ScenarioError(f"--baseline {key}={value}: not a varied value ({', '.join(dict.fromkeys(allowed))})")
            chosen[resolved] = value
    return Plan(Path(scenario), tuple(sets), keys, [tuple(c) for c in cells], slugs, runs, repeats, chosen,
                {a: dict(v) for a, v in (params or {}).items()}, expected)


def _run_one(scenario: str, overrides: Sequence[str], out_dir: str) -> str | None:
    """Worker: run one grid point; return None on success, else a one-line reason.

    A Ctrl-C stop (``RunInterrupted``) is not a failure of this run: it propagates.
    """
    from cosim.engine import RunInterrupted, run_simulation

    try:
        command = [sys.executable, "-m", "cosim", "run", scenario, *(arg for o in overrides for arg in ("--set", o)),
                   "--out", out_dir]
        # overwrite: a cell without summary.json is this grid's unfinished run (a foreign or
        # locked directory is still refused, see cosim.engine.rundir)
        run_simulation(load_scenario(scenario, overrides), Path(out_dir), command=command, overwrite=True)
        return None
    except RunInterrupted:
        raise
    except Exception as exc:  # noqa: BLE001 - reported per run, the pool goes on
        first = (str(exc).splitlines() or [""])[0]
        return f"{type(exc).__name__}: {first}"


@dataclass
class RunReport:
    """What :func:`run_plan` did: run directories executed and skipped (relative)."""

    executed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def run_plan(plan: Plan, out: str | Path, workers: int = 1, log: Callable[[str], None] | None = None,
             backend: str = "local", address: str = "auto") -> RunReport:
    """Run every run of ``plan`` lacking a ``summary.json`` under ``out``: ``workers`` at a time
    on this machine (``backend="local"``) or as Ray tasks on the cluster at ``address``
    (``backend="ray"``)."""
    if backend not in ("local", "ray"):
        raise ValueError(f"--backend {backend!r}: allowed 'local', 'ray'")
    root = Path(out)
    say = log or (lambda _line: None)
    report = RunReport()
    pending: list[RunSpec] = []
    problems: list[str] = []
    for spec in plan.runs:
        run_dir = root / spec.run_dir
        if (run_dir / "summary.json").is_file():
            found = (run_dir / "scenario.yaml").read_text(encoding="utf-8") if (run_dir / "scenario.yaml").is_file() else ""
            if not same_resolved_scenario(found, plan.expected_yaml[spec.run_dir]):
                problems.append(f"{run_dir}: existing run has a different scenario.yaml; remove it or use another --out")
            report.skipped.append(spec.run_dir)
        else:
            pending.append(spec)
    if problems:
        raise CompareError(problems)
    total = len(plan.runs)
    where = f"{workers} worker(s)" if backend == "local" else f"Ray tasks at {address}"
    say(f"{len(report.skipped)} of {total} runs already done, {len(pending)} to run with {where}")
    if not pending:
        return report
    failures: list[str] = []

    def record(done: int, spec: RunSpec, error: str | None) -> None:
        if error is None:
            report.executed.append(spec.run_dir)
            say(f"[{done}/{len(pending)}] {spec.run_dir} done")
        else:
            failures.append(f"{spec.run_dir}: {error}")
            say(f"[{done}/{len(pending)}] {spec.run_dir} FAILED: {error}")

    if backend == "ray":
        from cosim.grid_ray import run_on_ray

        run_on_ray(plan.scenario, pending, root, address, workers, record)
    elif workers == 1:  # in this process: no pool to start, and scripts need no ``if __name__ == "__main__"``
        for done, spec in enumerate(pending, start=1):
            record(done, spec, _run_one(str(plan.scenario), list(spec.overrides), str(root / spec.run_dir)))
    else:  # a dead worker fails its own run only (see cosim.grid_pool)
        from cosim.grid_pool import run_in_pool

        run_in_pool(plan.scenario, pending, root, workers, record, say)
    if failures:
        raise CompareError(failures)
    return report


def compare(
    scenario: str | Path,
    vary: Sequence[str],
    out: str | Path,
    sets: Sequence[str] = (),
    repeats: int = 1,
    workers: int = 1,
    baseline: str | None = None,
    target_accuracy: float | None = None,
    log: Callable[[str], None] | None = None,
    backend: str = "local",
    address: str = "auto",
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[Plan, RunReport]:
    """Validate, run (resuming) and tabulate the grid (``params``: see :func:`build_plan`); returns the plan
    and what ran."""
    if target_accuracy is not None and not 0.0 <= target_accuracy <= 1.0:
        raise ScenarioError(f"--target-accuracy {target_accuracy:g}: must be in [0, 1] (accuracy is a fraction)")
    if backend == "ray":
        from cosim.scenario.components import ray_available

        if not ray_available():
            raise ScenarioError("--backend ray: needs Ray, which is not installed (pip install 'cosim[ray]'; "
                                "or --backend local)")
    plan = build_plan(scenario, vary, sets, repeats, baseline, params)
    from cosim.engine.rundir import check_grid_out

    check_grid_out(Path(out), scenario)  # cosim's own comparison directory, or a new one
    Path(out).mkdir(parents=True, exist_ok=True)
    report = run_plan(plan, out, workers, log, backend=backend, address=address)
    write_comparison(plan, out, collect_rows(plan, out, target_accuracy), target_accuracy)
    return plan, report
