"""Fashion-MNIST loader with checksum verification and a documented lookup order.

Lookup order (first directory holding four valid files wins):

1. the explicit ``path`` argument;
2. ``$COSIM_DATA_DIR`` (the directory itself, or its ``fashion-mnist/`` subfolder);
3. the cache, ``cache_dir`` argument or ``$COSIM_CACHE_DIR`` or ``~/.cache/cosim``,
   subfolder ``fashion-mnist/``;
4. the Debian/Ubuntu package directory ``/usr/share/datasets/fashion-mnist``
   (``apt-get update && apt-get install -y dataset-fashion-mnist``);
5. a download from the official mirror into the cache (only with ``download=True``).

An explicit ``path`` that does not hold valid files is *not* fatal: the loader falls
through to the other places (and emits a ``UserWarning`` when one of them succeeds), and
if none does, the final error lists the explicit path first with the reason it failed.

Checksums: the MD5 of the *decompressed* IDX bytes is verified. The official README
lists MD5s of the ``.gz`` files, but gzip headers carry a file name and mtime that
repackaging rewrites (the Debian package's ``.gz`` files differ in their headers only),
so the ``.gz`` digests are kept for reference and the content digests are what we check.
Files may be present either as ``name.gz`` or decompressed as ``name``.

Parsed cache: decompressing and checking the four files costs about a second per run, so
the parsed arrays of a folder are kept in one file beside the download cache
(``<cache root>/parsed/fashion-mnist-<folder hash>.bin``: a JSON header line, then the
raw arrays). It is used only while the
folder's four files keep the size and modification time they had when it was written,
and only if every array's CRC-32 (stored in it) matches; otherwise the files are parsed
and checked as above and the cache rewritten (atomically: temp file + rename). A cache
that cannot be written (read-only home) is skipped silently.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .idx import IdxFormatError, parse_idx, read_maybe_gzip
from .parsed_cache import file_key, parsed_path, read_parsed, write_parsed

__all__ = [
    "ArrayDataset",
    "DatasetNotFoundError",
    "FILES",
    "FMNIST_MEAN",
    "FMNIST_STD",
    "GZ_MD5",
    "MIRROR",
    "SYSTEM_DIR",
    "default_cache_dir",
    "download_file",
    "load_fashion_mnist",
    "parsed_cache_path",
]

#: Official mirror (the download links of the Fashion-MNIST README).
MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
#: Debian/Ubuntu package ``dataset-fashion-mnist`` install directory.
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
#: Per-pixel statistics of the training images scaled to [0, 1].
FMNIST_MEAN = 0.2860
FMNIST_STD = 0.3530
#: role -> (file name without .gz, MD5 of the decompressed IDX bytes).
FILES: dict[str, tuple[str, str]] = {
    "train_x": ("train-images-idx3-ubyte", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
    "train_y": ("train-labels-idx1-ubyte", "9018921c3c673c538a1fc5bad174d6f9"),
    "test_x": ("t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a"),
    "test_y": ("t10k-labels-idx1-ubyte", "15d484375f8d13e6eb1aabb0c3f46965"),
}
#: MD5 of the ``.gz`` files as served by the mirror (official README); reference only.
GZ_MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
_SIZES = {"train": 60000, "test": 10000}


class DatasetNotFoundError(FileNotFoundError):
    """No valid copy of a dataset was found; the message lists every place tried."""


@dataclass
class ArrayDataset:
    """An image-classification dataset held as numpy arrays.

    Attributes:
        train_x: training images, uint8, shape (N_train, H, W) (one channel) or
            (N_train, C, H, W) (channels first).
        train_y: training labels in [0, num_classes), int64, shape (N_train,).
        test_x: test images, uint8, the same layout as ``train_x``.
        test_y: test labels, int64, shape (N_test,).
        num_classes: number of classes.
        name: dataset name, e.g. ``"fashion_mnist"``.
        mean: known pixel mean of ``train_x / 255``: one number, or one per channel
            (None: compute from the data).
        std: known pixel std of ``train_x / 255``, like ``mean``.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int
    name: str
    mean: float | tuple[float, ...] | None = None
    std: float | tuple[float, ...] | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Shape of one image as the models see it, (C, H, W) (C = 1 for (N, H, W) data)."""
        shape = tuple(int(n) for n in self.train_x.shape[1:])
        return (1, *shape) if len(shape) == 2 else shape  # type: ignore[return-value]

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            if x.dtype != np.uint8 or x.ndim not in (3, 4):
                raise ValueError(f"{split}_x must be uint8 (N, H, W) or (N, C, H, W), got {x.dtype} {x.shape}")
            if y.dtype != np.int64 or y.shape != (x.shape[0],):
                raise ValueError(
                    f"{split}_y must be int64 ({x.shape[0]},), got {y.dtype} {y.shape}"
                )
            if y.size and (y.min() < 0 or y.max() >= self.num_classes):
                raise ValueError(
                    f"{split}_y has labels in [{y.min()}, {y.max()}] outside "
                    f"[0, {self.num_classes})"
                )
        if self.train_x.shape[1:] != self.test_x.shape[1:]:
            raise ValueError(
                f"train image shape {self.train_x.shape[1:]} != test {self.test_x.shape[1:]}"
            )
        channels = self.image_shape[0]
        for label, value in (("mean", self.mean), ("std", self.std)):
            if isinstance(value, tuple) and len(value) != channels:
                raise ValueError(f"{label} has {len(value)} values for {channels} channels")


def default_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The Fashion-MNIST cache folder: ``cache_dir`` or $COSIM_CACHE_DIR or ~/.cache/cosim,
    plus ``fashion-mnist``."""
    root = cache_dir or os.environ.get("COSIM_CACHE_DIR") or Path.home() / ".cache" / "cosim"
    return Path(root) / "fashion-mnist"


def _find_file(folder: Path, name: str) -> Path | None:
    for cand in (folder / f"{name}.gz", folder / name):
        if cand.is_file():
            return cand
    return None


def parsed_cache_path(folder: Path, cache_dir: str | Path | None = None) -> Path:
    """Where the parsed arrays of the files in ``folder`` are cached (see the module docstring)."""
    return parsed_path(default_cache_dir(cache_dir).parent, "fashion-mnist", folder)


def _source_key(folder: Path) -> str:
    """Identity of the four source files: resolved path, size, mtime [ns], expected md5."""
    files = []
    for name, md5 in FILES.values():
        path = _find_file(folder, name)
        assert path is not None
        files.append((path, md5))
    return file_key(files)


def _read_parsed(path: Path, key: str) -> dict[str, np.ndarray] | None:
    """The cached arrays if ``path`` holds them for ``key`` with matching CRC-32s, else None
    (format: :mod:`learning.data.parsed_cache`)."""
    return read_parsed(path, key, FILES)


def _load_dir(folder: Path, parsed: Path | None = None) -> tuple[ArrayDataset | None, str]:
    """Try one folder (through the parsed cache ``parsed`` when given); return
    (dataset, "") or (None, reason it failed)."""
    if not folder.is_dir():
        return None, "directory does not exist"
    missing = [n for n, _ in FILES.values() if _find_file(folder, n) is None]
    if missing:
        return None, "missing " + ", ".join(f"{n}(.gz)" for n in missing)
    key = _source_key(folder) if parsed is not None else ""
    cached = _read_parsed(parsed, key) if parsed is not None else None
    arrays: dict[str, np.ndarray] = cached or {}
    for role, (name, md5) in FILES.items() if cached is None else ():
        path = _find_file(folder, name)
        assert path is not None
        try:
            data = read_maybe_gzip(path)
        except (OSError, IdxFormatError) as exc:
            return None, f"cannot read {path.name}: {exc}"
        digest = hashlib.md5(data).hexdigest()
        if digest != md5:
            return None, f"bad checksum for {path.name}: content md5 {digest}, expected {md5}"
        try:
            arrays[role] = parse_idx(data, source=str(path))
        except IdxFormatError as exc:
            return None, str(exc)
    for split, n in _SIZES.items():
        if arrays[f"{split}_x"].shape != (n, 28, 28) or arrays[f"{split}_y"].shape != (n,):
            return None, f"unexpected {split} shapes {arrays[f'{split}_x'].shape}"
    if parsed is not None and cached is None:
        write_parsed(parsed, key, arrays)
    ds = ArrayDataset(
        train_x=arrays["train_x"],
        train_y=arrays["train_y"].astype(np.int64),
        test_x=arrays["test_x"],
        test_y=arrays["test_y"].astype(np.int64),
        num_classes=10,
        name="fashion_mnist",
        mean=FMNIST_MEAN,
        std=FMNIST_STD,
    )
    return ds, ""


def download_file(url: str, dest: Path, timeout: float = 10.0) -> None:
    """Download ``url`` to ``dest`` atomically (temp file in the same folder + rename).

    Args:
        url: source URL.
        dest: final path; never left half-written.
        timeout: socket timeout [s] so that an absent network fails fast.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _download_into(folder: Path) -> str:
    """Download the files absent or invalid in ``folder``; '' on success else the reason."""
    for name, md5 in FILES.values():
        dest = folder / f"{name}.gz"
        present = _find_file(folder, name)
        if present is not None:
            try:
                if hashlib.md5(read_maybe_gzip(present)).hexdigest() == md5:
                    continue
            except (OSError, IdxFormatError):
                pass
        url = MIRROR + f"{name}.gz"
        try:
            download_file(url, dest)
        except Exception as exc:  # network errors come in many types (URLError, timeout, ...)
            return f"download error for {url}: {type(exc).__name__}: {exc}"
        if present is not None and present != dest:
            present.unlink(missing_ok=True)  # a stale decompressed copy would shadow it
        try:
            digest = hashlib.md5(read_maybe_gzip(dest)).hexdigest()
        except (OSError, IdxFormatError) as exc:
            digest = f"unreadable ({exc})"
        if digest != md5:
            dest.unlink(missing_ok=True)
            return f"bad checksum for downloaded {dest.name}: content md5 {digest}, expected {md5}"
    return ""


def load_fashion_mnist(
    path: str | Path | None = None,
    download: bool = True,
    cache_dir: str | Path | None = None,
) -> ArrayDataset:
    """Load Fashion-MNIST (60000 train / 10000 test uint8 28×28 images, 10 classes).

    Args:
        path: folder holding the four IDX files (``.gz`` or decompressed); tried first.
        download: try the official mirror (into the cache) when no local copy is valid.
        cache_dir: cache root (default $COSIM_CACHE_DIR or ~/.cache/cosim).

    Returns:
        The dataset, with ``mean``/``std`` set to the standard normalisation constants.

    Raises:
        DatasetNotFoundError: with every place tried, why each failed, and the fixes.
    """
    cache = default_cache_dir(cache_dir)
    places: list[tuple[str, Path | None]] = []
    if path is not None:
        places.append(("path argument", Path(path)))
    env = os.environ.get("COSIM_DATA_DIR")
    if env:
        env_dir = Path(env)
        places += [("$COSIM_DATA_DIR", env_dir), ("$COSIM_DATA_DIR", env_dir / "fashion-mnist")]
    else:
        places.append(("$COSIM_DATA_DIR", None))
    places += [("cache", cache), ("system package dataset-fashion-mnist", SYSTEM_DIR)]

    tried: list[str] = []
    for label, folder in places:
        if folder is None:
            tried.append(f"{label}: not set")
            continue
        ds, reason = _load_dir(folder, parsed_cache_path(folder, cache_dir))
        if ds is not None:
            if path is not None and folder != Path(path):
                warnings.warn(
                    f"Fashion-MNIST: path argument {path} is not usable ({tried[0]}); "
                    f"loaded from {label} {folder} instead",
                    stacklevel=2,
                )
            return ds
        tried.append(f"{label} {folder}: {reason}")

    if download:
        reason = _download_into(cache)
        if not reason:
            ds, reason = _load_dir(cache, parsed_cache_path(cache, cache_dir))
            if ds is not None:
                return ds
        tried.append(f"download from {MIRROR} into {cache}: {reason}")
    else:
        tried.append(f"download from {MIRROR}: skipped (download=False)")

    lines = "\n".join(f"  {i}. {t}" for i, t in enumerate(tried, 1))
    names = ", ".join(f"{n}.gz" for n, _ in FILES.values())
    raise DatasetNotFoundError(
        "Fashion-MNIST not found. Tried, in order:\n"
        f"{lines}\n"
        "Fix with one of:\n"
        "  - sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist   (installs into "
        f"{SYSTEM_DIR})\n"
        "  - COSIM_DATA_DIR=/dir where /dir holds the four files\n"
        f"  - download {names} from {MIRROR} into {cache}"
    )
