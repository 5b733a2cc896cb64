"""Tasks and raw readers: formats, splits, normalisation, errors and metrics."""

from __future__ import annotations

import gzip
import math
import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from actlab.lab import datasets
from actlab.lab.datasets import DatasetFormatError, DatasetNotFoundError
from actlab.lab.tasks import TaskData, get_task, list_tasks
from actlab.lab.tasks.classification import FASHION_MNIST_DEFAULT_DIR, MNIST1D
from actlab.lab.tasks.sequence import BOS, EOS, PAD, greedy_decode
from actlab.lab.tasks.splits import fit_normalization, rng, shuffled_order

from .dataset_files import IMAGE_FILES, LABEL_FILES, cifar_pickle, idx_bytes, make_idx_set, write_file

ALL_TASKS = ["digits", "fashion_mnist", "mnist", "cifar10", "mnist1d", "sines2d", "diabetes", "num2words"]


# --------------------------------------------------------------------------- catalogue


def test_catalogue_lists_every_task_with_consistent_attributes():
    assert list_tasks() == ALL_TASKS
    for name in ALL_TASKS:
        task = get_task(name)
        assert task.name == name
        assert task.kind in ("classification", "regression", "sequence")
        assert task.description and task.default_model


def test_unknown_task_lists_known_tasks_closest_first():
    with pytest.raises(ValueError, match="unknown task 'fashon_mnist'") as err:
        get_task("fashon_mnist")
    listed = str(err.value).split("closest first): ")[1].split(", ")
    assert listed[0] == "fashion_mnist"
    assert sorted(listed) == sorted(ALL_TASKS)


@pytest.mark.parametrize("kwargs", [{"seed": -1}, {"seed": 1.5}, {"limit": 0}, {"limit": True}])
def test_load_rejects_bad_seed_or_limit(kwargs):
    with pytest.raises(ValueError, match="seed|limit"):
        get_task("sines2d").load(**kwargs)


# --------------------------------------------------------------------------- IDX reader


def test_read_idx_returns_stored_arrays(idx_set):
    images = datasets.read_idx(idx_set.path(IMAGE_FILES[0]), ndim=3)
    labels = datasets.read_idx(idx_set.path(LABEL_FILES[1]), ndim=1)
    np.testing.assert_array_equal(images, idx_set.x_train)
    np.testing.assert_array_equal(labels, idx_set.y_test)
    assert images.dtype == np.uint8 and images.shape == (60, 28, 28)


def test_read_idx_other_type_codes(tmp_path):
    values = np.array([[1.5, -2.0], [3.25, 4.0]], dtype=">f4")
    path = tmp_path / "floats-idx2"
    path.write_bytes(bytes([0, 0, 0x0D, 2]) + (2).to_bytes(4, "big") * 2 + values.tobytes())
    np.testing.assert_array_equal(datasets.read_idx(path), values)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda b: b"\x12\x34" + b[2:], "bad IDX magic number 0x1234"),
        (lambda b: b[:2] + b"\x42" + b[3:], "bad IDX magic number"),
        (lambda b: b[:-5], "truncated"),
        (lambda b: b + b"\0\0\0", "3 unexpected trailing bytes"),
        (lambda b: b[:3], "too short for an IDX header"),
        (lambda b: b[:10], "truncated IDX header"),
    ],
    ids=["magic", "type-code", "truncated", "trailing", "tiny", "short-header"],
)
def test_read_idx_rejects_corrupt_files(tmp_path, gz, corrupt, message):
    payload = idx_bytes(np.zeros((4, 28, 28), np.uint8))
    path = write_file(tmp_path / "train-images-idx3-ubyte", corrupt(payload), gz)
    with pytest.raises(DatasetFormatError, match=message) as err:
        datasets.read_idx(path, ndim=3)
    assert str(path) in str(err.value)


def test_read_idx_rejects_wrong_dimensionality(tmp_path):
    path = write_file(tmp_path / "labels", idx_bytes(np.zeros((4, 2), np.uint8)), False)
    with pytest.raises(DatasetFormatError, match="has 2 dimensions, expected 1"):
        datasets.read_idx(path, ndim=1)


def test_read_idx_rejects_truncated_gzip(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((4, 28, 28), np.uint8)))[:-20])
    with pytest.raises(DatasetFormatError, match="corrupt or truncated gzip"):
        datasets.read_idx(path)


def test_label_count_mismatch_names_both_files(tmp_path):
    folder = make_idx_set(tmp_path, gz=False).folder
    write_file(folder / LABEL_FILES[0], idx_bytes(np.zeros(59, np.uint8)), False)
    with pytest.raises(DatasetFormatError, match="holds 59 labels but .*train-images-idx3-ubyte holds 60 images"):
        get_task("mnist").load(data_dir=str(folder))


def test_out_of_range_label_is_rejected(tmp_path):
    folder = make_idx_set(tmp_path, gz=True).folder
    write_file(folder / LABEL_FILES[1], idx_bytes(np.full(20, 10, np.uint8)), True)
    with pytest.raises(DatasetFormatError, match="label 10 is out of range 0..9"):
        get_task("mnist").load(data_dir=str(folder))


def test_a_folder_named_like_a_data_file_is_not_taken_for_it(tmp_path):
    folder = make_idx_set(tmp_path, gz=False).folder
    (folder / IMAGE_FILES[1]).unlink()
    (folder / IMAGE_FILES[1]).mkdir()
    with pytest.raises(DatasetNotFoundError, match="incomplete: missing t10k-images-idx3-ubyte"):
        get_task("mnist").load(data_dir=str(folder))


# --------------------------------------------------------------------------- MNIST-format tasks


def test_mnist_task_splits_normalises_and_keeps_official_test(idx_set):
    data = get_task("mnist").load(data_dir=str(idx_set.folder), seed=3)
    assert data.sizes == {"train": 54, "val": 6, "test": 20}
    assert data.input_shape == (1, 28, 28) and data.num_outputs == 10
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert data.extras["spatial_shape"] == (1, 28, 28)
    assert data.extras["source"] == str(idx_set.folder)

    # Train + val is exactly the official training set, split without overlap.
    mean, std = data.extras["normalization"]["mean"][0], data.extras["normalization"]["std"][0]
    raw = lambda x: np.rint(x.numpy().astype(np.float64) * std + mean).astype(np.uint8)  # noqa: E731
    pool = sorted(r.tobytes() for r in idx_set.x_train)
    assert sorted(r.tobytes() for r in np.concatenate([raw(data.x_train), raw(data.x_val)])) == pool
    np.testing.assert_array_equal(raw(data.x_test)[:, 0], idx_set.x_test)
    np.testing.assert_array_equal(data.y_test.numpy(), idx_set.y_test)

    # Statistics come from the training split only, computed here independently.
    train_pixels = raw(data.x_train).astype(np.float64)
    assert mean == pytest.approx(train_pixels.mean(), rel=1e-12)
    assert std == pytest.approx(train_pixels.std(), rel=1e-12)
    assert float(data.x_train.double().mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(data.x_train.double().std(unbiased=False)) == pytest.approx(1.0, abs=1e-5)


def test_split_is_deterministic_in_seed_and_changes_with_it(idx_set):
    task = get_task("mnist")
    a, b = task.load(data_dir=str(idx_set.folder), seed=1), task.load(data_dir=str(idx_set.folder), seed=1)
    c = task.load(data_dir=str(idx_set.folder), seed=2)
    for split in ("x_train", "y_train", "x_val", "y_val", "x_test"):
        assert torch.equal(getattr(a, split), getattr(b, split))
    assert not torch.equal(a.y_val, c.y_val) or not torch.equal(a.x_val, c.x_val)
    assert torch.equal(a.y_test, c.y_test)


def test_validation_split_is_stratified(idx_set):
    data = get_task("mnist").load(data_dir=str(idx_set.folder), seed=0)
    # 54 + 6 from 6 per class: each of the 6 validation samples from a different class
    assert len(set(data.y_val.tolist())) == 6


def test_limit_caps_only_training_and_keeps_classes_balanced(idx_set):
    full = get_task("mnist").load(data_dir=str(idx_set.folder), seed=0)
    small = get_task("mnist").load(data_dir=str(idx_set.folder), seed=0, limit=20)
    assert small.sizes == {"train": 20, "val": 6, "test": 20}
    counts = np.bincount(small.y_train.numpy(), minlength=10)
    assert counts.min() >= 1 and counts.max() <= 3
    assert torch.equal(full.y_val, small.y_val)
    big = get_task("mnist").load(data_dir=str(idx_set.folder), seed=0, limit=10_000)
    assert big.sizes == full.sizes


def test_fashion_mnist_prefers_dataset_subfolder_and_records_source(tmp_path):
    make_idx_set(tmp_path, gz=False, seed=1)  # MNIST-like files at the root
    sub = make_idx_set(tmp_path / "fashion-mnist", gz=True, seed=2)
    data = get_task("fashion_mnist").load(data_dir=str(tmp_path))
    assert data.extras["source"] == str(sub.folder)
    assert data.extras["classes"][0] == "T-shirt/top"


def test_fashion_mnist_environment_variable(tmp_path, monkeypatch):
    folder = make_idx_set(tmp_path / "elsewhere", gz=True).folder
    monkeypatch.setenv("ACTLAB_FASHION_MNIST_DIR", str(folder))
    assert get_task("fashion_mnist").load().extras["source"] == str(folder)


def test_missing_mnist_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        get_task("mnist").load(data_dir=str(tmp_path))
    message = str(err.value)
    for needed in ["MNIST not found", str(tmp_path), "train-images-idx3-ubyte[.gz]", "t10k-labels-idx1-ubyte[.gz]",
                   "--data-dir", "ACTLAB_MNIST_DIR", "never downloads"]:  # fmt: skip
        assert needed in message
    assert isinstance(err.value, FileNotFoundError)


def test_missing_fashion_mnist_names_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(
        "actlab.lab.tasks.classification.FashionMNIST.default_location",
        datasets.Location(tmp_path / "not-installed", "Debian package dataset-fashion-mnist"),
    )
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist") as err:
        get_task("fashion_mnist").load(data_dir=str(tmp_path))
    assert "does not exist" in str(err.value)  # the Debian folder is reported as absent


def test_nonexistent_data_dir_is_an_error(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        get_task("fashion_mnist").load(data_dir=str(tmp_path / "typo"))


def test_unreadable_file_and_folder_are_reported(tmp_path, monkeypatch):
    folder = make_idx_set(tmp_path, gz=False).folder

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(datasets, "open", refuse, raising=False)
    with pytest.raises(DatasetFormatError, match="cannot read the file .*Permission denied"):
        get_task("mnist").load(data_dir=str(folder))
    monkeypatch.delattr(datasets, "open")
    monkeypatch.setattr(datasets.os, "access", lambda path, mode: Path(path) != folder / "locked")
    (folder / "locked").mkdir()
    monkeypatch.setenv("ACTLAB_MNIST_DIR", str(folder / "locked"))
    with pytest.raises(DatasetNotFoundError, match="locked .*not readable: check its permissions"):
        get_task("mnist").load()


def test_incomplete_folder_is_reported_not_skipped(tmp_path):
    folder = make_idx_set(tmp_path, gz=False).folder
    (folder / LABEL_FILES[1]).unlink()
    with pytest.raises(DatasetNotFoundError, match="incomplete: missing t10k-labels-idx1-ubyte"):
        get_task("mnist").load(data_dir=str(folder))


@pytest.mark.skipif(not FASHION_MNIST_DEFAULT_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist():
    files = datasets.find_dataset_dir(
        "Fashion-MNIST",
        [datasets.Location(FASHION_MNIST_DEFAULT_DIR, "test")],
        list(datasets.MNIST_FILES.values()),
        "",
        compressed_ok=True,
    )
    x_train, y_train, x_test, y_test = datasets.load_idx_dataset(files)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert x_train.mean(dtype=np.float64) == pytest.approx(72.94, abs=0.01)  # the published mean pixel

    data = get_task("fashion_mnist").load(seed=0)
    assert data.sizes == {"train": 54000, "val": 6000, "test": 10000}
    assert np.bincount(data.y_val.numpy()).tolist() == [600] * 10
    assert data.extras["normalization"]["mean"][0] == pytest.approx(72.94, abs=0.2)


# --------------------------------------------------------------------------- CIFAR-10


def test_cifar10_reads_channel_planes_and_normalises_per_channel(cifar_set):
    data = get_task("cifar10").load(data_dir=str(cifar_set.folder.parent), seed=0)
    assert data.sizes == {"train": 27, "val": 3, "test": 10}
    assert data.input_shape == (3, 32, 32) and data.extras["spatial_shape"] == (3, 32, 32)
    norm = data.extras["normalization"]
    mean, std = np.array(norm["mean"]), np.array(norm["std"])
    raw = np.rint(data.x_test.numpy() * std[None, :, None, None] + mean[None, :, None, None])
    stored = cifar_set.x_test.astype(np.float64)
    # data[i, 1024*c + 32*row + col] is channel c at (row, col)
    for c, row, col in [(0, 0, 1), (1, 5, 7), (2, 31, 31)]:
        np.testing.assert_array_equal(raw[:, c, row, col], stored[:, 1024 * c + 32 * row + col])
    np.testing.assert_array_equal(data.y_test.numpy(), cifar_set.y_test)
    # per-channel statistics of the training split
    train_raw = data.x_train.numpy() * std[None, :, None, None] + mean[None, :, None, None]
    np.testing.assert_allclose(train_raw.mean(axis=(0, 2, 3)), mean, rtol=1e-5)
    assert len(set(mean.round(6))) == 3


def test_cifar10_folder_itself_can_be_data_dir(cifar_set, monkeypatch):
    assert get_task("cifar10").load(data_dir=str(cifar_set.folder)).extras["source"] == str(cifar_set.folder)
    monkeypatch.setenv("ACTLAB_CIFAR10_DIR", str(cifar_set.folder))
    assert get_task("cifar10").load().sizes["test"] == 10


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (pickle.dumps({b"data": _Exploit(), b"labels": []}, protocol=2), r"refers to (posix|nt)\.system"),
        (cifar_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})[:-30], "not a readable"),
        (b"", "not a readable"),
        (cifar_pickle([1, 2, 3]), "holds a list"),
        (cifar_pickle({b"data": np.zeros((2, 3072), np.uint8)}), r"lacks the key\(s\) \['labels'\]"),
        (cifar_pickle({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}), r"shape \(2, 1024\)"),
        (cifar_pickle({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}), "float32"),
        (cifar_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "1 labels for 2 images"),
        (cifar_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 12]}), "out of range"),
    ],
    ids=[
        "code-execution",
        "truncated",
        "empty",
        "not-a-dict",
        "missing-key",
        "bad-shape",
        "bad-dtype",
        "count",
        "label-range",
    ],  # fmt: skip
)
def test_cifar10_rejects_corrupt_batches(cifar_set, payload, message):
    target = cifar_set.folder / "data_batch_3"
    target.write_bytes(payload)
    with pytest.raises(DatasetFormatError, match=message) as err:
        get_task("cifar10").load(data_dir=str(cifar_set.folder.parent))
    assert str(target) in str(err.value)


def test_missing_cifar10_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="cifar-10-python.tar.gz") as err:
        get_task("cifar10").load(data_dir=str(tmp_path))
    assert "data_batch_1" in str(err.value) and "test_batch" in str(err.value)


# --------------------------------------------------------------------------- MNIST-1D


def test_mnist1d_matches_the_package_is_cached_and_leaves_global_rngs_alone(tmp_path):
    from mnist1d.data import get_dataset_args, make_dataset

    random.seed(123)
    np.random.seed(123)
    expected_py, expected_np = random.random(), np.random.random()
    random.seed(123)
    np.random.seed(123)
    first = datasets.load_mnist1d(num_samples=200, cache=tmp_path)
    assert (random.random(), np.random.random()) == (expected_py, expected_np)

    cached = list(tmp_path.glob("mnist1d-*.npz"))
    assert len(cached) == 1
    with np.load(cached[0], allow_pickle=False) as npz:
        assert sorted(npz.files) == ["x", "x_test", "y", "y_test"]
    again = datasets.load_mnist1d(num_samples=200, cache=tmp_path)
    args = get_dataset_args()
    args.num_samples = 200
    reference = make_dataset(args)
    for key in ("x", "y", "x_test", "y_test"):
        np.testing.assert_array_equal(first[key], again[key])
        np.testing.assert_allclose(first[key], reference[key], rtol=1e-6)
    assert first["x"].shape == (160, 40) and first["x_test"].shape == (40, 40)


def test_mnist1d_regenerates_over_a_damaged_cache(tmp_path):
    datasets.load_mnist1d(num_samples=100, cache=tmp_path)
    (cache_file,) = tmp_path.glob("mnist1d-*.npz")
    cache_file.write_bytes(b"not an npz")
    with pytest.warns(UserWarning, match="regenerating"):
        arrays = datasets.load_mnist1d(num_samples=100, cache=tmp_path)
    assert arrays["x"].shape == (80, 40)


def test_mnist1d_task_uses_official_test_split():
    data = MNIST1D(num_samples=300).load(seed=0)
    assert data.sizes == {"train": 216, "val": 24, "test": 60}
    assert data.input_shape == (40,) and data.extras["spatial_shape"] == (1, 40)
    assert "regenerated with seed 42" in data.description
    assert "normalization" not in data.extras  # used as generated


# --------------------------------------------------------------------------- scikit-learn tasks


def test_sklearn_files_match_the_sklearn_loaders(monkeypatch):
    from sklearn.datasets import load_diabetes, load_digits

    x, y = datasets.load_sklearn("digits")
    np.testing.assert_array_equal(x, load_digits().data)
    np.testing.assert_array_equal(y, load_digits().target)
    monkeypatch.setattr(datasets, "_sklearn_data_files", lambda name: None)  # the fallback path
    x2, y2 = datasets.load_sklearn("diabetes")
    np.testing.assert_array_equal(x2, load_diabetes(scaled=False).data)
    np.testing.assert_array_equal(y2, load_diabetes(scaled=False).target)


def _digits_pixels(data: TaskData, x: torch.Tensor) -> np.ndarray:
    """Undo the normalisation: digits pixels are the integers 0..16."""
    norm = data.extras["normalization"]
    return np.rint(x.double().numpy() * norm["std"][0] + norm["mean"][0])


def test_digits_fixed_test_split_and_stratified_validation():
    a, b = get_task("digits").load(seed=0), get_task("digits").load(seed=1)
    assert a.sizes == {"train": 1078, "val": 360, "test": 359}
    assert a.input_shape == (64,) and a.extras["spatial_shape"] == (1, 8, 8)
    np.testing.assert_array_equal(_digits_pixels(a, a.x_test), _digits_pixels(b, b.x_test))
    assert not torch.equal(a.y_val, b.y_val)

    x_all, y_all = datasets.load_sklearn("digits")
    # the three splits partition the dataset
    parts = np.concatenate([_digits_pixels(a, getattr(a, f"x_{s}")) for s in ("train", "val", "test")])
    assert sorted(r.tobytes() for r in parts) == sorted(r.tobytes() for r in x_all)
    expected = np.bincount(y_all) * 360 / 1797
    assert np.abs(np.bincount(a.y_val.numpy()) - expected).max() <= 1.5


def test_diabetes_standardises_features_and_target_with_training_statistics():
    data = get_task("diabetes").load(seed=0)
    assert data.sizes == {"train": 266, "val": 88, "test": 88}
    assert data.y_train.shape == (266, 1) and data.num_outputs == 1
    x_all, y_all = datasets.load_sklearn("diabetes")
    t = data.extras["target_normalization"]
    raw_y_train = data.y_train.double().numpy().ravel() * t["std"][0] + t["mean"][0]
    assert t["mean"][0] == pytest.approx(raw_y_train.mean(), rel=1e-6)
    assert set(np.round(raw_y_train).astype(int)) <= set(y_all.astype(int))
    np.testing.assert_allclose(data.x_train.double().mean(0).numpy(), 0, atol=1e-6)
    np.testing.assert_allclose(data.x_train.double().std(0, unbiased=False).numpy(), 1, atol=1e-5)


# --------------------------------------------------------------------------- sines2d


def test_sines2d_target_against_an_independent_evaluation():
    # activations-spec.md §3.8, written out term by term
    a = [(9, -7), (-9, 11), (3, 13), (9, 9), (13, 5), (3, 19)]
    w = [0.4, 0.1, 0.15, 0.15, 0.1, 0.1]
    data = get_task("sines2d").load(seed=5)
    assert data.sizes == {"train": 5000, "val": 1000, "test": 1000}
    for split in ("train", "test"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        assert float(x.abs().max()) <= 1.0
        for i in (0, 17, 999):
            x1, x2 = float(x[i, 0]), float(x[i, 1])
            expected = sum(wj * math.sin(aj1 * x1 + aj2 * x2) for (aj1, aj2), wj in zip(a, w))
            assert float(y[i, 0]) == pytest.approx(expected, abs=2e-6)
    other = get_task("sines2d").load(seed=6)
    assert torch.equal(data.x_test, other.x_test) and not torch.equal(data.x_train, other.x_train)


# --------------------------------------------------------------------------- num2words


def test_word_tokens_split_hyphens_and_commas():
    assert datasets.word_tokens("quatre-vingt-un") == ["quatre", "-", "vingt", "-", "un"]
    assert datasets.word_tokens("one thousand, two hundred and one") == [
        "one", "thousand", ",", "two", "hundred", "and", "one"
    ]  # fmt: skip
    assert datasets.word_tokens("zéro") == ["zéro"]


def test_num2words_pairs_splits_and_vocabularies():
    from num2words import num2words

    a, b = get_task("num2words").load(seed=0), get_task("num2words").load(seed=1, limit=100)
    assert a.sizes == {"train": 1000, "val": 500, "test": 1000} and b.sizes["train"] == 100
    numbers = a.extras["numbers"]
    everything = numbers["train"] + numbers["val"] + numbers["test"]
    assert len(set(everything)) == 2500 and 0 <= min(everything) and max(everything) < 1_000_000
    assert numbers["test"] == b.extras["numbers"]["test"] and numbers["val"] != b.extras["numbers"]["val"]
    src_vocab, tgt_vocab = a.extras["src_vocab"], a.extras["tgt_vocab"]
    assert src_vocab == b.extras["src_vocab"] and tgt_vocab == b.extras["tgt_vocab"]
    assert src_vocab[:3] == tgt_vocab[:3] == ["<pad>", "<bos>", "<eos>"]
    assert (a.extras["pad_index"], a.extras["bos_index"], a.extras["eos_index"]) == (PAD, BOS, EOS)

    def spaced(text):  # an independent tokenisation: space out hyphens and commas
        return text.replace("-", " - ").replace(",", " , ").split()

    for split, i in (("train", 0), ("val", 7), ("test", 999)):
        n = numbers[split][i]
        x, y = getattr(a, f"x_{split}")[i], getattr(a, f"y_{split}")[i]
        assert [src_vocab[t] for t in x if t != PAD] == spaced(num2words(n))
        assert [tgt_vocab[t] for t in y if t != PAD] == ["<bos>", *spaced(num2words(n, lang="fr")), "<eos>"]
    assert a.y_train.shape[1] == a.extras["max_len"] and a.num_outputs == len(tgt_vocab)
    assert a.x_train.dtype == torch.int64 and a.input_shape == (a.x_train.shape[1],)


# --------------------------------------------------------------------------- split helpers


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=200), st.integers(0, 2**32 - 1))
def test_shuffled_order_is_a_permutation_with_stratified_prefixes(labels, seed):
    labels = np.array(labels)
    order = shuffled_order(len(labels), rng(seed, "t"), labels)
    assert sorted(order.tolist()) == list(range(len(labels)))
    sizes = np.bincount(labels, minlength=5)
    present = sizes > 0
    for m in range(1, len(labels) + 1):
        got = np.bincount(labels[order[:m]], minlength=5)[present]
        # Every prefix is the same fraction t of every class, give or take one sample:
        # some t satisfies |got_c - t * n_c| <= 1 for all classes c at once.
        low = np.max((got - 1) / sizes[present])
        high = np.min((got + 1) / sizes[present])
        assert low <= high + 1e-12


def test_fit_normalization_matches_numpy_in_float64():
    gen = np.random.default_rng(0)
    x = gen.integers(0, 256, size=(11, 3, 4, 5), dtype=np.uint8)
    mean, std = fit_normalization(x, per_channel=False, chunk=3)
    assert mean.item() == pytest.approx(x.astype(np.float64).mean(), rel=1e-14)
    assert std.item() == pytest.approx(x.astype(np.float64).std(), rel=1e-14)
    mean, std = fit_normalization(x, per_channel=True, chunk=4)
    np.testing.assert_allclose(mean.ravel(), x.astype(np.float64).mean(axis=(0, 2, 3)), rtol=1e-14)
    np.testing.assert_allclose(std.ravel(), x.astype(np.float64).std(axis=(0, 2, 3)), rtol=1e-14)
    const = np.ones((5, 2))
    const[:, 1] = np.arange(5)
    assert fit_normalization(const, per_channel=True)[1].ravel().tolist() == [1.0, pytest.approx(math.sqrt(2))]


def test_missing_optional_dependency_names_the_extra(monkeypatch):
    real_import = __import__("importlib").import_module

    def fake_import(name, *args):
        if name == "num2words":
            raise ImportError("No module named 'num2words'")
        return real_import(name, *args)

    monkeypatch.setattr(datasets.importlib, "import_module", fake_import)
    datasets.number_words.cache_clear()
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'actlab\[lab\]'"):
        datasets.number_words("en", 10)


# --------------------------------------------------------------------------- metrics


def _linear(weight, bias) -> nn.Linear:
    layer = nn.Linear(len(weight[0]), len(weight))
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        layer.bias.copy_(torch.tensor(bias))
    return layer


def test_classification_metrics_by_hand():
    model = _linear([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], [0.0, 0.0, 0.0])
    x = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.2]])
    y = torch.tensor([0, 1, 1, 2, 1])
    # logits by hand: [2,0,1] [0,3,1.5] [1,1,1] [1,0,.5] [0,.2,.1]; argmax: 0, 1, 0 (first of ties), 0, 1
    logits = [[2, 0, 1], [0, 3, 1.5], [1, 1, 1], [1, 0, 0.5], [0, 0.2, 0.1]]
    ce = [math.log(sum(math.exp(v) for v in row)) - row[t] for row, t in zip(logits, y.tolist())]
    got = get_task("digits").evaluate(model, x, y, batch_size=2)
    assert got["accuracy"] == pytest.approx(3 / 5)
    assert got["loss"] == pytest.approx(sum(ce) / 5, rel=1e-6)


def test_regression_metrics_by_hand():
    model = _linear([[2.0]], [1.0])
    x = torch.tensor([[0.0], [1.0], [2.0], [-1.0]])
    y = torch.tensor([[1.5], [2.0], [5.0], [-1.0]])
    pred = [1.0, 3.0, 5.0, -1.0]
    sse = sum((p - t) ** 2 for p, t in zip(pred, [1.5, 2.0, 5.0, -1.0]))
    mean = (1.5 + 2.0 + 5.0 - 1.0) / 4
    sst = sum((t - mean) ** 2 for t in [1.5, 2.0, 5.0, -1.0])
    got = get_task("sines2d").evaluate(model, x, y, batch_size=3)
    assert got["mse"] == pytest.approx(sse / 4) and got["loss"] == got["mse"]
    assert got["r2"] == pytest.approx(1 - sse / sst)


def test_regression_refuses_mismatched_output_shape():
    model = nn.Sequential(_linear([[1.0]], [0.0]), nn.Flatten(0))
    with pytest.raises(ValueError, match=r"output has shape \(4,\) but targets have \(4, 1\)"):
        get_task("sines2d").evaluate(model, torch.zeros(4, 1), torch.zeros(4, 1))


class _ScriptedSeq2Seq(nn.Module):
    """Predicts a fixed token sequence per sample, whatever the prefix (logit 5 on the scripted token)."""

    def __init__(self, scripts: torch.Tensor, vocab: int):
        super().__init__()
        self.scripts, self.vocab = scripts, vocab
        self.anchor = nn.Parameter(torch.zeros(()))
        self.seen_tgt_in: list[torch.Tensor] = []

    def encode(self, src):
        return src

    def decode(self, memory, src, tgt_in):
        self.seen_tgt_in.append(tgt_in)
        rows = self.scripts[src[:, 0]][:, : tgt_in.shape[1]]
        return F.one_hot(rows, self.vocab).float() * 5.0 + self.anchor

    def forward(self, src, tgt_in):
        return self.decode(self.encode(src), src, tgt_in)


def test_sequence_metrics_by_hand():
    # targets: BOS a b EOS PAD  /  BOS c EOS PAD PAD  /  BOS a a a EOS  (tokens a=3, b=4, c=5)
    y = torch.tensor([[BOS, 3, 4, EOS, PAD], [BOS, 5, EOS, PAD, PAD], [BOS, 3, 3, 3, EOS]])
    scripts = torch.tensor(
        [
            [3, 4, EOS, 3, 3],  # exact; the token after EOS is ignored
            [5, 4, EOS, 4, 4],  # wrong second token, never emits EOS in time
            [3, 3, 3, EOS, 3],  # exact
        ]
    )
    model = _ScriptedSeq2Seq(scripts, vocab=6)
    src = torch.tensor([[0], [1], [2]])
    got = get_task("num2words").evaluate(model, src, y, batch_size=2)
    # teacher-forced targets (non-pad): 3 + 2 + 4 = 9 tokens; wrong: sample 1 position 2 (4 vs EOS)
    assert got["token_accuracy"] == pytest.approx(8 / 9)
    assert got["exact_match"] == pytest.approx(2 / 3)
    hit = math.log(math.exp(5) + 5) - 5  # the scripted token is the target
    miss = math.log(math.exp(5) + 5)  # it is not (target logit 0)
    assert got["loss"] == pytest.approx((8 * hit + miss) / 9, rel=1e-6)


def test_greedy_decode_stops_at_eos_and_pads_after_it():
    scripts = torch.tensor([[3, EOS, 4, 4], [4, 4, 4, EOS]])
    model = _ScriptedSeq2Seq(scripts, vocab=6)
    out = greedy_decode(model, torch.tensor([[0], [1]]), max_len=5)
    assert out.tolist() == [[BOS, 3, EOS, PAD, PAD], [BOS, 4, 4, 4, EOS]]
    model.seen_tgt_in.clear()
    greedy_decode(model, torch.tensor([[0]]), max_len=5)
    assert len(model.seen_tgt_in) == 2  # stopped once every sequence had ended


def test_sequence_training_uses_teacher_forcing():
    model = _ScriptedSeq2Seq(torch.tensor([[3, 4, EOS, PAD]]), vocab=6)
    y = torch.tensor([[BOS, 3, 4, EOS, PAD]])
    loss = get_task("num2words").forward_train(model, torch.tensor([[0]]), y)
    assert torch.equal(model.seen_tgt_in[-1], y[:, :-1])
    assert loss.item() == pytest.approx(math.log(math.exp(5) + 5) - 5, rel=1e-6)


def test_evaluate_restores_each_module_train_flag():
    model = nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5), nn.BatchNorm1d(3))
    model.train()
    model[2].eval()
    get_task("digits").evaluate(model, torch.randn(4, 2), torch.tensor([0, 1, 2, 0]))
    assert [m.training for m in model.modules()] == [True, True, True, False]


def test_forward_train_and_a_short_training_run_learn_digits():
    task = get_task("digits")
    data = task.load(seed=0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    before = task.evaluate(model, data.x_val, data.y_val)["accuracy"]
    for _ in range(3):
        for i in range(0, len(data.y_train), 64):
            loss = task.forward_train(model, data.x_train[i : i + 64], data.y_train[i : i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    after = task.evaluate(model, data.x_val, data.y_val)
    assert before < 0.3 and after["accuracy"] > 0.9


def test_taskdata_validates_split_consistency():
    with pytest.raises(ValueError, match="x_val has 2 samples but y_val has 3"):
        TaskData("t", "regression", torch.zeros(1, 2), torch.zeros(1, 1), torch.zeros(2, 2), torch.zeros(3, 1),
                 torch.zeros(1, 2), torch.zeros(1, 1), (2,), 1, "mse", False, "d")  # fmt: skip
