"""The HTML report renders from a tiny synthetic privacy.csv, with data and config escaped."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from dgp.aggregate import COLUMNS
from report.render import format_mean_ci, main, mean_ci

DEFENSES = {"none": [0.0], "dgp": [0.5, 0.9], "topk": [0.5, 0.9], "dp_gaussian": [0.1, 1.0]}
ATTACKS = ["dlg", "ig"]
SEEDS = [0, 1]


def _psnr(defense: str, ratio: float, attack: str, seed: int, sample: int) -> float:
    """Deterministic, distinct PSNRs so a group mean can be checked by hand."""
    return 30.0 - 10.0 * ratio - (2.0 if attack == "ig" else 0.0) + seed + 0.5 * sample


def _write_png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 4), (200, 30, 30)).save(path)


def make_csv(tmp_path: Path, *, nan_lpips: bool = False, diverged: bool = False) -> Path:
    rows = []
    for defense, ratios in DEFENSES.items():
        for ratio in ratios:
            for attack in ATTACKS:
                for seed in SEEDS:
                    image = tmp_path / "privacy" / f"{defense}_{ratio}_{attack}_{seed}.png"
                    _write_png(image)
                    for sample in range(2):
                        rows.append({
                            "dataset": "tinyset", "model": "lenet", "defense": defense,
                            "ratio": ratio, "attack": attack, "seed": seed, "sample": sample,
                            "batch": 0, "label": 1, "predicted_label": 1,
                            "psnr": _psnr(defense, ratio, attack, seed, sample),
                            "ssim": 0.5, "mse": 0.01,
                            "lpips": math.nan if nan_lpips else 0.2,
                            "label_acc": 1.0, "status": "ok", "attack_loss": 0.1,
                            "attack_iterations": 10, "attack_seconds": 1.5,
                            "dense_bytes": 1000, "sent_bytes": 1000 * (1 - ratio) + 1,
                            "compression": 1000 / (1000 * (1 - ratio) + 1), "device": "cpu",
                            "image": str(image),
                            "notes": "LPIPS not computed: no weights | seeded run",
                        })
    table = pd.DataFrame(rows, columns=COLUMNS)
    if diverged:
        first = (table["defense"] == "dgp") & (table["ratio"] == 0.9) & (table["attack"] == "dlg")
        index = table.index[first][0]
        table.loc[index, ["psnr", "ssim", "mse", "lpips"]] = math.nan
        table.loc[index, "status"] = "diverged"
    path = tmp_path / "privacy.csv"
    table.to_csv(path, index=False)
    return path


def render(tmp_path: Path, csv: Path, config: dict) -> str:
    out = tmp_path / "out" / "report.html"
    main(["--privacy", str(csv), "--config", json.dumps(config), "--out", str(out)])
    assert out.exists()
    return out.read_text()


def test_mean_ci_t_interval() -> None:
    mean, half, n = mean_ci(pd.Series([20.0, 22.0, math.nan]))
    # t(0.975, df=1) = 12.7062; sd = sqrt(2); half = 12.7062 * sqrt(2) / sqrt(2)
    assert (mean, n) == (21.0, 2)
    assert half == pytest.approx(12.7062, abs=1e-4)
    assert format_mean_ci(pd.Series([3.0]), ".2f") == "3.00"
    assert format_mean_ci(pd.Series([math.nan]), ".2f") == "n/a"


def test_report_renders_and_escapes(tmp_path: Path) -> None:
    csv = make_csv(tmp_path)
    config = {"name": "<script>alert(1)</script>", "datasets": ["tinyset"]}
    text = render(tmp_path, csv, config)
    plain = html.unescape(text)

    assert "tinyset" in text
    # dgp, ratio 0.5, dlg: PSNR 25 + seed + 0.5*sample -> 25, 25.5, 26, 26.5; mean 25.75,
    # sd 0.6455, t(0.975, 3) = 3.1824 -> half-width 1.03.
    assert "25.75 ± 1.03" in plain
    # none at ratio 0 is in the table (n = 2 seeds x 2 samples).
    assert "30.75 ± 1.03" in plain
    assert text.count("data:image/png;base64,") >= 1 + 4 * len(ATTACKS)  # figure + gallery
    assert "missing image" not in text
    assert "dgp, 0.9, dlg: mean PSNR 21.25 dB" in plain  # smallest seed at the largest ratio
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script>alert" not in text
    assert plain.count("LPIPS not computed: no weights") == 1  # notes shown once


def test_report_nan_lpips_diverged_and_missing_image(tmp_path: Path) -> None:
    csv = make_csv(tmp_path, nan_lpips=True, diverged=True)
    (tmp_path / "privacy" / "topk_0.9_ig_0.png").unlink()
    text = render(tmp_path, csv, {})

    assert "n/a" in text
    assert '<td class="warn">1</td>' in text  # the one diverged row is counted
    assert "missing image" in text


def test_utility_section_reports_upload_to_target(tmp_path: Path) -> None:
    from report.render import summarize_utility

    rows = []
    for defense, accs in {"none": [0.5, 0.8, 1.0], "dgp": [0.3, 0.95, 0.99]}.items():
        for i, acc in enumerate(accs):
            rows.append({"dataset": "tinyset", "model": "lenet", "defense": defense,
                         "ratio": 0.0 if defense == "none" else 0.8, "seed": 0,
                         "round": i + 1, "epoch": i + 1.0, "test_acc": acc, "train_loss": 1.0,
                         "upload_bytes": 100.0, "upload_entropy_bound_bytes": 90.0,
                         "download_bytes": 100.0, "cumulative_upload_bytes": 100.0 * (i + 1),
                         "cumulative_download_bytes": 100.0 * (i + 1),
                         "residual_norm": 0.0 if defense == "none" else 0.5,
                         "error_feedback": defense != "none", "lr": 0.1, "seconds": 1.0})
    utility = pd.DataFrame(rows)
    summary, target = summarize_utility(utility)
    assert target == pytest.approx(0.9)  # 90 % of none's final accuracy
    by_defense = {row["defense"]: row for row in summary}
    assert by_defense["dgp"]["to_target"] == "200"  # reached 0.95 at round 2
    assert by_defense["none"]["to_target"] == "300"
    csv = make_csv(tmp_path)
    utility_csv = tmp_path / "utility.csv"
    utility.to_csv(utility_csv, index=False)
    out = tmp_path / "out" / "report.html"
    main(["--privacy", str(csv), "--utility", str(utility_csv), "--out", str(out)])
    text = out.read_text()
    assert "Utility and communication" in text and "upload B to target" in text


def test_defense_families_follow_the_registry() -> None:
    from report.plots import defense_family

    assert [defense_family(d) for d in ("none", "dgp", "adgp", "topk", "dp_gaussian")] == [
        "none", "pruning", "pruning", "pruning", "noise"]
