"""The plan layer: the job grid and the memoised validation, read without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dgp.jobs.config import validate_config
from dgp.jobs.plan import ConfigError, validated_config

REPO = Path(__file__).resolve().parents[1]
SMOKE = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())

VALIDATE_IN_A_FRESH_PROCESS = """
import json, sys, yaml
from dgp.jobs.plan import validated_config
valid = validated_config(yaml.safe_load(open(sys.argv[1])))
print(json.dumps({"torch": "torch" in sys.modules, "config": valid}))
"""


def _validate_in_a_fresh_process(configfile: Path, cache: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", VALIDATE_IN_A_FRESH_PROCESS, str(configfile)],
                          capture_output=True, text=True, check=True, cwd=REPO,
                          env={**os.environ, "DGP_CACHE_DIR": str(cache)})
    return json.loads(done.stdout)


def test_a_repeated_validation_imports_no_torch_and_returns_the_same_config(tmp_path):
    configfile = REPO / "config" / "config.yaml"
    first = _validate_in_a_fresh_process(configfile, tmp_path)
    again = _validate_in_a_fresh_process(configfile, tmp_path)
    assert first["torch"] and not again["torch"]
    expected = validate_config(yaml.safe_load(configfile.read_text()))
    assert first["config"] == again["config"] == json.loads(json.dumps(expected))


def test_a_bad_config_is_refused_every_time_and_never_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("DGP_CACHE_DIR", str(tmp_path))
    bad = {**SMOKE, "attacks": [{"name": "ig", "params": {"iterations": -5}}]}
    for _ in range(2):
        with pytest.raises(ConfigError, match="iterations"):
            validated_config(bad)
    assert list(tmp_path.iterdir()) == []


def test_a_deleted_data_folder_is_noticed_after_a_memoised_validation(tmp_path, monkeypatch):
    monkeypatch.setenv("DGP_CACHE_DIR", str(tmp_path / "cache"))
    images = tmp_path / "images"
    (images / "train" / "cat").mkdir(parents=True)
    config = {**SMOKE, "datasets": [{"name": "imagefolder", "model": "lenet",
                                     "root": str(images), "image_size": 16}]}
    assert validated_config(config)["datasets"][0]["root"] == str(images)
    for path in sorted(images.rglob("*"), reverse=True):
        path.rmdir()
    images.rmdir()
    with pytest.raises(ConfigError, match="does not exist"):
        validated_config(config)


def test_changed_code_is_validated_again(tmp_path, monkeypatch):
    monkeypatch.setenv("DGP_CACHE_DIR", str(tmp_path))
    validated_config(SMOKE)
    monkeypatch.setattr("dgp.jobs.plan.code_fingerprint", lambda: "other code")

    def validate_again(config):
        raise RuntimeError("validated again")

    monkeypatch.setattr("dgp.jobs.config.validate_config", validate_again)
    with pytest.raises(RuntimeError, match="validated again"):
        validated_config(SMOKE)
