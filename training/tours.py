"""The two tours side by side: each tour's model against its blended Elo and the margin-free market on the same
Grand Slam rows, with bootstrap intervals; and the choice between one model per tour and one model for both.

The comparison rows of a tour are its test-window matches that settle and have both Pinnacle's and Bet365's
closing prices (``training.evaluation.attach_market_prices``: ``ps_a/ps_b``, ``slam_b365_a/slam_b365_b``): every
forecaster of a tour is scored on exactly those rows. Intervals are 95% percentile bootstraps over matches; a
difference "model minus X" resamples the same matches for both (``training.evaluation.paired_bootstrap``), so a
negative upper bound says the model is better beyond the noise of which matches were played.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from training.evaluation import fair_probability, paired_bootstrap
from training.metrics import log_losses, score

SLAM_PRICES = ("ps_a", "ps_b", "slam_b365_a", "slam_b365_b")
MARKETS = {"market_pinnacle": ("ps_a", "ps_b"), "market_bet365": ("slam_b365_a", "slam_b365_b")}
COLUMNS = (
    "tour",
    "forecaster",
    "n",
    "log_loss",
    "brier",
    "accuracy",
    "calibration_error",
    "log_loss_low",
    "log_loss_high",
    "model_minus",
    "model_minus_low",
    "model_minus_high",
    "seasons",
)
"""The comparison table's columns (also of an empty one)."""
MODEL = "model"
"""The name the tour's registered challenger goes by in the comparison."""


def slam_rows(rows: pd.DataFrame) -> np.ndarray:
    """Mask of ``rows`` with both Pinnacle's and Bet365's two closing prices above 1."""
    prices = rows[list(SLAM_PRICES)]
    return (prices.notna().all(axis=1) & (prices > 1).all(axis=1)).to_numpy()


def _mean_interval(losses: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    boots = losses[rng.integers(0, len(losses), size=(n_boot, len(losses)))].mean(axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return float(lo), float(hi)


def compare_on_slams(
    tour: str, rows: pd.DataFrame, forecasts: Mapping[str, np.ndarray], n_boot: int = 2000, seed: int = 7
) -> pd.DataFrame:
    """One row per forecaster (``forecasts``, which holds ``MODEL``, then the two markets) on the tour's Grand
    Slam rows: n, log-loss with its interval, Brier, accuracy, calibration error, and the model's log-loss minus
    this forecaster's with its paired interval (0 for the model itself)."""
    if MODEL not in forecasts:
        raise ValueError(f"forecasts must include {MODEL!r}: {sorted(forecasts)}")
    sel = slam_rows(rows)
    sub = rows.loc[sel]
    y = sub["a_won"].to_numpy()
    every = {name: np.asarray(p, dtype=float)[sel] for name, p in forecasts.items()}
    for name, (a, b) in MARKETS.items():
        every[name] = fair_probability(sub[a].to_numpy(), sub[b].to_numpy())
    records: list[dict] = []
    for name, p in every.items():
        if not len(y):
            break
        lo, hi = _mean_interval(log_losses(y, p), n_boot, seed)
        diff = paired_bootstrap(y, every[MODEL], p, n_boot, seed) if name != MODEL else None
        records.append(
            {
                "tour": tour,
                "forecaster": name,
                **score(y, p),
                "log_loss_low": lo,
                "log_loss_high": hi,
                "model_minus": diff["mean_diff"] if diff else 0.0,
                "model_minus_low": diff["ci_low"] if diff else 0.0,
                "model_minus_high": diff["ci_high"] if diff else 0.0,
            }
        )
    if not records:  # no priced Grand Slam row in the window (e.g. no WTA Pinnacle prices before 2010)
        return pd.DataFrame(columns=COLUMNS)
    table = pd.DataFrame.from_records(records)
    table["n"] = table["n"].astype(int)
    first, last = sub["season"].min(), sub["season"].max()
    table["seasons"] = f"{first}-{last}" if first != last else str(first)
    return table[list(COLUMNS)]


def comparison_markdown(table: pd.DataFrame) -> str:
    """The README's table: both tours, each forecaster, log-loss with intervals and the model's difference."""
    lines = [
        "| tour | forecaster | matches | log-loss [95% CI] | Brier | accuracy "
        "| model minus forecaster, log-loss [95% CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        diff = (
            "—"
            if r.forecaster == MODEL
            else f"{r.model_minus:+.4f} [{r.model_minus_low:+.4f}, {r.model_minus_high:+.4f}]"
        )
        lines.append(
            f"| {r.tour} {r.seasons} | {r.forecaster} | {r.n} | {r.log_loss:.4f} [{r.log_loss_low:.4f}, "
            f"{r.log_loss_high:.4f}] | {r.brier:.4f} | {r.accuracy:.1%} | {diff} |"
        )
    return "\n".join(lines)


def choice_markdown(per_tour: Mapping[str, float], both: Mapping[str, float], chosen: Mapping[str, str]) -> str:
    """Validation log-loss of each tour's best own-tour model and of the model of both tours, and the choice."""
    lines = [
        "| tour | best model of the tour alone | one model of both tours (tour as a feature) | chosen |",
        "|---|---|---|---|",
    ]
    for tour in per_tour:
        lines.append(f"| {tour} | {per_tour[tour]:.4f} | {both.get(tour, float('nan')):.4f} | {chosen[tour]} |")
    return "\n".join(lines)


def with_tour_feature(*tables: pd.DataFrame) -> pd.DataFrame:
    """Modelling rows of several tours in one table (their ``tour_wta`` column set by the feature builder)."""
    out = pd.concat(tables, ignore_index=True)
    if out["tour_wta"].isna().any():
        raise ValueError("rows without tour_wta: rebuild the pre-match features")
    return out
