"""Shared test fixtures: tiny real data, no downloads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from dgp.data import load_dataset

REPO = Path(__file__).resolve().parent.parent
CIFAR10_MINI = REPO.parent / "shared" / "data" / "cifar10-mini"


def privacy_row(attack: str, **fields) -> dict:
    """The columns every privacy.csv row has besides its results, as a privacy job writes
    them for ``attack`` under the default protocol (FedSGD, one user, labels inferred, the
    initial model), updated with ``fields``: a report test's rows."""
    from attacks import ATTACKS
    from dgp.protocol import Protocol

    protocol = Protocol()
    active = attack in ATTACKS and ATTACKS[attack].active
    return {"attack": attack, "protocol": protocol.id, "batch_size": 1, **protocol.as_dict(),
            "labels": "inferred",
            "server": "malicious" if active else "honest-but-curious", "knowledge": "none",
            "tuned": False, "role": "user", "model_round": 0, **fields}


def poisoned_loader(real, poisoned: str, poison):
    """``real`` (a ``load_dataset``) with the images of split ``poisoned`` replaced by
    ``poison(images)``: a job that must never read that split gives the same result."""

    def load(spec, split="test"):
        data = real(spec, split)
        if split == poisoned:
            images, labels = data.dataset.tensors
            data.dataset = torch.utils.data.TensorDataset(poison(images), labels)
        return data

    return load


@pytest.fixture(autouse=True, scope="session")
def _validation_cache(tmp_path_factory):
    """Memoised validations (jobs/validated.py) of the tests and the workflows they start go
    to a scratch folder, not the user's cache."""
    before = os.environ.get("DGP_CACHE_DIR")
    os.environ["DGP_CACHE_DIR"] = str(tmp_path_factory.mktemp("validated"))
    yield
    if before is None:
        os.environ.pop("DGP_CACHE_DIR", None)
    else:
        os.environ["DGP_CACHE_DIR"] = before


@pytest.fixture(autouse=True)
def _single_thread():
    """Tests run beside each other on 2 cores: keep torch to one thread."""
    torch.set_num_threads(1)


@pytest.fixture
def cifar10_mini() -> Path:
    if not CIFAR10_MINI.is_dir():
        pytest.skip(f"cifar10-mini not found at {CIFAR10_MINI}")
    return CIFAR10_MINI


@pytest.fixture(scope="module")
def digits():
    """The 8x8 digits as normalised tensors: (train x, train y, test x, test y)."""
    spec = {"name": "digits", "model": "lenet", "image_size": 8}
    train_data, test_data = load_dataset(spec, "train"), load_dataset(spec, "test")
    x, y = train_data.samples(list(range(len(train_data.dataset))))
    tx, ty = test_data.samples(list(range(len(test_data.dataset))))
    return train_data.normalize(x), y, test_data.normalize(tx), ty
