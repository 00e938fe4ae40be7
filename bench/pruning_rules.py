"""PFL-TPS pruning rules side by side (learning core only, synthetic data, no engine).

Runs PFL-TPS with the hypernetwork off (threshold averaging only) for a few synchronous
rounds under DST's gradient without clamp (the default) and the former straight-through
gradient with clamp (``prune_gradient: ste, prune_clamp: true``), with and without the
regulariser, and prints per variant: the density after the last update, the time-averaged
density over every training step (what sets the compute cost), threshold resets, and the
mean per-device test and validation accuracy. A measurement, not a test.

Usage: python bench/pruning_rules.py [--rounds 6] [--seed 0]
"""

from __future__ import annotations

import argparse

import torch

from learning.algorithms import make_algorithm
from learning.data import build_federated_data, make_synthetic

MODEL = {"dim": 16, "depth": 2, "heads": 2}
VARIANTS = {
    "dst": {},
    "ste+clamp": {"prune_gradient": "ste", "prune_clamp": True},
    "dst, lambda=0": {"prune_lambda": 0.0},
    "ste+clamp, lambda=0": {"prune_gradient": "ste", "prune_clamp": True, "prune_lambda": 0.0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    fd = build_federated_data(make_synthetic(800, 400, num_classes=10, seed=args.seed), 8, "pathological",
                              {"classes_per_device": 2}, seed=args.seed, validation_fraction=0.1)
    print(f"{'variant':22s} {'final density':>13s} {'time-avg density':>16s} {'resets':>6s} {'test':>6s} {'val':>6s}")
    for name, extra in VARIANTS.items():
        params = {"lr": 3e-3, "local_epochs": 2.0, "hypernetwork_enabled": False, **extra}
        alg = make_algorithm("pfl_tps", fd, MODEL, params, seed=args.seed)
        client = alg.client()
        final = mean_sum = resets = 0.0
        for r in range(args.rounds):
            res = [client.local_update(d, alg.device_state(d), alg.downlink(d, r), 1000 * r + d) for d in range(8)]
            for x in res:
                alg.commit(x)
            alg.aggregate({x.device: (x.uplink, x.samples) for x in res}, r)
            final = sum(x.metrics["ffl_density"] for x in res) / len(res)
            mean_sum += sum(x.metrics["ffl_density_mean"] for x in res) / len(res)
            resets += sum(x.metrics["threshold_resets"] for x in res)
        ev = alg.evaluate()
        print(f"{name:22s} {final:13.3f} {mean_sum / args.rounds:16.3f} {resets:6.0f} "
              f"{ev.mean_accuracy:6.3f} {ev.val_accuracy:6.3f}")


if __name__ == "__main__":
    main()
