"""Federated algorithms: registry, contract (``base``) and shared training (``training``).

``make_algorithm(name, data, model_config, params, seed)`` builds a registered algorithm;
see ``learning.algorithms.base`` for the server/client contract the engine drives.
"""

from __future__ import annotations

from typing import Any

from learning.algorithms.base import (
    COMMON_PARAMS,
    Algorithm,
    Client,
    CostModel,
    EvalResult,
    LocalResult,
)
from learning.algorithms.ditto import Ditto
from learning.algorithms.fedavg import FedAvg, FedAvgClient, weighted_average
from learning.algorithms.fedavg_ft import FedAvgFT
from learning.algorithms.fedavg_topk import FedAvgTopK
from learning.algorithms.fedper import FedPer
from learning.algorithms.fedprox import FedProx
from learning.algorithms.fedrep import FedRep
from learning.algorithms.fedtp import FedTP
from learning.algorithms.local import LocalClient, LocalOnly
from learning.algorithms.local_pruned import LocalPruned
from learning.algorithms.pfedhn import PFedHN
from learning.algorithms.pfedhn_pc import PFedHNPC
from learning.algorithms.pfl_tps import PFLTPS
from learning.algorithms.training import TrainParams, derive_seed, evaluate_accuracy, train_local

__all__ = [
    "ALGORITHMS",
    "make_algorithm",
    "Algorithm",
    "Client",
    "CostModel",
    "EvalResult",
    "LocalResult",
    "COMMON_PARAMS",
    "FedAvg",
    "FedAvgClient",
    "LocalOnly",
    "LocalClient",
    "TrainParams",
    "derive_seed",
    "evaluate_accuracy",
    "train_local",
    "weighted_average",
]

ALGORITHMS: dict[str, type[Algorithm]] = {
    cls.name: cls for cls in (FedAvg, LocalOnly, PFLTPS, FedProx, FedPer, FedRep, Ditto, PFedHN, FedTP, FedAvgTopK,
                              FedAvgFT, LocalPruned, PFedHNPC)
}


def make_algorithm(name: str, data: Any, model_config: dict[str, Any], params: dict[str, Any], seed: int) -> Algorithm:
    """Build the registered algorithm ``name`` (unknown names raise ``ValueError``)."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; allowed: {sorted(ALGORITHMS)}")
    return ALGORITHMS[name](data, model_config, params, seed)
