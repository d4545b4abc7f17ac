"""Test-window evaluation: every forecaster against the bookmakers, on exactly the same rows.

Bookmaker prices become probabilities with the margin removed proportionally
(p_A = (1/o_A) / (1/o_A + 1/o_B)). Two comparisons are made:

- ``tour_bet365``: every test-window tour-level match that has Bet365 closing prices;
- ``slams_pinnacle``: the Grand Slam matches that also have Pinnacle closing prices.

Rows are the ones a bet would settle on (``features.matches.settles_with_winner``): completed
matches, and retirements after at least one full set with the player who advanced as the winner.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from betting import value
from training.metrics import log_losses, score

SERIES_TIER = {
    "Grand Slam": "Grand Slam",
    "Masters 1000": "Masters 1000",
    "ATP500": "ATP 500",
    "ATP250": "ATP 250",
    "Masters Cup": "Tour Finals",
}
LEVEL_TIER = {"G": "Grand Slam", "M": "Masters 1000", "A": "ATP 250/500", "F": "Tour Finals", "D": "Davis Cup"}


def fair_probability(price_a: np.ndarray, price_b: np.ndarray) -> np.ndarray:
    """P(A wins) implied by two decimal prices with the bookmaker's margin removed (as an array)."""
    return value.fair_probability(np.asarray(price_a, dtype=float), np.asarray(price_b, dtype=float))


def _orient(rows: pd.DataFrame, odds: pd.DataFrame, p1: str, p2: str) -> tuple[np.ndarray, np.ndarray]:
    o = odds.dropna(subset=["match_id", p1, p2]).drop_duplicates("match_id")
    merged = rows[["match_id", "player_a_id"]].merge(o[["match_id", "p1_id", p1, p2]], on="match_id", how="left")
    a_is_p1 = (merged["p1_id"] == merged["player_a_id"]).fillna(False).to_numpy(dtype=bool)
    pa = np.where(a_is_p1, merged[p1], merged[p2]).astype(float)
    pb = np.where(a_is_p1, merged[p2], merged[p1]).astype(float)
    return pa, pb


def attach_market_prices(rows: pd.DataFrame, tour_odds: pd.DataFrame | None, slam_odds: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with the closing prices of both players, oriented to player A and B.

    ``tour_odds``/``slam_odds`` are odds rows matched to Sackmann matches (``match_id``, ``p1_id``
    and ``b365_p1``/``b365_p2``, plus ``ps_p1``/``ps_p2`` for the slams); ``tour_odds`` is None for a tour
    whose data has Grand Slam odds only (the WTA's): its tour-level price columns stay empty."""
    out = rows.copy()
    if tour_odds is None:
        out["b365_a"] = out["b365_b"] = np.nan
        out["series"] = None
    else:
        out["b365_a"], out["b365_b"] = _orient(rows, tour_odds, "b365_p1", "b365_p2")
        series = tour_odds.dropna(subset=["match_id"]).drop_duplicates("match_id").set_index("match_id")["series"]
        out["series"] = rows["match_id"].map(series)
    out["ps_a"], out["ps_b"] = _orient(rows, slam_odds, "ps_p1", "ps_p2")
    out["slam_b365_a"], out["slam_b365_b"] = _orient(rows, slam_odds, "b365_p1", "b365_p2")
    return out


def evaluate(rows: pd.DataFrame, forecasts: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Scores of each forecaster and of the margin-free market, overall and by tier.

    ``rows``: test-window rows with ``a_won``, ``tourney_level`` and the price columns of
    :func:`attach_market_prices`; ``forecasts``: name -> P(A wins) aligned with ``rows``.
    Returns a tidy table: comparison, tier, forecaster, n, log_loss, brier, accuracy,
    calibration_error. Every forecaster of a comparison is scored on exactly the same rows.
    """
    rows = rows.reset_index(drop=True)
    forecasts = {k: np.asarray(v, dtype=float) for k, v in forecasts.items()}
    tier = rows["series"].map(SERIES_TIER).fillna(rows["tourney_level"].map(LEVEL_TIER)).fillna("other")

    def has(*cols: str) -> np.ndarray:
        return rows[list(cols)].notna().all(axis=1).to_numpy()

    comparisons = {
        "tour_bet365": (has("b365_a", "b365_b"), {"market_bet365": fair_probability(rows["b365_a"], rows["b365_b"])}),
        "slams_pinnacle": (
            has("ps_a", "ps_b", "slam_b365_a", "slam_b365_b"),
            {
                "market_pinnacle": fair_probability(rows["ps_a"], rows["ps_b"]),
                "market_bet365": fair_probability(rows["slam_b365_a"], rows["slam_b365_b"]),
            },
        ),
    }
    records = []
    y_all = rows["a_won"].to_numpy()
    for comparison, (mask, markets) in comparisons.items():
        every = {**forecasts, **markets}
        for tier_name in ["all", *sorted(tier[mask].unique())]:
            sel = mask if tier_name == "all" else mask & (tier == tier_name).to_numpy()
            if sel.sum() == 0:
                continue
            for name, p in every.items():
                records.append(
                    {"comparison": comparison, "tier": tier_name, "forecaster": name, **score(y_all[sel], p[sel])}
                )
    table = pd.DataFrame.from_records(records)
    if not table.empty:
        table["n"] = table["n"].astype(int)
    return table


def coverage(rows: pd.DataFrame, table: pd.DataFrame) -> dict[str, int]:
    """How many test rows each comparison scored (rows without prices are not scored)."""
    overall = table[table["tier"] == "all"].groupby("comparison")["n"].max().to_dict()
    return {"test_rows": len(rows), **{f"rows_{k}": int(v) for k, v in overall.items()}}


def summary_markdown(table: pd.DataFrame) -> str:
    """A readable table: overall scores per comparison, then log-loss by tier."""
    lines = []
    for comparison, title in (
        ("tour_bet365", "All tour-level test matches with Bet365 prices"),
        ("slams_pinnacle", "Grand Slam test matches with Pinnacle prices"),
    ):
        sub = table[(table["comparison"] == comparison) & (table["tier"] == "all")]
        if sub.empty:
            continue
        n = int(sub["n"].iloc[0])
        lines += [
            f"**{title}** ({n} matches)",
            "",
            "| forecaster | log-loss | Brier | accuracy | calibration error |",
            "|---|---|---|---|---|",
        ]
        for r in sub.sort_values("log_loss").itertuples():
            lines.append(
                f"| {r.forecaster} | {r.log_loss:.4f} | {r.brier:.4f} | {r.accuracy:.1%} | {r.calibration_error:.4f} |"
            )
        lines.append("")
    tiers = table[(table["comparison"] == "tour_bet365") & (table["tier"] != "all")]
    if not tiers.empty:
        pivot = tiers.pivot(index="tier", columns="forecaster", values="log_loss")
        counts = tiers.groupby("tier")["n"].max()
        cols = list(pivot.columns)
        lines += [
            "**Log-loss by tier** (tour-level, Bet365 rows)",
            "",
            "| tier | n | " + " | ".join(cols) + " |",
            "|---|---|" + "---|" * len(cols),
        ]
        for tier_name, r in pivot.iterrows():
            lines.append(
                f"| {tier_name} | {int(counts[tier_name])} | " + " | ".join(f"{r[c]:.4f}" for c in cols) + " |"
            )
    return "\n".join(lines)


# --- walk-forward reports ------------------------------------------------------------------------

RANK_BANDS = ((1, 10, "top 10"), (11, 50, "11-50"), (51, 100, "51-100"), (101, np.inf, "101+"))
"""Bands of the better-ranked player's ranking (Kovalchik 2016: skill falls for lower-ranked players)."""


def tier_of(rows: pd.DataFrame) -> pd.Series:
    """Tournament tier of each row: the odds file's series when known, else Sackmann's level."""
    tier = rows["series"].map(SERIES_TIER) if "series" in rows else pd.Series(np.nan, index=rows.index)
    return tier.fillna(rows["tourney_level"].map(LEVEL_TIER)).fillna("other")


def rank_band(rows: pd.DataFrame) -> pd.Series:
    """Band of the better-ranked player's ranking ('unranked' when neither is ranked)."""
    best = np.fmin(rows["rank_a"].to_numpy(dtype=float), rows["rank_b"].to_numpy(dtype=float))
    out = pd.Series("unranked", index=rows.index, dtype=object)
    for lo, hi, name in RANK_BANDS:
        out[(best >= lo) & (best <= hi)] = name
    return pd.Series(
        pd.Categorical(out, categories=[b[2] for b in RANK_BANDS] + ["unranked"], ordered=True), index=rows.index
    )


MARKETS = {
    "bet365": ("b365_a", "b365_b", "tour-level matches with Bet365 closing prices"),
    "pinnacle": ("ps_a", "ps_b", "Grand Slam matches with Pinnacle closing prices"),
}
"""Market comparisons of the walk-forward report: price columns and what the rows are."""


def priced_rows(table: pd.DataFrame, market: str) -> pd.DataFrame:
    """Rows of ``table`` with both closing prices of ``market``, with ``p_market`` (margin removed)."""
    a, b, _ = MARKETS[market]
    rows = table[table[[a, b]].notna().all(axis=1) & (table[a] > 1) & (table[b] > 1)].copy()
    rows["p_market"] = fair_probability(rows[a], rows[b])
    return rows


def breakdown(rows: pd.DataFrame, forecasters: dict[str, str], by: str | None) -> pd.DataFrame:
    """Scores of each forecaster column (name -> column) on ``rows``, overall or by a grouping column."""
    records = []
    groups = [("all", rows)] if by is None else list(rows.groupby(by, sort=True, observed=True))
    for key, sub in groups:
        y = sub["a_won"].to_numpy()
        for name, col in forecasters.items():
            records.append({"group": key, "forecaster": name, **score(y, sub[col].to_numpy(dtype=float))})
    out = pd.DataFrame.from_records(records)
    out["n"] = out["n"].astype(int)
    return out


def paired_bootstrap(
    y: np.ndarray, p_model: np.ndarray, p_ref: np.ndarray, n_boot: int = 2000, seed: int = 7
) -> dict[str, float]:
    """Mean per-match log-loss difference model minus reference with a 95% percentile bootstrap
    interval (matches resampled with replacement; the same resample for both forecasters)."""
    diff = log_losses(y, p_model) - log_losses(y, p_ref)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(n_boot, len(diff)))
    boots = diff[idx].mean(axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"n": int(len(diff)), "mean_diff": float(diff.mean()), "ci_low": float(lo), "ci_high": float(hi)}
