"""Each defense's defining property, on hand-made gradients."""

from __future__ import annotations

import pytest
import torch

from defenses import DEFENSES, create_defense
from defenses.dual_pruning import top_drop_count
from dgp.pruning import rank_band_mask, sent_count


def ranks_by_magnitude(t: torch.Tensor) -> torch.Tensor:
    """Rank of each entry by |value|, 0 = largest (values are distinct in these tests)."""
    order = torch.argsort(t.abs().flatten(), descending=True)
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(order.numel())
    return ranks.view_as(t)


def distinct_gradient(shape, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    values = torch.randperm(int(torch.tensor(shape).prod()), generator=g).float() + 1
    signs = torch.randint(0, 2, values.shape, generator=g) * 2 - 1
    return (values * signs).view(shape)


@pytest.mark.parametrize("ratio", [0.5, 0.8, 0.95])
def test_dgp_keeps_exactly_the_rank_band(ratio):
    grad = distinct_gradient((40, 25))  # n = 1000
    shared = create_defense("dgp", ratio, {"p1": 0.05}).apply([grad])
    ranks = ranks_by_magnitude(grad)
    keep = round((1 - ratio) * 1000)
    expected = (ranks >= 50) & (ranks < 50 + keep)
    assert torch.equal(shared.masks[0], expected)
    assert torch.equal(shared.tensors[0], grad * expected)


def test_dgp_default_band_is_75th_to_95th_percentile():
    grad = distinct_gradient((200,))
    kept = create_defense("dgp", 0.8).apply([grad]).tensors[0]
    magnitudes = kept[kept != 0].abs()
    all_sorted = grad.abs().sort().values  # ascending: 1 .. 200
    assert magnitudes.min() == all_sorted[150] and magnitudes.max() == all_sorted[189]
    assert magnitudes.numel() == 40


def test_dgp_tiny_tensor_still_drops_the_largest_entry():
    # n = 8: p1 * n = 0.4 rounds to 0; the documented rule still drops the largest entry.
    bias = torch.tensor([0.1, -3.0, 0.2, 0.3, -0.4, 0.5, -0.7, 0.8])
    assert top_drop_count(8, 0.75, 0.05) == 1
    shared = create_defense("dgp", 0.75).apply([bias])
    sent = shared.tensors[0][shared.masks[0]]
    assert sorted(sent.abs().tolist()) == pytest.approx([0.7, 0.8])  # ranks 1 and 2
    assert shared.masks[0][1].item() is False  # -3.0, the largest, is never sent


def test_dgp_unpruned_tensor_keeps_everything():
    grad = distinct_gradient((3,))
    shared = create_defense("dgp", 0.05).apply([grad])  # sends round(0.95 * 3) = 3 of 3
    assert shared.masks[0].all()


@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.9, 0.99])
def test_topk_keeps_exactly_the_largest(ratio):
    grad = distinct_gradient((17, 13), seed=1)
    shared = create_defense("topk", ratio).apply([grad])
    keep = sent_count(grad.numel(), ratio)
    assert torch.equal(shared.masks[0], ranks_by_magnitude(grad) < keep)


@pytest.mark.parametrize("ratio", [0.05, 0.3, 0.8, 0.95])
def test_dgp_and_topk_send_the_same_count_per_tensor(ratio):
    grads = [distinct_gradient(s, seed=i) for i, s in enumerate([(6, 1, 5, 5), (6,), (10, 96),
                                                                  (10,), (1,), (7, 3)])]
    dgp = create_defense("dgp", ratio).apply(grads)
    topk = create_defense("topk", ratio).apply(grads)
    for a, b in zip(dgp.masks, topk.masks, strict=True):
        assert int(a.sum()) == int(b.sum())


def test_dp_gaussian_noise_has_the_configured_scale():
    grads = [torch.zeros(200_000), torch.zeros(100, 1000)]
    shared = create_defense("dp_gaussian", 0.5, {"clip_norm": 2.0}).apply(
        grads, generator=torch.Generator().manual_seed(0))
    noise = torch.cat([t.flatten() for t in shared.tensors])
    assert noise.std().item() == pytest.approx(1.0, rel=0.01)  # 0.5 x 2.0
    assert noise.mean().item() == pytest.approx(0.0, abs=0.01)


def test_dp_gaussian_clipping_bounds_the_norm():
    grads = [torch.full((10,), 3.0), torch.full((5, 2), -4.0)]
    clipped = create_defense("dp_gaussian", 0.0, {"clip_norm": 1.5}).apply(grads).tensors
    norm = torch.sqrt(sum(t.pow(2).sum() for t in clipped))
    assert norm.item() == pytest.approx(1.5, rel=1e-5)
    # Direction is kept; a gradient already inside the ball is untouched.
    assert torch.allclose(clipped[0] / clipped[0].norm(), grads[0] / grads[0].norm())
    small = [torch.full((4,), 0.1)]
    assert torch.equal(create_defense("dp_gaussian", 0.0).apply(small).tensors[0], small[0])


def test_none_shares_the_raw_gradient():
    grad = distinct_gradient((5, 5))
    shared = create_defense("none", 0).apply([grad])
    assert torch.equal(shared.tensors[0], grad) and shared.masks == [None]


@pytest.mark.parametrize("name,ratio", [("dgp", 0.01), ("dgp", 1.0), ("topk", -0.1),
                                        ("dp_gaussian", -1.0), ("none", 0.5)])
def test_out_of_range_ratio_is_rejected(name, ratio):
    with pytest.raises(ValueError, match="ratio"):
        create_defense(name, ratio)


def test_registry_names_match_classes():
    assert all(cls.name == name for name, cls in DEFENSES.items())


@pytest.mark.parametrize("skip,keep", [(0, 20_000), (4_000, 16_000), (1, 79_998)])
def test_large_tensor_band_matches_a_full_ranking(skip, keep):
    # >= 65,536 entries: the histogram selection path, checked against torch.topk.
    grad = torch.randn(80_000, generator=torch.Generator().manual_seed(2))
    mask = rank_band_mask(grad, skip, keep)
    order = torch.topk(grad.abs(), skip + keep).indices
    expected = torch.zeros(80_000, dtype=torch.bool)
    expected[order[skip:]] = True
    assert torch.equal(mask, expected)


def test_large_tensor_ties_are_broken_by_position():
    grad = (torch.randn(70_000, generator=torch.Generator().manual_seed(3)) * 2).round() / 2
    grad[:30_000] = 0.0  # a huge tie at zero, as from dead units
    skip, keep = 2_000, 50_000  # the band ends inside the zero tie
    mask = rank_band_mask(grad, skip, keep)
    assert int(mask.sum()) == keep
    magnitudes = grad.abs()
    ranked = sorted(range(70_000), key=lambda i: (-magnitudes[i].item(), i))
    expected = torch.zeros(70_000, dtype=torch.bool)
    expected[ranked[skip:skip + keep]] = True
    assert torch.equal(mask, expected)


def test_dgp_top_count_floor_keeps_the_largest_entry_of_tiny_tensors_as_the_dgp_code():
    # DGPcompressor.py drops k1 = size // 20 top entries: none of a 10-entry bias. Ours
    # drops at least one by default (the bias's largest entry leaks the label).
    bias = torch.arange(1.0, 11.0)  # largest is the last entry
    ours = create_defense("dgp", 0.8).apply([bias]).masks[0]
    reference = create_defense("dgp", 0.8, {"top_count": "floor"}).apply([bias]).masks[0]
    assert not ours[-1] and ours.sum() == 2
    assert reference[-1] and reference.sum() == 2 and reference[-2]
    # on tensors of 20 entries or more the two rules agree at p1 = 0.05
    weight = torch.randn(400, generator=torch.Generator().manual_seed(0))
    assert torch.equal(create_defense("dgp", 0.8).apply([weight]).masks[0],
                       create_defense("dgp", 0.8, {"top_count": "floor"}).apply([weight]).masks[0])


_WRONG_KIND = {bool: "yes", str: 3, int: "many", float: "big"}


@pytest.mark.parametrize("name", sorted(DEFENSES))
def test_every_declared_parameter_refuses_a_wrong_type_with_its_name(name):
    """A defense's parameters are declared (dgp.params.Param) and checked before use: a
    value of the wrong type is a ValueError naming the parameter, never a crash later."""
    cls = DEFENSES[name]
    assert cls.defaults == {key: p.default for key, p in cls.parameters.items()}
    create_defense(name, cls.example_ratio, cls.defaults)
    for key, param in cls.parameters.items():
        with pytest.raises(ValueError, match=f"defense '{name}' parameter {key} must be"):
            create_defense(name, cls.example_ratio, {key: _WRONG_KIND[param.kind]})
