"""Figures for the report, returned as base64 PNG strings so the HTML stays one mailable file.

Figures are drawn on an explicit Agg canvas (no pyplot), so no GUI backend is needed and no
figure stays registered anywhere; each one is also cleared once encoded.
"""

from __future__ import annotations

import base64
import io

import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from defenses import DEFENSES

# What ``ratio`` means differs per family (the defenses' ``family``), so each family gets its
# own row of panels.
FAMILY_LABELS: dict[str, str] = {
    "pruning": "fraction of gradient entries not sent",
    "noise": "noise multiplier",
    "quantization": "bits per entry",
    "representation": "fraction of representation features pruned",
    "model": "KL weight beta",
    "data": "ats: share of images transformed; mixup, instahide: k images mixed",
    "other": "defense ratio",
}
# Families whose ratios span decades get a log axis.
LOG_FAMILIES = frozenset({"noise", "model"})


def defense_family(defense: str) -> str:
    """Family of a registered defense (its ``family``); unknown names are 'other'."""
    cls = DEFENSES.get(defense)
    family = cls.family if cls is not None else "other"
    return family if family in FAMILY_LABELS or family == "none" else "other"


def figure_to_base64(fig: Figure, dpi: int = 100) -> str:
    """Encode ``fig`` as a base64 PNG (for a data URI) and free its artists."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        fig.clear()
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def psnr_vs_ratio(data: pd.DataFrame) -> str:
    """PSNR against ratio for one dataset: a column per attack, a row per defense family.

    ``none`` has no ratio axis, so it is drawn as a dashed line at its mean PSNR in every panel
    of its attack: the undefended baseline every defense should push down.
    """
    data = data.dropna(subset=["psnr"]).copy()
    data["family"] = data["defense"].map(defense_family)
    attacks = sorted(data["attack"].unique()) or ["(no data)"]
    families = [f for f in FAMILY_LABELS if (data["family"] == f).any()] or ["pruning"]
    defenses = sorted(d for d in data["defense"].unique() if d != "none")
    palette = dict(zip(defenses, sns.color_palette("colorblind", n_colors=max(1, len(defenses))),
                       strict=False))

    fig = Figure(figsize=(4.4 * len(attacks), 3.4 * len(families)), layout="constrained")
    axes = fig.subplots(len(families), len(attacks), squeeze=False)
    for row, family in enumerate(families):
        for col, attack in enumerate(attacks):
            ax = axes[row][col]
            of_attack = data[data["attack"] == attack]
            panel = of_attack[of_attack["family"] == family]
            if not panel.empty:
                sns.lineplot(
                    data=panel, x="ratio", y="psnr", hue="defense", palette=palette,
                    errorbar=("ci", 95), err_style="bars", marker="o", seed=0, ax=ax,
                )
            else:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
            baseline = of_attack.loc[of_attack["defense"] == "none", "psnr"]
            if not baseline.empty:
                level = baseline.mean()
                ax.axhline(level, color="0.3", linestyle="--", linewidth=1.2, label="none (mean)")
                # axhline may sit on (or past) the autoscaled edge; keep it visibly inside.
                low, high = ax.get_ylim()
                pad = 0.05 * (max(high, level) - min(low, level) or 1.0)
                ax.set_ylim(min(low, level - pad), max(high, level + pad))
            # Noise multipliers and KL weights span decades: a log axis keeps them apart.
            if family in LOG_FAMILIES and not panel.empty and (panel["ratio"] > 0).all():
                ax.set_xscale("log")
            ax.set_title(f"{attack} · {family}")
            ax.set_xlabel(FAMILY_LABELS[family])
            ax.set_ylabel("PSNR (dB)")
            ax.grid(True, alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize="small")
    return figure_to_base64(fig)


def utility_figure(utility: pd.DataFrame) -> str:
    """Test accuracy over epochs and error-feedback residual norm over rounds, per setting.

    The residual panel answers whether what a compressing defense holds back stays bounded.
    """
    data = utility.copy()
    data["setting"] = data["defense"] + " " + data["ratio"].map(lambda r: f"{r:g}")
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
