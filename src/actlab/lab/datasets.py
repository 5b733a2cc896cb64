"""Raw dataset readers: IDX (MNIST, Fashion-MNIST), CIFAR-10 python batches, MNIST-1D,
scikit-learn's bundled sets and num2words pairs.

Everything here reads local files or generates data offline; nothing is ever
downloaded. Readers return NumPy arrays exactly as stored (no scaling, no
splitting); :mod:`actlab.lab.tasks` turns them into train/val/test tensors.

Two exceptions report data problems:

* :class:`DatasetNotFoundError` -- the files are not where we looked; the message
  says where we looked and exactly how to get them;
* :class:`DatasetFormatError` -- a file exists but is not what it should be; the
  message names the file and what is wrong with it.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import pickle
import random
import re
import struct
import tempfile
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from .._cache import cache_root

__all__ = [
    "DatasetNotFoundError",
    "DatasetFormatError",
    "optional_import",
    "package_version",
    "Location",
    "find_dataset_dir",
    "read_idx",
    "MNIST_FILES",
    "load_idx_dataset",
    "CIFAR10_TRAIN_BATCHES",
    "CIFAR10_TEST_BATCH",
    "load_cifar10",
    "cache_dir",
    "load_mnist1d",
    "load_sklearn",
    "number_words",
    "word_tokens",
]


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files were not found; the message says how to get them."""


class DatasetFormatError(ValueError):
    """A dataset file exists but is corrupt or not in the expected format."""


def package_version(name: str) -> str:
    """The installed version of distribution ``name``, or ``"unknown"``."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def optional_import(module: str, package: str, purpose: str) -> ModuleType:
    """Import an optional dependency, or fail with the command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ModuleNotFoundError(
            f"{purpose} needs the optional package {package!r}: pip install 'actlab[lab]'"
        ) from err


# --------------------------------------------------------------------------- locating files


@dataclass(frozen=True)
class Location:
    """A folder that may hold a dataset, and why we look there (shown in errors)."""

    path: Path
    origin: str


def _present(folder: Path, name: str, compressed_ok: bool) -> Path | None:
    for candidate in (name, name + ".gz") if compressed_ok else (name,):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def find_dataset_dir(
    title: str,
    locations: Sequence[Location],
    files: Sequence[str],
    how_to: str,
    *,
    compressed_ok: bool = False,
) -> dict[str, Path]:
    """The files of a dataset from the first location that holds all of them.

    Args:
        title: dataset name for messages, e.g. ``"Fashion-MNIST"``.
        locations: folders to try, in order.
        files: required file names.
        how_to: how to obtain the data; ends the "not found" message.
        compressed_ok: accept ``NAME.gz`` for each ``NAME``.

    Returns:
        ``{name: path}`` for every required file.

    Raises:
        DatasetNotFoundError: no location holds the files, or a location holds only
            some of them (an incomplete copy is reported rather than skipped, so a
            half-extracted download is not silently replaced by another copy).
    """
    suffix = "[.gz]" if compressed_ok else ""
    expected = ", ".join(f + suffix for f in files)
    looked = []
    for loc in locations:
        found = {f: _present(loc.path, f, compressed_ok) for f in files}
        present = {f: p for f, p in found.items() if p is not None}
        if len(present) == len(files):
            return present
        if present:
            missing = ", ".join(f + suffix for f in files if f not in present)
            raise DatasetNotFoundError(
                f"{title} in {loc.path} ({loc.origin}) is incomplete: missing {missing}. "
                f"Expected files: {expected}. {how_to}"
            )
        if not loc.path.is_dir():
            state = ", does not exist"
        elif not os.access(loc.path, os.R_OK | os.X_OK):
            state = ", not readable: check its permissions"
        else:
            state = ""
        looked.append(f"{loc.path} ({loc.origin}{state})")
    where = "; ".join(looked) if looked else "nowhere (no folder given)"
    raise DatasetNotFoundError(f"{title} not found. Looked in: {where}. Expected files: {expected}. {how_to}")


def _read_bytes(path: Path) -> bytes:
    """File contents, gunzipped when the file starts with the gzip magic number."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as err:
        raise DatasetFormatError(f"{path}: cannot read the file ({err})") from err
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DatasetFormatError(f"{path}: corrupt or truncated gzip data ({err})") from err


# --------------------------------------------------------------------------- IDX (MNIST family)

#: IDX type code -> big-endian NumPy dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike, *, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (raw or gzipped) into an array of the stored type and shape.

    The header is validated against the payload: the magic number (two zero bytes,
    a known type code, the number of dimensions), and that the payload holds
    exactly the number of items the dimensions promise.

    Raises:
        DatasetFormatError: bad magic number, unexpected number of dimensions,
            truncated file or trailing bytes.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DatasetFormatError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    magic = struct.unpack(">I", raw[:4])[0]
    code, dims_count = raw[2], raw[3]
    if raw[:2] != b"\0\0" or code not in _IDX_DTYPES or dims_count == 0:
        want = f"0x{0x800 + ndim:08x}" if ndim is not None else "0x00000801 or 0x00000803"
        raise DatasetFormatError(f"{path}: bad IDX magic number 0x{magic:08x} (expected {want}); not an IDX file")
    if ndim is not None and dims_count != ndim:
        raise DatasetFormatError(f"{path}: IDX file has {dims_count} dimensions, expected {ndim}")
    header = 4 + 4 * dims_count
    if len(raw) < header:
        raise DatasetFormatError(f"{path}: truncated IDX header ({len(raw)} of {header} bytes)")
    dims = struct.unpack(f">{dims_count}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header
    if actual != expected:
        problem = "truncated" if actual < expected else f"{actual - expected} unexpected trailing bytes"
        raise DatasetFormatError(
            f"{path}: {problem}: the header promises shape {tuple(dims)} ({expected} bytes of data), "
            f"the file holds {actual}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


#: The four files of an MNIST-format dataset (MNIST, Fashion-MNIST), as published upstream.
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def load_idx_dataset(files: dict[str, Path], *, num_classes: int = 10) -> tuple[np.ndarray, ...]:
    """``(x_train, y_train, x_test, y_test)`` from the four MNIST-format files.

    Images are uint8 ``[N, rows, cols]``, labels uint8 ``[N]``. Checks that images
    and labels pair up, that the train and test images have the same size and that
    every label is below ``num_classes``.

    Args:
        files: ``{file name: path}`` as returned by :func:`find_dataset_dir` for
            :data:`MNIST_FILES`.
    """
    out = []
    for split in ("train", "test"):
        images_path = files[MNIST_FILES[f"{split}_images"]]
        labels_path = files[MNIST_FILES[f"{split}_labels"]]
        images = read_idx(images_path, ndim=3)
        labels = read_idx(labels_path, ndim=1)
        for path, arr in ((images_path, images), (labels_path, labels)):
            if arr.dtype != np.uint8:
                raise DatasetFormatError(f"{path}: stores {arr.dtype}, expected unsigned bytes (type code 0x08)")
        if len(images) != len(labels):
            raise DatasetFormatError(
                f"{labels_path} holds {len(labels)} labels but {images_path} holds {len(images)} images"
            )
        if len(labels) and labels.max() >= num_classes:
            raise DatasetFormatError(f"{labels_path}: label {labels.max()} is out of range 0..{num_classes - 1}")
        out += [images, labels]
    if out[0].shape[1:] != out[2].shape[1:]:
        raise DatasetFormatError(f"train images are {out[0].shape[1:]} but test images are {out[2].shape[1:]}")
    return tuple(out)


# --------------------------------------------------------------------------- CIFAR-10 python batches

CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_BATCH = "test_batch"


def _numpy_reconstruct():
    core = importlib.import_module("numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray")
    return core._reconstruct


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes and NumPy arrays, and nothing else.

    A CIFAR batch is a pickle, and unpickling runs whatever callables the file
    names. Only the handful that rebuild a NumPy array are allowed, so a
    malicious or mistaken file fails with an error instead of executing code.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
        # Python 3 pickles bytes as _codecs.encode(str, "latin1") under protocol 2.
        ("_codecs", "encode"): lambda: __import__("codecs").encode,
    }

    def find_class(self, module: str, name: str):
        resolve = self._ALLOWED.get((module, name))
        if resolve is None:
            raise pickle.UnpicklingError(f"refers to {module}.{name}, which a CIFAR-10 batch never contains")
        return resolve()


def _read_cifar_batch(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as fh:
            batch = _ArrayOnlyUnpickler(fh, encoding="bytes").load()
    except OSError as err:
        raise DatasetFormatError(f"{path}: cannot read the file ({err})") from err
    except Exception as err:  # unpickling a damaged file can raise almost anything
        raise DatasetFormatError(f"{path}: not a readable CIFAR-10 python batch ({type(err).__name__}: {err})") from err
    if not isinstance(batch, dict):
        raise DatasetFormatError(f"{path}: holds a {type(batch).__name__}, expected the dict of a CIFAR-10 batch")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    missing = {"data", "labels"} - batch.keys()
    if missing:
        raise DatasetFormatError(f"{path}: batch lacks the key(s) {sorted(missing)}; found {sorted(map(str, batch))}")
    data, labels = batch["data"], batch["labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        what = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetFormatError(f"{path}: 'data' is a {what}; expected uint8 [N, 3072] (N images of 3x32x32)")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as err:
        raise DatasetFormatError(f"{path}: 'labels' is not a list of integers ({err})") from err
    if labels.shape != (len(data),):
        raise DatasetFormatError(f"{path}: {labels.size} labels for {len(data)} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetFormatError(f"{path}: labels out of range 0..{num_classes - 1}")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(files: dict[str, Path]) -> tuple[np.ndarray, ...]:
    """``(x_train, y_train, x_test, y_test)`` from the CIFAR-10 python batches.

    Images are uint8 ``[N, 3, 32, 32]`` (the stored channel-major layout),
    labels int64. Only the array-rebuilding parts of pickle are honoured (see
    :class:`_ArrayOnlyUnpickler`).

    Args:
        files: ``{file name: path}`` for :data:`CIFAR10_TRAIN_BATCHES` and
            :data:`CIFAR10_TEST_BATCH`, as returned by :func:`find_dataset_dir`.
    """
    train = [_read_cifar_batch(files[name], 10) for name in CIFAR10_TRAIN_BATCHES]
    x_test, y_test = _read_cifar_batch(files[CIFAR10_TEST_BATCH], 10)
    return np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), x_test, y_test


# --------------------------------------------------------------------------- MNIST-1D (procedural)


def cache_dir() -> Path:
    """Where generated datasets are cached: ``$ACTLAB_CACHE_DIR``, else ``~/.cache/actlab``."""
    return cache_root()


@contextlib.contextmanager
def _global_rng_preserved() -> Iterator[None]:
    """Restore Python's and NumPy's global RNG states on exit (mnist1d reseeds both)."""
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


_MNIST1D_KEYS = ("x", "y", "x_test", "y_test")


def load_mnist1d(*, num_samples: int = 5000, seed: int = 42, cache: Path | None = None) -> dict[str, np.ndarray]:
    """MNIST-1D generated offline by the ``mnist1d`` package, cached as ``.npz``.

    Uses ``mnist1d.data.make_dataset`` with the package defaults except
    ``num_samples`` and ``seed``: 40-sample signals, 10 classes, 80/20
    train/test. The package reseeds Python's and NumPy's global RNGs; their
    states are restored afterwards. The cache holds plain arrays (never a pickle)
    and is keyed by the package version, ``num_samples`` and ``seed``.

    Returns:
        ``{"x": float32 [N, 40], "y": int64 [N], "x_test": ..., "y_test": ...}``.
    """
    # The package's other arguments are fixed defaults of its version, so the key
    # needs only these; the cache is then checked without importing mnist1d (~2 s).
    version = package_version("mnist1d")
    key = hashlib.sha256(json.dumps([version, num_samples, seed]).encode()).hexdigest()[:16]
    path = (cache or cache_dir()) / f"mnist1d-{version}-{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as npz:
                return {k: npz[k] for k in _MNIST1D_KEYS}
        except Exception as err:  # our own cache: regenerate rather than fail, but say so
            warnings.warn(f"ignoring unreadable MNIST-1D cache {path} ({err}); regenerating", stacklevel=2)
    mnist1d_data = optional_import("mnist1d.data", "mnist1d", "the mnist1d task")
    args = mnist1d_data.get_dataset_args()
    args.num_samples, args.seed = num_samples, seed
    with _global_rng_preserved():
        made = mnist1d_data.make_dataset(args)
    arrays = {
        "x": np.asarray(made["x"], dtype=np.float32),
        "y": np.asarray(made["y"], dtype=np.int64),
        "x_test": np.asarray(made["x_test"], dtype=np.float32),
        "y_test": np.asarray(made["y_test"], dtype=np.int64),
    }
    _save_npz_atomically(path, arrays)
    return arrays


def _save_npz_atomically(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` so that readers never see a half-written file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except OSError as err:  # a read-only cache only costs regeneration time next run
        warnings.warn(f"could not cache generated data at {path} ({err})", stacklevel=3)


# --------------------------------------------------------------------------- scikit-learn bundled sets


#: name -> (files inside ``sklearn/datasets/data``, ``np.loadtxt`` delimiter)
_SKLEARN_FILES = {
    "digits": (("digits.csv.gz",), ","),
    "diabetes": (("diabetes_data_raw.csv.gz", "diabetes_target.csv.gz"), None),
}


def _sklearn_data_files(name: str) -> list[Path] | None:
    """The CSV files scikit-learn ships for ``name``, found without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    paths = [folder / f for f in _SKLEARN_FILES[name][0]]
    return paths if all(p.is_file() for p in paths) else None


def load_sklearn(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of a dataset bundled with scikit-learn (``"digits"`` or ``"diabetes"``), unscaled.

    Reads the CSV files inside the installed scikit-learn directly -- the same
    files and parsing as ``load_digits()`` / ``load_diabetes(scaled=False)`` --
    because importing ``sklearn.datasets`` costs several seconds, more than
    training a digits MLP. Falls back to those loaders if the files ever move.
    """
    if name not in _SKLEARN_FILES:
        raise ValueError(f"no bundled scikit-learn dataset {name!r} here; use one of {sorted(_SKLEARN_FILES)}")
    paths = _sklearn_data_files(name)
    if paths is None:
        loaders = optional_import("sklearn.datasets", "scikit-learn", f"the {name} task")
        bunch = loaders.load_digits() if name == "digits" else loaders.load_diabetes(scaled=False)
        return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target)
    delimiter = _SKLEARN_FILES[name][1]
    if name == "digits":
        table = np.loadtxt(paths[0], delimiter=delimiter)
        return table[:, :-1], table[:, -1].astype(np.int64)
    return np.loadtxt(paths[0], delimiter=delimiter), np.loadtxt(paths[1], delimiter=delimiter)


# --------------------------------------------------------------------------- num2words


@functools.lru_cache(maxsize=8)
def number_words(lang: str, numbers: tuple[int, ...]) -> tuple[str, ...]:
    """``num2words(n, lang=lang)`` for each of ``numbers`` (cached: it costs ~80 us a number)."""
    num2words = optional_import("num2words", "num2words", "the num2words task").num2words
    try:
        return tuple(num2words(n, lang=lang) for n in numbers)
    except NotImplementedError as err:
        raise ValueError(f"num2words has no language {lang!r} ({err})") from err


_TOKEN = re.compile(r"\w+|[^\w\s]")


def word_tokens(text: str) -> list[str]:
    """Words and punctuation as separate tokens: ``"quatre-vingt-un"`` -> ``quatre - vingt - un``."""
    return _TOKEN.findall(text)
