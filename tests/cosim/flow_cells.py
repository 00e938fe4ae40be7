"""Hand-made cells for the FlowScheduler tests (``test_flows.py``, ``test_flow_links.py``).

Links whose rate is linear in the share (a fixed spectral efficiency per device), the
``equal`` and ``min_time`` allocators written out, and ``make`` building a scheduler on them.
"""

import numpy as np

from cosim.engine.flows import FlowScheduler
from radio.abstraction import LinkAbstraction
from radio.share import ShareLinks

SHANNON = LinkAbstraction("shannon", 0.0, 100.0, 0.0)  # plain log2(1 + SINR), no cap, no overhead


def linear_links(se, bandwidth_hz=1e6, power_w=None):
    """Links whose rate is x * B * se (fixed PSD: SINR 2^se - 1 on any share)."""
    se = np.asarray(se, dtype=float)
    power = np.zeros(se.size) if power_w is None else np.asarray(power_w, dtype=float)
    xp = np.full(se.size, np.inf)
    return lambda d: ShareLinks(bandwidth_hz, 50, np.exp2(se[d]) - 1.0, xp[d], power[d], SHANNON)


def equal(links, remaining, average):
    return np.full(links.n, 1.0 / links.n)


def min_time(links, remaining, average):
    w = remaining / links.full_share_rate_bps
    return w / w.sum()


def make(env, se_by_device, allocator=equal, bandwidth_hz=1e6, on_segment=None, power_w=None):
    se = np.asarray(se_by_device, dtype=float)
    return FlowScheduler(env, linear_links(se, bandwidth_hz, power_w), allocator, n_devices=len(se),
                         on_segment=on_segment)
