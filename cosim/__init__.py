"""cosim: SimPy co-simulation of personalized federated learning over wireless networks.

The only package that joins ``radio`` (physics) and ``learning`` (PyTorch): scenario
schema, discrete-event engine, policies, traces and the command line.

Python API (see :mod:`cosim.api`; imported on first use, so ``import cosim`` loads
neither PyTorch nor pandas)::

    cosim.load_scenario(path, overrides={...}) -> Scenario
    cosim.run(scenario_or_path, out=..., overrides=..., progress=True) -> Run
    cosim.resume(run_dir) -> Run
    cosim.open_run(run_dir) -> Run      # .events .rounds .devices (DataFrames) .summary .scenario
    cosim.compare(scenario, vary={...}, out=..., params=None) -> pandas.DataFrame
    cosim.tune(scenario, algorithm, grid={...}, out=...) -> Tuning   # .table .chosen .file (tuned.yaml)
    cosim.checks.check_algorithm(cls) / check_policy / check_allocator   # plugin conformance
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> module that defines it (imported lazily by ``__getattr__``).
_LAZY = {
    "load_scenario": "cosim.api",
    "run": "cosim.api",
    "resume": "cosim.api",
    "open_run": "cosim.api",
    "compare": "cosim.api",
    "tune": "cosim.api",
    "Run": "cosim.api",
    "Scenario": "cosim.scenario",
    "ScenarioError": "cosim.scenario",
}

__all__ = ["Run", "Scenario", "ScenarioError", "__version__", "compare", "load_scenario", "open_run", "resume",
           "run", "tune"]

if TYPE_CHECKING:  # for type checkers and IDEs only
    from cosim.api import Run, compare, load_scenario, open_run, resume, run, tune
    from cosim.scenario import Scenario, ScenarioError


#: Submodules reachable as attributes without importing them first (``cosim.checks.check_policy``).
_SUBMODULES = ("checks",)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"cosim.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cosim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_SUBMODULES})
