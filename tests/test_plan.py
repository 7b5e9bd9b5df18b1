"""The plan layer: the job grid and the memoised validation; validation imports no torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from jobs.config import validate_config
from jobs.plan import ConfigError
from jobs.validated import validated_config

SMOKE = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())

VALIDATE_IN_A_FRESH_PROCESS = """
import json, sys, traceback, yaml

class TorchSpy:  # records our code's lines on the stack when torch really is imported
    loaded_by = []
    def find_spec(self, name, path=None, target=None):
        if name == "torch._C":  # dgp.lazy registers torch unloaded: this is the real load
            stack = traceback.extract_stack()
            TorchSpy.loaded_by = [f"{f.filename}:{f.lineno}" for f in stack
                                  if sys.argv[2] in f.filename and "-packages" not in f.filename]
        return None

sys.meta_path.insert(0, TorchSpy())
from jobs.validated import validated_config
valid = validated_config(yaml.safe_load(open(sys.argv[1])))
print(json.dumps({"torch": "torch._C" in sys.modules, "torch_loaded_by": TorchSpy.loaded_by,
                  "validated": "jobs.config" in sys.modules, "config": valid}))
"""


def _validate_in_a_fresh_process(configfile: Path, cache: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", VALIDATE_IN_A_FRESH_PROCESS, str(configfile),
                           str(REPO)],
                          capture_output=True, text=True, check=True, cwd=REPO,
                          env={**os.environ, "DGP_CACHE_DIR": str(cache)})
    return json.loads(done.stdout)


@pytest.mark.parametrize("name", ["config.yaml", "smoke.yaml", "paper.yaml"])
def test_validation_imports_no_torch_and_a_repeated_one_reads_the_memo(name, tmp_path):
    configfile = REPO / "config" / name
    first = _validate_in_a_fresh_process(configfile, tmp_path)
    again = _validate_in_a_fresh_process(configfile, tmp_path)
    # every plugin is built, torch is not loaded: a module validation loads reaches torch
    # through dgp.lazy only (a module-level `import torch` would load it: named here)
    assert not first["torch"], f"validation imported torch: {first['torch_loaded_by']}"
    assert not again["torch"]
    assert first["validated"] and not again["validated"]
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
    (images / "test" / "cat").mkdir(parents=True)
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
    monkeypatch.setattr("jobs.validated.code_fingerprint", lambda: "other code")

    def validate_again(config):
        raise RuntimeError("validated again")

    monkeypatch.setattr("jobs.config.validate_config", validate_again)
    with pytest.raises(RuntimeError, match="validated again"):
        validated_config(SMOKE)
