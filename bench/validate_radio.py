"""Radio validation printed side by side with published or closed-form references.

    PYTHONPATH=. python bench/validate_radio.py [--uts 20000] [--seed 1]

(a) 3GPP large-scale calibration (radio/calibration.py: 19 sites × 3 sectors with
    wrap-around, UMa, ISD 500 m, the TR 38.901 Table 7.8-1 set-up) against the median
    of the companies' curves of 3GPP R1-165974 ("Summary of calibration results for
    large scale calibration", RAN1#86, Aug. 2016; TR 38.900 v14.0.0 parameters), UMa
    6 GHz, as tabulated at 5 %…95 % in QuaDRiGa's tutorials/calib_3GPP_ref_data.m
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

from radio.calibration import R1_165974_UMA_6GHZ, large_scale_drop  # noqa: E402

PERCENTILES = (5, 50, 95)
REF = R1_165974_UMA_6GHZ


def part_a(n_ut: int, seed: int) -> None:
    print("(a) 3GPP large-scale calibration, UMa 19x3 wrap-around, ISD 500 m, 10x1 panel, 12 deg e-tilt")
    t = time.perf_counter()
    at6 = large_scale_drop(np.random.default_rng(seed), n_ut, carrier_hz=6e9)
    at35 = large_scale_drop(np.random.default_rng(seed), n_ut, carrier_hz=3.5e9)
    print(f"    {n_ut} UTs per drop, {time.perf_counter() - t:.1f} s")
    print(f"    {'metric':38s} {'5%':>8s} {'50%':>8s} {'95%':>8s}")

    def row(name: str, values) -> None:
        print(f"    {name:38s} " + " ".join(f"{v:8.1f}" for v in values))

    row("geometry S/I, cosim 6 GHz [dB]", np.percentile(at6["geometry_db"], PERCENTILES))
    row("geometry, 3GPP R1-165974 6 GHz [dB]", REF['geometry_db'])
    row("coupling loss, cosim 6 GHz [dB]", np.percentile(at6["coupling_loss_db"], PERCENTILES))
    row("coupling loss, 3GPP R1-165974 [dB]", REF['coupling_loss_db'])
    row("SINR with noise, cosim 6 GHz [dB]", np.percentile(at6["sinr_db"], PERCENTILES))
    row("geometry S/I, cosim 3.5 GHz [dB]", np.percentile(at35["geometry_db"], PERCENTILES))
    row("SINR with noise, cosim 3.5 GHz [dB]", np.percentile(at35["sinr_db"], PERCENTILES))
    diff = np.percentile(at6["geometry_db"], PERCENTILES) - np.array(REF['geometry_db'])
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
