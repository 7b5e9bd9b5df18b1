"""Every registered model, built as the jobs build it (adding one is one MODELS entry)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dgp.models import MODELS, build_model


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_classifies_and_says_whether_it_has_batchnorm(name):
    model = build_model(name, 3, 10, 16, seed=0)
    logits = model(torch.rand(2, 3, 16, 16))
    assert logits.shape == (2, 10)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    has_batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert MODELS[name].batchnorm == has_batchnorm  # attacks with a BatchNorm prior read it


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_is_initialised_by_its_seed(name):
    first, again, other = (build_model(name, 1, 10, 16, seed=s) for s in (0, 0, 1))
    weights = [list(m.state_dict().values()) for m in (first, again, other)]
    assert all(torch.equal(a, b) for a, b in zip(weights[0], weights[1], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(weights[0], weights[2], strict=True))
