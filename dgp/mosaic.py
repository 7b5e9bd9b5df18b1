"""Reconstructions as one PNG mosaic per job."""

from __future__ import annotations

import math
from pathlib import Path

from dgp.io import write_atomically
from dgp.lazy import torch


def tile(images: torch.Tensor, per_row: int, padding: int = 1) -> torch.Tensor:
    """[N, C, H, W] images in [0, 1] as one RGB [3, rows (H + p) + p, cols (W + p) + p]
    mosaic with black gaps, laid out as torchvision's ``make_grid`` lays it out (which
    costs a job 2 s of imports)."""
    count, channels, height, width = images.shape
    if channels == 1:
        images = images.expand(count, 3, height, width)
    cols = min(per_row, count)
    rows = math.ceil(count / cols)
    grid = images.new_zeros(3, rows * (height + padding) + padding,
                            cols * (width + padding) + padding)
    for i, image in enumerate(images):
        top = (i // cols) * (height + padding) + padding
        left = (i % cols) * (width + padding) + padding
        grid[:, top:top + height, left:left + width] = image
    return grid


def save_grid(path: str | Path, grid: torch.Tensor, per_row: int) -> None:
    from PIL import Image

    pixels = tile(grid, per_row).mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0)
    picture = Image.fromarray(pixels.to(torch.uint8).numpy())
    write_atomically(path, lambda tmp: picture.save(tmp, format="png"))
