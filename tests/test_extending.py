"""The README's "Adding ..." example is real code: a defense written as the README shows,
registered with one line, is validated in a config and attacked in a privacy job."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

import defenses
from jobs.config import validate_config
from jobs.privacy import run

REPO = Path(__file__).resolve().parents[1]


def _readme_defense() -> type:
    readme = (REPO / "README.md").read_text()
    code = re.search(r"```python\n# defenses/signsgd.py\n(.*?)```", readme, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    return namespace["SignSGD"]


def test_the_readme_defense_is_validated_and_attacked(monkeypatch: pytest.MonkeyPatch) -> None:
    defense = _readme_defense()
    monkeypatch.setitem(defenses.DEFENSES, defense.name, defense)
    config = copy.deepcopy(yaml.safe_load((REPO / "config" / "smoke.yaml").read_text()))
    config["defenses"] = [{"name": "signsgd", "ratios": [0]}]
    config["privacy"]["protocols"] = [{"algorithm": "fedsgd"}]
    config["attacks"] = [a for a in config["attacks"] if a["name"] != "multi_round"]
    validate_config(config)
    record, _ = run({"name": "digits", "model": "lenet", "image_size": 16}, "signsgd", 0, {},
                    "ig", {"iterations": 2}, seed=0, num_images=1, batch_size=1)
    (row,) = record["rows"]
    assert record["job"]["defense"] == "signsgd"
    assert row["compression"] == pytest.approx(32, rel=0.01)  # one bit per entry


def test_every_registered_plugin_and_column_is_documented() -> None:
    """The docs read from the registries' point of view: a name added to a registry (or a
    column to the CSVs) without its line in the docs fails here."""
    from attacks import ATTACKS
    from dgp.columns import COLUMNS, TUNING_COLUMNS
    from report.verdicts import VERDICT_COLUMNS

    docs = REPO / "docs"
    attacks, defense_docs = (docs / "attacks.md").read_text(), (docs / "defenses.md").read_text()
    documented = {name.strip().strip("`")
                  for line in (docs / "outputs.md").read_text().splitlines()
                  if line.startswith("| ") for name in line.split("|")[1].split(",")}
    assert [name for name in ATTACKS if f"`{name}`" not in attacks] == []
    assert [name for name in defenses.DEFENSES if f"`{name}`" not in defense_docs] == []
    assert [c for c in [*COLUMNS, *VERDICT_COLUMNS, *TUNING_COLUMNS]
            if c not in documented] == []
