"""CIFAR-10 loader for the official *binary* version, with checksum verification and the
same lookup order and error style as :mod:`learning.data.fashion_mnist`.

Format (https://www.cs.toronto.edu/~kriz/cifar.html, "Binary version"): the archive
``cifar-10-binary.tar.gz`` holds ``cifar-10-batches-bin/`` with ``data_batch_1.bin`` …
``data_batch_5.bin`` (training, 10000 records each) and ``test_batch.bin`` (10000). A
record is 3073 bytes: one label byte in [0, 9], then the 32×32 red, green and blue planes
(1024 bytes each, rows top to bottom), i.e. channels first. Images are returned as uint8
(N, 3, 32, 32), labels as int64 (N,), the training batches concatenated in order 1…5.

Lookup order (first place holding a valid copy wins); in each folder the archive
``cifar-10-binary.tar.gz`` is preferred, else the six ``.bin`` files directly in it or in
its ``cifar-10-batches-bin/`` subfolder:

1. the explicit ``path`` argument;
2. ``$COSIM_DATA_DIR`` (the directory itself, or its ``cifar-10/`` subfolder);
3. the cache, ``cache_dir`` argument or ``$COSIM_CACHE_DIR`` or ``~/.cache/cosim``,
   subfolder ``cifar-10/``;
4. a download of the archive from the official site into the cache (only with
   ``download=True``), read from there without extracting it.

As with Fashion-MNIST, an explicit ``path`` that does not hold valid data is not fatal:
the loader falls through (with a ``UserWarning`` when another place succeeds) and, if
nothing works, the error lists every place tried with its reason, then the fixes.

Checksums: the official page publishes one MD5, of the archive (``ARCHIVE_MD5``); an
archive is used only if its MD5 matches, and a downloaded one that does not is deleted.
Extracted ``.bin`` files have no published digest, so they are checked structurally
instead: each file exactly ``RECORDS_PER_FILE`` records long and every label in [0, 9].

Parsed cache: as for Fashion-MNIST (:mod:`learning.data.parsed_cache`), the parsed arrays
of a folder are kept in ``<cache root>/parsed/cifar-10-<folder hash>.bin`` and reused while
the source files keep their size and modification time and the arrays their CRC-32s, so
the archive is decompressed and hashed once, not on every run.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import warnings
import zlib
from pathlib import Path

import numpy as np

from .fashion_mnist import ArrayDataset, DatasetNotFoundError, download_file
from .parsed_cache import file_key, parsed_path, read_parsed, write_parsed

__all__ = [
    "ARCHIVE",
    "ARCHIVE_MD5",
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "RECORD_BYTES",
    "TEST_FILE",
    "TRAIN_FILES",
    "URL",
    "default_cache_dir",
    "load_cifar10",
    "parse_batch",
]

#: Official download of the binary version and the MD5 the CIFAR page gives for it.
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
ARCHIVE = "cifar-10-binary.tar.gz"
ARCHIVE_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
#: Folder the archive unpacks to.
BATCH_DIR = "cifar-10-batches-bin"
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
#: Label names, in label order (``batches.meta.txt``).
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: Per-channel (R, G, B) mean and std of the training images scaled to [0, 1].
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
#: Image side [pixels], channels, bytes per record (label + pixels), records per file.
SIDE = 32
CHANNELS = 3
RECORD_BYTES = 1 + CHANNELS * SIDE * SIDE
RECORDS_PER_FILE = 10000
_ROLES = ("train_x", "train_y", "test_x", "test_y")


class _FormatError(ValueError):
    """Bytes that are not a valid CIFAR-10 batch."""


def default_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The CIFAR-10 cache folder: ``cache_dir`` or $COSIM_CACHE_DIR or ~/.cache/cosim, plus
    ``cifar-10``."""
    root = cache_dir or os.environ.get("COSIM_CACHE_DIR") or Path.home() / ".cache" / "cosim"
    return Path(root) / "cifar-10"


def parse_batch(data: bytes, source: str = "<bytes>") -> tuple[np.ndarray, np.ndarray]:
    """Parse one binary batch file.

    Args:
        data: the file's bytes, ``RECORDS_PER_FILE`` records of ``RECORD_BYTES``.
        source: name used in error messages.

    Returns:
        (images uint8 (N, 3, 32, 32) channels first, labels int64 (N,)).

    Raises:
        ValueError: wrong size or a label outside [0, 9].
    """
    expected = RECORDS_PER_FILE * RECORD_BYTES
    if len(data) != expected:
        raise _FormatError(f"{source}: {len(data)} bytes, expected {expected} "
                           f"({RECORDS_PER_FILE} records of {RECORD_BYTES} bytes)")
    records = np.frombuffer(data, dtype=np.uint8).reshape(RECORDS_PER_FILE, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if labels.max(initial=0) >= len(CIFAR10_CLASSES):
        raise _FormatError(f"{source}: label {int(labels.max())} outside [0, {len(CIFAR10_CLASSES) - 1}]")
    images = records[:, 1:].reshape(RECORDS_PER_FILE, CHANNELS, SIDE, SIDE).copy()
    return images, labels


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _batch_folder(folder: Path) -> Path | None:
    """``folder`` or its ``cifar-10-batches-bin/`` if it holds all six batch files."""
    for cand in (folder, folder / BATCH_DIR):
        if all((cand / name).is_file() for name in (*TRAIN_FILES, TEST_FILE)):
            return cand
    return None


def _read_archive(archive: Path) -> dict[str, bytes]:
    """The six batch files' bytes, by file name, read from the (gzipped) tar ``archive``
    without extracting it; raises ValueError naming what is missing or unreadable."""
    wanted = {*TRAIN_FILES, TEST_FILE}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = Path(member.name).name
                if member.isfile() and name in wanted and name not in found:
                    handle = tar.extractfile(member)
                    assert handle is not None
                    found[name] = handle.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise _FormatError(f"cannot read {archive.name}: {type(exc).__name__}: {exc}") from exc
    missing = sorted(wanted - set(found))
    if missing:
        raise _FormatError(f"{archive.name} lacks {', '.join(missing)}")
    return found


def _arrays(batches: dict[str, bytes], where: str) -> dict[str, np.ndarray]:
    """Parse the six batches into the four arrays (training batches in order 1…5)."""
    train = [parse_batch(batches[name], f"{where}/{name}") for name in TRAIN_FILES]
    test_x, test_y = parse_batch(batches[TEST_FILE], f"{where}/{TEST_FILE}")
    return {"train_x": np.concatenate([x for x, _ in train]), "train_y": np.concatenate([y for _, y in train]),
            "test_x": test_x, "test_y": test_y}


def _load_dir(folder: Path, parsed: Path) -> tuple[ArrayDataset | None, str]:
    """Try one folder (through the parsed cache ``parsed``); (dataset, "") or (None, reason)."""
    if not folder.is_dir():
        return None, "directory does not exist"
    archive = folder / ARCHIVE
    batch_dir = _batch_folder(folder)
    if archive.is_file():
        key = file_key([(archive, ARCHIVE_MD5)])
    elif batch_dir is not None:
        key = file_key([(batch_dir / name, "structural") for name in (*TRAIN_FILES, TEST_FILE)])
    else:
        return None, f"no {ARCHIVE} and no {', '.join((*TRAIN_FILES, TEST_FILE))} (in it or in {BATCH_DIR}/)"
    arrays = read_parsed(parsed, key, _ROLES)
    if arrays is None:
        try:
            if archive.is_file():
                digest = _md5(archive)
                if digest != ARCHIVE_MD5:
                    return None, f"bad checksum for {ARCHIVE}: md5 {digest}, expected {ARCHIVE_MD5}"
                batches = _read_archive(archive)
            else:
                assert batch_dir is not None
                batches = {name: (batch_dir / name).read_bytes() for name in (*TRAIN_FILES, TEST_FILE)}
            arrays = _arrays(batches, str(archive if archive.is_file() else batch_dir))
        except OSError as exc:
            return None, f"cannot read: {type(exc).__name__}: {exc}"
        except _FormatError as exc:
            return None, str(exc)
        write_parsed(parsed, key, arrays)
    ds = ArrayDataset(train_x=arrays["train_x"], train_y=arrays["train_y"].astype(np.int64),
                      test_x=arrays["test_x"], test_y=arrays["test_y"].astype(np.int64),
                      num_classes=len(CIFAR10_CLASSES), name="cifar10", mean=CIFAR10_MEAN, std=CIFAR10_STD)
    return ds, ""


def _download_into(folder: Path) -> str:
    """Download the archive into ``folder`` unless a valid one is there; '' or the reason."""
    dest = folder / ARCHIVE
    if dest.is_file() and _md5(dest) == ARCHIVE_MD5:
        return ""
    try:
        download_file(URL, dest, timeout=10.0)
    except Exception as exc:  # network errors come in many types (URLError, timeout, ...)
        return f"download error for {URL}: {type(exc).__name__}: {exc}"
    digest = _md5(dest)
    if digest != ARCHIVE_MD5:
        dest.unlink(missing_ok=True)
        return f"bad checksum for downloaded {ARCHIVE}: md5 {digest}, expected {ARCHIVE_MD5}"
    return ""


def load_cifar10(
    path: str | Path | None = None,
    download: bool = True,
    cache_dir: str | Path | None = None,
) -> ArrayDataset:
    """Load CIFAR-10 (50000 train / 10000 test uint8 3×32×32 images, 10 classes).

    Args:
        path: folder holding ``cifar-10-binary.tar.gz`` or the six ``.bin`` batch files
            (directly or in ``cifar-10-batches-bin/``); tried first.
        download: download the archive from the official site (into the cache) when no
            local copy is valid.
        cache_dir: cache root (default $COSIM_CACHE_DIR or ~/.cache/cosim).

    Returns:
        The dataset, images (N, 3, 32, 32), with per-channel ``mean``/``std`` set.

    Raises:
        DatasetNotFoundError: with every place tried, why each failed, and the fixes.
    """
    cache = default_cache_dir(cache_dir)
    cache_root = cache.parent
    places: list[tuple[str, Path | None]] = []
    if path is not None:
        places.append(("path argument", Path(path)))
    env = os.environ.get("COSIM_DATA_DIR")
    if env:
        places += [("$COSIM_DATA_DIR", Path(env)), ("$COSIM_DATA_DIR", Path(env) / "cifar-10")]
    else:
        places.append(("$COSIM_DATA_DIR", None))
    places.append(("cache", cache))

    tried: list[str] = []
    for label, folder in places:
        if folder is None:
            tried.append(f"{label}: not set")
            continue
        ds, reason = _load_dir(folder, parsed_path(cache_root, "cifar-10", folder))
        if ds is not None:
            if path is not None and folder != Path(path):
                warnings.warn(f"CIFAR-10: path argument {path} is not usable ({tried[0]}); "
                              f"loaded from {label} {folder} instead", stacklevel=2)
            return ds
        tried.append(f"{label} {folder}: {reason}")

    if download:
        reason = _download_into(cache)
        if not reason:
            ds, reason = _load_dir(cache, parsed_path(cache_root, "cifar-10", cache))
            if ds is not None:
                return ds
        tried.append(f"download from {URL} into {cache}: {reason}")
    else:
        tried.append(f"download from {URL}: skipped (download=False)")

    lines = "\n".join(f"  {i}. {t}" for i, t in enumerate(tried, 1))
    raise DatasetNotFoundError(
        "CIFAR-10 not found. Tried, in order:\n"
        f"{lines}\n"
        "Fix with one of:\n"
        f"  - COSIM_DATA_DIR=/dir where /dir holds {ARCHIVE} (or the extracted {BATCH_DIR}/)\n"
        f"  - download {URL} (md5 {ARCHIVE_MD5}, the binary version) into {cache}"
    )
