"""Datasets behind one interface: images as float tensors in [0, 1], plus what a model needs.

``digits`` (scikit-learn's bundled 8x8 digits) ships with the package and is the embedded
default. ``cifar10``, ``cifar100`` and ``mnist`` are torchvision's loaders (downloading only
when the config allows it); ``imagefolder`` reads any ``root/<split>/<class>/*.jpg`` tree,
or a ``root/<class>/*.jpg`` tree that it splits per class (``TEST_EVERY``).
Normalisation is kept apart (``normalize``/``denormalize``) because metrics are computed on
[0, 1] images while models and attacks work in normalised space.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dgp.lazy import torch

if TYPE_CHECKING:
    from torch.utils.data import Dataset


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


def missing_data_message(spec: dict[str, Any]) -> str | None:
    """Say what is missing for ``spec`` without loading it, or None when it can be loaded."""
    return DATASETS[spec["name"]].missing(spec)


def load_dataset(spec: dict[str, Any], split: str = "test") -> ImageData:
    """Load one split (``train`` or ``test``) of the dataset a config entry describes."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if spec["name"] not in DATASETS:
        raise ValueError(f"unknown dataset {spec['name']!r}; choose one of {', '.join(DATASETS)}")
    message = missing_data_message(spec)
    if message:
        raise DataNotFoundError(message)
    return DATASETS[spec["name"]].load(spec, split, int(spec.get("image_size", 32)))


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-1] == size:
        return images
    return torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear",
                                           antialias=True, align_corners=False).clamp(0, 1)


def digits_file() -> Path:
    """scikit-learn's copy of the UCI digits (``load_digits`` reads the same file), found
    without importing scikit-learn, which costs a job about 2 s."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataNotFoundError("the embedded digits need scikit-learn installed")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"


def _load_digits(spec: dict[str, Any], split: str, image_size: int) -> ImageData:
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
    dataset = torch.utils.data.TensorDataset(chosen, labels[keep])
    return ImageData(dataset, 10, 1, image_size, mean, std)


def _transform(image_size: int, native_size: int, grayscale: bool = False):
    from torchvision import transforms

    steps = []
    if grayscale:
        steps.append(transforms.Grayscale(1))
    if image_size != native_size:
        steps.append(transforms.Resize((image_size, image_size), antialias=True))
    steps.append(transforms.ToTensor())
    return transforms.Compose(steps)


@dataclass(frozen=True)
class TorchvisionSet:
    """One of torchvision's loaders: its class, shape, the folder it expects under the
    root (to fail early and clearly) and its training split's channel statistics (CIFAR's
    as used by breaching)."""

    loader: str
    classes: int
    native_size: int
    folder: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def missing(self, spec: dict[str, Any]) -> str | None:
        if spec.get("download", False):
            return None
        root = Path(spec.get("root") or "data")
        expected = root / self.folder
        if expected.exists():
            return None
        return (f"{spec['name']} files not found under data root {str(root)!r} (expected "
                f"{str(expected)!r}); put them there or set 'download: true' for that dataset")

    def load(self, spec: dict[str, Any], split: str, image_size: int) -> ImageData:
        from torchvision import datasets

        root = str(spec.get("root") or "data")
        constructor = getattr(datasets, self.loader)
        try:
            dataset = constructor(root, train=split == "train",
                                  download=bool(spec.get("download", False)),
                                  transform=_transform(image_size, self.native_size))
        except RuntimeError as error:  # torchvision's "Dataset not found or corrupted"
            raise DataNotFoundError(f"{spec['name']} could not be loaded from {root!r}: "
                                    f"{error}") from error
        return ImageData(dataset, self.classes, len(self.mean), image_size, self.mean, self.std)


# An imagefolder root without train/ and test/ is split per class: every TEST_EVERY-th file
# (by name) is a test image, the rest train, so the server's public (train) images never
# include an attacked one. Fixed, like digits' split: no randomness, the same on every run.
TEST_EVERY = 5
SPLITS = ("train", "test")


def _imagefolder_missing(spec: dict[str, Any]) -> str | None:
    if not spec.get("root"):
        return ("dataset 'imagefolder' needs a 'root' folder (root/<split>/<class>/*.jpg or "
                "root/<class>/*.jpg)")
    root = Path(spec["root"])
    if not root.is_dir():
        return f"imagefolder root {str(spec['root'])!r} does not exist"
    present = [split for split in SPLITS if (root / split).is_dir()]
    if len(present) == 1:
        return (f"imagefolder root {str(root)!r} has {present[0]}/ but not the other split: "
                "give both train/ and test/, or neither (one folder of class folders is "
                f"split per class, every {TEST_EVERY}th file a test image)")
    return None


def _load_imagefolder(spec: dict[str, Any], split: str, image_size: int) -> ImageData:
    from torchvision import datasets

    root = Path(spec["root"])
    presplit = (root / split).is_dir()
    folder = datasets.ImageFolder(str(root / split if presplit else root),
                                  transform=_transform(image_size, -1))
    dataset = folder if presplit else torch.utils.data.Subset(
        folder, _one_folder_split(folder.targets, split))
    channels = 3
    mean = tuple(spec.get("mean") or (0.5,) * channels)
    std = tuple(spec.get("std") or (0.5,) * channels)
    return ImageData(dataset, len(folder.classes), channels, image_size, mean, std)


def _one_folder_split(targets: list[int], split: str) -> list[int]:
    """The indices of ``split`` in one folder of class folders: per class, every
    TEST_EVERY-th file (ImageFolder lists them by name) is a test image, the rest train."""
    seen: dict[int, int] = {}
    chosen = []
    for index, label in enumerate(targets):
        rank = seen.get(label, 0)
        seen[label] = rank + 1
        if (rank % TEST_EVERY == 0) == (split == "test"):
            chosen.append(index)
    return chosen


@dataclass(frozen=True)
class DatasetKind:
    """A dataset kind: how to load a split, and what is missing before it can be."""

    load: Callable[[dict[str, Any], str, int], ImageData]
    missing: Callable[[dict[str, Any]], str | None]


def _nothing_missing(spec: dict[str, Any]) -> str | None:
    return None


# The one list of dataset names (config validation, the schema check and the docs read it).
DATASETS: dict[str, DatasetKind | TorchvisionSet] = {
    "digits": DatasetKind(_load_digits, _nothing_missing),
    "cifar10": TorchvisionSet("CIFAR10", 10, 32, "cifar-10-batches-py",
                               (0.4914672, 0.4822617, 0.4467702),
                               (0.2470322, 0.2434851, 0.2615879)),
    "cifar100": TorchvisionSet("CIFAR100", 100, 32, "cifar-100-python",
                                (0.5071598, 0.4865942, 0.4410286),
                                (0.2673342, 0.2564384, 0.2761506)),
    "mnist": TorchvisionSet("MNIST", 10, 28, "MNIST/raw", (0.1307,), (0.3081,)),
    "imagefolder": DatasetKind(_load_imagefolder, _imagefolder_missing),
}


def draw_distinct(pool: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` entries of ``pool``, all different when the pool has that many (mixing
    partners: GradAttack never mixes an image with itself or twice with another), else
    with replacement."""
    if count <= len(pool):
        return pool[torch.randperm(len(pool), generator=generator)[:count]]
    return pool[torch.randint(len(pool), (count,), generator=generator)]


def distinct_draws(pool: torch.Tensor,
                   fetch: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                   generator: torch.Generator) -> Callable[[int], tuple[torch.Tensor,
                                                                   torch.Tensor]]:
    """A ``DrawSamples`` (``dgp.types``): each call draws that many entries of ``pool``
    (``draw_distinct``) and returns ``fetch`` of them, (images, labels): a data defense's
    mixing partners, from the user's other images or the attacker's public ones."""
    return lambda count: fetch(draw_distinct(pool, count, generator))


def encoding_center(normalize: Callable[[torch.Tensor], torch.Tensor],
                    channels: int) -> torch.Tensor:
    """The pixel values an affine per-channel ``normalize`` maps to 0 ([1, C, 1, 1]): the
    dataset mean for mean/std normalisation, about which InstaHide's sign flip mirrors."""
    zero = normalize(torch.zeros(1, channels, 1, 1))
    one = normalize(torch.ones(1, channels, 1, 1))
    return -zero / (one - zero)
