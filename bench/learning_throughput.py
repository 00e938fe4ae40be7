"""Throughput of ``Client.local_update`` vs a bare PyTorch training loop (same model,
data, batch size and optimizer), measured in one run; prints samples/s and the ratio.

Usage: python bench/learning_throughput.py [--samples 2000] [--batch-size 32] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from learning.algorithms import make_algorithm
from learning.data import build_federated_data, make_synthetic
from learning.models import build_model


def bare_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, lr: float, seed: int) -> None:
    """The reference: shuffle, index, forward, backward, Adam step."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for idx in torch.randperm(x.shape[0], generator=gen).split(batch_size):
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=2000, help="training samples on the device")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = build_federated_data(make_synthetic(args.samples, 100, seed=0), 1, "iid", {}, seed=0)
    model_config = {"patch_size": 7, "dim": 64, "depth": 2, "heads": 4, "mlp_ratio": 2.0}
    params = {"optimizer": "adam", "lr": 1e-3, "batch_size": args.batch_size, "local_epochs": 1.0}
    alg = make_algorithm("fedavg", data, model_config, params, seed=0)
    client = alg.client()
    x, y = data.train(0)
    model = build_model(model_config, data.input_shape, data.num_classes, seed=0)
    n = x.shape[0]

    bare_s, ours_s = [], []
    bare_loop(model, x[:256], y[:256], args.batch_size, 1e-3, 0)  # warm-up
    client.local_update(0, None, alg.downlink(0, 0), seed=0)
    for r in range(args.repeats):  # interleaved so both see the same machine load
        t = time.perf_counter()
        bare_loop(model, x, y, args.batch_size, 1e-3, r)
        bare_s.append(time.perf_counter() - t)
        payload = alg.downlink(0, r)
        t = time.perf_counter()
        client.local_update(0, None, payload, seed=r)
        ours_s.append(time.perf_counter() - t)
    bare, ours = n / min(bare_s), n / min(ours_s)
    print(f"samples={n} batch={args.batch_size} threads={args.threads} (best of {args.repeats})")
    print(f"bare PyTorch loop      : {bare:10.1f} samples/s")
    print(f"Client.local_update    : {ours:10.1f} samples/s  (incl. load_state_dict + uplink copy)")
    print(f"ratio (target >= 0.95) : {ours / bare:10.3f}")


if __name__ == "__main__":
    main()
