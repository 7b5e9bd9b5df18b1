"""The paper's claims (``report/claims.yaml``) checked on the results, with bootstrap CIs.

Each claim is evaluated per dataset, and a claim at "equal ratio" once per ratio (pooling
0.5, 0.8 and 0.95 into one mean would hide where it holds). Its statistic is a mean of
paired differences (or of shares); the 95% interval is a percentile bootstrap with a fixed
generator, so the report is reproducible. The unit resampled is the paired attack run (same
seed, case and model round on both sides, each run's images averaged first: they are not
independent samples), and runs that share a model draw (a trained checkpoint) are resampled
together. Both sides are judged under one threat model: an honest-but-curious server with
the labels inferred, unless a side names ``server`` or ``labels``. A claim is "reproduced"
when the interval lies on the claimed side of its threshold, "not reproduced" otherwise (the
evidence shows whether the interval straddles it), "not run" when the results hold no
matching rows, and "too few samples" below ``MIN_SAMPLES`` paired runs (accuracy claims:
training seeds). A privacy
comparison whose two sides are both no better than guessing (neither attack beats the
public mean image) is "not informative": it compares attack failures; so is one whose two
sides both rebuild the images exactly (median PSNR at least ``EXACT_PSNR_DB``): it compares
how far the optimiser converged, not privacy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from report.stats import (
    EXACT_PSNR_DB,
    MIN_SAMPLES,
    NO_BETTER,
    RISING_DB,
    floor_verdict,
    reconstructs_exactly,
    run_table,
    second_half_gain,
)
from report.strongest import with_strongest
from report.threat import DEFAULT

CLAIMS_PATH = Path(__file__).parent / "claims.yaml"
BOOTSTRAP_SAMPLES = 2000
KINDS = ("privacy_lower", "accuracy_gap", "upload_share")


@dataclass(frozen=True)
class Verdict:
    """One claim on one dataset."""

    id: str
    claim: str
    dataset: str
    status: str  # reproduced | not reproduced | not run | not informative | too few samples
    estimate: float
    low: float
    high: float
    evidence: str


def load_claims(path: str | Path = CLAIMS_PATH) -> list[dict[str, Any]]:
    """The claim list, checked for the keys each kind needs."""
    claims = yaml.safe_load(Path(path).read_text()) or []
    needs = {"privacy_lower": ("a", "b", "metric", "margin"),
             "accuracy_gap": ("defense", "ratio", "reference", "max_gap"),
             "upload_share": ("defense", "ratio", "max_share")}
    for claim in claims:
        kind = claim.get("kind")
        if kind not in KINDS:
            raise ValueError(f"{path}: claim {claim.get('id')!r} has unknown kind {kind!r}; "
                             f"choose one of {', '.join(KINDS)}")
        missing = [key for key in ("id", "claim", *needs[kind]) if key not in claim]
        if missing:
            raise ValueError(f"{path}: claim {claim.get('id')!r} lacks {', '.join(missing)}")
    return claims


def bootstrap_mean(values: np.ndarray, clusters: np.ndarray,
                   samples: int = BOOTSTRAP_SAMPLES) -> tuple[float, float, float]:
    """Mean of ``values`` and its 95% percentile-bootstrap interval, resampling whole
    ``clusters`` (the independent units)."""
    values = np.asarray(values, dtype=float)
    clusters = np.asarray(clusters)
    rng = np.random.default_rng(0)
    labels = np.unique(clusters)
    groups = [values[clusters == label] for label in labels]
    sums = np.array([g.sum() for g in groups])
    counts = np.array([len(g) for g in groups])
    picks = rng.integers(0, len(groups), size=(samples, len(groups)))
    means = sums[picks].sum(1) / counts[picks].sum(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(values.mean()), float(low), float(high)


def too_few(count: int, unit: str) -> str | None:
    if count < MIN_SAMPLES:
        return f"too few samples: {count} {unit} (an interval needs at least {MIN_SAMPLES})"
    return None


def per_ratio(claims: list[dict[str, Any]], privacy: pd.DataFrame) -> list[dict[str, Any]]:
    """Equal-ratio privacy claims split into one claim per ratio both sides ran."""
    split = []
    for claim in claims:
        if claim["kind"] != "privacy_lower" or not claim.get("equal_ratio"):
            split.append(claim)
            continue
        ratios = [set(np.round(_select(privacy, claim[side])["ratio"], 12)) for side in "ab"]
        both = sorted(ratios[0] & ratios[1])
        if not both:  # nothing to pair: evaluated as it stands (and reported not run)
            split.append(claim)
        split += [{**claim, "id": f"{claim['id']}@{ratio:g}",
                   "claim": f"{claim['claim']} (ratio {ratio:g})",
                   "a": {**claim["a"], "ratio": ratio}, "b": {**claim["b"], "ratio": ratio},
                   "equal_ratio": False} for ratio in both]
    return split


def _select(data: pd.DataFrame, setting: dict[str, Any]) -> pd.DataFrame:
    """One side's rows, under its threat model (default: honest-but-curious, inferred)."""
    rows = data[(data["defense"] == setting["defense"]) & (data["attack"] == setting["attack"])
                & (data["server"] == setting.get("server", "honest-but-curious"))
                & (data["labels"] == setting.get("labels", "inferred"))]
    if "ratio" in setting:
        rows = rows[np.isclose(rows["ratio"], float(setting["ratio"]))]
    return rows


def _privacy_lower(claim: dict[str, Any], privacy: pd.DataFrame) -> tuple | str | None:
    metric = claim["metric"]
    keys = ["model_round", "seed", "batch"] + (["ratio"] if claim.get("equal_ratio") else [])
    a = run_table(_select(privacy, claim["a"]), (metric,))
    b = run_table(_select(privacy, claim["b"]), (metric,))
    pairs = a[keys + [metric, "model_draw"] + ([] if "ratio" in keys else ["ratio"])].merge(
        b[keys + [metric]], on=keys, suffixes=("_a", "_b")).dropna(
        subset=[f"{metric}_a", f"{metric}_b"])
    if pairs.empty:
        return None
    # Runs of one model draw (a trained checkpoint's seed) are one unit.
    units = pairs["model_draw"].astype(str) + " " + pairs["model_round"].astype(str)
    if short := too_few(units.nunique(), "paired runs"):
        return short
    diffs = (pairs[f"{metric}_a"] - pairs[f"{metric}_b"]).to_numpy()
    estimate, low, high = bootstrap_mean(diffs, units.to_numpy())
    ratios = ", ".join(f"{r:g}" for r in sorted(pairs["ratio"].unique()))
    shared = "" if units.nunique() == len(pairs) else f" in {units.nunique()} model draws"
    evidence = (f"mean {metric} difference (a - b) {estimate:+.2f} "
                f"[{low:+.2f}, {high:+.2f}], n = {len(pairs)} paired runs{shared} "
                f"(resampled); ratio(s) {ratios}; claimed: < {claim['margin']:g}")
    return estimate, low, high, high < claim["margin"], evidence


def _both_at_floor(claim: dict[str, Any], privacy: pd.DataFrame) -> bool:
    """Whether neither side of a privacy comparison beats the guessing floor."""
    return all(floor_verdict(_select(privacy, claim[side])) == NO_BETTER for side in "ab")


def _both_exact(claim: dict[str, Any], privacy: pd.DataFrame) -> bool:
    """Whether both sides' attacks rebuild the images exactly."""
    return all(reconstructs_exactly(_select(privacy, claim[side])) for side in "ab")


def _still_rising(claim: dict[str, Any], privacy: pd.DataFrame) -> str:
    """A warning when side ``a``'s attack still gains at the end of its budget."""
    gain = second_half_gain(_select(privacy, claim["a"]))
    if math.isnan(gain) or gain <= RISING_DB:
        return ""
    return (f"; a's attack still gains {gain:+.1f} dB over its budget's second half: the "
            "defense may only delay it")


def _final_accuracy(utility: pd.DataFrame, defense: str, ratio: float | None) -> pd.Series:
    runs = utility[utility["defense"] == defense]
    if ratio is not None:
        runs = runs[np.isclose(runs["ratio"], ratio)]
    return runs.sort_values("round").groupby("seed")["test_acc"].last()


def _accuracy_gap(claim: dict[str, Any], utility: pd.DataFrame | None) -> tuple | None:
    if utility is None or utility.empty:
        return None
    reference = _final_accuracy(utility, claim["reference"], None)
    defended = _final_accuracy(utility, claim["defense"], float(claim["ratio"]))
    paired = pd.concat([reference, defended], axis=1, keys=["ref", "def"]).dropna()
    if paired.empty:
        return None
    if short := too_few(len(paired), "training seeds"):  # a seed's run is the unit here
        return short
    gaps = (paired["ref"] - paired["def"]).to_numpy()
    estimate, low, high = bootstrap_mean(gaps, np.arange(len(gaps)))
    evidence = (f"final accuracy {claim['reference']} - {claim['defense']} "
                f"{estimate:+.3f} [{low:+.3f}, {high:+.3f}], n = {len(paired)} training "
                f"seeds (resampled); claimed: <= {claim['max_gap']:g}")
    return estimate, low, high, high <= claim["max_gap"], evidence


def _upload_share(claim: dict[str, Any], privacy: pd.DataFrame,
                  utility: pd.DataFrame | None) -> tuple | None:
    ratio = float(claim["ratio"])
    source = "training"
    rows = pd.DataFrame()
    if utility is not None and "dense_bytes" in utility:
        rows = utility[(utility["defense"] == claim["defense"])
                       & np.isclose(utility["ratio"], ratio)]
        shares = rows["upload_bytes"] / rows["dense_bytes"]
    if rows.empty:
        source = "privacy jobs"
        rows = privacy[(privacy["defense"] == claim["defense"])
                       & np.isclose(privacy["ratio"], ratio)]
        shares = rows["sent_bytes"] / rows["dense_bytes"]
    if rows.empty:
        return None
    # Byte counts are exact, so one seed is evidence enough (its interval is a point).
    per_seed = shares.groupby(rows["seed"]).mean()
    estimate, low, high = bootstrap_mean(per_seed.to_numpy(), per_seed.index.to_numpy())
    evidence = (f"upload / dense {estimate:.3f} [{low:.3f}, {high:.3f}] from {source}, "
                f"{len(per_seed)} seed(s); claimed: <= {claim['max_share']:g}")
    return estimate, low, high, high <= claim["max_share"], evidence


def _sections(privacy: pd.DataFrame, utility: pd.DataFrame | None,
              ) -> dict[tuple[str, str, int, int], tuple[str, int, int]]:
    """Each (dataset, protocol, batch size, attacked round) of the results, mapped to the
    section where its dataset's utility claims are judged: the default protocol (FedSGD,
    one user) if it ran, else the first, at its smallest batch size and round; a dataset
    with training rows only gets the default at batch size 1, round 0. Privacy claims are
    judged in each section: never pooled over batch sizes or rounds."""
    keys = ["dataset", "protocol", "batch_size", "model_round"]
    sections = {(str(d), str(p), int(b), int(r)) for d, p, b, r in
                privacy[keys].dropna().to_numpy().tolist()}
    if utility is not None:
        seen = {section[0] for section in sections}
        sections |= {(str(d), DEFAULT.id, 1, 0) for d in utility["dataset"].unique()
                     if str(d) not in seen}
    first = {}
    for section in sorted(sections, key=lambda s: (s[0], s[1] != DEFAULT.id, *s[1:])):
        first.setdefault(section[0], section[1:])
    return {section: first[section[0]] for section in sorted(sections)}


def evaluate_claims(claims: list[dict[str, Any]], privacy: pd.DataFrame,
                    utility: pd.DataFrame | None) -> list[Verdict]:
    """Every claim on every dataset of the results (``strongest``: each setting's
    strongest attack of the run, see report/strongest.py)."""
    privacy = with_strongest(privacy)
    claims = per_ratio(claims, privacy)
    sections = _sections(privacy, utility)
    verdicts = []
    for section, utility_section in sections.items():
        dataset, protocol, batch, model_round = section
        p = privacy[(privacy["dataset"] == dataset) & (privacy["protocol"] == protocol)
                    & (privacy["batch_size"] == batch) & (privacy["model_round"] == model_round)]
        u = utility[utility["dataset"] == dataset] if utility is not None else None
        where = (dataset if protocol == DEFAULT.id else f"{dataset}, {protocol}") + (
            f", batch {batch}" if batch != 1 else "") + (
            f", round {model_round}" if model_round else "")
        for claim in claims:
            if claim["kind"] == "accuracy_gap" and section[1:] != utility_section:
                continue  # utility does not depend on the attacked protocol: judged once
            if claim["kind"] == "privacy_lower":
                result = _privacy_lower(claim, p)
            elif claim["kind"] == "accuracy_gap":
                result = _accuracy_gap(claim, u)
            else:
                result = _upload_share(claim, p, u)
            if result is None or isinstance(result, str):
                status = "too few samples" if result else "not run"
                verdicts.append(Verdict(claim["id"], claim["claim"], where, status,
                                        math.nan, math.nan, math.nan,
                                        result or "the results hold no rows for this "
                                        "comparison"))
                continue
            estimate, low, high, holds, evidence = result
            status = "reproduced" if holds else "not reproduced"
            if claim["kind"] == "privacy_lower" and _both_at_floor(claim, p):
                status = "not informative"
                evidence += "; both sides are no better than guessing (the public mean image)"
            elif claim["kind"] == "privacy_lower" and _both_exact(claim, p):
                status = "not informative"
                evidence += (f"; both sides rebuild the images exactly (median PSNR >= "
                             f"{EXACT_PSNR_DB:g} dB): neither protects")
            if claim["kind"] == "privacy_lower":
                evidence += _still_rising(claim, p)
            verdicts.append(Verdict(claim["id"], claim["claim"], where, status,
                                    estimate, low, high, evidence))
    return verdicts
