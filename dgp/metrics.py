"""Reconstruction metrics on de-normalised images in [0, 1], one value per image.

PSNR and SSIM are torchmetrics' definitions (SSIM: Wang et al.'s, an 11x11 Gaussian window
of sigma 1.5 over reflect-padded images, k1 = 0.01, k2 = 0.03), written out here because
importing torchmetrics costs every job about 2.7 s (it imports torchvision's models); a
test pins both to torchmetrics. LPIPS (AlexNet) needs ImageNet weights that cannot be
downloaded here: it is computed (by torchmetrics) only when torchvision's AlexNet
checkpoint is already in the torch hub cache, otherwise it is NaN and ``lpips_note()``
says why.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from dgp.lazy import torch

SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def mse(reconstruction: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    return (reconstruction - original).pow(2).flatten(1).mean(1)


def psnr(reconstruction: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """10 log10(1 / MSE) per image (data range 1; infinite for an exact copy)."""
    return -torch.log(mse(reconstruction, original)) * (10 / math.log(10))


def _gaussian_window(channels: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    size = int(3.5 * SSIM_SIGMA + 0.5) * 2 + 1
    offsets = torch.arange((1 - size) / 2, (1 + size) / 2, 1, dtype=dtype, device=device)
    line = torch.exp(-(offsets / SSIM_SIGMA).pow(2) / 2)
    line = (line / line.sum()).unsqueeze(0)
    return (line.t() @ line).expand(channels, 1, size, size)


def ssim(reconstruction: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Mean structural similarity per image (data range 1)."""
    channels = original.shape[1]
    window = _gaussian_window(channels, original.dtype, original.device)
    pad = (window.shape[-1] - 1) // 2
    functional = torch.nn.functional
    x, y = (functional.pad(t, (pad, pad, pad, pad), mode="reflect")
            for t in (reconstruction, original))
    stacked = torch.cat((x, y, x * x, y * y, x * y))
    mu_x, mu_y, xx, yy, xy = functional.conv2d(stacked, window, groups=channels).split(x.shape[0])
    var_x = (xx - mu_x.pow(2)).clamp_min(0)
    var_y = (yy - mu_y.pow(2)).clamp_min(0)
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    index = ((2 * mu_x * mu_y + c1) * (2 * (xy - mu_x * mu_y) + c2)
             / ((mu_x.pow(2) + mu_y.pow(2) + c1) * (var_x + var_y + c2)))
    return index.flatten(1).mean(1)


# torchvision's AlexNet_Weights.DEFAULT file (a test checks it; importing torchvision.models
# to ask costs 1.5 s).
ALEXNET_CHECKPOINT = "alexnet-owt-7be5be79.pth"


def _alexnet_checkpoint() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_CHECKPOINT


def lpips_note() -> str | None:
    """None when LPIPS can be computed; otherwise the reason it is reported as NaN."""
    path = _alexnet_checkpoint()
    if path.is_file():
        return None
    return f"LPIPS not computed: AlexNet weights not found at {path} (no downloads at run time)"


@cache
def _lpips_metric():
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    return LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True,
                                                 reduction="mean")


def lpips_values(reconstruction: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Per-image LPIPS (AlexNet), or NaN per image when the weights are not available."""
    if lpips_note() is not None:
        return torch.full((reconstruction.shape[0],), math.nan)
    metric = _lpips_metric()
    values = []
    for rec, orig in zip(reconstruction, original, strict=True):
        rec3, orig3 = (t.unsqueeze(0).expand(1, 3, *t.shape[-2:]) for t in (rec, orig))
        values.append(float(metric(rec3.cpu(), orig3.cpu())))
        metric.reset()
    return torch.tensor(values)


@dataclass(frozen=True)
class Metric:
    """A per-image reconstruction metric: how to compute it, its table header and format.
    Every registered metric is scored against the original and against what was shared
    (``<name>_shared``), becomes CSV columns and a report column."""

    compute: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    label: str
    fmt: str


# The one list of image metrics (the CSV columns and the report's tables read it). LPIPS,
# which needs downloaded weights, is added apart: against the original only.
IMAGE_METRICS: dict[str, Metric] = {
    "psnr": Metric(psnr, "PSNR (dB)", ".2f"),
    "ssim": Metric(ssim, "SSIM", ".3f"),
    "mse": Metric(mse, "MSE", ".4f"),
}


def image_metrics(reconstruction: torch.Tensor, original: torch.Tensor,
                  lpips: bool = True) -> dict[str, list]:
    """All per-image metrics (LPIPS optional); inputs are [B, C, H, W] tensors in [0, 1]."""
    reconstruction = reconstruction.detach().float().clamp(0, 1).cpu()
    original = original.detach().float().cpu()
    metrics = {name: metric.compute(reconstruction, original).tolist()
               for name, metric in IMAGE_METRICS.items()}
    if lpips:
        metrics["lpips"] = lpips_values(reconstruction, original).tolist()
    return metrics


# Largest shift the tolerant PSNR tries, as a share of the side: ATS's translations reach
# 150/331 of it (magnitude 9), about 14 pixels of 32.
MAX_SHIFT_SHARE = 150 / 331


def tolerant_psnr(reconstruction: torch.Tensor, original: torch.Tensor,
                  max_shift_share: float = MAX_SHIFT_SHARE) -> torch.Tensor:
    """Per image, the best PSNR over horizontal flips and integer shifts of the
    reconstruction (up to ``max_shift_share`` of each side), on the overlap of the shifted
    image with the original (at least half of each side always overlaps).

    A reconstruction of what the user actually shared, moved or mirrored by a data
    augmentation (ATS), scores high here and low on plain PSNR: "moved", not "hidden".
    """
    reconstruction = reconstruction.detach().float().clamp(0, 1).cpu()
    original = original.detach().float().cpu()
    _, _, h, w = original.shape
    reach_y = min(int(max_shift_share * h + 0.5), h // 2)
    reach_x = min(int(max_shift_share * w + 0.5), w // 2)
    best = torch.full((original.shape[0],), math.inf)
    for candidate in (reconstruction, reconstruction.flip(-1)):
        for dy in range(-reach_y, reach_y + 1):
            for dx in range(-reach_x, reach_x + 1):
                moved = candidate[..., max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
                fixed = original[..., max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)]
                best = torch.minimum(best, (moved - fixed).pow(2).flatten(1).mean(1))
    return 10 * torch.log10(1 / best.clamp_min(1e-10))
