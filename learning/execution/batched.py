"""Batched executor: the local updates of many devices of one round at once (``torch.func``).

*What* runs stays the algorithm's (its ``Client``); this module only changes *how*. As in
FedJAX's ``for_each_client``, the per-device parameters are stacked along a leading
device axis and one training step of every device is a single ``vmap`` of
``functional_call`` over that axis (for the ViT, a hand-batched forward with the same
value, ``learning.execution.batched_vit``), followed by one backward pass (the devices' losses are
summed; their parameters are disjoint, so each device gets exactly its own gradient) and a
functional Adam / SGD step on the stacked tensors.

An algorithm opts in through a ``BatchedPlan`` (``learning.execution.plan``: what its
local update computes, written functionally): ``BATCHED_PLANS`` maps a client class (exact
type, so a subclass with a different update, e.g. FedProx, is never batched by mistake) to
its plan; a client may also provide ``batched_plan() -> BatchedPlan | None``. Plans exist for
FedAvg and local-only (``PlainModelPlan``, here, on ``learning.execution.plain_plan``), and
beside their algorithms (this module never imports them): PFL-TPS
(``learning.algorithms.pfl_tps.batched``), pFedHN and pFedHN-PC
(``learning.algorithms.pfedhn_batched``) and FedTP (``learning.algorithms.fedtp_batched``).
FedAvg-FT has none: its update trains twice (fine-tune, then the round's training), not the
one training loop a plan describes. Tasks whose client has no plan, whose model uses dropout
(per-device dropout streams cannot be reproduced under ``vmap``) or whose device has no
training data run sequentially in this process, so results never depend on the executor.

Worker processes (``workers > 1``): the round's tasks are split into ``workers`` shares
balanced by training samples (``assign_shares``: greedy, longest first, so the devices with
the most steps, the long poles, are spread first), each share is packed once
(``learning.execution.transport``: tensor memory through an in-memory file) and trained
in a ``ProcessExecutor`` pool (forkserver, client sent once per pool, SIGINT ignored in the
workers) by ``BatchedExecutor(threads=threads).run`` there, and the results come back in
task order. Every task goes to the pool, the ones that cannot be batched too (they run
sequentially in their worker, as they would here), so a client without a plan still uses
every worker. ``workers == 1`` trains everything in this process (the path above).

Devices (``device``): the stacks train on the CPU or on a CUDA GPU. Only the stacked
tensors and the arithmetic move: each plan's ``prepare`` and ``finish`` run on the CPU, and
the batch order, padding and counts are decided there (the index and mask are copied to the
GPU once per stack), so a GPU changes results only by float rounding (summation order inside
its kernels), within the same tolerance as batched against sequential.

Ragged data: every device keeps its own shuffled batches (same generator as
``train_local``). Devices are sorted by their number of steps, so at step ``k`` the devices
still training are a prefix of the stack; only that prefix is computed and updated and a
finished device's parameters and optimizer state are not touched (exact no-op). Batches of
different sizes are padded with a weight-0 copy of a real sample; the loss is the mean over
the real samples only, so padding changes neither loss nor gradient.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from learning.algorithms.base import Client, LocalResult
from learning.algorithms.fedavg import FedAvgClient
from learning.algorithms.local import LocalClient
from learning.algorithms.training import TrainParams, _batch_indices
from learning.execution.executors import ProcessExecutor, worker_client
from learning.execution.plain_plan import PlainPlan
from learning.execution.plan import BatchedPlan, DeviceInit, DeviceStats, Task
from learning.execution.transport import pack, unpack
from learning.optim import adam_step_, sgd_step_

__all__ = ["adam_step_", "sgd_step_", "StackedOptimizer", "DeviceInit", "DeviceStats", "BatchedPlan",
           "PlainPlan", "PlainModelPlan", "BATCHED_PLANS", "batched_plan", "BatchedExecutor", "Task",
           "assign_shares", "check_device", "default_max_devices", "MAX_DEVICES_CPU",
           "MAX_DEVICES_GPU"]


# --------------------------------------------------------------------------- optimizers
class StackedOptimizer:
    """Adam or SGD over stacked per-device tensors (device axis first).

    ``step(k, m, grads)`` updates the first ``m`` devices (the prefix still training) with
    their ``k``-th step (1-based); state rows of the other devices are left untouched.

    Args:
        params: name -> stacked tensor (D, ...), updated in place.
        hyper: name -> (lr, weight_decay) of that tensor's parameter group.
        hp: the common training hyper-parameters (optimizer kind, momentum).
    """

    def __init__(self, params: dict[str, torch.Tensor], hyper: dict[str, tuple[float, float]],
                 hp: TrainParams) -> None:
        self.params, self.hyper, self.kind, self.momentum = params, hyper, hp.optimizer, hp.momentum
        if self.kind == "adam":
            self.exp_avg = {n: torch.zeros_like(p) for n, p in params.items()}
            self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in params.items()}
        self.bufs: dict[str, torch.Tensor] = {}

    def step(self, k: int, m: int, grads: dict[str, torch.Tensor]) -> None:
        """Apply step ``k`` to devices ``[0, m)`` with ``grads[name]`` of shape (m, ...)."""
        for name, grad in grads.items():
            lr, wd = self.hyper[name]
            param = self.params[name][:m]
            if self.kind == "adam":
                adam_step_(param, grad, self.exp_avg[name][:m], self.exp_avg_sq[name][:m], k, lr, wd)
            else:
                buf = self.bufs[name][:m] if k > 1 and self.momentum != 0 else None
                new = sgd_step_(param, grad, buf, lr, self.momentum, wd)
                if k == 1 and new is not None:  # every device trains on step 1: buffer rows for all
                    self.bufs[name] = new


class PlainModelPlan(PlainPlan):
    """FedAvg (``mode="fedavg"``: start from the downlinked model, upload it) or local-only
    (``mode="local"``: start from and keep the device's own model); plain cross-entropy."""

    def __init__(self, client: Client, mode: str) -> None:
        if mode not in ("fedavg", "local"):
            raise ValueError(f"unknown plain plan mode {mode!r}; allowed: ['fedavg', 'local']")
        super().__init__(client)
        self.mode = mode

    def start(self, task: Task) -> dict[str, torch.Tensor]:
        device, state, payload, _ = task
        if self.mode == "fedavg" and payload is None:
            raise ValueError(f"fedavg device {device} needs a downlink payload")
        if self.mode == "local" and state is None:
            raise ValueError(f"local device {device} needs its state (a state_dict)")
        return payload.tensors if self.mode == "fedavg" else state  # type: ignore[union-attr]

    def finish(self, task: Task, init: DeviceInit, final: dict[str, torch.Tensor], stats: DeviceStats) -> LocalResult:
        state_dict = self.trained(init, final)
        device, _, payload, _ = task
        if self.mode == "fedavg":
            uplink = self.client.reply(state_dict, payload)  # uplink_encoding, the downlink's round
            return LocalResult(int(device), None, uplink, self.flops(stats), int(init.y.shape[0]), stats.metrics())
        return LocalResult(int(device), state_dict, None, self.flops(stats), int(init.y.shape[0]), stats.metrics())


#: client class (exact type) -> plan factory.
BATCHED_PLANS: dict[type, Callable[[Client], BatchedPlan]] = {
    FedAvgClient: lambda c: PlainModelPlan(c, "fedavg"),
    LocalClient: lambda c: PlainModelPlan(c, "local"),
}


def batched_plan(client: Client) -> BatchedPlan | None:
    """The client's batched plan, or None when its updates must run sequentially."""
    if hasattr(client, "batched_plan"):
        plan = client.batched_plan()
    else:
        factory = BATCHED_PLANS.get(type(client))
        plan = factory(client) if factory is not None else None
    return plan if plan is not None and plan.supported() else None


# --------------------------------------------------------------------------- training loop
def train_batched(plan: BatchedPlan, tasks: Sequence[Task], inits: Sequence[DeviceInit],
                  device: torch.device | str = "cpu") -> list[dict[str, Any]]:
    """Train every prepared device at once; returns, in task order, ``{"final": name ->
    tensor, "stats": DeviceStats}``. Every device must have at least one training sample.

    ``device``: where the stacks train (``cpu``, ``cuda``, ``cuda:N``); the prepared tensors,
    the batch index and the padding mask are moved there once, the final tensors and the
    statistics come back to the CPU. Batch order, padding and counts are decided on the CPU."""
    hp, dev = plan.hp, torch.device(device)
    batches = [_batch_indices(int(i.y.shape[0]), hp.local_epochs, hp.batch_size,
                              torch.Generator().manual_seed(int(t[3]))) for t, i in zip(tasks, inits)]
    order = sorted(range(len(tasks)), key=lambda j: -len(batches[j]))  # stable: longest first
    n_steps = [len(batches[j]) for j in order]
    d_all, s_max, bsz = len(order), n_steps[0], hp.batch_size
    params = {n: torch.stack([inits[j].params[n] for j in order]).to(dev) for n in inits[0].params}
    consts = {n: torch.stack([inits[j].consts[n] for j in order]).to(dev) for n in inits[0].consts}
    offsets, x_parts, y_parts, start = [], [], [], 0
    for j in order:
        offsets.append(start)
        x_parts.append(inits[j].x)
        y_parts.append(inits[j].y)
        start += int(inits[j].y.shape[0])
    x_cat, y_cat = torch.cat(x_parts).to(dev), torch.cat(y_parts).to(dev)
    index = torch.zeros(s_max, d_all, bsz, dtype=torch.int64)
    counts = torch.zeros(s_max, d_all, dtype=torch.int64)
    for pos, j in enumerate(order):
        index[:, pos, :] = offsets[pos]  # padding: a real sample of the same device, weight 0
        for k, idx in enumerate(batches[j]):
            index[k, pos, : idx.shape[0]] = idx + offsets[pos]
            counts[k, pos] = idx.shape[0]
    mask = (torch.arange(bsz).expand(s_max, d_all, bsz) < counts.unsqueeze(-1)).to(dev)
    index, counts_dev = index.to(dev), counts.to(dev)
    opt = StackedOptimizer(params, {n: plan.hyper(n) for n in params}, hp)
    loss_sum = torch.zeros(d_all, dtype=torch.float64, device=dev)
    correct = torch.zeros(d_all, dtype=torch.int64, device=dev)
    flops = torch.zeros(d_all, dtype=torch.int64)
    resets = torch.zeros(d_all, dtype=torch.int64, device=dev)
    density_sum: list[float] | None = [0.0] * d_all
    with_extra = plan.has_extra_loss
    forward = plan.forward_stacked if plan.stacked else torch.func.vmap(plan.forward, randomness="same")
    extra = torch.func.vmap(plan.extra_loss) if with_extra else None
    for k in range(s_max):
        m = sum(1 for s in n_steps if s > k)  # devices still training: a prefix of the stack
        cnt, cnt_dev = counts[k, :m], counts_dev[k, :m]
        width = int(cnt.max())
        idx, msk = index[k, :m, :width], mask[k, :m, :width]
        xb, yb = x_cat[idx], y_cat[idx]
        if plan.counts_step_flops:
            fps = plan.step_flops(params, m)
            flops[:m] += cnt * torch.tensor(fps, dtype=torch.int64)
        dens = plan.step_density(params, m) if density_sum is not None else None
        if dens is None:
            density_sum = None
        else:
            for pos in range(m):
                density_sum[pos] += dens[pos]  # type: ignore[index]
        sub = {n: p[:m].detach().requires_grad_(True) for n, p in params.items()}
        csub = {n: c[:m] for n, c in consts.items()}
        with torch.enable_grad():
            logits = forward(sub, csub, xb)  # (m, width, classes)
            ce = F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="none").view(m, width)
            loss = (ce * msk).sum(dim=1) / cnt_dev
            total = loss + extra(sub, csub) if extra is not None else loss
            grads = torch.autograd.grad(total.sum(), list(sub.values()))
        opt.step(k + 1, m, dict(zip(sub, grads)))
        reset = plan.post_step(params, m)
        if reset is not None:
            resets[:m] += reset
        with torch.no_grad():
            loss_sum[:m] += loss.detach() * cnt_dev.to(torch.float32)
            correct[:m] += ((logits.argmax(dim=-1) == yb) & msk).sum(dim=1)
    if dev.type != "cpu":
        params = {n: p.cpu() for n, p in params.items()}
        loss_sum, correct, resets = loss_sum.cpu(), correct.cpu(), resets.cpu()
    out: list[dict[str, Any]] = [{} for _ in tasks]
    for pos, j in enumerate(order):
        processed = int(counts[:, pos].sum())
        stats = DeviceStats(processed, float(loss_sum[pos]) / processed, float(correct[pos]) / processed,
                            int(flops[pos]) if plan.counts_step_flops else None, int(resets[pos]),
                            density_sum[pos] / n_steps[pos] if density_sum is not None else None)
        out[j] = {"final": {n: p[pos].clone() for n, p in params.items()}, "stats": stats}
    return out


def assign_shares(weights: Sequence[int], n_shares: int) -> list[list[int]]:
    """Split tasks ``0..len(weights)-1`` into at most ``n_shares`` non-empty shares of near-equal
    total weight (training samples): heaviest first, each to the lightest share so far (ties:
    lowest task index, lowest share index), so the result is deterministic. Each share lists
    its task indices in increasing order; shares are in order of their first task."""
    if n_shares < 1:
        raise ValueError(f"n_shares must be >= 1, got {n_shares}")
    loads: list[int] = [0] * n_shares
    shares: list[list[int]] = [[] for _ in range(n_shares)]
    for i in sorted(range(len(weights)), key=lambda j: (-int(weights[j]), j)):
        k = min(range(n_shares), key=lambda s: (loads[s], s))
        loads[k] += int(weights[i])
        shares[k].append(i)
    return sorted((sorted(s) for s in shares if s), key=lambda s: s[0])


def check_device(device: str) -> str:
    """``device`` if the batched executor can train there: ``cpu``, or ``cuda`` / ``cuda:N``
    with CUDA available and N an existing GPU; else ``ValueError`` saying what is allowed."""
    text = str(device)
    try:
        parsed = torch.device(text)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {text!r} is not a torch device; allowed: cpu, cuda, cuda:N") from err
    if parsed.type == "cpu":
        return text
    if parsed.type != "cuda":
        raise ValueError(f"device {text!r}: the batched executor trains on cpu or cuda[:N], not {parsed.type!r}")
    if not torch.cuda.is_available():
        raise ValueError(f"device {text!r}: CUDA is not available here (torch {torch.__version__}, "
                         f"torch.cuda.is_available() is False); allowed here: cpu")
    count = torch.cuda.device_count()
    if parsed.index is not None and parsed.index >= count:
        raise ValueError(f"device {text!r}: this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}")
    return text


#: default largest stack on the CPU and on a GPU (see ``BatchedExecutor``).
MAX_DEVICES_CPU, MAX_DEVICES_GPU = 32, 256


def default_max_devices(device: str) -> int:
    """The largest stack ``BatchedExecutor`` uses on ``device`` when none is given."""
    return MAX_DEVICES_CPU if torch.device(device).type == "cpu" else MAX_DEVICES_GPU

_WORKER_EXECUTOR: "BatchedExecutor | None" = None  # a pool worker's in-process executor (caches the plan)


def _run_share(packed: Any) -> Any:
    """Pool worker: train one packed share ``(threads, max_devices, device, tasks)`` with the
    in-process path; the results, packed (``learning.execution.transport``)."""
    global _WORKER_EXECUTOR
    threads, max_devices, device, tasks = unpack(packed)
    ex = _WORKER_EXECUTOR
    if ex is None or (ex.threads, ex.max_devices, ex.device) != (threads, max_devices, device):
        ex = _WORKER_EXECUTOR = BatchedExecutor(threads=threads, max_devices=max_devices, device=device)
    return pack(ex.run(worker_client(), tasks))


class BatchedExecutor:
    """Runs the tasks of one call together (``vmap``), in groups of at most ``max_devices``.

    Args:
        workers: 1: train in this process; more: split the tasks into ``workers`` shares
            balanced by training samples and train each share the same way in a pool of
            ``workers`` processes (see the module docstring), results in task order.
        threads: torch intra-op threads in this process (``workers == 1``) or in each worker.
        max_devices: largest number of devices trained in one stack; more tasks are split
            into stacks of near-equal size. None: ``MAX_DEVICES_CPU`` (32) on the CPU,
            ``MAX_DEVICES_GPU`` (256) on a GPU. On the CPU, on urban_50dev's ViT, a stacked
            step costs least per device at 8-12 devices (larger stacks' saved activations,
            4.5 MiB per device at batch 32, grow well past a 32 MiB L3 cache), but a whole
            round moved by under 5 % between stacks of at most 10 and 32, inside the noise
            (``bench/executors.py --stack`` and the README); training memory grows linearly,
            hence 32. On a GPU a step is bound by kernel launches, not arithmetic, so a round
            runs faster the fewer stacks it takes (an H200: 50 devices per round in stacks of
            10, 25 and 50 trained 14.0k, 25.3k and 35.5k samples/s for PFL-TPS); 256 devices
            hold about 2.3 GB while training.
        start_method: the worker pool's (``workers > 1``), as ``ProcessExecutor``'s.
        device: where the stacks train: ``cpu`` or a CUDA device (``cuda``, ``cuda:N``; see
            ``check_device``); with ``workers > 1`` every worker trains there. Updates that
            cannot be batched run on the CPU either way.
    """

    def __init__(self, workers: int = 1, threads: int = 1, max_devices: int | None = None,
                 start_method: str = "forkserver", device: str = "cpu") -> None:
        self.device = check_device(device)
        if max_devices is None:
            max_devices = default_max_devices(self.device)
        if workers < 1 or threads < 1 or max_devices < 1:
            raise ValueError(f"workers, threads and max_devices must be >= 1, got {workers}, {threads}, {max_devices}")
        self.workers, self.threads, self.max_devices = workers, threads, max_devices
        self._client: Client | None = None
        self._plan: BatchedPlan | None = None
        self._pool = (ProcessExecutor(workers, threads, start_method, preload=["learning.execution.batched"])
                      if workers > 1 else None)

    def plan_for(self, client: Client) -> BatchedPlan | None:
        """The (cached) plan of ``client``; None: its tasks run sequentially."""
        if self._client is not client:
            self._client, self._plan = client, batched_plan(client)
        return self._plan

    def run(self, client: Client, tasks: Sequence[Task]) -> list[LocalResult]:
        """Results of ``client.local_update(*task)`` in task order (within float tolerance)."""
        if self._pool is not None:
            return self._run_pool(client, tasks)
        torch.set_num_threads(self.threads)
        plan = self.plan_for(client)
        results: list[LocalResult | None] = [None] * len(tasks)
        batch: list[int] = []
        for pos, (device, _, _, _) in enumerate(tasks):
            if plan is not None and client.data.num_train(int(device)) > 0:
                batch.append(pos)
            else:
                d, state, payload, seed = tasks[pos]
                results[pos] = client.local_update(int(d), state, payload, int(seed))
        n_groups = -(-len(batch) // self.max_devices)
        for g in range(n_groups):
            group = batch[g * len(batch) // n_groups : (g + 1) * len(batch) // n_groups]
            gtasks = [tuple(tasks[p]) for p in group]
            inits = [plan.prepare(t) for t in gtasks]  # type: ignore[union-attr, arg-type]
            trained = train_batched(plan, gtasks, inits, self.device)  # type: ignore[arg-type]
            for pos, t, init, out in zip(group, gtasks, inits, trained):  # type: ignore[arg-type]
                results[pos] = plan.finish(t, init, out["final"], out["stats"])  # type: ignore[union-attr, arg-type]
        return results  # type: ignore[return-value]

    def _run_pool(self, client: Client, tasks: Sequence[Task]) -> list[LocalResult]:
        """``run`` with ``workers > 1``: one share per worker, balanced by training samples."""
        if not tasks:
            return []
        shares = assign_shares([client.data.num_train(int(t[0])) for t in tasks], self.workers)
        packed = (pack((self.threads, self.max_devices, self.device, [tuple(tasks[i]) for i in share]))
                  for share in shares)
        results: list[LocalResult | None] = [None] * len(tasks)
        for share, out in zip(shares, self._pool.map_each(client, _run_share, packed)):  # type: ignore[union-attr]
            for i, result in zip(share, unpack(out), strict=True):
                results[i] = result
        return results  # type: ignore[return-value]

    def close(self) -> None:
        """Forget the cached plan; close the worker pool (a later ``run`` starts a new one)."""
        self._client = self._plan = None
        if self._pool is not None:
            self._pool.close()

    def __enter__(self) -> "BatchedExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
