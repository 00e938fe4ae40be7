"""Street-grid (Manhattan) mobility on a networkx grid graph.

Streets form a square grid: intersections every ``block_m`` metres, built as
``networkx.grid_2d_graph`` with node ``(i, j)`` at ``(i·block_m, j·block_m)``, for
all intersections inside the area. Each device starts at a random intersection,
picks a random destination intersection, and walks a shortest path along the
streets at its own constant speed (uniform in ``speed_mps``, drawn once per
device). On arrival it picks a new destination (never its current intersection).

Routing is precomputed once: a next-hop table ``next_hop[d, u]`` (the neighbour of
``u`` on a shortest path from ``u`` to destination ``d``), obtained from the
predecessor trees of one breadth-first search per intersection
(``scipy.sparse.csgraph``) on the graph's adjacency matrix. ``step`` is then fully
vectorised: it loops over edges crossed (each iteration moves every device with
time left to its next intersection or stops it mid-edge), never over devices, so
overshoot across any number of intersections in one step is exact.

The table holds n_nodes² int16 entries, so the grid is limited to
:data:`MAX_INTERSECTIONS` intersections (pick a larger ``block_m`` otherwise).
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
from numpy.typing import NDArray
from scipy.sparse.csgraph import breadth_first_order

from radio.mobility.base import MobilityModel, check_real, check_speed_range

__all__ = ["StreetGrid", "MAX_INTERSECTIONS"]

MAX_INTERSECTIONS: int = 4096
"""Largest grid supported (next-hop table of 4096² int16 = 32 MiB, built in ~1 s)."""


class StreetGrid(MobilityModel):
    """Devices walk shortest paths between random intersections of a street grid.

    Args:
        n_devices: number of devices.
        area_m: (width, height) of the area [m].
        rng: generator for start, destinations and speeds.
        block_m: street spacing [m], > 0; the grid must have at least 2 and at
            most :data:`MAX_INTERSECTIONS` intersections.
        speed_mps: (min, max) per-device speed range [m/s], 0 < min <= max.

    Attributes:
        graph: the ``networkx.grid_2d_graph`` of intersections (node ``(i, j)``
            at ``(i·block_m, j·block_m)``).
        node_xy_m: intersection coordinates [m], shape (n_nodes, 2), row k is
            node ``list(graph.nodes)[k]``.
    """

    PARAMS = ("block_m", "speed_mps")

    def __init__(
        self,
        n_devices: int,
        area_m: tuple[float, float],
        rng: np.random.Generator,
        *,
        block_m: float = 100.0,
        speed_mps: tuple[float, float] = (0.5, 1.5),
        **unknown: Any,
    ) -> None:
        self._reject_unknown(unknown)
        super().__init__(n_devices, area_m, rng)
        self.block_m = check_real("block_m", block_m, lo=0.0, lo_open=True)
        self.speed_range_mps = check_speed_range("speed_mps", speed_mps)
        nx_nodes = int(np.floor(self.area_m[0] / self.block_m + 1e-9)) + 1
        ny_nodes = int(np.floor(self.area_m[1] / self.block_m + 1e-9)) + 1
        n_nodes = nx_nodes * ny_nodes
        if not 2 <= n_nodes <= MAX_INTERSECTIONS:
            raise ValueError(
                f"block_m={block_m} gives {nx_nodes}x{ny_nodes}={n_nodes} intersections in "
                f"area {self.area_m} m; allowed: 2 to {MAX_INTERSECTIONS} intersections"
            )
        self.graph: nx.Graph = nx.grid_2d_graph(nx_nodes, ny_nodes)
        nodes = list(self.graph.nodes)
        ij = np.array(nodes, dtype=np.float64)
        # Clamp the last street onto the area edge if round-off put it just outside.
        self.node_xy_m = np.minimum(ij * self.block_m, self._size_m)
        adjacency = nx.to_scipy_sparse_array(self.graph, nodelist=nodes, format="csr")
        # Row d: parent of every node u in the BFS tree rooted at d, i.e. u's next hop
        # towards d on a shortest path (one BFS per intersection, construction only).
        self._next_hop = np.empty((n_nodes, n_nodes), dtype=np.int16)
        for d in range(n_nodes):
            _, pred = breadth_first_order(adjacency, d, directed=False, return_predecessors=True)
            self._next_hop[d] = pred
        n = self.n_devices
        self._n_nodes = n_nodes
        self._speed_mps = self._rng.uniform(*self.speed_range_mps, size=n)
        self._from = self._rng.integers(0, n_nodes, size=n)
        self._dest = self._draw_destinations(self._from)
        self._to = self._next_hop[self._dest, self._from]
        self._offset_m = np.zeros(n)  # distance already walked along edge from -> to
        self._pos_m = self._compute_positions()

    def _draw_destinations(self, current: NDArray[np.int64]) -> NDArray[np.int64]:
        """Uniform destination intersections different from ``current``."""
        r = self._rng.integers(0, self._n_nodes - 1, size=current.size)
        return r + (r >= current)

    def _compute_positions(self, ids: NDArray[np.int64] | None = None) -> NDArray[np.float64]:
        sel = slice(None) if ids is None else ids
        a = self.node_xy_m[self._from[sel]]
        b = self.node_xy_m[self._to[sel]]
        frac = (self._offset_m[sel] / self.block_m)[:, None]
        # On an axis-aligned edge the fixed coordinate has b - a == 0 exactly.
        return a + (b - a) * frac

    @property
    def positions_m(self) -> NDArray[np.float64]:
        return self._pos_m.copy()

    @property
    def speeds_mps(self) -> NDArray[np.float64]:
        return self._speed_mps.copy()

    @property
    def destinations(self) -> NDArray[np.int64]:
        """Index of each device's destination intersection, shape (n_devices,)."""
        return self._dest.copy()

    def _advance(self, dt_s: float) -> NDArray[np.float64]:
        dist_m = self._walk(np.arange(self.n_devices), np.full(self.n_devices, dt_s))
        self._pos_m = self._compute_positions()
        return dist_m

    def _advance_devices(self, devices: NDArray[np.int64], dt_s: NDArray[np.float64]) -> NDArray[np.float64]:
        dist_m = self._walk(devices, np.array(dt_s, dtype=np.float64))
        self._pos_m[devices] = self._compute_positions(devices)
        return dist_m

    def positions_of(self, devices: NDArray[np.int64]) -> NDArray[np.float64]:
        return self._pos_m[devices]

    def _walk(self, ids: NDArray[np.int64], t_left_s: NDArray[np.float64]) -> NDArray[np.float64]:
        """Walk devices ``ids`` for ``t_left_s`` [s] each (modified); path length [m] per device."""
        dist_m = np.zeros(ids.size)
        while True:
            loc = np.flatnonzero(t_left_s > 0.0)
            if loc.size == 0:
                break
            mov = ids[loc]
            speed = self._speed_mps[mov]
            rest_m = self.block_m - self._offset_m[mov]
            t_edge_s = rest_m / speed
            arrive = t_edge_s <= t_left_s[loc]
            go_loc, go = loc[~arrive], mov[~arrive]
            walk_m = speed[~arrive] * t_left_s[go_loc]
            self._offset_m[go] = np.minimum(self._offset_m[go] + walk_m, self.block_m)
            dist_m[go_loc] += walk_m
            t_left_s[go_loc] = 0.0
            arr_loc, arr = loc[arrive], mov[arrive]
            if arr.size:
                dist_m[arr_loc] += rest_m[arrive]
                t_left_s[arr_loc] -= t_edge_s[arrive]
                here = self._to[arr]
                self._from[arr] = here
                self._offset_m[arr] = 0.0
                done = here == self._dest[arr]
                if np.any(done):
                    self._dest[arr[done]] = self._draw_destinations(here[done])
                self._to[arr] = self._next_hop[self._dest[arr], here]
        return dist_m
