"""Atomic file output: a killed job never leaves a file that looks finished; and reading a
job's inputs, where a damaged file stops the job with a message that names it.

Finished files get the mode a plain ``open`` would give them (0666 less the umask, i.e.
0644 under the usual umask 022), not the 0600 of the temporary file they start as, so a
report copied to a web server or a shared results folder stays readable.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_atomically(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``.

    The temporary file lives in the target directory so the final ``os.replace`` is atomic.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    """The process's umask (reading it means setting it; set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically. NaN is kept (Python's JSON dialect)."""
    write_atomically(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))


def write_text(path: str | Path, text: str) -> None:
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


class UnreadableInput(RuntimeError):
    """An input a job cannot read; the message names the file and what to do
    (``jobs.quick_exit`` prints it without a traceback)."""


def load_state_dict(path: str | Path) -> dict[str, Any]:
    """A training checkpoint's state dict. A truncated or corrupt file (a full disk or a
    killed copy leaves one) stops the job with ``UnreadableInput``, not torch's bare
    ``EOFError``."""
    from dgp.lazy import torch

    if not Path(path).is_file():
        raise UnreadableInput(f"checkpoint {path} does not exist: rerun the workflow, whose "
                              "training job writes it")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError,
            zipfile.BadZipFile) as error:
        raise UnreadableInput(
            f"checkpoint {path} cannot be read ({type(error).__name__}: {error}); it is "
            "truncated or corrupt (as a full disk or a killed copy leaves it): delete it and "
            "rerun the workflow, which writes it again; no other output is affected") from None
