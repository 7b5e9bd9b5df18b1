"""The lean attack objective: the same gradients as stock autograd, with less work."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from attacks.lean_conv import lean_convolutions
from attacks.objectives import candidate_gradients, cosine_distance, euclidean_distance
from dgp.models import build_model


def matching_image_gradient(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                            observed: list[torch.Tensor], lean: bool) -> tuple[list, torch.Tensor]:
    """The candidate's parameter gradient and the image gradient of its cosine matching
    loss, i.e. the double backward every gradient-matching attack runs."""
    images = images.clone().requires_grad_(True)
    if lean:
        gradients = candidate_gradients(model, images, labels)
    else:
        loss = nn.functional.cross_entropy(model(images), labels)
        gradients = list(torch.autograd.grad(loss, list(model.parameters()), create_graph=True))
    image_grad, = torch.autograd.grad(cosine_distance(gradients, observed), images)
    return [g.detach() for g in gradients], image_grad


class CountConvolutions(TorchDispatchMode):
    """Counts convolution passes: a forward convolution is one, a backward call one per
    gradient it computes (input, weight; the bias gradient is a sum)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.convolution.default:
            self.count += 1
        elif func is torch.ops.aten.convolution_backward.default:
            self.count += sum(args[-1][:2])
        return func(*args, **(kwargs or {}))


CONVS = [  # stride, padding, dilation, groups, bias
    dict(stride=1, padding=1, dilation=1, groups=1, bias=True),
    dict(stride=2, padding=1, dilation=1, groups=1, bias=False),
    dict(stride=1, padding=(2, 1), dilation=2, groups=1, bias=True),
    dict(stride=(2, 1), padding=0, dilation=1, groups=2, bias=True),
]


@pytest.mark.parametrize("settings", CONVS)
def test_lean_double_backward_equals_stock(settings):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(4, 6, 3, **settings), nn.BatchNorm2d(6), nn.ReLU(),
                          nn.Conv2d(6, 6, 3, **settings), nn.Tanh(), nn.Flatten(),
                          nn.LazyLinear(5))
    images, labels = torch.randn(3, 4, 12, 12), torch.tensor([0, 3, 1])
    model(images)  # materialise the lazy layer
    observed = [torch.randn_like(p) for p in model.parameters()]
    stock_grads, stock_image_grad = matching_image_gradient(model, images, labels, observed,
                                                            lean=False)
    lean_grads, lean_image_grad = matching_image_gradient(model, images, labels, observed,
                                                          lean=True)
    for stock, lean in zip(stock_grads, lean_grads, strict=True):
        torch.testing.assert_close(lean, stock, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(lean_image_grad, stock_image_grad, rtol=1e-4, atol=1e-7)


def test_lean_double_backward_skips_the_wasted_weight_gradient():
    model = build_model("convnet", 3, 10, 32, seed=0)
    convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    images, labels = torch.randn(1, 3, 32, 32), torch.tensor([2])
    observed = [torch.randn_like(p) for p in model.parameters()]
    counts = {}
    for lean in (False, True):
        with CountConvolutions() as counter:
            matching_image_gradient(model, images, labels, observed, lean)
        counts[lean] = counter.count
    # Stock PyTorch runs one weight-gradient convolution per layer after the first that
    # nothing uses; the lean functions do not.
    assert counts[False] - counts[True] == convs - 1 > 0


def test_lean_convolutions_leave_other_uses_unchanged():
    conv = nn.Conv2d(2, 3, 3, padding="same")
    images = torch.randn(1, 2, 5, 5)
    with lean_convolutions():
        same = conv(images)  # string padding: the stock convolution
        with torch.no_grad():
            plain = conv(images)  # no autograd: nothing to make lean
    assert "Convolution" in type(same.grad_fn).__name__
    assert plain.grad_fn is None
    torch.testing.assert_close(same, conv(images))


@pytest.mark.parametrize("distance", [cosine_distance, euclidean_distance])
def test_fused_distances_match_autograd(distance):
    # The reference: the objectives written as plain autograd expressions.
    def reference(candidate, target):
        if distance is euclidean_distance:
            return sum((c - t).pow(2).sum() for c, t in zip(candidate, target, strict=True))
        dot = sum((c * t).sum() for c, t in zip(candidate, target, strict=True))
        c_norm = torch.sqrt(sum(c.pow(2).sum() for c in candidate))
        t_norm = torch.sqrt(sum(t.pow(2).sum() for t in target))
        return 1 - dot / (c_norm * t_norm + 1e-12)

    generator = torch.Generator().manual_seed(0)
    shapes = [(4, 3, 3, 3), (4,), (10, 16)]
    candidate = [torch.randn(s, generator=generator, dtype=torch.float64, requires_grad=True)
                 for s in shapes]
    target = [torch.randn(s, generator=generator, dtype=torch.float64, requires_grad=True)
              for s in shapes]
    fused = distance(candidate, target)
    expected = reference(candidate, target)
    torch.testing.assert_close(fused, expected)
    for got, want in zip(torch.autograd.grad(fused, candidate + target),
                         torch.autograd.grad(expected, candidate + target), strict=True):
        torch.testing.assert_close(got, want)
    # Only what is asked for: a target that needs no gradient gets none.
    torch.autograd.gradcheck(lambda *c: distance(list(c), [t.detach() for t in target]),
                             tuple(candidate))
