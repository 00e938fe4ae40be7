"""One self-contained HTML page for a run or a comparison (``python -m analysis report``).

The page holds, in order: what was run (the resolved scenario; for a comparison the
grid: varied keys, repeats, baseline), the summary (``summary.json``; for a
comparison the per-cell mean ± std and ratio tables, and the claims table when
``learning.algorithm`` is varied), the per-round table of a run (for a comparison, of
its first run), and every plot of :data:`analysis.plots.PLOTS`. Figures are embedded
as base64 PNG ``data:`` URLs and the style sheet is inline, so the file opens
anywhere, offline, on its own; the page has no scripts.
"""

from __future__ import annotations

import base64
import html
import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.io import COMPARISON_METRICS, is_comparison_dir, is_run_dir, read_comparison, read_summary, read_trace
from analysis.plots import PLOTS, collect_series, plot_all
from analysis.table import (
    aggregate,
    algorithm_key,
    baseline_refs,
    claims,
    fmt_number,
    fmt_spread,
    ratio,
    short_key,
)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; background: #fff; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .88em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
pre { background: #f7f7f7; border: 1px solid #ddd; padding: .8em; overflow-x: auto; font-size: .85em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #555; } .note { color: #555; font-size: .9em; }
.wide { overflow-x: auto; } summary { cursor: pointer; margin: .4em 0; }
"""
#: Rows of the per-round table shown in full; longer runs show the first and last rows.
MAX_ROUND_ROWS = 60


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _frame_html(frame: pd.DataFrame) -> str:
    table = frame.to_html(index=False, border=0, na_rep="n/a", escape=True, float_format=lambda v: f"{v:.6g}")
    return f'<div class="wide">{table}</div>'


def _pre(text: str, label: str | None = None) -> str:
    """``text`` preformatted; with ``label``, folded under it (a ``<details>`` element, no script needed)."""
    block = f"<pre>{_esc(text)}</pre>"
    if label is None:
        return block
    return f"<details><summary>{_esc(label)} ({len(text.splitlines())} lines)</summary>{block}</details>"


def _summary_table(summary: Mapping[str, Any]) -> str:
    rows = [{"key": key, "value": fmt_number(v) if isinstance(v, float) else str(v)}
            for key, v in sorted(summary.items())]
    return _frame_html(pd.DataFrame(rows, columns=["key", "value"]))


def _rounds_table(run: Path) -> str:
    rounds = read_trace(run, "rounds")
    note = ""
    if len(rounds) > MAX_ROUND_ROWS:
        half = MAX_ROUND_ROWS // 2
        note = f'<p class="note">{len(rounds)} rounds: the first and last {half} are shown.</p>'
        rounds = pd.concat([rounds.head(half), rounds.tail(half)])
    return note + _frame_html(rounds)


def cells_frames(comparison: Any, baseline: Mapping[str, str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per cell, as text: (repeats and mean ± std of each metric, each mean's ratio to the baseline cell's)."""
    stats = aggregate(comparison)
    refs = baseline_refs(stats, comparison.varied, baseline)
    spread, ratios = [], []
    for s, r in zip(stats, refs):
        keys: dict[str, str] = {short_key(k): v for k, v in zip(comparison.varied, s.values)}
        row = {**keys, "n": str(s.n)}
        for m in COMPARISON_METRICS:
            text = fmt_number(s.mean[m])
            if math.isfinite(s.std[m]):
                text += f" ± {fmt_spread(s.std[m], s.mean[m])}"
            if s.count[m] < s.n:
                text += f" [{s.count[m]}/{s.n}]"
            row[m] = text
        spread.append(row)
        ratios.append({**keys, "baseline": ", ".join(stats[r].values) or "-",
                       **{m: fmt_number(ratio(s.mean[m], stats[r].mean[m])) for m in COMPARISON_METRICS}})
    return pd.DataFrame(spread), pd.DataFrame(ratios)


def claims_frame(comparison: Any, method: str) -> pd.DataFrame:
    """The claims table (see :func:`analysis.table.claims`) with signed percentages as text."""
    key = algorithm_key(comparison.varied)
    others = [short_key(k) for k in comparison.varied if k != key]

    def pct(value: float) -> str:
        return "n/a" if not math.isfinite(value) else f"{value:+.1f}"

    return pd.DataFrame([
        {**dict(zip(others, c.others)), "vs": c.baseline, "energy reduction %": pct(c.energy_reduction_pct),
         "time reduction %": pct(c.time_reduction_pct),
         "time-to-target reduction %": pct(c.time_to_target_reduction_pct),
         "accuracy gain (pts)": pct(c.accuracy_gain_pts)}
        for c in claims(comparison, method)
    ])


def _figures(paths: Sequence[Path], round_index: int) -> str:
    parts = []
    with tempfile.TemporaryDirectory(prefix="cosim-report-") as tmp:
        for png in plot_all(paths, tmp, round_index=round_index):
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            parts.append(f'<figure><img alt="{_esc(png.stem)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{_esc(png.name)}</figcaption></figure>")
    return "\n".join(parts)


def _comparison_sections(directory: Path, method: str) -> tuple[str, list[tuple[str, str]]]:
    comparison = read_comparison(directory)
    meta = comparison.meta
    grid = {k: meta.get(k) for k in ("scenario", "sets", "vary", "repeats", "baseline", "target_accuracy")}
    first_run = comparison.run_dir(str(comparison.frame["run_dir"].iloc[0]))
    scenario_text = (first_run / "scenario.yaml").read_text(encoding="utf-8")
    baseline = meta.get("baseline") if isinstance(meta.get("baseline"), dict) else None
    spread, ratios = cells_frames(comparison, baseline)
    sections = [
        ("Scenario", "<h3>Grid</h3>" + _pre(json.dumps(grid, indent=2))
         + _pre(scenario_text, f"scenario.yaml of the first run, {first_run.relative_to(directory)}")),
        ("Summary", '<h3>Mean ± std over repeats</h3><p class="note">[k/n]: metric defined in k of n repeats.</p>'
         + _frame_html(spread) + "<h3>Ratio of cell means to the baseline cell's</h3>" + _frame_html(ratios)),
    ]
    try:
        table = claims_frame(comparison, method)
        claims_html = (f'<p class="note">{_esc(method)}: 100·(1 − E/E<sub>base</sub>), 100·(1 − T/T<sub>base</sub>), '
                       f"100·(A − A<sub>base</sub>) against each other algorithm.</p>" + _frame_html(table))
    except ValueError as exc:
        claims_html = f'<p class="note">No claims table: {_esc(exc)}.</p>'
    sections.append(("Claims", claims_html))
    sections.append((f"Per round: {first_run.relative_to(directory)}", _rounds_table(first_run)))
    return f"comparison {directory.resolve().name}", sections


def _run_sections(run: Path) -> tuple[str, list[tuple[str, str]]]:
    scenario_text = (run / "scenario.yaml").read_text(encoding="utf-8")
    summary = read_summary(run) if (run / "summary.json").is_file() else {}
    summary_html = _summary_table(summary) if summary else '<p class="note">Unfinished run: no summary.json.</p>'
    return f"run {run.resolve().name}", [
        ("Scenario", _pre(scenario_text, "scenario.yaml")),
        ("Summary", summary_html),
        ("Per round", _rounds_table(run)),
    ]


def build_report(path: str | Path, out: str | Path, method: str = "pfl_tps", round_index: int = 0) -> Path:
    """Write the one-page HTML report of the run or comparison directory ``path`` to ``out``."""
    source = Path(path)
    if is_comparison_dir(source):
        title, sections = _comparison_sections(source, method)
    elif is_run_dir(source):
        title, sections = _run_sections(source)
    else:
        raise FileNotFoundError(2, "neither a run directory nor a comparison directory", str(source))
    series = collect_series([source])
    sections.append(("Plots", _figures([source], round_index)
                     + f'<p class="note">{len(series)} series; timeline and map show {_esc(series[0].runs[0])}.</p>'))
    body = "\n".join(f"<section><h2>{_esc(name)}</h2>\n{content}</section>" for name, content in sections)
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>cosim report: {_esc(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body><h1>cosim report: {_esc(title)}</h1>"
            f'<p class="note">{_esc(source)}; plots: {", ".join(PLOTS)}.</p>\n{body}\n</body></html>\n')
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    return target


__all__ = ["build_report", "cells_frames", "claims_frame"]
