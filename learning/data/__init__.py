"""Datasets, partitions and per-device federated splits.

``load_dataset(name)`` gives an ``ArrayDataset`` (uint8 images, int64 labels);
``build_federated_data`` partitions it over devices (``PARTITIONS``) and returns the
``FederatedData`` that algorithms read per device.
"""

from .cifar10 import CIFAR10_MEAN, CIFAR10_STD, load_cifar10
from .fashion_mnist import (
    ArrayDataset,
    DatasetNotFoundError,
    FMNIST_MEAN,
    FMNIST_STD,
    load_fashion_mnist,
)
from .federated import DATASETS, FederatedData, build_federated_data, load_dataset, validation_size
from .idx import IdxFormatError, parse_idx, read_idx
from .partition import (
    PARTITIONS,
    class_histogram,
    partition_dirichlet,
    partition_iid,
    partition_pathological,
    partition_quantity_skew,
)
from .synthetic import make_synthetic

__all__ = [
    "ArrayDataset",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DATASETS",
    "DatasetNotFoundError",
    "FMNIST_MEAN",
    "FMNIST_STD",
    "FederatedData",
    "IdxFormatError",
    "PARTITIONS",
    "build_federated_data",
    "validation_size",
    "class_histogram",
    "load_cifar10",
    "load_dataset",
    "load_fashion_mnist",
    "make_synthetic",
    "parse_idx",
    "partition_dirichlet",
    "partition_iid",
    "partition_pathological",
    "partition_quantity_skew",
    "read_idx",
]
