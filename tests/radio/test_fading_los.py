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


# ------------------------------------------------------------------ frequency-selective subbands
def test_effective_gain_gives_the_mean_subband_spectral_efficiency():
    rng = np.random.default_rng(5)
    g = rng.standard_exponential((8, 1000))
    snr = 10 ** (rng.uniform(-10, 30, 1000) / 10)
    from radio.channel import effective_subband_gain

    eff = effective_subband_gain(g, snr)
    np.testing.assert_allclose(np.log2(1 + snr * eff), np.mean(np.log2(1 + snr * g), axis=0), rtol=1e-10)
    # Hand case: gains 1 and 3 at γ = 1: sqrt(2 * 4) - 1 = 1.828...
    assert effective_subband_gain(np.array([[1.0], [3.0]]), 1.0)[0] == pytest.approx(np.sqrt(8) - 1, rel=1e-12)
    # γ -> 0: the mean gain; Jensen: never above the mean gain.
    np.testing.assert_allclose(effective_subband_gain(g), g.mean(axis=0))
    assert np.all(eff <= g.mean(axis=0) * (1 + 1e-12))


def test_subbands_shrink_the_fading_spread():
    # Mean of N Exp(1) subband gains is Gamma(N, 1/N): mean 1, variance 1/N (flat: 1).
    n = 20000
    f = BlockFading("rayleigh", shape=(n,), rng=np.random.default_rng(2), subbands=8)
    g = f.gain_linear
    assert g.mean() == pytest.approx(1.0, abs=0.02)
    assert stats.kstest(g, stats.gamma(a=8, scale=1 / 8).cdf).pvalue > 1e-3
    flat = BlockFading("rayleigh", shape=(n,), rng=np.random.default_rng(2))
    assert np.quantile(g, 0.05) > 4 * np.quantile(flat.gain_linear, 0.05)  # fewer deep fades
    with pytest.raises(ValueError, match=r"subbands=0 out of range"):
        BlockFading("rayleigh", shape=(2,), rng=np.random.default_rng(0), subbands=0)


def test_one_subband_draws_exactly_as_before():
    a = BlockFading("rician", 9.0, shape=(3, 4), rng=np.random.default_rng(9))
    b = BlockFading("rician", 9.0, shape=(3, 4), rng=np.random.default_rng(9), subbands=1, reference_snr=10.0)
    np.testing.assert_array_equal(a.gain_linear, b.gain_linear)
