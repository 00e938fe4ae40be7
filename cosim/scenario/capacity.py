"""Will a ``train``-mode population fit in this machine's memory? An estimate, checked at validation.

A ``train`` run holds the dataset (plus each device's split of it), some bookkeeping
per device and, for personalized algorithms, a model state for every device that
trains at least once. The estimate [bytes]::

    2.4 x n_train x sample_bytes                      dataset, test split, per-device copies
    + devices x PER_DEVICE_OVERHEAD_B                 split tensors and index arrays per device
    + stateful x parameters x 4 B x STATE_COPIES      personalized: one state per device that trains
    + BASE_B                                          interpreter, PyTorch, the engine

with ``stateful = min(devices, rounds x devices_per_round)`` (states are created the
first time a device trains). It is compared with the memory of the machine:
physical RAM (``os.sysconf``), or a smaller cgroup limit. A population that does not
fit is refused by ``cosim validate``/``run`` with the estimate and the memory in one
line, instead of swapping for minutes before the first round.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Per-device bookkeeping of a train-mode population (split tensors, indices, test copies) [B]:
#: measured 8 KB per device (20,000 devices of 2 samples, 28x28 synthetic: +160 MB).
PER_DEVICE_OVERHEAD_B = 8192
#: Copies of the model kept per personalized device (its parameters and one more of the same size).
STATE_COPIES = 2
#: Interpreter, PyTorch and engine [B].
BASE_B = 600 * 2**20
#: Dataset bytes held per training sample byte (test split and per-device copies included).
DATASET_FACTOR = 2.4


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak memory of a train-mode run, and the machine's [bytes]."""

    total_b: int
    dataset_b: int
    devices_b: int
    states_b: int
    parameters: int
    available_b: int | None

    def fits(self) -> bool:
        """True when the machine's memory is unknown or at least the estimate."""
        return self.available_b is None or self.total_b <= self.available_b


def gib(n_bytes: float) -> str:
    """``n_bytes`` in GiB, 3 significant digits (``"1.25 GiB"``)."""
    return f"{n_bytes / 2**30:.3g} GiB"


def machine_memory_b() -> int | None:
    """Physical memory of this machine [B], or the cgroup (container) limit if smaller; None if unknown."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        total = None
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            total = int(text) if total is None else min(total, int(text))
    return total


def parameter_count(model_config: dict[str, Any], input_shape: tuple[int, int, int], num_classes: int) -> int:
    """Parameters of the model, built on PyTorch's ``meta`` device (no memory allocated)."""
    import torch

    from learning.models import MODELS, resolve_model_config

    cfg = resolve_model_config(model_config)
    with torch.device("meta"):
        model = MODELS[cfg["name"]](tuple(input_shape), int(num_classes),
                                    **{k: v for k, v in cfg.items() if k != "name"})
    return int(sum(p.numel() for p in model.parameters()))


def estimate(scenario: Any, n_train: int, input_shape: tuple[int, int, int], num_classes: int,
             personalized: bool) -> MemoryEstimate:
    """The :class:`MemoryEstimate` of ``scenario`` in train mode (see the module docstring)."""
    devices = int(scenario.devices.count)
    parameters = parameter_count(dict(scenario.learning.model), input_shape, num_classes)
    sample_b = 4 * math.prod(input_shape)
    dataset_b = int(DATASET_FACTOR * n_train * sample_b)
    devices_b = devices * PER_DEVICE_OVERHEAD_B
    stateful = min(devices, int(scenario.fl.rounds) * int(scenario.fl.devices_per_round)) if personalized else 0
    states_b = stateful * parameters * 4 * STATE_COPIES
    total_b = BASE_B + dataset_b + devices_b + states_b
    return MemoryEstimate(total_b, dataset_b, devices_b, states_b, parameters, machine_memory_b())


def memory_problem(found: MemoryEstimate, devices: int) -> str | None:
    """The one-line problem when ``found`` does not fit the machine, else None."""
    if found.fits():
        return None
    return (f"devices.count: {devices} devices in train mode need about {gib(found.total_b)} "
            f"(dataset {gib(found.dataset_b)}, per-device data {gib(found.devices_b)}, model states "
            f"{gib(found.states_b)} for {found.parameters} parameters) but this machine has "
            f"{gib(found.available_b or 0)}; use fewer devices, a smaller model or dataset, or learning.mode: surrogate")
