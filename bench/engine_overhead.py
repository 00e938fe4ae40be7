"""Fraction of wall time the engine spends outside learning calls (target <= 3%).

Runs a scenario (default: urban_50dev, 5 rounds) and splits the wall time into the
time inside learning calls (data set-up, downlink payloads, local updates, commit,
aggregation, evaluation; measured by the engine itself) and everything else (SimPy
events, radio ticks, flow scheduling, selection, traces and output files).

    python bench/engine_overhead.py [SCENARIO] [--rounds 5] [--set k=v]...
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from cosim.engine import run_simulation
from cosim.scenario import load_scenario


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default="scenarios/urban_50dev.yaml")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()

    scenario = load_scenario(args.scenario, [f"fl.rounds={args.rounds}", *args.overrides])
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = run_simulation(scenario, Path(tmp) / "run")
        wall_s = time.perf_counter() - t0
        manifest = json.loads((Path(tmp) / "run" / "manifest.json").read_text())
    learning_s = manifest["learning_wall_s"]
    engine_s = wall_s - learning_s
    print(f"scenario {scenario.name}: {summary['rounds']} rounds, {summary['events']} events")
    print(f"wall {wall_s:.2f} s = learning {learning_s:.2f} s + engine {engine_s:.3f} s")
    print(f"engine overhead: {100 * engine_s / wall_s:.2f}% of wall time (target <= 3%)")


if __name__ == "__main__":
    main()
