"""The in-play models on the test seasons, scored once on every point by stage: before the first point, over
the points in each quarter of the match (0-25, 25-50, 50-75, 75-100% of its points played) and over the points of
each set; the table, its markdown and plot, and the scores added to each model's MLflow run. Bins, not the single
states at 25/50/75%: a rule judged on one point a match flips on noise (``beats_at_every_stage``).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from training.metrics import score  # noqa: E402
from training.prematch import CandidateResult  # noqa: E402

STAGE_BINS = ((0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))
"""Stages of a match by the share of its points played before the state (the first point's state is its own
stage, "0%")."""


def stage_masks(rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """Rows of each stage: before the first point, the points of each quarter of the match, of each set, and every
    point. Works on a sample of a match's points too (each row knows its share)."""
    point, n = rows["point"].to_numpy(), rows["n_points"].to_numpy()
    share = point / np.maximum(n, 1)
    masks = {"0%": point == 0}
    for lo, hi in STAGE_BINS:
        masks[f"{int(lo * 100)}-{int(hi * 100)}%"] = (point > 0) & (share > lo if lo else True) & (share <= hi)
    set_number = rows["set_number"].to_numpy().astype(int)
    for s in range(1, int(set_number.max()) + 1 if len(rows) else 1):
        masks[f"set {s}"] = set_number == s
    masks["all points"] = np.ones(len(rows), dtype=bool)
    return masks


def stage_table(rows: pd.DataFrame, forecasts: dict[str, np.ndarray]) -> pd.DataFrame:
    """Log-loss, Brier and accuracy of each forecaster at each stage (tidy: stage, model, n, scores)."""
    y = rows["a_won"].to_numpy()
    records = []
    for stage, mask in stage_masks(rows).items():
        if not mask.any():
            continue
        for name, p in forecasts.items():
            s = score(y[mask], np.asarray(p)[mask])
            records.append(
                {
                    "stage": stage,
                    "model": name,
                    "n": int(mask.sum()),
                    "matches": int(rows.loc[mask, "match_id"].nunique()),
                    "log_loss": s["log_loss"],
                    "brier": s["brier"],
                    "accuracy": s["accuracy"],
                }
            )
    return pd.DataFrame.from_records(records)


def stage_markdown(table: pd.DataFrame) -> str:
    """The stage table as markdown: one row per stage, log-loss / Brier / accuracy of each model."""
    models = list(dict.fromkeys(table["model"]))
    head = "| stage | points | " + " | ".join(f"{m} log-loss / Brier / acc." for m in models) + " |"
    lines = [head, "|---|---|" + "---|" * len(models)]
    for stage, sub in table.groupby("stage", sort=False):
        by = sub.set_index("model")
        cells = [
            f"{by.loc[m, 'log_loss']:.4f} / {by.loc[m, 'brier']:.4f} / {by.loc[m, 'accuracy']:.1%}" for m in models
        ]
        lines.append(f"| {stage} | {int(sub['n'].iloc[0]):,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def beats_at_every_stage(table: pd.DataFrame, model: str, reference: str = "markov") -> dict[str, bool]:
    """For each stage after the first point (the quarters of the match and the sets): whether ``model``'s log-loss
    is below ``reference``'s."""
    pivot = table.pivot(index="stage", columns="model", values="log_loss")
    return {
        stage: bool(pivot.loc[stage, model] < pivot.loc[stage, reference])
        for stage in dict.fromkeys(table["stage"])
        if stage != "0%"
    }


def stage_plot(table: pd.DataFrame, metric: str = "log_loss", title: str = "") -> Figure:
    """``metric`` of each model by share of points played (left) and by set (right)."""
    pivot = table.pivot(index="stage", columns="model", values=metric)
    order = list(dict.fromkeys(table["stage"]))
    panels = [[s for s in order if s.endswith("%")], [s for s in order if not s.endswith("%")]]
    fig, axes = plt.subplots(
        1,
        2,
        figsize=(10, 4),
        dpi=100,
        sharey=True,
        gridspec_kw={"width_ratios": [len(panels[0]), max(1, len(panels[1]))]},
    )
    for ax, stages, label in zip(
        axes, panels, ("share of the match's points played", "points of each set"), strict=True
    ):
        x = np.arange(len(stages))
        for name in pivot.columns:
            ax.plot(x, pivot.loc[stages, name].to_numpy(), marker="o", label=name)
        ax.set_xticks(x, stages)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(metric)
    axes[0].legend(fontsize=8)
    fig.suptitle(title or f"In-play {metric} by stage (test matches)")
    fig.tight_layout()
    return fig


def log_test_evaluation(results: list[CandidateResult], table: pd.DataFrame, artifacts: list[str]) -> None:
    """Add the test scores by stage and the plots (``artifacts``: file paths) to each model's run."""
    markdown = stage_markdown(table)
    for r in results:
        mine = table[table["model"] == r.name]
        metrics = {}
        for t in mine.itertuples():
            key = t.stage.replace("%", "pct").replace(" ", "_")
            metrics.update(
                {f"test_{key}_log_loss": t.log_loss, f"test_{key}_brier": t.brier, f"test_{key}_accuracy": t.accuracy}
            )
        with mlflow.start_run(run_id=r.run_id):
            mlflow.log_metrics(metrics)
            mlflow.log_text(markdown, "test_by_stage.md")
            mlflow.log_table(table, "test_by_stage.json")
            for path in artifacts:
                mlflow.log_artifact(path)


def beats_in_every_bin(rows: pd.DataFrame, p_model: np.ndarray, p_reference: np.ndarray) -> dict[str, dict]:
    """``beats_at_every_stage`` on any rows (the validation points of the champion rule): per stage after the first
    point, both log-losses and whether the model's is lower."""
    table = stage_table(rows, {"model": p_model, "reference": p_reference})
    pivot = table.pivot(index="stage", columns="model", values="log_loss")
    beats = beats_at_every_stage(table, "model", "reference")
    return {
        stage: {
            "model": round(float(pivot.loc[stage, "model"]), 5),
            "reference": round(float(pivot.loc[stage, "reference"]), 5),
            "beats": won,
        }
        for stage, won in beats.items()
        if stage != "all points"
    }


CONSTANT_CHAIN = "markov"


def choose_inplay_challenger(
    candidates: list[CandidateResult], validation: pd.DataFrame, predict: Callable[[Any, pd.DataFrame], np.ndarray]
) -> tuple[CandidateResult, dict[str, dict]]:
    """The in-play challenger: of the candidates that beat the constant-serve chain on the validation points in
    every stage bin (``beats_in_every_bin``) — the chain itself always qualifies — the one with the lowest
    validation log-loss. Returns it and every candidate's bins."""
    by_name = {r.name: r for r in candidates}
    reference = predict(by_name[CONSTANT_CHAIN].model, validation) if CONSTANT_CHAIN in by_name else None
    bins: dict[str, dict] = {}
    eligible = []
    for r in candidates:
        if r.name == CONSTANT_CHAIN or reference is None:
            eligible.append(r)
            continue
        bins[r.name] = beats_in_every_bin(validation, predict(r.model, validation), reference)
        if all(b["beats"] for b in bins[r.name].values()):
            eligible.append(r)
    return min(eligible, key=lambda r: r.validation_scores["log_loss"]), bins
