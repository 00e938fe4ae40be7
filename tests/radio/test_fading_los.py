"""Block fading with a LOS mask and per-link K: Rician on LOS links, Rayleigh on NLOS links."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from radio.channel import BlockFading


def test_nlos_links_are_rayleigh_los_links_rician():
    n = 20000
    los = np.arange(n) % 2 == 0
    k_db = np.where(los, 9.0, 40.0)  # a large K on NLOS links must be ignored
    f = BlockFading("rician", shape=(n,), rng=np.random.default_rng(3), los=los, k_factor_los_db=k_db)
    g = f.redraw(los)
    assert stats.kstest(g[~los], "expon").pvalue > 1e-3
    # Rician |h|² with K = 9 dB: mean 1, variance (1 + 2K)/(K + 1)²; 2(K+1)|h|² ~ ncx2(2, 2K).
    k = 10 ** 0.9
    assert g[los].mean() == pytest.approx(1.0, abs=0.03)
    assert g[los].var() == pytest.approx((1 + 2 * k) / (k + 1) ** 2, rel=0.06)
    assert stats.kstest(2 * (k + 1) * g[los], stats.ncx2(df=2, nc=2 * k).cdf).pvalue > 1e-3


def test_without_mask_every_link_uses_its_k():
    f = BlockFading("rician", 30.0, shape=(5000,), rng=np.random.default_rng(1))
    assert f.gain_linear.var() < 0.01  # K = 1000: (1 + 2K)/(K + 1)² ≈ 0.002


def test_per_link_k_validated():
    with pytest.raises(ValueError, match=r"k_factor_los_db=.*\[-50, 50\]"):
        BlockFading("rician", shape=(2,), rng=np.random.default_rng(0), k_factor_los_db=np.array([0.0, 60.0]))
    with pytest.raises(ValueError, match="k_factor_los_db shape"):
        BlockFading("rician", shape=(2,), rng=np.random.default_rng(0), k_factor_los_db=np.zeros(3))
