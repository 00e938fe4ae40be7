"""Shared local training loop and evaluation helpers (no DataLoader, no global RNG state leaks).

``train_local`` runs ``epochs`` passes of mini-batch training over a device's tensors,
shuffling with a ``torch.Generator``; a fractional epoch trains on the first part of one
more permutation. ``evaluate_accuracy`` runs batched inference under ``torch.no_grad``.
Thread count is left to the executor (``torch.set_num_threads``).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from learning.optim import Optimizer

__all__ = [
    "evaluation_device",
    "TrainParams",
    "TrainStats",
    "derive_seed",
    "make_optimizer",
    "samples_per_update",
    "train_local",
    "evaluate_accuracy",
    "clone_state",
]

OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class TrainParams:
    """Hyper-parameters common to every algorithm's local training.

    Attributes:
        lr: learning rate.
        optimizer: ``"adam"`` or ``"sgd"`` (fresh optimizer state at every local update).
        momentum: SGD momentum (ignored by Adam).
        weight_decay: L2 weight decay.
        local_epochs: passes over the device's training data per update (float allowed, > 0).
        batch_size: training mini-batch size [samples].
        eval_batch_size: evaluation batch size [samples].
    """

    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    local_epochs: float = 1.0
    batch_size: int = 32
    eval_batch_size: int = 1024

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; allowed: {list(OPTIMIZERS)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not self.local_epochs > 0:
            raise ValueError(f"local_epochs must be > 0, got {self.local_epochs}")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError(f"batch sizes must be >= 1, got {self.batch_size}, {self.eval_batch_size}")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "TrainParams":
        """Build from a params dict, ignoring keys that are not training hyper-parameters."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in params.items() if k in names})


@dataclass(frozen=True)
class TrainStats:
    """What one call of ``train_local`` did: samples processed, mean loss and accuracy."""

    samples_processed: int
    loss: float
    accuracy: float

    def metrics(self) -> dict[str, float]:
        """The ``LocalResult.metrics`` every algorithm reports."""
        return {"train_loss": self.loss, "train_accuracy": self.accuracy,
                "samples_processed": float(self.samples_processed)}


def derive_seed(*keys: int) -> int:
    """A 63-bit seed derived from integer keys with ``numpy.random.SeedSequence``."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def make_optimizer(model: nn.Module, hp: TrainParams) -> Optimizer:
    """A fresh optimizer over ``model``'s trainable parameters (``learning.optim``: the
    arithmetic of ``torch.optim.Adam`` / ``SGD``, bit for bit, without their start-up cost)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if hp.optimizer == "adam":
        return Optimizer("adam", params, lr=hp.lr, weight_decay=hp.weight_decay)
    return Optimizer("sgd", params, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)


def samples_per_update(num_samples: int, epochs: float) -> int:
    """Samples processed by one local update: ``round(epochs * num_samples)``."""
    return int(round(float(epochs) * int(num_samples)))


def _batch_indices(n: int, epochs: float, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Index batches: one fresh permutation per epoch; a partial epoch uses a prefix."""
    total = samples_per_update(n, epochs)
    batches: list[torch.Tensor] = []
    done = 0
    while done < total:
        perm = torch.randperm(n, generator=generator)
        take = min(n, total - done)
        batches.extend(perm[:take].split(batch_size))
        done += take
    return batches


def train_local(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    hp: TrainParams,
    seed: int,
    optimizer: Any = None,
    extra_loss: Any = None,
) -> TrainStats:
    """Train ``model`` in place on one device's data.

    Args:
        model: the model (put in train mode, returned in eval mode).
        x: inputs, float32 (n, C, H, W).
        y: labels, int64 (n,).
        hp: training hyper-parameters.
        seed: seeds the shuffling generator and, inside a forked RNG scope, dropout.
        optimizer: optional optimizer to use (default: ``make_optimizer(model, hp)``).
        extra_loss: optional callable ``() -> scalar tensor`` added to every batch loss
            (regularisers of derived algorithms).

    Returns:
        ``TrainStats`` with the number of samples processed and the mean loss/accuracy.
    """
    n = int(y.shape[0])
    if n == 0:
        return TrainStats(0, math.nan, math.nan)
    gen = torch.Generator().manual_seed(int(seed))
    opt = optimizer if optimizer is not None else make_optimizer(model, hp)
    batches = _batch_indices(n, hp.local_epochs, hp.batch_size, gen)
    loss_sum = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.int64)
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))  # only dropout draws from it; restored on exit
        for idx in batches:
            xb, yb = x[idx], y[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            total = loss if extra_loss is None else loss + extra_loss()
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            with torch.no_grad():
                loss_sum += loss.detach() * yb.shape[0]
                correct += (logits.argmax(dim=1) == yb).sum()
    model.eval()
    processed = sum(int(b.shape[0]) for b in batches)
    return TrainStats(processed, float(loss_sum) / processed, float(correct) / processed)


_EVAL_DEVICE: contextvars.ContextVar[str] = contextvars.ContextVar("cosim_evaluation_device", default="cpu")


@contextlib.contextmanager
def evaluation_device(device: str) -> Iterator[None]:
    """Within the block, ``evaluate_accuracy`` computes on ``device`` (``cpu``, ``cuda``,
    ``cuda:N``): each model's parameters and buffers and the data are copied there, the
    model itself stays where it is. Only float rounding differs from the CPU, so an
    accuracy changes only where a rounding flips a near-tie between two classes."""
    token = _EVAL_DEVICE.set(str(device))
    try:
        yield
    finally:
        _EVAL_DEVICE.reset(token)


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    """Top-1 accuracy of ``model`` on (x (n, C, H, W), y (n,)); NaN when n == 0. Runs on the
    ``evaluation_device`` (the CPU unless a caller chose otherwise)."""
    n = int(y.shape[0])
    if n == 0:
        return math.nan
    model.eval()
    device = _EVAL_DEVICE.get()
    if device != "cpu":
        return _accuracy_on(model, x, y, batch_size, torch.device(device))
    correct = 0
    for start in range(0, n, batch_size):
        logits = model(x[start : start + batch_size])
        correct += int((logits.argmax(dim=1) == y[start : start + batch_size]).sum())
    return correct / n


def _accuracy_on(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device) -> float:
    """``evaluate_accuracy`` on ``device`` through copies of the model's tensors (one sync)."""
    tensors = {name: t.to(device) for name, t in [*model.named_parameters(), *model.named_buffers()]}
    x, y = x.to(device), y.to(device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for start in range(0, int(y.shape[0]), batch_size):
        logits = torch.func.functional_call(model, tensors, (x[start : start + batch_size],))
        correct += (logits.argmax(dim=1) == y[start : start + batch_size]).sum()
    return int(correct) / int(y.shape[0])


def clone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of ``model.state_dict()`` (safe to keep after further training)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
