"""FlowScheduler: exact event times of fluid OFDMA sharing on hand-made cells.

Sharing, reallocation, cancellation, completion by remaining bytes and re-entry from the
allocation hook; power on the share, TDD, outage and proportional fair are in
``test_flow_links.py``.
"""

import numpy as np
import pytest
import simpy

from cosim.engine.flows import FlowScheduler
from flow_cells import SHANNON, equal, linear_links, make, min_time
from radio.share import ShareLinks


def test_single_flow_takes_bytes_over_rate():
    env = simpy.Environment()
    # 2 bit/s/Hz x 1 MHz = 2 Mbit/s; a fixed 0.2 W (x̂ = inf: full power at any share)
    cell = FlowScheduler(env, lambda d: ShareLinks(1e6, 50, [3.0], [np.inf], [0.0], SHANNON),
                         lambda links, rem, avg: np.ones(1), n_devices=1,
                         drawn_power_w=lambda devices, radiated: np.full(len(devices), 0.2))
    log = []

    def proc():
        flow = cell.start(0, 1_000_000)
        yield flow.done
        log.append((env.now, flow.completed, flow.airtime_s, flow.energy_j))

    env.process(proc())
    env.run()
    assert log == [(pytest.approx(4.0), True, pytest.approx(4.0), pytest.approx(0.8))]


def test_two_equal_flows_share_then_the_survivor_speeds_up():
    env = simpy.Environment()
    cell = make(env, [1.0, 1.0])  # 1 Mbit/s each alone
    log = []

    def proc(device, nbytes):
        flow = cell.start(device, nbytes)
        yield flow.done
        log.append((device, env.now))

    env.process(proc(0, 125_000))  # 1 Mbit
    env.process(proc(1, 250_000))  # 2 Mbit
    env.run()
    # Both at 0.5 Mbit/s until t=2 (device 0 done); device 1 has 1 Mbit left at 1 Mbit/s.
    assert log == [(0, pytest.approx(2.0)), (1, pytest.approx(3.0))]


def test_late_arrival_triggers_reallocation():
    env = simpy.Environment()
    cell = make(env, [1.0, 1.0])
    log = []

    def proc(device, nbytes, delay):
        yield env.timeout(delay)
        flow = cell.start(device, nbytes)
        yield flow.done
        log.append((device, env.now))

    env.process(proc(0, 250_000, 0.0))  # 2 Mbit; alone for 1 s -> 1 Mbit left
    env.process(proc(1, 62_500, 1.0))   # 0.5 Mbit at 0.5 Mbit/s -> done at 2 s
    env.run()
    assert log == [(1, pytest.approx(2.0)), (0, pytest.approx(2.5))]


def test_min_time_finishes_flows_together():
    env = simpy.Environment()
    cell = make(env, [1.0, 3.0], allocator=min_time)
    ends = []

    def proc(device, nbytes):
        flow = cell.start(device, nbytes)
        yield flow.done
        ends.append(env.now)

    env.process(proc(0, 100_000))
    env.process(proc(1, 300_000))
    env.run()
    assert ends[0] == pytest.approx(ends[1])
    # Total work 0.8 Mbit / 1 Mbit/s + 2.4 Mbit / 3 Mbit/s = 1.6 s of a shared band.
    assert ends[0] == pytest.approx(1.6)


def test_cancel_wakes_owner_and_frees_band():
    env = simpy.Environment()
    cell = make(env, [1.0, 1.0])
    log = []

    def proc(device, nbytes):
        flow = cell.start(device, nbytes)
        yield flow.done
        log.append((device, env.now, flow.completed, flow.cancelled_reason))
        return flow

    p0 = env.process(proc(0, 10_000_000))
    env.process(proc(1, 250_000))

    def canceller():
        yield env.timeout(1.0)
        cell.cancel(cell._flows[0], "deadline")

    env.process(canceller())
    env.run()
    # Device 1: 0.5 Mbit in the first second, then 1.5 Mbit alone at 1 Mbit/s.
    assert log == [(0, pytest.approx(1.0), False, "deadline"), (1, pytest.approx(2.5), True, "")]
    assert p0.value.airtime_s == pytest.approx(1.0)


@pytest.mark.parametrize("n_done", [3, 10])  # removed in place (few) or by rebuilding the list (many)
def test_flows_finishing_together_leave_the_others_in_order(n_done):
    # Every other flow of 1 Mbit finishes at the same instant (equal shares of 1 Mbit/s);
    # the two of 2 Mbit left between them must keep their own arrays and `done` events.
    env = simpy.Environment()
    n = n_done + 2
    cell = make(env, [1.0] * n)
    long = (1, 3)
    log, left = [], []

    def proc(device, nbytes):
        flow = cell.start(device, nbytes)
        got = yield flow.done
        log.append((device, env.now, got.device, got.completed))

    for d in range(n):
        env.process(proc(d, 250_000 if d in long else 125_000))

    def watch():
        yield env.timeout(n + 0.5)
        left.append(cell.active_devices.tolist())

    env.process(watch())
    env.run()
    # 1 Mbit at 1/n Mbit/s each -> all short flows at t = n; then 1 Mbit left on each long
    # flow at 0.5 Mbit/s -> t = n + 2.
    short = [d for d in range(n) if d not in long]
    assert log == [(d, pytest.approx(n), d, True) for d in short] + [(d, pytest.approx(n + 2.0), d, True) for d in long]
    assert left == [list(long)]


def test_zero_rate_waits_for_channel_change():
    env = simpy.Environment()
    se = np.array([0.0])
    cell = FlowScheduler(env, lambda d: linear_links(se)(d), equal, n_devices=1, outage_s=100.0)
    log = []

    def proc():
        flow = cell.start(0, 125_000)
        yield flow.done
        log.append(env.now)

    def ticker():
        yield env.timeout(5.0)
        se[0] = 1.0
        cell.channel_changed()

    env.process(proc())
    env.process(ticker())
    env.run()
    assert log == [pytest.approx(6.0)]


def test_battery_hook_cancels_flow():
    env = simpy.Environment()
    battery = {"j": 1.0}

    def on_segment(devices, dt, energy):
        battery["j"] -= float(energy.sum())
        return np.array([battery["j"] <= 0])

    cell = FlowScheduler(env, linear_links([1.0]), equal, n_devices=1, on_segment=on_segment,
                         drawn_power_w=lambda devices, radiated: np.ones(len(devices)))

    def drain():
        while True:
            yield env.timeout(0.5)
            cell.channel_changed()

    result = []

    def proc():
        flow = cell.start(0, 1_000_000)  # 8 s needed, 1 J at 1 W lasts 1 s
        yield flow.done
        result.append((env.now, flow.cancelled_reason))

    env.process(drain())
    env.process(proc())
    env.run(until=20)
    assert result == [(pytest.approx(1.0), "battery")]


def _makespan(allocator, se, sizes, starts, tick_s=None, se_after_tick=None) -> float:
    env = simpy.Environment()
    se_now = np.array(se, dtype=float)
    cell = FlowScheduler(env, lambda d: linear_links(se_now)(d), allocator, n_devices=len(se))
    ends = []

    def proc(device):
        yield env.timeout(starts[device])
        flow = cell.start(device, sizes[device])
        yield flow.done
        ends.append(env.now)

    for d in range(len(se)):
        env.process(proc(d))
    if tick_s is not None:
        def tick():
            yield env.timeout(tick_s)
            se_now[:] = se_after_tick
            cell.channel_changed()
        env.process(tick())
    env.run()
    return max(ends)


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.1, 7.0), st.integers(1_000, 500_000), st.floats(0.0, 2.0)), min_size=1, max_size=8))
def test_min_time_uplink_phase_never_longer_than_equal(flows):
    se, sizes, starts = zip(*flows)
    t_min = _makespan(min_time, se, sizes, starts)
    t_equal = _makespan(equal, se, sizes, starts)
    assert t_min <= t_equal * (1 + 1e-9)


# ---------------------------------------------------------------- completion by remaining bytes
def test_completion_at_large_clock_is_by_bytes_not_relative_time():
    # Old code snapped any flow within 1e-9 * now of finishing: at t = 1e6 s that is 1 ms,
    # i.e. 1,250 bytes at 10 Mbit/s delivered for free.
    env = simpy.Environment(initial_time=1e6)
    cell = make(env, [10.0, 10.0], bandwidth_hz=2e6)  # 10 Mbit/s each while both send
    ends = {}

    def proc(d, nbytes):
        flow = cell.start(d, nbytes)
        yield flow.done
        ends[d] = env.now - 1e6

    env.process(proc(0, 1_250_000))           # 1 s at 10 Mbit/s
    env.process(proc(1, 1_250_000 + 1_250))   # 1,250 bytes more: 1 ms later at 10 Mbit/s...
    env.run()
    assert ends[0] == pytest.approx(1.0, abs=1e-9)
    # ...but alone from t = 1 s it has the whole 20 Mbit/s: 0.5 ms later.
    assert ends[1] == pytest.approx(1.0005, abs=1e-9)


def test_allocation_hook_may_re_enter_the_scheduler():
    # The engine's downlink hook reallocates co-channel neighbours whose activity changes,
    # and they can reallocate this cell back while it is still notifying. Here the hook
    # cancels a flow from inside the notification: the scheduler used to continue with the
    # arrays of before the nested call (IndexError: boolean index did not match).
    env = simpy.Environment()
    cell = None
    flows = {}

    def hook(devices, radiated_w):
        if devices.size == 2 and env.now == 1.5:
            cell.cancel(flows[1], "hook")

    cell = FlowScheduler(env, linear_links([1.0, 1.0]), equal, n_devices=2, on_allocation=hook)
    out = {}

    def proc(device, nbytes, delay):
        yield env.timeout(delay)
        flows[device] = cell.start(device, nbytes)
        yield flows[device].done
        out[device] = (env.now, flows[device].cancelled_reason)

    def tick():
        yield env.timeout(1.5)
        cell.channel_changed()  # its notification cancels flow 1 from inside

    env.process(proc(0, 250_000, 0.0))  # 2 Mbit: 1 Mbit alone by t = 1, 0.25 Mbit shared to t = 1.5
    env.process(proc(1, 250_000, 1.0))
    env.process(tick())
    env.run()
    assert out[1] == (1.5, "hook")
    assert out[0] == (pytest.approx(2.25), "")  # alone again from t = 1.5: 0.75 Mbit at 1 Mbit/s
