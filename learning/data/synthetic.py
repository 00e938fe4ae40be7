"""Synthetic class-conditional image dataset, a fast stand-in for Fashion-MNIST.

Each class has a fixed random prototype: a smooth pattern obtained by bilinear
upsampling of a coarse uniform-random grid, contrast-stretched to [0, 1]. A sample is
its class prototype shifted by a few pixels (zero fill), plus i.i.d. Gaussian pixel
noise of standard deviation ``noise``, clipped to [0, 1] and quantised to uint8.
Classes are balanced (label counts differ by at most one). A linear model or a small
CNN learns it well above chance within a few hundred steps.
"""

from __future__ import annotations

import numpy as np

from .fashion_mnist import ArrayDataset

__all__ = ["make_prototypes", "make_synthetic"]

_MAX_SHIFT = 2  # [pixels]
_CHUNK = 4096  # samples rendered per vectorised step (bounds temporary memory)


def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Linear-interpolation matrix, shape (n_out, n_in), rows sum to 1."""
    pos = np.linspace(0.0, n_in - 1, n_out)
    lo = np.clip(np.floor(pos).astype(int), 0, n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    w = pos - lo
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] += 1.0 - w
    m[np.arange(n_out), hi] += w
    return m


def make_prototypes(num_classes: int, image_size: int, rng: np.random.Generator) -> np.ndarray:
    """Class prototypes in [0, 1], float64, shape (num_classes, image_size, image_size).

    Args:
        num_classes: number of classes C.
        image_size: side S of the square images.
        rng: source of randomness.
    """
    coarse = max(2, image_size // 4)
    m = _interp_matrix(image_size, coarse)
    grid = rng.random((num_classes, coarse, coarse))
    protos = m @ grid @ m.T
    lo = protos.min(axis=(1, 2), keepdims=True)
    hi = protos.max(axis=(1, 2), keepdims=True)
    return (protos - lo) / np.maximum(hi - lo, 1e-12)


def _render(
    protos: np.ndarray, labels: np.ndarray, noise: float, rng: np.random.Generator
) -> np.ndarray:
    """Shifted, noisy uint8 samples of shape (len(labels), S, S)."""
    _, s, _ = protos.shape
    padded = np.pad(protos, ((0, 0), (_MAX_SHIFT, _MAX_SHIFT), (_MAX_SHIFT, _MAX_SHIFT)))
    out = np.empty((labels.size, s, s), dtype=np.uint8)
    ar = np.arange(s)
    for start in range(0, labels.size, _CHUNK):
        lab = labels[start : start + _CHUNK]
        dy = rng.integers(0, 2 * _MAX_SHIFT + 1, size=lab.size)
        dx = rng.integers(0, 2 * _MAX_SHIFT + 1, size=lab.size)
        rows = (dy[:, None] + ar)[:, :, None]
        cols = (dx[:, None] + ar)[:, None, :]
        img = padded[lab[:, None, None], rows, cols]
        img = img + noise * rng.standard_normal(img.shape)
        out[start : start + lab.size] = np.rint(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    return out


def make_synthetic(
    num_train: int,
    num_test: int,
    num_classes: int = 10,
    image_size: int = 28,
    seed: int = 0,
    noise: float = 0.3,
) -> ArrayDataset:
    """Generate a balanced synthetic dataset.

    Args:
        num_train: number of training samples N_train.
        num_test: number of test samples N_test.
        num_classes: number of classes C (≥ 2).
        image_size: image side S [pixels] (≥ 4).
        seed: seed of all randomness (prototypes, labels, shifts, noise).
        noise: standard deviation of the additive pixel noise, in units of full scale.

    Returns:
        ArrayDataset with uint8 images (N, S, S) and int64 labels (N,), named "synthetic".
    """
    if num_train < 1 or num_test < 1:
        raise ValueError(f"need num_train, num_test ≥ 1, got {num_train}, {num_test}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be ≥ 2, got {num_classes}")
    if image_size < 4:
        raise ValueError(f"image_size must be ≥ 4, got {image_size}")
    if noise < 0:
        raise ValueError(f"negative noise {noise}")
    rng = np.random.default_rng(seed)
    protos = make_prototypes(num_classes, image_size, rng)
    train_y = rng.permutation(np.arange(num_train) % num_classes).astype(np.int64)
    test_y = rng.permutation(np.arange(num_test) % num_classes).astype(np.int64)
    return ArrayDataset(
        train_x=_render(protos, train_y, noise, rng),
        train_y=train_y,
        test_x=_render(protos, test_y, noise, rng),
        test_y=test_y,
        num_classes=num_classes,
        name="synthetic",
    )
