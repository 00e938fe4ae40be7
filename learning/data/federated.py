"""Per-device train/validation/test splits over one shared, normalised image store.

``build_federated_data`` partitions a dataset's training set over devices and gives
each device a test split drawn from the dataset's *test* set with the same class
proportions as its own train split, so that personalised models are evaluated on
their own distribution. Images are stored once as a float32 tensor; devices only hold
index arrays, which keeps memory flat for thousands of devices and makes the object
cheap to pickle once per worker process.

Per-device test splits: size ``round(n_train_i · N_test / N_train)`` (or
``round(test_fraction · n_train_i)``), raised to at least the number of classes in the
device's train split so that every class it trains on is also tested. Class counts are
proportional to its train counts (largest-remainder rounding; a class present in train
that rounds to zero gets one sample, taken from the device's largest class). Samples
are taken without replacement from a per-class pool shared by all devices (processed
in random order), so splits are disjoint while the test set lasts; when a class's pool
runs out, the shortfall is sampled *with replacement* from that class's full test set
(so those samples repeat across devices). The number of such samples is reported by
``FederatedData.n_test_resampled``. Test sizes and proportions come from the device's
whole partition, so the test splits do not depend on the validation fraction.

Per-device validation splits (``validation_fraction`` > 0): ``round(fraction · n_i)``
samples (at least 1, and at least 1 left to train, when the device has 2 or more) of the
device's own partition, stratified by class (largest-remainder counts, random members),
held out of its training split: the device's own training distribution, for choosing
hyper-parameters without looking at test. Drawn from their own stream (the fourth child
of the seed), so partitions and test draws are the same with and without validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .cifar10 import load_cifar10
from .fashion_mnist import ArrayDataset, load_fashion_mnist
from .partition import PARTITIONS, _largest_remainder, class_histogram
from .synthetic import make_synthetic

__all__ = ["DATASETS", "FederatedData", "build_federated_data", "load_dataset", "validation_size"]


def _load_fmnist(path: str | Path | None = None, **params: Any) -> ArrayDataset:
    return load_fashion_mnist(path=path, **params)


def _load_cifar10(path: str | Path | None = None, **params: Any) -> ArrayDataset:
    return load_cifar10(path=path, **params)


def _load_synthetic(path: str | Path | None = None, **params: Any) -> ArrayDataset:
    if path is not None:
        raise ValueError(f"the synthetic dataset takes no path, got {path}")
    params.setdefault("num_train", 6000)
    params.setdefault("num_test", 1000)
    return make_synthetic(**params)


#: name -> loader(path=None, **params) -> ArrayDataset.
DATASETS: dict[str, Callable[..., ArrayDataset]] = {
    "fashion_mnist": _load_fmnist,
    "cifar10": _load_cifar10,
    "synthetic": _load_synthetic,
}


def load_dataset(name: str, path: str | Path | None = None, **params: Any) -> ArrayDataset:
    """Load a registered dataset by name.

    Args:
        name: key of ``DATASETS`` ("fashion_mnist", "cifar10", "synthetic").
        path: data folder (fashion_mnist and cifar10 only).
        **params: loader parameters, e.g. ``download``/``cache_dir`` for fashion_mnist and cifar10,
            ``num_train, num_test, num_classes, seed, noise`` for synthetic
            (defaults 6000 train / 1000 test).
    """
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
    return DATASETS[name](path=path, **params)


@dataclass
class FederatedData:
    """Images stored once plus per-device index arrays.

    Attributes:
        train_x: normalised training images used by some device, float32 (M, C, H, W).
        train_y: their labels, int64 (M,).
        test_x: the dataset's full normalised test set, float32 (N_test, C, H, W).
        test_y: its labels, int64 (N_test,).
        train_idx: per device, int64 indices into ``train_x``.
        test_idx: per device, int64 indices into ``test_x`` (may repeat, see module doc).
        num_classes: number of classes C.
        name: dataset name.
        mean: pixel mean used for normalisation (of x / 255): one number or one per channel.
        std: pixel std used for normalisation, like ``mean``.
        n_test_resampled: test samples drawn with replacement after a class ran out.
        val_idx: per device, int64 indices into ``train_x`` of its validation split
            (disjoint from its ``train_idx``; empty without validation).
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    train_idx: list[np.ndarray]
    test_idx: list[np.ndarray]
    num_classes: int
    name: str
    mean: float | tuple[float, ...]
    std: float | tuple[float, ...]
    n_test_resampled: int = 0
    val_idx: list[np.ndarray] = field(default_factory=list)

    @property
    def n_devices(self) -> int:
        """Number of devices D."""
        return len(self.train_idx)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape of one image, (C, H, W)."""
        return tuple(self.test_x.shape[1:])  # type: ignore[return-value]

    def train(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Device ``i``'s training split: x float32 (n, C, H, W), y int64 (n,)."""
        idx = torch.from_numpy(self.train_idx[i])
        return self.train_x[idx], self.train_y[idx]

    def test(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Device ``i``'s test split: x float32 (n, C, H, W), y int64 (n,)."""
        idx = torch.from_numpy(self.test_idx[i])
        return self.test_x[idx], self.test_y[idx]

    def val(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Device ``i``'s validation split: x float32 (n, C, H, W), y int64 (n,) (n may be 0)."""
        idx = torch.from_numpy(self.val_idx[i] if self.val_idx else np.empty(0, np.int64))
        return self.train_x[idx], self.train_y[idx]

    def num_val(self, i: int) -> int:
        """Number of validation samples of device ``i``."""
        return int(self.val_idx[i].size) if self.val_idx else 0

    def num_train(self, i: int) -> int:
        """Number of training samples of device ``i``."""
        return int(self.train_idx[i].size)

    def num_test(self, i: int) -> int:
        """Number of test samples of device ``i``."""
        return int(self.test_idx[i].size)

    def global_test(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The full test set (for global models): x float32 (N_test, C, H, W), y (N_test,)."""
        return self.test_x, self.test_y

    def histogram(self) -> np.ndarray:
        """Train label counts per device, int64 (D, C)."""
        return class_histogram(self.train_y.numpy(), self.train_idx, self.num_classes)

    def test_histogram(self) -> np.ndarray:
        """Test label counts per device, int64 (D, C)."""
        return class_histogram(self.test_y.numpy(), self.test_idx, self.num_classes)


def _normalise(x: np.ndarray, mean: float | tuple[float, ...], std: float | tuple[float, ...]) -> torch.Tensor:
    """uint8 (N, H, W) or (N, C, H, W) -> float32 (N, C, H, W) of (x/255 − mean)/std, with
    ``mean``/``std`` one number or one per channel."""
    # astype makes the one float32 copy (writable even when ``x`` is a read-only cached array)
    out = torch.from_numpy(x.astype(np.float32)).div_(255.0)
    if out.ndim == 3:
        out = out.unsqueeze(1)
    shape = (1, -1, 1, 1)
    out.sub_(torch.tensor(mean, dtype=torch.float32).reshape(shape) if isinstance(mean, tuple) else mean)
    out.div_(torch.tensor(std, dtype=torch.float32).reshape(shape) if isinstance(std, tuple) else std)
    return out.contiguous()


def _statistics(dataset: ArrayDataset) -> tuple[float | tuple[float, ...], float | tuple[float, ...]]:
    """The dataset's normalisation (mean, std) of x / 255: its known values, else computed
    from its training images (per channel for (N, C, H, W) data; a zero std becomes 1)."""
    if dataset.mean is not None and dataset.std is not None:
        conv = lambda v: tuple(float(c) for c in v) if isinstance(v, tuple) else float(v)  # noqa: E731
        return conv(dataset.mean), conv(dataset.std)
    scaled = dataset.train_x.astype(np.float64) / 255.0
    if scaled.ndim == 4:
        mean = scaled.mean(axis=(0, 2, 3))
        std = scaled.std(axis=(0, 2, 3))
        return tuple(float(m) for m in mean), tuple(float(s) or 1.0 for s in std)
    return float(scaled.mean()), float(scaled.std()) or 1.0


def _draw_tests(
    train_hist: np.ndarray, test_y: np.ndarray, sizes: np.ndarray, rng: np.random.Generator
) -> tuple[list[np.ndarray], int]:
    """Per-device test indices with the class proportions of ``train_hist`` (D, C)."""
    n_dev, n_cls = train_hist.shape
    members = [np.flatnonzero(test_y == c) for c in range(n_cls)]
    pools = [rng.permutation(m) for m in members]
    used = np.zeros(n_cls, dtype=np.int64)
    out: list[np.ndarray] = [np.empty(0, np.int64)] * n_dev
    resampled = 0
    for d in rng.permutation(n_dev):
        support = np.flatnonzero(train_hist[d])
        for c in support:
            if members[c].size == 0:
                raise ValueError(
                    f"class {c} is in device {d}'s train split but not in the test set"
                )
        n = max(int(sizes[d]), support.size)
        want = np.zeros(n_cls, dtype=np.int64)
        want[support] = _largest_remainder(train_hist[d, support].astype(float), n)
        for c in support[want[support] == 0]:  # every trained class is tested at least once
            want[c] = 1
            want[np.argmax(want)] -= 1
        chunks = []
        for c in support:
            take = min(int(want[c]), pools[c].size - int(used[c]))
            chunks.append(pools[c][used[c] : used[c] + take])
            used[c] += take
            if take < want[c]:
                resampled += int(want[c]) - take
                chunks.append(rng.choice(members[c], size=int(want[c]) - take, replace=True))
        out[d] = np.sort(np.concatenate(chunks)).astype(np.int64)
    return out, resampled


def validation_size(n: int, fraction: float) -> int:
    """Validation samples held out of a partition of ``n``: ``round(fraction · n)``, at least 1
    and at most ``n − 1`` when ``fraction > 0`` and ``n >= 2``, else 0."""
    return min(max(int(np.rint(fraction * n)), 1), n - 1) if fraction > 0 and n >= 2 else 0


def _split_validation(parts: list[np.ndarray], labels: np.ndarray, fraction: float, num_classes: int,
                      rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(train, validation) index arrays per device: a class-stratified random
    ``round(fraction · n)`` of each partition (1 ≤ k ≤ n − 1 when n ≥ 2) held out."""
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    for part in parts:
        n = int(part.size)
        k = validation_size(n, fraction)
        if k == 0:
            train.append(part)
            val.append(np.empty(0, np.int64))
            continue
        y = labels[part]
        counts = np.bincount(y, minlength=num_classes)
        want = _largest_remainder(counts.astype(float), k)  # want[c] <= counts[c] since k < n
        chosen = [rng.choice(part[y == c], size=int(want[c]), replace=False) for c in np.flatnonzero(want)]
        held = np.sort(np.concatenate(chosen)).astype(np.int64)
        train.append(np.setdiff1d(part, held).astype(np.int64))
        val.append(held)
    return train, val


def build_federated_data(
    dataset: ArrayDataset,
    n_devices: int,
    partition: str,
    params: dict[str, Any],
    seed: int,
    test_fraction: float | None = None,
    max_train_per_device: int | None = None,
    validation_fraction: float = 0.0,
) -> FederatedData:
    """Partition ``dataset`` over devices, each with its own train, validation and test split.

    Args:
        dataset: the source dataset.
        n_devices: number of devices D.
        partition: key of ``PARTITIONS`` ("iid", "dirichlet", "pathological",
            "quantity_skew").
        params: keyword parameters of that partition (e.g. ``{"alpha": 0.3}``).
        seed: seed for the partition, the truncation and the test draws.
        test_fraction: per-device test size as a fraction of its train size
            (default: the dataset's test/train ratio).
        max_train_per_device: keep at most this many training samples per device
            (a random subset of its partition).
        validation_fraction: fraction in [0, 1) of each device's partition held out of
            its training split as its validation split (see the module docstring).

    Returns:
        FederatedData storing only the training images some device uses.
    """
    if partition not in PARTITIONS:
        raise KeyError(f"unknown partition {partition!r}; known: {sorted(PARTITIONS)}")
    if test_fraction is not None and test_fraction <= 0:
        raise ValueError(f"test_fraction must be > 0, got {test_fraction}")
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    if max_train_per_device is not None and max_train_per_device < 1:
        raise ValueError(f"max_train_per_device must be ≥ 1, got {max_train_per_device}")
    rng_part, rng_trunc, rng_test, rng_val = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )
    parts = PARTITIONS[partition](dataset.train_y, n_devices, rng=rng_part, **params)
    if max_train_per_device is not None:
        parts = [
            np.sort(rng_trunc.choice(p, size=max_train_per_device, replace=False))
            if p.size > max_train_per_device
            else p
            for p in parts
        ]
    # Keep only the training images some device uses; remap indices into that store.
    used = np.unique(np.concatenate(parts))
    train_idx = [np.searchsorted(used, p).astype(np.int64) for p in parts]
    train_y = dataset.train_y[used]

    n_train = np.array([p.size for p in parts])
    ratio = dataset.test_y.size / dataset.train_y.size if test_fraction is None else test_fraction
    sizes = np.rint(n_train * ratio).astype(np.int64)
    hist = class_histogram(train_y, train_idx, dataset.num_classes)
    test_idx, resampled = _draw_tests(hist, dataset.test_y, sizes, rng_test)
    train_idx, val_idx = _split_validation(train_idx, train_y, validation_fraction, dataset.num_classes, rng_val)

    mean, std = _statistics(dataset)
    return FederatedData(
        train_x=_normalise(dataset.train_x[used], mean, std),
        train_y=torch.from_numpy(train_y.astype(np.int64)),
        test_x=_normalise(dataset.test_x, mean, std),
        test_y=torch.from_numpy(dataset.test_y.astype(np.int64)),
        train_idx=train_idx,
        test_idx=test_idx,
        num_classes=dataset.num_classes,
        name=dataset.name,
        mean=mean,
        std=std,
        n_test_resampled=resampled,
        val_idx=val_idx,
    )
