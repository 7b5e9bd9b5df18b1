"""Atomic outputs: complete or absent, and readable by others like any plain file."""

from __future__ import annotations

import os
import stat

import pytest

from dgp.io import write_atomically, write_json, write_text


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_outputs_get_the_mode_a_plain_open_would(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        write_text(tmp_path / "report.html", "<html></html>")
        write_json(tmp_path / "record.json", {"a": 1})
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(previous)
    for name in ("report.html", "record.json", "plain.txt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_a_failed_write_leaves_nothing(tmp_path):
    def fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_atomically(tmp_path / "out.csv", fail)
    assert list(tmp_path.iterdir()) == []


def test_the_image_grid_is_laid_out_as_torchvisions_make_grid():
    import torch
    from torchvision.utils import make_grid

    from dgp.mosaic import tile

    for images in (torch.rand(7, 1, 16, 16), torch.rand(8, 3, 12, 12)):
        assert torch.equal(tile(images, 4), make_grid(images, nrow=4, padding=1))


def test_a_truncated_checkpoint_stops_the_job_with_a_message_naming_it(tmp_path):
    """A checkpoint cut short (a full disk, a killed copy) ends the privacy job with one
    line naming the file and what to do, not a bare EOFError traceback; nothing is written."""
    import subprocess
    import sys

    import torch

    from dgp.models import build_model

    whole = tmp_path / "round5.pt"
    torch.save(build_model("lenet", 1, 10, 16, 0).state_dict(), whole)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "jobs.privacy", "--dataset",
         '{"name": "digits", "model": "lenet", "image_size": 16}', "--defense", "none",
         "--ratio", "0", "--attack", "ig", "--attack-params", '{"iterations": 1}',
         "--round", "5", "--checkpoint", str(truncated), "--out-json", str(out / "a.json"),
         "--out-png", str(out / "a.png")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"checkpoint {truncated} cannot be read" in result.stderr
    assert "delete it and rerun" in result.stderr
    assert not out.exists()
