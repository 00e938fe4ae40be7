"""Batched plans of the hypernetwork baselines (pFedHN, pFedHN-PC, FedTP): batched local
updates equal the sequential ones over rounds (ragged data, SGD with momentum and Adam,
fp16 uplinks), a plan started from the wrong tensors is caught, subclasses run
sequentially, and a short end-to-end run gives the sequential run's accuracy."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import torch

from cosim.engine import run_simulation
from cosim.scenario import load_scenario
from learning.algorithms import make_algorithm
from learning.algorithms.fedtp import DELTA_PREFIX, FedTPClient
from learning.algorithms.fedtp_batched import FedTPPlan
from learning.algorithms.pfedhn import PFedHNClient
from learning.algorithms.pfedhn_batched import PFedHNPCPlan, PFedHNPlan
from learning.algorithms.pfedhn_pc import PFedHNPCClient
from learning.execution import SequentialExecutor
from learning.execution.batched import BatchedExecutor, batched_plan
from learning.payload import Payload
from batched_setup import MODEL, assert_close_results, data, tasks  # noqa: F401 (fixture: used by name)

PLANS = {"pfedhn": (PFedHNClient, PFedHNPlan), "pfedhn_pc": (PFedHNPCClient, PFedHNPCPlan),
         "fedtp": (FedTPClient, FedTPPlan)}
SMOKE = Path(__file__).resolve().parents[2] / "scenarios" / "smoke.yaml"


def _rounds(alg: Any, client: Any, n_rounds: int = 2, atol: float = 1e-5) -> None:
    """Sequential and batched results of ``n_rounds`` rounds are close; the server goes on
    from the sequential ones (round 1 starts from trained heads / averaged rests)."""
    seq, bat = SequentialExecutor(), BatchedExecutor()
    adam = alg.client().train_params.optimizer == "adam"
    for r in range(n_rounds):
        ts = tasks(alg, [3, 0, 2, 1, 4], r)
        want, got = seq.run(alg.client(), ts), bat.run(client, ts)
        assert len({a.metrics["samples_processed"] for a in want}) > 2  # really ragged
        for a, b in zip(want, got):
            assert_close_results(a, b, adam_sal=adam, atol=atol)
        for res in want:
            alg.commit(res)
        alg.aggregate({res.device: (res.uplink, res.samples) for res in want}, r)


@pytest.mark.parametrize("name", list(PLANS))
@pytest.mark.parametrize("extra", [
    {},  # the algorithm's defaults: pFedHN's inner SGD (momentum 0.9, decay 5e-5, batch 64); FedTP's Adam
    {"optimizer": "sgd", "momentum": 0.9, "weight_decay": 1e-3, "lr": 1e-2},
    # Adam at lr 1e-3: at larger lr its sign-like first steps turn float noise on a few
    # near-zero gradient entries into 1e-5..1e-4 differences (FedAvg's plan alike).
    {"optimizer": "adam", "weight_decay": 1e-3, "lr": 1e-3},
])
def test_hn_plans_batched_equal_sequential_over_rounds(data: Any, name: str, extra: dict[str, Any]) -> None:
    alg = make_algorithm(name, data, MODEL, {"local_epochs": 1.5, "batch_size": 16, **extra}, seed=4)
    client_cls, plan_cls = PLANS[name]
    assert type(alg.client()) is client_cls and type(batched_plan(alg.client())) is plan_cls
    _rounds(alg, alg.client())


@pytest.mark.parametrize("name", list(PLANS))
def test_hn_plans_keep_the_uplink_encoding(data: Any, name: str) -> None:
    alg = make_algorithm(name, data, MODEL, {"batch_size": 16, "uplink_encoding": "fp16"}, seed=4)
    ts = tasks(alg, [3, 0], 0)
    want, got = SequentialExecutor().run(alg.client(), ts), BatchedExecutor().run(alg.client(), ts)
    for a, b in zip(want, got):
        assert b.uplink.encoding == "fp16" and b.uplink.wire_bytes == a.uplink.wire_bytes
        # fp16-rounded uplinks: a float difference may cross one fp16 rounding step.
        assert_close_results(a, b, atol=1e-4)


def test_fedtp_uplink_lists_the_rest_in_the_models_order(data: Any) -> None:
    # The sequential client uplinks model.state_dict()'s rest, in the model's order, whatever
    # the order of the received tensors: so must the plan (here: received in reverse order).
    alg = make_algorithm("fedtp", data, MODEL, {"batch_size": 16}, seed=4)
    ts = [(d, s, Payload(dict(reversed(list(p.tensors.items()))), p.encoding, p.config), seed)
          for d, s, p, seed in tasks(alg, [3, 0], 0)]
    want, got = SequentialExecutor().run(alg.client(), ts), BatchedExecutor().run(alg.client(), ts)
    rest = [k for k in want[0].uplink.tensors if not k.startswith(DELTA_PREFIX)]
    model_order = [k for k in alg.client().model().state_dict() if k in set(rest)]
    assert rest == model_order and [k for k in ts[0][2].tensors if k in set(rest)] != model_order
    for a, b in zip(want, got):
        assert_close_results(a, b, adam_sal=True)


def _wrong_start_client(alg: Any, name: str, ts: list[Any]) -> Any:
    """A client whose plan loads another device's device-specific tensors (pFedHN, FedTP:
    that device's downlink, i.e. its generated θ / SAL; pFedHN-PC: that device's head) and
    builds the result as the right plan does."""
    client_cls, plan_cls = PLANS[name]
    other = {t[0]: ts[(i + 1) % len(ts)] for i, t in enumerate(ts)}

    class WrongStart(plan_cls):  # type: ignore[misc, valid-type]
        def start(self, task: Any) -> dict[str, torch.Tensor]:
            device, state, payload, seed = task
            o = other[device]
            return super().start((device, o[1], payload, seed) if name == "pfedhn_pc" else (device, state, o[2], seed))

    return type("WrongStartClient", (client_cls,), {"batched_plan": lambda self: WrongStart(self)})(
        alg.data, alg.model_config, alg.params)


@pytest.mark.parametrize("name", list(PLANS))
def test_a_plan_started_from_wrong_tensors_is_caught(data: Any, name: str) -> None:
    alg = make_algorithm(name, data, MODEL, {"local_epochs": 1.5, "batch_size": 16}, seed=4)
    if name == "pfedhn_pc":  # round 0 heads are fresh draws; train them once so they are personal
        for res in SequentialExecutor().run(alg.client(), tasks(alg, [0, 1, 2], 0)):
            alg.commit(res)
    ts = tasks(alg, [0, 1, 2], 1)
    wrong = _wrong_start_client(alg, name, ts)
    assert type(batched_plan(wrong)).__name__ == "WrongStart"
    want, got = SequentialExecutor().run(alg.client(), ts), BatchedExecutor().run(wrong, ts)
    with pytest.raises(AssertionError):
        for a, b in zip(want, got):
            assert_close_results(a, b, adam_sal=alg.client().train_params.optimizer == "adam")


@pytest.mark.parametrize("name", list(PLANS))
def test_a_task_without_its_downlink_is_refused_by_name(data: Any, name: str) -> None:
    alg = make_algorithm(name, data, MODEL, {"batch_size": 16}, seed=1)
    device, state, _, seed = tasks(alg, [2], 0)[0]
    with pytest.raises(ValueError, match=rf"^{name} device 2 needs a downlink payload"):
        batched_plan(alg.client()).prepare((device, state, None, seed))


@pytest.mark.parametrize("name", list(PLANS))
def test_subclasses_of_hn_clients_are_not_batched(data: Any, name: str) -> None:
    alg = make_algorithm(name, data, MODEL, {"batch_size": 16}, seed=1)
    client_cls, _ = PLANS[name]
    sub = type(f"Sub{client_cls.__name__}", (client_cls,), {})(alg.data, alg.model_config, alg.params)
    assert batched_plan(sub) is None
    assert BatchedExecutor().plan_for(sub) is None
    drop = make_algorithm(name, data, {**MODEL, "dropout": 0.1}, {"batch_size": 16}, seed=1)
    assert batched_plan(drop.client()) is None  # dropout: sequential


@pytest.mark.parametrize("name, lr", [("pfedhn", 0.05), ("pfedhn_pc", 0.05), ("fedtp", 5e-3)])
def test_end_to_end_batched_run_gives_the_sequential_run(tmp_path: Path, name: str, lr: float) -> None:
    # Each algorithm's own inner optimizer (pFedHN's SGD with momentum, FedTP's Adam).
    overrides = ["fl.rounds=2", "devices.count=4", f"learning.algorithm.name={name}",
                 f"learning.algorithm.params={{local_epochs: 2, lr: {lr}}}", "learning.dataset.params.num_train=240"]
    out, loss = {}, {}
    for executor in ("sequential", "batched"):
        out[executor] = run_simulation(load_scenario(SMOKE, [*overrides, f"execution.executor={executor}"]),
                                       tmp_path / executor)
        loss[executor] = pq.read_table(tmp_path / executor / "rounds.parquet").column("train_loss").to_pylist()
    seq, bat = out["sequential"], out["batched"]
    assert len(loss["sequential"]) == 2 and all(math.isfinite(v) for v in loss["sequential"])
    assert loss["batched"] == pytest.approx(loss["sequential"], rel=1e-5)  # both rounds' mean training loss
    # Accuracy: a float difference may flip a test sample (1/50 of one of 4 devices: 0.005).
    assert bat["final_accuracy"] == pytest.approx(seq["final_accuracy"], abs=0.011)
    for key in ("uplink_bytes", "downlink_bytes", "energy_j", "sim_time_s", "rounds"):
        assert bat[key] == seq[key], key
