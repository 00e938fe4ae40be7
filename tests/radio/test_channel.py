"""Shadowing and block fading: distributions (KS tests), AR(1) correlation,
stationarity, broadcasting of per-device displacement, validation, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from radio.channel import BlockFading, GudmundsonShadowing

KS_P_MIN = 1e-3  # reject the distribution only on overwhelming evidence
N_LINKS = 60_000
CORR_TOL = 0.02  # ≈ 5 standard errors of a sample correlation over N_LINKS


def _shadowing(std_db: float = 6.0, dcorr_m: float = 50.0, seed: int = 1) -> GudmundsonShadowing:
    return GudmundsonShadowing(std_db, dcorr_m, (2, N_LINKS // 2), np.random.default_rng(seed))


def test_initial_draw_is_normal_with_sigma() -> None:
    sh = _shadowing(std_db=6.0)
    v = sh.value_db
    assert v.shape == (2, N_LINKS // 2)
    assert stats.kstest(v.ravel() / 6.0, "norm").pvalue > KS_P_MIN


def test_ar1_correlation_for_known_displacement() -> None:
    sh = _shadowing(std_db=4.0, dcorr_m=37.0)
    before = sh.value_db.ravel().copy()
    step_m = 37.0 * math.log(2.0)  # ρ = exp(−Δd/d_corr) = 0.5
    after = sh.step(np.full(N_LINKS // 2, step_m)).ravel()
    assert np.corrcoef(before, after)[0, 1] == pytest.approx(0.5, abs=CORR_TOL)
    far = sh.step(np.full(N_LINKS // 2, 1e6)).ravel()  # ρ ≈ 0
    assert abs(np.corrcoef(after, far)[0, 1]) < CORR_TOL


def test_stationary_std_over_many_steps() -> None:
    sh = _shadowing(std_db=8.0, dcorr_m=120.0)
    rng = np.random.default_rng(5)
    for _ in range(30):
        sh.step(rng.uniform(0.0, 60.0, size=N_LINKS // 2))
    v = sh.value_db.ravel()
    assert stats.kstest(v / 8.0, "norm").pvalue > KS_P_MIN
    assert np.std(v) == pytest.approx(8.0, rel=0.02)


def test_displacement_is_per_device_and_zero_keeps_state() -> None:
    sh = GudmundsonShadowing(np.array([[4.0], [6.0], [8.0]]), 50.0, (3, 5), np.random.default_rng(0))
    before = sh.value_db.copy()
    after = sh.step(np.array([0.0, 0.0, 10.0, 0.0, 25.0]))
    np.testing.assert_array_equal(after[:, [0, 1, 3]], before[:, [0, 1, 3]])
    assert np.all(after[:, [2, 4]] != before[:, [2, 4]])
    with pytest.raises(ValueError, match="displacement_m"):
        sh.step(np.array([-1.0, 0, 0, 0, 0]))


def test_set_params_rescales_to_new_sigma() -> None:
    sh = GudmundsonShadowing(4.0, 37.0, (2, 3), np.random.default_rng(3))
    v4 = sh.value_db.copy()
    sh.set_params(np.array([[8.0], [4.0]]), np.array([[50.0], [37.0]]))
    np.testing.assert_allclose(sh.value_db, v4 * np.array([[2.0], [1.0]]))
    with pytest.raises(ValueError, match="std_db"):
        sh.set_params(-1.0, 37.0)
    with pytest.raises(ValueError, match="decorrelation_m"):
        sh.set_params(4.0, 0.0)
    with pytest.raises(ValueError, match="broadcast"):
        sh.set_params(np.ones(5), 37.0)


def test_shadowing_deterministic_and_large() -> None:
    a = GudmundsonShadowing(6.0, 50.0, (3, 100_000), np.random.default_rng(11))
    b = GudmundsonShadowing(6.0, 50.0, (3, 100_000), np.random.default_rng(11))
    move = np.random.default_rng(2).uniform(0, 20, 100_000)
    np.testing.assert_array_equal(a.step(move), b.step(move))
    with pytest.raises(TypeError, match="Generator"):
        GudmundsonShadowing(6.0, 50.0, (3, 4), np.random.RandomState(0))  # type: ignore[arg-type]


def test_rayleigh_is_unit_exponential() -> None:
    f = BlockFading("rayleigh", shape=(3, N_LINKS // 3), rng=np.random.default_rng(4))
    g = f.gain_linear.ravel()
    assert f.gain_linear.shape == (3, N_LINKS // 3)
    assert stats.kstest(g, "expon").pvalue > KS_P_MIN
    assert g.mean() == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("k_db", [0.0, 9.0])
def test_rician_is_scaled_noncentral_chi2(k_db: float) -> None:
    k = 10 ** (k_db / 10)
    f = BlockFading("rician", k_factor_db=k_db, shape=(N_LINKS,), rng=np.random.default_rng(6))
    g = f.redraw()
    # 2(K+1)|h|² ~ χ'²(df=2, nc=2K)
    assert stats.kstest(2 * (k + 1) * g, stats.ncx2(df=2, nc=2 * k).cdf).pvalue > KS_P_MIN
    assert g.mean() == pytest.approx(1.0, abs=0.02)
    # wrong K must be rejected: the test can fail
    assert stats.kstest(2 * (k + 1) * g, stats.ncx2(df=2, nc=2 * k + 3).cdf).pvalue < KS_P_MIN


def test_redraw_is_independent_block() -> None:
    f = BlockFading("rayleigh", shape=(N_LINKS,), rng=np.random.default_rng(8))
    g0 = f.gain_linear.copy()
    g1 = f.redraw()
    assert g1 is f.gain_linear
    assert abs(np.corrcoef(g0, g1)[0, 1]) < CORR_TOL


def test_no_fading_and_validation() -> None:
    f = BlockFading("none", shape=(2, 3), rng=np.random.default_rng(0))
    np.testing.assert_array_equal(f.redraw(), np.ones((2, 3)))
    with pytest.raises(ValueError, match="rayleigh, rician, none"):
        BlockFading("nakagami", shape=(2,), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="shape"):
        BlockFading("rayleigh", rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="k_factor_db"):
        BlockFading("rician", k_factor_db=float("inf"), shape=(2,), rng=np.random.default_rng(0))


def test_fading_deterministic() -> None:
    a = BlockFading("rician", 3.0, (4, 5), np.random.default_rng(9))
    b = BlockFading("rician", 3.0, (4, 5), np.random.default_rng(9))
    np.testing.assert_array_equal(a.redraw(), b.redraw())
