"""Link budget and unit conversions: hand-computed noise and SNR, Shannon/gap
efficiency with its cap, TS 38.214 CQI table consistency and mapping."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from radio.constants import (
    BOLTZMANN_J_PER_K,
    THERMAL_NOISE_DBM_PER_HZ,
    db_to_linear,
    dbm_to_w,
    linear_to_db,
    w_to_dbm,
)
from radio.link import (
    CQI_EFFICIENCY_BPS_HZ,
    CQI_TABLE_38214,
    MAX_SPECTRAL_EFFICIENCY_BPS_HZ,
    cqi_snr_thresholds_db,
    cqi_spectral_efficiency_bps_hz,
    noise_power_dbm,
    rate_bps,
    snr_linear,
    spectral_efficiency_bps_hz,
)

HAND_TOL_DB = 0.01


def test_conversions() -> None:
    np.testing.assert_allclose(db_to_linear([0.0, 10.0, -3.0]), [1.0, 10.0, 0.5011872], rtol=1e-6)
    np.testing.assert_allclose(linear_to_db([1.0, 100.0]), [0.0, 20.0])
    np.testing.assert_allclose(dbm_to_w([30.0, 0.0, 23.0]), [1.0, 1e-3, 0.1995262], rtol=1e-6)
    np.testing.assert_allclose(w_to_dbm([1.0, 1e-3]), [30.0, 0.0])
    x = np.linspace(-50, 50, 11)
    np.testing.assert_allclose(linear_to_db(db_to_linear(x)), x)
    np.testing.assert_allclose(w_to_dbm(dbm_to_w(x)), x)
    assert linear_to_db(0.0) == -np.inf
    # kT0 at 290 K in dBm/Hz ≈ −173.98, the constant is its rounding
    assert w_to_dbm(BOLTZMANN_J_PER_K * 290.0) == pytest.approx(THERMAL_NOISE_DBM_PER_HZ, abs=0.03)


def test_noise_power_hand_value() -> None:
    # −174 + 10·log10(20e6) + 9 = −174 + 73.01 + 9 = −91.99 dBm
    assert noise_power_dbm(20e6, 9.0) == pytest.approx(-91.99, abs=HAND_TOL_DB)
    np.testing.assert_allclose(noise_power_dbm(np.array([1e6, 10e6]), 0.0), [-114.0, -104.0])
    with pytest.raises(ValueError, match="bandwidth_hz"):
        noise_power_dbm(0.0, 9.0)


def test_snr_hand_value_and_sign_conventions() -> None:
    # 23 dBm − 100 dB − 5 dB shadow + 10·log10(2) = −78.99 dBm; N = −174 + 70 + 7 = −97 dBm
    # SNR = 18.01 dB → 63.25
    snr = snr_linear(23.0, 100.0, 5.0, 2.0, 10e6, 7.0)
    assert 10 * math.log10(snr) == pytest.approx(18.01, abs=HAND_TOL_DB)
    assert snr_linear(23.0, 100.0, 8.0, 1.0, 10e6, 7.0) < snr_linear(23.0, 100.0, 5.0, 1.0, 10e6, 7.0)
    assert snr_linear(23.0, 100.0, 0.0, 0.0, 10e6, 7.0) == 0.0


def test_snr_broadcasts_cells_by_devices() -> None:
    pl = np.array([[100.0, 110.0, 120.0], [90.0, 95.0, 130.0]])  # (n_cells, n_devices)
    tx = np.array([20.0, 23.0, 23.0])  # (n_devices,)
    snr = snr_linear(tx, pl, np.zeros((2, 3)), np.ones((2, 3)), 5e6, 9.0)
    assert snr.shape == (2, 3)
    want = 10 ** ((tx - pl - noise_power_dbm(5e6, 9.0)) / 10)
    np.testing.assert_allclose(snr, want, rtol=1e-12)


def test_spectral_efficiency_and_rate() -> None:
    np.testing.assert_allclose(spectral_efficiency_bps_hz([0.0, 1.0, 3.0, 15.0]), [0.0, 1.0, 2.0, 4.0])
    # 3 dB gap halves the effective SNR: 2^1 − 1 = 1 → SNR 2·1 = 1.995 for 1 bit
    assert spectral_efficiency_bps_hz(float(db_to_linear(3.0)), snr_gap_db=3.0) == pytest.approx(1.0)
    assert spectral_efficiency_bps_hz(1e6) == MAX_SPECTRAL_EFFICIENCY_BPS_HZ == 7.4063
    assert spectral_efficiency_bps_hz(1e6, max_bps_hz=5.0) == 5.0
    np.testing.assert_allclose(rate_bps(20e6, np.array([3.0, 1e9])), [40e6, 20e6 * 7.4063])
    assert rate_bps(np.array([[1e6], [2e6]]), np.array([1.0, 3.0])).shape == (2, 2)
    with pytest.raises(ValueError, match="snr_linear"):
        spectral_efficiency_bps_hz(-1.0)


@given(st.floats(0.0, 1e12), st.floats(0.0, 1e12), st.floats(-5.0, 10.0))
def test_spectral_efficiency_monotone_and_capped(a: float, b: float, gap_db: float) -> None:
    lo, hi = sorted((a, b))
    se_lo, se_hi = spectral_efficiency_bps_hz(np.array([lo, hi]), snr_gap_db=gap_db)
    assert 0.0 <= se_lo <= se_hi <= MAX_SPECTRAL_EFFICIENCY_BPS_HZ


def test_cqi_table_consistent_with_modulation_and_code_rate() -> None:
    bits = {"QPSK": 2, "16QAM": 4, "64QAM": 6, "256QAM": 8}
    assert [row[0] for row in CQI_TABLE_38214] == list(range(1, 16))
    for _, mod, rate_x1024, eff in CQI_TABLE_38214:
        assert eff == pytest.approx(bits[mod] * rate_x1024 / 1024, abs=5e-5)
    assert np.all(np.diff(CQI_EFFICIENCY_BPS_HZ) > 0)


@pytest.mark.parametrize("gap_db", [0.0, 1.5])
def test_cqi_mapping_thresholds(gap_db: float) -> None:
    th_db = cqi_snr_thresholds_db(gap_db)
    np.testing.assert_allclose(th_db, gap_db + 10 * np.log10(2.0**CQI_EFFICIENCY_BPS_HZ - 1), atol=1e-12)
    th = 10 ** (th_db / 10)
    at = cqi_spectral_efficiency_bps_hz(th * (1 + 1e-9), snr_gap_db=gap_db)
    below = cqi_spectral_efficiency_bps_hz(th * (1 - 1e-6), snr_gap_db=gap_db)
    np.testing.assert_array_equal(at, CQI_EFFICIENCY_BPS_HZ)
    np.testing.assert_array_equal(below, np.concatenate(([0.0], CQI_EFFICIENCY_BPS_HZ[:-1])))
    assert cqi_spectral_efficiency_bps_hz(1e9, gap_db) == 7.4063
    # CQI efficiency never exceeds the gap-to-capacity efficiency at the same SNR
    snr = np.logspace(-3, 4, 200)
    assert np.all(cqi_spectral_efficiency_bps_hz(snr, gap_db) <= spectral_efficiency_bps_hz(snr, gap_db) + 1e-12)
