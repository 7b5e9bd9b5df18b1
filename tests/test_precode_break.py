"""PRECODE's break (Balunovic et al., the Bayes framework, ICLR 2022): one image's FedSGD
gradient reveals the input of every linear layer with a bias, so the bottleneck's noise
draw, and with it the user's whole forward pass."""

from __future__ import annotations

import torch

from defenses import create_defense
from dgp.gradients import linear_input
from dgp.labels import LABEL_RULES, RuleInputs, infer_labels, lone_negative_bias
from dgp.models import build_model
from dgp.protocol import Protocol
from dgp.updates import user_update

PRECODE = create_defense("precode", 0.001, {"size": 64})


def _user(seed: int, label: int):
    model = build_model("lenet", 1, 10, 16, seed, wrap=PRECODE.wrap_model).eval()
    image = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    labels = torch.tensor([label])
    return model, image, labels, user_update(model, image, labels, Protocol())


def test_a_linear_layers_input_is_read_off_its_gradient_even_with_entries_left_out():
    layer = torch.nn.Linear(6, 4)
    x = torch.randn(1, 6)
    torch.nn.functional.cross_entropy(layer(x), torch.tensor([2])).backward()
    torch.testing.assert_close(linear_input(layer.weight.grad, layer.bias.grad), x[0])
    pruned = layer.weight.grad.clone()
    pruned[0, :3] = 0  # another row still holds these entries
    torch.testing.assert_close(linear_input(pruned, layer.bias.grad), x[0])


def test_the_users_noise_is_recovered_so_the_true_image_reproduces_the_update():
    for seed in range(3):
        model, image, labels, observed = _user(seed, label=seed)
        again = user_update(model, image, labels, Protocol())  # a fresh draw differs
        assert max(float((a - b).abs().max()) for a, b in zip(observed, again, strict=True)) > 1e-4
        fixed = PRECODE.reproducible_model(model, observed, 1, Protocol())
        for a, b in zip(observed, user_update(fixed, image, labels, Protocol()), strict=True):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


def test_other_protocols_keep_the_model_drawing_afresh():
    model, _, _, observed = _user(0, label=0)
    for num_images, protocol in ((2, Protocol()), (1, Protocol("fedavg", 2, 0, 0.1)),
                                 (3, Protocol(users=3))):
        assert PRECODE.reproducible_model(model, observed, num_images, protocol) is model


def test_one_images_label_is_the_bias_gradients_lone_negative_entry():
    """Behind PRECODE's decoder the classifier's input can be negative, where iDLG's row
    sums go wrong; the bias gradient's sign does not."""
    wrong_by_row_sums = 0
    for seed in range(6):
        _, _, labels, observed = _user(seed, label=(3 * seed) % 10)
        assert lone_negative_bias(observed, 10) == int(labels)
        inputs = RuleInputs(observed, 1, 10, None, None, None)
        assert int(LABEL_RULES["auto"].recover(inputs)) == int(labels)
        wrong_by_row_sums += int(infer_labels(observed, 1, 10, "idlg")) != int(labels)
    assert wrong_by_row_sums > 0
    two_negative = [torch.zeros(10, 4), torch.tensor([0.1] * 8 + [-0.1, -0.2])]
    assert lone_negative_bias(two_negative, 10) is None


def test_a_defense_aware_attack_rebuilds_an_image_behind_precode():
    from jobs.privacy import run

    digits = {"name": "digits", "model": "lenet", "image_size": 16}
    record, _ = run(digits, "precode", 0.001, {"size": 64}, "idlg_adaptive",
                    {"iterations": 20, "restarts": 1}, 0, 1, 1, device="cpu")
    row = record["rows"][0]
    assert row["predicted_label"] == row["label"]
    assert row["psnr"] > max(row["floor_psnr"], row["class_floor_psnr"]) + 15
