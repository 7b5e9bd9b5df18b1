"""Federated training: exactness against plain SGD, error feedback, ADGP, checkpoints."""

from __future__ import annotations

import pytest
import torch

from defenses import create_defense
from dgp.communication import aggregate_cost, shared_cost
from dgp.fl.error_feedback import ErrorFeedback
from dgp.fl.federated import TrainingSettings, train
from dgp.fl.users import FederatedData, partition, user_batches
from dgp.models import build_model


def settings(**changes) -> TrainingSettings:
    base = {"users": 1, "batch_size": 8, "epochs": 0.1, "lr": 0.05, "lr_schedule": {},
            "momentum": 0.9, "weight_decay": 1e-4}
    return TrainingSettings.from_config({**base, **changes})


def test_fedsgd_with_one_user_and_no_defense_is_plain_sgd(digits):
    x, y, tx, ty = digits
    config = settings()
    federated = build_model("lenet", 1, 10, 8, seed=3)
    records = train(federated, FederatedData(x, y, tx, ty),
                    create_defense("none", 0, {}), config, seed=3)

    plain = build_model("lenet", 1, 10, 8, seed=3)
    optimizer = torch.optim.SGD(plain.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(3)
    batches = user_batches(partition(y, 1, "iid", 0.5, seed=3)[0], 8, generator)
    for _ in range(records[-1]["round"]):
        index = next(batches)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(plain(x[index]), y[index]).backward()
        optimizer.step()
    for a, b in zip(federated.state_dict().values(), plain.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_error_feedback_loses_nothing():
    generator = torch.Generator().manual_seed(0)
    feedback = ErrorFeedback(create_defense("dgp", 0.8))
    raw_sum = [torch.zeros(30, 20), torch.zeros(20)]
    sent_sum = [torch.zeros(30, 20), torch.zeros(20)]
    for _ in range(6):
        grads = [torch.randn(30, 20, generator=generator), torch.randn(20, generator=generator)]
        corrected = feedback.corrected(grads)
        shared = feedback.defense.apply(corrected)
        feedback.keep_unsent(corrected, shared)
        for total, g in zip(raw_sum, grads, strict=True):
            total += g
        for total, s in zip(sent_sum, shared.tensors, strict=True):
            total += s
    for raw, sent, residual in zip(raw_sum, sent_sum, feedback.residuals, strict=True):
        assert torch.allclose(sent + residual, raw, atol=1e-5)
    assert feedback.residual_norm() > 0


def test_adgp_users_send_the_same_positions_and_download_less():
    generator = torch.Generator().manual_seed(1)
    users = [[torch.randn(50, 40, generator=generator), torch.randn(40, generator=generator)]
             for _ in range(5)]
    adgp, dgp = create_defense("adgp", 0.8), create_defense("dgp", 0.8)
    aligned = adgp.share_round(users, leader=0)  # user 0 broadcasts its DGP band
    independent = [dgp.apply(g) for g in users]
    masks = independent[0].masks
    assert shared_cost(aligned[0]) == shared_cost(independent[0])  # the band's positions
    for shared in aligned:
        assert all(torch.equal(m, b) for m, b in zip(shared.masks, masks, strict=True))
    for shared in aligned[1:]:  # the members send values only
        cost = shared_cost(shared)
        assert cost.index_bytes == 0 and cost.sent_bytes == 4 * cost.sent_values
    # Same values per user; the aggregate of aligned uploads keeps one mask's support.
    assert shared_cost(aligned[1]).sent_values == shared_cost(independent[1]).sent_values
    assert aggregate_cost(aligned).sent_values == shared_cost(aligned[0]).sent_values
    assert aggregate_cost(aligned).sent_bytes < aggregate_cost(independent).sent_bytes


def test_adgp_training_downloads_less_than_dgp(digits):
    x, y, tx, ty = digits
    config = settings(users=4, epochs=0.05)
    costs = {}
    for name in ("dgp", "adgp"):
        model = build_model("lenet", 1, 10, 8, seed=0)
        records = train(model, FederatedData(x, y, tx, ty),
                        create_defense(name, 0.8, {}), config, seed=0)
        costs[name] = records[-1]
        assert records[-1]["error_feedback"] is True
    assert costs["adgp"]["download_bytes"] < costs["dgp"]["download_bytes"]
    assert costs["adgp"]["upload_bytes"] < costs["dgp"]["upload_bytes"]


def test_partitions_cover_the_data_once(digits):
    _, y, _, _ = digits
    for scheme in ("iid", "dirichlet"):
        shards = partition(y, 7, scheme, 0.3, seed=0)
        everything = torch.cat(shards).sort().values
        assert torch.equal(everything, torch.arange(len(y))) and all(len(s) for s in shards)
        again = partition(y, 7, scheme, 0.3, seed=0)
        assert all(torch.equal(a, b) for a, b in zip(shards, again, strict=True))
    classes = {scheme: [len(y[s].unique()) for s in partition(y, 7, scheme, 0.05, seed=0)]
               for scheme in ("iid", "dirichlet")}
    assert min(classes["iid"]) == 10 and min(classes["dirichlet"]) < 10


def test_checkpoints_are_written_at_the_requested_rounds(digits, tmp_path):
    x, y, tx, ty = digits
    saved = {}
    model = build_model("lenet", 1, 10, 8, seed=0)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    train(model, FederatedData(x, y, tx, ty),
          create_defense("none", 0, {}), settings(checkpoint_rounds=[0, 5]), seed=0,
          on_checkpoint=lambda r, m: saved.update({r: {k: v.clone() for k, v in
                                                       m.state_dict().items()}}))
    assert sorted(saved) == [0, 5]
    assert all(torch.equal(initial[k], saved[0][k]) for k in initial)
    assert not torch.equal(initial["fc.weight"], saved[5]["fc.weight"])
    with pytest.raises(ValueError, match="past the end"):
        train(model, FederatedData(x, y, tx, ty),
              create_defense("none", 0, {}), settings(checkpoint_rounds=[10_000]), seed=0)


def test_privacy_job_attacks_a_training_checkpoint(tmp_path):
    from jobs import privacy
    from jobs import train as train_job

    spec = {"name": "digits", "model": "lenet", "image_size": 16}
    training = {"users": 2, "batch_size": 8, "epochs": 0.02, "lr": 0.05, "lr_schedule": {},
                "checkpoint_rounds": [2]}
    table = train_job.run(spec, "none", 0, {}, training, seed=0, checkpoint_dir=tmp_path)
    assert table["round"].max() >= 2
    checkpoint = tmp_path / "round2.pt"
    state = torch.load(checkpoint, weights_only=True)
    assert "fc.weight" in state
    record, _ = privacy.run(spec, "none", 0, {}, "dlg", {"iterations": 1}, seed=0,
                            num_images=1, batch_size=1, model_round=2, checkpoint=checkpoint)
    assert record["job"]["model_round"] == 2 and record["rows"][0]["status"] == "ok"


def test_crop_and_flip_is_seeded_and_keeps_shape():
    from dgp.fl.users import crop_and_flip

    images = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    first = crop_and_flip(images, torch.Generator().manual_seed(5))
    again = crop_and_flip(images, torch.Generator().manual_seed(5))
    assert first.shape == images.shape and torch.equal(first, again)
    assert not torch.equal(first, images)


def _drawn_in_training(monkeypatch, digits, defense: str, ratio: float, params: dict,
                       config: TrainingSettings, seed: int = 0):
    """Train and record every user's batch indices and every gradient's (inputs, labels)."""
    import dgp.fl.strategies as strategies
    import dgp.fl.users as users

    x, y, tx, ty = digits
    indices: list[list[torch.Tensor]] = []
    inputs: list[tuple[torch.Tensor, torch.Tensor]] = []
    real_batches, real_loss = users.user_batches, strategies.loss_and_gradients

    def recording_batches(shard, batch_size, generator):
        drawn: list[torch.Tensor] = []
        indices.append(drawn)
        for index in real_batches(shard, batch_size, generator):
            drawn.append(index.clone())
            yield index

    def recording_loss(model, images, labels):
        inputs.append((images.clone(), labels.clone()))
        return real_loss(model, images, labels)

    with monkeypatch.context() as patch:
        patch.setattr(users, "user_batches", recording_batches)
        patch.setattr(strategies, "loss_and_gradients", recording_loss)
        model = build_model("lenet", 1, 10, 8, seed=seed)
        train(model, FederatedData(x, y, tx, ty),
              create_defense(defense, ratio, params), config, seed=seed)
    return indices, inputs


def test_runs_paired_by_seed_see_the_same_batches_whatever_the_defense(digits, monkeypatch):
    # 10 users x 64: two batches per pass over a shard, so every user reshuffles after
    # rounds in which the defenses drew noise, masks or mixing partners.
    config = settings(users=10, batch_size=64, epochs=2, augment=True)
    runs = {name: _drawn_in_training(monkeypatch, digits, name, ratio, params, config)
            for name, ratio, params in [("none", 0, {}), ("dp_gaussian", 0.01, {}),
                                        ("random", 0.8, {}), ("mixup", 4, {})]}
    reference_indices, reference_inputs = runs["none"]
    assert len(reference_inputs) == 6 * 10 and len(reference_indices) == 10
    for name, (indices, inputs) in runs.items():
        assert [len(user) for user in indices] == [len(user) for user in reference_indices]
        assert all(torch.equal(a, b) for user, ref in zip(indices, reference_indices,
                                                          strict=True)
                   for a, b in zip(user, ref, strict=True)), name
        if name != "mixup":  # the same augmented images, not only the same indices
            assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
                       for a, b in zip(inputs, reference_inputs, strict=True)), name


def _sgd_with_a_schedule(digits, reset: bool, rounds: int, drop_round: int, lr: float,
                         dropped_lr: float, batch_size: int, seed: int) -> torch.nn.Module:
    """One user, no defense, by hand: plain SGD whose lr drops at ``drop_round``, either
    changed in place (momentum kept) or by a new optimizer (the DGP code)."""
    x, y, _, _ = digits
    model = build_model("lenet", 1, 10, 8, seed=seed)

    def sgd(rate: float) -> torch.optim.SGD:
        return torch.optim.SGD(model.parameters(), lr=rate, momentum=0.9, weight_decay=1e-4)

    optimizer = sgd(lr)
    batches = user_batches(partition(y, 1, "iid", 0.5, seed=seed)[0], batch_size,
                           torch.Generator().manual_seed(seed))
    for round_index in range(rounds):
        if round_index == drop_round:
            if reset:
                optimizer = sgd(dropped_lr)
            else:
                for group in optimizer.param_groups:
                    group["lr"] = dropped_lr
        index = next(batches)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x[index]), y[index]).backward()
        optimizer.step()
    return model


def test_reset_optimizer_at_lr_change_recreates_sgd_as_the_dgp_code(digits):
    x, y, tx, ty = digits
    rounds_per_epoch = -(-len(y) // 128)  # one user x 128 images
    by_hand = {reset: _sgd_with_a_schedule(digits, reset, 2 * rounds_per_epoch,
                                           rounds_per_epoch, 0.05, 0.02, 128, seed=3)
               for reset in (False, True)}
    kept, reset = (list(by_hand[r].state_dict().values()) for r in (False, True))
    assert not all(torch.equal(a, b) for a, b in zip(kept, reset, strict=True))
    for flag in (False, True):
        config = settings(batch_size=128, epochs=2, lr_schedule={2: 0.02},
                          reset_optimizer_at_lr_change=flag)
        model = build_model("lenet", 1, 10, 8, seed=3)
        records = train(model, FederatedData(x, y, tx, ty),
                        create_defense("none", 0, {}), config, seed=3)
        assert records[-1]["round"] == 2 * rounds_per_epoch and records[-1]["lr"] == 0.02
        for a, b in zip(model.state_dict().values(), by_hand[flag].state_dict().values(),
                        strict=True):
            assert torch.equal(a, b), flag
