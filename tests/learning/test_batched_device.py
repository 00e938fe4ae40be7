"""The batched executor's ``device`` and ``max_devices``: which values are accepted, with
which errors and defaults (any machine), and on a CUDA GPU (skipped without one) that results match the sequential
executor on the CPU within the batched tolerance (FedAvg, local, PFL-TPS, the hypernetwork
baselines; in-process and with worker processes; end to end through ``cosim run``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import torch

from cosim.scenario import ScenarioError, load_scenario
from cosim.scenario.components import check_components
from learning.algorithms import make_algorithm
from learning.algorithms.training import evaluate_accuracy, evaluation_device
from learning.execution import SequentialExecutor, make_executor
from learning.execution.batched import MAX_DEVICES_CPU, MAX_DEVICES_GPU, BatchedExecutor, check_device
from batched_setup import MODEL, assert_close_results, data, tasks  # noqa: F401 (fixture: used by name)

SMOKE = Path(__file__).resolve().parents[2] / "scenarios" / "smoke.yaml"
CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")


def test_check_device_accepts_cpu_and_names_what_is_allowed() -> None:
    assert check_device("cpu") == "cpu"
    for bad in ("gpu", "cuda:x", "", "cuda:-1"):
        with pytest.raises(ValueError, match="allowed: cpu, cuda, cuda:N"):
            check_device(bad)
    with pytest.raises(ValueError, match="trains on cpu or cuda"):
        check_device("meta")


def test_check_device_without_cuda_or_beyond_the_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"'cuda': CUDA is not available here .*allowed here: cpu"):
        check_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda") == "cuda" and check_device("cuda:1") == "cuda:1"
    with pytest.raises(ValueError, match=r"'cuda:2': this machine has 2 CUDA device\(s\), cuda:0..cuda:1"):
        check_device("cuda:2")


def test_only_the_batched_executor_takes_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("sequential", "process", "ray"):
        with pytest.raises(ValueError, match=f"only the batched executor trains on a GPU; executor '{name}'"):
            make_executor(name, device="cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        BatchedExecutor(device="cuda")
    assert make_executor("batched", device="cpu").device == "cpu"  # type: ignore[attr-defined]


def test_max_devices_defaults_per_device_and_is_batched_only(monkeypatch: pytest.MonkeyPatch) -> None:
    assert BatchedExecutor().max_devices == MAX_DEVICES_CPU == 32
    assert make_executor("batched", max_devices=7).max_devices == 7  # type: ignore[attr-defined]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert BatchedExecutor(device="cuda").max_devices == MAX_DEVICES_GPU == 256  # no CUDA call made here
    assert BatchedExecutor(device="cuda:0", max_devices=12).max_devices == 12
    with pytest.raises(ValueError, match="max_devices must be >= 1, got 1, 1, 0"):
        BatchedExecutor(max_devices=0)
    with pytest.raises(ValueError, match="max_devices 4: only the batched executor stacks devices; executor 'seq"):
        make_executor("sequential", max_devices=4)


def test_scenario_execution_keys_reach_the_executor() -> None:
    from cosim.engine.learning_side import LearningSide

    side = LearningSide(load_scenario(SMOKE, ["execution={executor: batched, max_devices: 3, device: cpu}"]), 6)
    try:
        assert (side.executor.max_devices, side.executor.device) == (3, "cpu")  # type: ignore[union-attr]
    finally:
        side.close()
    with pytest.raises(ScenarioError, match=r"execution\.max_devices: 3 needs executor batched \(executor 'process'"):
        load_scenario(SMOKE, ["execution={executor: process, max_devices: 3}"])
    with pytest.raises(ScenarioError, match=r"execution\.max_devices: 0 must be >= 1"):
        load_scenario(SMOKE, ["execution={executor: batched, max_devices: 0}"])
    dumped = load_scenario(SMOKE, ["execution.executor=batched"]).model_dump(mode="json")
    assert "max_devices" not in dumped["execution"]


def test_scenario_device_key(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ScenarioError, match=r"execution\.device: 'gpu' is not cpu, cuda or cuda:N"):
        load_scenario(SMOKE, ["execution.device=gpu"])
    with pytest.raises(ScenarioError, match=r"execution\.device: 'cuda' needs executor batched "
                                            r"\(executor 'sequential' trains on cpu\)"):
        load_scenario(SMOKE, ["execution.device=cuda"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    gpu = load_scenario(SMOKE, ["execution.executor=batched", "execution.device=cuda:0"])
    assert gpu.model_dump(mode="json")["execution"]["device"] == "cuda:0"
    with pytest.raises(ScenarioError, match=r"execution\.device: device 'cuda:0': CUDA is not available"):
        check_components(gpu)
    # The default stays out of the resolved YAML (existing runs' scenario.yaml and hashes).
    cpu = load_scenario(SMOKE, ["execution.executor=batched", "execution.device=cpu"])
    assert "device" not in cpu.model_dump(mode="json")["execution"] and cpu.execution.device == "cpu"
    assert load_scenario(SMOKE).to_yaml() == load_scenario(SMOKE, ["execution.device=cpu"]).to_yaml()


@pytest.mark.parametrize("name", ["fedavg", "pfl_tps", "pfedhn_pc"])
def test_evaluation_through_tensor_copies_equals_the_model_itself(data: Any, name: str) -> None:
    # "cpu:0" takes the copy path (functional_call on copied tensors) that a GPU takes.
    alg = make_algorithm(name, data, MODEL, {"batch_size": 16, "eval_batch_size": 7}, seed=4)
    for res in SequentialExecutor().run(alg.client(), tasks(alg, [0, 1, 2], 0)):
        alg.commit(res)
    want = alg.evaluate()
    with evaluation_device("cpu:0"):
        got = alg.evaluate()
    assert got == want and 0 < want.mean_accuracy < 1
    x, y = data.test(1)
    model = alg.device_model(1) if name != "fedavg" else alg.global_model()
    reference = evaluate_accuracy(model, x, y, batch_size=5)  # the model itself, batches of 5
    with evaluation_device("cpu:0"):
        assert evaluate_accuracy(model, x, y, batch_size=5) == reference
    assert all(p.device.type == "cpu" for p in model.parameters())


# --------------------------------------------------------------------------- on a GPU
GPU_CASES = [
    ("fedavg", {"optimizer": "sgd", "weight_decay": 1e-3}),
    ("fedavg", {"optimizer": "adam", "lr": 1e-3}),
    ("local", {}),
    ("pfl_tps", {}),
    ("pfl_tps", {"hypernetwork_enabled": False, "prune_lambda": 0.05, "prune_reset_density": 0.9}),
    ("pfl_tps", {"sal_update": "delta", "optimizer": "sgd", "pruning_flops": "rows"}),
    ("pfedhn", {}),
    ("pfedhn_pc", {}),
    ("fedtp", {}),
]


def _adam_sal(alg: Any) -> bool:
    cfg = getattr(alg, "cfg", None)
    adam = alg.client().train_params.optimizer == "adam"
    return adam and not (cfg is not None and getattr(cfg, "hypernetwork_enabled", False))


@needs_cuda
@pytest.mark.parametrize(("name", "extra"), GPU_CASES)
@pytest.mark.parametrize("workers", [1, 2])
def test_batched_on_cuda_equals_sequential_on_cpu(data: Any, name: str, extra: dict[str, Any], workers: int) -> None:
    alg = make_algorithm(name, data, MODEL, {"local_epochs": 1.5, "batch_size": 16, **extra}, seed=4)
    seq = SequentialExecutor()
    with BatchedExecutor(workers=workers, device="cuda") as gpu:
        for r in range(2):  # round 1 starts from aggregated state
            ts = tasks(alg, [3, 0, 2, 1, 4], r)
            want, got = seq.run(alg.client(), ts), gpu.run(alg.client(), ts)
            for a, b in zip(want, got):
                assert_close_results(a, b, adam_sal=_adam_sal(alg), atol=1e-5)
                for tensor in (b.uplink.tensors.values() if b.uplink is not None else ()):
                    assert tensor.device.type == "cpu"
            for res in want:
                alg.commit(res)
            alg.aggregate({res.device: (res.uplink, res.samples) for res in want}, r)


@needs_cuda
@pytest.mark.parametrize("name", ["fedavg", "pfl_tps", "pfedhn"])
def test_evaluation_on_cuda_equals_the_cpu(data: Any, name: str) -> None:
    alg = make_algorithm(name, data, MODEL, {"batch_size": 16}, seed=4)
    for res in SequentialExecutor().run(alg.client(), tasks(alg, [0, 1, 2, 3, 4], 0)):
        alg.commit(res)
    want = alg.evaluate()
    with evaluation_device("cuda"):
        got = alg.evaluate()
    assert list(got.per_device_accuracy) == list(want.per_device_accuracy)
    for d, acc in want.per_device_accuracy.items():  # a rounding may flip one near-tie
        assert got.per_device_accuracy[d] == pytest.approx(acc, abs=1.5 / data.test(d)[1].shape[0]), d
    assert all(p.device.type == "cpu" for p in alg.device_model(0).parameters())


@needs_cuda
@pytest.mark.parametrize("name", ["fedavg", "pfl_tps"])
def test_end_to_end_run_on_cuda_gives_the_sequential_cpu_run(tmp_path: Path, name: str) -> None:
    from cosim.engine import run_simulation

    overrides = ["fl.rounds=2", "devices.count=4", f"learning.algorithm.name={name}",
                 "learning.algorithm.params={local_epochs: 2}", "learning.dataset.params.num_train=240"]
    out, loss = {}, {}
    for label, execution in (("cpu", "{executor: sequential}"), ("gpu", "{executor: batched, device: cuda}")):
        out[label] = run_simulation(load_scenario(SMOKE, [*overrides, f"execution={execution}"]), tmp_path / label)
        loss[label] = pq.read_table(tmp_path / label / "rounds.parquet").column("train_loss").to_pylist()
    cpu, gpu = out["cpu"], out["gpu"]
    assert len(loss["cpu"]) == 2 and all(math.isfinite(v) for v in loss["cpu"])
    assert loss["gpu"] == pytest.approx(loss["cpu"], rel=1e-5)
    assert gpu["final_accuracy"] == pytest.approx(cpu["final_accuracy"], abs=0.011)  # one flipped sample: 0.005
    for key in ("uplink_bytes", "downlink_bytes", "energy_j", "sim_time_s", "rounds"):
        assert gpu[key] == cpu[key], key
