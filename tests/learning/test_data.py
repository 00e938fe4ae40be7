"""Tests of learning.data: IDX parsing, Fashion-MNIST lookup, partitions, FederatedData."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from learning.data import (
    DATASETS,
    PARTITIONS,
    ArrayDataset,
    DatasetNotFoundError,
    IdxFormatError,
    build_federated_data,
    class_histogram,
    load_dataset,
    load_fashion_mnist,
    make_synthetic,
    partition_dirichlet,
    partition_iid,
    partition_pathological,
    partition_quantity_skew,
    read_idx,
)
from learning.data import fashion_mnist as fm

REAL_DIR = Path("/usr/share/datasets/fashion-mnist")
HAVE_REAL = all((REAL_DIR / f"{n}.gz").is_file() for n, _ in fm.FILES.values())
DEFAULT_PARAMS = {
    "iid": {},
    "dirichlet": {"alpha": 0.5, "min_samples": 5},
    "pathological": {"classes_per_device": 2},
    "quantity_skew": {"sigma": 1.0},
}


def idx_bytes(arr: np.ndarray, code: int) -> bytes:
    """Hand-built IDX file: magic, big-endian dims, big-endian data."""
    head = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path: Path, gz: bool) -> None:
    imgs = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    floats = np.array([1.5, -2.25, 1e6], dtype=np.float32)
    ints = np.array([[-7, 70000]], dtype=np.int32)
    for name, arr, code in [("u8", imgs, 0x08), ("f4", floats, 0x0D), ("i4", ints, 0x0C)]:
        data = idx_bytes(arr, code)
        path = tmp_path / name
        path.write_bytes(gzip.compress(data) if gz else data)
        out = read_idx(path)
        assert out.dtype == arr.dtype.newbyteorder("=") and out.shape == arr.shape
        np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize(
    "data, match",
    [
        (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "bad IDX magic"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "unknown IDX type code 0x07"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x03\x05", "does not match header dims"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x03", "too short"),
    ],
)
def test_read_idx_errors(tmp_path: Path, data: bytes, match: str) -> None:
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(data))
    with pytest.raises(IdxFormatError, match=match):
        read_idx(path)


# ---------------------------------------------------------------- Fashion-MNIST lookup


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """No data anywhere: env dirs empty, HOME in tmp, no system dir, download fails."""
    env_dir, home = tmp_path / "env", tmp_path / "home"
    env_dir.mkdir()
    home.mkdir()
    monkeypatch.setenv("COSIM_DATA_DIR", str(env_dir))
    monkeypatch.delenv("COSIM_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "no-system")
    calls: list[str] = []

    def fail(url: str, dest: Path, timeout: float = 10.0) -> None:
        calls.append(url)
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(fm, "download_file", fail)
    return {"env": env_dir, "home": home, "tmp": tmp_path, "calls": calls}  # type: ignore


def test_loader_error_lists_every_place(isolated: dict) -> None:
    explicit = isolated["tmp"] / "explicit"
    with pytest.raises(DatasetNotFoundError) as info:
        load_fashion_mnist(path=explicit)
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    cache = isolated["home"] / ".cache" / "cosim" / "fashion-mnist"
    for place in [explicit, isolated["env"], cache, isolated["tmp"] / "no-system"]:
        assert str(place) in msg
    assert msg.index(str(explicit)) < msg.index(str(isolated["env"])) < msg.index(str(cache))
    assert "download error" in msg and "URLError" in msg and fm.MIRROR in msg
    assert "apt-get update && sudo apt-get install -y dataset-fashion-mnist" in msg and "COSIM_DATA_DIR=" in msg
    assert len(isolated["calls"]) == 1  # fails fast: no retry per file


def test_loader_no_download(isolated: dict) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"skipped \(download=False\)"):
        load_fashion_mnist(download=False)
    assert isolated["calls"] == []


def write_fake_fmnist(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for role, (name, _) in fm.FILES.items():
        n = 3
        shape = (n, 28, 28) if role.endswith("x") else (n,)
        arr = (np.arange(np.prod(shape)) % 256).astype(np.uint8).reshape(shape)
        (folder / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(arr, 0x08)))


def test_loader_reports_bad_checksum(isolated: dict) -> None:
    write_fake_fmnist(isolated["env"])
    with pytest.raises(DatasetNotFoundError) as info:
        load_fashion_mnist(download=False)
    assert f"{isolated['env']}: bad checksum for train-images-idx3-ubyte.gz" in str(info.value)


def test_bad_download_is_rejected_and_removed(
    isolated: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_root = isolated["tmp"] / "cache"

    def fake(url: str, dest: Path, timeout: float = 10.0) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x05"))

    monkeypatch.setattr(fm, "download_file", fake)
    with pytest.raises(DatasetNotFoundError, match="bad checksum for downloaded"):
        load_fashion_mnist(cache_dir=cache_root)
    assert list((cache_root / "fashion-mnist").iterdir()) == []


def test_download_file_atomic(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload" * 1000)
    dest = tmp_path / "out" / "f.gz"
    fm.download_file(src.as_uri(), dest)
    assert dest.read_bytes() == src.read_bytes()
    with pytest.raises(urllib.error.URLError):
        fm.download_file((tmp_path / "absent").as_uri(), tmp_path / "out" / "g.gz")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f.gz"]


@pytest.mark.skipif(not HAVE_REAL, reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist(isolated: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, md5 in fm.FILES.values():  # content checksums of the installed files
        content = gzip.decompress((REAL_DIR / f"{name}.gz").read_bytes())
        assert hashlib.md5(content).hexdigest() == md5
    monkeypatch.setattr(fm, "SYSTEM_DIR", REAL_DIR)
    with pytest.warns(UserWarning, match="not usable"):
        ds = load_fashion_mnist(path=isolated["tmp"] / "explicit", download=False)
    assert ds.train_x.shape == (60000, 28, 28) and ds.test_x.shape == (10000, 28, 28)
    assert ds.train_x.dtype == np.uint8 and ds.train_y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(ds.train_y), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(ds.test_y), np.full(10, 1000))
    assert abs(ds.train_x.mean() / 255 - fm.FMNIST_MEAN) < 1e-4
    assert abs((ds.train_x / 255).std() - fm.FMNIST_STD) < 1e-4


# ---------------------------------------------------------------- synthetic


def test_synthetic_learnable_and_deterministic() -> None:
    ds = make_synthetic(2000, 500, num_classes=10, seed=3)
    assert ds.train_x.shape == (2000, 28, 28) and ds.train_x.dtype == np.uint8
    assert ds.test_y.dtype == np.int64 and np.bincount(ds.train_y).tolist() == [200] * 10
    np.testing.assert_array_equal(ds.train_x, make_synthetic(2000, 500, seed=3).train_x)
    assert not np.array_equal(ds.train_x, make_synthetic(2000, 500, seed=4).train_x)
    # nearest class centroid (fitted on train) classifies the test set far above chance
    x_tr = ds.train_x.reshape(2000, -1).astype(float)
    cent = np.stack([x_tr[ds.train_y == c].mean(0) for c in range(10)])
    x_te = ds.test_x.reshape(500, -1).astype(float)
    pred = np.argmin(((x_te[:, None, :] - cent[None]) ** 2).sum(-1), axis=1)
    assert (pred == ds.test_y).mean() > 0.8


# ---------------------------------------------------------------- partitions


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    return np.repeat(np.arange(10), 300)  # 3000 samples, 300 per class


@pytest.mark.parametrize("name", sorted(PARTITIONS))
def test_partition_contract(name: str, labels: np.ndarray) -> None:
    fn = PARTITIONS[name]
    parts = fn(labels, 20, rng=np.random.default_rng(0), **DEFAULT_PARAMS[name])
    assert len(parts) == 20 and all(p.dtype == np.int64 and p.size > 0 for p in parts)
    assert all(np.all(np.diff(p) > 0) for p in parts)  # sorted, no repeats
    allidx = np.concatenate(parts)
    np.testing.assert_array_equal(np.sort(allidx), np.arange(labels.size))  # disjoint cover
    again = fn(labels, 20, rng=np.random.default_rng(0), **DEFAULT_PARAMS[name])
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    other = fn(labels, 20, rng=np.random.default_rng(1), **DEFAULT_PARAMS[name])
    assert any(not np.array_equal(a, b) for a, b in zip(parts, other))


@pytest.mark.parametrize("k", [1, 2, 3, 10])
@pytest.mark.parametrize("n_devices", [7, 100])
def test_pathological_exact_k(labels: np.ndarray, k: int, n_devices: int) -> None:
    parts = partition_pathological(labels, n_devices, k, np.random.default_rng(k))
    hist = class_histogram(labels, parts, 10)
    np.testing.assert_array_equal((hist > 0).sum(axis=1), np.full(n_devices, k))
    holders = (hist > 0).sum(axis=0)  # shards per class differ by at most one
    assert holders.max() - holders.min() <= 1 and holders.sum() == n_devices * k
    # every sample of every held class is assigned (D·k < C drops the unheld classes)
    assert sum(p.size for p in parts) == 300 * int((holders > 0).sum())
    assert np.unique(np.concatenate(parts)).size == sum(p.size for p in parts)
    with pytest.raises(ValueError, match="classes_per_device"):
        partition_pathological(labels, 5, 11, np.random.default_rng(0))


def test_dirichlet_skew_grows_as_alpha_shrinks(labels: np.ndarray) -> None:
    def skew(alpha: float) -> float:
        parts = partition_dirichlet(labels, 20, alpha, np.random.default_rng(0), min_samples=10)
        assert min(p.size for p in parts) >= 10
        hist = class_histogram(labels, parts, 10)
        frac = hist / hist.sum(axis=1, keepdims=True)
        return float(np.abs(frac - 0.1).sum(axis=1).mean() / 2)  # mean TV distance to global

    s_small, s_mid, s_large = skew(0.1), skew(1.0), skew(100.0)
    assert s_small > s_mid > s_large and s_small > 0.5 and s_large < 0.1
    with pytest.raises(ValueError, match="min_samples"):
        partition_dirichlet(
            labels, 20, 0.01, np.random.default_rng(0), min_samples=140, max_tries=5
        )


def test_iid_near_uniform(labels: np.ndarray) -> None:
    parts = partition_iid(labels, 7, np.random.default_rng(0))
    sizes = [p.size for p in parts]
    assert max(sizes) - min(sizes) <= 1
    frac = class_histogram(labels, parts, 10) / np.array(sizes)[:, None]
    assert np.abs(frac - 0.1).max() < 0.05


def test_quantity_skew_sizes(labels: np.ndarray) -> None:
    skewed = partition_quantity_skew(labels, 50, np.random.default_rng(0), sigma=1.0)
    sizes = np.array([p.size for p in skewed])
    assert sizes.sum() == labels.size and sizes.min() >= 1
    assert sizes.std() / sizes.mean() > 0.5
    even = partition_quantity_skew(labels, 50, np.random.default_rng(0), sigma=0.0)
    flat = [p.size for p in even]
    assert max(flat) - min(flat) <= 1


def test_class_histogram_exact() -> None:
    lab = np.array([0, 1, 1, 2, 2, 2])
    hist = class_histogram(lab, [np.array([0, 3]), np.array([1, 2, 4, 5])], 4)
    np.testing.assert_array_equal(hist, [[1, 0, 1, 0], [0, 2, 2, 0]])


# ---------------------------------------------------------------- FederatedData


@pytest.fixture(scope="module")
def synth() -> ArrayDataset:
    return make_synthetic(3000, 600, num_classes=10, seed=0)


def test_federated_splits(synth) -> None:
    fd = build_federated_data(synth, 15, "dirichlet", {"alpha": 0.3, "min_samples": 20}, seed=5)
    assert fd.n_devices == 15 and fd.num_classes == 10 and fd.input_shape == (1, 28, 28)
    train_hist, test_hist = fd.histogram(), fd.test_histogram()
    assert train_hist.sum() == 3000 and train_hist.shape == (15, 10)
    np.testing.assert_array_equal(train_hist > 0, test_hist > 0)  # same class support
    for i in range(fd.n_devices):
        x, y = fd.train(i)
        assert x.dtype == torch.float32 and x.shape == (fd.num_train(i), 1, 28, 28)
        assert y.dtype == torch.int64 and y.shape == (fd.num_train(i),)
        xt, yt = fd.test(i)
        assert xt.shape == (fd.num_test(i), 1, 28, 28) and yt.shape == (fd.num_test(i),)
        expected = round(fd.num_train(i) * 600 / 3000)
        assert fd.num_test(i) in range(expected, max(expected, (train_hist[i] > 0).sum()) + 1)
        ideal = train_hist[i] / train_hist[i].sum() * fd.num_test(i)
        bumped = int(((ideal > 0) & (ideal < 0.5)).sum())  # classes raised from 0 to 1
        assert np.abs(test_hist[i] - ideal).max() <= 1 + bumped
    if fd.n_test_resampled == 0:  # disjoint test splits while the test set lasts
        allt = np.concatenate(fd.test_idx)
        assert np.unique(allt).size == allt.size
    gx, gy = fd.global_test()
    assert gx.shape == (600, 1, 28, 28) and gy.shape == (600,)
    assert abs(float(fd.train_x.mean())) < 0.05 and abs(float(fd.train_x.std()) - 1) < 0.05
    clone = pickle.loads(pickle.dumps(fd))
    for i in (0, 14):
        assert torch.equal(clone.train(i)[0], fd.train(i)[0])
        assert torch.equal(clone.test(i)[1], fd.test(i)[1])
    again = build_federated_data(synth, 15, "dirichlet", {"alpha": 0.3, "min_samples": 20}, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(fd.test_idx, again.test_idx))


def test_federated_truncation_and_resampling(synth) -> None:
    fd = build_federated_data(
        synth, 30, "pathological", {"classes_per_device": 2}, seed=1,
        test_fraction=1.0, max_train_per_device=40,
    )
    assert all(fd.num_train(i) == 40 and fd.num_test(i) == 40 for i in range(30))
    assert fd.train_x.shape[0] == 30 * 40  # only used training images are stored
    assert ((fd.histogram() > 0).sum(axis=1) == 2).all()
    np.testing.assert_array_equal(fd.histogram() > 0, fd.test_histogram() > 0)
    # 1200 test draws from a 600-sample test set: at least 600 must be resampled
    assert fd.n_test_resampled >= 600


def test_load_dataset_registry() -> None:
    assert set(DATASETS) == {"fashion_mnist", "cifar10", "synthetic"}
    ds = load_dataset("synthetic", num_train=50, num_test=20, num_classes=5, seed=2, noise=0.1)
    assert ds.train_x.shape == (50, 28, 28) and ds.num_classes == 5 and ds.test_y.max() < 5
    with pytest.raises(KeyError, match="unknown dataset"):
        load_dataset("cifar")
    with pytest.raises(KeyError, match="unknown partition"):
        build_federated_data(ds, 2, "nope", {}, seed=0)


def test_validation_split_is_held_out_of_the_devices_own_partition(synth) -> None:
    args = (synth, 12, "dirichlet", {"alpha": 0.3, "min_samples": 20})
    plain = build_federated_data(*args, seed=4)
    fd = build_federated_data(*args, seed=4, validation_fraction=0.2)
    assert plain.val_idx == [] or all(v.size == 0 for v in plain.val_idx)
    assert plain.num_val(0) == 0 and plain.val(0)[1].shape == (0,)
    for i in range(12):
        tr, va = fd.train_idx[i], fd.val_idx[i]
        # the same partition, now split in two disjoint parts; no image stored twice
        whole = np.sort(np.concatenate([tr, va]))
        assert np.intersect1d(tr, va).size == 0
        assert whole.size == plain.num_train(i)
        np.testing.assert_array_equal(np.sort(fd.train_x[torch.from_numpy(whole)].flatten(1).sum(1).numpy()),
                                      np.sort(plain.train(i)[0].flatten(1).sum(1).numpy()))
        n = plain.num_train(i)
        assert fd.num_val(i) == min(max(round(0.2 * n), 1), n - 1)
        # stratified: each class's validation count is its share of the held-out total, ±1
        hist_all = np.bincount(plain.train(i)[1].numpy(), minlength=10)
        hist_val = np.bincount(fd.val(i)[1].numpy(), minlength=10)
        assert np.abs(hist_val - hist_all * fd.num_val(i) / n).max() < 1.0
        assert np.array_equal(fd.test_idx[i], plain.test_idx[i])  # test splits do not move
    again = build_federated_data(*args, seed=4, validation_fraction=0.2)
    assert all(np.array_equal(a, b) for a, b in zip(fd.val_idx, again.val_idx))
    assert fd.histogram().sum() == 3000 - sum(fd.num_val(i) for i in range(12))
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match=f"validation_fraction must be in \\[0, 1\\), got {bad}"):
            build_federated_data(*args, seed=4, validation_fraction=bad)


def test_validation_size_rule() -> None:
    from learning.data import validation_size
    assert [validation_size(n, 0.1) for n in (0, 1, 2, 9, 10, 15, 100)] == [0, 0, 1, 1, 1, 2, 10]
    assert validation_size(100, 0.0) == 0 and validation_size(3, 0.9) == 2


def test_normalise_accepts_a_read_only_cached_array_without_a_warning():
    import warnings

    from learning.data.federated import _normalise

    x = np.arange(8, dtype=np.uint8).reshape(2, 2, 2)
    x.setflags(write=False)  # as the parsed-dataset cache hands arrays out
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = _normalise(x, 0.5, 0.25)
    assert out.shape == (2, 1, 2, 2) and out.dtype == torch.float32
    torch.testing.assert_close(out[1, 0, 1, 1], torch.tensor((7 / 255 - 0.5) / 0.25))
    assert not x.flags.writeable and x[1, 1, 1] == 7  # the cached array is untouched
