"""The loaders, on data that ships offline (no download ever)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from dgp.data import DATASETS, DataNotFoundError, load_dataset, missing_data_message


def test_digits_is_embedded_and_resized():
    data = load_dataset({"name": "digits", "image_size": 32}, "test")
    images, labels = data.samples([0, 1, 2])
    assert images.shape == (3, 1, 32, 32) and data.num_classes == 10
    assert 0 <= images.min() and images.max() <= 1
    train = load_dataset({"name": "digits", "image_size": 32}, "train")
    assert len(train.dataset) + len(data.dataset) == 1797
    x = data.normalize(images)
    assert torch.allclose(data.denormalize(x), images, atol=1e-6)


def test_imagefolder_reads_real_cifar_images(cifar10_mini):
    data = load_dataset({"name": "imagefolder", "root": str(cifar10_mini)}, "test")
    images, labels = data.samples([0, 150, 999])
    assert images.shape == (3, 3, 32, 32) and data.num_classes == 10
    assert labels.tolist() == [0, 1, 9]  # alphabetical classes: airplane, automobile, truck
    assert images.std() > 0.05  # natural images, not blanks


def _class_folders(root, counts: dict[str, int]) -> None:
    """PNG files under root/<class>/, each a different flat grey (so a file is its value)."""
    from PIL import Image

    value = 0
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            value += 5
            Image.new("RGB", (4, 4), (value,) * 3).save(root / name / f"{i:04d}.png")


def test_imagefolder_without_splits_splits_each_class_disjointly(tmp_path):
    # The server's public images (the train split: floor, label priors, imprint thresholds)
    # must not include an attacked (test) image; one folder used to serve both splits.
    _class_folders(tmp_path, {"cat": 7, "dog": 5})
    spec = {"name": "imagefolder", "root": str(tmp_path), "image_size": 4}
    splits = {}
    for split in ("train", "test"):
        data = load_dataset(spec, split)
        images, labels = data.samples(list(range(len(data.dataset))))
        assert data.num_classes == 2
        splits[split] = {(round(float(x.mean()) * 255), int(y))
                         for x, y in zip(images, labels, strict=True)}
    assert not splits["train"] & splits["test"]
    assert len(splits["train"] | splits["test"]) == 12
    # Every fifth file of each class by name: cat 0000, 0005; dog 0000.
    assert splits["test"] == {(5, 0), (30, 0), (40, 1)}


def test_imagefolder_with_one_split_folder_is_refused(tmp_path):
    _class_folders(tmp_path / "train", {"cat": 2})
    message = missing_data_message({"name": "imagefolder", "root": str(tmp_path)})
    assert "has train/ but not the other split" in message


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_dataset_loads_or_says_first_what_is_missing(name, tmp_path):
    # Adding a dataset is one DATASETS entry: offline, with a data root that does not
    # exist, it either says what is missing (config validation then refuses it before any
    # job runs; the torchvision sets' files are tested below) or loads consistent splits.
    spec = {"name": name, "root": str(tmp_path / "absent"), "image_size": 8}
    if missing_data_message(spec):
        return
    for split in ("train", "test"):
        data = load_dataset(spec, split)
        images, labels = data.samples([0, len(data.dataset) - 1])
        assert images.shape == (2, data.channels, 8, 8)
        assert 0 <= images.min() and images.max() <= 1
        assert all(0 <= label < data.num_classes for label in labels.tolist())
        assert len(data.mean) == len(data.std) == data.channels


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "mnist"])
def test_missing_torchvision_files_name_the_root(name, tmp_path):
    with pytest.raises(DataNotFoundError, match=str(tmp_path)):
        load_dataset({"name": name, "root": str(tmp_path)}, "test")


def _write_idx(path, array: np.ndarray) -> None:
    dims = array.shape
    header = bytes([0, 0, 0x08, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_loader_reads_idx_files(tmp_path):
    # Build MNIST's own file format from the embedded digits, then load with torchvision.
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.kron(digits.images[:20], np.ones((3, 3)))  # 8x8 -> 24x24
    images = np.pad(images * 255 / 16, ((0, 0), (2, 2), (2, 2)))  # -> 28x28
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", digits.target[:20])
    data = load_dataset({"name": "mnist", "root": str(tmp_path), "image_size": 32}, "test")
    batch, labels = data.samples([0, 1])
    assert batch.shape == (2, 1, 32, 32)
    assert labels.tolist() == digits.target[:2].tolist()


def test_cifar10_loader_reads_python_batches(tmp_path, cifar10_mini, monkeypatch):
    # CIFAR-10's pickled batches built from real cifar10-mini images; only torchvision's
    # md5 check is bypassed (our files are not the official ones).
    from torchvision import datasets
    from torchvision.datasets import cifar

    source = load_dataset({"name": "imagefolder", "root": str(cifar10_mini)}, "test")
    images, labels = source.samples(list(range(0, 1000, 100)))
    pixels = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batch = {"data": pixels.transpose(0, 3, 1, 2).reshape(10, -1), "labels": labels.tolist()}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in
                                                                         range(10)]}))
    monkeypatch.setattr(datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(cifar, "check_integrity", lambda *args, **kwargs: True)
    data = load_dataset({"name": "cifar10", "root": str(tmp_path)}, "test")
    loaded, loaded_labels = data.samples([3])
    assert loaded_labels.tolist() == [labels[3].item()]
    assert torch.allclose(loaded, images[3:4], atol=1 / 255 + 1e-6)


def test_embedded_digits_are_scikit_learns_load_digits():
    # read from sklearn's file without importing sklearn (2 s of every job's start-up)
    from sklearn.datasets import load_digits

    digits = load_digits()
    data = load_dataset({"name": "digits", "image_size": 8}, "train")
    images, labels = data.samples([0, 1, 2, 3, 1000])
    train = [i for i in range(len(digits.target)) if i % 5][:1001]
    chosen = [train[i] for i in (0, 1, 2, 3, 1000)]
    assert torch.equal(images, torch.tensor(digits.images[chosen], dtype=torch.float32)
                       .unsqueeze(1) / 16)
    assert labels.tolist() == digits.target[chosen].tolist()
