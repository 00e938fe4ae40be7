"""Mobility models over arrays of devices, and their registry.

``MOBILITY`` maps the scenario name of each model to its class; every class is
constructed as ``Model(n_devices, area_m, rng, **params)`` (see
:class:`radio.mobility.base.MobilityModel` for the shared contract).
"""

from __future__ import annotations

from radio.mobility.base import MobilityModel
from radio.mobility.gauss_markov import GaussMarkov
from radio.mobility.random_waypoint import RandomWaypoint
from radio.mobility.static import Static
from radio.mobility.street_grid import StreetGrid

__all__ = ["MOBILITY", "MobilityModel", "Static", "RandomWaypoint", "GaussMarkov", "StreetGrid"]

MOBILITY: dict[str, type[MobilityModel]] = {
    "static": Static,
    "random_waypoint": RandomWaypoint,
    "gauss_markov": GaussMarkov,
    "street_grid": StreetGrid,
}
