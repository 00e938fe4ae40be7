"""CIFAR-10 binary loader on tiny batch files and archives the tests write themselves.

``RECORDS_PER_FILE`` is lowered to 10 so a "batch" is 10 records of 3073 bytes; the
archive's checksum is computed here and put in place of the official one where a test
needs a valid archive. No network: downloads go through a ``file://`` URL or fail.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from learning.data import DatasetNotFoundError, build_federated_data, load_cifar10, load_dataset
from learning.data import cifar10 as c10
from learning.models import build_model

N = 10  # records per tiny batch file


def batch_bytes(file_index: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """A batch of N records: label (k + file_index) % 10, pixel bytes a known pattern."""
    labels = (np.arange(N) + file_index) % 10
    pixels = ((np.arange(N)[:, None] * 7 + file_index * 13 + np.arange(3072)[None, :]) % 251).astype(np.uint8)
    records = np.concatenate([labels[:, None].astype(np.uint8), pixels], axis=1)
    return records.tobytes(), pixels.reshape(N, 3, 32, 32), labels.astype(np.int64)


def write_batches(folder: Path) -> dict[str, np.ndarray]:
    """The six .bin files in ``folder``; returns the arrays the loader should give."""
    folder.mkdir(parents=True, exist_ok=True)
    xs, ys = [], []
    for i, name in enumerate((*c10.TRAIN_FILES, c10.TEST_FILE)):
        data, x, y = batch_bytes(i)
        (folder / name).write_bytes(data)
        xs.append(x)
        ys.append(y)
    return {"train_x": np.concatenate(xs[:5]), "train_y": np.concatenate(ys[:5]), "test_x": xs[5], "test_y": ys[5]}


def write_archive(path: Path) -> str:
    """A cifar-10-binary.tar.gz at ``path`` with the six batches (plus a readme); its md5."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for i, name in enumerate(("readme.html", *c10.TRAIN_FILES, c10.TEST_FILE)):
            data = b"<html/>" if name == "readme.html" else batch_bytes(i - 1)[0]
            info = tarfile.TarInfo(f"{c10.BATCH_DIR}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """No data anywhere: empty $COSIM_DATA_DIR, HOME in tmp, downloads fail; tiny batches."""
    env_dir, home = tmp_path / "env", tmp_path / "home"
    env_dir.mkdir()
    home.mkdir()
    monkeypatch.setenv("COSIM_DATA_DIR", str(env_dir))
    monkeypatch.delenv("COSIM_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(c10, "RECORDS_PER_FILE", N)
    calls: list[str] = []

    def fail(url: str, dest: Path, timeout: float = 10.0) -> None:
        calls.append(url)
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(c10, "download_file", fail)
    return {"env": env_dir, "home": home, "tmp": tmp_path, "calls": calls,
            "cache": home / ".cache" / "cosim" / "cifar-10"}


def assert_matches(ds, expected: dict[str, np.ndarray]) -> None:
    for role, arr in expected.items():
        got = getattr(ds, role)
        assert got.dtype == arr.dtype and np.array_equal(got, arr), role


def test_parse_batch_label_and_channel_first_pixel_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(c10, "RECORDS_PER_FILE", 2)
    record = np.zeros((2, 3073), np.uint8)
    record[:, 0] = [3, 9]
    record[0, 1 + 1] = 11  # red, row 0, column 1
    record[0, 1 + 32] = 22  # red, row 1, column 0
    record[0, 1 + 1024] = 33  # green, row 0, column 0
    record[0, 1 + 2048 + 32 * 31 + 31] = 44  # blue, row 31, column 31
    record[1, 1:] = 200
    images, labels = c10.parse_batch(record.tobytes())
    assert images.shape == (2, 3, 32, 32) and images.dtype == np.uint8
    assert labels.tolist() == [3, 9] and labels.dtype == np.int64
    assert (images[0, 0, 0, 1], images[0, 0, 1, 0], images[0, 1, 0, 0], images[0, 2, 31, 31]) == (11, 22, 33, 44)
    assert int(images[0].sum()) == 11 + 22 + 33 + 44 and (images[1] == 200).all()


def test_parse_batch_rejects_bad_size_and_label(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(c10, "RECORDS_PER_FILE", 2)
    with pytest.raises(ValueError, match=r"x\.bin: 3073 bytes, expected 6146 \(2 records of 3073 bytes\)"):
        c10.parse_batch(bytes(3073), "x.bin")
    bad = bytearray(6146)
    bad[3073] = 10
    with pytest.raises(ValueError, match=r"label 10 outside \[0, 9\]"):
        c10.parse_batch(bytes(bad))


def test_loads_extracted_batches_from_path_or_its_subfolder(isolated: dict) -> None:
    expected = write_batches(isolated["tmp"] / "user" / c10.BATCH_DIR)
    ds = load_cifar10(path=isolated["tmp"] / "user", download=False)
    assert_matches(ds, expected)
    assert ds.name == "cifar10" and ds.num_classes == 10 and ds.image_shape == (3, 32, 32)
    assert ds.mean == c10.CIFAR10_MEAN and ds.std == c10.CIFAR10_STD
    assert ds.train_y[N - 1:N + 1].tolist() == [9, 1]  # data_batch_1 first, then data_batch_2
    assert isolated["calls"] == []


def test_archive_with_the_right_md5_loads(isolated: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    md5 = write_archive(isolated["env"] / c10.ARCHIVE)
    monkeypatch.setattr(c10, "ARCHIVE_MD5", md5)
    assert_matches(load_cifar10(download=False), write_batches(isolated["tmp"] / "reference"))


def test_archive_checksum_mismatch_is_reported(isolated: dict) -> None:
    md5 = write_archive(isolated["env"] / c10.ARCHIVE)
    with pytest.raises(DatasetNotFoundError) as info:
        load_cifar10(download=False)
    assert (f"{isolated['env']}: bad checksum for {c10.ARCHIVE}: md5 {md5}, "
            f"expected c32a1d4ab5d03f1284b67883e8d87530") in str(info.value)


def test_short_batch_file_is_reported(isolated: dict) -> None:
    write_batches(isolated["env"])
    (isolated["env"] / "test_batch.bin").write_bytes(bytes(3073))
    with pytest.raises(DatasetNotFoundError, match=r"test_batch\.bin: 3073 bytes, expected 30730"):
        load_cifar10(download=False)


def test_missing_data_error_lists_every_place_and_the_fixes(isolated: dict) -> None:
    explicit = isolated["tmp"] / "explicit"
    with pytest.raises(DatasetNotFoundError) as info:
        load_cifar10(path=explicit)
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError) and msg.startswith("CIFAR-10 not found. Tried, in order:\n")
    places = [explicit, isolated["env"], isolated["env"] / "cifar-10", isolated["cache"]]
    positions = [msg.index(f"{p}:") for p in places]
    assert positions == sorted(positions)
    assert f"{explicit}: directory does not exist" in msg
    assert f"{isolated['env']}: no {c10.ARCHIVE} and no data_batch_1.bin" in msg
    assert f"download error for {c10.URL}: URLError" in msg
    assert "COSIM_DATA_DIR=/dir where /dir holds cifar-10-binary.tar.gz" in msg
    assert f"md5 {c10.ARCHIVE_MD5}" in msg and str(isolated["cache"]) in msg.splitlines()[-1]
    assert isolated["calls"] == [c10.URL]  # one attempt, fails fast
    with pytest.raises(DatasetNotFoundError, match=r"skipped \(download=False\)"):
        load_cifar10(download=False)


def test_download_through_a_file_url_verifies_and_loads(isolated: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from learning.data.fashion_mnist import download_file

    md5 = write_archive(isolated["tmp"] / "server" / c10.ARCHIVE)
    monkeypatch.setattr(c10, "download_file", download_file)
    monkeypatch.setattr(c10, "URL", (isolated["tmp"] / "server" / c10.ARCHIVE).as_uri())
    with pytest.raises(DatasetNotFoundError, match=f"bad checksum for downloaded {c10.ARCHIVE}: md5 {md5}"):
        load_cifar10()
    assert list(isolated["cache"].iterdir()) == []  # the bad download is deleted
    monkeypatch.setattr(c10, "ARCHIVE_MD5", md5)
    ds = load_cifar10()
    assert (isolated["cache"] / c10.ARCHIVE).is_file()
    assert_matches(ds, write_batches(isolated["tmp"] / "reference"))


def test_parsed_cache_is_reused_until_the_source_changes(isolated: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = isolated["env"] / c10.ARCHIVE
    monkeypatch.setattr(c10, "ARCHIVE_MD5", write_archive(archive))
    first = load_cifar10(download=False)
    reads: list[Path] = []
    real = c10._read_archive
    monkeypatch.setattr(c10, "_read_archive", lambda p: reads.append(p) or real(p))
    again = load_cifar10(download=False)
    assert reads == [] and np.array_equal(first.train_x, again.train_x)
    stat = archive.stat()
    os.utime(archive, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    load_cifar10(download=False)
    assert reads == [archive]


def test_registry_federated_split_and_vit_on_three_channels(isolated: dict) -> None:
    write_batches(isolated["env"])
    ds = load_dataset("cifar10", download=False)
    fd = build_federated_data(ds, 4, "iid", {}, seed=1, validation_fraction=0.0)
    assert fd.input_shape == (3, 32, 32) and fd.name == "cifar10"
    assert fd.train_x.shape == (5 * N, 3, 32, 32)  # iid over 50 samples: every image is used, in order
    raw = torch.from_numpy(ds.train_x.astype(np.float32)) / 255
    mean = torch.tensor(c10.CIFAR10_MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(c10.CIFAR10_STD).reshape(1, 3, 1, 1)
    assert torch.allclose(fd.train_x, (raw - mean) / std, atol=1e-6)  # per-channel normalisation
    x, _ = fd.train(0)
    model = build_model({"name": "vit", "patch_size": 4, "dim": 16, "depth": 1, "heads": 2}, fd.input_shape, 10, seed=0)
    assert model(x).shape == (x.shape[0], 10)
    assert model.patch_embed.in_features == 3 * 4 * 4
