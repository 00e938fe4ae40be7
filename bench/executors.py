"""Throughput of the executors on urban_50dev's model, measured in one run.

Local updates of ``--devices`` devices per round on Fashion-MNIST (or synthetic data when
it is not found), pathological 2-class split over 50 devices, ViT patch 7 / dim 64 /
depth 2 / heads 4 / mlp_ratio 2 on 28x28x1, 10 classes, for each of ``--algorithms``
(FedAvg and PFL-TPS by default; any registered algorithm, e.g. pfedhn, pfedhn_pc, fedtp),
each with its own default training parameters as urban_50dev runs them (1 epoch; batch 32
and Adam, pFedHN's inner SGD with momentum and batch 64). Prints samples/s of sequential
(1 and 2 threads), process (2 workers), batched (one process) and batched(Wx1) (2 worker
processes of 1 thread, each training a share of the round), and each batched column /
sequential; with ``--device cuda`` also batched(cuda), the batched executor training its
stacks on that GPU (one process, ``--batched-threads`` for its CPU side).

``--stack``: instead, the cost of one training step (forward, backward, SGD update; batch
32; 1 torch thread; CPU time) per device, of a stack of ``--stack-sizes`` devices
(``learning.execution.batched_vit``, the batched executor's ViT) against one device's model
trained alone (the sequential executor's ViT), interleaved, median of ``--repeats``.
Their ratio is what stacking gains per thread on the model step; a cost per device-step
that no longer falls with the stack size means no per-call overhead is left to remove
there, and on ``W`` cores that step then runs at most ``W`` times that ratio faster than one
device at a time on one core. (The executors' ratios differ by what they do besides the
model step: data indexing, optimizer, an algorithm's own per-step work.)

``--cpu``: instead, samples per CPU-second of the calling thread (``time.thread_time``) of
the sequential and batched executors, both on 1 torch thread (all their work runs on the
calling thread), interleaved, and their ratio: the per-thread efficiency, which other load
on the machine does not change the way it changes wall-clock rates.

This machine's timings drift by 10-20 % from one second to the next, so every executor
runs one warm-up round (pool start-up, first-call costs) and then ``--repeats`` timed
rounds, interleaved (a slow spell hits all of them alike): all but process(2), which runs
on its own afterwards (batched(Wx1)'s two workers are idle, blocked on their pipes, while
the others are timed). The median of each executor's repeats is printed.

Usage: python bench/executors.py [--devices 10 50] [--algorithms fedavg pfl_tps]
       [--max-train 300] [--repeats 3] [--threads 1] [--batched-threads 2] [--cpu] [--profile]
       [--device cuda]
       python bench/executors.py --stack [--stack-sizes 1 4 8 16 25] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any, Callable

import torch

from learning.algorithms import make_algorithm
from learning.data import DatasetNotFoundError, build_federated_data, load_dataset, make_synthetic
from learning.execution import make_executor

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


EXECUTORS = (  # column, executor name, workers, threads (None: --threads / --batched-threads)
    ("sequential", "sequential", 1, None),
    ("seq(T=2)", "sequential", 1, 2),
    ("process(2)", "process", 2, None),
    ("batched", "batched", 1, None),
    ("batched(Wx1)", "batched", 2, 1),
)
TARGET_DEVICES, TARGET_SPEEDUP = 50, 3.0  # the batched executor's per-round target
#: what each column of the throughput table is (printed above it).
LEGEND = ("sequential: 1 process, --threads; seq(T=2): 1 process, 2 threads; process(2): 2 processes x --threads; "
          "batched: 1 process, --batched-threads; batched(Wx1): batched, W=2 worker processes x 1 thread; "
          "batched/seq, Wx1/seq: batched and batched(Wx1) over sequential")


def round_samples_per_s(ex: Any, alg: Any, devices: list[int], round_idx: int,
                        clock: Callable[[], float] = time.perf_counter) -> float:
    """Samples per second of ``clock`` (wall by default) of one round of local updates of
    ``devices`` on executor ``ex`` (the downlinks are built before the clock starts)."""
    tasks = [(d, alg.device_state(d), alg.downlink(d, round_idx), 1000 * round_idx + d) for d in devices]
    start = clock()
    results = ex.run(alg.client(), tasks)
    return sum(int(r.metrics["samples_processed"]) for r in results) / (clock() - start)


CPU_COLUMNS = ("sequential", "batched")


def measure_cpu(alg: Any, devices: list[int], repeats: int) -> dict[str, float]:
    """Median samples per thread-CPU-second (``time.thread_time``) over ``repeats`` rounds of
    the sequential and batched executors, 1 torch thread each, interleaved."""
    execs = {c: make_executor(c, workers=1, threads=1) for c in CPU_COLUMNS}
    rates: dict[str, list[float]] = {c: [] for c in CPU_COLUMNS}
    for ex in execs.values():
        round_samples_per_s(ex, alg, devices, 0, time.thread_time)  # warm-up
    for r in range(1, repeats + 1):
        for column, ex in execs.items():
            rates[column].append(round_samples_per_s(ex, alg, devices, r, time.thread_time))
    return {c: statistics.median(v) for c, v in rates.items()}


def measure_stack(sizes: list[int], repeats: int, steps: int = 10, batch: int = 32) -> dict[str, float]:
    """Median CPU milliseconds per device-step: ``"alone"`` (one device's model) and each
    stack size (``stacked_vit_forward``); 1 torch thread, interleaved."""
    import torch.nn.functional as F

    from learning.execution.batched_vit import stacked_vit_forward
    from learning.models import build_model

    torch.set_num_threads(1)
    model = build_model(MODEL, (1, 28, 28), 10, seed=0)
    gen = torch.Generator().manual_seed(0)

    def alone() -> Callable[[], None]:
        x, y = torch.randn(batch, 1, 28, 28, generator=gen), torch.randint(0, 10, (batch,), generator=gen)
        params = list(model.parameters())

        def step() -> None:
            grads = torch.autograd.grad(F.cross_entropy(model(x), y), params)
            with torch.no_grad():
                torch._foreach_add_(params, grads, alpha=-1e-4)
        return step

    def stacked(m: int) -> Callable[[], None]:
        params = {n: p.detach().expand(m, *p.shape).clone().requires_grad_(True) for n, p in model.named_parameters()}
        x = torch.randn(m, batch, 1, 28, 28, generator=gen)
        y = torch.randint(0, 10, (m, batch), generator=gen)

        def step() -> None:
            logits = stacked_vit_forward(model, params, x)  # type: ignore[arg-type]
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(m, batch).mean(1)
            grads = torch.autograd.grad(loss.sum(), list(params.values()))
            with torch.no_grad():
                torch._foreach_add_(list(params.values()), grads, alpha=-1e-4)
        return step

    with torch.no_grad():  # both time the same function: the stack of one device is the model
        x = torch.randn(batch, 1, 28, 28, generator=gen)
        one = {n: p.detach().unsqueeze(0) for n, p in model.named_parameters()}
        stack_of_one = stacked_vit_forward(model, one, x.unsqueeze(0))[0]  # type: ignore[arg-type]
        gap = (stack_of_one - model(x)).abs().max().item()
        if gap > 1e-4:
            raise RuntimeError(f"stacked forward differs from the model's by {gap:.2e}")
    cases: dict[str, tuple[Callable[[], None], int]] = {"alone": (alone(), 1)}
    cases.update({str(m): (stacked(m), m) for m in sizes})
    times: dict[str, list[float]] = {c: [] for c in cases}
    for step, _ in cases.values():
        step()  # warm-up
    for _ in range(repeats):
        for case, (step, m) in cases.items():
            start = time.thread_time()
            for _ in range(steps):
                step()
            times[case].append((time.thread_time() - start) / (steps * m) * 1e3)
    return {c: statistics.median(v) for c, v in times.items()}


def columns(device: str) -> tuple[tuple[str, str, int, int | None, str], ...]:
    """``EXECUTORS`` with each entry's device (cpu), plus ``batched(<device>)`` for a GPU."""
    cols = tuple((*entry, "cpu") for entry in EXECUTORS)
    return cols + ((f"batched({device})", "batched", 1, None, device),) if device != "cpu" else cols


def measure(alg: Any, devices: list[int], repeats: int, threads: int, batched_threads: int,
            device: str = "cpu") -> dict[str, float]:
    """Median samples/s per executor column (``columns(device)``) over ``repeats`` timed
    rounds: the in-process executors interleaved, then the process pool on its own (its
    worker processes are never alive while the others are timed)."""
    cols = columns(device)
    rates: dict[str, list[float]] = {c: [] for c, *_ in cols}
    execs = {}
    for column, name, workers, t, dev in cols:
        if name != "process":
            execs[column] = make_executor(name, workers=workers, device=dev,
                                          threads=t or (batched_threads if name == "batched" else threads))
            round_samples_per_s(execs[column], alg, devices, 0)  # warm-up
    for r in range(1, repeats + 1):
        for column, ex in execs.items():
            rates[column].append(round_samples_per_s(ex, alg, devices, r))
    for ex in execs.values():
        ex.close()  # batched(Wx1)'s pool
    for column, name, workers, t, _ in cols:
        if name == "process":
            with make_executor(name, workers=workers, threads=t or threads) as ex:
                round_samples_per_s(ex, alg, devices, 0)  # pool start-up
                rates[column] = [round_samples_per_s(ex, alg, devices, r) for r in range(1, repeats + 1)]
    return {c: statistics.median(v) for c, v in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--algorithms", nargs="+", default=["fedavg", "pfl_tps"])
    parser.add_argument("--max-train", type=int, default=300, help="train samples per device (0: all)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per executor (median printed)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of sequential / each process worker")
    parser.add_argument("--batched-threads", type=int, default=2)
    parser.add_argument("--cpu", action="store_true",
                        help="per-thread CPU time (time.thread_time) of sequential vs batched, 1 thread each")
    parser.add_argument("--profile", action="store_true", help="torch.profiler table of one batched round")
    parser.add_argument("--device", default="cpu",
                        help="cuda or cuda:N: add a batched(<device>) column (the batched executor on that GPU)")
    parser.add_argument("--stack", action="store_true",
                        help="CPU ms per device-step of stacked ViT steps against one device alone (1 thread)")
    parser.add_argument("--stack-sizes", type=int, nargs="+", default=[1, 4, 8, 16, 25])
    args = parser.parse_args()
    if args.stack:
        if any(m < 1 for m in args.stack_sizes):
            parser.error(f"--stack-sizes: every size must be >= 1, got {args.stack_sizes}")
        ms = measure_stack(args.stack_sizes, args.repeats)
        print(f"torch={torch.__version__} 1 thread, batch 32, CPU ms per device-step (forward + backward + SGD), "
              f"median of {args.repeats} interleaved repeats")
        print(f"{'stack':>8} {'ms/device-step':>15} {'alone / stack':>14}")
        print(f"{'alone':>8} {ms['alone']:>15.2f} {1.0:>14.2f}")
        for m in args.stack_sizes:
            print(f"{m:>8} {ms[str(m)]:>15.2f} {ms['alone'] / ms[str(m)]:>14.2f}")
        best, cores = max(ms["alone"] / ms[str(m)] for m in args.stack_sizes), os.cpu_count() or 1
        print(f"stacking makes the model step at best {best:.2f}x cheaper per device; on this machine's {cores} "
              f"core(s) that step runs at most {cores * best:.2f}x faster than one device at a time on one core")
        return
    gpu = args.device != "cpu"
    if gpu:
        from learning.execution.batched import check_device

        try:
            check_device(args.device)
        except ValueError as err:
            parser.error(f"--device: {err}")
    fd, dname = load_data(args.max_train or None)
    if args.cpu:
        print(f"data={dname} train/device~{fd.num_train(0)} torch={torch.__version__} threads=1 "
              f"samples per thread-CPU-second, median of {args.repeats} interleaved rounds")
        print(f"{'algorithm':>10} {'devices':>8} " + " ".join(f"{c:>11}" for c in CPU_COLUMNS)
              + f" {'batched/seq':>12}")
        for name in args.algorithms:
            alg = make_algorithm(name, fd, MODEL, {}, seed=7)
            for n in args.devices:
                rates = measure_cpu(alg, list(range(n)), args.repeats)
                print(f"{name:>10} {n:>8} " + " ".join(f"{rates[c]:>11.0f}" for c in CPU_COLUMNS)
                      + f" {rates['batched'] / rates['sequential']:>12.2f}")
        return
    print(f"data={dname} train/device~{fd.num_train(0)} torch={torch.__version__} cores={torch.get_num_threads()} "
          f"median of {args.repeats} interleaved rounds")
    print(LEGEND + (f"; batched({args.device}): batched on {args.device}, --batched-threads" if gpu else ""))
    print(f"{'algorithm':>10} {'devices':>8} " + " ".join(f"{c:>12}" for c, *_ in columns(args.device))
          + f" {'batched/seq':>12} {'Wx1/seq':>12}" + (f" {'gpu/seq':>12}" if gpu else ""))
    verdicts = []
    for name in args.algorithms:
        alg = make_algorithm(name, fd, MODEL, {}, seed=7)
        for n in args.devices:
            rates = measure(alg, list(range(n)), args.repeats, args.threads, args.batched_threads, args.device)
            print(f"{name:>10} {n:>8} " + " ".join(f"{rates[c]:>12.0f}" for c, *_ in columns(args.device))
                  + f" {rates['batched'] / rates['sequential']:>12.2f}"
                  + f" {rates['batched(Wx1)'] / rates['sequential']:>12.2f}"
                  + (f" {rates[f'batched({args.device})'] / rates['sequential']:>12.2f}" if gpu else ""))
            if n == TARGET_DEVICES:
                best = max(rates["batched"], rates["batched(Wx1)"]) / rates["sequential"]
                verdicts.append(f"{name}: {best:.2f}x ({'met' if best >= TARGET_SPEEDUP else 'NOT met'})")
    if verdicts:
        print(f"target: the faster batched column >= {TARGET_SPEEDUP:g}x sequential at {TARGET_DEVICES} devices "
              f"per round (urban_50dev's data: --max-train 0): " + "; ".join(verdicts))
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        alg = make_algorithm(args.algorithms[0], fd, MODEL, {}, seed=7)
        devices = list(range(max(args.devices)))
        with make_executor("batched", threads=args.batched_threads) as ex:
            round_samples_per_s(ex, alg, devices, 0)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                round_samples_per_s(ex, alg, devices, 1)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
