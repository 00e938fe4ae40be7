"""Link abstraction: spectral efficiency of a link from its SINR, and the `nr`/`lte` presets.

A system-level simulator maps each link's SINR to a spectral efficiency (SE)
without simulating codewords. cosim offers two mappings, both per direction:

- ``shannon``: SE = (1 − OH) · min(log2(1 + SINR/Γ), SE_max) — gap-to-capacity with
  SNR gap Γ, cap SE_max (the highest efficiency of the MCS table) and overhead OH;
- ``cqi``: SE = (1 − OH) · efficiency of the highest CQI of TS 38.214 Table 5.2.2.1-3
  whose threshold Γ·(2^SE_CQI − 1) the SINR meets (0 below CQI 1).

Both carry nothing below a minimum SINR (the link is out of coverage there: no MCS
decodes). OH is the fraction of resources spent on control channels and reference
signals; TS 38.306 §4.1.2 uses OH = 0.14 (DL) and 0.08 (UL) in FR1 for the peak rate.

Presets (:data:`PRESETS`) bundle these per direction together with a per-transfer
access latency (scheduling request, grant, processing); see the README table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike, NDArray

from radio.constants import db_to_linear
from radio.link import CQI_EFFICIENCY_BPS_HZ, MAX_SPECTRAL_EFFICIENCY_BPS_HZ

__all__ = ["ABSTRACTIONS", "LinkAbstraction", "LinkPreset", "PRESETS", "NR_OVERHEAD_DL", "NR_OVERHEAD_UL"]

ABSTRACTIONS: tuple[str, ...] = ("shannon", "cqi")
"""Names of the SINR -> SE mappings."""

NR_OVERHEAD_DL: float = 0.14
"""OH for FR1 downlink, TS 38.306 §4.1.2 (peak-rate formula)."""
NR_OVERHEAD_UL: float = 0.08
"""OH for FR1 uplink, TS 38.306 §4.1.2 (peak-rate formula)."""

LTE_MAX_SPECTRAL_EFFICIENCY_BPS_HZ: float = 5.5547
"""Highest efficiency of TS 36.213 Table 7.2.3-1 (CQI 15, 64QAM 948/1024) [bit/s/Hz]."""


@dataclass(frozen=True)
class LinkAbstraction:
    """SINR -> spectral-efficiency mapping of one direction.

    Args:
        kind: ``shannon`` or ``cqi`` (see the module docstring).
        snr_gap_db: SNR gap Γ [dB], >= 0.
        max_spectral_efficiency_bps_hz: cap SE_max [bit/s/Hz], > 0 (``shannon`` only;
            the CQI table has its own top entry).
        overhead: OH, fraction of resources not carrying data, in [0, 1).
        min_sinr_db: SINR [dB] below which the link carries nothing (``-inf``: none).
        headroom_aware: whether the scheduler knows each UE's power headroom (PHR, TS 38.321
            §5.4.6): a power-limited UE then transmits only on the part of its grant where
            its SINR stays at the minimum (more share never lowers its rate). ``False``: the
            UE spreads P_CMAX over its whole grant and carries nothing when that puts its
            SINR below the minimum — as ns-3 LENA's LTE uplink schedulers do.
    """

    kind: str = "shannon"
    snr_gap_db: float = 0.0
    max_spectral_efficiency_bps_hz: float = MAX_SPECTRAL_EFFICIENCY_BPS_HZ
    overhead: float = 0.0
    min_sinr_db: float = -math.inf
    headroom_aware: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ABSTRACTIONS:
            raise ValueError(f"kind={self.kind!r} out of range; allowed: {', '.join(ABSTRACTIONS)}")
        if not (math.isfinite(self.snr_gap_db) and self.snr_gap_db >= 0.0):
            raise ValueError(f"snr_gap_db={self.snr_gap_db!r} out of range; allowed: finite, >= 0 dB")
        se_max = self.max_spectral_efficiency_bps_hz
        if not (math.isfinite(se_max) and se_max > 0.0):
            raise ValueError(f"max_spectral_efficiency_bps_hz={se_max!r} out of range; allowed: finite, > 0")
        if not 0.0 <= self.overhead < 1.0:
            raise ValueError(f"overhead={self.overhead!r} out of range; allowed: [0, 1)")
        if math.isnan(self.min_sinr_db) or self.min_sinr_db == math.inf:
            raise ValueError(f"min_sinr_db={self.min_sinr_db!r} out of range; allowed: a number or -inf [dB]")
        if not isinstance(self.headroom_aware, bool):
            raise ValueError(f"headroom_aware={self.headroom_aware!r} out of range; allowed: true, false")

    # The scalars below are read at every reallocation of every cell: computed once (the
    # dataclass is frozen, so they cannot go stale; `cached_property` bypasses __setattr__).
    @cached_property
    def gap_linear(self) -> float:
        """Γ [linear]."""
        return float(db_to_linear(self.snr_gap_db))

    @cached_property
    def min_sinr_linear(self) -> float:
        """Minimum SINR [linear] (0 when ``min_sinr_db`` is ``-inf``)."""
        return 0.0 if self.min_sinr_db == -math.inf else float(db_to_linear(self.min_sinr_db))

    @property
    def efficiency(self) -> float:
        """Fraction of resources carrying data, 1 − OH."""
        return 1.0 - self.overhead

    def cqi_thresholds_linear(self) -> NDArray[np.float64]:
        """SINR [linear] at which CQI 1..15 become usable, Γ·(2^SE − 1), shape (15,)."""
        return self.gap_linear * (np.exp2(CQI_EFFICIENCY_BPS_HZ) - 1.0)

    def saturation_sinr_linear(self) -> float:
        """Lowest SINR [linear] at which the SE reaches its maximum."""
        if self.kind == "cqi":
            return float(self.cqi_thresholds_linear()[-1])
        return self.gap_linear * (2.0 ** self.max_spectral_efficiency_bps_hz - 1.0)

    def spectral_efficiency_bps_hz(self, sinr_linear: ArrayLike) -> NDArray[np.float64]:
        """Data spectral efficiency (after overhead) [bit/s/Hz] at each SINR.

        Args:
            sinr_linear: SINR [linear, >= 0], any shape.

        Returns:
            (1 − OH) · SE(SINR), 0 below the minimum SINR, shape of ``sinr_linear``.
        """
        s = np.asarray(sinr_linear, dtype=np.float64)
        if self.kind == "cqi":
            idx = np.searchsorted(self.cqi_thresholds_linear(), s, side="right")
            se = np.concatenate(([0.0], CQI_EFFICIENCY_BPS_HZ))[idx]
        else:
            se = np.minimum(np.log2(1.0 + s / self.gap_linear), self.max_spectral_efficiency_bps_hz)
        return np.where(s >= self.min_sinr_linear, self.efficiency * se, 0.0)


def _cqi1_sinr_db(gap_db: float) -> float:
    """SINR [dB] at which CQI 1 (0.1523 bit/s/Hz) is reached with gap Γ."""
    return gap_db + 10.0 * math.log10(2.0 ** float(CQI_EFFICIENCY_BPS_HZ[0]) - 1.0)


@dataclass(frozen=True)
class LinkPreset:
    """Link abstraction of both directions plus the per-transfer access latency.

    Args:
        uplink, downlink: the mapping of each direction.
        access_latency_s: time from "data to send" to the first granted resource [s].
    """

    uplink: LinkAbstraction
    downlink: LinkAbstraction
    access_latency_s: float


NR_SNR_GAP_DB: float = 3.0
"""Γ of the ``nr`` preset: our choice inside the 1–6 dB range that fits of LTE/NR link
curves report (Mogensen et al., "LTE capacity compared to the Shannon bound", VTC
2007-Spring; the fit to ns-3 LTE in bench/validate_ns3.py: 4 dB DL, 6 dB UL)."""

PRESETS: dict[str, LinkPreset] = {
    # NR FR1: 38.306 §4.1.2 overheads, 38.214 Table 5.2.2.1-3 cap (256QAM), minimum SINR =
    # where CQI 1 becomes usable with the gap (-6.5 dB), 4 ms = the TR 38.913 §7.5 eMBB
    # user-plane latency target.
    "nr": LinkPreset(
        uplink=LinkAbstraction("shannon", NR_SNR_GAP_DB, MAX_SPECTRAL_EFFICIENCY_BPS_HZ, NR_OVERHEAD_UL,
                               _cqi1_sinr_db(NR_SNR_GAP_DB)),
        downlink=LinkAbstraction("shannon", NR_SNR_GAP_DB, MAX_SPECTRAL_EFFICIENCY_BPS_HZ, NR_OVERHEAD_DL,
                                 _cqi1_sinr_db(NR_SNR_GAP_DB)),
        access_latency_s=0.004,
    ),
    # LTE as simulated by ns-3 (LENA) 3.44: the fit of bench/ns3_fit.py to the 45 measured
    # cases of bench/ns3_reference.json (README, "Validation"), 64QAM cap of TS 36.213.
    # LENA's uplink schedulers split the RBs among the UEs with data whatever their power
    # headroom, so a lone power-limited UE spreads P_CMAX over the whole band: no headroom.
    "lte": LinkPreset(
        uplink=LinkAbstraction("shannon", 6.25, LTE_MAX_SPECTRAL_EFFICIENCY_BPS_HZ, 0.39, -3.67,
                               headroom_aware=False),
        downlink=LinkAbstraction("shannon", 4.25, LTE_MAX_SPECTRAL_EFFICIENCY_BPS_HZ, 0.06, -1.76),
        access_latency_s=0.018,
    ),
}
"""Link presets by scenario name (``radio.preset``)."""
