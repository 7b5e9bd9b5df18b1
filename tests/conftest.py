"""Shared test fixtures: tiny real data, no downloads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
CIFAR10_MINI = REPO.parent / "shared" / "data" / "cifar10-mini"


@pytest.fixture(autouse=True)
def _single_thread():
    """Tests run beside each other on 2 cores: keep torch to one thread."""
    torch.set_num_threads(1)


@pytest.fixture
def cifar10_mini() -> Path:
    if not CIFAR10_MINI.is_dir():
        pytest.skip(f"cifar10-mini not found at {CIFAR10_MINI}")
    return CIFAR10_MINI
