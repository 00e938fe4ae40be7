"""The engine's handle on the learning core: build data, algorithm and executor; costs.

In ``train`` mode the algorithm really trains and reports FLOPs and payloads; in
``surrogate`` mode nothing is trained and every device's FLOPs and payload bytes come
from the algorithm's `CostModel` — the same numbers training would report for a dense
model — so the network side can be studied at 10,000+ devices.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from learning.algorithms import ALGORITHMS, make_algorithm
from learning.algorithms.base import StaleUpdate
from learning.algorithms.training import evaluation_device
from learning.data import build_federated_data, load_dataset, validation_size
from learning.execution import make_executor

# Training-set size and input shape of datasets known without loading them (surrogate mode).
_DATASET_SHAPES = {"fashion_mnist": (60000, (1, 28, 28), 10), "cifar10": (50000, (3, 32, 32), 10)}


@dataclass
class RoundWork:
    """What one selected device does in a round, as the engine sees it."""

    downlink_bytes: int
    flops: int
    uplink_bytes: int
    result: object | None  # the LocalResult in train mode
    sent: object | None = None  # the downlink Payload it trains from (non-sync modes, train mode)


def holdout_mask(seed: int, n_devices: int, k: int) -> np.ndarray:
    """Which devices are held out of training (``learning.holdout_devices`` = k): k distinct
    devices drawn from their own seed stream, shape (n_devices,) bool."""
    mask = np.zeros(n_devices, dtype=bool)
    if k > 0:
        rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(11,)))
        mask[rng.choice(n_devices, size=k, replace=False)] = True
    return mask


class LearningSide:
    """Owns the algorithm (train mode) or its cost model (surrogate mode).

    Also measures the wall time spent inside learning calls, so the engine's own
    overhead can be reported.
    """

    def __init__(self, scenario, n_devices: int) -> None:
        cfg = scenario.learning
        self.mode = cfg.mode
        self.seed = int(scenario.seed)
        self.learning_wall_s = 0.0
        algorithm_cls = ALGORITHMS[cfg.algorithm.name]
        self.holdout = holdout_mask(self.seed, n_devices, int(cfg.holdout_devices))
        self.communicates = bool(algorithm_cls.communicates)
        self.personalized = bool(algorithm_cls.personalized)
        model_config = dict(cfg.model)
        params = dict(cfg.algorithm.params)
        self.algorithm = None
        self.executor = None
        #: where evaluation computes: the batched executor's device (the CPU otherwise).
        self.eval_device = scenario.execution.device
        if self.mode == "train":
            t0 = time.perf_counter()
            dataset = load_dataset(cfg.dataset.name, path=cfg.dataset.path, **dict(cfg.dataset.params))
            self.data = build_federated_data(
                dataset, n_devices, cfg.partition.name, dict(cfg.partition.params), self.seed,
                max_train_per_device=cfg.max_train_per_device, validation_fraction=cfg.validation_fraction,
            )
            self.algorithm = make_algorithm(cfg.algorithm.name, self.data, model_config, params, self.seed)
            self.client = self.algorithm.client()
            ex = scenario.execution
            self.executor = make_executor(ex.executor, workers=ex.workers, threads=ex.threads, address=ex.address,
                                          device=ex.device, max_devices=ex.max_devices)
            self.samples = np.array([self.data.num_train(i) for i in range(n_devices)], dtype=np.int64)
            input_shape, num_classes = tuple(self.data.input_shape), int(self.data.num_classes)
            self.learning_wall_s += time.perf_counter() - t0
        else:
            self.data = None
            n_train, input_shape, num_classes = self._surrogate_dataset_shape(cfg)
            per_device = n_train // n_devices
            if cfg.max_train_per_device is not None:
                per_device = min(per_device, cfg.max_train_per_device)
            per_device = max(per_device, 1)
            per_device -= validation_size(per_device, cfg.validation_fraction)
            self.samples = np.full(n_devices, per_device, dtype=np.int64)
        self.cost = algorithm_cls.cost_model(model_config, params, input_shape, num_classes)

    @staticmethod
    def _surrogate_dataset_shape(cfg) -> tuple[int, tuple[int, int, int], int]:
        name = cfg.dataset.name
        if name == "synthetic":
            p = dict(cfg.dataset.params)
            size = int(p.get("image_size", 28))
            return int(p.get("num_train", 6000)), (1, size, size), int(p.get("num_classes", 10))
        if name in _DATASET_SHAPES:
            return _DATASET_SHAPES[name]
        loaded = load_dataset(name, path=cfg.dataset.path, **dict(cfg.dataset.params))  # a plugin: load it once
        return len(loaded.train_y), loaded.image_shape, int(loaded.num_classes)

    def restore_algorithm(self, algorithm) -> None:
        """Continue with `algorithm` (from a checkpoint, its data re-attached)."""
        if self.mode != "train":
            return
        self.algorithm = algorithm
        self.client = algorithm.client()

    def expected_flops(self) -> np.ndarray:
        """Dense training FLOPs of one participation per device, shape (n_devices,)."""
        return (self.cost.flops_per_sample * self.samples * self.cost.epochs).astype(float)

    def training_seed(self, round_idx: int, device: int) -> int:
        """The seed of one device's local update in one round (independent streams)."""
        return int(np.random.SeedSequence(self.seed, spawn_key=(7, round_idx, device)).generate_state(1)[0])

    def prepare_round(self, round_idx: int, devices: np.ndarray, keep_sent: bool = False) -> dict[int, RoundWork]:
        """Downlink payloads and local updates of the selected devices.

        Local updates are pure functions of (device state, payload, seed), all known when
        the round starts, so they run here as one batch on the executor; the engine then
        plays out their simulated download, compute and upload. In the non-sync modes
        `round_idx` is the server model version the devices start from, and `keep_sent`
        keeps each downlink payload for `apply_stale`.
        """
        if self.mode != "train":
            flops = self.expected_flops()
            return {
                int(d): RoundWork(self.cost.downlink_bytes if self.communicates else 0, int(flops[d]),
                                  self.cost.uplink_bytes if self.communicates else 0, None)
                for d in devices
            }
        t0 = time.perf_counter()
        tasks = []
        downlink_bytes, payloads = {}, {}
        for d in map(int, devices):
            payload = payloads[d] = self.algorithm.downlink(d, round_idx)
            downlink_bytes[d] = payload.wire_bytes if payload is not None else 0
            tasks.append((d, self.algorithm.device_state(d), payload, self.training_seed(round_idx, d)))
        results = self.executor.run(self.client, tasks)
        work = {}
        for (d, *_), result in zip(tasks, results):
            uplink = result.uplink.wire_bytes if result.uplink is not None else 0
            work[d] = RoundWork(downlink_bytes[d], int(result.flops), uplink, result)
            if keep_sent:
                work[d].sent = payloads[d]
        self.learning_wall_s += time.perf_counter() - t0
        return work

    def finish_round(self, round_idx: int, arrived: dict[int, RoundWork], aggregate: bool) -> None:
        """Commit the arrived devices' states and aggregate their uplinks."""
        if self.mode != "train":
            return
        t0 = time.perf_counter()
        for work in arrived.values():
            self.algorithm.commit(work.result)
        if aggregate and self.communicates and arrived:
            uplinks = {d: (w.result.uplink, int(w.result.samples)) for d, w in arrived.items()}
            self.algorithm.aggregate(uplinks, round_idx)
        self.learning_wall_s += time.perf_counter() - t0

    def apply_stale(self, updates: list[tuple[int, RoundWork, int, float]], rule: str, server_lr: float) -> None:
        """Commit and apply arrived updates, each (device, work, staleness, weight), with the
        algorithm's stale-update `rule` ("mix" or "delta", see `Algorithm.apply_updates`)."""
        if self.mode != "train" or not updates:
            return
        t0 = time.perf_counter()
        for _, work, _, _ in updates:
            self.algorithm.commit(work.result)
        if self.communicates:
            self.algorithm.apply_updates(
                [StaleUpdate(d, w.result.uplink, w.sent, int(w.result.samples), tau, weight)
                 for d, w, tau, weight in updates], rule, server_lr)
        self.learning_wall_s += time.perf_counter() - t0

    def evaluate(self):
        """Per-device and global accuracy (train mode) of the training devices (held-out
        devices excluded), or None in surrogate mode."""
        if self.mode != "train":
            return None
        t0 = time.perf_counter()
        with evaluation_device(self.eval_device):
            result = self.algorithm.evaluate(np.flatnonzero(~self.holdout).tolist() if self.holdout.any() else None)
        self.learning_wall_s += time.perf_counter() - t0
        return result

    def holdout_accuracy(self, round_idx: int) -> dict[int, float]:
        """Join the held-out devices to the final server state and evaluate them.

        Each held-out device runs ``Algorithm.join_new_device`` (one local update from the
        downlink of round ``round_idx``, nothing aggregated) with the seed its update in
        that round would have, then its model is evaluated on its test split. Learning
        only: the join's transfers and compute are not simulated. Returns device ->
        accuracy ({} without held-out devices or in surrogate mode).
        """
        devices = np.flatnonzero(self.holdout).tolist()
        if self.mode != "train" or not devices:
            return {}
        t0 = time.perf_counter()
        for d in devices:
            self.algorithm.join_new_device(d, round_idx, self.training_seed(round_idx, d))
        with evaluation_device(self.eval_device):
            result = self.algorithm.evaluate(devices)
        self.learning_wall_s += time.perf_counter() - t0
        return dict(result.per_device_accuracy)

    def close(self) -> None:
        if self.executor is not None:
            self.executor.close()
