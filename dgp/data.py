"""Datasets behind one interface: images as float tensors in [0, 1], plus what a model needs.

``digits`` (scikit-learn's bundled 8x8 digits) ships with the package and is the embedded
default. ``cifar10``, ``cifar100`` and ``mnist`` are torchvision's loaders (downloading only
when the config allows it); ``imagefolder`` reads any ``root/<split>/<class>/*.jpg`` tree.
Normalisation is kept apart (``normalize``/``denormalize``) because metrics are computed on
[0, 1] images while models and attacks work in normalised space.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset

DATASETS = ("digits", "cifar10", "cifar100", "mnist", "imagefolder")

# Channel statistics of the training splits (CIFAR values as used by breaching).
_STATS = {
    "cifar10": ((0.4914672, 0.4822617, 0.4467702), (0.2470322, 0.2434851, 0.2615879)),
    "cifar100": ((0.5071598, 0.4865942, 0.4410286), (0.2673342, 0.2564384, 0.2761506)),
    "mnist": ((0.1307,), (0.3081,)),
}
# Folder each torchvision loader expects under its root (used to fail early and clearly).
_TORCHVISION_FOLDERS = {
    "cifar10": "cifar-10-batches-py",
    "cifar100": "cifar-100-python",
    "mnist": "MNIST/raw",
}


class DataNotFoundError(FileNotFoundError):
    """Raised when a dataset's files are missing and downloading is not allowed."""


@dataclass
class ImageData:
    """A dataset split plus the facts a model, an attack and the metrics need about it."""

    dataset: Dataset  # yields (image in [0, 1] of shape [C, H, W], int label)
    num_classes: int
    channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self._stat(self.mean, x)) / self._stat(self.std, x)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self._stat(self.std, x) + self._stat(self.mean, x)

    @staticmethod
    def _stat(values: tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(values, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)

    def samples(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Stack the given samples into an image batch in [0, 1] and a label vector."""
        items = [self.dataset[i] for i in indices]
        images = torch.stack([torch.as_tensor(img, dtype=torch.float32) for img, _ in items])
        labels = torch.tensor([int(label) for _, label in items], dtype=torch.long)
        return images, labels


def dataset_id(spec: dict[str, Any]) -> str:
    """The name a dataset entry has in paths and tables: its ``id``, else its ``name``."""
    return spec.get("id") or spec["name"]


def missing_data_message(spec: dict[str, Any]) -> str | None:
    """Say what is missing for ``spec`` without loading it, or None when it can be loaded."""
    name = spec["name"]
    if name == "digits":
        return None
    root = Path(spec.get("root") or "data")
    if name == "imagefolder":
        if not spec.get("root"):
            return "dataset 'imagefolder' needs a 'root' folder (root/<split>/<class>/*.jpg)"
        if not root.is_dir():
            return f"imagefolder root {str(root)!r} does not exist"
        return None
    if spec.get("download", False):
        return None
    expected = root / _TORCHVISION_FOLDERS[name]
    if not expected.exists():
        return (
            f"{name} files not found under data root {str(root)!r} (expected {str(expected)!r}); "
            "put them there or set 'download: true' for that dataset"
        )
    return None


def load_dataset(spec: dict[str, Any], split: str = "test") -> ImageData:
    """Load one split (``train`` or ``test``) of the dataset described by a config entry."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    name = spec["name"]
    image_size = int(spec.get("image_size", 32))
    if name == "digits":
        return _load_digits(split, image_size)
    message = missing_data_message(spec)
    if message:
        raise DataNotFoundError(message)
    if name == "imagefolder":
        return _load_imagefolder(spec, split, image_size)
    if name in _TORCHVISION_FOLDERS:
        return _load_torchvision(spec, split, image_size)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-1] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False).clamp(0, 1)


def digits_file() -> Path:
    """scikit-learn's copy of the UCI digits (``load_digits`` reads the same file), found
    without importing scikit-learn, which costs a job about 2 s."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataNotFoundError("the embedded digits need scikit-learn installed")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"


def _load_digits(split: str, image_size: int) -> ImageData:
    import numpy as np

    table = np.loadtxt(digits_file(), delimiter=",")  # 64 pixels (0-16) and the label
    images = torch.tensor(table[:, :-1], dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
    labels = torch.tensor(table[:, -1], dtype=torch.long)
    # A fixed split: every fifth image is a test image (no randomness, no file to ship).
    is_test = torch.arange(len(labels)) % 5 == 0
    train_images = _resize(images[~is_test], image_size)
    keep = is_test if split == "test" else ~is_test
    chosen = _resize(images[keep], image_size)
    mean = (train_images.mean().item(),)
    std = (train_images.std().item(),)
    return ImageData(TensorDataset(chosen, labels[keep]), 10, 1, image_size, mean, std)


def _transform(image_size: int, native_size: int, grayscale: bool = False):
    from torchvision import transforms

    steps = []
    if grayscale:
        steps.append(transforms.Grayscale(1))
    if image_size != native_size:
        steps.append(transforms.Resize((image_size, image_size), antialias=True))
    steps.append(transforms.ToTensor())
    return transforms.Compose(steps)


def _load_torchvision(spec: dict[str, Any], split: str, image_size: int) -> ImageData:
    from torchvision import datasets

    root = str(spec.get("root") or "data")
    download = bool(spec.get("download", False))
    train = split == "train"
    name = spec["name"]
    constructor, classes, native, channels = {
        "cifar10": (datasets.CIFAR10, 10, 32, 3),
        "cifar100": (datasets.CIFAR100, 100, 32, 3),
        "mnist": (datasets.MNIST, 10, 28, 1),
    }[name]
    try:
        dataset = constructor(root, train=train, download=download,
                              transform=_transform(image_size, native))
    except RuntimeError as error:  # torchvision's "Dataset not found or corrupted"
        raise DataNotFoundError(f"{name} could not be loaded from {root!r}: {error}") from error
    mean, std = _STATS[name]
    return ImageData(dataset, classes, channels, image_size, mean, std)


def _load_imagefolder(spec: dict[str, Any], split: str, image_size: int) -> ImageData:
    from torchvision import datasets

    root = Path(spec["root"])
    split_root = root / split if (root / split).is_dir() else root
    dataset = datasets.ImageFolder(str(split_root), transform=_transform(image_size, -1))
    channels = 3
    mean = tuple(spec.get("mean") or (0.5,) * channels)
    std = tuple(spec.get("std") or (0.5,) * channels)
    return ImageData(dataset, len(dataset.classes), channels, image_size, mean, std)


def draw_distinct(pool: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` entries of ``pool``, all different when the pool has that many (mixing
    partners: GradAttack never mixes an image with itself or twice with another), else
    with replacement."""
    if count <= len(pool):
        return pool[torch.randperm(len(pool), generator=generator)[:count]]
    return pool[torch.randint(len(pool), (count,), generator=generator)]


def encoding_center(normalize: Callable[[torch.Tensor], torch.Tensor],
                    channels: int) -> torch.Tensor:
    """The pixel values an affine per-channel ``normalize`` maps to 0 ([1, C, 1, 1]): the
    dataset mean for mean/std normalisation, about which InstaHide's sign flip mirrors."""
    zero = normalize(torch.zeros(1, channels, 1, 1))
    one = normalize(torch.ones(1, channels, 1, 1))
    return -zero / (one - zero)
