"""A config validated once per config, code and data: a repeated dry run of the workflow
skips validation.

Validation (``jobs.config``) loads every plugin module and builds every configured
defense and attack to check its parameters; that imports no torch (``dgp.lazy``) but still
costs a few tenths of a second of every dry run. Its result depends only on the config,
this code and which data folders exist, so it is kept under the cache folder
(``$DGP_CACHE_DIR``, else ``$XDG_CACHE_HOME/dgp-bench/validated``, else
``~/.cache/dgp-bench/validated``) keyed by all three; a config that fails is never kept.
Deleting the folder only costs the next run that time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from dgp.io import write_atomically
from jobs.plan import SCHEMA_PATH

REPO = Path(__file__).resolve().parents[1]
# What validation reads besides the config: the code of every layer it runs, and the schema.
VALIDATION_SOURCES = ("dgp", "attacks", "defenses", "jobs")


def validated_config(config: dict[str, Any]) -> dict[str, Any]:
    """``jobs.config.validate_config(config)``, from the cache when this config, code
    and data folders were validated before; raises ConfigError as validation does."""
    key = _memo_key(config)
    memo = None if key is None else cache_dir() / f"{key}.json"
    if memo is not None and memo.is_file():
        try:
            return json.loads(memo.read_text())
        except (OSError, ValueError):
            pass  # unreadable or half-written by an older version: validate again
    from jobs.config import validate_config  # loads every plugin module: only when needed

    valid = validate_config(config)
    if memo is not None:
        try:
            write_atomically(memo, lambda tmp: tmp.write_text(json.dumps(valid)))
        except OSError:
            pass  # an unwritable cache folder only costs time
    return valid


def cache_dir() -> Path:
    if os.environ.get("DGP_CACHE_DIR"):
        return Path(os.environ["DGP_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dgp-bench" / "validated"


def code_fingerprint() -> str:
    """A hash of every Python file validation can run, and of the schema."""
    digest = hashlib.sha256()
    files = sorted(p for top in VALIDATION_SOURCES for p in (REPO / top).rglob("*.py"))
    for path in [*files, SCHEMA_PATH]:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _data_state(config: dict[str, Any]) -> list[Any]:
    """Each dataset root as validation looks for it (relative to the working directory):
    whether it exists, and when its listing last changed (adding or deleting a data folder
    in it changes that)."""
    state = []
    for entry in config.get("datasets") or []:
        root = str(entry.get("root") or "data") if isinstance(entry, dict) else ""
        found = Path(root).exists() if root else False
        state.append([root, Path(root).stat().st_mtime_ns if found else None])
    return state


def _memo_key(config: dict[str, Any]) -> str | None:
    """The cache key of a config, or None where it is not plain JSON (then not cached)."""
    try:
        text = json.dumps([config, _data_state(config), code_fingerprint()], sort_keys=True)
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(text.encode()).hexdigest()
