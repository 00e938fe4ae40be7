"""analysis.stats: t confidence intervals, paired tests and [k/n], checked against hand values."""

from __future__ import annotations

import math

import pytest

from analysis.stats import coverage, format_mean_ci, mean_ci, paired_test


def test_mean_ci_by_hand() -> None:
    ci = mean_ci([1, 2, 3, 4, 5])
    # s = √2.5, s/√5 = √0.5; t_{0.975, 4} = 2.776445 (table value)
    assert ci.mean == 3.0 and (ci.k, ci.n) == (5, 5)
    assert ci.half_width == pytest.approx(2.776445 * math.sqrt(0.5), rel=1e-6)
    assert (ci.low, ci.high) == pytest.approx((3 - ci.half_width, 3 + ci.half_width))
    assert format_mean_ci(ci, ".3f") == "3.000 ± 1.963"


def test_missing_seeds_are_counted_not_dropped_silently() -> None:
    ci = mean_ci([0.9, None, float("nan"), 0.7])
    assert (ci.k, ci.n) == (2, 4) and ci.mean == pytest.approx(0.8)
    assert ci.half_width == pytest.approx(12.706205 * 0.1, rel=1e-6)  # s = √0.02, s/√2 = 0.1; t_{.975,1}
    assert format_mean_ci(ci, ".2f") == "0.80 ± 1.27 [2/4]"
    one = mean_ci([None, 5.0, None])
    assert format_mean_ci(one, ".1f") == "5.0 [1/3]" and math.isnan(one.half_width)
    assert format_mean_ci(mean_ci([None, None])) == "n/a [0/2]"
    assert coverage(3, 3) == "" and coverage(1, 3) == " [1/3]"
    with pytest.raises(ValueError, match="confidence level"):
        mean_ci([1, 2], level=95)


def test_paired_t_and_wilcoxon_by_hand() -> None:
    a = [1.0, 2.0, 3.0, 4.0, 5.0]
    b = [0.5, 1.0, 2.0, 3.5, 4.0]  # d = 0.5, 1, 1, 0.5, 1: mean 0.8, s = √0.075
    res = paired_test(a, b)
    t = 0.8 / (math.sqrt(0.075) / math.sqrt(5))
    assert res.n == 5 and res.mean_diff == pytest.approx(0.8)
    assert res.t_stat == pytest.approx(t, rel=1e-9)
    from scipy.stats import t as student
    assert res.t_pvalue == pytest.approx(2 * student.sf(t, 4), rel=1e-9)
    # Wilcoxon, distinct positive differences: W- = 0, exact two-sided p = 2 / 2^5.
    w = paired_test([1.1, 2.2, 3.3, 4.4, 5.5], [1, 2, 3, 4, 5])
    assert w.wilcoxon_stat == 0.0 and w.wilcoxon_pvalue == pytest.approx(0.0625)


def test_paired_uses_only_seeds_where_both_exist() -> None:
    res = paired_test([0.9, None, 0.8, 0.7], [0.8, 0.6, None, 0.5])
    assert (res.n, res.n_total) == (2, 4) and res.mean_diff == pytest.approx(0.15)
    same = paired_test([0.5, 0.6], [0.5, 0.6])
    assert same.mean_diff == 0 and math.isnan(same.t_pvalue) and math.isnan(same.wilcoxon_pvalue)
    with pytest.raises(ValueError, match="one value per seed"):
        paired_test([1, 2], [1])
