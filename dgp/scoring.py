"""How a reconstruction is scored: matched to the originals it is compared with (an
attack returns a batch in any order, and its labels as an unordered multiset), then the
image metrics against the original and against what the user trained on, and PSNR at each
share of the attack's budget."""

from __future__ import annotations

import math

from dgp.attack import Reconstruction
from dgp.columns import ITERATION_FRACTIONS, iteration_column
from dgp.data import ImageData
from dgp.lazy import torch
from dgp.metrics import image_metrics, tolerant_psnr


def match_to_originals(reconstruction: torch.Tensor, original: torch.Tensor) -> list[int]:
    """For each original, the reconstruction it is scored against (Hungarian on MSE)."""
    if len(original) == 1:
        return [0]
    from scipy.optimize import linear_sum_assignment  # only batches need it; slow to import

    costs = torch.cdist(original.flatten(1).nan_to_num(1e6),
                        reconstruction.flatten(1).nan_to_num(1e6)).pow(2)
    rows, cols = linear_sum_assignment(costs.cpu().numpy())
    return [int(c) for _, c in sorted(zip(rows, cols, strict=True))]


def match_labels(predicted: list[int], true: list[int]) -> list[int]:
    """Pair a batch's inferred labels (an unordered multiset) with its images.

    Each image whose label is among the predictions gets it (each prediction used once);
    the remaining predictions go to the remaining images in order. So label accuracy is the
    share of the batch's labels that were recovered, whatever order the attack found them in.
    """
    remaining = list(predicted)
    paired: list[int | None] = []
    for label in true:
        if label in remaining:
            remaining.remove(label)
            paired.append(label)
        else:
            paired.append(None)
    leftovers = iter(remaining)
    return [label if label is not None else next(leftovers) for label in paired]


def reconstruction_scores(recovered: torch.Tensor, images: torch.Tensor,
           shared_images: torch.Tensor) -> dict[str, list]:
    """Metrics against the original (the data a defense protects), against the image the
    user actually trained on (``_shared``: differs for data-transform defenses), and the
    shift-and-flip-tolerant PSNR against the original (tells "moved" from "hidden")."""
    metrics = image_metrics(recovered, images)
    shared = image_metrics(recovered, shared_images, lpips=False)
    metrics.update({f"{name}_shared": values for name, values in shared.items()})
    metrics["psnr_tolerant"] = tolerant_psnr(recovered, images).tolist()
    return metrics


def psnr_by_iteration_share(data: ImageData, result: Reconstruction,
                 images: torch.Tensor) -> dict[str, list]:
    """PSNR of the best reconstruction so far at each budget fraction (NaN where the
    attack has no iterations), each matched to the originals like the final one."""
    curve = {}
    for fraction in ITERATION_FRACTIONS:
        best = result.checkpoints.get(fraction)
        if best is None:
            curve[iteration_column(fraction)] = [math.nan] * len(images)
            continue
        best = data.denormalize(best.detach().cpu())
        best = best[match_to_originals(best, images)]
        curve[iteration_column(fraction)] = image_metrics(best, images, lpips=False)["psnr"]
    return curve
