"""The cross-validation cases shared by the ns-3 and the cosim side of bench/validate_ns3.py.

Every case is a small LTE/NR-like network at 3.5 GHz, 20 MHz, 3GPP TR 38.901 UMa
(h_BS 25 m, h_UT 1.5 m) with deterministic LOS/NLOS and no shadowing or fast fading.
Each UE is either measured (it moves ``PAYLOAD_BYTES``), background load (a
saturating stream in the same direction, keeping its cell fully loaded) or idle.
The path loss of every eNB–UE pair comes from cosim's ``radio.pathloss.UMa``; the ns-3
side loads exactly these values, so both simulators see the same link budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from radio.pathloss import UMa

__all__ = ["Case", "CASES", "PAYLOAD_BYTES", "CARRIER_HZ", "H_BS_M", "H_UT_M", "loss_matrix_db"]

PAYLOAD_BYTES = 289_243
"""Bytes of each measured transfer (one ViT update of urban_50dev)."""
CARRIER_HZ = 3.5e9
H_BS_M = 25.0
H_UT_M = 1.5
ISD_M = 500.0
MEASURED, LOAD = 1, 2


@dataclass(frozen=True)
class Case:
    """One cross-validation case.

    Attributes:
        name: unique key (also the key in the ns-3 reference JSON).
        group: table the case is printed in.
        uplink: direction of every transfer in the case.
        enb_xy_m: eNB positions [m].
        ue_xy_m: UE positions [m].
        ue_cell: serving eNB of each UE.
        ue_role: ``MEASURED`` (1) or ``LOAD`` (2) per UE.
        los: LOS state per (eNB, UE) link.
    """

    name: str
    group: str
    uplink: bool
    enb_xy_m: tuple[tuple[float, float], ...]
    ue_xy_m: tuple[tuple[float, float], ...]
    ue_cell: tuple[int, ...]
    ue_role: tuple[int, ...]
    los: tuple[tuple[bool, ...], ...]

    @property
    def n_measured(self) -> int:
        return sum(1 for r in self.ue_role if r == MEASURED)


def loss_matrix_db(case: Case) -> list[list[float]]:
    """cosim's UMa path loss [dB] of every (eNB, UE) pair of ``case``."""
    model = UMa(carrier_hz=CARRIER_HZ, h_bs_m=H_BS_M)
    out = []
    for i, (ex, ey) in enumerate(case.enb_xy_m):
        row = []
        for j, (ux, uy) in enumerate(case.ue_xy_m):
            d = math.hypot(ux - ex, uy - ey)
            row.append(float(model.loss_db(d, H_UT_M, case.los[i][j])))
        out.append(row)
    return out


def _single(d_m: float, los: bool, uplink: bool) -> Case:
    tag = "ul" if uplink else "dl"
    return Case(
        name=f"{tag}_single_{'los' if los else 'nlos'}_{int(d_m)}m",
        group=f"{tag}: one device alone",
        uplink=uplink,
        enb_xy_m=((0.0, 0.0),),
        ue_xy_m=((d_m, 0.0),),
        ue_cell=(0,),
        ue_role=(MEASURED,),
        los=((los,),),
    )


def _shared(d_m: float, los: bool, k: int) -> Case:
    xy = tuple((d_m * math.cos(2 * math.pi * i / k), d_m * math.sin(2 * math.pi * i / k)) for i in range(k))
    return Case(
        name=f"ul_share_{'los' if los else 'nlos'}_{int(d_m)}m_k{k}",
        group="ul: k devices sharing one cell",
        uplink=True,
        enb_xy_m=((0.0, 0.0),),
        ue_xy_m=xy,
        ue_cell=(0,) * k,
        ue_role=(MEASURED,) * k,
        los=((los,) * k,),
    )


def _border(d_m: float, d_interferer_m: float, loaded: bool, uplink: bool) -> Case:
    """Device at ``d_m`` from its eNB A on the line to eNB B (ISD 500 m, all links NLOS).

    The neighbour cell B serves one device at ``d_interferer_m`` from A (i.e.
    ``ISD − d_interferer_m`` from B); when ``loaded`` it runs a saturating stream in the
    same direction, so A's uplink (or the device's downlink) sees B's interference.
    """
    tag = "ul" if uplink else "dl"
    return Case(
        name=f"{tag}_border_{int(d_m)}m_{'loaded' if loaded else 'idle'}_neighbour_{int(d_interferer_m)}m",
        group=f"{tag}: border device, co-channel neighbour",
        uplink=uplink,
        enb_xy_m=((0.0, 0.0), (ISD_M, 0.0)),
        ue_xy_m=((d_m, 0.0), (d_interferer_m, 1.0)),
        ue_cell=(0, 1),
        ue_role=(MEASURED, LOAD if loaded else 0),
        los=((False, False), (False, False)),
    )


def _all_cases() -> tuple[Case, ...]:
    cases: list[Case] = []
    for d in (50, 200, 500, 1000, 1500, 2000, 2500):
        cases.append(_single(d, True, True))
    for d in (50, 100, 150, 200, 250, 300, 350, 400):
        cases.append(_single(d, False, True))
    for d, los in ((100, True), (250, False), (400, False)):
        for k in (1, 5, 10):
            cases.append(_shared(d, los, k))
    for d, di in ((150, 350), (200, 300), (230, 270)):
        for loaded in (False, True):
            cases.append(_border(d, di, loaded, True))
    for d, los in ((200, True), (1000, True), (100, False), (300, False), (600, False), (700, False), (800, False),
                    (900, False), (1000, False)):
        cases.append(_single(d, los, False))
    for d, di in ((150, 350), (200, 300), (240, 260)):
        for loaded in (False, True):
            cases.append(_border(d, di, loaded, False))
    return tuple(cases)


CASES: tuple[Case, ...] = _all_cases()
