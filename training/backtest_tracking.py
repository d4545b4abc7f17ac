"""MLflow runs of the backtests (``training.backtest``): one run per pre-match strategy and one per in-play
model and market, in the ``tennis-backtests`` experiment, so strategies and models can be compared side
by side. The caller points MLflow at the store and the experiment (``training.tracking.configure``) and
writes the files logged as artifacts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import mlflow
import pandas as pd

from training import backtest as bt
from training import inplay_backtest as ib
from training import tracking

BACKTEST_EXPERIMENT = "tennis-backtests"

PREMATCH_METRICS = (
    *bt.HEADLINE_FIGURES,
    "void_markets",
    "mean_price",
    "max_drawdown_pct",
)
"""Columns of a strategy's row of ``training.backtest.prematch_table`` logged as metrics, per split."""


def run_metrics(summary: dict, prefix: str) -> dict[str, float]:
    """The numeric, non-missing values of ``summary`` as MLflow metrics named ``<prefix>_<key>``."""
    return {f"{prefix}_{k}": float(v) for k, v in summary.items() if isinstance(v, int | float) and not pd.isna(v)}


def season_range(rows: pd.DataFrame) -> str:
    """``first-last`` season of ``rows`` (``none`` when empty)."""
    return f"{int(rows['season'].min())}-{int(rows['season'].max())}" if len(rows) else "none"


def log_prematch_strategy(
    strategy: bt.StrategyResult,
    rows: pd.DataFrame,
    season_rows: pd.DataFrame,
    grid: pd.DataFrame | None,
    config: bt.PrematchConfig,
    windows: dict[str, str],
    data_version: str,
    artifacts: Sequence[Path | str],
) -> str:
    """One run for one pre-match strategy: its definition and settings as tags and parameters, its rows of
    the backtest table (one per split) as metrics, ``artifacts`` (bankroll curves, bets), the rows by season,
    the validation grid its thresholds were chosen on (when it has one) and the rows it skipped.
    ``windows``: split -> season range. Returns the run id."""
    s = strategy
    with mlflow.start_run(run_name=f"prematch-{s.name}") as run:
        mlflow.set_tags(
            {
                "kind": "backtest",
                "backtest": "prematch",
                "book": s.book.name,
                "staking": str(s.staking),
                "forecaster": s.forecaster,
                "data_version": data_version,
                "prices": s.book.description,
            }
        )
        mlflow.log_params(
            {
                "book": s.book.name,
                "price_columns": f"{s.book.price_a},{s.book.price_b}",
                "staking": str(s.staking),
                "forecaster": s.forecaster,
                "min_edge": s.thresholds.min_edge,
                "max_price": s.thresholds.max_price,
                "min_price": s.thresholds.min_price,
                "thresholds_chosen_on": s.chosen_on,
                "validation_seasons": windows["validation"],
                "test_seasons": windows["test"],
                "bankroll": config.bankroll,
                "flat_stake": config.flat_stake,
                "kelly_fraction": config.kelly_fraction,
                "commission": config.commission,
                "max_stake": config.risk.max_stake,
                "risk_price_bounds": f"{config.risk.min_price}-{config.risk.max_price}",
                "roi_interval": f"bootstrap {config.bootstrap} resamples of markets (one bet each), 95% percentile",
            }
        )
        for r in rows.to_dict("records"):
            mlflow.log_metrics(run_metrics({k: r[k] for k in PREMATCH_METRICS}, r["split"]))
        for path in artifacts:
            mlflow.log_artifact(str(path))
        mlflow.log_text(season_rows.to_csv(index=False), "by_season.csv")
        if grid is not None:
            mlflow.log_text(grid.to_csv(index=False), "validation_grid.csv")
        mlflow.log_text(json.dumps({k: int(v) for k, v in s.counts.items()}, indent=1), "skipped_rows.json")
    return run.info.run_id


def log_inplay_backtest(
    model: str,
    market: str,
    config: ib.InplayBacktestConfig,
    result: ib.InplayBacktest,
    row: dict,
    seasons: pd.DataFrame,
    catalog: pd.DataFrame,
    sources: Sequence[str],
    curve: Path | str,
) -> str:
    """One run for one in-play model on one SIMULATED market, labelled so: the model, the market's and the
    engine's settings as parameters, the backtest's ``row`` (``model``, ``market`` and ``prices`` aside) as
    ``simulated_*`` metrics, the bankroll ``curve``, the results by season and what was refused or skipped.
    ``catalog``: the replay catalog the matches came from (its data version and, for ``sources``, its
    seasons). Returns the run id."""
    cfg = config
    with mlflow.start_run(run_name=f"inplay-{model}@{market}-SIMULATED") as run:
        mlflow.set_tags(
            {
                "kind": "backtest",
                "backtest": "inplay",
                "market": "SIMULATED",
                "simulated_market": market,
                "label": ib.SIMULATED,
                "model": model,
                "data_version": tracking.frame_version(catalog[["event_key", "prematch_p1"]]),
            }
        )
        mlflow.log_params(
            {
                "model": model,
                "market": f"SIMULATED (feeds.live.market): {market}",
                "matches": result.matches,
                "sources": ",".join(sources),
                "seasons": season_range(catalog[catalog["source"].isin(sources)]),
                "market_lag_points": cfg.market.lag_points,
                "market_noise_sd": cfg.market.noise_sd,
                "market_spread_ticks": cfg.market.spread_ticks,
                "min_edge": cfg.policy.value.min_edge,
                "commission": cfg.policy.value.commission,
                "kelly_fraction": cfg.policy.staking.kelly_fraction,
                "max_stake": cfg.policy.risk.max_stake,
                "bet_delay_s": cfg.policy.exchange.in_play_delay_seconds,
                "bankroll": cfg.policy.bankroll,
            }
        )
        mlflow.log_metrics(
            run_metrics({k: v for k, v in row.items() if k not in ("model", "market", "prices")}, "simulated")
        )
        mlflow.log_artifact(str(curve))
        mlflow.log_text(seasons.to_csv(index=False), "by_season.csv")
        mlflow.log_text(
            json.dumps({k: int(v) for k, v in result.ledger.counts.items()}, indent=1), "refused_and_skipped.json"
        )
    return run.info.run_id
