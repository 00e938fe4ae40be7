"""Tuned-parameter files: ``cosim tune`` writes them, ``run``/``compare --params FILE`` read them.

A file maps an algorithm name to the scenario values chosen for it::

    fedavg:
      learning.algorithm.params.lr: 0.005
      learning.algorithm.params.local_epochs: 2

A key without a dot names a parameter of the algorithm (``lr`` is
``learning.algorithm.params.lr``); a dotted key is any scenario key. A run whose
``learning.algorithm.name`` is one of the file's algorithms gets that algorithm's values
as overrides applied after ``--set`` (the algorithm's own value beats one given to every
run) and before ``compare --vary`` (a key swept explicitly is swept); runs of other
algorithms are left alone. Several files may be given (one per tuned algorithm);
an algorithm named in two of them is an error. The seed and the algorithm's name
cannot be set by a file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import yaml

from cosim.scenario import ScenarioError

#: Prefix a dot-less key stands for.
ALGORITHM_PARAMS = "learning.algorithm.params."
#: Keys a tuned-parameter file may not set (they choose which run it is, not how it trains).
FORBIDDEN_KEYS = ("seed", "learning", "learning.algorithm", "learning.algorithm.name")

#: ``{algorithm: {scenario key: value}}``, with full keys.
TunedParams = dict[str, dict[str, Any]]
#: What ``params=`` accepts: a file, several files, or the mapping itself.
ParamsArg = Union[str, Path, Sequence[Union[str, Path]], Mapping[str, Mapping[str, Any]], None]


def full_key(key: str) -> str:
    """``lr`` -> ``learning.algorithm.params.lr``; a dotted key is returned as is."""
    key = key.strip()
    return key if "." in key else f"{ALGORITHM_PARAMS}{key}"


def algorithm_problem(name: str) -> str | None:
    """Why ``name`` is not an algorithm a scenario may name (one line), or None when it is."""
    from cosim.scenario.registries import IMPORT_PATH, allowed_text, names

    if name in names("algorithms") or IMPORT_PATH.match(name):
        return None
    return f"algorithm {name!r} is not one of {allowed_text('algorithms')}"


def check_params(data: Any, source: str) -> TunedParams:
    """Validate a parsed tuned-parameter mapping; return it with full keys. One line per problem."""
    if not isinstance(data, Mapping) or not data:
        raise ScenarioError(f"{source}: expected a mapping algorithm -> {{key: value}}, got {type(data).__name__}")
    result: TunedParams = {}
    problems: list[str] = []
    for algorithm, values in data.items():
        name = str(algorithm)
        problem = algorithm_problem(name)
        if problem is not None:
            problems.append(f"{source}: {problem}")
            continue
        if not isinstance(values, Mapping) or not values:
            problems.append(f"{source}: {name}: expected a mapping of scenario keys to values, got {values!r}")
            continue
        chosen: dict[str, Any] = {}
        for key, value in values.items():
            full = full_key(str(key))
            if full in FORBIDDEN_KEYS or str(key).strip() in FORBIDDEN_KEYS:
                problems.append(f"{source}: {name}.{key}: cannot be set by a tuned-parameter file "
                                f"(not allowed: {', '.join(FORBIDDEN_KEYS)})")
            elif full in chosen:
                problems.append(f"{source}: {name}.{key}: given twice")
            else:
                chosen[full] = value
        result[name] = chosen
    if problems:
        raise ScenarioError(problems)
    return result


def read_params_file(path: str | Path) -> TunedParams:
    """Read and validate one tuned-parameter YAML file (read like a scenario file: the same
    size cap, regular files and pipes only, bounded YAML)."""
    from cosim.scenario.yaml_safe import parse_yaml, read_scenario_text

    file = Path(path)
    text = read_scenario_text(file)  # one-line ScenarioError naming the file
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ScenarioError(f"{file}: not valid YAML ({first})") from None
    return check_params(data, str(file))


def load_params(params: ParamsArg) -> TunedParams:
    """Merge ``params`` (files or a mapping) into one ``{algorithm: {full key: value}}``."""
    if params is None:
        return {}
    if isinstance(params, Mapping):
        return check_params(params, "params")
    sources = [params] if isinstance(params, (str, Path)) else list(params)
    merged: TunedParams = {}
    owner: dict[str, str] = {}
    for source in sources:
        for algorithm, values in read_params_file(source).items():
            if algorithm in merged:
                raise ScenarioError(f"--params {source}: algorithm {algorithm} is also tuned in {owner[algorithm]}")
            merged[algorithm], owner[algorithm] = values, str(source)
    return merged


def value_text(value: Any) -> str:
    """``value`` as the text of a ``--set KEY=VALUE`` (strings as they are, the rest as flow YAML)."""
    if isinstance(value, str):
        return value
    text: str = yaml.safe_dump(value, default_flow_style=True, width=10**9)
    return text.removesuffix("\n...\n").strip()


def params_overrides(params: Mapping[str, Mapping[str, Any]], algorithm: str) -> list[str]:
    """The ``key=value`` overrides ``params`` holds for ``algorithm`` (``[]`` when it has none)."""
    return [f"{key}={value_text(value)}" for key, value in params.get(algorithm, {}).items()]


def dump_params(params: Mapping[str, Mapping[str, Any]], header: Sequence[str] = ()) -> str:
    """YAML text of a tuned-parameter file, each ``header`` line as a leading comment."""
    body = yaml.safe_dump({a: dict(v) for a, v in params.items()}, sort_keys=False, default_flow_style=False)
    return "".join(f"# {line}\n" for line in header) + body
