"""The co-simulation: one SimPy environment with server, device, cell and world processes.

- the server process runs rounds: select devices, start their round processes, wait
  for all of them or the deadline, cut stragglers, aggregate, evaluate;
- a device's round process: download (a downlink flow) -> compute (FLOPs reported by
  the learning core, at the frequency its DVFS policy picks) -> upload (an uplink flow);
- each cell has one `FlowScheduler` per direction sharing its band among active flows;
- the world process advances mobility and redraws the channel every coherence interval
  and notifies every scheduler.

Round time and energy are never computed by formula: they are what these events add up to.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import simpy

from cosim.engine.availability import Availability
from cosim.engine.checkpoint import load_checkpoint
from cosim.engine.device_process import device_round, transfer
from cosim.engine.dvfs_budget import UplinkRateAverage
from cosim.engine.fleet import Fleet
from cosim.engine.flows import FlowScheduler
from cosim.engine.learning_side import LearningSide, RoundWork
from cosim.engine.policies import SELECTION_POLICIES, SelectionContext
from cosim.engine.server_modes import AsyncServer, make_server
from cosim.engine.timing import At as _At
from cosim.engine.world import World
from cosim.engine.world_process import world_process
from cosim.trace import TraceRecorder
from radio.compute import FREQUENCY_POLICIES, compute_energy_j
from radio.ofdma import ALLOCATORS

# Appending a stream leaves the others unchanged (child i of a SeedSequence is spawn key (i,)).
_RNG_STREAMS = ("profiles", "mobility", "los", "shadowing", "fading", "selection", "availability", "kfactor")


def _mean_metric(arrived: dict[int, RoundWork], name: str) -> float:
    """Mean of a local-update metric over the round's arrived devices (NaN if none report it)."""
    values = [w.result.metrics[name] for w in arrived.values()
              if w.result is not None and name in w.result.metrics]
    return float(np.mean(values)) if values else float("nan")


def _sum_metric(arrived: dict[int, RoundWork], name: str) -> float:
    """Sum of a local-update metric over the round's arrived devices (NaN if none report it)."""
    values = [w.result.metrics[name] for w in arrived.values()
              if w.result is not None and name in w.result.metrics]
    return float(np.sum(values)) if values else float("nan")


@dataclass
class _RoundState:
    """Book-keeping of one round, filled in by the device processes."""

    status: dict[int, str] = field(default_factory=dict)  # completed | straggler | dropout
    busy_s: defaultdict = field(default_factory=lambda: defaultdict(float))
    uplink_bytes: int = 0
    downlink_bytes: int = 0


@dataclass
class RoundProgress:
    """Passed to the progress callback after every round."""

    round: int
    rounds: int
    sim_time_s: float
    accuracy: float | None
    energy_j: float


class Simulation:
    """Everything one run needs, built from a validated scenario."""

    def __init__(self, scenario, progress=None, checkpoint_path: Path | None = None) -> None:
        self.scenario = scenario
        self.progress = progress
        # Called as on_round_end(sim, round_idx) after every round (checkpointing).
        self.on_round_end = None
        # Set (e.g. by a Ctrl-C handler) to stop cleanly at the next round boundary.
        self.stop_requested = False
        self.stopped_early = False
        seeds = np.random.SeedSequence(int(scenario.seed)).spawn(len(_RNG_STREAMS))
        self.rngs = {name: np.random.default_rng(s) for name, s in zip(_RNG_STREAMS, seeds)}
        n = scenario.devices.count
        self.n_devices = n
        self.trace = TraceRecorder(events=scenario.output.events)
        self.fleet = Fleet(dict(scenario.devices.profiles), n, self.rngs["profiles"])
        self.world = World(scenario, self.fleet.tx_power_dbm, self.rngs)
        # Fade-averaged full-band uplink rate per device, for the DVFS time budget.
        self.uplink_rate_average = UplinkRateAverage(self.world.uplink_full_band_rate_bps(np.arange(n)))
        self.availability = Availability(scenario.devices.availability, n, self.fleet.profile_names,
                                         self.fleet.profile_index, self.rngs["availability"])
        if self.availability.model != "always":  # the initial states, so traces alone rebuild availability
            for d, on in enumerate(self.availability.available.tolist()):
                self.trace.event(0.0, 0, d, int(self.world.serving_cell[d]), "available" if on else "unavailable",
                                 detail="initial")
        self.learning = LearningSide(scenario, n)
        checkpoint = None
        if checkpoint_path is not None:
            checkpoint = load_checkpoint(checkpoint_path, data=getattr(self.learning, "data", None))
        self.env = simpy.Environment(initial_time=checkpoint["now_s"] if checkpoint else 0.0)
        fl = scenario.fl
        self.policy = SELECTION_POLICIES[fl.selection](n)
        self.dvfs = FREQUENCY_POLICIES[fl.dvfs]
        self.uplink_bytes = np.zeros(n, dtype=np.int64)
        self.downlink_bytes = np.zeros(n, dtype=np.int64)
        self.rounds_selected = np.zeros(n, dtype=np.int64)
        self.rounds_completed = np.zeros(n, dtype=np.int64)
        self.final_device_accuracy = np.full(n, np.nan)
        self.last_eval = None
        self.holdout_accuracy: dict[int, float] = {}  # held-out device -> accuracy, filled at the end
        self.rounds_done = 0
        self.handovers = 0
        self.ping_pongs = 0
        self._tick_index = 0
        self.in_flight: dict[int, simpy.Process] = {}  # device -> its running update
        self.availability_changed = self.env.event()  # fires (and is replaced) at every transition
        self.server_mode: AsyncServer | None = None  # the non-sync modes' server
        if checkpoint is not None:
            self._restore(checkpoint)
        allocator = ALLOCATORS[fl.allocator]
        self.ul = [self._scheduler(c, allocator, "ul") for c in range(self.world.n_cells)]
        self.dl = [self._scheduler(c, allocator, "dl") for c in range(self.world.n_cells)]
        if checkpoint is not None:
            for scheduler, (average, updated) in zip(self.ul + self.dl, checkpoint["pf_averages"]):
                scheduler.pf_average_bps, scheduler.pf_updated_s = average, updated
            for scheduler, snapshot in zip(self.ul + self.dl, checkpoint.get("schedulers", ())):
                scheduler.restore(snapshot)
            self.server_mode = checkpoint.get("server_mode")

    # -- checkpoints --------------------------------------------------------------
    _RESTORED = ("rngs", "fleet", "world", "policy", "trace", "uplink_bytes", "downlink_bytes", "rounds_selected",
                 "rounds_completed", "final_device_accuracy", "last_eval", "rounds_done", "handovers", "ping_pongs", "uplink_rate_average",
                 "_tick_index", "availability")

    def checkpoint_state(self) -> dict:
        """Everything needed to continue from the current round boundary (see `checkpoint`)."""
        state = {name: getattr(self, name) for name in self._RESTORED}
        state["now_s"] = self.env.now
        state["pf_averages"] = [(s.pf_average_bps, s.pf_updated_s) for s in self.ul + self.dl]
        state["algorithm"] = self.learning.algorithm
        if self.server_mode is not None:  # updates in flight: their server, flows and progress
            state["server_mode"] = self.server_mode
            state["schedulers"] = [s.snapshot() for s in self.ul + self.dl]
        return state

    def _restore(self, state: dict) -> None:
        for name in self._RESTORED:
            setattr(self, name, state[name])
        self.learning.restore_algorithm(state["algorithm"])

    def _scheduler(self, cell: int, allocator, direction: str) -> FlowScheduler:
        world, fleet, env, radio = self.world, self.fleet, self.env, self.scenario.radio
        if direction == "ul":
            component = "tx"
            # Radiated -> drawn power (identity until a PA model is wired in).
            drawn = getattr(fleet, "drawn_tx_power_w", None) or (lambda devices, radiated_w: radiated_w)

            def links(devices: np.ndarray):
                return world.uplink_links(cell, devices)

            def on_allocation(devices: np.ndarray, radiated_w: np.ndarray) -> None:
                world.links.report_uplink(cell, devices, radiated_w)
        else:
            component = "rx"

            def drawn(devices: np.ndarray, radiated_w: np.ndarray) -> np.ndarray:
                return fleet.rx_power_w[devices]

            def links(devices: np.ndarray):
                return world.downlink_links(cell, devices)

            def on_allocation(devices: np.ndarray, radiated_w: np.ndarray) -> None:
                # A cell that starts or stops transmitting changes its co-channel
                # neighbours' SINR: they reallocate now.
                active = devices.size > 0
                if active != bool(world.links.dl_active[cell]):
                    world.links.report_downlink(cell, active)
                    if world.links.interference:
                        for other, scheduler in enumerate(self.dl):
                            if other != cell and world.links.dl_overlap_hz[other, cell] > 0:
                                scheduler.reallocate()

        return FlowScheduler(
            env, links, allocator, n_devices=self.n_devices, outage_s=radio.outage_s,
            pf_time_constant_s=self.scenario.fl.pf_time_constant_s, drawn_power_w=drawn,
            on_segment=lambda devices, dt, energy: fleet.charge(component, devices, energy, env.now),
            on_allocation=on_allocation,
        )

    # -- processes ----------------------------------------------------------------
    def _world_process(self):
        return world_process(self)

    def _availability_process(self):
        """Sleeps until the next availability transition (an event), applies it, repeats.

        A device that becomes unavailable during its update is interrupted (it drops out).
        """
        av = self.availability
        while (t := av.next_time_s()) is not None:
            yield _At(self.env, t)
            change = av.pop_due(self.env.now)
            for d, on in zip(change.devices.tolist(), change.available.tolist()):
                self.trace.event(self.env.now, self.rounds_done, d, int(self.world.serving_cell[d]),
                                 "available" if on else "unavailable")
                proc = self.in_flight.get(d)
                if not on and proc is not None and proc.is_alive:
                    proc.interrupt("unavailable")
            changed, self.availability_changed = self.availability_changed, self.env.event()
            changed.succeed(change)

    def wait_for_available(self, round_idx: int):
        """Wait until some alive device is available; False (traced) when none ever will be."""
        while not (self.fleet.alive & self.availability.available).any():
            if self.availability.next_time_s() is None:
                self.trace.event(self.env.now, round_idx, -1, -1, "none_available",
                                 detail="no alive device is or will become available")
                return False
            yield self.availability_changed
        return True

    def _device_round(self, round_idx: int, d: int, work: RoundWork, round_start_s: float, rs: "_RoundState",
                      progress: dict | None = None):
        """One device's update (see :func:`cosim.engine.device_process.device_round`)."""
        return device_round(self, round_idx, d, work, round_start_s, rs, progress)

    def _transfer(self, round_idx: int, d: int, cell: int, direction: str, nbytes: int, rs: "_RoundState",
                  current: dict):
        """Move ``nbytes`` on ``cell``'s band (see :func:`cosim.engine.device_process.transfer`)."""
        return transfer(self, round_idx, d, cell, direction, nbytes, rs, current)

    def _selection_context(self, round_idx: int) -> SelectionContext:
        fleet, world, cost = self.fleet, self.world, self.learning.cost
        all_devices = np.arange(self.n_devices)
        share = max(1.0, self.scenario.fl.devices_per_round / world.n_cells)
        ul_rate = np.maximum(world.uplink_full_band_rate_bps(all_devices), 1.0)
        dl_rate = np.maximum(world.downlink_full_band_rate_bps(all_devices), 1.0)
        comm = self.learning.communicates
        ul_s = 8.0 * cost.uplink_bytes * share / ul_rate if comm else 0.0
        dl_s = 8.0 * cost.downlink_bytes * share / dl_rate if comm else 0.0
        cycles = self.learning.expected_flops() * fleet.cycles_per_flop
        compute_s = cycles / fleet.f_max_hz
        energy = (compute_energy_j(cycles, fleet.f_max_hz, fleet.kappa, fleet.cpu_static_power_w)
                  + fleet.drawn_tx_power_w(all_devices) * ul_s + fleet.rx_power_w * dl_s)
        return SelectionContext(
            round_idx=round_idx, alive=fleet.alive & self.availability.available & ~self.learning.holdout,
            expected_uplink_rate_bps=ul_rate,
            expected_energy_j=np.asarray(energy, dtype=float), expected_time_s=dl_s + compute_s + ul_s,
            battery_j=fleet.battery_j.copy(), deadline_s=self.scenario.fl.deadline_s, rng=self.rngs["selection"],
        )

    def _server_process(self):
        env, fl, trace, fleet = self.env, self.scenario.fl, self.trace, self.fleet
        for r in range(self.rounds_done, fl.rounds):
            if self.stop_requested:
                self.stopped_early = True
                break
            if not fleet.alive.any():
                trace.event(env.now, r, -1, -1, "all_dead", detail="every battery is empty")
                break
            if not (yield from self.wait_for_available(r)):
                break
            start_s = env.now
            energy_before = float(fleet.total_energy_j().sum())
            selected = self.policy.select(self._selection_context(r), fl.devices_per_round)
            trace.event(env.now, r, -1, -1, "round_start", detail=f"selected={len(selected)}")
            work = self.learning.prepare_round(r, selected)
            rs = _RoundState()
            procs = {}
            for d in map(int, selected):
                self.rounds_selected[d] += 1
                trace.event(env.now, r, d, int(self.world.serving_cell[d]), "selected", bytes=work[d].downlink_bytes)
                procs[d] = self.in_flight[d] = env.process(self._device_round(r, d, work[d], start_s, rs))
            everyone = env.all_of(list(procs.values()))
            if fl.deadline_s is not None:
                yield everyone | env.timeout(fl.deadline_s)
                late = [d for d, p in procs.items() if p.is_alive]
                for d in late:
                    procs[d].interrupt("deadline")
                yield env.all_of(list(procs.values()))
            else:
                yield everyone
            end_s = env.now
            self.in_flight.clear()
            self._charge_idle(selected, rs, start_s, end_s)
            arrived = {d: work[d] for d in map(int, selected) if rs.status.get(d) == "completed"}
            for d in arrived:
                self.rounds_completed[d] += 1
            aggregate = len(arrived) >= fl.min_updates and len(arrived) > 0
            self.learning.finish_round(r, arrived, aggregate)
            trace.event(env.now, r, -1, -1, "aggregate" if aggregate else "skip_aggregate", detail=f"updates={len(arrived)}")
            accuracy, global_accuracy, val_accuracy = self._evaluate(r)
            outcomes = list(rs.status.values())
            round_energy = float(fleet.total_energy_j().sum()) - energy_before
            trace.round_row(
                round=r, start_s=start_s, end_s=end_s, selected=len(selected), completed=outcomes.count("completed"),
                stragglers=outcomes.count("straggler"), dropouts=outcomes.count("dropout"),
                uplink_bytes=rs.uplink_bytes, downlink_bytes=rs.downlink_bytes,
                energy_j=round_energy, aggregated=aggregate,
                train_loss=_mean_metric(arrived, "train_loss"), ffl_density=_mean_metric(arrived, "ffl_density"),
                ffl_density_mean=_mean_metric(arrived, "ffl_density_mean"),
                threshold_resets=_sum_metric(arrived, "threshold_resets"),
                accuracy=np.nan if accuracy is None else accuracy,
                global_accuracy=np.nan if global_accuracy is None else global_accuracy,
                val_accuracy=np.nan if val_accuracy is None else val_accuracy,
            )
            self.rounds_done = r + 1
            if self.progress is not None:
                self.progress(RoundProgress(r + 1, fl.rounds, env.now, accuracy, float(fleet.total_energy_j().sum())))
            if self.on_round_end is not None:
                self.on_round_end(self, r)

    def _charge_idle(self, selected: np.ndarray, rs: "_RoundState", start_s: float, end_s: float) -> None:
        """Idle power for the part of the round a selected device was not busy."""
        fleet = self.fleet
        devices = np.asarray(selected, dtype=np.int64)
        if devices.size == 0:
            return
        busy = np.array([rs.busy_s[int(d)] for d in devices])
        idle_s = np.maximum(end_s - start_s - busy, 0.0)
        alive = fleet.alive[devices]
        fleet.charge("idle", devices[alive], fleet.idle_power_w[devices[alive]] * idle_s[alive], end_s)

    def _evaluate(self, round_idx: int) -> tuple[float | None, float | None, float | None]:
        """(headline test accuracy, global-model accuracy, mean validation accuracy), None when
        this round is not evaluated."""
        every = self.scenario.learning.eval_every
        last = round_idx + 1 == self.scenario.fl.rounds
        if (round_idx + 1) % every != 0 and not last:
            return None, None, None
        result = self.learning.evaluate()
        if result is None:
            return None, None, None
        self.last_eval = result
        for d, acc in result.per_device_accuracy.items():
            self.final_device_accuracy[d] = acc
        headline = result.mean_accuracy if self.learning.personalized else result.global_accuracy
        return headline, result.global_accuracy, result.val_accuracy

    def new_round_state(self) -> _RoundState:
        """Empty book-keeping for the device processes of a round (or one async update)."""
        return _RoundState()

    def run(self) -> None:
        """Play the whole scenario out in simulated time."""
        self.env.process(self._world_process())
        if self.availability.model != "always":
            self.env.process(self._availability_process())
        if self.scenario.fl.mode == "sync":
            server = self.env.process(self._server_process())
        elif self.server_mode is None:
            self.server_mode = make_server(self)
            server = self.env.process(self.server_mode.process())
        else:  # resumed from a checkpoint with updates in flight
            server = self.env.process(self.server_mode.process())
            self.server_mode.resume(self)
        try:
            self.env.run(until=server)
            if not self.stopped_early:  # new-device generalization: held-out devices join at the end
                self.holdout_accuracy = self.learning.holdout_accuracy(self.rounds_done)
                for d, acc in self.holdout_accuracy.items():
                    self.final_device_accuracy[d] = acc
        finally:
            self.learning.close()
