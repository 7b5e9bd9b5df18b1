"""Byte counts follow the stated encodings on hand-made tensors."""

from __future__ import annotations

import math

import pytest
import torch

from dgp.communication import aggregate_cost, dense_bytes, shared_cost
from dgp.types import SharedGradient


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


def test_index_entropy_bound_is_log2_of_n_choose_k():
    mask = torch.tensor([True, False, True, False])
    cost = shared_cost(SharedGradient([torch.zeros(4)], [mask]))
    assert cost.index_entropy_bytes == pytest.approx(math.log2(6) / 8)
    assert cost.index_bytes == 1  # bitmap of 4 bits rounds up to one byte (< 2 x 4 COO)


def test_download_is_the_union_of_what_users_sent():
    a = torch.tensor([True, True, False, False] * 250)
    b = torch.tensor([False, True, True, False] * 250)
    users = [SharedGradient([torch.zeros(1000)], [m]) for m in (a, b)]
    cost = aggregate_cost(users)
    assert cost.sent_values == 750  # union: 3 of every 4 entries
    assert cost.sent_bytes == min(750 * 4 + 125, 4000)


def test_known_positions_cost_no_index():
    mask = torch.zeros(100, dtype=torch.bool)
    mask[:10] = True
    shared = SharedGradient([torch.zeros(100)], [mask], positions_known=True)
    assert shared_cost(shared).sent_bytes == 40
