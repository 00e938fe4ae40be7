"""Trace at scale: event levels (``output.events``) keep exactly the events they name and
leave everything else of a run unchanged; the bulk devices table equals the row-by-row
one byte for byte, and a run writes it in bulk (the same work for 30 as for 600 devices:
linear, where a per-device loop was quadratic); importing the trace module does not
import pyarrow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from cosim.engine import run_simulation
from cosim.scenario import load_scenario
from cosim.trace import NO_ID, WORLD_EVENT_KINDS, TraceRecorder

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, level: str) -> tuple[list[dict], dict, Path]:
    # urban_50dev's walking devices hand over between its three cells; surrogate learning.
    scenario = load_scenario(ROOT / "scenarios" / "urban_50dev.yaml", [
        "fl.rounds=3", "learning.mode=surrogate", "learning.partition={name: iid, params: {}}",
        "output.checkpoint_every=0", f"output.events={level}"])
    out = tmp_path / level
    run_simulation(scenario, out)
    rows = [{k: repr(v) if isinstance(v, float) else v for k, v in r.items()}  # NaN == NaN
            for r in pq.read_table(out / "events.parquet").to_pylist()]
    summary = json.loads((out / "summary.json").read_text())
    return rows, summary, out


def test_event_levels_filter_and_change_nothing_else(tmp_path: Path) -> None:
    every, s_all, d_all = _run(tmp_path, "all")
    assert any(r["kind"] == "handover" for r in every)  # the filter has something to drop
    for level, keep in (("transfers", lambda r: r["kind"] not in WORLD_EVENT_KINDS),
                        ("rounds", lambda r: r["device"] == NO_ID)):  # noqa: E731
        rows, summary, out = _run(tmp_path, level)
        assert rows == [r for r in every if keep(r)], level
        assert len(rows) < len(every)
        strip = lambda s: {k: v for k, v in s.items() if k not in ("events", "wall_time_s", "wall_s")}  # noqa: E731
        assert strip(summary) == strip(s_all) and summary["handovers"] == s_all["handovers"]
        for table in ("rounds.parquet", "devices.parquet"):
            assert (out / table).read_bytes() == (d_all / table).read_bytes(), (level, table)


def test_event_level_is_validated() -> None:
    with pytest.raises(ValueError, match="output.events 'some'"):
        TraceRecorder(events="some")
    from cosim.scenario import ScenarioError

    with pytest.raises(ScenarioError, match="output.events"):
        load_scenario(ROOT / "scenarios" / "smoke.yaml", ["output.events=handovers"])


def test_device_columns_equal_device_rows_bytewise(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 257
    cols = {"device": np.arange(n, dtype=np.int64), "profile": np.array(["high", "low"] * 128 + ["mid"], dtype=object),
            "energy_j": rng.random(n), "alive": rng.random(n) > 0.3, "final_accuracy": np.where(rng.random(n) > 0.5,
                                                                                               np.nan, rng.random(n))}
    by_rows, by_cols = TraceRecorder(), TraceRecorder()
    for d in range(n):
        by_rows.device_row(device=int(d), profile=str(cols["profile"][d]), energy_j=float(cols["energy_j"][d]),
                           alive=bool(cols["alive"][d]), final_accuracy=float(cols["final_accuracy"][d]))
    by_cols.device_columns(**cols)
    by_rows.write(tmp_path / "rows", ["parquet", "csv"])
    by_cols.write(tmp_path / "cols", ["parquet", "csv"])
    for name in ("devices.parquet", "devices.csv"):
        assert (tmp_path / "rows" / name).read_bytes() == (tmp_path / "cols" / name).read_bytes()
    with pytest.raises(ValueError, match="one length"):
        TraceRecorder().device_columns(a=[1, 2], b=[1])


def test_trace_module_imports_without_pyarrow() -> None:
    code = "import sys, cosim.trace as t; r = t.TraceRecorder(); r.event(0, 0, -1, -1, 'x'); print('pyarrow' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "False"


def _device_table_work(tmp_path: Path, n_devices: int, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """(reads of the all-device positions copy, per-device row calls) while a finished run of
    ``n_devices`` writes its run directory."""
    from cosim.engine.outputs import write_run
    from cosim.engine.simulation import Simulation

    scenario = load_scenario(ROOT / "scenarios" / "smoke.yaml", [
        f"devices.count={n_devices}", "fl.rounds=1", "fl.devices_per_round=2", "learning.mode=surrogate",
        f"learning.dataset.params.num_train={20 * n_devices}", "output.formats=[parquet]"])
    sim = Simulation(scenario)
    sim.run()
    counts = {"positions": 0, "rows": 0}
    mobility = type(sim.world.mobility)
    read_positions = mobility.positions_m.fget
    write_row = TraceRecorder.device_row

    def counted_positions(self):
        counts["positions"] += 1
        return read_positions(self)

    def counted_row(self, **row):
        counts["rows"] += 1
        return write_row(self, **row)

    with monkeypatch.context() as patch:
        patch.setattr(mobility, "positions_m", property(counted_positions))
        patch.setattr(TraceRecorder, "device_row", counted_row)
        write_run(sim, tmp_path / f"run{n_devices}", None, 0.0)
    assert len(pq.read_table(tmp_path / f"run{n_devices}" / "devices.parquet")) == n_devices
    return counts["positions"], counts["rows"]


def test_device_table_is_written_in_bulk_whatever_the_population(tmp_path: Path, monkeypatch) -> None:
    # #18: a per-device loop copied all positions per device (O(N^2): 400k devices took 154 s)
    small, large = _device_table_work(tmp_path, 30, monkeypatch), _device_table_work(tmp_path, 600, monkeypatch)
    assert small == large and small[0] <= 2 and small[1] == 0, (small, large)
