"""The ``semi_sync`` server: rounds with a deadline whose late updates are not cut.

Each round selects up to ``devices_per_round`` devices (within ``fl.concurrency``,
counting late devices still training), waits for them or ``fl.deadline_s``, and then
applies every update that arrived during the round — the round's own on-time ones
(τ = 0) and late ones from earlier rounds (τ > 0) — in one ``delta`` step with weights
n_i·s(τ_i)/Σn and η = ``fl.server_lr``. A device late at the deadline goes on training
and is traced ``straggler`` with detail ``late: continues``; the rounds table counts it
in ``stragglers``. On-time devices idle until the round ends; late ones leave on arrival.
Fewer than ``fl.min_updates`` arrivals are carried to the next round (``skip_aggregate``).
"""

from __future__ import annotations

from cosim.engine.server_modes import AsyncServer


class SemiSyncServer(AsyncServer):
    """Semi-synchronous rounds (see the module docstring)."""

    def _loop(self):
        """Rounds with a deadline; late updates are applied in the round they arrive in."""
        sim, env, fl = self.sim, self.sim.env, self.sim.scenario.fl
        while sim.rounds_done < fl.rounds:
            if self._stop_checks(boundary=True):
                return
            r = sim.rounds_done
            if not self.in_flight and not self._eligible().any():
                if sim.availability.next_time_s() is None:
                    sim.trace.event(env.now, r, -1, -1, "none_available",
                                    detail="no alive device is or will become available")
                    return
                yield sim.availability_changed
                continue
            sim.trace.event(env.now, r, -1, -1, "round_start", detail=f"in_flight={len(self.in_flight)}")
            started = self._dispatch(min(fl.devices_per_round, self.concurrency - len(self.in_flight)))
            round_procs = [p.process for p in started]
            deadline = env.timeout(fl.deadline_s)
            if round_procs:
                yield env.all_of(round_procs) | deadline
            else:
                yield deadline
            for p in started:
                if p.process.is_alive:
                    self.round.outcomes.append("late")
                    sim.trace.event(env.now, r, p.device, int(sim.world.serving_cell[p.device]), "straggler",
                                    detail="late: continues, applied when it arrives")
            arrived, self.finished = self.finished, []
            if self.wake.triggered:
                self.wake = env.event()
            for p in arrived:
                # On-time devices wait for the round's end (idle); late ones leave on arrival.
                self._settle(p, env.now if p.round == r else p.end_s)
            self.carried += [p for p in arrived if p.status == "completed"]
            if self.carried and len(self.carried) >= fl.min_updates:
                self._apply(self.carried, "delta")
                self.carried = []
            else:
                sim.trace.event(env.now, r, -1, -1, "skip_aggregate", detail=f"updates={len(self.carried)}")
            self._close_round()
