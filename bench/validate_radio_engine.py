"""Parts (b) and (c) of bench/validate_radio.py: closed-form checks through the engine.

(b) One cell, one device at several distances (UMa 3.5 GHz, LOS and NLOS, no fading,
    no shadowing): the engine's upload and download times and energies against
    T = L + 8·bytes / (B·(1 − OH)·min(log2(1 + SNR/Γ), SE_max)) and E = P·(T − L), with
    the SNR (antenna gains, TS 38.213 power control on the uplink), Γ, OH, cap, minimum
    SINR and access latency L of the scenario's link preset, and the radio layer's path
    loss; P is the power drawn: P_circuit + P_radiated/η_PA when transmitting, P_rx when
    receiving.
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
            cell = sim.scenario.cells[0]
            pl = float(model.loss_db(d, 1.5, los))
            coupling_db = pl - cell.antenna_gain_dbi - sim.scenario.devices.antenna_gain_dbi
            lb = sim.world.links
            ab = lb.ul_abstraction if uplink else lb.dl_abstraction
            if uplink:
                fl = sim.fleet  # TS 38.213 power control on the whole band (51 RB at 30 kHz), drawn power
                p_dbm = min(float(fl.tx_power_dbm[0]), cell.p0_dbm + 10 * math.log10(2 * 51) + cell.alpha * coupling_db)
                nf_db = cell.noise_figure_db
                p_w = float(fl.tx_circuit_power_w[0] + 10 ** (p_dbm / 10) / 1000 / fl.pa_efficiency[0])
            else:
                p_dbm, nf_db, p_w = cell.tx_power_dbm, 9.0, float(sim.fleet.rx_power_w[0])
            snr_db = p_dbm - coupling_db - float(noise_power_dbm(20e6, nf_db))
            gap = 10 ** (ab.snr_gap_db / 10)
            se = (1 - ab.overhead) * min(math.log2(1 + 10 ** (snr_db / 10) / gap), ab.max_spectral_efficiency_bps_hz)
            if snr_db < ab.min_sinr_db:
                se = 0.0
            airtime = 8 * PAYLOAD_BYTES / (20e6 * se) if se > 0 else math.inf
            t_formula = lb.access_latency_s + airtime  # the engine's time includes the access latency
            (t, e), = run_transfers(sim, [0], [1], PAYLOAD_BYTES, uplink, max_s=30.0)
            tag = f"{int(d)} m {'LOS' if los else 'NLOS'}"
            print(f"    {tag:18s} {'ul' if uplink else 'dl':3s} {snr_db:7.2f} {t:10.6f} {t_formula:10.6f} {e:10.6f} {p_w * airtime:10.6f}"
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
