"""Soteria's break (Balunovic et al., the Bayes framework, ICLR 2022;
``defense_attacks/soteria`` of eth-sri/bayes-framework-leakage): Soteria only prunes the
representation layer's gradient, so an attacker that matches what was sent and skips the
pruned columns rebuilds the image from the rest."""

from __future__ import annotations

from jobs.privacy import run

DIGITS = {"name": "digits", "model": "lenet", "image_size": 16}


def test_a_defense_aware_attack_rebuilds_an_image_behind_soteria():
    record, _ = run(DIGITS, "soteria", 0.8, {}, "idlg_adaptive",
                    {"iterations": 20, "restarts": 1}, 1, 1, 1, device="cpu")
    row = record["rows"][0]
    assert row["predicted_label"] == row["label"]
    assert row["psnr"] > max(row["floor_psnr"], row["class_floor_psnr"]) + 30
    assert row["ssim"] > 0.99
