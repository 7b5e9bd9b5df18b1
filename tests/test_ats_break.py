"""ATS's break (Balunovic et al., the Bayes framework, ICLR 2022; ``defense_attacks/ats`` of
eth-sri/bayes-framework-leakage, whose attack loads a model a few training ``--steps`` in):
ATS's transformations only hide the image behind a trained network's gradient. Attacked at
the start of training, the gradient gives away exactly the image the user trained on, the
transformed one; what the suite then scores is how much of the private image that
transformed one still shows. The default grid attacks the initial model (``model_rounds:
[0]``), the earliest such point."""

from __future__ import annotations

import pytest
import torch

from attacks import create_attack
from defenses import create_defense
from dgp.attack import AttackTarget
from dgp.data import load_dataset
from dgp.gradients import parameter_gradients
from dgp.metrics import psnr
from dgp.models import build_model

DIGITS = {"name": "digits", "model": "lenet", "image_size": 16}
TRAINING = {"users": 2, "batch_size": 8, "epochs": 0.05, "lr": 0.05, "lr_schedule": {}}


def _model(rounds: int, tmp_path) -> torch.nn.Module:
    """The LeNet at its initial draw (seed 0), or after ``rounds`` rounds of federated
    training under ATS from that draw."""
    model = build_model("lenet", 1, 10, 16, seed=0)
    if rounds:
        from jobs import train as train_job

        train_job.run(DIGITS, "ats", 1.0, {}, {**TRAINING, "checkpoint_rounds": [rounds]},
                      seed=0, checkpoint_dir=tmp_path)
        model.load_state_dict(torch.load(tmp_path / f"round{rounds}.pt", weights_only=True))
    return model.eval()


@pytest.mark.parametrize("rounds", [0, 3])
def test_the_image_the_user_trained_on_is_rebuilt_early_in_training(rounds, tmp_path):
    data = load_dataset(DIGITS, "test")
    defense = create_defense("ats", 1.0)
    model = _model(rounds, tmp_path)
    box = (data.normalize(torch.zeros(1, 1, 1, 1)), data.normalize(torch.ones(1, 1, 1, 1)))
    rebuilt = []
    for index in (0, 1):
        image, label = data.samples([index])
        sent, targets = defense.transform_batch(image, label, 10,
                                                torch.Generator().manual_seed(index))
        assert not torch.equal(sent, image)  # every image is transformed at ratio 1
        shared = defense.apply(parameter_gradients(model, data.normalize(sent), targets))
        target = AttackTarget(model, shared, 1, (1, 16, 16), 10, box, defense)
        result = create_attack("idlg_adaptive", {"iterations": 20, "restarts": 2}) \
            .reconstruct_shared(target, torch.Generator().manual_seed(index))
        assert torch.equal(result.labels, label)
        rebuilt.append(float(psnr(data.denormalize(result.images).clamp(0, 1), sent)))
    assert min(rebuilt) > 40, rebuilt
