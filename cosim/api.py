"""The Python API: load a scenario, run it, open a run directory, compare variants.

Re-exported at the package top level (``import cosim`` stays cheap: the names are
imported on first use, and PyTorch only when a simulation is set up)::

    import cosim

    scenario = cosim.load_scenario("scenarios/smoke.yaml", overrides={"fl.rounds": 3})
    run = cosim.run(scenario, out="runs/smoke3", progress=False)
    run.rounds[["round", "end_s", "accuracy", "energy_j"]]   # pandas DataFrame
    run.summary["final_accuracy"]

    again = cosim.open_run("runs/smoke3")                     # the same, from disk
    grid = cosim.compare("scenarios/smoke.yaml", vary={"learning.algorithm": ["fedavg", "local"]},
                         out="runs/cmp", repeats=2)            # one row per cell and repeat
    tuned = cosim.tune("scenarios/smoke.yaml", "fedavg", grid={"lr": [1e-3, 5e-3]}, out="runs/tune")
    tuned.table, tuned.chosen                                  # per-setting validation means; {"...lr": 0.005}
    cosim.compare(..., params=tuned.file)                      # fedavg runs use the tuned values

``overrides`` is a mapping ``{"key.path": value}`` (values used as given) or a list of
``"key.path=value"`` strings (values parsed as YAML, exactly like ``--set``). Errors in
a scenario raise :class:`cosim.scenario.ScenarioError` whose ``problems`` are one line
each, naming the key, the bad value and what is allowed. The command line
(:mod:`cosim.cli`) is a thin layer over these functions.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from cosim.params import ParamsArg, load_params, params_overrides
from cosim.progress import ProgressReporter
from cosim.scenario import Scenario, ScenarioError
from cosim.scenario import load_scenario as _load_file
from cosim.scenario import loads_scenario

if TYPE_CHECKING:
    import pandas as pd

    from cosim.tuning import Tuning

#: Scenario overrides: ``{"fl.rounds": 5}`` or ``["fl.rounds=5"]``.
Overrides = Union[Mapping[str, Any], Sequence[str], None]
#: ``True``: print progress to stdout (a bar on a usable terminal, else one line per round);
#: ``False``/``None``: nothing; a callable: called with each round's ``cosim.engine.RoundProgress``.
ProgressArg = Union[bool, None, Callable[[Any], None]]


def _override_items(overrides: Overrides) -> list[str | tuple[str, Any]]:
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [(str(key), value) for key, value in overrides.items()]
    if isinstance(overrides, (str, bytes)):
        raise TypeError("overrides: expected a mapping {'key.path': value} or a list of 'key.path=value' strings, "
                        f"got the string {overrides!r}")
    return list(overrides)


def _yaml_text(value: Any) -> str:
    """``value`` as the text of a ``--set KEY=VALUE`` (strings as they are, the rest as flow YAML)."""
    from cosim.params import value_text

    return value_text(value)


def _override_args(overrides: Overrides) -> list[str]:
    """Overrides as ``--set`` strings (for the re-runnable command recorded in ``manifest.json``)."""
    return [item if isinstance(item, str) else f"{item[0]}={_yaml_text(item[1])}"
            for item in _override_items(overrides)]


def load_scenario(path: str | Path, overrides: Overrides = None) -> Scenario:
    """Load, override and fully validate the scenario file at ``path``.

    Checks everything ``cosim validate`` checks, including the parameters only the
    radio and learning layers know (algorithm hyper-parameters, model shape, mobility
    parameters). Raises :class:`~cosim.scenario.ScenarioError` listing every problem.
    """
    from cosim.scenario.components import check_components

    scenario = _load_file(path, _override_items(overrides))
    check_components(scenario)
    return scenario


def _scenario(scenario: Scenario | str | Path, overrides: Overrides) -> Scenario:
    if isinstance(scenario, Scenario):
        if overrides:
            scenario = loads_scenario(scenario.to_yaml(), _override_items(overrides), source=f"scenario {scenario.name}",
                                      default_name=scenario.name)
        from cosim.scenario.components import check_components

        check_components(scenario)
        return scenario
    if isinstance(scenario, (str, Path)):
        return load_scenario(scenario, overrides)
    raise TypeError(f"scenario: expected a Scenario or a path to a YAML file, got {type(scenario).__name__}")


def _check_out_dir(out_dir: Path) -> None:
    """Fail before simulating if ``out_dir`` can never become a directory."""
    node = out_dir
    while not node.exists() and node != node.parent:
        node = node.parent
    if node.exists() and not node.is_dir():
        raise ScenarioError(f"out {out_dir}: {node} exists and is not a directory")


def _reporter(progress: ProgressArg, rounds: int) -> tuple[Callable[[Any], None] | None, Callable[[], None]]:
    if progress is True:
        reporter = ProgressReporter(rounds, sys.stdout)
        return reporter, reporter.close
    if progress is None or progress is False:
        return None, lambda: None
    if callable(progress):
        return progress, lambda: None
    raise TypeError(f"progress: expected True, False or a callable, got {progress!r}")


def rerun_command(args: Sequence[str]) -> list[str]:
    """The command that repeats ``cosim ARGS...``: this interpreter, ``-m cosim``, then ``args``."""
    return [sys.executable, "-m", "cosim", *args]


def run(
    scenario: Scenario | str | Path,
    out: str | Path | None = None,
    overrides: Overrides = None,
    progress: ProgressArg = True,
    command: Sequence[str] | None = None,
    overwrite: bool = False,
    params: ParamsArg = None,
) -> Run:
    """Run a scenario to the end, write its run directory and return it as a :class:`Run`.

    ``scenario`` is a :class:`~cosim.scenario.Scenario` or a YAML path; ``overrides`` are
    applied to it (see the module docstring). ``out`` defaults to the scenario's
    ``output.directory``. ``command`` is what ``manifest.json`` records (default: the
    equivalent ``python -m cosim run ...`` command line, which re-runs this run).
    ``params``: tuned-parameter file(s) or mapping (:mod:`cosim.params`): the values for
    the run's algorithm are applied after ``overrides`` (and recorded as ``--set``).

    The run directory must be cosim's to write (see ``cosim.engine.rundir``): new or
    empty, or an earlier cosim run when ``overwrite`` is true; one taken from the
    scenario (``out`` not given) must lie inside ``runs/``. A directory another run is
    using fails at once (``cosim.engine.RunDirError``).

    A first Ctrl-C, SIGTERM or SIGHUP stops at the end of the current round, writes the
    traces so far and a checkpoint and raises ``cosim.engine.RunInterrupted`` (continue
    with :func:`resume`).
    """
    resolved = _scenario(scenario, overrides)
    tuned = params_overrides(load_params(params), resolved.learning.algorithm.name) if params else []
    if tuned:
        overrides = [*_override_items(overrides), *tuned]
        resolved = _scenario(scenario, overrides)
    out_dir = Path(out) if out is not None else resolved.output_dir
    _check_out_dir(out_dir)
    again = ["--overwrite"] if overwrite else []
    if command is None:
        if isinstance(scenario, (str, Path)):
            sets = [arg for item in _override_args(overrides) for arg in ("--set", item)]
            command = rerun_command(["run", str(scenario), *sets, "--out", str(out_dir), *again])
        else:  # the run directory's scenario.yaml is the resolved scenario (rerun in place: --overwrite)
            command = rerun_command(["run", str(out_dir / "scenario.yaml"), "--out", str(out_dir), "--overwrite"])
    from cosim.engine import ALL_STOP_SIGNALS, run_simulation

    callback, close = _reporter(progress, resolved.fl.rounds)
    try:
        summary = run_simulation(resolved, out_dir, progress=callback, command=list(command), overwrite=overwrite,
                                 explicit_out=out is not None,
                                 scenario_file=scenario if isinstance(scenario, (str, Path)) else None,
                                 stop_signals=ALL_STOP_SIGNALS)
    finally:
        close()
    return Run(out_dir, _summary=summary)


def resume(run_dir: str | Path, progress: ProgressArg = True, command: Sequence[str] | None = None) -> Run:
    """Continue the interrupted run in ``run_dir`` from its last checkpoint; return the finished :class:`Run`.

    The trace files end up byte-identical to those of an uninterrupted run. The
    checkpoint is verified first (format, checksum, the run's scenario hash and run id):
    a foreign, edited, corrupt or truncated one raises ``cosim.engine.CheckpointError``.
    """
    from cosim.engine import ALL_STOP_SIGNALS, resume_simulation

    directory = Path(run_dir)
    scenario_file = directory / "scenario.yaml"
    rounds = _load_file(scenario_file).fl.rounds if scenario_file.is_file() else 0
    callback, close = _reporter(progress, rounds)
    if command is None:
        command = rerun_command(["run", "--resume", str(directory)])
    try:
        summary = resume_simulation(directory, progress=callback, command=list(command), stop_signals=ALL_STOP_SIGNALS)
    finally:
        close()
    return Run(directory, _summary=summary)


@dataclass
class Run:
    """A run directory, read lazily: trace tables as pandas DataFrames, summary, scenario.

    - ``events``, ``rounds``, ``devices``: typed DataFrames (``events.kind`` and
      ``devices.profile`` are categoricals; see :func:`analysis.io.read_trace`);
    - ``summary``: ``summary.json`` as a dict (empty for an unfinished run);
    - ``scenario``: the resolved, validated :class:`~cosim.scenario.Scenario`;
    - ``manifest``: ``manifest.json`` (versions, seed, command, wall-clock times).
    """

    path: Path
    _summary: Mapping[str, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    def _table(self, name: str) -> pd.DataFrame:
        from analysis.io import read_trace

        return read_trace(self.path, name)

    @cached_property
    def events(self) -> pd.DataFrame:
        """One row per event (``time_s``, ``round``, ``device``, ``cell``, ``kind``, ``bytes``, ...)."""
        return self._table("events")

    @cached_property
    def rounds(self) -> pd.DataFrame:
        """One row per round (``start_s``, ``end_s``, bytes, ``energy_j``, ``accuracy``, ...)."""
        return self._table("rounds")

    @cached_property
    def devices(self) -> pd.DataFrame:
        """One row per device (profile, cell, energy by component, bytes, final accuracy, position)."""
        return self._table("devices")

    @cached_property
    def summary(self) -> dict[str, Any]:
        """``summary.json`` (headline numbers); ``{}`` while the run is unfinished."""
        if self._summary is not None:
            return dict(self._summary)
        from analysis.io import read_summary

        return read_summary(self.path) if self.finished else {}

    @cached_property
    def manifest(self) -> dict[str, Any]:
        """``manifest.json``: versions, seed, the command that re-runs it, wall-clock times."""
        import json

        path = self.path / "manifest.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    @cached_property
    def scenario(self) -> Scenario:
        """The run's resolved scenario (``scenario.yaml``), validated."""
        return _load_file(self.path / "scenario.yaml")

    @property
    def finished(self) -> bool:
        """Whether the run ran to its last round (it has a ``summary.json``)."""
        return self._summary is not None or (self.path / "summary.json").is_file()

    @property
    def command(self) -> str:
        """The recorded command as one shell line (``""`` if none was recorded)."""
        recorded = self.manifest.get("command") or []
        return shlex.join(str(arg) for arg in recorded)


def open_run(path: str | Path) -> Run:
    """Open the run directory ``path`` (finished or interrupted) as a :class:`Run`.

    Raises ``FileNotFoundError`` when ``path`` is not a run directory (no ``scenario.yaml``).
    """
    directory = Path(path)
    if not (directory / "scenario.yaml").is_file():
        raise FileNotFoundError(2, "not a run directory (no scenario.yaml)", str(directory))
    return Run(directory)


def _vary_items(vary: Mapping[str, Sequence[Any]] | Sequence[str]) -> list[str]:
    if isinstance(vary, Mapping):
        items = []
        for key, values in vary.items():
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
                raise TypeError(f"vary {key}: expected a list of values, got {values!r}")
            items.append(f"{key}=" + ",".join(_yaml_text(v) for v in values))
        return items
    if isinstance(vary, (str, bytes)):
        raise TypeError(f"vary: expected a mapping {{'key.path': [values]}} or a list of 'KEY=V1,V2' strings, "
                        f"got the string {vary!r}")
    return list(vary)


def compare(
    scenario: str | Path,
    vary: Mapping[str, Sequence[Any]] | Sequence[str],
    out: str | Path,
    overrides: Overrides = None,
    repeats: int = 1,
    workers: int = 1,
    baseline: str | Mapping[str, Any] | None = None,
    target_accuracy: float | None = None,
    progress: ProgressArg = True,
    backend: str = "local",
    address: str = "auto",
    params: ParamsArg = None,
) -> pd.DataFrame:
    """Run the grid of ``vary`` values × ``repeats`` (as ``cosim compare``) and return its table.

    ``vary`` maps a key to its values (``{"learning.algorithm": ["fedavg", "local"]}``)
    or lists ``"KEY=V1,V2"`` strings. Repeat ``k`` runs with ``seed + k``; finished runs
    under ``out/cells/`` are reused. Returns the rows of ``out/comparison.parquet``: one
    per cell and repeat, a ``str`` column per varied key, then ``repeat``, ``seed``,
    ``run_dir`` and the metrics. ``frame.attrs`` holds ``varied`` (the key columns) and
    ``out``. ``progress=True`` prints a line per finished run. ``backend="ray"`` runs the
    grid as Ray tasks on the cluster at ``address`` (``HOST:PORT``, ``auto`` or ``local``).
    ``params``: tuned-parameter file(s) or mapping (:mod:`cosim.params`), applied to the
    runs of the algorithms it names, after ``overrides``, before ``vary``.
    """
    from analysis.io import read_comparison_frame
    from cosim.grid import compare as run_grid

    if isinstance(baseline, Mapping):
        baseline = ",".join(f"{k}={_yaml_text(v)}" for k, v in baseline.items())
    run_grid(scenario, _vary_items(vary), out, sets=_override_args(overrides), repeats=repeats, workers=workers, baseline=baseline,
             target_accuracy=target_accuracy, log=_log(progress), backend=backend, address=address,
             params=load_params(params))
    return read_comparison_frame(out)


def _log(progress: ProgressArg) -> Callable[[str], None] | None:
    if progress is True:
        return lambda line: print(line, flush=True)
    return progress if callable(progress) else None


def tune(
    scenario: str | Path,
    algorithm: str,
    grid: Mapping[str, Sequence[Any]] | Sequence[str],
    out: str | Path,
    metric: str = "val_accuracy",
    seeds: int = 1,
    overrides: Overrides = None,
    workers: int = 1,
    progress: ProgressArg = True,
    backend: str = "local",
    address: str = "auto",
) -> Tuning:
    """Tune ``algorithm`` on the validation splits (as ``cosim tune``); see :mod:`cosim.tuning`.

    ``grid`` maps a key to its values (``{"lr": [1e-3, 5e-3]}``; a key without a dot is
    an algorithm parameter) or lists ``"KEY=V1,V2"`` strings. Each setting runs with
    ``seeds`` seeds; the best mean ``metric`` (a validation metric; test metrics are
    refused) wins, ties to the first setting in grid order. Finished runs under ``out``
    are reused. Returns a :class:`~cosim.tuning.Tuning`: ``table`` (DataFrame, one row per
    setting), ``runs``, ``chosen`` (``{key: value}``), ``params`` and ``file``
    (``out/tuned.yaml``, for ``compare(..., params=...)``).
    """
    from cosim.tuning import tune as run_tuning

    return run_tuning(scenario, algorithm, _vary_items(grid), out, metric=metric, seeds=seeds,
                      sets=_override_args(overrides), workers=workers, log=_log(progress), backend=backend,
                      address=address)
