"""Partitions of a labelled sample set over devices (IID and the usual non-IID schemes).

Every partition function takes the label array of the samples to split, the number
of devices and a ``numpy.random.Generator``, and returns one sorted int64 index array
per device. The arrays are pairwise disjoint and together cover every sample, with
one documented exception: ``partition_pathological`` with fewer class slots than
classes (D·k < C) leaves the samples of the C − D·k classes no device holds unused.
Call them by keyword through ``PARTITIONS``:
``PARTITIONS[name](labels, n_devices, rng=rng, **params)``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = [
    "PARTITIONS",
    "class_histogram",
    "partition_dirichlet",
    "partition_iid",
    "partition_pathological",
    "partition_quantity_skew",
]


def _check(labels: np.ndarray, n_devices: int, min_per_device: int = 1) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if n_devices < 1:
        raise ValueError(f"n_devices must be ≥ 1, got {n_devices}")
    if labels.size < n_devices * min_per_device:
        raise ValueError(
            f"{labels.size} samples cannot give {n_devices} devices "
            f"≥ {min_per_device} samples each"
        )
    return labels


def _split_by_sizes(perm: np.ndarray, sizes: np.ndarray) -> list[np.ndarray]:
    parts = np.split(perm, np.cumsum(sizes)[:-1])
    return [np.sort(p).astype(np.int64) for p in parts]


def _largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    """Integers ≥ 0 summing to ``total``, proportional to ``weights`` (Hamilton rounding)."""
    exact = weights / weights.sum() * total
    out = np.floor(exact).astype(np.int64)
    short = total - int(out.sum())
    if short > 0:
        out[np.argsort(-(exact - out), kind="stable")[:short]] += 1
    return out


def partition_iid(
    labels: np.ndarray, n_devices: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Uniformly random split; device sizes differ by at most one.

    Args:
        labels: sample labels, shape (N,).
        n_devices: number of devices D (≤ N).
        rng: source of randomness.

    Returns:
        D sorted int64 index arrays into ``labels``.
    """
    labels = _check(labels, n_devices)
    perm = rng.permutation(labels.size)
    return [np.sort(p).astype(np.int64) for p in np.array_split(perm, n_devices)]


def partition_dirichlet(
    labels: np.ndarray,
    n_devices: int,
    alpha: float,
    rng: np.random.Generator,
    min_samples: int = 10,
    max_tries: int = 1000,
) -> list[np.ndarray]:
    """Label-skew split (Hsu et al. 2019): each class's samples are divided among devices
    in proportions drawn from Dirichlet(alpha · 1_D); the whole draw is repeated until
    every device has at least ``min_samples`` samples.

    Args:
        labels: sample labels, shape (N,).
        n_devices: number of devices D.
        alpha: Dirichlet concentration (> 0); small = skewed, large = near IID.
        rng: source of randomness.
        min_samples: minimum samples per device.
        max_tries: redraws before giving up with ValueError.

    Returns:
        D sorted int64 index arrays into ``labels``.
    """
    labels = _check(labels, n_devices, min_samples)
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    classes = np.unique(labels)
    members = [np.flatnonzero(labels == c) for c in classes]
    for _ in range(max_tries):
        props = rng.dirichlet(np.full(n_devices, float(alpha)), size=classes.size)  # (C, D)
        bounds = [(np.cumsum(p) * m.size).astype(np.int64) for p, m in zip(props, members)]
        counts = np.stack([np.diff(b, prepend=0) for b in bounds])  # (C, D)
        counts[:, -1] += np.array([m.size for m in members]) - counts.sum(axis=1)
        if counts.sum(axis=0).min() >= min_samples:
            break
    else:
        raise ValueError(
            f"no Dirichlet(alpha={alpha}) draw in {max_tries} tries gave all {n_devices} "
            f"devices ≥ {min_samples} samples; raise alpha or lower min_samples"
        )
    parts: list[list[np.ndarray]] = [[] for _ in range(n_devices)]
    for m, cnt in zip(members, counts):
        for d, chunk in enumerate(np.split(rng.permutation(m), np.cumsum(cnt)[:-1])):
            parts[d].append(chunk)
    return [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]


def partition_pathological(
    labels: np.ndarray,
    n_devices: int,
    classes_per_device: int,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Shard split (McMahan et al. 2017) with exactly ``classes_per_device`` distinct
    classes on every device.

    There are D·k shards, each class holding ⌊D·k/C⌋ or ⌈D·k/C⌉ of them (its samples
    shuffled and cut into near-equal shards). Devices pick their k classes one after
    another, at random in proportion to the shards left, except that a class with as
    many shards left as devices left is forced; this keeps the draw always completable
    with k distinct classes per device. When D·k < C, only D·k classes (chosen at
    random) are held by any device and the other classes' samples are left unused.

    Args:
        labels: sample labels, shape (N,).
        n_devices: number of devices D.
        classes_per_device: k, 1 ≤ k ≤ number of distinct labels C.
        rng: source of randomness.

    Returns:
        D sorted int64 index arrays into ``labels``.
    """
    labels = _check(labels, n_devices)
    classes = np.unique(labels)
    k, n_cls = classes_per_device, classes.size
    if not 1 <= k <= n_cls:
        raise ValueError(f"classes_per_device must be in [1, {n_cls}], got {k}")
    shards = np.full(n_cls, n_devices * k // n_cls, dtype=np.int64)
    shards[rng.permutation(n_cls)[: n_devices * k - shards.sum()]] += 1
    members = [np.flatnonzero(labels == c) for c in classes]
    for c, m, s in zip(classes, members, shards):
        if m.size < s:
            raise ValueError(f"class {c} has {m.size} samples, fewer than its {s} shards")
    left = shards.copy()
    owners: list[list[int]] = [[] for _ in range(n_cls)]
    for d, dev in enumerate(rng.permutation(n_devices)):
        devices_left = n_devices - d
        forced = np.flatnonzero(left == devices_left)
        free = np.flatnonzero((left > 0) & (left < devices_left))
        n_free = k - forced.size
        pick = forced
        if n_free > 0:
            p = left[free] / left[free].sum()
            pick = np.concatenate([forced, rng.choice(free, size=n_free, replace=False, p=p)])
        left[pick] -= 1
        for c in pick:
            owners[c].append(int(dev))
    parts: list[list[np.ndarray]] = [[] for _ in range(n_devices)]
    for m, own in zip(members, owners):
        if not own:
            continue  # D·k < C: class held by no device
        for dev, chunk in zip(own, np.array_split(rng.permutation(m), len(own))):
            parts[dev].append(chunk)
    return [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]


def partition_quantity_skew(
    labels: np.ndarray,
    n_devices: int,
    rng: np.random.Generator,
    sigma: float = 1.0,
    min_samples: int = 1,
) -> list[np.ndarray]:
    """Quantity skew: device sizes ∝ LogNormal(0, sigma) draws, labels IID.

    Args:
        labels: sample labels, shape (N,).
        n_devices: number of devices D.
        rng: source of randomness.
        sigma: log-normal shape; 0 gives (near) equal sizes.
        min_samples: every device gets at least this many samples.

    Returns:
        D sorted int64 index arrays into ``labels``.
    """
    labels = _check(labels, n_devices, min_samples)
    if sigma < 0:
        raise ValueError(f"negative sigma {sigma}")
    weights = rng.lognormal(0.0, sigma, size=n_devices)
    extra = labels.size - n_devices * min_samples
    sizes = min_samples + _largest_remainder(weights, extra)
    return _split_by_sizes(rng.permutation(labels.size), sizes)


def class_histogram(
    labels: np.ndarray, partition: list[np.ndarray], num_classes: int
) -> np.ndarray:
    """Per-device label counts.

    Args:
        labels: sample labels, shape (N,).
        partition: D index arrays into ``labels``.
        num_classes: C.

    Returns:
        int64 counts, shape (D, C).
    """
    labels = np.asarray(labels)
    return np.stack(
        [np.bincount(labels[idx], minlength=num_classes)[:num_classes] for idx in partition]
    ).astype(np.int64)


PARTITIONS: dict[str, Callable[..., list[np.ndarray]]] = {
    "iid": partition_iid,
    "dirichlet": partition_dirichlet,
    "pathological": partition_pathological,
    "quantity_skew": partition_quantity_skew,
}
