"""The architectures of the DGP comparison (``dgp.models`` builds them by name).

``LeNet`` is DLG's sigmoid LeNet (its uniform(-0.5, 0.5) init makes gradients informative);
``ConvNet`` a small BatchNorm ConvNet; ``resnet18`` torchvision's ResNet-18 with the CIFAR
stem (3x3 first convolution, no max-pool), as in breaching and the DGP code. Apart from the
registry so that reading it (config validation) imports no torch.
"""

from __future__ import annotations

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


def resnet18(channels: int, num_classes: int) -> nn.Module:
    from torchvision.models import resnet18 as torchvision_resnet18

    model = torchvision_resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model
