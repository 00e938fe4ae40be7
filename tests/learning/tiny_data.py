"""Tiny hand-made federated data shared by the learning tests (learnable by a small ViT)."""

from __future__ import annotations

import torch


class TinyData:
    """Hand-made federated data: a fixed random prototype image per class plus Gaussian noise.

    Device i holds ``n_train`` training and ``n_test`` test samples; with ``classes_per_device``
    it only sees classes (i, i+1, ...) mod num_classes.
    """

    def __init__(self, n_devices: int = 4, num_classes: int = 4, n_train: int = 64, n_test: int = 32,
                 classes_per_device: int | None = None, seed: int = 0) -> None:
        self.n_devices = n_devices
        self.num_classes = num_classes
        self.input_shape = (1, 28, 28)
        gen = torch.Generator().manual_seed(seed)
        self._prototypes = torch.randn(num_classes, 1, 28, 28, generator=gen)
        self._train = [self._draw(i, n_train, classes_per_device, gen) for i in range(n_devices)]
        self._test = [self._draw(i, n_test, classes_per_device, gen) for i in range(n_devices)]
        self._global = self._draw(0, n_test * 2, None, gen)

    def _draw(self, i: int, n: int, k: int | None, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        classes = torch.arange(self.num_classes) if k is None else (torch.arange(k) + i) % self.num_classes
        y = classes[torch.randint(len(classes), (n,), generator=gen)]
        x = self._prototypes[y] + torch.randn(n, 1, 28, 28, generator=gen)
        return x, y

    def train(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._train[i]

    def test(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._test[i]

    def num_train(self, i: int) -> int:
        return int(self._train[i][1].shape[0])

    def num_test(self, i: int) -> int:
        return int(self._test[i][1].shape[0])

    def global_test(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._global
