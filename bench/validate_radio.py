"""Radio validation printed side by side with published or closed-form references.

    PYTHONPATH=. python bench/validate_radio.py [--uts 20000] [--seed 1]

(a) 3GPP large-scale calibration: 19 sites × 3 sectors with wrap-around, UMa, ISD
    500 m, h_BS 25 m, 6 GHz / 20 MHz / 44 dBm (the set-up of TR 38.901 Table 7.8-1),
    10-element vertical panel with 12° electrical downtilt (Table 7.3-1 elements),
    80 % indoor UTs on 4–8-floor buildings (Table 7.2-1), O2I loss (§7.4.3) with half
    the buildings low-loss and half high-loss, shadowing σ 4/6 dB, min. distance 35 m,
    serving cell = strongest (0 dB margin). Compared with the median of the companies'
    calibration curves of 3GPP R1-165974 ("Summary of calibration results for large
    scale calibration", RAN1#86, Aug. 2016; TR 38.900 v14.0.0 parameters), UMa 6 GHz,
    as tabulated at 5 %…95 % in QuaDRiGa's tutorials/calib_3GPP_ref_data.m
    (fraunhoferhhi/QuaDRiGa; variables gf38900a / cl38900a). "Geometry" there is the
    serving power over the sum of all other cells' powers (no noise); we print it and
    also the SINR with thermal noise (UE NF 9 dB), at 6 GHz and at 3.5 GHz.
(b) Single-cell closed-form checks through the engine (cosim.engine.Simulation): one
    device at several distances, upload/download time and energy against the formula.
(c) Two co-channel cells, a device on the border: SINR = S/(S + N) → 0 dB.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from radio.channel import GudmundsonShadowing  # noqa: E402
from radio.layout import HexLayout, PanelAntenna, draw_ut_placement, geometry_sinr_db  # noqa: E402
from radio.link import noise_power_dbm  # noqa: E402
from radio.pathloss import UMa  # noqa: E402
from radio.pathloss.o2i import INDOOR_LOSS_DB_PER_M, O2I_STD_HIGH_DB, O2I_STD_LOW_DB, wall_loss_db  # noqa: E402

PERCENTILES = (5, 50, 95)
# 3GPP R1-165974 (median over companies), UMa 6 GHz, at 5 %, 50 %, 95 % (QuaDRiGa
# tutorials/calib_3GPP_ref_data.m: gf38900a(1,[1,10,19],2) and cl38900a(1,[1,10,19],2)).
REF_GEOMETRY_DB = (-1.0, 8.6, 25.6)
REF_COUPLING_LOSS_DB = (-150.4, -120.3, -86.0)


def calibration_drop(n_ut: int, seed: int, carrier_hz: float, high_loss_fraction: float = 0.5) -> dict[str, np.ndarray]:
    """One drop of the TR 38.901 §7.8.1 large-scale calibration; per-UT metrics [dB]."""
    rng = np.random.default_rng(seed)
    layout = HexLayout(isd_m=500.0, n_rings=2, h_bs_m=25.0, wraparound=True)
    antenna = PanelAntenna(n_vertical=10, spacing_wavelengths=0.5, electrical_tilt_deg=102.0)
    model = UMa(carrier_hz=carrier_hz, h_bs_m=25.0)
    ut_xy = layout.drop_uniform(rng, n_ut, min_distance_m=35.0)
    place = draw_ut_placement(rng, n_ut, indoor_fraction=0.8)
    disp = layout.displacement_m(ut_xy)
    d2d = np.hypot(disp[..., 0], disp[..., 1])  # (sites, UTs)
    d2d_out = np.maximum(d2d - place.d2d_in_m, 1.0)  # LOS probability uses the outdoor part
    los = rng.uniform(size=d2d.shape) < model.los_probability(d2d_out, place.h_ut_m)
    loss = model.loss_db(d2d, place.h_ut_m, los)
    shadow = GudmundsonShadowing(model.shadow_std_db(los), model.decorrelation_distance_m(los), d2d.shape, rng).value_db
    high = rng.uniform(size=n_ut) < high_loss_fraction
    sigma_p = np.where(high, O2I_STD_HIGH_DB, O2I_STD_LOW_DB)
    o2i = np.where(place.indoor, wall_loss_db(carrier_hz, high) + INDOOR_LOSS_DB_PER_M * place.d2d_in_m
                   + sigma_p * rng.standard_normal(n_ut), 0.0)
    gain = layout.sector_gain_dbi(ut_xy, place.h_ut_m, antenna)  # (cells, UTs)
    coupling = gain - np.repeat(loss + shadow + o2i[None, :], len(layout.boresights_deg), axis=0)
    tx_dbm = 44.0
    serving, geometry = geometry_sinr_db(tx_dbm + coupling, noise_dbm=-np.inf)
    _, sinr = geometry_sinr_db(tx_dbm + coupling, noise_dbm=float(noise_power_dbm(20e6, 9.0)))
    return {"geometry_db": geometry, "sinr_db": sinr, "coupling_db": coupling[serving, np.arange(n_ut)]}


def part_a(n_ut: int, seed: int) -> None:
    print("(a) 3GPP large-scale calibration, UMa 19x3 wrap-around, ISD 500 m, 10x1 panel, 12 deg e-tilt")
    t = time.perf_counter()
    at6 = calibration_drop(n_ut, seed, 6e9)
    at35 = calibration_drop(n_ut, seed, 3.5e9)
    print(f"    {n_ut} UTs per drop, {time.perf_counter() - t:.1f} s")
    print(f"    {'metric':38s} {'5%':>8s} {'50%':>8s} {'95%':>8s}")

    def row(name: str, values) -> None:
        print(f"    {name:38s} " + " ".join(f"{v:8.1f}" for v in values))

    row("geometry S/I, cosim 6 GHz [dB]", np.percentile(at6["geometry_db"], PERCENTILES))
    row("geometry, 3GPP R1-165974 6 GHz [dB]", REF_GEOMETRY_DB)
    row("coupling loss, cosim 6 GHz [dB]", np.percentile(at6["coupling_db"], PERCENTILES))
    row("coupling loss, 3GPP R1-165974 [dB]", REF_COUPLING_LOSS_DB)
    row("SINR with noise, cosim 6 GHz [dB]", np.percentile(at6["sinr_db"], PERCENTILES))
    row("geometry S/I, cosim 3.5 GHz [dB]", np.percentile(at35["geometry_db"], PERCENTILES))
    row("SINR with noise, cosim 3.5 GHz [dB]", np.percentile(at35["sinr_db"], PERCENTILES))
    diff = np.percentile(at6["geometry_db"], PERCENTILES) - np.array(REF_GEOMETRY_DB)
    print(f"    geometry cosim - 3GPP at 5/50/95 %: {diff[0]:+.2f} / {diff[1]:+.2f} / {diff[2]:+.2f} dB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uts", type=int, default=20000, help="UTs in the calibration drop")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    part_a(args.uts, args.seed)
    print()
    from validate_radio_engine import part_b, part_c

    part_b()
    print()
    part_c()


if __name__ == "__main__":
    main()
