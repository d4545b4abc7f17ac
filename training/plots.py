"""Pictures of model quality: reliability diagrams, feature importance, scores by tier."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from training.metrics import calibration_table  # noqa: E402


def reliability_diagram(forecasts: dict[str, np.ndarray], y: np.ndarray, title: str) -> Figure:
    """Observed win frequency against forecast probability, one line per forecaster."""
    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    for name, p in forecasts.items():
        t = calibration_table(y, p)
        ax.plot(t["mean_forecast"], t["observed"], marker="o", markersize=3, label=name)
    ax.set_xlabel("forecast P(player A wins)")
    ax.set_ylabel("observed frequency")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def feature_importance(names: list[str], values: np.ndarray, title: str, top: int = 20) -> Figure:
    """Horizontal bars of the largest importances."""
    order = np.argsort(values)[::-1][:top][::-1]
    fig, ax = plt.subplots(figsize=(6, 0.28 * len(order) + 1), dpi=100)
    ax.barh([names[i] for i in order], values[order], color="#3b6ea8")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def scores_by_tier(table: pd.DataFrame, metric: str, title: str) -> Figure:
    """Grouped bars of ``metric`` per tier (rows) and forecaster (columns of the pivot)."""
    pivot = table.pivot(index="tier", columns="forecaster", values=metric)
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    pivot.plot.bar(ax=ax, rot=0, width=0.8)
    lo = np.nanmin(pivot.to_numpy())
    ax.set_ylim(max(0.0, lo - 0.05), np.nanmax(pivot.to_numpy()) + 0.02)
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    return fig


def metric_by_group(table: pd.DataFrame, metric: str, title: str, group_label: str) -> Figure:
    """One line per forecaster of ``metric`` against ``group`` (e.g. season, or stage of a match)."""
    pivot = table.pivot(index="group", columns="forecaster", values=metric)
    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=100)
    for name in pivot.columns:
        ax.plot(pivot.index.astype(str), pivot[name], marker="o", markersize=3, label=name)
    ax.set_xlabel(group_label)
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes (and the figure closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown that shows a PNG inline (data URI), for UIs that render markdown."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def bankroll_curve(times: pd.Series, bankroll: pd.Series, start: float, title: str) -> Figure:
    """Bankroll after each settled market (a step line from the starting bankroll)."""
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    x = np.arange(len(bankroll) + 1)
    y = np.r_[start, bankroll.to_numpy(dtype=float)]
    ax.step(x, y, where="post", color="#3b6ea8")
    ax.axhline(start, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("markets settled")
    ax.set_ylabel("bankroll")
    if len(times):
        ax.set_title(f"{title} (last settled {pd.Timestamp(times.iloc[-1]):%Y-%m-%d %H:%M} UTC)")
    else:
        ax.set_title(f"{title} (nothing settled yet)")
    fig.tight_layout()
    return fig
