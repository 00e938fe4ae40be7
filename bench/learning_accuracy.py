"""Accuracy of the learning core alone (plain synchronous FL loop, no engine).

Three experiments on Fashion-MNIST (or the synthetic set with ``--dataset synthetic``):

1. ``fedavg-iid``  : FedAvg, IID partition -> global accuracy (expect > 0.80).
2. ``local-path2`` : local-only, pathological 2 classes/device -> mean per-device accuracy
                     (expect > 0.85).
3. ``fedavg-path2``: FedAvg, pathological 2 -> global and mean per-device accuracy.

Each round selects ``--per-round`` devices uniformly without replacement (numpy
generator from ``--seed``), runs their local updates through an executor, commits and
aggregates. Usage: python bench/learning_accuracy.py [--rounds 50] [--devices 50] ...
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from learning.algorithms import make_algorithm
from learning.data import build_federated_data, load_dataset
from learning.execution import make_executor

EXPERIMENTS = {
    "fedavg-iid": ("fedavg", "iid", {}),
    "local-path2": ("local", "pathological", {"classes_per_device": 2}),
    "fedavg-path2": ("fedavg", "pathological", {"classes_per_device": 2}),
}


def run_experiment(name: str, dataset: Any, args: argparse.Namespace, executor: Any) -> dict[str, Any]:
    """Run one experiment; returns its final metrics and wall time."""
    algo, partition, pparams = EXPERIMENTS[name]
    data = build_federated_data(dataset, args.devices, partition, pparams, seed=args.seed,
                                max_train_per_device=args.max_train_per_device)
    model_config = {"patch_size": args.patch_size, "dim": args.dim, "depth": args.depth,
                    "heads": args.heads, "mlp_ratio": args.mlp_ratio}
    params = {"lr": args.lr, "optimizer": args.optimizer, "local_epochs": args.local_epochs,
              "batch_size": args.batch_size}
    alg = make_algorithm(algo, data, model_config, params, seed=args.seed)
    client = alg.client()
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    for r in range(args.rounds):
        chosen = sorted(rng.choice(data.n_devices, size=args.per_round, replace=False).tolist())
        tasks = [(d, alg.device_state(d), alg.downlink(d, r), int(rng.integers(2**62))) for d in chosen]
        results = executor.run(client, tasks)
        for res in results:
            alg.commit(res)
        alg.aggregate({res.device: (res.uplink, res.samples) for res in results if res.uplink is not None}, r)
        if args.eval_every and (r + 1) % args.eval_every == 0 and r + 1 < args.rounds:
            ev = alg.evaluate()
            print(f"  {name} round {r + 1}: mean per-device {ev.mean_accuracy:.4f} global {ev.global_accuracy}",
                  flush=True)
    ev = alg.evaluate()
    return {"experiment": name, "mean_device_acc": ev.mean_accuracy, "global_acc": ev.global_accuracy,
            "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS), choices=list(EXPERIMENTS))
    ap.add_argument("--dataset", default="fashion_mnist", choices=["fashion_mnist", "synthetic"])
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--per-round", type=int, default=10)
    ap.add_argument("--max-train-per-device", type=int, default=None)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--optimizer", default="adam", choices=["adam", "sgd"])
    ap.add_argument("--local-epochs", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--patch-size", type=int, default=7)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--mlp-ratio", type=float, default=2.0)
    ap.add_argument("--executor", default="sequential", choices=["sequential", "process"])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eval-every", type=int, default=10, help="0: only at the end")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    dataset = load_dataset(args.dataset)
    rows = []
    with make_executor(args.executor, workers=args.workers, threads=args.threads) as executor:
        for name in args.experiments:
            rows.append(run_experiment(name, dataset, args, executor))
            print(f"done {name}: {rows[-1]}", flush=True)
    print(f"\n{args.dataset}, {args.devices} devices, {args.per_round}/round, {args.rounds} rounds, "
          f"ViT p{args.patch_size} d{args.dim} x{args.depth} h{args.heads} r{args.mlp_ratio}, "
          f"{args.optimizer} lr {args.lr}, {args.local_epochs} local epochs, batch {args.batch_size}")
    print(f"{'experiment':<14} {'mean per-device acc':>20} {'global acc':>11} {'time [s]':>9}")
    for row in rows:
        g = "-" if row["global_acc"] is None else f"{row['global_acc']:.4f}"
        print(f"{row['experiment']:<14} {row['mean_device_acc']:>20.4f} {g:>11} {row['seconds']:>9.1f}")


if __name__ == "__main__":
    main()
