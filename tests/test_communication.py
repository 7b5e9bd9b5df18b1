"""Byte counts follow the stated encodings on hand-made tensors."""

from __future__ import annotations

import torch

from defenses import SharedGradient
from dgp.communication import dense_bytes, shared_cost


def test_dense_tensor_costs_four_bytes_per_value():
    shared = SharedGradient([torch.zeros(10, 10), torch.zeros(7)], [None, None])
    cost = shared_cost(shared)
    assert cost.dense_bytes == cost.sent_bytes == 4 * 107
    assert dense_bytes(shared.tensors) == 428


def test_sparse_tensor_uses_the_cheaper_index_encoding():
    # 1000 entries, 10 sent: COO = 10 x 4 bytes of index < bitmap 125 bytes.
    few = torch.zeros(1000, dtype=torch.bool)
    few[:10] = True
    # 1000 entries, 200 sent: bitmap 125 bytes < COO 800 bytes.
    many = torch.zeros(1000, dtype=torch.bool)
    many[:200] = True
    cost = shared_cost(SharedGradient([torch.zeros(1000), torch.zeros(1000)], [few, many]))
    assert cost.sent_bytes == (10 * 4 + 10 * 4) + (200 * 4 + 125)
    assert cost.sent_values == 210
    assert cost.compression == 8000 / cost.sent_bytes


def test_fully_sent_masked_tensor_needs_no_index():
    mask = torch.ones(12, dtype=torch.bool)
    assert shared_cost(SharedGradient([torch.zeros(12)], [mask])).sent_bytes == 48
