"""Classification tasks: digits, Fashion-MNIST, MNIST, CIFAR-10 and MNIST-1D."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import datasets
from ..datasets import DatasetNotFoundError, Location
from .arrays import ClassificationTask, RawData

__all__ = ["Digits", "FashionMNIST", "MNIST", "CIFAR10", "MNIST1D", "FASHION_MNIST_DEFAULT_DIR"]

#: Where the Debian package ``dataset-fashion-mnist`` installs the files.
FASHION_MNIST_DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")


def _locations(
    data_dir: str | os.PathLike | None, subdirs: tuple[str, ...], env_var: str, default: Location | None = None
) -> list[Location]:
    """Folders to search, in order: ``data_dir`` (dataset-specific subfolders first,
    then ``data_dir`` itself), ``$env_var``, then ``default``.

    A ``data_dir`` that does not exist is an error (most likely a typo), not a
    reason to quietly look elsewhere.
    """
    found: list[Location] = []
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise DatasetNotFoundError(f"data folder {root} (data_dir / --data-dir) does not exist or is not a folder")
        found += [Location(root / sub, "data_dir") for sub in subdirs if (root / sub).is_dir()]
        found.append(Location(root, "data_dir"))
    if os.environ.get(env_var):
        found.append(Location(Path(os.environ[env_var]).expanduser(), f"${env_var}"))
    if default is not None:
        found.append(default)
    return found


class Digits(ClassificationTask):
    """scikit-learn's bundled digits: 1797 8x8 images (UCI optdigits), values 0..16.

    No official test split exists: a stratified 20 % (359 images) is held out
    with a fixed seed; validation is 25 % of the rest (360), training the
    remaining 1078. Pixels are standardised with one mean/std from the training
    split. Inputs are flat ``(64,)``; ``extras["spatial_shape"]`` is ``(1, 8, 8)``.
    """

    name = "digits"
    default_model = "mlp"
    description = "scikit-learn digits (1797 real 8x8 handwritten digits, UCI optdigits)"
    test_fraction = 0.2
    val_fraction = 0.25
    normalize = "global"

    def read(self, data_dir: str | None, seed: int) -> RawData:
        x, y = datasets.load_sklearn("digits")
        return RawData(
            x, y.astype(np.int64), source="sklearn.datasets.load_digits", extras={"spatial_shape": (1, 8, 8)}
        )


class _IdxImages(ClassificationTask):
    """An MNIST-format dataset: four IDX files, official train/test split.

    Validation is 10 % of the official training set, drawn by seed and
    stratified. Pixels are standardised with one mean/std from the training
    split. Inputs are ``(1, rows, cols)``.
    """

    title: str
    subdirs: tuple[str, ...]
    env_var: str
    how_to: str
    default_location: Location | None = None
    normalize = "global"

    def read(self, data_dir: str | None, seed: int) -> RawData:
        locations = _locations(data_dir, self.subdirs, self.env_var, self.default_location)
        files = datasets.find_dataset_dir(
            self.title, locations, list(datasets.MNIST_FILES.values()), self.how_to, compressed_ok=True
        )
        x, y, x_test, y_test = datasets.load_idx_dataset(files, num_classes=len(self.classes))
        folder = str(next(iter(files.values())).parent)
        shape = (1, *x.shape[1:])
        return RawData(
            x.reshape(-1, *shape),
            y.astype(np.int64),
            x_test.reshape(-1, *shape),
            y_test.astype(np.int64),
            source=folder,
            extras={"spatial_shape": shape},
        )


class FashionMNIST(_IdxImages):
    """Fashion-MNIST (Zalando): 60 000 + 10 000 28x28 grayscale clothing images.

    Looked for in ``data_dir`` (subfolders ``fashion-mnist``, ``fashion_mnist``,
    ``FashionMNIST/raw``, then the folder itself), ``$ACTLAB_FASHION_MNIST_DIR``,
    then the Debian package's ``/usr/share/datasets/fashion-mnist``. Files may be
    gzipped or not.
    """

    name = "fashion_mnist"
    default_model = "cnn"
    description = "Fashion-MNIST (Zalando, 28x28 grayscale, official 60k/10k split)"
    title = "Fashion-MNIST"
    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    subdirs = ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw")
    env_var = "ACTLAB_FASHION_MNIST_DIR"
    default_location = Location(FASHION_MNIST_DEFAULT_DIR, "Debian package dataset-fashion-mnist")
    how_to = (
        "Install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu; the files go to "
        f"{FASHION_MNIST_DEFAULT_DIR}), or without root: `apt-get download dataset-fashion-mnist && "
        "dpkg -x dataset-fashion-mnist_*.deb DIR` and use DIR/usr/share/datasets/fashion-mnist. "
        "Any folder with the four IDX files (https://github.com/zalandoresearch/fashion-mnist) works: "
        "pass it as --data-dir DIR (data_dir=DIR) or set ACTLAB_FASHION_MNIST_DIR."
    )


class MNIST(_IdxImages):
    """MNIST: 60 000 + 10 000 28x28 handwritten digits, from IDX files you supply.

    MNIST is not bundled and never downloaded. Looked for in ``data_dir``
    (subfolders ``mnist``, ``MNIST/raw`` -- torchvision's layout -- then the
    folder itself) and ``$ACTLAB_MNIST_DIR``.
    """

    name = "mnist"
    default_model = "cnn"
    description = "MNIST (28x28 handwritten digits, official 60k/10k split, user-supplied IDX files)"
    title = "MNIST"
    subdirs = ("mnist", "MNIST/raw")
    env_var = "ACTLAB_MNIST_DIR"
    how_to = (
        "actlab never downloads data. Get the four MNIST IDX files (e.g. from http://yann.lecun.com/exdb/mnist/ or "
        "the mirror https://ossci-datasets.s3.amazonaws.com/mnist/; a torchvision MNIST/raw folder also works), put "
        "them in a folder and pass it as --data-dir DIR (data_dir=DIR) or set ACTLAB_MNIST_DIR."
    )


class CIFAR10(ClassificationTask):
    """CIFAR-10: 50 000 + 10 000 32x32 colour images, from the python batches you supply.

    CIFAR-10 is not bundled and never downloaded. Looked for in
    ``data_dir/cifar-10-batches-py``, ``data_dir`` itself and
    ``$ACTLAB_CIFAR10_DIR``. Validation is 10 % of the official training set,
    drawn by seed and stratified; each channel is standardised with training
    statistics. Inputs are ``(3, 32, 32)``.
    """

    name = "cifar10"
    default_model = "resnet"
    description = "CIFAR-10 (32x32 colour, official 50k/10k split, user-supplied python batches)"
    classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    normalize = "per_channel"
    how_to = (
        "actlab never downloads data. Download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, "
        "unpack it with `tar xzf cifar-10-python.tar.gz` (this creates cifar-10-batches-py/), and pass the folder that "
        "contains cifar-10-batches-py (or that folder itself) as --data-dir DIR (data_dir=DIR), or set "
        "ACTLAB_CIFAR10_DIR."
    )

    def read(self, data_dir: str | None, seed: int) -> RawData:
        locations = _locations(data_dir, ("cifar-10-batches-py",), "ACTLAB_CIFAR10_DIR")
        names = [*datasets.CIFAR10_TRAIN_BATCHES, datasets.CIFAR10_TEST_BATCH]
        files = datasets.find_dataset_dir("CIFAR-10", locations, names, self.how_to)
        x, y, x_test, y_test = datasets.load_cifar10(files)
        folder = str(files[datasets.CIFAR10_TEST_BATCH].parent)
        return RawData(x, y, x_test, y_test, source=folder, extras={"spatial_shape": (3, 32, 32)})


class MNIST1D(ClassificationTask):
    """MNIST-1D: 40-sample 1-D signals of 10 digit templates, generated offline.

    Made by the ``mnist1d`` package with its default arguments (seed 42, 5000
    samples, official 4000/1000 split; ``num_samples`` changes the size) and cached under ``$ACTLAB_CACHE_DIR``
    (default ``~/.cache/actlab``). Regenerated rather than downloaded: equality
    with the frozen upstream pickle could not be checked offline, hence the
    description. The generator already standardises the signals (over the whole
    dataset, as upstream does); they are used as generated. Validation is 10 %
    of the training set, by seed. Inputs are ``(40,)``;
    ``extras["spatial_shape"]`` is ``(1, 40)``.
    """

    name = "mnist1d"
    default_model = "cnn"

    def __init__(self, num_samples: int = 5000):
        self.num_samples = num_samples
        n_train = int(0.8 * num_samples)
        self.description = (
            f"MNIST-1D (regenerated with seed 42 by the mnist1d package, {n_train}/{num_samples - n_train} split)"
        )

    def read(self, data_dir: str | None, seed: int) -> RawData:
        arrays = datasets.load_mnist1d(num_samples=self.num_samples)
        return RawData(
            arrays["x"],
            arrays["y"],
            arrays["x_test"],
            arrays["y_test"],
            source="mnist1d.data.make_dataset (seed 42)",
            extras={"spatial_shape": (1, arrays["x"].shape[1])},
        )
