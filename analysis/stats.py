"""Statistics for claims over seeds: mean with a 95 % t confidence interval, paired tests of
one method against another on the same seeds, and the ``[k/n]`` mark for metrics that
exist for only some seeds.

All functions take per-seed values (NaN or None = the metric does not exist for that seed,
e.g. a time-to-target never reached) and never drop a seed silently: ``MeanCI.k`` and
``PairedTest.n`` say how many seeds the number rests on.

- ``mean_ci``: mean ± t_{0.975, k−1} · s/√k over the k finite values (Student t; the
  half-width is NaN with fewer than 2 values).
- ``paired_test``: differences a_i − b_i over the seeds where both exist; the paired
  t-test (``scipy.stats.ttest_rel``) and the Wilcoxon signed-rank test
  (``scipy.stats.wilcoxon``, exact for small n, two-sided), mean difference and its 95 % CI.
- ``format_mean_ci``: ``"0.9490 ± 0.0041"`` plus `` [k/n]`` when k < n (``n/a [0/n]`` when
  none exist).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import stats as st

__all__ = ["MeanCI", "PairedTest", "mean_ci", "paired_test", "format_mean_ci", "coverage"]


def _values(values: Sequence[Any]) -> np.ndarray:
    """float64 array with None mapped to NaN."""
    return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)


@dataclass(frozen=True)
class MeanCI:
    """Mean of the finite per-seed values and its confidence interval.

    Attributes:
        mean: mean of the k finite values (NaN when k = 0).
        half_width: t_{(1+level)/2, k−1} · s / √k (NaN when k < 2).
        k: number of seeds where the metric exists; n: number of seeds.
        level: confidence level (0.95).
    """

    mean: float
    half_width: float
    k: int
    n: int
    level: float = 0.95

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width


def mean_ci(values: Sequence[Any], level: float = 0.95) -> MeanCI:
    """Mean and Student-t confidence interval of the finite values among ``values`` (one per seed)."""
    if not 0 < level < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    x = _values(values)
    finite = x[np.isfinite(x)]
    k = int(finite.size)
    if k == 0:
        return MeanCI(math.nan, math.nan, 0, int(x.size), level)
    mean = float(finite.mean())
    if k < 2:
        return MeanCI(mean, math.nan, 1, int(x.size), level)
    sem = float(finite.std(ddof=1)) / math.sqrt(k)
    return MeanCI(mean, float(st.t.ppf((1 + level) / 2, k - 1)) * sem, k, int(x.size), level)


def coverage(k: int, n: int) -> str:
    """`` [k/n]`` when a metric exists for only k of n seeds, else ``""``."""
    return f" [{k}/{n}]" if k < n else ""


def format_mean_ci(ci: MeanCI, fmt: str = ".4f") -> str:
    """``"mean ± half"`` (half omitted when undefined) plus ``[k/n]`` when k < n."""
    if ci.k == 0:
        return f"n/a [0/{ci.n}]"
    text = format(ci.mean, fmt)
    if math.isfinite(ci.half_width):
        text += " ± " + format(ci.half_width, fmt.lstrip("+"))
    return text + coverage(ci.k, ci.n)


@dataclass(frozen=True)
class PairedTest:
    """Paired comparison of method a against method b over the seeds where both exist.

    Attributes:
        n: number of pairs used; n_total: number of seeds given.
        mean_diff: mean of a_i − b_i; ci: its confidence interval (``MeanCI``).
        t_stat, t_pvalue: paired t-test (NaN when n < 2 or all differences are equal).
        wilcoxon_stat, wilcoxon_pvalue: Wilcoxon signed-rank (NaN when n < 1 or all
            differences are 0).
    """

    n: int
    n_total: int
    mean_diff: float
    ci: MeanCI
    t_stat: float
    t_pvalue: float
    wilcoxon_stat: float
    wilcoxon_pvalue: float


def paired_test(a: Sequence[Any], b: Sequence[Any], level: float = 0.95) -> PairedTest:
    """Paired t-test and Wilcoxon signed-rank test of ``a`` vs ``b`` (same seeds, same order).

    Raises:
        ValueError: when ``a`` and ``b`` differ in length.
    """
    x, y = _values(a), _values(b)
    if x.shape != y.shape:
        raise ValueError(f"paired samples need one value per seed each, got {x.size} and {y.size}")
    both = np.isfinite(x) & np.isfinite(y)
    d = x[both] - y[both]
    n = int(d.size)
    ci = mean_ci(d, level)
    t_stat = t_p = w_stat = w_p = math.nan
    if n >= 2 and np.ptp(d) > 0:
        res = st.ttest_rel(x[both], y[both])
        t_stat, t_p = float(res.statistic), float(res.pvalue)
    elif n >= 2 and d[0] != 0:  # identical non-zero differences: no variance, the sign is certain
        t_stat, t_p = math.copysign(math.inf, d[0]), 0.0
    if n >= 1 and np.any(d != 0):
        res = st.wilcoxon(d)
        w_stat, w_p = float(res.statistic), float(res.pvalue)
    return PairedTest(n, int(x.size), ci.mean, ci, t_stat, t_p, w_stat, w_p)
