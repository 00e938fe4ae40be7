"""Cost of one full channel + allocation tick, vectorised, at 100,000 devices.

One tick = mobility step, 2-D distances to every cell, LOS state, 38.901 path loss,
correlated shadowing update, fading redraw, uplink SNR and spectral efficiency,
strongest-cell attachment, and one `min_time` allocation per cell over its devices.
The per-device reference does the same work with scalar calls in a Python loop on
1,000 devices; the ratio compares cost per device.

    python bench/radio_scale.py [--devices 100000] [--loop-devices 1000]

Prints the tick time (target: < 50 ms for 100k devices) and the speed-up per device.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from radio.channel import BlockFading, GudmundsonShadowing
from radio.link import snr_linear, spectral_efficiency_bps_hz
from radio.mobility import MOBILITY
from radio.ofdma import ALLOCATORS
from radio.pathloss import MODELS

AREA_M = (2000.0, 2000.0)
CELLS_XY_M = np.array([[500.0, 500.0], [1500.0, 500.0], [1000.0, 1500.0]])
H_UT_M = 1.5
UL_BANDWIDTH_HZ = 20e6
UE_TX_DBM = 23.0
BS_NF_DB = 5.0


class Tick:
    """State of the radio layer for n devices and 3 UMa cells."""

    def __init__(self, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.models = [MODELS["uma"](carrier_hz=3.5e9, h_bs_m=25.0) for _ in CELLS_XY_M]
        self.mobility = MOBILITY["random_waypoint"](n, AREA_M, rng)
        shape = (len(CELLS_XY_M), n)
        self.los_draw = rng.uniform(size=shape)
        self.shadow = GudmundsonShadowing(6.0, 50.0, shape, rng)
        self.fading = BlockFading("rayleigh", 9.0, shape, rng)
        self.remaining_bytes = rng.uniform(1e4, 1e6, size=n)

    def vectorised(self, dt_s: float) -> np.ndarray:
        moved = self.mobility.step(dt_s)
        xy = self.mobility.positions_m
        d2d = np.hypot(xy[:, 0] - CELLS_XY_M[:, 0:1], xy[:, 1] - CELLS_XY_M[:, 1:2])
        los = np.stack([self.los_draw[c] < m.los_probability(d2d[c], H_UT_M) for c, m in enumerate(self.models)])
        pl = np.stack([m.loss_db(d2d[c], H_UT_M, los[c]) for c, m in enumerate(self.models)])
        std = np.stack([m.shadow_std_db(los[c]) for c, m in enumerate(self.models)])
        decorr = np.stack([m.decorrelation_distance_m(los[c]) for c, m in enumerate(self.models)])
        self.shadow.set_params(std, decorr)
        self.shadow.step(moved)
        gain = self.fading.redraw()
        snr = snr_linear(UE_TX_DBM, pl, self.shadow.value_db, gain, UL_BANDWIDTH_HZ, BS_NF_DB)
        se = spectral_efficiency_bps_hz(snr)
        serving = np.argmax(-(pl + self.shadow.value_db), axis=0)
        fractions = np.zeros(se.shape[1])
        device_se = se[serving, np.arange(se.shape[1])]
        for c in range(len(CELLS_XY_M)):
            on_cell = serving == c
            if on_cell.any():
                fractions[on_cell] = ALLOCATORS["min_time"](device_se[on_cell], self.remaining_bytes[on_cell],
                                                            np.zeros(on_cell.sum()))
        return fractions

    def per_device_loop(self, dt_s: float) -> np.ndarray:
        """The same tick, one device and one cell at a time with scalar calls."""
        moved = self.mobility.step(dt_s)
        positions = self.mobility.positions_m
        n = positions.shape[0]
        serving = np.zeros(n, dtype=int)
        device_se = np.zeros(n)
        for d in range(n):
            best = (-np.inf, 0, 0.0)
            for c, model in enumerate(self.models):
                d2d = float(np.hypot(*(positions[d] - CELLS_XY_M[c])))
                los = bool(self.los_draw[c, d] < float(model.los_probability(d2d, H_UT_M)))
                pl = float(model.loss_db(d2d, H_UT_M, los))
                rho = np.exp(-moved[d] / float(model.decorrelation_distance_m(los)))
                std = float(model.shadow_std_db(los))
                shadow = rho * self.shadow.value_db[c, d] + np.sqrt(1 - rho**2) * std * np.random.standard_normal()
                gain = np.random.exponential()
                snr = float(snr_linear(UE_TX_DBM, pl, shadow, gain, UL_BANDWIDTH_HZ, BS_NF_DB))
                se = float(spectral_efficiency_bps_hz(snr))
                if -(pl + shadow) > best[0]:
                    best = (-(pl + shadow), c, se)
            serving[d], device_se[d] = best[1], best[2]
        fractions = np.zeros(n)
        for c in range(len(CELLS_XY_M)):
            on_cell = np.flatnonzero(serving == c)
            weights = [self.remaining_bytes[d] / device_se[d] if device_se[d] > 0 else 0.0 for d in on_cell]
            total = sum(weights)
            for d, w in zip(on_cell, weights):
                fractions[d] = w / total if total > 0 else 1.0 / len(on_cell)
        return fractions


def _best_of(fn, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(1.0)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--loop-devices", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    big = Tick(args.devices)
    vector_s = _best_of(big.vectorised, args.repeats)
    small = Tick(args.loop_devices)
    loop_s = _best_of(small.per_device_loop, max(1, args.repeats // 2))
    small_vector_s = _best_of(small.vectorised, args.repeats)

    per_device_vector = vector_s / args.devices
    per_device_loop = loop_s / args.loop_devices
    print(f"vectorised tick, {args.devices:,} devices x 3 cells: {vector_s * 1e3:8.1f} ms  (target < 50 ms)")
    print(f"vectorised tick, {args.loop_devices:,} devices x 3 cells: {small_vector_s * 1e3:8.2f} ms")
    print(f"per-device loop, {args.loop_devices:,} devices x 3 cells: {loop_s * 1e3:8.1f} ms")
    print(f"cost per device: vectorised {per_device_vector * 1e9:.0f} ns, loop {per_device_loop * 1e9:.0f} ns, "
          f"speed-up {per_device_loop / per_device_vector:.0f}x")


if __name__ == "__main__":
    main()
