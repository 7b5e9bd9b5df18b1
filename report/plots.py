"""Figures for the report, returned as base64 PNG strings so the HTML stays one mailable file.

Figures are drawn on an explicit Agg canvas (no pyplot), so no GUI backend is needed and no
figure stays registered anywhere; each one is also cleared once encoded.
"""

from __future__ import annotations

import base64
import io
import math

import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from defenses import DEFENSES, FAMILIES
from dgp.columns import ITERATION_FRACTIONS, iteration_column
from report.stats import run_table
from report.strongest import STRONGEST

# What ``ratio`` means differs per family (the defenses' ``family``), so each family gets its
# own row of panels, labelled by the registry's axis name.
FAMILY_LABELS: dict[str, str] = {name: label for name, label in FAMILIES.items() if name != "none"}
# Families whose ratios span decades get a log axis.
LOG_FAMILIES = frozenset({"noise", "model"})


def headline_first(attacks) -> list[str]:
    """Attack names in panel order: the per-setting strongest attack first (the verdict),
    then each attack alphabetically."""
    return sorted(map(str, attacks), key=lambda a: (a != STRONGEST, a))


def base_defense(defense: str) -> str:
    """The registered name behind a displayed setting ('adgp (member)' -> 'adgp':
    ``Defense.setting_name``)."""
    return defense.split(" (")[0]


def defense_family(defense: str) -> str:
    """Family of a registered defense (its ``family``, one of ``defenses.FAMILIES``)."""
    return DEFENSES[base_defense(defense)].family


def setting_labels(data: pd.DataFrame) -> pd.Series:
    """'defense ratio' per row: the hue of figures that mix defenses and ratios."""
    return data["defense"] + " " + data["ratio"].map(lambda r: f"{r:g}")


def figure_to_base64(fig: Figure, dpi: int = 100) -> str:
    """Encode ``fig`` as a base64 PNG (for a data URI) and free its artists."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        fig.clear()
    return base64.b64encode(buffer.getvalue()).decode("ascii")


METRIC_LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "test_acc": "final test accuracy"}


# The guessing floor of a metric: the public mean image scored like a reconstruction.
FLOOR_COLUMNS = {"psnr": "floor_psnr", "ssim": "floor_ssim"}


def _level_line(ax, level: float, label: str, style: str, colour) -> None:
    """A horizontal reference line, kept visibly inside the autoscaled axis."""
    ax.axhline(level, color=colour, linestyle=style, linewidth=1.2, label=label)
    low, high = ax.get_ylim()
    pad = 0.05 * (max(high, level) - min(low, level) or 1.0)
    ax.set_ylim(min(low, level - pad), max(high, level + pad))


def psnr_vs_ratio(data: pd.DataFrame, metric: str = "psnr") -> str:
    """A privacy metric against ratio for one dataset: a panel per attack and defense
    family (what ratio means differs per family), three panels to a row.

    ``none`` has no ratio axis, so it is drawn as a dashed line at its mean in every panel
    of its attack: the undefended baseline every defense should push down. The dotted red
    line is the guessing floor (the public mean image): a point on or below it shows no
    leakage, and says nothing about whether the defense or the attack is the reason.
    """
    data = data.dropna(subset=[metric]).copy()
    data["family"] = data["defense"].map(defense_family)
    attacks = headline_first(data["attack"].unique()) or ["(no data)"]
    families = [f for f in FAMILY_LABELS if (data["family"] == f).any()] or ["pruning"]
    defenses = sorted(d for d in data["defense"].unique() if d != "none")
    palette = dict(zip(defenses, sns.color_palette("colorblind", n_colors=max(1, len(defenses))),
                       strict=False))

    panels = [(attack, family) for attack in attacks for family in families]
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig = Figure(figsize=(4.4 * columns, 3.4 * rows), layout="constrained")
    grid = fig.subplots(rows, columns, squeeze=False).flatten()
    for ax in grid[len(panels):]:
        ax.set_visible(False)
    for ax, (attack, family) in zip(grid, panels, strict=False):
        of_attack = data[data["attack"] == attack]
        panel = of_attack[of_attack["family"] == family]
        if not panel.empty:
            sns.lineplot(
                data=panel, x="ratio", y=metric, hue="defense", palette=palette,
                errorbar=("ci", 95), err_style="bars", marker="o", seed=0, ax=ax,
            )
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        baseline = of_attack.loc[of_attack["defense"] == "none", metric]
        if not baseline.empty:
            _level_line(ax, baseline.mean(), "none (mean)", "--", "0.3")
        floor = FLOOR_COLUMNS.get(metric)
        if floor in of_attack and of_attack[floor].notna().any():
            _level_line(ax, of_attack[floor].mean(), "floor: mean image", ":", "tab:red")
        # Noise multipliers and KL weights span decades: a log axis keeps them apart.
        if family in LOG_FAMILIES and not panel.empty and (panel["ratio"] > 0).all():
            ax.set_xscale("log")
        ax.set_title(f"{attack} · {family}")
        ax.set_xlabel(FAMILY_LABELS[family])
        ax.set_ylabel(METRIC_LABELS[metric])
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    return figure_to_base64(fig)


def utility_figure(utility: pd.DataFrame) -> str:
    """Test accuracy over epochs and error-feedback residual norm over rounds, per setting.

    The residual panel answers whether what a compressing defense holds back stays bounded.
    """
    data = utility.copy()
    data["setting"] = setting_labels(data)
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    accuracy, residual = fig.subplots(1, 2)
    sns.lineplot(data=data, x="epoch", y="test_acc", hue="setting", errorbar=("ci", 95),
                 seed=0, ax=accuracy)
    accuracy.set_title("test accuracy (mean over seeds, 95% CI)")
    with_feedback = data[data["error_feedback"].astype(bool)]
    if with_feedback.empty:
        residual.text(0.5, 0.5, "no error-feedback runs", ha="center", va="center",
                      transform=residual.transAxes)
    else:
        sns.lineplot(data=with_feedback, x="round", y="residual_norm", hue="setting",
                     errorbar=("ci", 95), seed=0, ax=residual)
    residual.set_title("error-feedback residual norm (mean over users)")
    for ax in (accuracy, residual):
        ax.grid(True, alpha=0.3)
        if ax.get_legend() is not None:
            ax.legend(fontsize="x-small")
    return figure_to_base64(fig)


def final_rows(utility: pd.DataFrame) -> pd.DataFrame:
    """The last evaluation of every training run."""
    return utility.sort_values("round").groupby(["defense", "ratio", "seed"]).tail(1)


def accuracy_vs_ratio(utility: pd.DataFrame) -> str:
    """Final test accuracy against ratio, a panel per defense family, ``none`` dashed."""
    last = final_rows(utility).copy()
    last["attack"] = "training"
    return psnr_vs_ratio(last, metric="test_acc")


def pareto_front(points: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Points no other point beats on both axes (higher ``x`` and lower ``y`` are better)."""
    ordered = points.sort_values([x, y], ascending=[False, True])
    front, best = [], float("inf")
    for index, row in ordered.iterrows():
        if row[y] < best:
            front.append(index)
            best = row[y]
    return points.loc[front].sort_values(x)


def privacy_utility_plane(privacy: pd.DataFrame, utility: pd.DataFrame) -> str:
    """Per attack: mean PSNR against final test accuracy per defense setting, marker size =
    upload bytes per round, the Pareto front (more accuracy, less leakage) drawn as a line."""
    accuracy = final_rows(utility).groupby(["defense", "ratio"]).agg(
        test_acc=("test_acc", "mean"), upload_bytes=("upload_bytes", "mean"))
    attacks = headline_first(privacy["attack"].unique()) or ["(no data)"]
    fig = Figure(figsize=(5.2 * len(attacks), 4.2), layout="constrained")
    axes = fig.subplots(1, len(attacks), squeeze=False)[0]
    for ax, attack in zip(axes, attacks, strict=True):
        leakage = privacy[privacy["attack"] == attack].groupby(["defense", "ratio"])["psnr"].mean()
        points = accuracy.join(leakage, how="inner").reset_index().dropna(subset=["psnr"])
        if points.empty:
            ax.text(0.5, 0.5, "no trained and attacked settings", ha="center", va="center",
                    transform=ax.transAxes)
        else:
            sns.scatterplot(data=points, x="test_acc", y="psnr", hue="defense",
                            size="upload_bytes", sizes=(30, 300), ax=ax, alpha=0.8)
            front = pareto_front(points, "test_acc", "psnr")
            ax.plot(front["test_acc"], front["psnr"], color="0.2", linewidth=1.2,
                    linestyle="-", label="Pareto front", zorder=0)
            for _, row in points.iterrows():
                ax.annotate(f"{row['ratio']:g}", (row["test_acc"], row["psnr"]),
                            fontsize="x-small", xytext=(3, 3), textcoords="offset points")
        ax.set_title(f"{attack}: privacy vs. utility")
        ax.set_xlabel("final test accuracy (higher is better)")
        ax.set_ylabel("mean PSNR, dB (lower is better)")
        ax.grid(True, alpha=0.3)
        if ax.get_legend() is not None:
            ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return figure_to_base64(fig)


def accuracy_vs_upload(utility: pd.DataFrame) -> str:
    """Test accuracy against cumulative upload bytes per user: what each byte buys."""
    data = utility.copy()
    data["setting"] = setting_labels(data)
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    sns.lineplot(data=data, x="cumulative_upload_bytes", y="test_acc", hue="setting",
                 errorbar=("ci", 95), seed=0, ax=ax)
    if (data["cumulative_upload_bytes"] > 0).all():
        ax.set_xscale("log")
    ax.set_xlabel("cumulative upload per user (bytes)")
    ax.set_ylabel("test accuracy")
    ax.set_title("accuracy vs. communication")
    ax.grid(True, alpha=0.3)
    if ax.get_legend() is not None:
        ax.legend(fontsize="x-small")
    return figure_to_base64(fig)


def attack_vs_round(privacy: pd.DataFrame) -> str:
    """Mean PSNR against the training round of the attacked model, per attack and defense."""
    data = privacy.dropna(subset=["psnr"]).copy()
    data["setting"] = setting_labels(data)
    attacks = headline_first(data["attack"].unique()) or ["(no data)"]
    fig = Figure(figsize=(4.6 * len(attacks), 3.6), layout="constrained")
    axes = fig.subplots(1, len(attacks), squeeze=False)[0]
    for ax, attack in zip(axes, attacks, strict=True):
        _setting_lines(ax, data[data["attack"] == attack], "model_round", "psnr",
                       f"{attack}: attack strength over training",
                       "training round of the attacked model", "PSNR (dB)")
    return figure_to_base64(fig)


def strongest_by(privacy: pd.DataFrame, column: str, xlabel: str) -> str:
    """The strongest attack's mean PSNR per defense setting against ``column`` (batch
    size or training round), one panel per setting, with the higher of the two floors
    (dashed); means and 95% CIs over attack runs (each run's images averaged first)."""
    runs = run_table(privacy[privacy["attack"] == STRONGEST])
    runs["floor"] = runs["psnr"] - runs["margin_psnr"]
    runs["setting"] = setting_labels(runs)
    settings = sorted(runs["setting"].unique()) or ["(no data)"]
    columns = min(4, len(settings))
    rows = math.ceil(len(settings) / columns)
    fig = Figure(figsize=(3.4 * columns, 2.8 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, setting in zip(axes, settings, strict=False):
        part = runs[runs["setting"] == setting]
        for y, label, style in (("psnr", "strongest attack", "-"), ("floor", "floor", "--")):
            sns.lineplot(data=part, x=column, y=y, marker="o", linestyle=style,
                         errorbar=("ci", 95), seed=0, ax=ax, label=label)
        ax.set_title(setting, fontsize="small")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("PSNR (dB)")
        ax.set_xticks(sorted(part[column].unique()))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="x-small")
    for ax in axes[len(settings):]:
        ax.set_visible(False)
    return figure_to_base64(fig)


def _setting_lines(ax, data: pd.DataFrame, x: str, y: str, title: str, xlabel: str,
                   ylabel: str) -> None:
    """One line per defense setting (mean and 95% CI), titled and labelled."""
    sns.lineplot(data=data, x=x, y=y, hue="setting", marker="o", errorbar=("ci", 95),
                 seed=0, ax=ax)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if ax.get_legend() is not None:
        ax.legend(fontsize="x-small")


# PSNR of the best reconstruction so far, by share of the attack's budget (1 = psnr).
PSNR_BY_ITERATION_SHARE = {**{f: iteration_column(f) for f in ITERATION_FRACTIONS}, 1.0: "psnr"}


def psnr_vs_budget(strongest: pd.DataFrame) -> str | None:
    """The strongest attack's PSNR after 1/8, 1/4, 1/2 and all of its budget, per defense
    setting, a panel per defense family: a curve still rising at the full budget means the
    defense delays the attack rather than stopping it. None when no attack iterates."""
    columns = [c for c in PSNR_BY_ITERATION_SHARE.values() if c in strongest]
    if not strongest[[c for c in columns if c != "psnr"]].notna().any().any():
        return None
    long = strongest.assign(setting=setting_labels(strongest),
                            family=strongest["defense"].map(defense_family)).melt(
        id_vars=["setting", "family"], value_vars=columns, var_name="column",
        value_name="psnr_so_far").dropna(subset=["psnr_so_far"])
    fractions = {c: f for f, c in PSNR_BY_ITERATION_SHARE.items()}
    long["budget"] = long["column"].map(fractions)
    families = [f for f in ["none", *FAMILY_LABELS] if (long["family"] == f).any()]
    fig = Figure(figsize=(4.4 * len(families), 3.4), layout="constrained")
    axes = fig.subplots(1, len(families), squeeze=False)[0]
    for ax, family in zip(axes, families, strict=True):
        _setting_lines(ax, long[long["family"] == family], "budget", "psnr_so_far",
                       f"strongest attack · {family}", "share of the attack's budget",
                       "PSNR so far (dB)")
        ax.set_xscale("log", base=2)
    return figure_to_base64(fig)
