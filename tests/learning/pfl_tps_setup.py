"""Shared set-up of the PFL-TPS tests (``test_pfl_tps.py``, ``test_pfl_tps_pruning.py``).

A tiny ViT (``MODEL``) and training settings (``TRAIN``), the ``fd`` fixture (synthetic
data on 8 devices, two classes each), the autouse ``_one_thread`` fixture (torch on one
thread while a test runs) and ``run_rounds``, which drives synchronous rounds by hand.
A test module imports the fixtures it uses by name.
"""

from __future__ import annotations

import pytest
import torch

from learning.algorithms.pfl_tps import PFLTPS
from learning.data import build_federated_data, make_synthetic

MODEL = {"dim": 16, "depth": 2, "heads": 2}
TRAIN = {"lr": 3e-3, "local_epochs": 2.0}


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def fd():
    ds = make_synthetic(800, 400, num_classes=10, seed=0)
    return build_federated_data(ds, 8, "pathological", {"classes_per_device": 2}, seed=0)


def run_rounds(alg: PFLTPS, rounds: int, devices: list[int] | None = None) -> list:
    """Drive ``rounds`` synchronous rounds over ``devices``; returns the last LocalResults."""
    client = alg.client()
    devices = list(range(alg.data.n_devices)) if devices is None else devices
    results = []
    for r in range(rounds):
        results = []
        for d in devices:
            res = client.local_update(d, alg.device_state(d), alg.downlink(d, r), seed=1000 * r + d)
            alg.commit(res)
            results.append(res)
        alg.aggregate({res.device: (res.uplink, res.samples) for res in results}, r)
    return results
