"""PSNR/SSIM/MSE agree with cases computed by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from dgp.metrics import image_metrics, lpips_note, lpips_values


def test_psnr_and_mse_of_a_uniform_offset():
    original = torch.full((1, 1, 16, 16), 0.5)
    reconstruction = original + 0.1  # MSE = 0.01, PSNR = 10 log10(1 / 0.01) = 20 dB
    metrics = image_metrics(reconstruction, original)
    assert metrics["mse"][0] == pytest.approx(0.01, rel=1e-5)
    assert metrics["psnr"][0] == pytest.approx(20.0, abs=1e-4)


def test_ssim_of_constant_images_is_the_luminance_term():
    # No variance: SSIM = (2 a b + C1) / (a^2 + b^2 + C1) with C1 = (0.01 x data_range)^2.
    a, b, c1 = 0.5, 0.25, 0.01**2
    metrics = image_metrics(torch.full((1, 3, 16, 16), b), torch.full((1, 3, 16, 16), a))
    assert metrics["ssim"][0] == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-4)


def test_identical_images_score_perfectly_per_image():
    images = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    noisy = (images + 0.2 * torch.rand(3, 1, 16, 16)).clamp(0, 1)
    noisy[1] = images[1]
    metrics = image_metrics(noisy, images)
    assert metrics["ssim"][1] == pytest.approx(1.0, abs=1e-6)
    assert math.isinf(metrics["psnr"][1]) and metrics["psnr"][0] < 40


def test_lpips_is_nan_with_a_note_when_weights_are_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert "LPIPS not computed" in lpips_note()
    values = lpips_values(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    assert torch.isnan(values).all() and values.shape == (2,)


@pytest.mark.parametrize("shape", [(3, 1, 16, 16), (2, 3, 32, 32), (2, 1, 8, 8)])
def test_psnr_and_ssim_are_torchmetrics_own_values(shape):
    # written out to spare every job torchmetrics' import; pinned to it bit for bit
    from torchmetrics.functional.image import (
        peak_signal_noise_ratio,
        structural_similarity_index_measure,
    )

    generator = torch.Generator().manual_seed(0)
    original = torch.rand(shape, generator=generator)
    for reconstruction in (torch.rand(shape, generator=generator),
                           (original + 0.05 * torch.randn(shape, generator=generator)).clamp(0, 1)):
        metrics = image_metrics(reconstruction, original, lpips=False)
        assert metrics["psnr"] == peak_signal_noise_ratio(
            reconstruction, original, data_range=1.0, reduction="none", dim=(1, 2, 3)).tolist()
        assert metrics["ssim"] == structural_similarity_index_measure(
            reconstruction, original, data_range=1.0, reduction="none").tolist()


@pytest.mark.parametrize("attack", ["ig", "idlg"])  # on Adam and on L-BFGS
def test_a_privacy_job_imports_neither_torchmetrics_torchvision_sklearn_nor_dynamo(
        tmp_path, attack):
    # together about 4 s of every job's start-up (torch alone: about 1.6 s), and torch's
    # compiler (imported by any torch.optim constructor) about 1 s more
    import subprocess
    import sys

    code = ("import sys; from jobs.privacy import main; "
            "main(['--dataset', '{\"name\": \"digits\", \"model\": \"lenet\", "
            f"\"image_size\": 16}}', '--defense', 'none', '--ratio', '0', '--attack', '{attack}', "
            f"'--attack-params', '{{\"iterations\": 2}}', '--out-json', '{tmp_path}/a.json', "
            f"'--out-png', '{tmp_path}/a.png']); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'torchmetrics', 'torchvision', 'sklearn', 'scipy'} | "
            "{'torch._dynamo'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "a.png").stat().st_size > 0


def test_the_lpips_checkpoint_name_is_torchvisions():
    from torchvision.models import AlexNet_Weights

    from dgp.metrics import ALEXNET_CHECKPOINT

    assert Path(AlexNet_Weights.DEFAULT.url).name == ALEXNET_CHECKPOINT


def test_every_registered_metric_reaches_the_csv_and_the_report():
    # adding a metric is one IMAGE_METRICS entry: its columns and report column follow
    from dgp.columns import COLUMNS
    from dgp.metrics import IMAGE_METRICS
    from report.render import METRIC_HEADERS, METRICS

    original = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    scored = image_metrics(original.flip(-1), original, lpips=False)
    for name in IMAGE_METRICS:
        assert len(scored[name]) == 2
        assert {name, f"{name}_shared"} <= set(COLUMNS)
        assert name in METRIC_HEADERS and name in METRICS
