"""Jobs end without the interpreter's teardown, and lose nothing by it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from conftest import REPO

# A workflow job's stdout goes to a log file, block-buffered unless PYTHONUNBUFFERED is set.
BUFFERED = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


def _python(code: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, text=True, env=BUFFERED,
                          **kwargs)


def test_a_finished_job_keeps_its_output_and_skips_the_teardown(tmp_path):
    log = tmp_path / "job.log"
    code = ("import atexit\nfrom jobs.quick_exit import run_and_exit\n"
            "atexit.register(lambda: print('teardown ran'))\n"
            "run_and_exit(lambda: print('done', end=''))\n")
    with log.open("w") as out:
        done = _python(code, stdout=out, stderr=subprocess.STDOUT)
    assert done.returncode == 0
    assert log.read_text() == "done"


def test_a_failing_job_still_fails_with_its_traceback():
    code = "from jobs.quick_exit import run_and_exit\nrun_and_exit(lambda: 1 / 0)\n"
    done = _python(code, capture_output=True)
    assert done.returncode == 1
    assert "ZeroDivisionError" in done.stderr


def test_a_privacy_job_process_writes_its_outputs_and_log(tmp_path):
    out_json, out_png, log = tmp_path / "job.json", tmp_path / "job.png", tmp_path / "job.log"
    command = [sys.executable, "-m", "jobs.privacy", "--dataset",
               '{"name": "digits", "model": "lenet", "image_size": 16}', "--defense", "none",
               "--ratio", "0", "--attack", "ig", "--attack-params", '{"iterations": 1}',
               "--num-images", "2", "--out-json", str(out_json), "--out-png", str(out_png)]
    began = time.perf_counter()
    with log.open("w") as out:
        subprocess.run(command, cwd=REPO, env=BUFFERED, stdout=out, stderr=subprocess.STDOUT,
                       check=True)
    wall = time.perf_counter() - began
    record = json.loads(out_json.read_text())
    assert len(record["rows"]) == 2
    # the job's own work: its attacks and more, but not the process's start-up
    attacks = sum(row["attack_seconds"] for row in record["rows"])
    assert attacks < record["job"]["job_seconds"] < wall
    assert out_png.read_bytes().startswith(b"\x89PNG")
    assert log.read_text().count("sample ") == 2
