"""Cross-validation of cosim's link model against ns-3 LTE (packet level), printed as time ratios.

    PYTHONPATH=. python bench/validate_ns3.py [--preset lte] [--measure] [--fit]

The ns-3 side (bench/ns3_lte.py: ns-3 3.44 LTE + EPC from the PyPI ``ns3`` wheel,
20 MHz, path loss = cosim's TR 38.901 UMa at 3.5 GHz loaded per link, UDP transfers of
289,243 B) is measured by ``--measure`` (or bench/ns3_measure.py) and cached in
bench/ns3_reference.json — committed measured reference data — so the cosim side runs
in seconds without ns-3. The cosim side runs every case through the engine itself
(bench/cosim_side.py: Simulation, World, FlowScheduler) with the chosen link preset.

Cases (bench/ns3_cases.py): one device at several distances LOS/NLOS (uplink and
downlink), k = 1/5/10 devices sharing an uplink, and a border device with an idle or
a fully loaded co-channel neighbour cell. Printed per case: the ns-3 time, the cosim
time, their ratio, and a verdict: ``ok`` (ns-3 completed and the ratio is within
1.5×), ``ok-outage`` (ns-3 never delivered the bytes and cosim declares an outage),
else ``MISS``. ``--fit`` fits the link-abstraction parameters (gap Γ, overhead,
SE cap, minimum SINR, access latency) to the ns-3 times (bench/ns3_fit.py).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ns3_cases import CASES, PAYLOAD_BYTES, loss_matrix_db  # noqa: E402

REFERENCE_PATH = Path(__file__).resolve().parent / "ns3_reference.json"
TOLERANCE = 1.5


def load_reference() -> dict | None:
    if not REFERENCE_PATH.exists():
        return None
    return json.loads(REFERENCE_PATH.read_text())


def check_pathloss(ref: dict) -> float:
    """Largest |cosim − reference| path loss over every case and link [dB]."""
    worst = 0.0
    for case in CASES:
        if case.name not in ref["cases"]:
            continue
        ours, theirs = loss_matrix_db(case), ref["cases"][case.name]["loss_db"]
        worst = max(worst, max(abs(a - b) for ra, rb in zip(ours, theirs) for a, b in zip(ra, rb)))
    return worst


# The ns-3 set-up has isotropic antennas, LTE numerology (15 kHz) and ns-3's default uplink
# power control (P_O,PUSCH -80 dBm, alpha 1): the cosim cells are configured the same way
# wherever the scenario schema has the key, so only the link abstraction differs.
NS3_MATCHED_CELL = {"antenna_gain_dbi": 0.0, "subcarrier_spacing_hz": 15e3, "p0_dbm": -80.0, "alpha": 1.0}


def matched_cell_overrides() -> dict:
    """The keys of :data:`NS3_MATCHED_CELL` that this cosim's scenario schema knows."""
    from cosim.scenario.schema_world import Cell

    return {k: v for k, v in NS3_MATCHED_CELL.items() if k in Cell.model_fields}


def cosim_times(radio: dict) -> dict[str, list[float]]:
    """Completion time [s] of every measured transfer of every case, through the engine (NaN: not delivered)."""
    from cosim_side import build_simulation, run_transfers

    out = {}
    cell = matched_cell_overrides()
    for case in CASES:
        sim = build_simulation(case.enb_xy_m, case.ue_xy_m, case.los, radio=radio, cell_overrides=cell)
        res = run_transfers(sim, case.ue_cell, case.ue_role, PAYLOAD_BYTES, case.uplink, max_s=30.0)
        out[case.name] = [t for t, _ in res]
    return out


def verdict(ns3_s: float, cosim_s: float) -> str:
    if math.isnan(ns3_s):
        return "ok-outage" if math.isnan(cosim_s) else "MISS (cosim delivers, ns-3 cannot)"
    if math.isnan(cosim_s):
        return "MISS (cosim outage)"
    ratio = cosim_s / ns3_s
    return "ok" if 1 / TOLERANCE <= ratio <= TOLERANCE else "MISS"


def print_table(ref: dict, cosim: dict[str, list[float]]) -> tuple[int, int]:
    """Print one line per case; return (cases ok, cases compared)."""
    ok = total = 0
    group = None
    for case in CASES:
        if case.name not in ref["cases"]:
            continue
        if case.group != group:
            group = case.group
            print(f"\n  {group}")
            print(f"  {'case':46s} {'ns-3 [s]':>9s} {'cosim [s]':>9s} {'cosim/ns-3':>10s}  verdict")
        ns3 = [math.nan if t is None else t for t in ref["cases"][case.name]["times_s"]]
        ours = cosim[case.name]
        t_ns3, t_ours = max(ns3), max(ours)  # the case ends when its last transfer does
        if any(math.isnan(t) for t in ns3):
            t_ns3 = math.nan
        if any(math.isnan(t) for t in ours):
            t_ours = math.nan
        v = verdict(t_ns3, t_ours)
        ratio = "" if math.isnan(t_ns3) or math.isnan(t_ours) else f"{t_ours / t_ns3:10.2f}"
        fmt = lambda t: "   outage" if math.isnan(t) else f"{t:9.4f}"  # noqa: E731
        print(f"  {case.name:46s} {fmt(t_ns3)} {fmt(t_ours)} {ratio:>10s}  {v}")
        total += 1
        ok += v.startswith("ok")
    return ok, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None, help="radio.preset of the cosim side (e.g. lte, nr)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra radio.* keys for the cosim side, e.g. --set snr_gap_db=5")
    parser.add_argument("--measure", action="store_true", help="(re)run ns-3 first (needs the ns3 extra)")
    parser.add_argument("--fit", action="store_true", help="fit the link-abstraction parameters to ns-3")
    args = parser.parse_args()
    if args.measure:
        import ns3_measure

        sys.argv = [sys.argv[0]]
        ns3_measure.main()
    ref = load_reference()
    if ref is None:
        import ns3_lte

        ok, why = ns3_lte.available()
        print(f"skipped: no {REFERENCE_PATH.name} and {why if not ok else 'it was not measured (use --measure)'}")
        return
    meta = ref["meta"]
    print(f"ns-3 reference: {REFERENCE_PATH.name} (ns3 {meta['ns3_version']}, {len(ref['cases'])} cases, "
          f"{meta['payload_bytes']} B per transfer, UL AMC: {meta.get('ul_cqi', '?')})")
    for chk in meta.get("pathloss_check", []):
        print(f"  UMa 3.5 GHz {chk['d2d_m']:5d} m {'LOS ' if chk['los'] else 'NLOS'}: cosim {chk['cosim_db']:.3f} dB, "
              f"ns-3 ThreeGppUmaPropagationLossModel {chk['ns3_db']:.3f} dB")
    print(f"  path loss of every case link vs the reference: max |diff| = {check_pathloss(ref):.2e} dB")
    if args.fit:
        from ns3_fit import fit_and_print

        fit_and_print(ref)
    radio: dict = {}
    if args.preset:
        radio["preset"] = args.preset
    for item in args.set:
        key, _, value = item.partition("=")
        radio[key] = json.loads(value) if value[:1] in "-0123456789[{tfn" else value
    t = time.perf_counter()
    cosim = cosim_times(radio)
    print(f"\ncosim side: engine with radio = {radio or '{} (defaults)'}, cells {matched_cell_overrides()} "
          f"({time.perf_counter() - t:.1f} s)")
    ok, total = print_table(ref, cosim)
    print(f"\n{ok}/{total} cases ok (within {TOLERANCE}x of ns-3, or an outage in both)")


if __name__ == "__main__":
    main()
