"""PFL-TPS: personalised federated learning of transformers with threshold pruning and a
SAL hypernetwork.

FFL layers are personal and pruned by trainable per-row thresholds (``pruning``); only
the thresholds are averaged by the server. SAL parameters are generated per device by a
server-side hypernetwork from a device embedding (``hypernetwork``). The server half is
``PFLTPS`` (``algorithm``), the client half ``PFLTPSClient`` (``client``).
"""

from learning.algorithms.pfl_tps.algorithm import PFLTPS
from learning.algorithms.pfl_tps.client import PFLTPSClient, PFLTPSConfig, PFLTPSNet, build_net
from learning.algorithms.pfl_tps.hypernetwork import HyperNetwork, SalSpec, hn_vjp
from learning.algorithms.pfl_tps.pruning import (
    ThresholdMask,
    ThresholdMaskedLinear,
    ffl_densities,
    replace_ffl_linears,
    reset_thresholds_,
    masked_weight,
    GRADIENTS,
    sparsity_penalty,
    step_surrogate_grad,
)

__all__ = [
    "PFLTPS",
    "PFLTPSClient",
    "PFLTPSConfig",
    "PFLTPSNet",
    "build_net",
    "HyperNetwork",
    "SalSpec",
    "hn_vjp",
    "ThresholdMask",
    "ThresholdMaskedLinear",
    "ffl_densities",
    "replace_ffl_linears",
    "reset_thresholds_",
    "masked_weight",
    "GRADIENTS",
    "sparsity_penalty",
    "step_surrogate_grad",
]
