"""Models of the DGP comparison, built by name with a fixed-seed initialisation.

``lenet`` is DLG's sigmoid LeNet (its uniform(-0.5, 0.5) init makes gradients informative);
``convnet`` a small BatchNorm ConvNet; ``resnet18`` torchvision's ResNet-18 with the CIFAR stem
(3x3 first convolution, no max-pool), as in breaching and the DGP code. Their classes are in
``dgp.architectures``, imported when a model is built: this registry is read without torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

from dgp.lazy import torch

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class ModelKind:
    """How to build a model (channels, classes, image size -> module) and whether it has
    BatchNorm layers (whose statistics some attack priors read)."""

    build: Callable[[int, int, int], nn.Module]
    batchnorm: bool


def _architectures() -> ModuleType:
    from dgp import architectures  # imports torch: only when a model is built

    return architectures


# The one list of model names (config validation and the docs read it).
MODELS: dict[str, ModelKind] = {
    "lenet": ModelKind(lambda c, k, s: _architectures().LeNet(c, k, s), batchnorm=False),
    "convnet": ModelKind(lambda c, k, s: _architectures().ConvNet(c, k), batchnorm=True),
    "resnet18": ModelKind(lambda c, k, s: _architectures().resnet18(c, k), batchnorm=True),
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
