"""Link budget: noise power, SNR, spectral efficiency, rate and CQI mapping.

Sign conventions (all quantities in dB are powers):
    P_rx [dBm] = P_tx [dBm] − PL [dB] − S [dB] + 10·log10(|h|²)
where PL is the path loss (positive), S the shadow *loss* (positive = weaker
signal, as produced by :class:`radio.channel.GudmundsonShadowing`) and |h|² the
linear fading power gain (unit mean). SNR = P_rx / N with thermal noise
N [dBm] = −174 + 10·log10(B) + NF.

Rate = B · min(log2(1 + SNR/Γ), SE_max) with SNR gap Γ (0 dB = Shannon bound) and
SE_max = 7.4063 bit/s/Hz, the highest efficiency of TS 38.214 Table 5.2.2.1-3.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from radio.constants import THERMAL_NOISE_DBM_PER_HZ, db_to_linear

__all__ = [
    "MAX_SPECTRAL_EFFICIENCY_BPS_HZ",
    "CQI_TABLE_38214",
    "CQI_EFFICIENCY_BPS_HZ",
    "noise_power_dbm",
    "snr_linear",
    "spectral_efficiency_bps_hz",
    "rate_bps",
    "cqi_snr_thresholds_db",
    "cqi_spectral_efficiency_bps_hz",
]

FloatArray = NDArray[np.float64]

CQI_TABLE_38214: tuple[tuple[int, str, int, float], ...] = (
    # (CQI index, modulation, code rate x 1024, efficiency [bit/s/Hz])
    # 3GPP TS 38.214 Table 5.2.2.1-3 (4-bit CQI table 2, up to 256QAM); CQI 0 = out of range.
    (1, "QPSK", 78, 0.1523),
    (2, "QPSK", 193, 0.3770),
    (3, "QPSK", 449, 0.8770),
    (4, "16QAM", 378, 1.4766),
    (5, "16QAM", 490, 1.9141),
    (6, "16QAM", 616, 2.4063),
    (7, "64QAM", 466, 2.7305),
    (8, "64QAM", 567, 3.3223),
    (9, "64QAM", 666, 3.9023),
    (10, "64QAM", 772, 4.5234),
    (11, "64QAM", 873, 5.1152),
    (12, "256QAM", 711, 5.5547),
    (13, "256QAM", 797, 6.2266),
    (14, "256QAM", 885, 6.9141),
    (15, "256QAM", 948, 7.4063),
)

CQI_EFFICIENCY_BPS_HZ: FloatArray = np.array([row[3] for row in CQI_TABLE_38214])
"""Efficiencies of CQI 1..15 [bit/s/Hz], shape (15,)."""

MAX_SPECTRAL_EFFICIENCY_BPS_HZ: float = float(CQI_EFFICIENCY_BPS_HZ[-1])
"""Highest efficiency of TS 38.214 Table 5.2.2.1-3 (CQI 15, 256QAM) [bit/s/Hz]."""


def noise_power_dbm(bandwidth_hz: ArrayLike, noise_figure_db: ArrayLike) -> FloatArray:
    """Thermal noise power at the receiver [dBm].

    Args:
        bandwidth_hz: noise bandwidth B [Hz], > 0, any shape.
        noise_figure_db: receiver noise figure NF [dB], broadcastable.

    Returns:
        −174 + 10·log10(B) + NF [dBm], broadcast shape.
    """
    b = np.asarray(bandwidth_hz, dtype=np.float64)
    if np.any(b <= 0.0):
        raise ValueError(f"bandwidth_hz must be > 0 Hz, got min {np.min(b)!r}")
    return THERMAL_NOISE_DBM_PER_HZ + 10.0 * np.log10(b) + np.asarray(noise_figure_db, dtype=np.float64)


def snr_linear(
    tx_power_dbm: ArrayLike,
    path_loss_db: ArrayLike,
    shadow_db: ArrayLike,
    fading_gain_linear: ArrayLike,
    bandwidth_hz: ArrayLike,
    noise_figure_db: ArrayLike,
) -> FloatArray:
    """Signal-to-noise ratio of each link [linear].

    Args:
        tx_power_dbm: transmit power P_tx [dBm], e.g. shape (n_devices,) uplink.
        path_loss_db: path loss PL [dB], e.g. shape (n_cells, n_devices).
        shadow_db: shadow loss S [dB] (positive = more loss), broadcastable.
        fading_gain_linear: fading power gain |h|² [linear, >= 0], broadcastable.
        bandwidth_hz: bandwidth B [Hz] the power is spread over, > 0, broadcastable.
        noise_figure_db: receiver noise figure NF [dB], broadcastable.

    Returns:
        SNR [linear], broadcast shape of all arguments (0 where the fading gain is 0).
    """
    g = np.asarray(fading_gain_linear, dtype=np.float64)
    with np.errstate(divide="ignore"):
        fading_db = 10.0 * np.log10(g)
    rx_dbm = (
        np.asarray(tx_power_dbm, dtype=np.float64)
        - np.asarray(path_loss_db, dtype=np.float64)
        - np.asarray(shadow_db, dtype=np.float64)
        + fading_db
    )
    return db_to_linear(rx_dbm - noise_power_dbm(bandwidth_hz, noise_figure_db))


def spectral_efficiency_bps_hz(
    snr_linear: ArrayLike,
    snr_gap_db: float = 0.0,
    max_bps_hz: float = MAX_SPECTRAL_EFFICIENCY_BPS_HZ,
) -> FloatArray:
    """Gap-to-capacity spectral efficiency, capped [bit/s/Hz].

    Args:
        snr_linear: SNR [linear, >= 0], any shape.
        snr_gap_db: SNR gap Γ [dB] of the coding/modulation to Shannon (0 = bound).
        max_bps_hz: cap SE_max [bit/s/Hz], > 0 (default: CQI 15 of TS 38.214).

    Returns:
        min(log2(1 + SNR/Γ), SE_max) [bit/s/Hz], shape of ``snr_linear``.
    """
    snr = np.asarray(snr_linear, dtype=np.float64)
    if np.any(snr < 0.0):
        raise ValueError(f"snr_linear must be >= 0, got min {np.min(snr)!r}")
    if not max_bps_hz > 0.0:
        raise ValueError(f"max_bps_hz={max_bps_hz!r} must be > 0")
    gap = float(db_to_linear(snr_gap_db))
    return np.minimum(np.log2(1.0 + snr / gap), max_bps_hz)


def rate_bps(
    bandwidth_hz: ArrayLike,
    snr_linear: ArrayLike,
    snr_gap_db: float = 0.0,
    max_bps_hz: float = MAX_SPECTRAL_EFFICIENCY_BPS_HZ,
) -> FloatArray:
    """Achievable bit rate [bit/s] = B · spectral efficiency.

    Args:
        bandwidth_hz: allocated bandwidth B [Hz], >= 0, broadcastable.
        snr_linear: SNR over that bandwidth [linear, >= 0], broadcastable.
        snr_gap_db: SNR gap Γ [dB] (see :func:`spectral_efficiency_bps_hz`).
        max_bps_hz: spectral-efficiency cap [bit/s/Hz].

    Returns:
        rate [bit/s], broadcast shape.
    """
    b = np.asarray(bandwidth_hz, dtype=np.float64)
    if np.any(b < 0.0):
        raise ValueError(f"bandwidth_hz must be >= 0 Hz, got min {np.min(b)!r}")
    return b * spectral_efficiency_bps_hz(snr_linear, snr_gap_db, max_bps_hz)


def cqi_snr_thresholds_db(snr_gap_db: float = 0.0) -> FloatArray:
    """Lowest SNR [dB] at which each CQI 1..15 is usable, shape (15,).

    Derived, not tabulated: CQI i needs the SNR at which the gap-to-capacity
    efficiency reaches its table efficiency, SNR_i = Γ·(2^SE_i − 1). With Γ = 0 dB
    this is the Shannon bound (an optimistic mapping); a practical link abstraction
    uses a positive gap (e.g. 1.5–3 dB), chosen by the scenario.

    Args:
        snr_gap_db: SNR gap Γ [dB].
    """
    gap = float(db_to_linear(snr_gap_db))
    return 10.0 * np.log10(gap * (np.exp2(CQI_EFFICIENCY_BPS_HZ) - 1.0))


def cqi_spectral_efficiency_bps_hz(snr_linear: ArrayLike, snr_gap_db: float = 0.0) -> FloatArray:
    """Efficiency of the highest CQI whose threshold the SNR meets [bit/s/Hz].

    Args:
        snr_linear: SNR [linear, >= 0], any shape.
        snr_gap_db: SNR gap Γ [dB] of the thresholds (see :func:`cqi_snr_thresholds_db`).

    Returns:
        table efficiency of TS 38.214 Table 5.2.2.1-3 (0 below CQI 1), shape of
        ``snr_linear``.
    """
    snr = np.asarray(snr_linear, dtype=np.float64)
    thresholds = float(db_to_linear(snr_gap_db)) * (np.exp2(CQI_EFFICIENCY_BPS_HZ) - 1.0)
    idx = np.searchsorted(thresholds, snr, side="right")
    return np.concatenate(([0.0], CQI_EFFICIENCY_BPS_HZ))[idx]
