"""Comparison tables: per-cell mean ± std over repeats, ratios to a baseline, claims.

Everything here works on a :class:`analysis.io.Comparison` (a comparison file read back
from disk), so ``cosim compare`` and ``python -m analysis table`` print the same numbers.

- :func:`aggregate` — per grid cell (a pandas group-by over the varied keys): number
  of repeats, mean, sample std (ddof=1; NaN for one repeat, exactly 0 when every
  repeat has the same value) and count of finite values of every metric (NaN values,
  e.g. a ``time_to_target_s`` never reached, are left out of mean and std).
- :func:`baseline_refs` — for every cell, the cell it is compared with: the cell whose
  values equal the ``--baseline`` assignment on the keys it names and equal this cell's
  own values on the other keys (so ``--baseline learning.algorithm=fedavg`` compares
  each selection policy with FedAvg under that same policy); default: the first cell.
- :func:`claims` — the method's cell against every other algorithm's cell that agrees
  on the other varied keys: energy and time reduction in % (100·(1 − X_m/X_b)) and
  accuracy gain in percentage points (100·(A_m − A_b)).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.io import COMPARISON_METRICS, VARIED_PREFIX, Comparison, varied_column

ALGORITHM_KEYS = ("learning.algorithm.name", "learning.algorithm")


def time_to_target_s(rounds: pd.DataFrame | Mapping[str, Any], target: float) -> float:
    """Simulated time at the end of the first round whose ``accuracy`` ≥ ``target``; NaN if none.

    ``rounds`` is a run's rounds table (``round``, ``end_s``, ``accuracy`` columns).
    """
    frame = pd.DataFrame(rounds)[["round", "end_s", "accuracy"]].sort_values("round", kind="stable")
    reached = frame[frame["accuracy"].astype(float) >= target]  # NaN compares False
    return float(reached["end_s"].iloc[0]) if len(reached) else math.nan


@dataclass(frozen=True)
class CellStats:
    """Statistics of one grid cell over its repeats."""

    values: tuple[str, ...]
    n: int
    mean: dict[str, float]
    std: dict[str, float]
    count: dict[str, int]


def aggregate(comparison: Comparison, metrics: Sequence[str] = COMPARISON_METRICS) -> list[CellStats]:
    """Mean, sample std and finite count of each metric per cell, cells in file order."""
    frame = comparison.frame
    values = frame[list(metrics)].astype("float64").replace([np.inf, -np.inf], np.nan)
    keys = [frame[k] for k in comparison.varied] or [pd.Series(0, index=frame.index)]
    grouped = values.groupby(keys, sort=False)
    n = grouped.size()
    mean, std, count = grouped.mean(), grouped.std(ddof=1), grouped.count()
    constant = (count > 1) & (grouped.max() == grouped.min())
    std = std.mask(constant, 0.0)  # identical repeats: 0, not the rounding noise of the mean
    stats: list[CellStats] = []
    for cell in comparison.cells():
        at = cell if len(cell) > 1 else (cell[0] if cell else 0)
        stats.append(CellStats(
            values=cell,
            n=int(n.loc[at]),
            mean={m: float(mean.loc[at, m]) for m in metrics},
            std={m: float(std.loc[at, m]) for m in metrics},
            count={m: int(count.loc[at, m]) for m in metrics},
        ))
    return stats


def resolve_key(varied: Sequence[str], key: str) -> str:
    """Match ``key`` to a varied column, accepting the ``<key>.name`` shorthand both ways."""
    for candidate in (key, f"{key}.name", key.removesuffix(".name"), varied_column(key)):
        if candidate in varied:
            return candidate
    raise ValueError(f"{key}: not a varied key (varied: {', '.join(varied) or 'none'})")


def parse_assignments(text: str) -> dict[str, str]:
    """``"k=v,k2=v2"`` -> ``{"k": "v", "k2": "v2"}``."""
    result: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--baseline {text}: expected KEY=VALUE[,KEY=VALUE]")
        result[key.strip()] = value.strip()
    return result


def baseline_refs(
    stats: Sequence[CellStats], varied: Sequence[str], baseline: Mapping[str, str] | None = None
) -> list[int]:
    """Index into ``stats`` of each cell's reference cell (see the module docstring)."""
    if not stats:
        return []
    if not baseline:
        return [0] * len(stats)
    wanted = {resolve_key(varied, key): value for key, value in baseline.items()}
    for key, value in wanted.items():
        index = list(varied).index(key)
        seen = {s.values[index] for s in stats}
        if value not in seen:
            raise ValueError(f"--baseline {key}={value}: no such cell (values: {', '.join(sorted(seen))})")
    by_values = {s.values: i for i, s in enumerate(stats)}
    refs: list[int] = []
    for s in stats:
        target = tuple(wanted.get(key, own) for key, own in zip(varied, s.values))
        if target not in by_values:
            raise ValueError(f"baseline cell {', '.join(target)} for {', '.join(s.values)} was not run")
        refs.append(by_values[target])
    return refs


def ratio(value: float, reference: float) -> float:
    """``value / reference``; NaN when either is NaN or the reference is 0."""
    if not (math.isfinite(value) and math.isfinite(reference)) or reference == 0:
        return math.nan
    return value / reference


def short_key(key: str) -> str:
    """Column label for a dotted key: its last segment (``learning.algorithm.name`` -> ``algorithm``)."""
    parts = key.removeprefix(VARIED_PREFIX).split(".")
    return parts[-2] if parts[-1] == "name" and len(parts) > 1 else parts[-1]


def key_labels(varied: Sequence[str]) -> list[str]:
    """Table headers of the varied keys: each :func:`short_key`, or the full key where the short one
    is also a metric's header or another varied key's (``fl.rounds`` next to the ``rounds`` metric)."""
    shorts = [short_key(k) for k in varied]
    return [k.removeprefix(VARIED_PREFIX) if s in COMPARISON_METRICS or shorts.count(s) > 1 else s
            for k, s in zip(varied, shorts)]


def fmt_number(value: float) -> str:
    """Compact number: ``n/a`` for NaN, 4 significant digits otherwise."""
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.4g}"


#: A spread below this fraction of the mean is rounding noise (repeats agreeing to ~12 digits) and prints as 0.
NOISE_RELATIVE = 1e-12


def fmt_spread(std: float, mean: float) -> str:
    """The ``± std`` text of a mean: ``0`` when the spread is rounding noise (see :data:`NOISE_RELATIVE`)."""
    if math.isfinite(std) and math.isfinite(mean) and abs(std) <= NOISE_RELATIVE * abs(mean):
        return "0"
    return fmt_number(std)


def render(headers: Sequence[str], rows: Sequence[Sequence[str]], fmt: str = "text") -> str:
    """Aligned plain-text table (``text``) or a GitHub pipe table (``markdown``)."""
    if fmt not in ("text", "markdown"):
        raise ValueError(f"unknown table format {fmt!r} (expected text or markdown)")
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = [str(c).ljust(w) for c, w in zip(cells, widths)]
        return "| " + " | ".join(padded) + " |" if fmt == "markdown" else "  ".join(padded).rstrip()

    rule = (
        "|" + "|".join("-" * (w + 2) for w in widths) + "|" if fmt == "markdown" else "  ".join("-" * w for w in widths)
    )
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def format_cells(comparison: Comparison, baseline: Mapping[str, str] | None = None, fmt: str = "text") -> str:
    """Two tables: mean ± std over repeats per cell, then each cell's means ÷ its baseline's."""
    stats = aggregate(comparison)
    refs = baseline_refs(stats, comparison.varied, baseline)
    keys = key_labels(comparison.varied)
    head = [*keys, "n", *COMPARISON_METRICS]
    body: list[list[str]] = []
    for s in stats:
        cells = []
        for m in COMPARISON_METRICS:
            text = fmt_number(s.mean[m])
            if math.isfinite(s.std[m]):
                text += f" ± {fmt_spread(s.std[m], s.mean[m])}"
            if s.count[m] < s.n:
                text += f" [{s.count[m]}/{s.n}]"
            cells.append(text)
        body.append([*s.values, str(s.n), *cells])
    ratio_head = [*keys, "baseline", *(f"{m} ratio" for m in COMPARISON_METRICS)]
    ratio_body = [
        [*s.values, ", ".join(stats[r].values) or "-",
         *(fmt_number(ratio(s.mean[m], stats[r].mean[m])) for m in COMPARISON_METRICS)]
        for s, r in zip(stats, refs)
    ]
    return (
        "mean ± std over repeats ([k/n]: metric defined in k of n repeats)\n"
        + render(head, body, fmt)
        + "\n\nratio of cell means to the baseline cell's means\n"
        + render(ratio_head, ratio_body, fmt)
    )


@dataclass(frozen=True)
class Claim:
    """The method against one baseline algorithm, in cells agreeing on the other varied keys."""

    others: tuple[str, ...]
    baseline: str
    energy_reduction_pct: float
    time_reduction_pct: float
    time_to_target_reduction_pct: float
    accuracy_gain_pts: float


def reduction_pct(method: float, baseline: float) -> float:
    """``100·(1 − method/baseline)``; NaN when undefined."""
    r = ratio(method, baseline)
    return 100.0 * (1.0 - r) if math.isfinite(r) else math.nan


def algorithm_key(varied: Sequence[str]) -> str:
    """The varied column naming the algorithm (``learning.algorithm.name`` or ``learning.algorithm``)."""
    for key in ALGORITHM_KEYS:
        if key in varied:
            return key
    raise ValueError(f"the comparison does not vary learning.algorithm (varied: {', '.join(varied) or 'none'})")


def claims(comparison: Comparison, method: str = "pfl_tps") -> list[Claim]:
    """The method's cells against every other algorithm's cell with the same other varied values."""
    key = algorithm_key(comparison.varied)
    at = comparison.varied.index(key)
    stats = aggregate(comparison)
    algorithms = list(dict.fromkeys(s.values[at] for s in stats))
    if method not in algorithms:
        raise ValueError(f"method {method!r} is not among the compared algorithms ({', '.join(algorithms)})")
    groups: dict[tuple[str, ...], dict[str, CellStats]] = {}
    for s in stats:
        others = s.values[:at] + s.values[at + 1:]
        groups.setdefault(others, {})[s.values[at]] = s
    result: list[Claim] = []
    for others, cells in groups.items():
        if method not in cells:
            continue
        m = cells[method]
        for name, b in cells.items():
            if name == method:
                continue
            acc = m.mean["final_accuracy"] - b.mean["final_accuracy"]
            result.append(Claim(
                others=others,
                baseline=name,
                energy_reduction_pct=reduction_pct(m.mean["energy_j"], b.mean["energy_j"]),
                time_reduction_pct=reduction_pct(m.mean["sim_time_s"], b.mean["sim_time_s"]),
                time_to_target_reduction_pct=reduction_pct(m.mean["time_to_target_s"], b.mean["time_to_target_s"]),
                accuracy_gain_pts=100.0 * acc if math.isfinite(acc) else math.nan,
            ))
    return result


def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:+.1f}"


def format_claims(comparison: Comparison, method: str = "pfl_tps", fmt: str = "text") -> str:
    """The claims table as aligned text or markdown (see :func:`claims`)."""
    found = claims(comparison, method)
    key = algorithm_key(comparison.varied)
    other_keys = [label for k, label in zip(comparison.varied, key_labels(comparison.varied)) if k != key]
    with_ttt = any(math.isfinite(c.time_to_target_reduction_pct) for c in found)
    target = comparison.meta.get("target_accuracy")
    ttt_head = f"time-to-target reduction % (acc ≥ {target:g})" if isinstance(target, (int, float)) else (
        "time-to-target reduction %")
    head = [*other_keys, "vs", "energy reduction %", "time reduction %",
            *([ttt_head] if with_ttt else []), "accuracy gain (pts)"]
    body = [
        [*c.others, c.baseline, _pct(c.energy_reduction_pct), _pct(c.time_reduction_pct),
         *([_pct(c.time_to_target_reduction_pct)] if with_ttt else []), _pct(c.accuracy_gain_pts)]
        for c in found
    ]
    title = f"{method}: 100·(1 − E_{method}/E_base), 100·(1 − T_{method}/T_base), 100·(A_{method} − A_base)"
    return title + "\n" + render(head, body, fmt)
