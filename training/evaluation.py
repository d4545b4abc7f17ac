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

from training.metrics import score

SERIES_TIER = {"Grand Slam": "Grand Slam", "Masters 1000": "Masters 1000", "ATP500": "ATP 500",
               "ATP250": "ATP 250", "Masters Cup": "Tour Finals"}
LEVEL_TIER = {"G": "Grand Slam", "M": "Masters 1000", "A": "ATP 250/500", "F": "Tour Finals",
              "D": "Davis Cup"}


def fair_probability(price_a: np.ndarray, price_b: np.ndarray) -> np.ndarray:
    """P(A wins) implied by two decimal prices with the bookmaker's margin removed."""
    ia, ib = 1.0 / np.asarray(price_a, dtype=float), 1.0 / np.asarray(price_b, dtype=float)
    return ia / (ia + ib)


def orient_prices(rows: pd.DataFrame, odds: pd.DataFrame, p1: str, p2: str) -> pd.DataFrame:
    """Prices for player A and B of each row, from odds rows matched to Sackmann matches."""
    o = odds.dropna(subset=["match_id", p1, p2]).drop_duplicates("match_id")
    merged = rows[["match_id", "player_a_id"]].merge(
        o[["match_id", "p1_id", p1, p2, *(["series"] if "series" in o else [])]],
        on="match_id", how="left")
    a_is_p1 = merged["p1_id"].to_numpy() == merged["player_a_id"].to_numpy()
    out = pd.DataFrame(index=rows.index)
    out["price_a"] = np.where(a_is_p1, merged[p1], merged[p2])
    out["price_b"] = np.where(a_is_p1, merged[p2], merged[p1])
    if "series" in merged:
        out["series"] = merged["series"].to_numpy()
    return out


def evaluate(
    rows: pd.DataFrame,
    forecasts: Mapping[str, np.ndarray],
    tour_odds: pd.DataFrame,
    slam_odds: pd.DataFrame,
) -> pd.DataFrame:
    """Scores of each forecaster and of the margin-free market, overall and by tier.

    ``rows``: test-window feature rows (``a_won``, ``match_id``, ``player_a_id``, ``tourney_level``);
    ``forecasts``: name -> P(A wins) aligned with ``rows``; the odds frames are the matched odds
    (``match_id``, ``p1_id``, and price columns ``b365_p1``/``b365_p2``, ``ps_p1``/``ps_p2``).
    Returns a tidy table: comparison, tier, forecaster, n, log_loss, brier, accuracy, calibration_error.
    """
    rows = rows.reset_index(drop=True)
    forecasts = {k: np.asarray(v, dtype=float) for k, v in forecasts.items()}
    b365 = orient_prices(rows, tour_odds, "b365_p1", "b365_p2")
    ps = orient_prices(rows, slam_odds, "ps_p1", "ps_p2")
    slam_b365 = orient_prices(rows, slam_odds, "b365_p1", "b365_p2")
    tier = rows["tourney_level"].map(LEVEL_TIER).fillna("other")
    if "series" in b365:
        tier = b365["series"].map(SERIES_TIER).fillna(tier)

    comparisons = {
        "tour_bet365": (b365["price_a"].notna() & b365["price_b"].notna(),
                        {"market_bet365": fair_probability(b365["price_a"], b365["price_b"])}),
        "slams_pinnacle": (ps["price_a"].notna() & ps["price_b"].notna()
                           & slam_b365["price_a"].notna() & slam_b365["price_b"].notna(),
                           {"market_pinnacle": fair_probability(ps["price_a"], ps["price_b"]),
                            "market_bet365": fair_probability(slam_b365["price_a"],
                                                              slam_b365["price_b"])}),
    }
    records = []
    y_all = rows["a_won"].to_numpy()
    for comparison, (mask, markets) in comparisons.items():
        mask = mask.to_numpy()
        every = {**forecasts, **markets}
        for tier_name in ["all", *sorted(tier[mask].unique())]:
            sel = mask if tier_name == "all" else mask & (tier == tier_name).to_numpy()
            if sel.sum() == 0:
                continue
            for name, p in every.items():
                records.append({"comparison": comparison, "tier": tier_name, "forecaster": name,
                                **score(y_all[sel], p[sel])})
    table = pd.DataFrame.from_records(records)
    table["n"] = table["n"].astype(int)
    return table


def coverage(rows: pd.DataFrame, table: pd.DataFrame) -> dict[str, int]:
    """How many test rows each comparison scored (rows without prices are not scored)."""
    overall = table[table["tier"] == "all"].groupby("comparison")["n"].max().to_dict()
    return {"test_rows": len(rows), **{f"rows_{k}": int(v) for k, v in overall.items()}}


def summary_markdown(table: pd.DataFrame) -> str:
    """A readable table: overall scores per comparison, then log-loss by tier."""
    lines = []
    for comparison, title in (("tour_bet365", "All tour-level test matches with Bet365 prices"),
                              ("slams_pinnacle", "Grand Slam test matches with Pinnacle prices")):
        sub = table[(table["comparison"] == comparison) & (table["tier"] == "all")]
        if sub.empty:
            continue
        n = int(sub["n"].iloc[0])
        lines += [f"**{title}** ({n} matches)", "",
                  "| forecaster | log-loss | Brier | accuracy | calibration error |",
                  "|---|---|---|---|---|"]
        for r in sub.sort_values("log_loss").itertuples():
            lines.append(f"| {r.forecaster} | {r.log_loss:.4f} | {r.brier:.4f} | "
                         f"{r.accuracy:.1%} | {r.calibration_error:.4f} |")
        lines.append("")
    tiers = table[(table["comparison"] == "tour_bet365") & (table["tier"] != "all")]
    if not tiers.empty:
        pivot = tiers.pivot(index="tier", columns="forecaster", values="log_loss")
        counts = tiers.groupby("tier")["n"].max()
        cols = list(pivot.columns)
        lines += ["**Log-loss by tier** (tour-level, Bet365 rows)", "",
                  "| tier | n | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
        for tier_name, r in pivot.iterrows():
            lines.append(f"| {tier_name} | {int(counts[tier_name])} | "
                         + " | ".join(f"{r[c]:.4f}" for c in cols) + " |")
    return "\n".join(lines)
