"""bench/radio_scale.py runs against the engine's current API (tiny population), and the
per-source-cell cache of the uplink interference equals the sum recomputed from scratch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from radio.interference import uplink_interference_psd

BENCH = Path(__file__).resolve().parents[2] / "bench" / "radio_scale.py"


def _bench():
    spec = importlib.util.spec_from_file_location("radio_scale", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _from_scratch(links) -> np.ndarray:
    devices = np.concatenate([d for d, _ in links.ul_tx.values()])
    cells = np.concatenate([np.full(d.size, c, dtype=np.int64) for c, (d, _) in links.ul_tx.items()])
    power = np.concatenate([p for _, p in links.ul_tx.values()])
    on = power > 0
    return uplink_interference_psd(links.gain_ul, links.ul_bandwidth_hz, links.ul_overlap_hz, devices[on], cells[on],
                                   power[on])


def test_bench_tick_runs_with_interference_and_the_cache_matches():
    bench = _bench()
    world, schedulers, env, rate_average = bench.build(300)
    assert len(schedulers) == 2 * world.n_cells and sum(s.active for s in schedulers) > 250
    for k in (1, 2):
        env.run(until=float(k))
        bench.tick(world, schedulers, rate_average, 1.0, env.now)
        cached = world.links.uplink_interference_psd()
        assert np.all(cached > 0.0)  # three co-channel cells with transmitters
        np.testing.assert_allclose(cached, _from_scratch(world.links), rtol=1e-12)
    # A new report from one cell invalidates only its own contribution.
    devices, power = world.links.ul_tx[0]
    world.links.report_uplink(0, devices, power * 0.5)
    np.testing.assert_allclose(world.links.uplink_interference_psd(), _from_scratch(world.links), rtol=1e-12)
