"""``cosim tune``: choose an algorithm's hyper-parameters on the devices' validation splits.

:func:`tune` runs the Cartesian grid of ``--grid`` values for one algorithm
(``learning.algorithm.name`` set to it) with :func:`cosim.grid.compare`: the same up-front
validation, run directories ``OUT/cells/<slug>/rep<k>/``, workers or Ray tasks, and
resuming (a rerun skips every finished run); ``OUT/comparison.{parquet,csv,json}`` are
written as by ``cosim compare``. Each setting runs with ``seeds`` seeds (the scenario's
seed + k, k < seeds).

Selection: the metric is read from each run's ``summary.json`` and averaged over the
seeds of each setting; the highest mean wins. Means within :data:`TIE_TOLERANCE` of the
best are ties, broken by grid order: the setting first in the grid (the first ``--grid``
varies slowest, values in the order given) wins. A setting whose metric is missing or
not finite in any seed is never chosen.

Only validation metrics may be selected on (:data:`VALIDATION_METRICS`: the mean
per-device accuracy on the devices' validation splits, held out of their training
data); test metrics are refused, so test numbers stay untouched by tuning. A grid
key without a dot names an algorithm parameter (``lr`` is
``learning.algorithm.params.lr``).

Written: ``OUT/tuned.yaml`` (``{algorithm: {key: value}}``, read by ``cosim run`` /
``compare --params``, see :mod:`cosim.params`), ``OUT/tuning.csv`` (one row per
setting: mean, std, rank, chosen) and ``OUT/tuning.json`` (the grid, metric, seeds,
choice).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cosim.params import FORBIDDEN_KEYS, TunedParams, algorithm_problem, dump_params, full_key
from cosim.scenario import ScenarioError

if TYPE_CHECKING:
    import pandas as pd

#: ``--metric`` name -> the ``summary.json`` key it reads (all computed on validation splits only).
VALIDATION_METRICS = {"val_accuracy": "final_val_accuracy", "final_val_accuracy": "final_val_accuracy"}
#: Summary metrics measured on test splits: refused by name.
TEST_METRICS = ("final_accuracy", "final_mean_device_accuracy", "final_global_accuracy", "accuracy")
#: Keys a grid may not vary: they choose which run it is or what is measured, not how the algorithm trains.
UNTUNABLE_KEYS = (*FORBIDDEN_KEYS, "learning.mode", "learning.validation_fraction")
#: Means closer than this to the best one are ties (broken by grid order).
TIE_TOLERANCE = 1e-12


def check_metric(metric: str) -> str:
    """The summary key ``--metric`` reads; one-line ``ScenarioError`` unless it is a validation metric."""
    allowed = ", ".join(VALIDATION_METRICS)
    if metric in VALIDATION_METRICS:
        return VALIDATION_METRICS[metric]
    if metric in TEST_METRICS or ("accuracy" in metric and "val" not in metric):
        raise ScenarioError(f"--metric {metric}: a test metric; tuning selects on validation metrics only "
                            f"(allowed: {allowed})")
    raise ScenarioError(f"--metric {metric}: not a validation metric of the run summary (allowed: {allowed})")


def grid_items(grid: Sequence[str]) -> list[str]:
    """``--grid`` items with dot-less keys expanded (``lr=1,2`` -> ``learning.algorithm.params.lr=1,2``)."""
    if not grid:
        raise ScenarioError("--grid: empty; give at least one --grid KEY=V1,V2,... (e.g. --grid lr=1e-3,5e-3)")
    from cosim.grid import parse_vary

    try:
        parse_vary(grid)
    except ScenarioError as exc:
        raise ScenarioError([p.replace("--vary ", "--grid ", 1) for p in exc.problems]) from None
    items = []
    for item in grid:
        key, _, text = item.partition("=")
        full = full_key(key)
        if key.strip() in UNTUNABLE_KEYS or full in UNTUNABLE_KEYS:
            raise ScenarioError(f"--grid {key.strip()}: cannot be tuned (not allowed: {', '.join(UNTUNABLE_KEYS)}; "
                                "seeds: --seeds)")
        items.append(f"{full}={text}")
    return items


def _check_setup(scenario: str | Path, algorithm: str, sets: Sequence[str], grid: Sequence[str]) -> None:
    """Refuse an unknown algorithm, a scenario without validation accuracy, and bad grid keys or values
    (each ``--grid`` value checked on the base scenario, with the components' own checks)."""
    from cosim.api import load_scenario
    from cosim.grid import parse_vary

    problem = algorithm_problem(algorithm)
    if problem is not None:
        raise ScenarioError(f"--algorithm {algorithm}: {problem.removeprefix('algorithm ')}")
    base = load_scenario(scenario, list(sets))
    if base.learning.mode != "train":
        raise ScenarioError(f"learning.mode: {base.learning.mode!r} computes no accuracy; tune needs 'train'")
    if base.learning.validation_fraction <= 0:
        raise ScenarioError("learning.validation_fraction: 0 leaves no validation split; tune needs a value in (0, 1)")
    problems: list[str] = []
    for key, values in parse_vary(grid):
        for value in values:
            try:
                load_scenario(scenario, [*sets, f"{key}={value}"])
            except ScenarioError as exc:  # a bad key fails every value: one line each
                for p in exc.problems:
                    line = p if p.startswith(key) else f"--grid {key}: {p}"
                    problems.extend([line] if line not in problems else [])
    if problems:
        raise ScenarioError(problems)


@dataclass
class Tuning:
    """What :func:`tune` found: ``table`` (one row per setting), ``runs`` (one per run),
    ``params`` (what ``file`` holds: ``{algorithm: {key: value}}``)."""

    table: pd.DataFrame
    runs: pd.DataFrame
    params: TunedParams
    file: Path

    @property
    def chosen(self) -> dict[str, Any]:
        """The chosen setting: ``{scenario key: value}``."""
        return next(iter(self.params.values()))


def select(means: Sequence[float]) -> int | None:
    """Index of the best mean (highest; ties within :data:`TIE_TOLERANCE` -> lowest index); None if none is finite."""
    finite = [m for m in means if math.isfinite(m)]
    if not finite:
        return None
    best = max(finite)
    return next(i for i, m in enumerate(means) if math.isfinite(m) and m >= best - TIE_TOLERANCE)


def _ranks(means: Sequence[float]) -> list[int | None]:
    order = sorted((i for i, m in enumerate(means) if math.isfinite(m)), key=lambda i: (-round(means[i], 12), i))
    ranks: list[int | None] = [None] * len(means)
    for rank, i in enumerate(order, start=1):
        ranks[i] = rank
    return ranks


def tune(
    scenario: str | Path,
    algorithm: str,
    grid: Sequence[str],
    out: str | Path,
    metric: str = "val_accuracy",
    seeds: int = 1,
    sets: Sequence[str] = (),
    workers: int = 1,
    log: Callable[[str], None] | None = None,
    backend: str = "local",
    address: str = "auto",
) -> Tuning:
    """Run (resuming) the grid for ``algorithm``, pick the best setting on ``metric``, write ``OUT/tuned.yaml``."""
    import pandas as pd

    from analysis.io import read_summary, varied_column
    from cosim.grid import compare
    from cosim.scenario.yaml_safe import parse_yaml
    from cosim.trace import write_json_atomic, write_text_atomic

    summary_key = check_metric(metric)
    if seeds < 1:
        raise ScenarioError(f"--seeds {seeds}: must be >= 1")
    items = grid_items(grid)
    run_sets = [*sets, f"learning.algorithm.name={algorithm}"]
    _check_setup(scenario, algorithm, run_sets, items)
    plan, _ = compare(scenario, items, out, sets=run_sets, repeats=seeds, workers=workers, log=log,
                      backend=backend, address=address)
    root = Path(out)
    columns = [varied_column(k) for k in plan.keys]
    rows = []
    for spec in plan.runs:
        value = read_summary(root / spec.run_dir).get(summary_key)
        rows.append({**dict(zip(columns, spec.values)), "repeat": spec.repeat, "seed": spec.seed,
                     "run_dir": spec.run_dir, metric: math.nan if value is None else float(value)})
    runs = pd.DataFrame(rows)
    means, stds, counts = [], [], []
    for cell in plan.cells:
        values = [r[metric] for r in rows if tuple(r[c] for c in columns) == cell]
        ok = len(values) == seeds and all(math.isfinite(v) for v in values)
        means.append(sum(values) / len(values) if ok else math.nan)
        stds.append(float(pd.Series(values).std(ddof=1)) if ok and seeds > 1 else math.nan)
        counts.append(sum(math.isfinite(v) for v in values))
    best = select(means)
    if best is None:
        raise ScenarioError(f"--metric {metric}: no setting has a finite {summary_key} in every seed's summary.json "
                            f"(devices too small for a validation split? raise learning.validation_fraction)")
    table = pd.DataFrame({c: [cell[i] for cell in plan.cells] for i, c in enumerate(columns)})
    table["n"] = counts
    table[f"{metric}_mean"], table[f"{metric}_std"] = means, stds
    table["rank"] = pd.array(_ranks(means), dtype="Int64")
    table["chosen"] = [i == best for i in range(len(plan.cells))]
    chosen = {key: parse_yaml(value) for key, value in zip(plan.keys, plan.cells[best])}
    params: TunedParams = {algorithm: chosen}
    header = [f"cosim tune {algorithm} on {plan.scenario}: best {metric} (mean over {seeds} seed(s)) "
              f"{means[best]:.6g} of {len(plan.cells)} settings; ties go to the first in grid order",
              "use: cosim compare/run ... --params THIS_FILE (applied to runs of this algorithm)"]
    file = write_text_atomic(root / "tuned.yaml", dump_params(params, header))
    write_text_atomic(root / "tuning.csv", table.to_csv(index=False))
    write_json_atomic(root / "tuning.json", {
        "scenario": str(plan.scenario), "algorithm": algorithm, "sets": list(sets),
        "grid": {k: list(dict.fromkeys(c[i] for c in plan.cells)) for i, k in enumerate(plan.keys)},
        "metric": metric, "summary_key": summary_key, "seeds": seeds, "chosen": chosen,
        "best_mean": means[best], "tie_rule": "highest mean; ties within 1e-12 go to the first setting in grid order",
    })
    table.attrs.update(out=str(root), metric=metric, chosen=chosen)
    return Tuning(table=table, runs=runs, params=params, file=file)
