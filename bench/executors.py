"""Throughput of the executors on urban_50dev's model, measured in one run.

FedAvg local updates (1 epoch, batch 32, Adam) of ``--devices`` devices per round on
Fashion-MNIST (or synthetic data when it is not found), pathological 2-class split over 50
devices, ViT patch 7 / dim 64 / depth 2 / heads 4 / mlp_ratio 2 on 28x28x1, 10 classes.
Prints samples/s of sequential, process (2 workers) and batched, and batched/sequential.
Each executor runs one warm-up round (pool start-up, first-call costs) before timing.

Usage: python bench/executors.py [--devices 10 50] [--max-train 300] [--rounds 1]
       [--threads 1] [--batched-threads 2] [--profile]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from learning.algorithms import make_algorithm
from learning.data import DatasetNotFoundError, build_federated_data, load_dataset, make_synthetic
from learning.executors import make_executor

MODEL = {"name": "vit", "patch_size": 7, "dim": 64, "depth": 2, "heads": 4, "mlp_ratio": 2.0}
FMNIST = "/usr/share/datasets/fashion-mnist"


def load_data(max_train: int | None) -> tuple[Any, str]:
    """urban_50dev's split: 50 devices, 2 classes each (synthetic data if FMNIST is absent)."""
    try:
        ds, name = load_dataset("fashion_mnist", path=FMNIST), "fashion_mnist"
    except (DatasetNotFoundError, FileNotFoundError, OSError):
        ds, name = make_synthetic(12000, 2000, num_classes=10, seed=0), "synthetic"
    fd = build_federated_data(ds, 50, "pathological", {"classes_per_device": 2}, seed=7,
                              max_train_per_device=max_train)
    return fd, name


def time_executor(name: str, alg: Any, devices: list[int], rounds: int, workers: int, threads: int) -> float:
    """Samples/s of ``rounds`` timed rounds after one warm-up round."""
    client = alg.client()
    with make_executor(name, workers=workers, threads=threads) as ex:
        tasks = [(d, alg.device_state(d), alg.downlink(d, 0), d) for d in devices]
        ex.run(client, tasks)  # warm-up
        samples, start = 0, time.perf_counter()
        for r in range(1, rounds + 1):
            tasks = [(d, alg.device_state(d), alg.downlink(d, r), 1000 * r + d) for d in devices]
            samples += sum(int(res.metrics["samples_processed"]) for res in ex.run(client, tasks))
        return samples / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--max-train", type=int, default=300, help="train samples per device (0: all)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of sequential / each process worker")
    parser.add_argument("--batched-threads", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="torch.profiler table of one batched round")
    args = parser.parse_args()
    fd, dname = load_data(args.max_train or None)
    alg = make_algorithm("fedavg", fd, MODEL, {"batch_size": 32, "local_epochs": 1.0}, seed=7)
    print(f"data={dname} train/device~{fd.num_train(0)} torch={torch.__version__} cores={torch.get_num_threads()}")
    print(f"{'devices':>8} {'sequential':>11} {'seq(T=2)':>9} {'process(2)':>11} {'batched':>9} {'batched/seq':>12}")
    for n in args.devices:
        devices = list(range(n))
        seq = time_executor("sequential", alg, devices, args.rounds, 1, args.threads)
        seq2 = time_executor("sequential", alg, devices, args.rounds, 1, 2)
        proc = time_executor("process", alg, devices, args.rounds, 2, args.threads)
        bat = time_executor("batched", alg, devices, args.rounds, 1, args.batched_threads)
        print(f"{n:>8} {seq:>11.0f} {seq2:>9.0f} {proc:>11.0f} {bat:>9.0f} {bat / seq:>12.2f}")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        devices = list(range(max(args.devices)))
        tasks = [(d, alg.device_state(d), alg.downlink(d, 0), d) for d in devices]
        with make_executor("batched", threads=args.batched_threads) as ex:
            ex.run(alg.client(), tasks)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                ex.run(alg.client(), tasks)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
