"""Models of the DGP comparison, built by name with a fixed-seed initialisation.

``lenet`` is DLG's sigmoid LeNet (its uniform(-0.5, 0.5) init makes gradients informative);
``convnet`` a small BatchNorm ConvNet; ``resnet18`` torchvision's ResNet-18 with the CIFAR stem
(3x3 first convolution, no max-pool), as in breaching and the DGP code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


class LeNet(nn.Module):
    """DLG's LeNet: three sigmoid convolutions and one linear layer."""

    def __init__(self, channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 12, 5, padding=2, stride=2), nn.Sigmoid(),
            nn.Conv2d(12, 12, 5, padding=2, stride=2), nn.Sigmoid(),
            nn.Conv2d(12, 12, 5, padding=2, stride=1), nn.Sigmoid(),
        )
        side = (image_size + 1) // 2
        side = (side + 1) // 2
        self.fc = nn.Linear(12 * side * side, num_classes)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -0.5, 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


class ConvNet(nn.Module):
    """A small ConvNet with BatchNorm (three conv blocks, two poolings, one linear layer)."""

    def __init__(self, channels: int, num_classes: int, width: int = 32) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                    nn.ReLU()]

        self.features = nn.Sequential(
            *block(channels, width), *block(width, 2 * width), nn.MaxPool2d(2),
            *block(2 * width, 2 * width), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(4),
        )
        self.fc = nn.Linear(2 * width * 16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


def _resnet18(channels: int, num_classes: int) -> nn.Module:
    from torchvision.models import resnet18

    model = resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


@dataclass(frozen=True)
class ModelKind:
    """How to build a model (channels, classes, image size -> module) and whether it has
    BatchNorm layers (whose statistics some attack priors read)."""

    build: Callable[[int, int, int], nn.Module]
    batchnorm: bool


# The one list of model names (config validation and the docs read it).
MODELS: dict[str, ModelKind] = {
    "lenet": ModelKind(lambda c, k, s: LeNet(c, k, s), batchnorm=False),
    "convnet": ModelKind(lambda c, k, s: ConvNet(c, k), batchnorm=True),
    "resnet18": ModelKind(lambda c, k, s: _resnet18(c, k), batchnorm=True),
}
MODELS_WITH_BATCHNORM = tuple(name for name, kind in MODELS.items() if kind.batchnorm)


def build_model(name: str, channels: int, num_classes: int, image_size: int, seed: int,
                wrap: Callable[[nn.Module], nn.Module] | None = None) -> nn.Module:
    """Build model ``name`` with weights drawn from ``seed`` (global RNG left untouched),
    passed through ``wrap`` (a defense's architecture change, e.g. PRECODE's
    ``wrap_model``) within the same seeded draw."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MODELS[name].build(channels, num_classes, image_size)
        return wrap(model) if wrap is not None else model


def dense_reference_bytes(name: str, channels: int, num_classes: int, image_size: int) -> int:
    """Bytes of the *undefended* model's gradient as dense float32: the reference every
    upload share is taken against, also for defenses that enlarge the model (PRECODE)."""
    model = build_model(name, channels, num_classes, image_size, seed=0)
    return 4 * sum(p.numel() for p in model.parameters() if p.requires_grad)
