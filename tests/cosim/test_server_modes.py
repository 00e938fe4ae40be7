"""Asynchronous server modes: FedAsync, FedBuff, semi-sync — staleness, exactly-once, equivalence."""

from __future__ import annotations

import filecmp
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from cosim.engine import Simulation, resume_simulation, run_simulation
from cosim.engine.checkpoint import CHECKPOINT_NAME, load_checkpoint
from cosim.engine.server_modes import staleness_weight
from cosim.scenario import ScenarioError, load_scenario

SMOKE = Path(__file__).resolve().parents[2] / "scenarios" / "smoke.yaml"
MODES = {
    "async": ["fl.mode=async", "fl.concurrency=4"],
    "buffered": ["fl.mode=buffered", "fl.concurrency=5", "fl.buffer_size=2"],
    "semi_sync": ["fl.mode=semi_sync", "fl.deadline_s=0.1", "fl.concurrency=5"],
}


def run(tmp_path: Path, overrides: list[str], name: str = "run"):
    scenario = load_scenario(SMOKE, overrides)
    summary = run_simulation(scenario, tmp_path / name)
    tables = {t: pq.read_table(tmp_path / name / f"{t}.parquet").to_pandas() for t in ("events", "rounds")}
    if (tmp_path / name / "updates.parquet").exists():
        tables["updates"] = pq.read_table(tmp_path / name / "updates.parquet").to_pandas()
    return summary, tables


def test_staleness_functions_match_fedasync():
    # Xie et al. 2019, section 5.2: constant, polynomial (t - tau + 1)^-a, hinge with a, b.
    assert [staleness_weight(t, "constant", 0.5, 4) for t in (0, 3, 100)] == [1.0, 1.0, 1.0]
    assert staleness_weight(3, "polynomial", 0.5, 4) == pytest.approx(1 / 2.0)
    assert staleness_weight(0, "polynomial", 0.5, 4) == 1.0
    assert staleness_weight(8, "polynomial", 1.0, 4) == pytest.approx(1 / 9)
    assert staleness_weight(4, "hinge", 10.0, 4) == 1.0
    assert staleness_weight(6, "hinge", 10.0, 4) == pytest.approx(1 / 21)
    with pytest.raises(ValueError, match="negative staleness"):
        staleness_weight(-1, "constant", 0.5, 4)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_arrival_applied_once_with_exact_staleness(tmp_path, mode):
    summary, t = run(tmp_path, ["learning.mode=surrogate", "fl.rounds=6", *MODES[mode],
                                "devices.availability={model: markov, mean_on_s: 0.2, mean_off_s: 0.05}"])
    ev, up = t["events"], t["updates"]
    # Replay the event log: the server version is the number of aggregations so far.
    version = 0
    sent: dict[int, int] = {}
    arrivals: list[int] = []
    applied: list[tuple[int, int, int]] = []
    for kind, device, detail in zip(ev.kind, ev.device, ev.detail):
        if kind == "selected":
            assert int(re.search(r"version=(\d+)", detail).group(1)) == version
            sent[device] = version
        elif kind == "ul_end":
            arrivals.append(device)
        elif kind == "apply":
            tau = int(re.search(r"staleness=(\d+)", detail).group(1))
            assert tau == version - sent[device] >= 0
            applied.append((device, sent[device], tau))
        elif kind == "discarded":
            applied.append((device, sent[device], -1))
        elif kind == "aggregate":
            version += 1
    # Each arrival is applied (or, still buffered at the end, discarded) exactly once.
    assert sorted(arrivals) == sorted(d for d, _, _ in applied)
    assert len(up) == sum(1 for *_, tau in applied if tau >= 0) == summary["updates_applied"]
    assert (up.staleness == up.version_at_apply - up.version_sent).all() and (up.staleness >= 0).all()
    assert list(zip(up.device, up.version_sent, up.staleness)) == [a for a in applied if a[2] >= 0]
    assert summary["max_staleness"] == up.staleness.max()
    assert summary["mean_staleness"] == pytest.approx(up.staleness.mean())
    assert summary["model_versions"] == version
    # A device never has two updates in flight; concurrency is respected.
    busy: set[int] = set()
    peak = 0
    for kind, device in zip(ev.kind, ev.device):
        if kind == "selected":
            assert device not in busy
            busy.add(device)
            peak = max(peak, len(busy))
        elif kind in ("ul_end", "dropout", "cancelled") or (kind == "straggler" and mode != "semi_sync"):
            busy.discard(device)
    concurrency = next(int(o.split("=")[1]) for o in MODES[mode] if o.startswith("fl.concurrency="))
    assert peak <= concurrency  # training at once; with the buffer, outstanding <= concurrency too
    # Unavailable devices never start or carry on an update.
    off: set[int] = set()
    for kind, device in zip(ev.kind, ev.device):
        if kind == "unavailable":
            off.add(device)
        elif kind == "available":
            off.discard(device)
        elif kind in ("selected", "dl_end", "compute_end", "ul_end"):
            assert device not in off, (kind, device)


@pytest.mark.parametrize("per_round", [3, 6])
def test_buffered_with_k_equal_concurrency_equal_round_size_is_fedavg(per_round):
    # K = concurrency = devices per round (3 or all 6), always available, s(0) = 1, eta = 1.
    common = ["fl.rounds=3", f"fl.devices_per_round={per_round}"]
    sims = {}
    for mode, extra in (("sync", []), ("buffered", ["fl.mode=buffered", f"fl.concurrency={per_round}",
                                                    f"fl.buffer_size={per_round}"])):
        sim = Simulation(load_scenario(SMOKE, common + extra))
        sim.run()
        sims[mode] = sim
    sync, buf = sims["sync"], sims["buffered"]
    for name, x in sync.learning.algorithm.global_state.items():
        y = buf.learning.algorithm.global_state[name]
        assert torch.equal(y, x), name
    assert sync.trace.round_values("accuracy") == buf.trace.round_values("accuracy")
    assert sync.trace.round_values("end_s") == buf.trace.round_values("end_s")
    # Energy differs by design: a sync device idles until the round ends, a FedBuff device
    # leaves when its upload is done.
    assert sum(sync.trace.round_values("energy_j")) > sum(buf.trace.round_values("energy_j"))


@pytest.mark.parametrize("algorithm", ["fedavg", "fedprox", "pfl_tps"])
@pytest.mark.parametrize("mode", sorted(MODES))
def test_modes_train_and_are_deterministic(tmp_path, mode, algorithm):
    sets = ["fl.rounds=3", f"learning.algorithm.name={algorithm}", *MODES[mode]]
    a, _ = run(tmp_path, sets, "a")
    b, _ = run(tmp_path, sets, "b")
    assert a == b
    assert a["updates_applied"] > 0 and a["final_accuracy"] is not None
    for name in ("events.parquet", "rounds.parquet", "devices.parquet", "updates.parquet", "events.csv"):
        assert filecmp.cmp(tmp_path / "a" / name, tmp_path / "b" / name, shallow=False), name


class Crash(Exception):
    pass


@pytest.mark.parametrize("mode", sorted(MODES))
def test_checkpoint_with_updates_in_flight_resumes_byte_identical(tmp_path, mode):
    sets = ["fl.rounds=4", "output.checkpoint_every=1", "learning.algorithm.name=pfl_tps",
            "devices.availability={model: markov, mean_on_s: 0.2, mean_off_s: 0.05}", *MODES[mode]]
    run(tmp_path, sets, "ref")
    scenario = load_scenario(SMOKE, sets)

    def crash_in_round_3(progress) -> None:
        if progress.round == 3:  # after round 2 closed, before its checkpoint: round 1's is on disk
            raise Crash

    with pytest.raises(Crash):
        run_simulation(scenario, tmp_path / "crashed", progress=crash_in_round_3)
    state = load_checkpoint(tmp_path / "crashed" / CHECKPOINT_NAME, data=None)
    assert state["rounds_done"] == 2
    assert state["server_mode"].in_flight, "the checkpoint was taken with updates in flight"
    resume_simulation(tmp_path / "crashed")
    for name in ("events.parquet", "rounds.parquet", "devices.parquet", "updates.parquet", "events.csv",
                 "summary.json"):
        assert filecmp.cmp(tmp_path / "ref" / name, tmp_path / "crashed" / name, shallow=False), name
    assert not (tmp_path / "crashed" / CHECKPOINT_NAME).exists()


@pytest.mark.parametrize("overrides, message", [
    (["fl.mode=async", "learning.algorithm.name=ditto"], "learning.algorithm.name: 'ditto' cannot run in fl.mode 'async'"),
    (["fl.mode=semi_sync"], "fl.deadline_s: None: fl.mode 'semi_sync' needs a round deadline"),
    (["fl.mode=buffered", "fl.buffer_size=7"], "fl.buffer_size: 7 > devices.count (6)"),
    (["fl.mode=nope"], "fl.mode"),
    (["fl.mode=async", "fl.deadline_s=2.0"], "fl.deadline_s: 2: fl.mode 'async' has no rounds to cut"),
])
def test_bad_mode_settings_are_one_line_errors(overrides, message):
    with pytest.raises(ScenarioError) as err:
        load_scenario(SMOKE, overrides)
    assert message in str(err.value)
    assert "\n" not in str(err.value).strip()
