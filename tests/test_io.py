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

    from dgp.jobs.privacy import tile

    for images in (torch.rand(7, 1, 16, 16), torch.rand(8, 3, 12, 12)):
        assert torch.equal(tile(images, 4), make_grid(images, nrow=4, padding=1))
