"""Walk-forward evaluation: an expanding window that retrains at a fixed step (one season by default)
and predicts only the following period, so every prediction is out of sample.

For each fold starting at season ``S``:

- the model is fitted on every modelling row of seasons ``train_start .. S - 1``, with the
  hyper-parameters fixed once on the validation window (``fixed_params``: XGBoost's tree count is
  the early-stopping point found on the validation season by the candidate run);
- the surface-blended Elo baseline's blend weight is fitted on the seasons ``S - blend_seasons ..
  S - 1`` (Elo itself needs no fitting, so those rows are out of sample for the weight);
- the calibration map for season ``S`` is fitted on the raw out-of-sample predictions of the earlier
  folds only (``S - calibration_seasons .. S - 1``); which map (none, Platt or isotonic) is chosen
  once, on the validation seasons, by the log-loss the maps achieve when applied in this sequential way.

Warm-up folds before ``first_season`` exist only to give the first reported season a calibration
history; their rows are not reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.prematch import FEATURES
from training.calibration import METHODS, fit_calibrator
from training.evaluation import breakdown, paired_bootstrap, priced_rows, rank_band, tier_of
from training.metrics import leak_suspect, log_loss
from training.models import BlendedElo, predict
from training.windows import DEFAULT_WINDOWS, WALKFORWARD_WARMUP

OUTPUT_COLUMNS = (
    "match_id",
    "player_a_id",
    "player_b_id",
    "a_won",
    "season",
    "split",
    "match_date",
    "tourney_level",
    "tourney_name",
    "surface",
    "round",
    "best_of",
    "series",
    "rank_a",
    "rank_b",
    "p_model",
    "p_model_raw",
    "p_model_platt",
    "p_model_isotonic",
    "calibration_method",
    "p_blend_elo",
    "p_elo",
    "blend_weight",
    "b365_a",
    "b365_b",
    "ps_a",
    "ps_b",
    "slam_b365_a",
    "slam_b365_b",
)
"""Columns of the walk-forward prediction table (the contract the backtests and in-play models read)."""


@dataclass(frozen=True)
class WalkForward:
    """Configuration of the walk-forward: every season bound is configuration, never the data at hand."""

    train_start: int = DEFAULT_WINDOWS.train.first
    first_season: int = DEFAULT_WINDOWS.walkforward_from
    """First reported season."""
    last_season: int = DEFAULT_WINDOWS.test.last
    test_start: int = DEFAULT_WINDOWS.test.first
    """Seasons from here on are the test window (reported once); earlier reported seasons are validation.
    The pipeline takes all four from ``training.windows.PipelineWindows.walkforward_seasons``."""
    step: int = 1
    """Seasons predicted by each fold (the model is retrained every ``step`` seasons)."""
    warmup_seasons: int = WALKFORWARD_WARMUP
    """Folds before ``first_season`` that only feed the calibration history."""
    calibration_seasons: int = 3
    blend_seasons: int = 3

    def __post_init__(self) -> None:
        if not (
            self.train_start < self.first_season - self.warmup_seasons
            and self.first_season < self.test_start <= self.last_season
        ):
            raise ValueError(
                f"walk-forward seasons must satisfy train_start < first_season - warmup "
                f"and first_season < test_start <= last_season: {self}"
            )
        if self.step < 1 or self.calibration_seasons < 1 or self.blend_seasons < 1:
            raise ValueError(f"step, calibration_seasons and blend_seasons must be >= 1: {self}")

    def fold_starts(self) -> list[int]:
        """First season of every fold, warm-up folds included."""
        return list(range(self.first_season - self.warmup_seasons, self.last_season + 1, self.step))


def _rank_columns(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    ra = np.exp(rows["log_rank_a"].to_numpy(dtype=float))
    rb = np.exp(rows["log_rank_b"].to_numpy(dtype=float))
    ra[rows["unranked_a"].to_numpy(dtype=float) == 1] = np.nan
    rb[rows["unranked_b"].to_numpy(dtype=float) == 1] = np.nan
    return np.round(ra), np.round(rb)


def walk_forward(
    rows: pd.DataFrame,
    config: WalkForward,
    build_model: Callable[[], Any],
    progress: Callable[[int, int], None] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Out-of-sample predictions for every reported season, and a record of how they were made.

    ``rows``: modelling rows (tour-level, settled) of every season from ``train_start`` on, with the
    ``FEATURES`` columns, ``a_won``, ``season`` and the market price columns of
    ``training.evaluation.attach_market_prices``. ``build_model`` returns a fresh unfitted estimator
    with ``fit(X, y)`` and ``predict_proba``. Returns the table of ``OUTPUT_COLUMNS`` and a summary
    (folds, chosen calibration method and its validation log-loss per method).
    """
    rows = rows[(rows["season"] >= config.train_start) & (rows["season"] <= config.last_season)]
    rows = rows.sort_values(["match_date", "match_id"], kind="mergesort").reset_index(drop=True)
    seasons = rows["season"].to_numpy()
    y = rows["a_won"].to_numpy(dtype=int)
    X = rows[list(FEATURES)]
    raw = np.full(len(rows), np.nan)
    blend = np.full(len(rows), np.nan)
    weight = np.full(len(rows), np.nan)
    folds = []
    starts = config.fold_starts()
    for i, start in enumerate(starts):
        if progress:
            progress(i, len(starts))
        end = start + config.step - 1
        train = seasons < start
        target = (seasons >= start) & (seasons <= end)
        if not target.any():
            continue
        model = build_model()
        model.fit(X[train], y[train])
        raw[target] = predict(model, X[target])
        recent = (seasons >= start - config.blend_seasons) & (seasons < start)
        elo = BlendedElo().fit(X[recent], y[recent])
        blend[target] = elo.predict_proba(X[target])[:, 1]
        weight[target] = elo.weight_
        folds.append(
            {
                "first_season": start,
                "last_season": min(end, config.last_season),
                "train_rows": int(train.sum()),
                "predicted_rows": int(target.sum()),
                "blend_weight": float(elo.weight_),
            }
        )
    if progress:
        progress(len(starts), len(starts))

    reported = seasons >= config.first_season
    out = rows.loc[reported].copy()
    out["split"] = np.where(out["season"] >= config.test_start, "test", "validation")
    for method in METHODS:
        column = CALIBRATION_COLUMNS[method]
        out[column] = _sequential_calibration(method, raw, y, seasons, config)[reported]
    choice = calibration_choice(out)
    method, noise = choose_calibration(out)
    out["calibration_method"] = method
    out["p_model"] = out[CALIBRATION_COLUMNS[method]]
    out["p_blend_elo"] = blend[reported]
    out["p_elo"] = rows.loc[reported, "elo_prob"].to_numpy(dtype=float)
    out["blend_weight"] = weight[reported]
    out["rank_a"], out["rank_b"] = _rank_columns(out)
    for col in OUTPUT_COLUMNS:
        if col not in out.columns:
            out[col] = np.nan
    summary = {
        "folds": folds,
        "calibration_method": method,
        "calibration_validation_log_loss": {m: round(v, 5) for m, v in choice.items()},
        "calibration_rule": noise,
    }
    return out[list(OUTPUT_COLUMNS)].reset_index(drop=True), summary


CALIBRATION_COLUMNS = {"none": "p_model_raw", "platt": "p_model_platt", "isotonic": "p_model_isotonic"}


def calibration_choice(table: pd.DataFrame) -> dict[str, float]:
    """Log-loss of each calibration map on the validation rows (the choice is the lowest; the test
    rows are never looked at)."""
    val = table[table["split"] == "validation"]
    y = val["a_won"].to_numpy()
    return {m: round(log_loss(y, val[c].to_numpy(dtype=float)), 5) for m, c in CALIBRATION_COLUMNS.items()}


CALIBRATED = ("platt", "isotonic")


def choose_calibration(table: pd.DataFrame, n_boot: int = 2000) -> tuple[str, dict[str, Any]]:
    """The calibration map, chosen on the validation rows by a rule that does not flip on noise: the calibrated map
    with the lower log-loss, unless leaving the forecasts uncalibrated is better beyond the bootstrap noise (the 95%
    interval of the paired per-match difference, uncalibrated minus calibrated, wholly below zero). Returns the map
    and the evidence."""
    losses = calibration_choice(table)
    calibrated = min(CALIBRATED, key=lambda m: losses[m])
    val = table[table["split"] == "validation"]
    if val.empty:
        return calibrated, {"calibrated": calibrated, "rows": 0}
    boot = paired_bootstrap(
        val["a_won"].to_numpy(),
        val[CALIBRATION_COLUMNS["none"]].to_numpy(dtype=float),
        val[CALIBRATION_COLUMNS[calibrated]].to_numpy(dtype=float),
        n_boot,
    )
    method = "none" if boot["ci_high"] < 0 else calibrated
    return method, {
        "calibrated": calibrated,
        "none_minus_calibrated": round(boot["mean_diff"], 6),
        "ci": [round(boot["ci_low"], 6), round(boot["ci_high"], 6)],
        "rows": boot["n"],
    }


def _sequential_calibration(
    method: str, raw: np.ndarray, y: np.ndarray, seasons: np.ndarray, config: WalkForward
) -> np.ndarray:
    """Raw predictions of each season mapped by a calibrator fitted on earlier seasons' raw predictions."""
    out = np.full(len(raw), np.nan)
    for season in np.unique(seasons[~np.isnan(raw)]):
        target = seasons == season
        history = (seasons < season) & (seasons >= season - config.calibration_seasons) & ~np.isnan(raw)
        if not history.any():
            out[target] = raw[target]
            continue
        out[target] = fit_calibrator(method, raw[history], y[history])(raw[target])
    return out


# --- the report ----------------------------------------------------------------------------------

FORECASTERS = {
    "xgboost (walk-forward)": "p_model",
    "blend_elo": "p_blend_elo",
    "elo": "p_elo",
    "market (margin removed)": "p_market",
}
TARGETS = {"vs_blend_elo": -0.005, "vs_market": 0.02, "calibration_error": 0.02}
"""Issue 4's bar on the test seasons: at least 0.005 lower log-loss than the blended Elo, within 0.02 of
the margin-free market on the same rows, calibration error at most 0.02."""


@dataclass(frozen=True)
class Report:
    """Every table of the walk-forward report, and its markdown."""

    overall: pd.DataFrame
    by_season: pd.DataFrame
    by_tier: pd.DataFrame
    by_rank_band: pd.DataFrame
    season_all_rows: pd.DataFrame
    paired: pd.DataFrame
    targets: dict[str, Any]
    markdown: str


def _fmt(table: pd.DataFrame, metric: str = "log_loss") -> str:
    pivot = table.pivot(index="group", columns="forecaster", values=metric)
    pivot = pivot.loc[list(dict.fromkeys(table["group"]))]  # the groups' own order
    n = table.groupby("group", observed=True)["n"].max()
    cols = [c for c in FORECASTERS if c in pivot.columns]
    lines = ["| group | n | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for g, r in pivot.iterrows():
        lines.append(f"| {g} | {int(n[g])} | " + " | ".join(f"{r[c]:.4f}" for c in cols) + " |")
    return "\n".join(lines)


def report(table: pd.DataFrame, n_boot: int = 2000) -> Report:
    """Scores of the walk-forward predictions: on the test seasons against the margin-free market
    (Bet365 on tour-level rows, Pinnacle at Grand Slams) on exactly the same rows; by season, tier and
    ranking band; paired bootstrap differences; and the issue's targets, met or not."""
    test = table[table["split"] == "test"]
    overall, paired, sections = [], [], []
    for market in ("bet365", "pinnacle"):
        rows = priced_rows(test, market)
        if rows.empty:
            continue
        t = breakdown(rows, FORECASTERS, None).assign(market=market)
        overall.append(t)
        y = rows["a_won"].to_numpy()
        for ref in ("p_market", "p_blend_elo"):
            paired.append(
                {
                    "market_rows": market,
                    "comparison": f"xgboost - {ref.removeprefix('p_')}",
                    **paired_bootstrap(y, rows["p_model"], rows[ref], n_boot),
                }
            )
    overall_t = pd.concat(overall, ignore_index=True)
    paired_t = pd.DataFrame(paired)

    b365_all = priced_rows(table, "bet365")
    by_season = breakdown(b365_all, FORECASTERS, "season")
    b365_test = priced_rows(test, "bet365")
    by_tier = breakdown(b365_test.assign(tier=tier_of(b365_test)), FORECASTERS, "tier")
    by_band = breakdown(b365_test.assign(band=rank_band(b365_test)), FORECASTERS, "band")
    season_all = breakdown(table, {k: v for k, v in FORECASTERS.items() if v != "p_market"}, "season")

    head = overall_t[(overall_t["market"] == "bet365")].set_index("forecaster")
    model = head.loc["xgboost (walk-forward)"]
    vs_blend = model["log_loss"] - head.loc["blend_elo", "log_loss"]
    vs_market = model["log_loss"] - head.loc["market (margin removed)", "log_loss"]
    targets = {
        "rows": int(model["n"]),
        "xgboost_minus_blend_elo": round(float(vs_blend), 5),
        "xgboost_minus_market": round(float(vs_market), 5),
        "xgboost_calibration_error": round(float(model["calibration_error"]), 5),
        "met_vs_blend_elo": bool(vs_blend <= TARGETS["vs_blend_elo"]),
        "met_vs_market": bool(vs_market <= TARGETS["vs_market"]),
        "met_calibration": bool(model["calibration_error"] <= TARGETS["calibration_error"]),
    }
    leaks = season_all[[leak_suspect(r) for r in season_all.to_dict("records")]]

    def yes(flag: bool) -> str:
        return "met" if flag else "**not met**"

    seasons = f"{int(test['season'].min())}-{int(test['season'].max())}" if len(test) else "none"
    method = str(table["calibration_method"].iloc[0]) if len(table) else "none"
    _, rule = choose_calibration(table, n_boot)
    evidence = (
        f"; uncalibrated minus `{rule['calibrated']}`: {rule['none_minus_calibrated']:+.5f} "
        f"[{rule['ci'][0]:+.5f}, {rule['ci'][1]:+.5f}], so "
        + ("uncalibrated, better beyond the noise" if method == "none" else "the calibrated map")
        if "ci" in rule
        else ""
    )
    sections.append(
        f"**Test seasons {seasons}, scored once** (calibration map: `{method}`, chosen on the validation seasons: "
        f"the calibrated map with the lower log-loss {calibration_choice(table)}, unless no map is better beyond "
        f"the bootstrap noise{evidence})"
    )
    for market, rows_desc in (
        ("bet365", "tour-level matches with Bet365 closing prices"),
        ("pinnacle", "Grand Slam matches with Pinnacle closing prices"),
    ):
        sub = overall_t[overall_t["market"] == market]
        if sub.empty:
            continue
        sections += [
            "",
            f"*{rows_desc}* ({int(sub['n'].iloc[0])} matches)",
            "",
            "| forecaster | log-loss | Brier | accuracy | calibration error |",
            "|---|---|---|---|---|",
        ]
        for r in sub.sort_values("log_loss").itertuples():
            sections.append(
                f"| {r.forecaster} | {r.log_loss:.4f} | {r.brier:.4f} | {r.accuracy:.1%} | {r.calibration_error:.4f} |"
            )
    maps = priced_rows(test, "bet365")
    if not maps.empty:
        y = maps["a_won"].to_numpy()
        sections += [
            "",
            "*Calibration maps on the same test rows* (reported only; the map was chosen on validation)",
            "",
            "| map | log-loss | calibration error |",
            "|---|---|---|",
        ]
        for name, col in CALIBRATION_COLUMNS.items():
            sc = breakdown(maps, {name: col}, None).iloc[0]
            sections.append(f"| {name} | {sc['log_loss']:.4f} | {sc['calibration_error']:.4f} |")
    sections += [
        "",
        "*Paired log-loss difference per match (negative = XGBoost better), 95% bootstrap CI*",
        "",
        "| rows | comparison | n | mean | 95% CI |",
        "|---|---|---|---|---|",
    ]
    for r in paired_t.itertuples():
        sections.append(
            f"| {r.market_rows} | {r.comparison} | {r.n} | {r.mean_diff:+.4f} | [{r.ci_low:+.4f}, {r.ci_high:+.4f}] |"
        )
    sections += [
        "",
        "*Targets (Bet365 rows of the test seasons)*",
        "",
        f"- XGBoost minus blended Elo: {vs_blend:+.4f} (target <= -0.005): {yes(targets['met_vs_blend_elo'])}",
        f"- XGBoost minus market: {vs_market:+.4f} (target <= +0.02): {yes(targets['met_vs_market'])}",
        f"- XGBoost calibration error: {model['calibration_error']:.4f} (target <= 0.02): "
        f"{yes(targets['met_calibration'])}",
        "",
        "*Log-loss by season* (Bet365 rows; seasons before the test window are validation)",
        "",
        _fmt(by_season),
        "",
        f"*Calibration error by season* (XGBoost walk-forward, all rows; target <= {TARGETS['calibration_error']})",
        "",
        _calibration_by_season(season_all),
        "",
        "*Log-loss by tier* (test, Bet365 rows)",
        "",
        _fmt(by_tier),
        "",
        "*Log-loss by ranking band of the better-ranked player* (test, Bet365 rows)",
        "",
        _fmt(by_band),
        "",
        "*Accuracy by ranking band* (test, Bet365 rows)",
        "",
        _fmt(by_band, "accuracy"),
        "",
        f"*Leak guard*: seasons with accuracy > 75% or log-loss < 0.50 over all rows: "
        f"{'none' if leaks.empty else leaks[['group', 'forecaster']].to_dict('records')}",
    ]
    return Report(overall_t, by_season, by_tier, by_band, season_all, paired_t, targets, "\n".join(sections))


def _calibration_by_season(season_all: pd.DataFrame) -> str:
    rows = season_all[season_all["forecaster"] == "xgboost (walk-forward)"]
    lines = ["| season | n | calibration error | target |", "|---|---|---|---|"]
    for r in rows.itertuples():
        met = "met" if r.calibration_error <= TARGETS["calibration_error"] else "**not met**"
        lines.append(f"| {r.group} | {int(r.n)} | {r.calibration_error:.4f} | {met} |")
    return "\n".join(lines)
