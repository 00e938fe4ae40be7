"""cosim against a bare PyTorch loop doing the same federated training with no network.

Workload: Fashion-MNIST, pathological split with 2 classes per device, 50
devices holding 200 training samples each; the tiny ViT (patch 7, dim 64, depth 2,
heads 4, MLP ratio 2); FedAvg with SGD (lr 0.05, momentum 0.9), batch 32, one local
epoch; 10 of 50 devices per round, 20 rounds; evaluation only after the last round.

Three programs, each a separate process started from nothing (so imports, dataset parsing
and first-call warm-up count, as they do for a user):

* ``bare``: the loop in this file (``--child bare``): it parses the ``.gz`` files with
  numpy, builds its own ViT (the same architecture as ``learning.models.vit``, written
  here), trains the selected devices one after the other on one thread and averages.
* ``sequential``: ``python -m cosim run scenarios/urban_50dev.yaml`` with the workload
  above set on the command line, ``execution: sequential`` (1 thread).
* ``batched``: the same with ``execution: batched`` (``--batched-threads``, default 2;
  ``--batched-device cuda`` trains its stacks on a GPU, where the CPU roofline below is
  not printed).

The programs are run interleaved (bare, sequential, batched, bare, ...) ``--repeats``
times; each prints a line at the end of every round, which this script timestamps as it
arrives. Printed per program (median over repeats): whole-run wall time [s], time from
process start to the end of round 1 [s], steady-state seconds per round (rounds 2 to
N-1: the last one also evaluates), and each one's ratio to the bare loop.

This machine is shared and its timings drift by 10-20 % from one minute to the next;
interleaving spreads slow spells over all programs, but read the ratios with that in mind.
Besides the ratio of the medians, each program's wall is divided by the bare loop's wall of
the same repeat (run back to back, so under the same conditions) and the median of those
paired ratios is printed too.

Roofline: the workload's training FLOPs per round come from ``learning.flops`` (analytic,
forward + backward); the machine's dense float32 matmul rate is measured here (512 x 512
``torch.mm``, 1 thread and ``--batched-threads`` threads). Printed: each program's achieved
GFLOP/s in its steady rounds, as a share of that peak, and the fastest whole run the batched
executor could reach if every round ran *at* the matmul peak (its measured start-up, i.e.
round 1 less one steady round, plus every round's FLOPs at peak) -- an upper bound on its
speed-up over the bare loop on this machine.

Usage: python bench/vs_bare_loop.py [--repeats 3] [--rounds 20] [--batched-threads 2]
       [--programs bare sequential batched] [--batched-device cpu]
"""

from __future__ import annotations

import argparse
import gzip
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FMNIST = Path(os.environ.get("COSIM_FMNIST_DIR", "/usr/share/datasets/fashion-mnist"))
DEVICES, PER_ROUND, TRAIN_PER_DEVICE, CLASSES_PER_DEVICE = 50, 10, 200, 2
LR, MOMENTUM, BATCH, SEED = 0.05, 0.9, 32, 7
MODEL = {"patch_size": 7, "dim": 64, "depth": 2, "heads": 4, "mlp_ratio": 2.0}
ROUND_LINE = re.compile(r"^round (\d+)/(\d+)")


# --------------------------------------------------------------------------- the bare loop
def bare_loop(rounds: int) -> None:
    """The workload as a user would write it in plain PyTorch (prints ``round k/N``)."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(1)

    def idx(name: str) -> np.ndarray:
        raw = gzip.open(FMNIST / f"{name}.gz").read()
        ndim = raw[3]
        shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
        return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)

    def images(a: np.ndarray) -> torch.Tensor:
        return ((torch.from_numpy(a.astype(np.float32) / 255.0) - 0.2860) / 0.3530).unsqueeze(1)

    train_x, train_y = idx("train-images-idx3-ubyte"), idx("train-labels-idx1-ubyte").astype(np.int64)
    test_x, test_y = idx("t10k-images-idx3-ubyte"), idx("t10k-labels-idx1-ubyte").astype(np.int64)
    rng = np.random.default_rng(SEED)
    # Pathological split: sort by label, cut into DEVICES*2 shards, two shards per device.
    shards = np.array_split(np.argsort(train_y, kind="stable"), DEVICES * CLASSES_PER_DEVICE)
    order = rng.permutation(len(shards))
    dev_idx = [rng.choice(np.concatenate([shards[order[2 * d]], shards[order[2 * d + 1]]]), TRAIN_PER_DEVICE,
                          replace=False) for d in range(DEVICES)]
    xs = [images(train_x[i]) for i in dev_idx]
    ys = [torch.from_numpy(train_y[i]) for i in dev_idx]
    # Evaluated at the end as cosim's FedAvg does: the global test set and one test split per
    # device (test/train ratio of the dataset: 1/6 of its 200 samples, from its classes).
    tx, ty = images(test_x), torch.from_numpy(test_y)
    by_class = [np.flatnonzero(test_y == c) for c in range(10)]
    dev_test = [rng.choice(np.concatenate([by_class[c] for c in np.unique(train_y[i])]), TRAIN_PER_DEVICE // 6,
                           replace=False) for i in dev_idx]

    class Attention(nn.Module):
        def __init__(self, dim: int, heads: int) -> None:
            super().__init__()
            self.heads, self.hd = heads, dim // heads
            self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, t, d = x.shape
            q, k, v = self.qkv(x).view(b, t, 3, self.heads, self.hd).permute(2, 0, 3, 1, 4)
            a = (q @ k.transpose(-2, -1) / math.sqrt(self.hd)).softmax(-1)
            return self.proj((a @ v).transpose(1, 2).reshape(b, t, d))

    class Block(nn.Module):
        def __init__(self, dim: int, heads: int, hidden: int) -> None:
            super().__init__()
            self.n1, self.att, self.n2 = nn.LayerNorm(dim), Attention(dim, heads), nn.LayerNorm(dim)
            self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x + self.att(self.n1(x))
            return x + self.mlp(self.n2(x))

    class ViT(nn.Module):
        def __init__(self, patch_size: int, dim: int, depth: int, heads: int, mlp_ratio: float) -> None:
            super().__init__()
            p = patch_size
            self.p, n = p, (28 // p) ** 2
            self.embed = nn.Linear(p * p, dim)
            self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
            self.pos = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
            self.blocks = nn.Sequential(*[Block(dim, heads, int(dim * mlp_ratio)) for _ in range(depth)])
            self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, p = x.shape[0], self.p
            x = x.reshape(b, 28 // p, p, 28 // p, p).permute(0, 1, 3, 2, 4).reshape(b, -1, p * p)
            z = torch.cat([self.cls.expand(b, -1, -1), self.embed(x)], 1) + self.pos
            return self.head(self.norm(self.blocks(z)[:, 0]))

    torch.manual_seed(SEED)
    model = ViT(**MODEL)
    global_state = {k: v.clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(SEED)
    for r in range(rounds):
        selected = rng.choice(DEVICES, PER_ROUND, replace=False)
        sums = {k: torch.zeros_like(v) for k, v in global_state.items()}
        for d in selected:
            model.load_state_dict(global_state)
            opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
            model.train()
            for b in torch.randperm(TRAIN_PER_DEVICE, generator=gen).split(BATCH):
                loss = F.cross_entropy(model(xs[d][b]), ys[d][b])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            for k, v in model.state_dict().items():  # equal sample counts: a plain mean
                sums[k] += v
        global_state = {k: v / PER_ROUND for k, v in sums.items()}
        if r + 1 == rounds:
            model.load_state_dict(global_state)
            model.eval()
            with torch.no_grad():
                acc = sum(int((model(tx[i:i + 1024]).argmax(1) == ty[i:i + 1024]).sum())
                          for i in range(0, len(ty), 1024)) / len(ty)
                for t in dev_test:
                    (model(tx[t]).argmax(1) == ty[t]).float().mean()
            print(f"round {r + 1}/{rounds}  acc {acc:.3f}", flush=True)
        else:
            print(f"round {r + 1}/{rounds}", flush=True)


# --------------------------------------------------------------------------- the cosim runs
def cosim_command(executor: str, threads: int, rounds: int, out: Path, device: str = "cpu") -> list[str]:
    """``python -m cosim run`` of urban_50dev with the workload set on the command line."""
    algorithm = (f"{{name: fedavg, params: {{optimizer: sgd, lr: {LR}, momentum: {MOMENTUM}, "
                 f"batch_size: {BATCH}, local_epochs: 1}}}}")
    sets = {"learning.algorithm": algorithm, "learning.max_train_per_device": TRAIN_PER_DEVICE,
            "learning.eval_every": rounds, "learning.dataset.path": str(FMNIST), "fl.rounds": rounds,
            "fl.devices_per_round": PER_ROUND, "devices.count": DEVICES,
            "execution": f"{{executor: {executor}, workers: 1, threads: {threads}, device: {device}}}"}
    cmd = [sys.executable, "-m", "cosim", "run", str(ROOT / "scenarios" / "urban_50dev.yaml"), "--out", str(out)]
    for key, value in sets.items():
        cmd += ["--set", f"{key}={value}"]
    return cmd


def timed_run(cmd: list[str], rounds: int) -> dict[str, float]:
    """Run ``cmd``; return whole-run wall, time to the end of round 1 and steady s/round [s]."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    ends: dict[int, float] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        match = ROUND_LINE.match(line)
        if match:
            ends[int(match.group(1))] = time.perf_counter() - start
    err = proc.stderr.read() if proc.stderr is not None else ""
    if proc.wait() != 0 or len(ends) != rounds:
        raise RuntimeError(f"{' '.join(cmd[:5])} failed (exit {proc.returncode}, {len(ends)} rounds): {err[-2000:]}")
    wall = time.perf_counter() - start
    steady = (ends[rounds - 1] - ends[1]) / (rounds - 2) if rounds > 2 else math.nan
    return {"wall": wall, "round1": ends[1], "steady": steady}


def matmul_peak_gflops(threads: int, seconds: float = 1.0) -> float:
    """Dense float32 ``torch.mm`` rate of this machine [GFLOP/s] with ``threads`` threads (512 x 512)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(512, 512), torch.randn(512, 512)
        for _ in range(5):
            a @ b
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            a @ b
            reps += 1
        return 2 * 512**3 * reps / (time.perf_counter() - start) / 1e9
    finally:
        torch.set_num_threads(before)


def training_flops_per_round() -> float:
    """Training FLOPs of one round of the workload (analytic, forward + backward) [FLOP]."""
    sys.path.insert(0, str(ROOT))
    from learning.flops import vit_flops_per_sample

    return float(vit_flops_per_sample(MODEL, (1, 28, 28), 10)) * TRAIN_PER_DEVICE * PER_ROUND


def print_roofline(med: dict[str, dict[str, float]], base_wall: float | None, rounds: int, batched_threads: int) -> None:
    """Achieved GFLOP/s per program, share of the matmul peak, and the batched executor's best case."""
    flops = training_flops_per_round()
    peak = {1: matmul_peak_gflops(1), batched_threads: matmul_peak_gflops(batched_threads)}
    print(f"\nroofline: {flops / 1e9:.2f} GFLOP of training per round; float32 matmul peak "
          + ", ".join(f"{g:.1f} GFLOP/s with {t} thread{'s' if t > 1 else ''}" for t, g in peak.items()))
    for p, m in med.items():
        threads = batched_threads if p == "batched" else 1
        rate = flops / m["steady"] / 1e9
        print(f"  {p}: {rate:.1f} GFLOP/s in steady rounds = {100 * rate / peak[threads]:.0f} % of the "
              f"{threads}-thread peak")
    if "batched" in med and base_wall:
        m = med["batched"]
        start_up = max(m["round1"] - m["steady"], 0.0)
        best = start_up + rounds * flops / (peak[batched_threads] * 1e9)
        budget = base_wall / 3 - start_up  # seconds left for the rounds within a 3x whole run
        need = (f"{100 * rounds * flops / 1e9 / budget / peak[batched_threads]:.0f} % of the peak in every round"
                if budget > 0 else "less start-up than the batched run's own (its start-up alone exceeds it)")
        print(f"  batched at the matmul peak every round: wall >= {best:.2f} s (start-up {start_up:.2f} s + "
              f"{rounds} x {flops / (peak[batched_threads] * 1e9):.3f} s) = at most {base_wall / best:.2f}x the bare "
              f"loop; {base_wall / 3:.2f} s (3x) needs {need}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--batched-threads", type=int, default=2)
    parser.add_argument("--batched-device", default="cpu",
                        help="where the batched program trains: cpu (the targets' setting), cuda or cuda:N")
    parser.add_argument("--programs", nargs="+", default=["bare", "sequential", "batched"],
                        choices=["bare", "sequential", "batched"])
    parser.add_argument("--child", choices=["bare"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "bare":
        bare_loop(args.rounds)
        return
    if not (FMNIST / "train-images-idx3-ubyte.gz").is_file():
        sys.exit(f"Fashion-MNIST not found in {FMNIST} (apt-get install -y dataset-fashion-mnist)")
    results: dict[str, list[dict[str, float]]] = {p: [] for p in args.programs}
    with tempfile.TemporaryDirectory(prefix="vs_bare_") as tmp:
        for rep in range(args.repeats):
            for prog in args.programs:
                if prog == "bare":
                    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "bare", "--rounds", str(args.rounds)]
                else:
                    threads = args.batched_threads if prog == "batched" else 1
                    device = args.batched_device if prog == "batched" else "cpu"
                    cmd = cosim_command(prog, threads, args.rounds, Path(tmp) / f"{prog}_{rep}", device)
                results[prog].append(timed_run(cmd, args.rounds))
                r = results[prog][-1]
                print(f"  [{rep + 1}/{args.repeats}] {prog:<10} wall {r['wall']:6.2f} s  round 1 at {r['round1']:5.2f} s"
                      f"  steady {r['steady']:.3f} s/round", flush=True)
    med = {p: {k: statistics.median(r[k] for r in rs) for k in ("wall", "round1", "steady")} for p, rs in results.items()}
    paired = ({p: statistics.median(r["wall"] / b["wall"] for r, b in zip(rs, results["bare"])) for p, rs in results.items()}
              if "bare" in results else {})
    labels = {"bare": "bare PyTorch loop, 1 thread", "sequential": "cosim sequential, 1 thread",
              "batched": f"cosim batched, {args.batched_threads} threads"
                         + (f", on {args.batched_device}" if args.batched_device != "cpu" else "")}
    print(f"\nmedian of {args.repeats}, {args.rounds} rounds x {PER_ROUND} of {DEVICES} devices x "
          f"{TRAIN_PER_DEVICE} samples (Fashion-MNIST, FedAvg SGD, tiny ViT)")
    print("| program | wall [s] | end of round 1 [s] | steady [s/round] | wall / bare | paired wall / bare "
          "| round 1 - bare [s] |")
    print("|---|---|---|---|---|---|---|")
    base = med.get("bare")
    for p, m in med.items():
        ratio = f"{m['wall'] / base['wall']:.2f}" if base else "-"
        pair = f"{paired[p]:.2f}" if base else "-"
        delta = f"{m['round1'] - base['round1']:+.2f}" if base else "-"
        print(f"| {labels[p]} | {m['wall']:.2f} | {m['round1']:.2f} | {m['steady']:.3f} | {ratio} | {pair} | {delta} |")
    if base:
        print("\ntargets: cosim round 1 <= bare + 1 s; sequential wall <= 1.05x bare; "
              "batched wall <= bare / 3")
        for p, m in med.items():
            if p == "bare":
                continue
            speed = base["wall"] / m["wall"]
            print(f"  {p}: round 1 {m['round1'] - base['round1']:+.2f} s vs bare "
                  f"({'met' if m['round1'] <= base['round1'] + 1 else 'NOT met'}); wall {m['wall'] / base['wall']:.2f}x "
                  f"bare = {speed:.2f}x faster"
                  + (f" ({'met' if speed >= 3 else 'NOT met'}: >= 3x)" if p == "batched" else
                     f" ({'met' if m['wall'] <= 1.05 * base['wall'] else 'NOT met'}: <= 1.05x)")
                  + f"; paired {paired[p]:.2f}x"
                  + (f" ({'met' if paired[p] <= 1 / 3 else 'NOT met'})" if p == "batched" else
                     f" ({'met' if paired[p] <= 1.05 else 'NOT met'})"))
    if args.batched_device == "cpu":  # the roofline is the CPU's matmul peak
        print_roofline(med, base["wall"] if base else None, args.rounds, args.batched_threads)


if __name__ == "__main__":
    main()
