"""Writers of tiny datasets in the exact upstream file formats.

The writers follow the published format descriptions, independently of the
readers under test:

* IDX (http://yann.lecun.com/exdb/mnist/): magic ``00 00 08 <ndim>``, one
  big-endian uint32 per dimension, then the uint8 data; optionally gzipped.
* CIFAR-10 python batches (https://www.cs.toronto.edu/~kriz/cifar.html): a
  protocol-2 pickle of a dict with byte-string keys ``batch_label``, ``labels``
  (list of ints), ``data`` (uint8 ``[N, 3072]``: 1024 red, 1024 green, 1024 blue
  values, each plane row-major) and ``filenames``.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_FILES = ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")
LABEL_FILES = ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(array: np.ndarray) -> bytes:
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.tobytes()


def write_file(path: Path, payload: bytes, gz: bool) -> Path:
    path = path.with_name(path.name + ".gz") if gz else path
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


@dataclass
class IdxSet:
    folder: Path
    gz: bool
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def path(self, name: str) -> Path:
        return self.folder / (name + ".gz" if self.gz else name)


def make_idx_set(folder: Path, *, gz: bool, n_train: int = 60, n_test: int = 20, seed: int = 0) -> IdxSet:
    folder.mkdir(parents=True, exist_ok=True)
    gen = np.random.default_rng(seed)
    sets = []
    for n in (n_train, n_test):
        x = gen.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        gen.shuffle(y)
        sets.append((x, y))
    for (x, y), img_name, lbl_name in zip(sets, IMAGE_FILES, LABEL_FILES):
        write_file(folder / img_name, idx_bytes(x), gz)
        write_file(folder / lbl_name, idx_bytes(y), gz)
    return IdxSet(folder, gz, sets[0][0], sets[0][1], sets[1][0], sets[1][1])


def cifar_pickle(batch: dict) -> bytes:
    """A protocol-2 pickle as the CIFAR files are, naming NumPy's pre-2.0 module path as they do."""
    payload = pickle.dumps(batch, protocol=2)
    return payload.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


@dataclass
class CifarSet:
    folder: Path
    x_train: np.ndarray  # [N, 3072] as stored
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def make_cifar_set(root: Path, *, per_batch: int = 6, n_test: int = 10, seed: int = 0) -> CifarSet:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    gen = np.random.default_rng(seed)
    xs, ys = [], []
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else per_batch
        data = gen.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in gen.integers(0, 10, size=n)]
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"img_{i}.png".encode() for i in range(n)],
        }
        (folder / name).write_bytes(cifar_pickle(batch))
        xs.append(data)
        ys.append(np.array(labels))
    return CifarSet(folder, np.concatenate(xs[:5]), np.concatenate(ys[:5]), xs[5], ys[5])
