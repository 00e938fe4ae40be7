"""The comparison table of ``cosim compare``: one row per run of a grid, and its files.

:func:`collect_rows` reads every finished run directory of a :class:`cosim.grid.Plan`
(``summary.json``, and the ``rounds`` trace for ``time_to_target_s``);
:func:`write_comparison` writes the rows as ``OUT/comparison.parquet``/``.csv`` (varied
columns named by the resolved key, see :func:`analysis.io.varied_column`) and the grid
description as ``OUT/comparison.json``, each atomically.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from analysis.io import COMPARISON_STEM, read_summary, read_trace, varied_column
from analysis.table import time_to_target_s
from cosim.trace import write_csv_atomic, write_json_atomic, write_parquet_atomic

if TYPE_CHECKING:
    from cosim.grid import Plan

__all__ = ["collect_rows", "write_comparison"]

_INT_COLUMNS = ("repeat", "seed", "uplink_bytes", "downlink_bytes", "rounds")
_FLOAT_COLUMNS = ("final_accuracy", "sim_time_s", "time_to_target_s", "energy_j")


def _number(summary: Mapping[str, Any], key: str) -> float:
    value = summary.get(key)
    return math.nan if value is None else float(value)


def collect_rows(plan: Plan, out: str | Path, target_accuracy: float | None = None) -> list[dict[str, Any]]:
    """One comparison row per run of ``plan`` from its finished run directory."""
    root = Path(out)
    rows: list[dict[str, Any]] = []
    for spec in plan.runs:
        run_dir = root / spec.run_dir
        summary = read_summary(run_dir)
        ttt = math.nan
        if target_accuracy is not None:
            ttt = time_to_target_s(read_trace(run_dir, "rounds"), target_accuracy)
        row: dict[str, Any] = {varied_column(k): v for k, v in zip(plan.keys, spec.values)}
        row.update(
            repeat=spec.repeat,
            seed=spec.seed,
            run_dir=spec.run_dir,
            final_accuracy=_number(summary, "final_accuracy"),
            sim_time_s=_number(summary, "sim_time_s"),
            time_to_target_s=ttt,
            energy_j=_number(summary, "energy_j"),
            uplink_bytes=int(summary["uplink_bytes"]),
            downlink_bytes=int(summary["downlink_bytes"]),
            rounds=int(summary["rounds"]),
        )
        rows.append(row)
    return rows


def write_comparison(plan: Plan, out: str | Path, rows: Sequence[Mapping[str, Any]],
                     target_accuracy: float | None = None) -> list[Path]:
    """Write ``comparison.parquet``, ``comparison.csv`` and ``comparison.json`` atomically."""
    root = Path(out)
    fields = [pa.field(varied_column(k), pa.string()) for k in plan.keys]
    fields += [pa.field("repeat", pa.int64()), pa.field("seed", pa.int64()), pa.field("run_dir", pa.string())]
    fields += [pa.field(k, pa.int64() if k in _INT_COLUMNS else pa.float64())
               for k in ("final_accuracy", "sim_time_s", "time_to_target_s", "energy_j",
                         "uplink_bytes", "downlink_bytes", "rounds")]
    schema = pa.schema(fields)
    table = pa.table({f.name: [row[f.name] for row in rows] for f in schema}, schema=schema)
    meta = {
        "scenario": str(plan.scenario),
        "sets": list(plan.sets),
        "vary": {k: list(dict.fromkeys(c[i] for c in plan.cells)) for i, k in enumerate(plan.keys)},
        "repeats": plan.repeats,
        "baseline": plan.baseline,
        "params": plan.params,
        "target_accuracy": target_accuracy,
        "command": list(sys.argv),
    }
    return [
        write_parquet_atomic(root / f"{COMPARISON_STEM}.parquet", table),
        write_csv_atomic(root / f"{COMPARISON_STEM}.csv", table),
        write_json_atomic(root / f"{COMPARISON_STEM}.json", meta),
    ]
