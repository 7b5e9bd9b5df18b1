"""Adding a plugin is one file plus one registry line, for every kind. A toy defense,
attack, label rule, dataset, model and metric, each in its own module of a temporary
package with one registry line each, are validated in a config, run by the privacy and
label jobs, aggregated and named in the report. In a fresh process whose first import
registers them: the registries are read when the suite's modules are imported, as they
would be with each line in its registry's own file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import REPO

TOYS = {
    "toy_metric.py": '''
        from dgp.metrics import Metric

        MAE = Metric(lambda a, b: (a - b).abs().flatten(1).mean(1), "MAE", ".4f")
        ''',
    "toy_rule.py": '''
        from dgp.labels import LabelRule
        from dgp.lazy import torch

        ALWAYS_ZERO = LabelRule(lambda x: torch.zeros(x.batch_size, dtype=torch.long))
        ''',
    "toy_dataset.py": '''
        from dgp.data import DATASETS, DatasetKind

        def load(spec, split, image_size):
            data = DATASETS["digits"].load(spec, split, image_size)
            images, labels = data.dataset.tensors
            data.dataset.tensors = (1 - images, labels)  # the digits, inverted
            return data

        INVERTED_DIGITS = DatasetKind(load, lambda spec: None)
        ''',
    "toy_model.py": '''
        from dgp.models import ModelKind

        def build(channels, classes, size):
            from torch import nn

            return nn.Sequential(nn.Flatten(), nn.Linear(channels * size * size, classes))

        LINEAR = ModelKind(build, batchnorm=False)
        ''',
    "toy_defense.py": '''
        from dgp.defense import Defense
        from dgp.types import dense

        class Halving(Defense):
            """Sends half of every entry."""

            name = "toy_defense"
            family = "noise"
            ratio_meaning = "unused (0)"
            example_ratio = 0.0

            def apply(self, gradients, generator=None, batch=None):
                return dense([0.5 * g for g in gradients])
        ''',
    "toy_attack.py": '''
        from dgp.attack import Attack, Reconstruction, label_rule
        from dgp.lazy import torch

        class ClassMean(Attack):
            """Answers with the public mean image of each recovered label."""

            name = "toy_attack"
            parameters = {"label_rule": label_rule("toy_rule")}

            def reconstruct(self, target, generator=None):
                labels = self.recovered_labels(target, list(target.shared.tensors))
                means = target.public.normalize(target.public.denormalize(
                    target.public.class_means)[labels])
                return Reconstruction(means, labels, "ok", 0.0, 0)
        ''',
}
# One line per registry; the metric and the label rule first, before the modules that read
# their registries when imported (the CSV columns; the attacks' label_rule choices).
REGISTRY_LINES = '''
    from dgp.labels import LABEL_RULES
    from dgp.metrics import IMAGE_METRICS
    from toys import toy_metric, toy_rule
    IMAGE_METRICS["mae"] = toy_metric.MAE
    LABEL_RULES["toy_rule"] = toy_rule.ALWAYS_ZERO
    from attacks import ATTACKS
    from defenses import DEFENSES
    from dgp.data import DATASETS
    from dgp.models import MODELS
    from toys import toy_attack, toy_dataset, toy_defense, toy_model
    DATASETS["toy_dataset"] = toy_dataset.INVERTED_DIGITS
    MODELS["toy_model"] = toy_model.LINEAR
    DEFENSES["toy_defense"] = toy_defense.Halving
    ATTACKS["toy_attack"] = toy_attack.ClassMean
    '''
RUN = '''
    import json, sys
    from pathlib import Path
    import toys
    from jobs import aggregate, labels, privacy
    from jobs.config import validate_config
    from report import render

    out = Path(sys.argv[1])
    dataset = {"name": "toy_dataset", "model": "toy_model", "image_size": 8}
    validate_config({
        "datasets": [dataset], "defenses": [{"name": "toy_defense"}],
        "attacks": [{"name": "toy_attack"}, {"name": "ig", "params": {"label_rule": "toy_rule"}}],
        "privacy": {"num_images": 1}, "labels": {"batch_sizes": [1], "batches": 4},
        "training": {"enabled": False}})
    setting = ["--dataset", json.dumps(dataset), "--defense", "toy_defense", "--ratio", "0"]
    privacy.main([*setting, "--attack", "toy_attack", "--num-images", "2",
                  "--out-json", str(out / "p.json"), "--out-png", str(out / "p.png")])
    labels.main([*setting, "--batch-sizes", "1", "--batches", "4", "--out", str(out / "l.csv")])
    aggregate.main(["privacy", "--out", str(out / "privacy.csv"), "--timings",
                    str(out / "timings.csv"), str(out / "p.json")])
    render.main(["--privacy", str(out / "privacy.csv"), "--labels", str(out / "l.csv"),
                 "--out", str(out / "report.html")])
    '''


def test_a_toy_plugin_of_each_kind_is_validated_run_and_reported(tmp_path: Path) -> None:
    package = tmp_path / "toys"
    package.mkdir()
    for name, source in TOYS.items():
        (package / name).write_text(textwrap.dedent(source))
    (package / "__init__.py").write_text(textwrap.dedent(REGISTRY_LINES))
    (tmp_path / "run.py").write_text(textwrap.dedent(RUN))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    done = subprocess.run([sys.executable, str(tmp_path / "run.py"), str(tmp_path)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "p.json").read_text())
    assert (record["job"]["dataset"], record["job"]["model"]) == ("toy_dataset", "toy_model")
    rows = record["rows"]
    assert [row["predicted_label"] for row in rows] == [0, 0]  # the toy rule's labels
    assert all("mae" in row and "mae_shared" in row for row in rows)  # the toy metric
    header = (tmp_path / "privacy.csv").read_text().splitlines()[0].split(",")
    assert {"mae", "mae_shared"} <= set(header)
    assert "toy_rule" in (tmp_path / "l.csv").read_text()
    report = (tmp_path / "report.html").read_text()
    for name in ("toy_dataset", "toy_defense", "toy_attack", "MAE", "toy_rule"):
        assert name in report, name
