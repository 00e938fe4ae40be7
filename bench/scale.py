"""Network-side scale in surrogate mode: wall time, events/s and peak memory.

Default: urban_50dev's network with 10,000 devices, 1,000 per round, 20 rounds,
surrogate learning (exact payload bytes and dense FLOPs, no training). Targets on a
2-core machine: < 60 s and < 2 GB peak RSS.

    python bench/scale.py [--devices 10000] [--per-round 1000] [--rounds 20] [--events all]
                          [--set k=v]...

``--events transfers|rounds`` sets ``output.events`` (handover events dominate the trace at
scale). ``--idle-update-s S`` sets ``radio.idle_update_s`` (idle devices re-evaluated every
S seconds instead of every tick; README, "Idle devices"). Besides wall time the bench
prints this process's CPU time and the load average: on a shared machine the wall time
says as much about the neighbours as about cosim.

``--target`` runs the million-device workload: 1,000,000 devices, 10,000 per round, 10 rounds,
``output.events: transfers``, ``radio.idle_update_s: 10``; targets < 300 s and < 8 GB.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from cosim.engine import run_simulation
from cosim.scenario import load_scenario


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default="scenarios/urban_50dev.yaml")
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--per-round", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--events", choices=["all", "transfers", "rounds"], default="all")
    parser.add_argument("--idle-update-s", type=float, default=None)
    parser.add_argument("--target", action="store_true", help="the million-device workload")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    wall_target_s, rss_target_mb = 60.0, 2048.0
    if args.target:
        args.devices, args.per_round, args.rounds, args.events = 1_000_000, 10_000, 10, "transfers"
        args.idle_update_s = 10.0 if args.idle_update_s is None else args.idle_update_s
        wall_target_s, rss_target_mb = 300.0, 8192.0

    overrides = [
        "learning.mode=surrogate", f"devices.count={args.devices}", f"fl.devices_per_round={args.per_round}",
        f"fl.rounds={args.rounds}", "learning.partition={name: iid, params: {}}", f"output.events={args.events}",
        *([] if args.idle_update_s is None else [f"radio.idle_update_s={args.idle_update_s}"]), *args.overrides,
    ]
    scenario = load_scenario(args.scenario, overrides)
    rss_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        summary = run_simulation(scenario, Path(tmp) / "run")
        wall_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    events = summary["events"]
    load = os.getloadavg()
    print(f"{args.devices:,} devices, {args.per_round:,} per round, {summary['rounds']} rounds (surrogate), "
          f"radio.idle_update_s={args.idle_update_s}")
    print(f"wall {wall_s:.1f} s (target < {wall_target_s:.0f} s: {'met' if wall_s < wall_target_s else 'NOT met'}), "
          f"CPU {cpu_s:.1f} s, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores)")
    print(f"{events:,} trace events (output.events={args.events}), {events / wall_s:,.0f} events/s, "
          f"{summary.get('handovers', 0):,} handovers")
    print(f"simulated {summary['sim_time_s']:.1f} s, energy {summary['energy_j']:.1f} J, "
          f"uplink {summary['uplink_bytes'] / 1e9:.2f} GB")
    print(f"peak RSS {peak_mb:.0f} MB (target < {rss_target_mb:.0f} MB: {'met' if peak_mb < rss_target_mb else 'NOT met'}; "
          f"{rss_before_mb:.0f} MB before the run), {1024 * (peak_mb - rss_before_mb) / args.devices:.1f} kB per device")

if __name__ == "__main__":
    main()
