"""Parts (b) and (c) of bench/validate_radio.py: closed-form checks through the engine.

(b) One cell, one device at several distances (UMa 3.5 GHz, LOS and NLOS, no fading,
    no shadowing): the engine's upload and download times and energies against
    T = 8·bytes / (B·min(log2(1 + SNR/Γ), SE_max)) and E = P·T, with the SNR, Γ, cap
    and powers taken from the scenario and the radio layer's path loss; P is the power
    drawn: P_circuit + P_radiated/η_PA when transmitting, P_rx when receiving.
(c) Two co-channel cells 500 m apart, a device half-way: the radio layer's downlink
    SINR S/(I + N) with I = S, i.e. 0 dB up to the noise term.
"""

from __future__ import annotations

import math

import numpy as np

from cosim_side import build_simulation, run_transfers
from radio.layout import geometry_sinr_db
from radio.link import noise_power_dbm
from radio.pathloss import UMa

PAYLOAD_BYTES = 289_243


def part_b() -> None:
    print("(b) single cell, one device: engine vs closed form (UMa 3.5 GHz, 20 MHz, no fading/shadowing)")
    print(f"    {'link':18s} {'dir':3s} {'SNR dB':>7s} {'T engine':>10s} {'T formula':>10s} {'E engine':>10s} {'E formula':>10s}")
    model = UMa(3.5e9, 25.0)
    for d, los in ((50.0, True), (500.0, True), (100.0, False), (300.0, False)):
        for uplink in (True, False):
            sim = build_simulation([(0.0, 0.0)], [(d, 0.0)], [[los]])
            radio = sim.scenario.radio
            pl = float(model.loss_db(d, 1.5, los))
            if uplink:
                fl = sim.fleet  # drawn power P_circuit + P_radiated/η_PA of the device's profile
                p_dbm, nf_db = float(fl.tx_power_dbm[0]), 5.0
                p_w = float(fl.tx_circuit_power_w[0] + fl.tx_power_w[0] / fl.pa_efficiency[0])
            else:
                p_dbm, nf_db, p_w = 43.0, 9.0, float(sim.fleet.rx_power_w[0])
            snr_db = p_dbm - pl - float(noise_power_dbm(20e6, nf_db))
            se = min(math.log2(1 + 10 ** ((snr_db - radio.snr_gap_db) / 10)), radio.max_spectral_efficiency_bps_hz)
            t_formula = 8 * PAYLOAD_BYTES / (20e6 * se)
            (t, e), = run_transfers(sim, [0], [1], PAYLOAD_BYTES, uplink, max_s=30.0)
            tag = f"{int(d)} m {'LOS' if los else 'NLOS'}"
            print(f"    {tag:18s} {'ul' if uplink else 'dl':3s} {snr_db:7.2f} {t:10.6f} {t_formula:10.6f} {e:10.6f} {p_w * t_formula:10.6f}"
                  f"   T ratio {t / t_formula:.6f}")


def part_c() -> None:
    print("(c) two co-channel cells 500 m apart, device half-way (250 m NLOS from both), downlink 43 dBm")
    model = UMa(3.5e9, 25.0)
    pl = float(model.loss_db(250.0, 1.5, False))
    rx = np.array([[43.0 - pl], [43.0 - pl]])
    noise = float(noise_power_dbm(20e6, 9.0))
    _, sinr = geometry_sinr_db(rx, noise)
    _, sir = geometry_sinr_db(rx, -np.inf)
    snr = 43.0 - pl - noise
    want = -10 * math.log10(1 + 10 ** (-snr / 10))
    print(f"    S = I = {43.0 - pl:.2f} dBm, N = {noise:.2f} dBm, SNR = {snr:.2f} dB")
    print(f"    SIR = {sir[0]:.4f} dB (expected 0), SINR = {sinr[0]:.4f} dB (expected -10·log10(1 + N/S) = {want:.4f} dB)")
