"""The label-recovery job (jobs.labels) and its report table (report/labels.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from test_report import make_csv

from defenses import create_defense
from dgp.columns import LABEL_COLUMNS
from dgp.labels import LABEL_RULES
from jobs import labels as label_job
from jobs.plan import label_jobs
from report.labels import label_sections, label_verdict
from report.render import main
from report.stats import CLEARS, NO_BETTER, TOO_FEW

DIGITS = {"name": "digits", "model": "lenet", "image_size": 16}


def test_every_rule_and_guess_scores_every_batch_and_the_oracle_is_exact():
    table = label_job.run(DIGITS, "none", 0.0, {}, batch_sizes=[1, 4], batches=4)
    assert list(table.columns) == LABEL_COLUMNS
    per_batch = {*LABEL_RULES, *label_job.GUESSES}
    assert set(table[table.batch_size == 1]["rule"]) == per_batch
    assert set(table[table.batch_size == 4]["rule"]) == per_batch - {"idlg"}  # one image only
    assert len(table) == 4 * len(per_batch) + 4 * (len(per_batch) - 1)
    assert table["label_acc"].between(0, 1).all()
    assert (table[table.rule == "oracle"]["label_acc"] == 1).all()
    # Undefended single images: iDLG's sign rule reads every label; guessing does not.
    single = table[table.batch_size == 1].groupby("rule")["label_acc"].mean()
    assert single["idlg"] == 1.0 and single["guess_prior"] < 0.5
    again = label_job.run(DIGITS, "none", 0.0, {}, batch_sizes=[1, 4], batches=4)
    pd.testing.assert_frame_equal(table, again)  # seeded draws, models and noise


def test_the_rules_read_the_defended_gradient():
    setting = label_job._Setting(DIGITS, create_defense("topk", 0.95), torch.device("cpu"))
    model_args = (setting.spec["model"], 1, 10, 16, 0, setting.defense.wrap_model)
    model = label_job.build_model(*model_args).eval()
    observed, true = setting.shared_gradient(model, [0, 1, 2, 3], torch.Generator(),
                                             "user")
    sent = sum(int((g != 0).sum()) for g in observed) / sum(g.numel() for g in observed)
    assert 0.03 < sent < 0.06 and len(true) == 4  # top-k 0.95 sends about 5 %


def test_adgp_is_attacked_in_both_roles_as_the_privacy_job_attacks_it():
    """The broadcaster sends DGP's band of its own gradient (the same rows as DGP's); the
    member sends at another user's band, so its rows are its own."""
    adgp = label_job.run(DIGITS, "adgp", 0.8, {}, batch_sizes=[1], batches=3)
    dgp = label_job.run(DIGITS, "dgp", 0.8, {}, batch_sizes=[1], batches=3)
    assert set(adgp["role"]) == {"broadcaster", "member"} and set(dgp["role"]) == {"user"}
    broadcaster = adgp[adgp.role == "broadcaster"].reset_index(drop=True)
    columns = ["batch", "rule", "label_acc"]
    pd.testing.assert_frame_equal(broadcaster[columns], dgp[columns])
    setting = label_job._Setting(DIGITS, create_defense("adgp", 0.8), torch.device("cpu"))
    model = label_job.build_model("lenet", 1, 10, 16, 0).eval()
    picks = [0, 1]
    lead, _ = setting.shared_gradient(model, picks, torch.Generator().manual_seed(0),
                                      "broadcaster")
    member, _ = setting.shared_gradient(model, picks, torch.Generator().manual_seed(0),
                                        "member")
    assert any(((a != 0) != (b != 0)).any() for a, b in zip(lead, member, strict=True))


def test_the_prior_guess_spreads_the_public_frequencies_by_largest_remainder():
    assert label_job.prior_guess(torch.tensor([3, 1]), 4) == [0, 0, 0, 1]
    assert label_job.prior_guess(torch.tensor([5, 5, 5]), 2) == [0, 1]  # ties: lower class
    assert label_job.prior_guess(torch.tensor([1, 8, 1]), 1) == [1]
    assert len(label_job.prior_guess(torch.tensor([7, 2, 9, 4]), 16)) == 16


def _cell(rule: str, values: list[float], size: int = 4) -> pd.DataFrame:
    return pd.DataFrame({"dataset": "digits", "model": "lenet", "defense": "none",
                         "role": "user", "ratio": 0.0, "seed": 0, "batch_size": size,
                         "batch": range(len(values)), "rule": rule, "label_acc": values})


def test_a_rule_clears_the_floor_only_when_it_beats_the_guess_batch_by_batch():
    guess = _cell("guess_prior", [0.25, 0.5, 0.25, 0.5, 0.25])
    assert label_verdict(_cell("yin", [1.0, 1.0, 0.75, 1.0, 1.0]), guess) == CLEARS
    assert label_verdict(_cell("yin", [0.25, 0.75, 0.25, 0.25, 0.5]), guess) == NO_BETTER
    assert label_verdict(_cell("yin", [1.0, 1.0, 1.0]), guess.head(3)) == TOO_FEW


def test_the_report_names_each_settings_strongest_rule_and_its_floor(tmp_path: Path):
    table = pd.concat([_cell("yin", [0.5] * 4), _cell("llg", [1.0, 1.0, 0.75, 1.0]),
                       _cell("oracle", [1.0] * 4), _cell("guess_prior", [0.25] * 4)])
    [section] = label_sections(table)
    [row] = section["strongest"]["rows"]
    assert row["setting"] == "none" and row["cells"][0]["rule"] == "llg"  # not the oracle
    assert row["cells"][0]["verdict"] == CLEARS and section["strongest"]["n"] == 4
    labels_csv = tmp_path / "labels.csv"
    table.to_csv(labels_csv, index=False)
    out = tmp_path / "report.html"
    main(["--privacy", str(make_csv(tmp_path)), "--labels", str(labels_csv), "--out", str(out)])
    text = out.read_text()
    assert "Label recovery: digits" in text and "(llg)" in text and "guess_prior" in text


def test_label_jobs_follow_the_config():
    config = {"datasets": [DIGITS], "labels": {"enabled": True},
              "defenses": [{"name": "none", "ratios": [0]}, {"name": "dgp", "ratios": [0.8, 0.9]}]}
    assert [job["ratio"] for job in label_jobs(config)] == ["0", "0.8", "0.9"]
    config["labels"]["enabled"] = False
    assert label_jobs(config) == []


def test_every_rule_runs_on_a_model_that_keeps_its_last_forward():
    """PRECODE's bottleneck keeps its KL term (a non-leaf tensor): LLG+'s probe of the
    model once deep-copied it, which failed on such a model."""
    table = label_job.run(DIGITS, "precode", 0.001, {"size": 16}, batch_sizes=[2], batches=1)
    assert set(table["rule"]) == {*LABEL_RULES, *label_job.GUESSES} - {"idlg"}


def test_the_public_impact_probe_leaves_batchnorm_statistics_as_they_were():
    from dgp.labels import public_impact
    from dgp.models import build_model

    model = build_model("convnet", 1, 10, 16, seed=0).train()
    before = [b.clone() for b in model.buffers()]
    public_impact(model, torch.randn(10, 1, 16, 16), batch_size=4)
    assert all(torch.equal(a, b) for a, b in zip(before, model.buffers(), strict=True))
