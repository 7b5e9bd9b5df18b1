"""The peer benchmark's image draw and summary (no breaching needed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "peer_breaching.py"


@pytest.fixture(scope="module")
def peer():
    spec = importlib.util.spec_from_file_location("peer_breaching", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_split(root: Path, classes: list[str], per_class: int) -> Path:
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            (root / name / f"{i:04d}.jpg").write_bytes(b"")
        (root / name / "notes.txt").write_text("not an image")
    return root


def test_draw_is_seeded_over_the_whole_split(peer, tmp_path):
    root = _fake_split(tmp_path / "test", peer.CLASSES, 5)
    files = peer.split_files(root)
    assert len(files) == 50 and files[0] == "airplane/0000.jpg"
    first = peer.draw_images(root, 8, 0)
    assert first == peer.draw_images(root, 8, 0)
    assert first != peer.draw_images(root, 8, 1)
    assert len(set(first)) == 8 and set(first) <= set(files)
    assert peer.draw_images(root, 12, 0)[:8] == first  # a larger draw extends the smaller
    assert len({name.split("/")[0] for name in peer.draw_images(root, 50, 3)}) == 10
    with pytest.raises(ValueError):
        peer.draw_images(root, 51, 0)


def test_split_needs_the_cifar10_classes(peer, tmp_path):
    root = _fake_split(tmp_path / "test", ["cat", "dog"], 2)
    with pytest.raises(ValueError, match="class folders"):
        peer.split_files(root)


def test_real_split_draw(peer, cifar10_mini):
    names = peer.draw_images(cifar10_mini / "test", 8, 0)
    assert len(names) == 8 and all((cifar10_mini / "test" / n).is_file() for n in names)


def test_summary_spread_and_bootstrap_interval(peer):
    diffs = [-2.7, -1.0, -0.2, 0.1, 0.4, 0.9, 1.5, 2.1]
    rows = [{"breaching_psnr": 15.0, "our_psnr": 15.0 + d, "breaching_ssim": 0.3,
             "our_ssim": 0.3, "breaching_s_per_it": 0.25, "our_s_per_it": 0.2, "step_s": 0.1}
            for d in diffs]
    summary = peer.summarize(rows)
    assert summary["n_images"] == 8 and summary["resampled_unit"] == "image"
    assert summary["psnr_diff_mean"] == pytest.approx(np.mean(diffs))
    assert summary["psnr_diff_std"] == pytest.approx(np.std(diffs, ddof=1))
    assert (summary["psnr_diff_min"], summary["psnr_diff_max"]) == pytest.approx((-2.7, 2.1))
    low, high = summary["psnr_diff_ci95"]
    assert -2.7 < low < np.mean(diffs) < high < 2.1
    assert summary == peer.summarize(rows)  # seeded
    assert summary["time_ratio"] == pytest.approx(0.8)
    assert summary["target_met"] is True
    flat = peer.summarize(rows[:1])
    assert flat["psnr_diff_ci95"] == pytest.approx([-2.7, -2.7]) and not flat["target_met"]
