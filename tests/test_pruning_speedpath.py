"""Exactness of every rank-band path against a plain full ranking.

The reference ranks entries by |value| (NaN above everything), largest first, ties by
index; the mask of ranks ``skip .. skip + keep - 1`` must match it bit for bit, on every
path: stable argsort (tiny), order statistics (medium, other dtypes), sample-bracketed
chunked selection (large float32, one chunk or several), its fallback when a bracket
misses, and the sort used off the CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dgp.pruning as pruning
from defenses.dual_pruning import top_drop_count
from dgp.pruning import rank_band_mask, sent_count

SIZES = [1, 5, 64, 512, 513, 5120, 32767, 32768, 36864, 200_003, 600_000]


def reference(tensor: torch.Tensor, skip: int, keep: int) -> torch.Tensor:
    magnitude = tensor.detach().double().abs().flatten().numpy()
    is_nan = np.isnan(magnitude)
    magnitude = np.where(is_nan, 0.0, magnitude)
    order = np.lexsort((np.arange(magnitude.size), -magnitude, ~is_nan))
    mask = np.zeros(magnitude.size, dtype=bool)
    mask[order[skip:skip + keep]] = True
    return torch.from_numpy(mask).view(tensor.shape)


def make(kind: str, numel: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(numel, generator=g)
    if kind == "ties":  # few distinct magnitudes: every threshold sits inside a tie
        values = (values * 2).round() / 2
    elif kind == "zeros":  # dead units: a huge tie at zero, half of it negative zero
        values[torch.rand(numel, generator=g) < 0.6] = 0.0
        values[torch.rand(numel, generator=g) < 0.3] = -0.0
    elif kind == "constant":
        values = torch.full((numel,), -0.25)
    elif kind == "special":
        values[torch.rand(numel, generator=g) < 0.02] = float("nan")
        values[torch.rand(numel, generator=g) < 0.02] = float("-inf")
        values[torch.rand(numel, generator=g) < 0.02] = 1e-42  # subnormal
    elif kind == "wide":  # magnitudes over many octaves
        values = values * torch.exp(5 * torch.randn(numel, generator=g))
    return values


def bands(numel: int) -> list[tuple[int, int]]:
    dgp = (top_drop_count(numel, 0.8, 0.05), sent_count(numel, 0.8))
    return [dgp, (0, sent_count(numel, 0.9)), (1, numel - 1), (0, 1),
            (numel // 3, max(1, numel // 1000)), (numel - 1, 1), (numel // 2, numel // 2)]


def check(tensor: torch.Tensor, skip: int, keep: int) -> None:
    mask = rank_band_mask(tensor, skip, keep)
    assert mask.dtype == torch.bool and mask.shape == tensor.shape
    assert int(mask.sum()) == keep
    assert torch.equal(mask, reference(tensor, skip, keep)), (tensor.numel(), skip, keep)


@pytest.mark.parametrize("numel", SIZES)
@pytest.mark.parametrize("kind", ["randn", "ties", "zeros", "constant", "special", "wide"])
def test_every_path_matches_a_full_ranking(numel, kind):
    tensor = make(kind, numel, seed=numel)
    for skip, keep in bands(numel):
        if 0 <= skip and 0 <= keep and skip + keep <= numel:
            check(tensor, skip, keep)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_chunked_selection_is_exact_whatever_torch_threads(threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        tensor = make("zeros", 1_000_003, seed=7).view(1_000_003, 1)
        for skip, keep in bands(tensor.numel()):
            check(tensor, skip, keep)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("spread", [0.0, -3.0, 50.0])
def test_missed_brackets_fall_back_to_an_exact_answer(monkeypatch, spread):
    # Zero or negative width: the brackets miss their ranks (the counts catch it); a huge
    # width merges them into one.
    monkeypatch.setattr(pruning, "_BRACKET_SD", spread)
    for kind in ["randn", "ties", "zeros"]:
        tensor = make(kind, 300_000, seed=11)
        for skip, keep in bands(tensor.numel()):
            check(tensor, skip, keep)


def test_a_biased_sample_only_costs_time(monkeypatch):
    tensor = make("randn", 100_000, seed=5)
    tensor[:50_000] *= 100  # the sample sees only the large first half
    monkeypatch.setattr(pruning, "_sample_slice", lambda numel: slice(0, 40_000, 7))
    for skip, keep in bands(tensor.numel()):
        check(tensor, skip, keep)


def test_sample_order_statistics_and_brackets():
    sample = np.random.default_rng(0).integers(0, 1 << 31, 5_000).astype(np.int32)
    ordered = np.sort(sample)
    wanted = [-1, 0, 17, 2_500, 2_501, 4_999, 5_000]
    keys = pruning._order_statistics(sample.copy(), wanted)
    assert keys == {-1: 0, 0: ordered[0], 17: ordered[17], 2_500: ordered[2_500],
                    2_501: ordered[2_501], 4_999: ordered[4_999], 5_000: pruning._KEY_MAX}
    below, above = pruning._bracket(5_000, 1_000_000, 50_000)  # rank 5 %: position ~4750
    assert -1 <= below < 4_750 < above <= 5_000


def test_non_contiguous_and_shaped_inputs():
    base = make("ties", 64 * 96 * 9, seed=3).view(64, 96, 3, 3)
    tensor = base.transpose(0, 1)  # not contiguous: ranked in its own (logical) order
    skip, keep = top_drop_count(tensor.numel(), 0.8, 0.05), sent_count(tensor.numel(), 0.8)
    check(tensor, skip, keep)
    check(base[:, :40], skip // 3, keep // 3)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("numel", [100, 40_000])
def test_other_dtypes_are_exact_too(dtype, numel):
    tensor = make("ties", numel, seed=1).to(dtype)
    for skip, keep in bands(numel):
        check(tensor, skip, keep)


def test_gradient_tensors_are_not_modified_and_may_require_grad():
    tensor = make("randn", 70_000, seed=2).requires_grad_()
    copy = tensor.detach().clone()
    check(tensor, 3_500, 14_000)
    assert torch.equal(tensor.detach(), copy)


def test_off_cpu_sort_path_matches(monkeypatch):
    # The path used on other devices, run on CPU tensors.
    for kind in ["randn", "zeros", "special"]:
        tensor = make(kind, 5_000, seed=4)
        for skip, keep in bands(tensor.numel()):
            mask = pruning._sorted_band(tensor.flatten(), skip, keep)
            assert torch.equal(mask, reference(tensor, skip, keep))


def test_degenerate_bands():
    tensor = make("randn", 50_000, seed=9)
    assert not rank_band_mask(tensor, 10, 0).any()
    assert rank_band_mask(tensor, 0, 50_000).all()
    with pytest.raises(ValueError):
        rank_band_mask(tensor, 10, 49_991)
