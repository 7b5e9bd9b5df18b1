"""The columns of the result CSVs, in order: written by the jobs' aggregation, read by the
report (which imports nothing else of the jobs)."""

from __future__ import annotations

from dataclasses import fields

from dgp.metrics import IMAGE_METRICS
from dgp.protocol import Protocol

# The shares of an attack's budget after which the best reconstruction so far is scored
# (attacks record them, ``Reconstruction.checkpoints``): one ``psnr_at_<percent>`` column each.
ITERATION_FRACTIONS = (0.125, 0.25, 0.5)


def iteration_column(fraction: float) -> str:
    """'psnr_at_12' for the best reconstruction after 1/8 of the attack's budget."""
    return f"psnr_at_{int(100 * fraction)}"


ITERATION_COLUMNS = [iteration_column(f) for f in ITERATION_FRACTIONS]
# The formal guarantees a defense may report (``Defense.accounting``), one column each in
# privacy.csv and utility.csv; a key outside this list is refused (``checked_accounting``),
# never dropped without a word by the CSVs' fixed columns.
ACCOUNTING_COLUMNS = ["dp_epsilon", "dp_delta"]


def checked_accounting(defense: str, values: dict[str, float]) -> dict[str, float]:
    """``values`` (a defense's ``accounting``), refused if it names a column no CSV has."""
    unknown = sorted(set(values) - set(ACCOUNTING_COLUMNS))
    if unknown:
        raise ValueError(f"defense {defense!r} reports accounting key(s) {unknown} that no "
                         "result CSV has a column for: add them to "
                         "dgp.columns.ACCOUNTING_COLUMNS")
    return values
JOB_COLUMNS = ["dataset", "model", "protocol", "batch_size", "defense", "ratio", "attack",
               "model_round", "seed"]
# The threat model of each row: the protocol's fields (dgp.protocol), whether the attack
# inferred the labels or was given them (label_rule: oracle), whether the server only
# watches (honest-but-curious) or changes the model it sends (malicious: an active attack),
# what else the attacker used (``Attack.knowledge``), and whether it ran with parameters
# tuned on public data (``jobs.tune``).
THREAT_COLUMNS = [f.name for f in fields(Protocol)] + ["labels", "server", "knowledge",
                                                       "tuned"]
METRIC_COLUMNS = [*IMAGE_METRICS, "lpips", *(f"{name}_shared" for name in IMAGE_METRICS)]
ROW_COLUMNS = [
    "sample", "role", "user", "batch", "model_draw", "label", "predicted_label", *METRIC_COLUMNS,
    "psnr_tolerant", "floor_psnr", "floor_ssim", "class_floor_psnr", "class_floor_ssim",
    "start_psnr", *ITERATION_COLUMNS, "label_acc", "status", "phase",
    "attack_loss", "attack_iterations", "attack_seconds", "job_seconds",
    "dense_bytes", "model_dense_bytes", "sent_bytes", "sent_values", "index_bytes",
    "index_entropy_bytes", "compression", *ACCOUNTING_COLUMNS,
]
COLUMNS = JOB_COLUMNS + THREAT_COLUMNS + ROW_COLUMNS + ["device", "image", "notes"]
PRIVACY_KEYS = JOB_COLUMNS + ["sample", "role"]
UTILITY_KEYS = ["dataset", "model", "defense", "ratio", "seed", "round"]
# Wall-time columns: they differ between runs, so they go to the timing CSVs.
TIMING_COLUMNS = {"privacy": ["attack_seconds", "job_seconds"], "utility": ["seconds"]}
# One row per evaluation of a training run (the training job's CSV).
UTILITY_COLUMNS = [
    "dataset", "model", "defense", "ratio", "seed", "round", "epoch", "test_acc", "train_loss",
    "dense_bytes", "model_dense_bytes", "upload_bytes", "upload_entropy_bound_bytes",
    "download_bytes", "cumulative_upload_bytes", "cumulative_download_bytes", "residual_norm",
    "error_feedback", "lr", *ACCOUNTING_COLUMNS, "seconds",
]
# One row per (role, batch size, batch, label rule) of a label-recovery job (jobs.labels).
LABEL_KEYS = ["dataset", "model", "defense", "role", "ratio", "seed", "batch_size", "batch",
              "rule"]
LABEL_COLUMNS = [*LABEL_KEYS, "label_acc"]
# One row per tuning job (jobs.tune): the setting and attack, the budget, the public
# PSNR of the configured and of the tuned parameters; then one ``param_<name>`` column per
# tuned parameter (the attacks tune different ones).
TUNING_KEYS = ["dataset", "model", "protocol", "batch_size", "defense", "ratio", "attack"]
TUNING_COLUMNS = [*TUNING_KEYS, "trials", "finished_trials", "pruned_trials", "images",
                  "default_psnr", "tuned_psnr"]
TUNED_PARAM_PREFIX = "param_"
