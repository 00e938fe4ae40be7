"""The asynchronous server modes: FedAsync, FedBuff and semi-synchronous rounds.

`fl.mode` other than ``sync`` runs `AsyncServer.process` as the server process. Devices
train at most ``fl.concurrency`` at a time; whenever a slot is free the selection policy
refills it among the devices that are alive, available, idle and have no update
waiting in the server's buffer (it would train the same model twice). A slot is held
from dispatch until the update is *applied* (``outstanding``), so a buffered update
keeps its slot until the buffer is stepped. Each device's
update is the same download -> compute -> upload process as in a sync round, starting
from the server model of the moment (its *version*); an update applied when the server
is at version v' after being sent version v has staleness τ = v' − v.

- ``async`` — FedAsync (Xie, Koyejo, Gupta 2019, "Asynchronous Federated Optimization",
  Alg. 1 and section 5.2): each arrival is applied at once, x ← (1 − α_t) x + α_t x_new
  with α_t = α·s(τ) (α = ``fl.mixing``); the device is then free to receive the new model.
- ``buffered`` — FedBuff (Nguyen et al., AISTATS 2022, Alg. 1): arrivals wait in a buffer;
  every K = ``fl.buffer_size`` of them the server steps x ← x + η_g Σ_i w_i Δ_i with
  Δ_i = y_i − x_sent_i, w_i = n_i·s(τ_i)/Σ_j n_j (the paper's 1/K with sample weights, as
  cosim's FedAvg), s(τ) = 1/sqrt(1 + τ) by default (``polynomial``, a = 0.5), η_g =
  ``fl.server_lr``. If nothing is in flight and nobody else can be dispatched, a
  partly filled buffer is applied (no deadlock).
- ``semi_sync`` — rounds with a deadline (``fl.deadline_s``): the updates that arrive in
  time are applied at the round's end; a late device is *not* cut: it goes on, and its
  update is applied at the end of the round in which it arrives, with weight
  n_i·s(τ_i)/Σn (the ``delta`` rule with η = ``fl.server_lr``).

Staleness functions (FedAsync section 5.2): constant s = 1; polynomial s = (τ + 1)^(−a);
hinge s = 1 if τ <= b else 1 / (a (τ − b) + 1).

In ``async`` and ``buffered`` a *round* (one row of the rounds table, one evaluation) is
``fl.devices_per_round`` applied updates — as much training as a sync round — closed at
the model version that completes them. Updates still in flight when the run ends are
cancelled (traced ``cancelled``, their energy counted).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import simpy

from cosim.engine.learning_side import RoundWork


def staleness_weight(tau: int, function: str, a: float, b: float) -> float:
    """s(τ) of FedAsync (Xie et al. 2019, section 5.2) for staleness `tau` >= 0."""
    if tau < 0:
        raise ValueError(f"negative staleness {tau}")
    if function == "constant":
        return 1.0
    if function == "polynomial":
        return float((tau + 1.0) ** (-a))
    if function == "hinge":
        return 1.0 if tau <= b else 1.0 / (a * (tau - b) + 1.0)
    raise ValueError(f"fl.staleness.function: {function!r} is not one of constant, polynomial, hinge")


@dataclass
class Participation:
    """One device's update in flight: where it started and how it went."""

    device: int
    round: int
    version_sent: int
    start_s: float
    work: RoundWork
    rs: object  # the engine's _RoundState for this one device
    process: simpy.Process | None = None
    end_s: float = float("nan")
    progress: dict = field(default_factory=dict)  # where the update is (see Simulation._device_round)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["process"] = None  # rebuilt by AsyncServer.resume
        return state

    @property
    def status(self) -> str | None:
        return self.rs.status.get(self.device)


@dataclass
class _RoundStats:
    """What the current round (rows of the rounds table) has seen so far."""

    start_s: float
    energy_before_j: float
    selected: int = 0
    outcomes: list = field(default_factory=list)
    uplink_bytes: int = 0
    downlink_bytes: int = 0
    applied: list = field(default_factory=list)  # (participation, staleness)
    aggregations: int = 0


class AsyncServer:
    """The server process of the ``async`` and ``buffered`` modes (``semi_sync``:
    :class:`cosim.engine.semi_sync.SemiSyncServer`, the same machinery with rounds)."""

    def __init__(self, sim) -> None:
        self.sim = sim
        fl = sim.scenario.fl
        self.mode = fl.mode
        self.concurrency = int(fl.concurrency or fl.devices_per_round)
        self.buffer_size = int(fl.buffer_size or fl.devices_per_round)
        self.version = 0
        self.in_flight: dict[int, Participation] = {}
        self.finished: list[Participation] = []
        self.buffer: list[Participation] = []
        self.carried: list[Participation] = []  # semi_sync: arrived, not applied (round below min_updates)
        self.pending = np.zeros(sim.n_devices, dtype=bool)  # update waiting in the buffer
        self.staleness: list[int] = []  # of every applied update, in order
        self.wake = sim.env.event()
        self.round = _RoundStats(sim.env.now, float(sim.fleet.total_energy_j().sum()))

    # -- checkpoints --------------------------------------------------------------
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["sim"] = state["wake"] = None  # re-attached by `resume`
        return state

    def resume(self, sim) -> None:
        """Continue after a checkpoint: re-attach to `sim` and restart every update in flight
        where it was (its flow, already restored in the schedulers, or its computation)."""
        self.sim = sim
        self.wake = sim.env.event()
        for p in self.in_flight.values():
            flow = p.progress.get("flow")
            if flow is not None and flow.done is None:  # finished, but its process had not seen it yet
                flow.done = sim.env.event()
                flow.done.succeed(flow)
            p.progress["resume_flow"] = p.progress.get("phase") in ("download", "upload") and flow is not None
            p.process = sim.in_flight[p.device] = sim.env.process(self._run(p))

    # -- helpers ------------------------------------------------------------------
    def weight(self, tau: int) -> float:
        s = self.sim.scenario.fl.staleness
        return staleness_weight(tau, s.function, s.a, s.b)

    def outstanding(self) -> int:
        """Updates dispatched and not yet applied: training, or waiting in the buffer.

        `fl.concurrency` bounds this number: a device's slot is free again once its
        update has been applied (at once in ``async``, at the next buffer step in
        ``buffered``), so with concurrency = K = devices_per_round FedBuff is FedAvg.
        """
        return len(self.in_flight) + len(self.buffer)

    def _eligible(self) -> np.ndarray:
        sim = self.sim
        ok = sim.fleet.alive & sim.availability.available & ~self.pending & ~sim.learning.holdout
        ok[list(self.in_flight)] = False
        return ok

    def _dispatch(self, k: int) -> list[Participation]:
        """Select up to `k` eligible devices and start their updates from the current model."""
        sim, env = self.sim, self.sim.env
        eligible = self._eligible()
        if k <= 0 or not eligible.any():
            return []
        r = sim.rounds_done
        ctx = dataclasses.replace(sim._selection_context(r), alive=eligible)
        chosen = sim.policy.select(ctx, k)
        if len(chosen) == 0:
            return []
        seed_round = r if self.mode == "semi_sync" else self.version
        work = sim.learning.prepare_round(seed_round, chosen, keep_sent=True)
        started = []
        for d in map(int, chosen):
            sim.rounds_selected[d] += 1
            sim.trace.event(env.now, r, d, int(sim.world.serving_cell[d]), "selected", bytes=work[d].downlink_bytes,
                            detail=f"version={self.version}")
            p = Participation(d, r, self.version, env.now, work[d], sim.new_round_state())
            p.process = sim.in_flight[d] = env.process(self._run(p))
            self.in_flight[d] = p
            started.append(p)
        self.round.selected += len(started)
        return started

    def _run(self, p: Participation):
        yield from self.sim._device_round(p.round, p.device, p.work, p.start_s, p.rs, p.progress)
        p.end_s = self.sim.env.now
        self.in_flight.pop(p.device, None)
        self.sim.in_flight.pop(p.device, None)
        self.finished.append(p)
        if not self.wake.triggered:
            self.wake.succeed()

    def _settle(self, p: Participation, until_s: float) -> None:
        """Book a finished participation: idle energy up to `until_s`, bytes, outcome."""
        sim = self.sim
        d = p.device
        idle_s = max(until_s - p.start_s - p.rs.busy_s[d], 0.0)
        if sim.fleet.alive[d] and idle_s > 0:
            sim.fleet.charge("idle", np.array([d]), sim.fleet.idle_power_w[d] * idle_s, until_s)
        self.round.uplink_bytes += p.rs.uplink_bytes
        self.round.downlink_bytes += p.rs.downlink_bytes
        self.round.outcomes.append(p.status)
        if p.status == "completed":
            sim.rounds_completed[d] += 1

    def _apply(self, parts: list[Participation], rule: str) -> None:
        """Apply arrived updates to the server model (one new version)."""
        sim, env = self.sim, self.sim.env
        fl = sim.scenario.fl
        total_n = float(sum(int(sim.learning.samples[p.device]) for p in parts))
        updates = []
        for p in parts:
            tau = self.version - p.version_sent
            s = self.weight(tau)
            if rule == "mix":
                w = fl.mixing * s
            else:
                w = float(sim.learning.samples[p.device]) / total_n * s if total_n > 0 else 0.0
            updates.append((p.device, p.work, tau, w))
            self.staleness.append(tau)
            self.round.applied.append((p, tau))
            sim.trace.event(env.now, sim.rounds_done, p.device, int(sim.world.serving_cell[p.device]), "apply",
                            detail=f"staleness={tau} version_sent={p.version_sent} version_at_apply={self.version} "
                                   f"weight={w:.6g}")
            sim.trace.update_row(device=p.device, round=p.round, version_sent=p.version_sent,
                                 version_at_apply=self.version, staleness=tau, weight=w,
                                 dispatch_s=p.start_s, arrival_s=p.end_s, applied_s=env.now,
                                 samples=int(sim.learning.samples[p.device]))
        sim.learning.apply_stale(updates, rule, fl.server_lr if rule == "delta" else 1.0)
        self.version += 1
        self.round.aggregations += 1
        sim.trace.event(env.now, sim.rounds_done, -1, -1, "aggregate", detail=f"updates={len(parts)} version={self.version}")

    def _close_round(self) -> None:
        """One row of the rounds table, evaluation, progress and the round-end hook."""
        sim, rs = self.sim, self.round
        now = sim.env.now
        r = sim.rounds_done
        taus = [tau for _, tau in rs.applied]
        accuracy, global_accuracy, val_accuracy = sim._evaluate(r)
        results = [p.work.result for p, _ in rs.applied if p.work.result is not None]

        def mean_metric(name: str) -> float:
            values = [res.metrics[name] for res in results if name in res.metrics]
            return float(np.mean(values)) if values else float("nan")

        resets = [res.metrics["threshold_resets"] for res in results if "threshold_resets" in res.metrics]

        energy_now = float(sim.fleet.total_energy_j().sum())
        sim.trace.round_row(
            round=r, start_s=rs.start_s, end_s=now, selected=rs.selected, completed=rs.outcomes.count("completed"),
            stragglers=rs.outcomes.count("late"), dropouts=rs.outcomes.count("dropout"),
            uplink_bytes=rs.uplink_bytes, downlink_bytes=rs.downlink_bytes, energy_j=energy_now - rs.energy_before_j,
            aggregated=rs.aggregations > 0, train_loss=mean_metric("train_loss"), ffl_density=mean_metric("ffl_density"),
            ffl_density_mean=mean_metric("ffl_density_mean"),
            threshold_resets=float(np.sum(resets)) if resets else float("nan"),
            accuracy=np.nan if accuracy is None else accuracy,
            global_accuracy=np.nan if global_accuracy is None else global_accuracy,
            val_accuracy=np.nan if val_accuracy is None else val_accuracy,
            version=self.version, applied=len(taus),
            mean_staleness=float(np.mean(taus)) if taus else float("nan"), max_staleness=max(taus) if taus else -1,
        )
        sim.rounds_done = r + 1
        self.round = _RoundStats(now, energy_now)
        if sim.progress is not None:
            from cosim.engine.simulation import RoundProgress

            sim.progress(RoundProgress(r + 1, sim.scenario.fl.rounds, now, accuracy, energy_now))
        if sim.on_round_end is not None:
            sim.on_round_end(sim, r)

    def _stop_checks(self, boundary: bool = False) -> bool:
        """True when the run must end now (every battery empty; a stop request at a round
        `boundary`)."""
        sim = self.sim
        if boundary and sim.stop_requested:
            sim.stopped_early = True
            return True
        if not sim.fleet.alive.any():
            sim.trace.event(sim.env.now, sim.rounds_done, -1, -1, "all_dead", detail="every battery is empty")
            return True
        return False

    def _cancel_in_flight(self):
        """End of the run: cut every update still in flight (energy so far is counted);
        arrived updates never applied (a part-filled buffer, arrivals after the last
        round closed) are traced ``discarded``."""
        sim = self.sim
        unprocessed, self.finished = self.finished, []
        for p in unprocessed:
            self._settle(p, p.end_s)
        left = self.buffer + self.carried + [p for p in unprocessed if p.status == "completed"]
        for p in left:
            sim.trace.event(sim.env.now, sim.rounds_done, p.device, int(sim.world.serving_cell[p.device]),
                            "discarded", detail=f"arrived, not applied when the run ended (version_sent={p.version_sent})")
        self.buffer, self.carried = [], []
        procs = [p.process for p in self.in_flight.values()]
        for proc in procs:
            proc.interrupt("end")
        if procs:
            yield sim.env.all_of(procs)
        for p in self.finished:
            self._settle(p, p.end_s)
        self.finished.clear()

    # -- the server processes -----------------------------------------------------------
    def process(self):
        """The server process of the configured mode."""
        yield from self._loop()
        if not self.sim.stopped_early:  # a stop keeps the updates in flight for the checkpoint
            yield from self._cancel_in_flight()

    def _loop(self):
        """``async`` and ``buffered``: refill free slots, apply arrivals, close rounds."""
        sim, fl = self.sim, self.sim.scenario.fl
        while sim.rounds_done < fl.rounds:
            if self._stop_checks():
                return
            if self._handle_arrivals():  # left over when a checkpoint was written
                return
            self._dispatch(self.concurrency - self.outstanding())
            if not self.in_flight:
                if self.buffer:  # nobody else can contribute: apply what the buffer holds
                    self._flush_buffer()
                    if self._round_complete() and self._end_round():
                        return
                    continue
                if self._eligible().any():
                    raise RuntimeError(f"selection policy {fl.selection!r} chose no device among eligible ones")
                if sim.availability.next_time_s() is None:
                    sim.trace.event(sim.env.now, sim.rounds_done, -1, -1, "none_available",
                                    detail="no alive device is or will become available")
                    return
                yield sim.availability_changed
                continue
            yield self.wake | sim.availability_changed
            if self.wake.triggered:
                self.wake = sim.env.event()
            if self._handle_arrivals():
                return

    def _handle_arrivals(self) -> bool:
        """Apply (async) or buffer (buffered) each finished update; True when the run must end.

        Updates are taken one at a time, so a checkpoint written when one of them closes a
        round keeps the others in `finished` for the resumed run.
        """
        while self.finished:
            p = self.finished.pop(0)
            self._settle(p, p.end_s)
            if p.status != "completed":
                continue
            if self.mode == "async":
                self._apply([p], "mix")
            else:
                self.buffer.append(p)
                self.pending[p.device] = True
                if len(self.buffer) >= self.buffer_size:
                    self._flush_buffer()
            if self._round_complete() and self._end_round():
                return True
        return False

    def _round_complete(self) -> bool:
        return len(self.round.applied) >= self.sim.scenario.fl.devices_per_round

    def _end_round(self) -> bool:
        """Close the round; True when the run must end (last round, or a stop request)."""
        self._close_round()
        sim = self.sim
        if sim.stop_requested:
            sim.stopped_early = True
        return sim.rounds_done >= sim.scenario.fl.rounds or sim.stopped_early

    def _flush_buffer(self) -> None:
        parts, self.buffer = self.buffer, []
        self.pending[:] = False
        self._apply(parts, "delta")


def make_server(sim) -> AsyncServer:
    """The server of `sim`'s non-sync `fl.mode`."""
    if sim.scenario.fl.mode == "semi_sync":
        from cosim.engine.semi_sync import SemiSyncServer

        return SemiSyncServer(sim)
    return AsyncServer(sim)
