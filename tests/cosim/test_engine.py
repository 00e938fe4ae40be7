"""Engine invariants on small scenarios: conservation, causality, determinism, exact links."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from cosim.engine import Simulation, run_simulation
from cosim.scenario import load_scenario
from radio.compute import PROFILES
from radio.link import noise_power_dbm
from radio.pathloss import MODELS

SMOKE = Path(__file__).resolve().parents[2] / "scenarios" / "smoke.yaml"
SURROGATE = ["learning.mode=surrogate"]


def run(tmp_path: Path, overrides: list[str], name: str = "run") -> tuple[dict, dict]:
    scenario = load_scenario(SMOKE, overrides)
    summary = run_simulation(scenario, tmp_path / name)
    tables = {t: pq.read_table(tmp_path / name / f"{t}.parquet").to_pydict() for t in ("events", "rounds", "devices")}
    return summary, tables


def test_bytes_energy_and_time_invariants(tmp_path):
    summary, t = run(tmp_path, SURROGATE + ["fl.rounds=4", "devices.count=12", "fl.devices_per_round=6",
                                            "devices.mobility={model: random_waypoint, params: {}}"])
    ev = t["events"]
    times = np.array(ev["time_s"])
    assert np.all(np.diff(times) >= 0), "event times must be non-decreasing"
    kinds = np.array(ev["kind"])
    bytes_ = np.array(ev["bytes"])
    assert bytes_[kinds == "ul_end"].sum() == summary["uplink_bytes"] == sum(t["rounds"]["uplink_bytes"])
    assert bytes_[kinds == "dl_end"].sum() == summary["downlink_bytes"] == sum(t["rounds"]["downlink_bytes"])
    dev = t["devices"]
    parts = sum(np.array(dev[f"{c}_energy_j"]) for c in ("compute", "tx", "rx", "idle"))
    assert np.all(parts >= 0)
    np.testing.assert_allclose(parts, dev["energy_j"], rtol=1e-12)
    assert summary["energy_j"] == pytest.approx(sum(dev["energy_j"]), rel=1e-12)
    assert summary["energy_j"] == pytest.approx(sum(t["rounds"]["energy_j"]), rel=1e-9)
    # Causality: per device and round, download < compute end < upload end.
    order = {"dl_end": 0, "compute_end": 1, "ul_end": 2}
    seen: dict[tuple[int, int], list[tuple[float, int]]] = {}
    for time_s, r, d, kind in zip(ev["time_s"], ev["round"], ev["device"], ev["kind"]):
        if kind in order:
            seen.setdefault((r, d), []).append((time_s, order[kind]))
    assert seen
    for steps in seen.values():
        assert [k for _, k in steps] == sorted(k for _, k in steps)
        assert [s for s, _ in steps] == sorted(s for s, _ in steps)
    # Each selected device ends its round exactly once: completed, straggler or dropout.
    rounds = t["rounds"]
    for sel, comp, strag, drop in zip(rounds["selected"], rounds["completed"], rounds["stragglers"], rounds["dropouts"]):
        assert sel == comp + strag + drop


def test_same_seed_gives_byte_identical_traces(tmp_path):
    overrides = SURROGATE + ["fl.rounds=3", "devices.mobility={model: street_grid, params: {block_m: 100}}"]
    run(tmp_path, overrides, "a")
    run(tmp_path, overrides, "b")
    for name in ("events.parquet", "rounds.parquet", "devices.parquet", "summary.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_training_run_is_deterministic(tmp_path):
    run(tmp_path, ["fl.rounds=2"], "a")
    run(tmp_path, ["fl.rounds=2"], "b")
    for name in ("events.parquet", "rounds.parquet", "summary.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


@pytest.mark.parametrize(("distance_m", "power_limited"), [(2000.0, False), (60_000.0, True)])
def test_static_single_device_uplink_is_exact(tmp_path, distance_m, power_limited):
    """One device alone: TS 38.213 power control, 8 dBi BS antenna, 38.306 UL overhead,
    gap 1.5 dB, re-derived by hand (10 MHz at 30 kHz = 24 RB, mu = 1)."""
    # Far away (an unrealistic 60 km in free space) the UE is power limited.
    overrides = SURROGATE + [
        f"area={{width_m: {distance_m + 1000}, height_m: 4000}}",
        "cells=[{name: only, x_m: 0, y_m: 0, height_m: 25, pathloss: free_space, carrier_hz: 3.5e9,"
        " uplink_bandwidth_hz: 10e6, downlink_bandwidth_hz: 20e6, tx_power_dbm: 40, noise_figure_db: 5,"
        " p0_dbm: -85, alpha: 0.8, antenna_gain_dbi: 8}]",
        "devices.count=1", "devices.profiles={mid: 1.0}", "devices.antenna_gain_dbi=0",
        f"devices.mobility={{model: static, params: {{positions_m: [[{distance_m}, 0.0]]}}}}",
        "radio.fading=none", "radio.shadowing=false", "radio.snr_gap_db=1.5", "radio.coherence_s=0.05",
        "radio.min_sinr_db=-30", "fl.devices_per_round=1", "fl.rounds=1", "fl.min_updates=1",
    ]
    summary, t = run(tmp_path, overrides)
    ev = t["events"]
    i = ev["kind"].index("ul_end")
    pl_db = MODELS["free_space"](carrier_hz=3.5e9, h_bs_m=25.0).loss_db(distance_m, 1.5, True)
    coupling_loss_db = pl_db - 8.0
    p_tx_dbm = min(PROFILES["mid"].tx_power_dbm, -85.0 + 10 * math.log10(2 * 24) + 0.8 * coupling_loss_db)
    assert (p_tx_dbm == PROFILES["mid"].tx_power_dbm) == power_limited
    snr = 10 ** ((p_tx_dbm - coupling_loss_db - noise_power_dbm(10e6, 5.0)) / 10)
    rate = 10e6 * (1 - 0.08) * math.log2(1 + snr / 10 ** 0.15)
    assert rate < 10e6 * 7.4063  # the log2 branch, not the cap
    assert ev["duration_s"][i] == pytest.approx(8 * ev["bytes"][i] / rate, rel=1e-9)
    # One power, one truth: the energy is the power the rate used (radiated p_tx), drawn as
    # P_circuit + P_tx/η_PA, over the airtime.
    mid = PROFILES["mid"]
    drawn_w = mid.tx_circuit_power_w + 10 ** (p_tx_dbm / 10) / 1000 / mid.pa_efficiency
    assert ev["energy_j"][i] == pytest.approx(ev["duration_s"][i] * drawn_w, rel=1e-9)


def test_deadline_cuts_stragglers_and_keeps_accounting(tmp_path):
    summary, t = run(tmp_path, SURROGATE + ["fl.rounds=2", "fl.deadline_s=0.01", "fl.min_updates=3"])
    rounds = t["rounds"]
    assert all(s == 3 for s in rounds["stragglers"])
    assert not any(rounds["aggregated"])
    assert all(e - s == pytest.approx(0.01) for s, e in zip(rounds["start_s"], rounds["end_s"]))
    kinds = t["events"]["kind"]
    assert kinds.count("straggler") == 6 and "ul_end" not in kinds
    assert summary["uplink_bytes"] == 0


def test_empty_batteries_drop_devices_and_stop(tmp_path, monkeypatch):
    sim_overrides = SURROGATE + ["fl.rounds=3"]
    scenario = load_scenario(SMOKE, sim_overrides)
    sim = Simulation(scenario)
    sim.fleet.battery_j[:] = 1e-9  # almost nothing left: every device dies on its first job
    sim.run()
    kinds = sim.trace.tables()["events"].column("kind").to_pylist()
    assert "dropout" in kinds and "all_dead" in kinds
    assert not sim.fleet.alive.any()
    assert np.all(sim.fleet.battery_j >= 0)


def test_process_executor_gives_byte_identical_traces(tmp_path):
    overrides = ["fl.rounds=2", "learning.algorithm.name=pfl_tps"]
    run(tmp_path, overrides, "sequential")
    run(tmp_path, [*overrides, "execution.executor=process", "execution.workers=2"], "process")
    for name in ("events.parquet", "rounds.parquet", "devices.parquet", "summary.json"):
        assert (tmp_path / "sequential" / name).read_bytes() == (tmp_path / "process" / name).read_bytes(), name


def test_batched_worker_processes_equal_one_process(tmp_path):
    # Uneven data (Dirichlet) over 4 devices a round: two worker shares of different sizes.
    overrides = ["fl.rounds=2", "learning.algorithm.name=pfl_tps", "fl.devices_per_round=4",
                 "learning.partition={name: dirichlet, params: {alpha: 0.5}}", "execution.executor=batched"]
    s1, one = run(tmp_path, [*overrides, "execution.workers=1"], "one")
    s2, two = run(tmp_path, [*overrides, "execution.workers=2", "execution.threads=1"], "two")
    assert load_scenario(SMOKE, [*overrides, "execution.workers=2"]).execution.workers == 2
    assert len(set(one["devices"]["samples"])) > 2 and sum(one["rounds"]["completed"]) > 0
    for table in ("events", "rounds", "devices"):
        assert list(one[table]) == list(two[table])
        for column, want in one[table].items():
            got = two[table][column]
            if want and isinstance(want[0], float):
                np.testing.assert_allclose(np.array(got, dtype=float), np.array(want, dtype=float), rtol=1e-5,
                                           atol=1e-6, err_msg=f"{table}.{column}")
            else:
                assert got == want, f"{table}.{column}"
    assert s1.keys() == s2.keys()
    for key, want in s1.items():
        assert s2[key] == (pytest.approx(want, rel=1e-5, abs=1e-6) if isinstance(want, float) else want), key


def test_device_cut_during_upload_was_busy_not_idle(tmp_path):
    # One static device, no fading: download, compute and upload back to back, so it is
    # never idle (no access latency, which is idle waiting). Cut it half-way through its
    # upload: the airtime so far is busy time.
    base = SURROGATE + ["devices.count=1", "fl.devices_per_round=1", "fl.rounds=1", "radio.fading=none",
                        "radio.shadowing=false", "devices.mobility={model: static, params: {}}",
                        "radio.access_latency_s=0"]
    _, free = run(tmp_path, base, "free")
    ev = free["events"]
    i = ev["kind"].index("ul_end")
    deadline = ev["time_s"][i] - ev["duration_s"][i] / 2
    _, cut = run(tmp_path, [*base, f"fl.deadline_s={deadline!r}"], "cut")
    assert cut["events"]["kind"].count("straggler") == 1
    assert cut["devices"]["idle_energy_j"][0] == pytest.approx(0.0, abs=1e-9)
    assert cut["devices"]["tx_energy_j"][0] > 0


def test_validation_accuracy_is_traced_beside_test(tmp_path):
    summary, t = run(tmp_path, ["fl.rounds=2", "learning.algorithm.name=local"], "val")
    val = np.array(t["rounds"]["val_accuracy"])
    assert np.all(np.isfinite(val)) and np.all((val >= 0) & (val <= 1))
    assert summary["final_val_accuracy"] == pytest.approx(val[-1])
    assert summary["final_accuracy"] == pytest.approx(t["rounds"]["accuracy"][-1])
    # The evaluation uses each device's own validation split (10 % of its partition by default).
    from cosim.engine.learning_side import LearningSide
    side = LearningSide(load_scenario(SMOKE, ["learning.algorithm.name=local"]), 6)
    fd = side.data
    assert all(fd.num_val(i) == 10 and fd.num_train(i) == 90 for i in range(6))  # 600 iid / 6
    assert side.samples.tolist() == [90] * 6
    ev = side.algorithm.evaluate()
    from learning.algorithms.training import evaluate_accuracy
    assert ev.per_device_val_accuracy[3] == evaluate_accuracy(side.algorithm.device_model(3), *fd.val(3))
    surrogate = LearningSide(load_scenario(SMOKE, SURROGATE), 6)
    assert surrogate.samples.tolist() == [90] * 6  # the surrogate holds out the same share
    off, t0 = run(tmp_path, ["fl.rounds=1", "learning.validation_fraction=0"], "noval")
    assert off["final_val_accuracy"] is None and np.isnan(t0["rounds"]["val_accuracy"][0])
    with pytest.raises(Exception, match="validation_fraction"):
        load_scenario(SMOKE, ["learning.validation_fraction=1.0"])


def test_fedavg_ft_finetuning_costs_compute_time_and_energy(tmp_path):
    # local_epochs plus one fine-tuning epoch: (E + 1)/E times FedAvg's FLOPs on the same
    # devices, so that much compute energy (DVFS at max: energy ∝ cycles) and a longer round.
    epochs = float(load_scenario(SMOKE, []).learning.algorithm.params.get("local_epochs", 1.0))
    base, _ = run(tmp_path, ["fl.rounds=2", "learning.algorithm.name=fedavg"], "avg")
    ft, _ = run(tmp_path, ["fl.rounds=2", "learning.algorithm.name=fedavg_ft"], "ft")
    assert ft["compute_energy_j"] == pytest.approx((epochs + 1) / epochs * base["compute_energy_j"], rel=1e-12)
    assert ft["sim_time_s"] > base["sim_time_s"]
    assert ft["uplink_bytes"] == base["uplink_bytes"] and ft["downlink_bytes"] == base["downlink_bytes"]
    # fine-tuned only for evaluation: FedAvg's training to the joule and the second
    deploy, _ = run(tmp_path, ["fl.rounds=2", "learning.algorithm.name=fedavg_ft",
                               "learning.algorithm.params.finetune_at=evaluation"], "deploy")
    for key in ("energy_j", "compute_energy_j", "sim_time_s", "uplink_bytes", "downlink_bytes"):
        assert deploy[key] == base[key], key
    assert deploy["final_accuracy"] != base["final_accuracy"]
