"""scenarios/cifar10_50dev.yaml: urban_50dev with CIFAR-10; validates without the data
(like urban_50dev without Fashion-MNIST) and runs end to end on tiny CIFAR-format files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import cosim
from cosim.scenario import ScenarioError
from learning.data import cifar10 as c10

ROOT = Path(__file__).resolve().parents[2]
CIFAR = ROOT / "scenarios" / "cifar10_50dev.yaml"
URBAN = ROOT / "scenarios" / "urban_50dev.yaml"
RECORDS = 40  # per tiny batch file: 200 training images, 4 per class in the test batch


@pytest.fixture
def no_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$COSIM_DATA_DIR and HOME point at empty folders; any download attempt fails the test."""
    (tmp_path / "data").mkdir()
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("COSIM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("COSIM_CACHE_DIR", raising=False)

    def no_network(url: str, dest: Path, timeout: float = 10.0) -> None:
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(c10, "download_file", no_network)
    return tmp_path / "data"


def test_only_data_model_patch_and_names_differ_from_urban() -> None:
    urban, cifar = yaml.safe_load(URBAN.read_text()), yaml.safe_load(CIFAR.read_text())
    assert cifar["learning"]["dataset"] == {"name": "cifar10", "path": None, "params": {}}
    assert cifar["learning"]["model"] == {**urban["learning"]["model"], "patch_size": 4}
    assert cifar["name"] == "cifar10_50dev" and cifar["output"]["directory"] == "runs/cifar10_50dev"
    for key in ("learning", "name", "output"):
        del urban[key], cifar[key]
    assert cifar == urban


def test_validates_without_the_data(no_data: Path) -> None:
    scenario = cosim.load_scenario(CIFAR)  # everything `cosim validate` checks; the data is not loaded
    assert scenario.learning.dataset.name == "cifar10" and scenario.devices.count == 50


def test_a_patch_size_that_does_not_divide_32_is_a_one_line_error(no_data: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        cosim.load_scenario(CIFAR, ["learning.model.patch_size=7"])
    assert info.value.problems == ["learning.model.patch_size: patch_size 7 does not divide the image size "
                                   "(32, 32) of 3 channel(s) (allowed: 1, 2, 4, 8, 16, 32)"]


def test_runs_when_the_data_is_present(no_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(c10, "RECORDS_PER_FILE", RECORDS)
    for i, name in enumerate((*c10.TRAIN_FILES, c10.TEST_FILE)):
        records = bytearray()
        for k in range(RECORDS):
            label = (k + i) % 10
            records += bytes([label]) + bytes([(label * 25 + p % 7) % 256 for p in range(3072)])
        (no_data / name).write_bytes(bytes(records))
    run = cosim.run(CIFAR, out=tmp_path / "run", progress=False,
                    overrides=["fl.rounds=2", "fl.devices_per_round=2",
                               "learning.model={name: vit, patch_size: 8, dim: 16, depth: 1, heads: 2}"])
    assert run.summary["rounds"] == 2 and 0.0 <= run.summary["final_accuracy"] <= 1.0
    assert run.summary["energy_j"] > 0
    assert run.scenario.learning.dataset.name == "cifar10"


@pytest.mark.parametrize("scenario", [CIFAR, URBAN], ids=["cifar10", "fashion_mnist"])
def test_unknown_loader_parameter_is_caught_by_validation(scenario: Path, no_data: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        cosim.load_scenario(scenario, ["learning.dataset.params.bogus=1"])
    assert info.value.problems[0].startswith("learning.dataset.params.bogus: unknown parameter of ")
    assert info.value.problems[0].endswith("(allowed: download, cache_dir)")
    cosim.load_scenario(scenario, ["learning.dataset.params.download=false"])
