"""The Results tables of ``python -m analysis paper``, from the frame :func:`analysis.paper.collect` returns.

Per data setting:

- **per method**: mean ± 95 % Student-t half-width over seeds of accuracy, validation
  accuracy, energy, simulated time, time to the target accuracy, uplink bytes and the
  PFL-TPS pruning statistics, with ``[k/n]`` wherever a metric exists for only k of n
  seeds (a target never reached, a statistic only pruning methods have); with a spec's
  ``convergence_rounds`` K also the *late gain*: the test accuracy gained over the last K
  rounds, i.e. whether a method was still learning when the run stopped;
- **paired, the spec's method against each other method** on the same seeds: accuracy
  gain in points, energy and time reduction in % (per seed, 100·(1 − X_m/X_b)), each
  with its 95 % CI, the paired t-test and Wilcoxon p-values of the underlying metric, and
  a verdict that says only what the data supports: ``better``/``worse`` when the t-test
  gives p < 0.05, otherwise ``no significant difference``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.stats import format_mean_ci, mean_ci, paired_test

__all__ = ["method_table", "paired_table", "results_markdown", "verdict"]

#: (column, heading, format) of the per-method table
METHOD_COLUMNS = (
    ("final_accuracy", "test accuracy", ".4f"),
    ("final_val_accuracy", "val accuracy", ".4f"),
    ("energy_j", "energy [J]", ".1f"),
    ("sim_time_s", "sim time [s]", ".1f"),
    ("time_to_target_s", "time to target [s]", ".1f"),
    ("uplink_bytes", "uplink [B]", ".4g"),
    ("mean_ffl_density", "mean FFL density", ".3f"),
    ("threshold_resets", "threshold resets", ".1f"),
    ("holdout_accuracy", "held-out accuracy", ".4f"),
    ("late_gain_pts", "late gain [pts]", "+.2f"),
)
#: columns left out of a setting's table when no method has them (pruning statistics,
#: new-device accuracy of runs with ``learning.holdout_devices``, ...)
OPTIONAL_COLUMNS = ("final_val_accuracy", "mean_ffl_density", "threshold_resets", "holdout_accuracy",
                    "late_gain_pts")
ALPHA = 0.05


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _by_seed(frame: pd.DataFrame, method: str, column: str, seeds: Sequence[int]) -> np.ndarray:
    """``column`` of ``method`` in seed order (NaN for a seed the method lacks)."""
    rows = frame[frame["method"] == method].set_index("seed")[column]
    return np.array([float(rows.get(s, math.nan)) for s in seeds], dtype=np.float64)


def method_table(frame: pd.DataFrame) -> str:
    """Markdown table of mean ± 95 % CI per method (one setting's rows)."""
    columns = [c for c in METHOD_COLUMNS if c[0] in frame.columns
               and (c[0] not in OPTIONAL_COLUMNS or frame[c[0]].notna().any())]
    rows = []
    for method, group in frame.groupby("method", sort=False):
        cells = [format_mean_ci(mean_ci(group[col].tolist()), fmt) for col, _, fmt in columns]
        rows.append([str(method), str(len(group)), *cells])
    return _markdown(["method", "n", *(heading for _, heading, _ in columns)], rows)


def verdict(p_value: float, mean_diff: float, higher_is_better: bool) -> str:
    """``better`` / ``worse`` for the method when p < 0.05, else ``no significant difference``."""
    if not math.isfinite(p_value) or p_value >= ALPHA or mean_diff == 0:
        return "no significant difference"
    return "better" if (mean_diff > 0) == higher_is_better else "worse"


def _p(value: float) -> str:
    return "n/a" if not math.isfinite(value) else (f"{value:.3f}" if value >= 0.001 else "<0.001")


def paired_table(frame: pd.DataFrame, method: str) -> str:
    """Markdown table of ``method`` against every other method of one setting, paired by seed."""
    seeds = sorted(int(s) for s in frame["seed"].unique())
    rows = []
    acc_m = _by_seed(frame, method, "final_accuracy", seeds)
    energy_m = _by_seed(frame, method, "energy_j", seeds)
    time_m = _by_seed(frame, method, "sim_time_s", seeds)
    held_out = "holdout_accuracy" in frame.columns and bool(frame["holdout_accuracy"].notna().any())
    held_m = _by_seed(frame, method, "holdout_accuracy", seeds) if held_out else None
    for other in frame["method"].unique():
        if other == method:
            continue
        acc_b = _by_seed(frame, other, "final_accuracy", seeds)
        energy_b = _by_seed(frame, other, "energy_j", seeds)
        time_b = _by_seed(frame, other, "sim_time_s", seeds)
        acc = paired_test(100 * acc_m, 100 * acc_b)
        energy = paired_test(energy_m, energy_b)
        times = paired_test(time_m, time_b)
        with np.errstate(divide="ignore", invalid="ignore"):
            energy_red = mean_ci(100 * (1 - energy_m / energy_b))
            time_red = mean_ci(100 * (1 - time_m / time_b))
        row = [
            str(other), f"{acc.n}/{acc.n_total}",
            format_mean_ci(acc.ci, "+.2f"), _p(acc.t_pvalue), _p(acc.wilcoxon_pvalue),
            verdict(acc.t_pvalue, acc.mean_diff, higher_is_better=True),
            format_mean_ci(energy_red, "+.1f"), _p(energy.t_pvalue),
            verdict(energy.t_pvalue, energy.mean_diff, higher_is_better=False),
            format_mean_ci(time_red, "+.1f"), _p(times.t_pvalue),
            verdict(times.t_pvalue, times.mean_diff, higher_is_better=False),
        ]
        if held_m is not None:
            held_b = _by_seed(frame, other, "holdout_accuracy", seeds)
            held = paired_test(100 * held_m, 100 * held_b)
            gain = mean_ci(100 * (held_m - held_b))  # NaN where either lacks it: [k/n] over all seeds
            row += [f"{held.n}/{held.n_total}", format_mean_ci(gain, "+.2f"), _p(held.t_pvalue),
                    verdict(held.t_pvalue, held.mean_diff, higher_is_better=True)]
        rows.append(row)
    header = ["vs", "pairs", "accuracy gain [pts]", "p (t)", "p (Wilcoxon)", "accuracy",
              "energy reduction [%]", "p (t)", "energy", "time reduction [%]", "p (t)", "time"]
    if held_m is not None:
        header += ["held-out pairs", "held-out accuracy gain [pts]", "p (t)", "held-out accuracy"]
    return _markdown(header, rows)


def results_markdown(frame: pd.DataFrame, method: str, target_accuracy: float,
                     run_wall_s: float | None = None, cpu_count: int | None = None,
                     figures: Mapping[str, Sequence[Path]] | None = None,
                     figures_root: Path | None = None, convergence_rounds: int | None = None) -> str:
    """The whole Results text: one section per setting, both tables each, and the setting's
    ``figures`` (PNG paths, linked relative to ``figures_root``) when given;
    ``convergence_rounds`` is the K of the late-gain column, named in the preamble."""
    parts = []
    if run_wall_s is not None:
        parts.append(f"Runs took {run_wall_s / 60:.1f} min of wall time"
                     + (f" on {cpu_count} CPU cores" if cpu_count else "") + ".")
    parts.append(f"Mean ± 95 % confidence half-width (Student t) over seeds; `[k/n]`: the metric exists "
                 f"for k of n seeds. Time to target: first round with accuracy ≥ {target_accuracy:g}. "
                 f"Paired rows compare `{method}` with each method on the same seeds (same partitions); "
                 f"the verdict is `better`/`worse` only where the paired t-test gives p < {ALPHA:g}."
                 + (f" Late gain: test accuracy at the last evaluation minus at the last evaluation at least "
                    f"{convergence_rounds} round{'s' if convergence_rounds != 1 else ''} earlier, in points "
                    f"(near 0: converged)."
                    if convergence_rounds is not None else ""))
    for setting, group in frame.groupby("setting", sort=False):
        n = group.groupby("method", sort=False).size().max()
        parts.append(f"### {setting} ({n} seeds)\n\n{method_table(group)}\n\n"
                     f"`{method}` against each method, paired by seed:\n\n{paired_table(group, method)}")
        for path in (figures or {}).get(str(setting), []):
            link = path.relative_to(figures_root) if figures_root is not None else path
            parts.append(f"![{setting}: {path.stem.replace('_', ' ')}]({link.as_posix()})")
    return "\n\n".join(parts) + "\n"
