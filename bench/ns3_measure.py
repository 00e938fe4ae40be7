"""Run every case of bench/ns3_cases.py in ns-3 LTE and write bench/ns3_reference.json.

    PYTHONPATH=. nice python bench/ns3_measure.py [--only SUBSTRING]

The JSON is measured reference data (committed): bench/validate_ns3.py reads it, so
the cosim side can be re-run in seconds without ns-3. Each entry keeps the path-loss
matrix the case was run with; validate_ns3.py checks it still equals cosim's.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ns3_lte  # noqa: E402
from ns3_cases import CASES, PAYLOAD_BYTES, loss_matrix_db  # noqa: E402

REFERENCE_PATH = Path(__file__).resolve().parent / "ns3_reference.json"
MAX_S = 30.0
STALL_S = 3.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run only the cases whose name contains this")
    args = parser.parse_args()
    ok, why = ns3_lte.available()
    if not ok:
        print(f"skipped: {why}")
        return
    from importlib.metadata import version

    data = json.loads(REFERENCE_PATH.read_text()) if REFERENCE_PATH.exists() and args.only else {"cases": {}}
    data["meta"] = {
        "what": "measured ns-3 reference data for bench/validate_ns3.py (ns-3 LTE+EPC, see bench/ns3_lte.py)",
        "ns3_version": version("ns3"),
        "python": platform.python_version(),
        "payload_bytes": PAYLOAD_BYTES,
        "max_s": MAX_S,
        "stall_s": STALL_S,
        "ul_cqi": "PUSCH (FfMacScheduler::UlCqiFilter = PUSCH_UL_CQI)",
        "pathloss_check": [],
    }
    for d, los in ((50, True), (500, True), (1500, True), (100, False), (400, False), (1000, False)):
        from radio.pathloss import UMa

        ours = float(UMa(3.5e9, 25.0).loss_db(d, 1.5, los))
        theirs = ns3_lte.threegpp_uma_loss_db(d, los)
        data["meta"]["pathloss_check"].append({"d2d_m": d, "los": los, "cosim_db": ours, "ns3_db": theirs})
        print(f"UMa 3.5 GHz d={d:5d} m {'LOS ' if los else 'NLOS'}: cosim {ours:8.3f} dB  ns-3 {theirs:8.3f} dB  diff {ours - theirs:+.4f}")
    for case in CASES:
        if args.only and args.only not in case.name:
            continue
        loss = loss_matrix_db(case)
        t = time.perf_counter()
        dbg: dict = {}
        res = ns3_lte.run_case(
            list(case.enb_xy_m), list(case.ue_xy_m), list(case.ue_cell), list(case.ue_role), loss,
            PAYLOAD_BYTES, uplink=case.uplink, max_s=MAX_S, stall_s=STALL_S, pusch_cqi=True, debug=dbg,
        )
        wall = time.perf_counter() - t
        times = [None if math.isnan(s) else s for s, _ in res]
        data["cases"][case.name] = {"loss_db": loss, "times_s": times, "rx_bytes": [b for _, b in res],
                                   "background_bytes": dbg["background_bytes"], "end_s": dbg["end_s"], "wall_s": round(wall, 2)}
        print(f"{case.name:45s} times {['-' if x is None else round(x, 4) for x in times]} rx {[b for _, b in res]} ({wall:.1f} s)", flush=True)
        REFERENCE_PATH.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
