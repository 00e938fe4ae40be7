"""Availability and staleness plots rebuild their data from traces exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.async_plots import availability_intervals, staleness_values, update_intervals


def events(rows: list[tuple[float, int, str]]) -> pd.DataFrame:
    return pd.DataFrame({"time_s": [r[0] for r in rows], "device": [r[1] for r in rows], "kind": [r[2] for r in rows]})


def test_availability_intervals_from_events():
    ev = events([(0.0, 0, "available"), (0.0, 1, "unavailable"), (1.5, 0, "unavailable"), (2.0, 1, "available"),
                 (3.0, 0, "available"), (4.0, 1, "unavailable")])
    assert availability_intervals(ev, [0, 1, 2], end_s=5.0) == [(0, 0.0, 1.5), (0, 3.0, 5.0), (1, 2.0, 4.0),
                                                                (2, 0.0, 5.0)]


def test_update_intervals_end_at_their_closing_event():
    ev = events([(0.0, 0, "selected"), (0.0, 1, "selected"), (0.5, 0, "dl_end"), (1.0, 1, "dropout"),
                 (2.0, 0, "ul_end"), (2.0, 0, "selected"), (2.5, 0, "cancelled")])
    assert update_intervals(ev) == [(1, 0.0, 1.0, "dropout"), (0, 0.0, 2.0, "ul_end"), (0, 2.0, 2.5, "cancelled")]


def test_staleness_values_read_the_updates_table(tmp_path: Path):
    pd.DataFrame({"device": [0, 1, 2], "staleness": [0, 3, 1]}).to_csv(tmp_path / "updates.csv", index=False)
    assert staleness_values(tmp_path).tolist() == [0.0, 3.0, 1.0]
    sync = tmp_path / "sync"
    sync.mkdir()
    pd.DataFrame({"time_s": [1.0, 2.0, 2.5], "round": [0, 0, 0], "device": [0, 1, 1], "cell": [0, 0, 0],
                  "kind": ["ul_end", "ul_end", "dl_end"], "bytes": [1, 1, 1], "rate_bps": [1.0] * 3,
                  "energy_j": [0.0] * 3, "duration_s": [0.0] * 3, "detail": [""] * 3}).to_csv(sync / "events.csv",
                                                                                           index=False)
    assert np.array_equal(staleness_values(sync), np.zeros(2))
