"""New-device generalization (``learning.holdout_devices``): held-out devices never train,
join after the last round with only their personalization fitted, and are reported as
``holdout_accuracy``; the server state is frozen while they join."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import cosim
from cosim.engine.learning_side import holdout_mask
from cosim.scenario import ScenarioError
from learning.algorithms import make_algorithm
from learning.data import build_federated_data, make_synthetic

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "scenarios" / "smoke.yaml"
FAST = ["fl.rounds=3", "learning.algorithm.params={lr: 5.0e-3, local_epochs: 1}"]


def test_holdout_mask_is_seeded_and_has_k_distinct_devices() -> None:
    mask = holdout_mask(7, 20, 5)
    assert mask.dtype == bool and mask.sum() == 5
    assert np.array_equal(mask, holdout_mask(7, 20, 5)) and not np.array_equal(mask, holdout_mask(8, 20, 5))
    assert not holdout_mask(7, 20, 0).any()


@pytest.mark.parametrize("algorithm,mode", [("pfl_tps", "sync"), ("fedavg", "sync"), ("pfedhn", "sync"),
                                            ("fedavg_ft", "buffered")])
def test_held_out_devices_never_train_and_are_reported(algorithm: str, mode: str, tmp_path: Path) -> None:
    run = cosim.run(SMOKE, out=tmp_path / algorithm, progress=False,
                    overrides=[*FAST, f"learning.algorithm.name={algorithm}", "learning.holdout_devices=3",
                               f"fl.mode={mode}", *(["fl.buffer_size=2"] if mode == "buffered" else [])])
    scenario = run.scenario
    held = holdout_mask(scenario.seed, scenario.devices.count, 3)
    devices = run.devices.sort_values("device")
    assert (devices.rounds_selected.to_numpy()[held] == 0).all()
    if mode == "sync":  # 3 training devices, 3 per round: all of them every round
        assert (devices.rounds_selected.to_numpy()[~held] == scenario.fl.rounds).all()
    selected = run.events[run.events.kind == "selected"].device.unique()
    assert not set(selected.tolist()) & set(np.flatnonzero(held).tolist())
    accuracy = devices.final_accuracy.to_numpy()[held]
    assert np.isfinite(accuracy).all()
    assert run.summary["holdout_accuracy"] == pytest.approx(float(accuracy.mean()))


def test_without_holdout_the_metric_is_absent(tmp_path: Path) -> None:
    run = cosim.run(SMOKE, out=tmp_path / "plain", progress=False, overrides=FAST)
    assert run.summary["holdout_accuracy"] is None
    assert run.scenario.learning.holdout_devices == 0


def test_pfl_tps_join_fits_the_new_device_with_the_server_frozen() -> None:
    data = build_federated_data(make_synthetic(num_train=240, num_test=80, num_classes=4, seed=1), 6, "iid", {},
                                seed=1, validation_fraction=0.0)
    model = {"name": "vit", "patch_size": 7, "dim": 16, "depth": 1, "heads": 2}
    algo = make_algorithm("pfl_tps", data, model, {"local_epochs": 5, "lr": 5e-3}, seed=3)
    client = algo.client()
    for d in range(5):  # one training round of devices 0-4
        algo.commit(client.local_update(d, algo.device_state(d), algo.downlink(d, 0), seed=d))
    hn_before = [p.detach().clone() for p in algo.hn.parameters()]
    thresholds_before = {k: v.clone() for k, v in algo.threshold_mean.items()}
    embedding_before = algo.server_embedding(5).clone()
    unfitted = algo.evaluate([5]).per_device_accuracy[5]
    algo.join_new_device(5, 1, seed=11)
    assert all(torch.equal(a, b) for a, b in zip(hn_before, algo.hn.parameters()))
    assert all(torch.equal(thresholds_before[k], v) for k, v in algo.threshold_mean.items())
    assert torch.equal(algo.server_embedding(5), embedding_before)  # the server copy is not updated either
    state = algo._states[5]
    assert not torch.equal(state["embedding"], embedding_before)  # the device fitted its own embedding
    fitted = algo.evaluate([5]).per_device_accuracy[5]
    assert fitted > unfitted


def test_holdout_errors_name_the_key(tmp_path: Path) -> None:
    assert cosim.load_scenario(SMOKE, ["learning.holdout_devices=3"]).learning.holdout_devices == 3  # 6 - 3 = 3 per round
    with pytest.raises(ScenarioError) as info:
        cosim.load_scenario(SMOKE, ["learning.holdout_devices=4"])
    assert info.value.problems == ["learning.holdout_devices: 4 leaves 2 training device(s), fewer than "
                                   "fl.devices_per_round (3)"]
    for name in ("pfedhn", "pfedhn_pc", "fedtp"):  # join by embedding fit: accepted
        cosim.load_scenario(SMOKE, [f"learning.algorithm.name={name}", "learning.algorithm.params={}",
                                    "learning.holdout_devices=2"])


@pytest.mark.parametrize("name", ["pfedhn", "pfedhn_pc", "fedtp"])
def test_hypernetwork_join_fits_only_the_new_devices_embedding(name: str) -> None:
    data = build_federated_data(make_synthetic(num_train=240, num_test=80, num_classes=4, seed=1), 6, "iid", {},
                                seed=1, validation_fraction=0.0)
    model = {"name": "vit", "patch_size": 7, "dim": 16, "depth": 1, "heads": 2}
    algo = make_algorithm(name, data, model, {"local_epochs": 1, "join_steps": 3}, seed=3)
    client = algo.client()
    algo.aggregate({d: (client.local_update(d, algo.device_state(d), algo.downlink(d, 0), seed=d).uplink, 40)
                    for d in range(5)}, 0)
    phi = [p.detach().clone() for p in algo.server.hn.parameters()]
    embeddings = algo.server.embeddings.detach().clone()
    rest = {k: v.clone() for k, v in getattr(algo, "global_state", {}).items()}
    before = algo.downlink(5, 1).tensors
    algo.join_new_device(5, 1, seed=11)
    assert all(torch.equal(a, b) for a, b in zip(phi, algo.server.hn.parameters()))
    moved = (algo.server.embeddings.detach() != embeddings).any(dim=1)
    assert moved.tolist() == [False] * 5 + [True]  # only the new device's embedding
    assert all(torch.equal(v, algo.global_state[k]) for k, v in rest.items())  # FedTP's shared rest frozen too
    after = algo.downlink(5, 1).tensors
    assert any(not torch.equal(before[k], after[k]) for k in before)  # its generated model changed
    with pytest.raises(ValueError, match="join_steps must be an integer >= 0, got -1"):
        make_algorithm(name, data, model, {"join_steps": -1}, seed=3)


def test_an_algorithm_without_a_join_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from learning.algorithms import ALGORITHMS

    monkeypatch.setattr(ALGORITHMS["local"], "holdout_supported", False)
    monkeypatch.setattr(ALGORITHMS["local"], "holdout_unsupported", "no personal state to fit")
    with pytest.raises(ScenarioError) as info:
        cosim.load_scenario(SMOKE, ["learning.algorithm.name=local", "learning.holdout_devices=2"])
    assert info.value.problems == ["learning.holdout_devices: 2 held-out devices need a way to fit a new device, "
                                   "which local does not have (no personal state to fit)"]


def test_resolved_yaml_mentions_holdout_only_when_set() -> None:
    from cosim.scenario import loads_scenario

    plain = cosim.load_scenario(SMOKE)
    held = cosim.load_scenario(SMOKE, ["learning.holdout_devices=2"])
    assert "holdout_devices" not in plain.to_yaml()  # existing runs' scenario.yaml still match (compare resumes)
    assert "holdout_devices: 2" in held.to_yaml()
    assert loads_scenario(plain.to_yaml()) == plain and loads_scenario(held.to_yaml()) == held
