"""Render the results into one self-contained HTML report (figures and images inlined).

Usage::

    python -m report.render --privacy results/privacy.csv --utility results/utility.csv \
        --benchmarks results/benchmarks --config '{"...": ...}' --out results/report.html
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import mimetypes
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from defenses import DEFENSES
from dgp.io import write_text
from dgp.metrics import IMAGE_METRICS
from report.claims import CLAIMS_PATH, evaluate_claims, load_claims
from report.labels import label_sections
from report.plots import (
    accuracy_vs_ratio,
    accuracy_vs_upload,
    attack_vs_round,
    privacy_utility_plane,
    psnr_vs_budget,
    psnr_vs_ratio,
    strongest_by,
    utility_figure,
)
from report.privacy_table import load_privacy
from report.run_time import run_time_summary
from report.stats import (
    CLEARS,
    EXACT_PSNR_DB,
    MIN_SAMPLES,
    REBUILT_SSIM,
    RISING_DB,
    SUCCESS_MARGIN_DB,
    format_mean_ci,
    format_run_mean_ci,
    mean_ci,
    reconstructs_exactly,
    run_table,
    second_half_gain,
    verdict_text,
    within_seed_correlation,
)
from report.strongest import (
    SELECTION,
    STRONGEST_NAMES,
    attack_label,
    strongest_only,
    with_strongest,
)
from report.threat import DEFAULT, describe
from report.tuning import tuning_rows
from report.upload_budget import least_leaking_by_upload
from report.verdicts import count_text, interval_text, verdict_table

TEMPLATES = Path(__file__).parent / "templates"
# The registry's image metrics (and LPIPS) as table columns: key -> header.
METRIC_HEADERS = {**{name: m.label for name, m in IMAGE_METRICS.items()}, "lpips": "LPIPS"}
GROUP = ["attack", "defense", "ratio", "model_round"]
# Metric -> format of its mean and CI half-width.
METRICS = {**{name: m.fmt for name, m in IMAGE_METRICS.items()}, "lpips": ".3f",
           "psnr_shared": ".2f", "psnr_tolerant": ".2f", "floor_psnr": ".2f"}
PACKAGES = ["torch", "torchvision", "torchmetrics", "snakemake", "pandas", "seaborn"]


def _mean(values: pd.Series, spec: str) -> str:
    mean, _, n = mean_ci(values)
    return "n/a" if n == 0 else format(mean, spec)


def summarize(data: pd.DataFrame) -> list[dict[str, str]]:
    """Table rows for one dataset: one per (attack, defense, ratio, round, labels), as
    display strings; intervals over runs, n counts runs."""
    rows = []
    for (attack, defense, ratio, model_round), group in data.groupby(GROUP, sort=True,
                                                                      dropna=False):
        row = {"attack": attack_label(group), "defense": str(defense),
               "ratio": f"{ratio:g}", "round": str(model_round)}
        for metric, spec in METRICS.items():
            row[metric] = format_run_mean_ci(group, metric, spec)
        row["floor_verdict"] = verdict_text(group)
        if row["floor_verdict"].startswith(CLEARS) and reconstructs_exactly(group):
            row["floor_verdict"] += f"; rebuilt exactly (median PSNR >= {EXACT_PSNR_DB:g} dB)"
        gain = second_half_gain(group)
        row["gain"] = "n/a" if math.isnan(gain) else (
            f"{gain:+.2f}" + (" still rising" if gain > RISING_DB else ""))
        row["label_acc"] = _mean(group["label_acc"], ".2f")
        row["n"] = str(len(run_table(group)))
        row["diverged"] = str(int((group["status"] == "diverged").sum()))
        row["sent_bytes"] = _mean(group["sent_bytes"], ",.0f")
        row["compression"] = _mean(group["compression"], ".2f")
        row["attack_seconds"] = _mean(group["attack_seconds"], ".1f")
        rows.append(row)
    return rows


def embed_image(path: str | Path) -> str | None:
    """Base64 data URI of an image file, or None when it is missing or unreadable."""
    path = Path(path)
    try:
        payload = path.read_bytes()
    except OSError:
        return None
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def gallery(data: pd.DataFrame,
            ratios: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """One reconstruction per attack × defense: smallest seed at the defense's ratio in
    ``ratios`` (the config's report.gallery_ratios), else at its strongest ratio.

    The strongest ratio is where a defense should hurt the attack most; ``none`` is shown at
    ratio 0 as the undefended reference.
    """
    ratios = ratios or {}
    items = []
    groups = data.groupby(["attack", "defense"], sort=True)
    # Within an attack, the undefended baseline comes first.
    for (attack, defense), group in sorted(groups, key=lambda g: (g[0][0], g[0][1] != "none")):
        ran = group["ratio"]
        configured = ran[np.isclose(ran, ratios.get(defense, np.nan))]
        if len(configured):
            ratio = configured.iloc[0]
        else:
            ratio = 0.0 if defense == "none" and (ran == 0).any() else ran.max()
        at_ratio = group[group["ratio"] == ratio]
        seed = at_ratio["seed"].min()
        job = at_ratio[at_ratio["seed"] == seed]
        psnr = _mean(job["psnr"], ".2f")
        image = str(job["image"].dropna().iloc[0]) if job["image"].notna().any() else ""
        items.append({
            "caption": f"{defense}, {ratio:g}, {attack}: mean PSNR {psnr} dB (seed {seed})",
            "path": image,
            "src": embed_image(image) if image else None,
        })
    return items


def distinct_notes(data: pd.DataFrame) -> list[str]:
    """Each note once, in first-seen order (jobs repeat theirs on every row)."""
    seen: dict[str, None] = {}
    for joined in data["notes"].dropna():
        for note in str(joined).split(" | "):
            if note.strip():
                seen.setdefault(note.strip(), None)
    return list(seen)


def git_commit() -> str:
    """Commit of the working directory, or ``unknown`` outside git (never fails the report)."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() or "unknown"


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape the results (read without importing)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def run_metadata(config: Any, data: pd.DataFrame) -> dict[str, Any]:
    """Everything needed to tell which run, code and environment produced the report."""
    return {
        "config": json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False),
        "commit": git_commit(),
        "packages": package_versions(),
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "devices": sorted(str(d) for d in data["device"].dropna().unique()),
    }


def upload_to_target(runs: pd.DataFrame, target: float) -> float:
    """Mean over runs of the per-user upload spent until test accuracy first reached target.

    NaN when a run never reached it (shown as "not reached").
    """
    spent = []
    for _, run in runs.sort_values("round").groupby("seed"):
        reached = run[run["test_acc"] >= target]
        spent.append(reached["cumulative_upload_bytes"].iloc[0] if len(reached) else math.nan)
    return float(np.mean(spent))


def summarize_utility(utility: pd.DataFrame) -> tuple[list[dict[str, str]], float]:
    """One row per (defense, ratio): final accuracy over seeds, bytes, residual; and the
    accuracy target used for "upload to target" (90 % of no defense's final accuracy)."""
    last = utility.sort_values("round").groupby(["defense", "ratio", "seed"]).tail(1)
    undefended = last.loc[last["defense"] == "none", "test_acc"]
    target = 0.9 * undefended.mean() if len(undefended) else math.nan
    rows = []
    for (defense, ratio), group in last.groupby(["defense", "ratio"], sort=True):
        runs = utility[(utility["defense"] == defense) & (utility["ratio"] == ratio)]
        to_target = upload_to_target(runs, target) if not math.isnan(target) else math.nan
        rows.append({
            "defense": str(defense), "ratio": f"{ratio:g}",
            "test_acc": format_mean_ci(group["test_acc"], ".3f"),
            "rounds": str(int(group["round"].max())),
            "upload": _mean(group["upload_bytes"], ",.0f"),
            "download": _mean(group["download_bytes"], ",.0f"),
            "cumulative_upload": _mean(group["cumulative_upload_bytes"], ",.0f"),
            "to_target": "not reached" if math.isnan(to_target) else f"{to_target:,.0f}",
            "residual": _mean(group["residual_norm"], ".3g"),
            "n": str(len(group)),
        })
    return rows, target


def defense_legend(names) -> list[dict[str, str]]:
    """Each defense of the run with its family and what its ratio means (the registry's)."""
    return [{"name": name, "family": DEFENSES[name].family,
             "ratio_meaning": DEFENSES[name].ratio_meaning}
            for name in sorted(map(str, names)) if name in DEFENSES]


def _utility_section(first_round: pd.DataFrame,
                     trained: pd.DataFrame | None) -> dict[str, Any] | None:
    if trained is None:
        return None
    summary, target = summarize_utility(trained)
    return {"summary": summary, "target": target, "curves": utility_figure(trained),
            "accuracy": accuracy_vs_ratio(trained),
            "plane": privacy_utility_plane(first_round, trained),
            "upload": accuracy_vs_upload(trained)}


def _share_text(row: pd.Series, name: str) -> str:
    count = count_text(row, name)
    if count == "n/a":
        return count
    return f"{count} [{row[f'{name}_low']:.2f}, {row[f'{name}_high']:.2f}]"


def threat_heading(server: str, labels: str) -> str:
    """E.g. 'honest-but-curious server, labels inferred'."""
    return f"{server} server, labels {labels}"


def verdict_groups(verdicts: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``verdicts.csv`` for one section as display strings, one table per threat
    model (server capability and label knowledge)."""
    groups = []
    for (server, labels), part in verdicts.groupby(["server", "labels"], sort=True):
        rows = [{
            "defense": str(row["defense"]), "ratio": f"{row['ratio']:g}",
            "round": str(int(row["model_round"])), "attack": str(row["strongest_attack"]),
            "psnr": interval_text(row, "psnr", ".2f"),
            "ssim": interval_text(row, "ssim", ".3f"),
            "floors": f"{row['floor_psnr']:.2f} / {row['class_floor_psnr']:.2f}",
            "ssim_floors": f"{row['floor_ssim']:.3f} / {row['class_floor_ssim']:.3f}",
            "margin": interval_text(row, "margin_psnr", "+.2f"),
            "success": _share_text(row, "success"), "rebuilt": _share_text(row, "rebuilt"),
            "verdict": str(row["verdict"]), "tried": str(row["attacks_tried"]),
            "n": f"{int(row['n_runs'])} {row['unit']}"
            if row["unit"] != "runs" else str(int(row["n_runs"])),
            "upper_bound": "" if pd.isna(row["upper_bound_psnr"])
            else f"{row['upper_bound_psnr']:.2f} ({row['upper_bound_attack']})",
        } for _, row in part.iterrows()]
        groups.append({"threat": threat_heading(str(server), str(labels)), "rows": rows})
    return groups


def _section(part: pd.DataFrame, verdicts: pd.DataFrame, trained: pd.DataFrame | None,
             show_utility: bool, config: Any, batch_figure: str | None) -> dict[str, Any]:
    """One (dataset, protocol, batch size) section of the report; ``trained`` is the
    dataset's training table (its figures drawn in one section only, ``show_utility``);
    ``batch_figure`` the protocol's verdicts across batch sizes, in its first section."""
    name, protocol, batch_size = (part[k].iloc[0] for k in ("dataset", "protocol", "batch_size"))
    first_round = part[part["model_round"] == part["model_round"].min()]
    mine = verdicts[(verdicts["dataset"] == name) & (verdicts["protocol"] == protocol)
                    & (verdicts["batch_size"] == batch_size)]
    title = str(name) if protocol == DEFAULT.id else f"{name}, {protocol}"
    return {
        "name": title + (f", batch {int(batch_size)}" if batch_size != 1 else ""),
        "threat": describe(part),
        "budget": least_leaking_by_upload(strongest_only(part), trained),
        "summary": summarize(part),
        "verdicts": verdict_groups(mine),
        "figure": psnr_vs_ratio(first_round),
        "ssim_figure": psnr_vs_ratio(first_round, metric="ssim"),
        "budget_figure": psnr_vs_budget(strongest_only(first_round)),
        "rounds_figure": (attack_vs_round(part) if part["model_round"].nunique() > 1
                          else None),
        "strongest_rounds_figure": (
            strongest_by(part, "model_round", "training round of the attacked model")
            if part["model_round"].nunique() > 1 else None),
        "batch_figure": batch_figure,
        "gallery": gallery(first_round[~first_round["attack"].isin(STRONGEST_NAMES)],
                           config.get("report", {}).get("gallery_ratios")),
        "utility": _utility_section(first_round, trained) if show_utility else None,
    }


def _batch_figures(data: pd.DataFrame) -> dict[tuple, str]:
    """Per (dataset, protocol) attacked at several batch sizes: the strongest attack's PSNR
    against the batch size (first round), keyed by its smallest batch's section."""
    figures = {}
    for (name, protocol), part in data.groupby(["dataset", "protocol"], sort=True):
        if part["batch_size"].nunique() > 1:
            first_round = part[part["model_round"] == part["model_round"].min()]
            figures[name, protocol, part["batch_size"].min()] = strongest_by(
                first_round, "batch_size", "images per user's batch")
    return figures


def render_report(data: pd.DataFrame, config: Any, utility: pd.DataFrame | None = None,
                  benchmarks: str | Path | None = None,
                  claims_path: str | Path = CLAIMS_PATH,
                  labels: pd.DataFrame | None = None,
                  verdicts: pd.DataFrame | None = None,
                  tuning: pd.DataFrame | None = None) -> str:
    """The report as an HTML string; every config and data value goes through autoescaping.

    ``benchmarks`` is the folder of Snakemake benchmark files (compute per rule);
    ``claims_path`` the paper's claims to check; ``labels`` the label-recovery table;
    ``verdicts`` the verdict table (``report.verdicts``; computed from ``data`` if None);
    ``tuning`` the table of attacks tuned on public data (None: no attack was tuned).
    """
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"], default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    if verdicts is None:
        verdicts = verdict_table(data)
    seed_icc, seed_icc_settings = within_seed_correlation(run_table(data))
    data = with_strongest(data)
    datasets, utility_shown = [], set()
    batch_figures = _batch_figures(data)
    for key, part in data.groupby(["dataset", "protocol", "batch_size"], sort=True):
        name = key[0]
        trained = None if utility is None else utility[utility["dataset"] == name]
        if trained is not None and trained.empty:
            trained = None
        # Every section ranks with the trained utility; its figures are drawn once (training
        # does not depend on the attacked protocol).
        datasets.append(_section(part, verdicts, trained, name not in utility_shown, config,
                                 batch_figures.get(key)))
        utility_shown.add(name)
    claims = evaluate_claims(load_claims(claims_path), data, utility)
    compute = run_time_summary(benchmarks) if benchmarks else None
    html = env.get_template("report.html.j2").render(
        meta=run_metadata(config, data), datasets=datasets, notes=distinct_notes(data),
        n_rows=len(data), claims=claims, compute=compute, labels=label_sections(labels),
        tuning=tuning_rows(tuning),
        defense_legend=defense_legend(data["defense"].unique()), metric_headers=METRIC_HEADERS,
        selection=SELECTION, min_samples=MIN_SAMPLES, success_margin=SUCCESS_MARGIN_DB,
        rebuilt_ssim=REBUILT_SSIM, seed_icc=seed_icc, seed_icc_settings=seed_icc_settings,
    )
    # Pure ASCII (non-ASCII as character references) reads the same whatever encoding the
    # file is written or mailed with.
    return html.encode("ascii", "xmlcharrefreplace").decode("ascii")


def main(argv: list[str] | None = None) -> None:
    """Command line entry point: read the CSV, render, and write the report atomically."""
    parser = argparse.ArgumentParser(
        prog="python -m report.render",
        description="Render the privacy results CSV into a self-contained HTML report.",
    )
    parser.add_argument("--privacy", required=True, help="per-image results CSV (privacy.csv)")
    parser.add_argument("--timings", help="the privacy jobs' wall times (privacy_timings.csv)")
    parser.add_argument("--utility", help="per-evaluation training CSV (utility.csv)")
    parser.add_argument("--labels", help="label-recovery CSV (labels.csv)")
    parser.add_argument("--verdicts", help="verdict CSV (verdicts.csv, from report.verdicts)")
    parser.add_argument("--tuning", help="attacks tuned on public data (tuning.csv)")
    parser.add_argument("--config", default="{}", help="run configuration as a JSON string")
    parser.add_argument("--benchmarks", help="folder of Snakemake benchmark files")
    parser.add_argument("--claims", default=str(CLAIMS_PATH), help="claims to check (YAML)")
    parser.add_argument("--out", required=True, help="HTML file to write")
    args = parser.parse_args(argv)
    try:
        config = json.loads(args.config)
    except json.JSONDecodeError as error:
        parser.error(f"--config is not valid JSON: {error}")
    data = load_privacy(args.privacy, args.timings)
    utility = pd.read_csv(args.utility) if args.utility else None
    labels = pd.read_csv(args.labels) if args.labels else None
    verdicts = pd.read_csv(args.verdicts) if args.verdicts else None
    tuning = pd.read_csv(args.tuning) if args.tuning else None
    write_text(args.out, render_report(data, config, utility, args.benchmarks, args.claims,
                                       labels, verdicts, tuning))
    print(f"report of {len(data)} rows -> {args.out}")


if __name__ == "__main__":
    main()
