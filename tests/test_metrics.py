"""PSNR/SSIM/MSE agree with cases computed by hand."""

from __future__ import annotations

import math

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
