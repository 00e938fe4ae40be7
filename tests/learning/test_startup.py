"""Start-up work a run does not need is not done: the parsed Fashion-MNIST cache (hit,
invalidated by a changed source, rejected when corrupt), model construction without
sympy, training without ``torch._dynamo``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import learning.data.fashion_mnist as fm
from learning.models import build_model

HAVE_REAL = all((fm.SYSTEM_DIR / f"{name}.gz").is_file() for name, _ in fm.FILES.values())


def _fresh_python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env=env).stdout.strip()


@pytest.fixture
def copy_of_fmnist(tmp_path: Path) -> Path:
    if not HAVE_REAL:
        pytest.skip("dataset-fashion-mnist not installed")
    folder = tmp_path / "src"
    shutil.copytree(fm.SYSTEM_DIR, folder)
    return folder


def _equal(a: fm.ArrayDataset, b: fm.ArrayDataset) -> bool:
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("train_x", "train_y", "test_x", "test_y"))


def test_parsed_cache_hit_skips_parsing(copy_of_fmnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    first = fm.load_fashion_mnist(path=copy_of_fmnist, download=False, cache_dir=cache)
    parsed = fm.parsed_cache_path(copy_of_fmnist, cache)
    assert parsed.is_file() and parsed.parent == cache / "parsed"
    assert not list(parsed.parent.glob(".*.tmp"))  # written atomically, no leftovers

    def no_parse(path: Path) -> bytes:
        raise AssertionError(f"parsed {path} although the cache is valid")

    monkeypatch.setattr(fm, "read_maybe_gzip", no_parse)
    again = fm.load_fashion_mnist(path=copy_of_fmnist, download=False, cache_dir=cache)
    assert _equal(first, again) and again.train_y.dtype == np.int64 and again.num_classes == 10


def test_parsed_cache_invalidated_when_the_source_changes(copy_of_fmnist: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    fm.load_fashion_mnist(path=copy_of_fmnist, download=False, cache_dir=cache)
    labels = copy_of_fmnist / "train-labels-idx1-ubyte.gz"
    st = labels.stat()
    os.utime(labels, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # same bytes, touched
    reads: list[str] = []
    real = fm.read_maybe_gzip
    monkeypatch.setattr(fm, "read_maybe_gzip", lambda p: reads.append(Path(p).name) or real(p))
    fm.load_fashion_mnist(path=copy_of_fmnist, download=False, cache_dir=cache)
    assert len(reads) == 4  # re-parsed and re-checked
    # A source that became invalid is reported as before, never masked by the cache.
    labels.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x01\x05")
    with pytest.warns(UserWarning, match="not usable"):  # falls through to the system copy
        ds = fm.load_fashion_mnist(path=copy_of_fmnist, download=False, cache_dir=cache)
    assert ds.train_x.shape == (60000, 28, 28)


def test_corrupt_parsed_cache_is_rejected_and_rewritten(copy_of_fmnist: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = fm.load_fashion_mnist(path=copy_of_fmnist, download=False, cache_dir=cache)
    parsed = fm.parsed_cache_path(copy_of_fmnist, cache)
    raw = bytearray(parsed.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte inside the training images
    parsed.write_bytes(bytes(raw))
    assert fm._read_parsed(parsed, fm._source_key(copy_of_fmnist)) is None
    again = fm.load_fashion_mnist(path=copy_of_fmnist, download=False, cache_dir=cache)
    assert _equal(first, again)
    assert fm._read_parsed(parsed, fm._source_key(copy_of_fmnist)) is not None  # rewritten
    parsed.write_bytes(b"not a cache file")
    assert _equal(first, fm.load_fashion_mnist(path=copy_of_fmnist, download=False, cache_dir=cache))


def test_unwritable_cache_is_skipped(copy_of_fmnist: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache root would be")
    ds = fm.load_fashion_mnist(path=copy_of_fmnist, download=False, cache_dir=blocker / "sub")
    assert ds.train_x.shape == (60000, 28, 28)


def test_build_model_equals_to_empty_path_without_sympy() -> None:
    # Same parameters as materialising with Module.to_empty (the previous implementation).
    from learning.models import resolve_model_config
    from learning.models.vit import ViT, init_vit_

    cfg = {"name": "vit", "patch_size": 7, "dim": 32, "depth": 2, "heads": 2, "mlp_ratio": 2.0}
    model = build_model(cfg, (1, 28, 28), 10, seed=5)
    kwargs = {k: v for k, v in resolve_model_config(cfg).items() if k != "name"}
    with torch.device("meta"):
        ref = ViT((1, 28, 28), 10, **kwargs)
    ref = init_vit_(ref.to_empty(device="cpu"), torch.Generator().manual_seed(5))
    a, b = model.state_dict(), ref.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert all(p.requires_grad and not p.is_meta for p in model.parameters())
    code = ("import sys; from learning.models import build_model; "
            "build_model({'name': 'vit', 'dim': 16, 'heads': 2}, (1, 28, 28), 10); print('sympy' in sys.modules)")
    assert _fresh_python(code) == "False"


def test_local_training_does_not_import_dynamo() -> None:
    # torch.optim's optimizers import torch._dynamo (+ sympy, pandas) on first use; ours do not.
    code = ("import sys, torch; from learning.algorithms.training import TrainParams, train_local; "
            "from learning.models import build_model; m = build_model({'name': 'vit', 'dim': 16, 'heads': 2}, "
            "(1, 28, 28), 10); x = torch.randn(8, 1, 28, 28); y = torch.arange(8) % 10; "
            "train_local(m, x, y, TrainParams(optimizer='sgd', batch_size=4), seed=0); "
            "print('torch._dynamo' in sys.modules, 'sympy' in sys.modules)")
    assert _fresh_python(code) == "False False"


def test_hypernetwork_server_update_does_not_import_sympy() -> None:
    # autograd.grad with a tensor grad_outputs imports sympy on first use; hn_vjp does not.
    code = ("import sys; from learning.algorithms import make_algorithm; "
            "from learning.data import build_federated_data, make_synthetic; "
            "fd = build_federated_data(make_synthetic(80, 16, num_classes=4, seed=0), 2, 'iid', {}, seed=0); "
            "alg = make_algorithm('pfl_tps', fd, {'name': 'vit', 'patch_size': 14, 'dim': 16, 'depth': 1, "
            "'heads': 2}, {'batch_size': 16}, seed=0); "
            "res = alg.client().local_update(0, alg.device_state(0), alg.downlink(0, 0), 0); alg.commit(res); "
            "alg.aggregate({0: (res.uplink, res.samples)}, 0); print('sympy' in sys.modules)")
    assert _fresh_python(code) == "False"


def test_fedtp_cost_model_does_not_import_dynamo() -> None:
    # Arithmetic on meta tensors (a delta's shape) goes through torch._dynamo; the cost model does none.
    code = ("import sys; from learning.algorithms.fedtp import FedTP; "
            "c = FedTP.cost_model({'name': 'vit', 'dim': 16, 'heads': 2}, {}, (1, 28, 28), 10); "
            "print(c.uplink_bytes > 0, 'torch._dynamo' in sys.modules, 'sympy' in sys.modules)")
    assert _fresh_python(code) == "True False False"


SMOKE_YAML = Path(__file__).resolve().parents[2] / "scenarios" / "smoke.yaml"


def test_no_algorithm_run_imports_dynamo_or_sympy() -> None:
    # Every registered algorithm, one smoke round each (batched where a plan exists), in one
    # fresh process: torch._dynamo and sympy cost a run seconds of start-up (README).
    code = ("import sys, tempfile; from cosim.scenario import load_scenario; from cosim.engine import run_simulation; "
            "from learning.algorithms import ALGORITHMS\n"
            "with tempfile.TemporaryDirectory() as d:\n"
            "    for i, name in enumerate(sorted(ALGORITHMS)):\n"
            "        ex = 'batched' if name in ('fedavg', 'pfl_tps', 'pfedhn', 'fedtp') else 'sequential'\n"
            f"        sc = load_scenario({str(SMOKE_YAML)!r}, [f'learning.algorithm.name={{name}}', 'fl.rounds=1', "
            "f'execution.executor={ex}', 'devices.count=4', 'learning.dataset.params.num_train=160'])\n"
            "        run_simulation(sc, f'{d}/{i}')\n"
            "print(len(ALGORITHMS) > 10, 'torch._dynamo' in sys.modules, 'sympy' in sys.modules)")
    assert _fresh_python(code) == "True False False"


def test_components_of_a_scenario_are_checked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # `cosim run FILE` validates the file, then the run validates the scenario it got:
    # the second check of the same resolved scenario builds nothing.
    import cosim.scenario.components as components
    from cosim.scenario import ScenarioError, load_scenario

    calls: list[str] = []
    real = components._mobility
    monkeypatch.setattr(components, "_mobility", lambda s, p: calls.append(s.name) or real(s, p))
    monkeypatch.setattr(components, "_PASSED", {})
    root = Path(__file__).resolve().parents[2]
    scenario = load_scenario(root / "scenarios" / "smoke.yaml", ["fl.rounds=1"])
    components.check_components(scenario)
    components.check_components(scenario)
    assert calls == ["smoke"]
    components.check_components(load_scenario(root / "scenarios" / "smoke.yaml", ["fl.rounds=2"]))
    assert calls == ["smoke", "smoke"]  # a different scenario is checked
    bad = load_scenario(root / "scenarios" / "smoke.yaml", ["devices.mobility={model: random_waypoint, params: {}}"])
    bad.devices.mobility.params["speed_mps"] = [-1.0, 2.0]
    for _ in range(2):  # failures are never remembered
        with pytest.raises(ScenarioError, match="speed_mps"):
            components.check_components(bad)
