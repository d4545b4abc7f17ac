"""Backtests as assets: history replayed through the ``betting`` code the live path uses, one MLflow
run per strategy in the ``tennis-backtests`` experiment so strategies and models can be compared side
by side. Thin wrappers over ``training.backtest`` (the runs: ``training.backtest_tracking``)."""

import json
from pathlib import Path

import dagster as dg
import pandas as pd

from orchestration.defs.shared.resources import CourtsideResource, MlflowResource, WindowsResource
from training import backtest as bt
from training import backtest_tracking, plots, tracking
from training import inplay_backtest as ib
from training.backtest_tracking import BACKTEST_EXPERIMENT

HEADLINE = ["strategy", "split", "min_edge", "max_price", *bt.HEADLINE_FIGURES]


def _markdown(table: pd.DataFrame, columns: list[str]) -> str:
    if table.empty:
        return "no bets"
    t = table[columns].copy()
    for c in ("roi", "roi_ci_low", "roi_ci_high", "hit_rate", "max_drawdown_pct"):
        if c in t:
            fmt = "{:+.1%}" if c.startswith("roi") else "{:.1%}"
            t[c] = ["n/a" if pd.isna(v) else fmt.format(v) for v in t[c]]
    return t.to_markdown(index=False, floatfmt=".2f")


def _curve_png(ledger: bt.Ledger, title: str) -> bytes:
    m = ledger.markets
    return plots.png_bytes(plots.bankroll_curve(m["settled_at"], m["bankroll_after"], ledger.start_bankroll, title))


class PrematchBacktestConfig(dg.Config):
    """Pre-match backtest settings (amounts in the account currency)."""

    bankroll: float = bt.PrematchConfig.bankroll
    flat_stake: float = bt.PrematchConfig.flat_stake
    kelly_fraction: float = bt.PrematchConfig.kelly_fraction
    edge_grid: list[float] = list(bt.PrematchConfig.edge_grid)
    max_price_grid: list[float] = list(bt.PrematchConfig.max_price_grid)
    min_validation_bets: int = bt.PrematchConfig.min_validation_bets
    bootstrap: int = bt.PrematchConfig.bootstrap

    def core(self) -> bt.PrematchConfig:
        return bt.PrematchConfig(
            bankroll=self.bankroll,
            flat_stake=self.flat_stake,
            kelly_fraction=self.kelly_fraction,
            edge_grid=tuple(self.edge_grid),
            max_price_grid=tuple(self.max_price_grid),
            min_validation_bets=self.min_validation_bets,
            bootstrap=self.bootstrap,
        )


@dg.asset(group_name="backtest", kinds={"mlflow", "pandas"})
def prematch_backtest(
    context: dg.AssetExecutionContext,
    config: PrematchBacktestConfig,
    courtside: CourtsideResource,
    mlflow: MlflowResource,
    windows: WindowsResource,
    walkforward_predictions: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    """Value bets on the walk-forward model's out-of-sample probabilities at Pinnacle (Grand Slams) and
    Bet365 (tour-level) closing prices, never Max prices; flat and fractional-Kelly stakes; minimum edge
    and price cap chosen on the validation seasons, then applied once to the test seasons; ROI with a
    bootstrap 95% interval, hit rate, drawdown, bankroll curves, by season; and a no-information
    baseline (player A at every price) that should lose about the margin. The seasons are the ``windows``
    resource's: thresholds on the walk-forward's validation seasons, scored once on the test window."""
    configured = windows.get()
    configured.check_table(walkforward_predictions, "walkforward_predictions", configured.walkforward_splits())
    cfg = config.core()
    result = bt.run_prematch(walkforward_predictions, cfg)
    table = bt.prematch_table(result, cfg)
    seasons = bt.prematch_seasons(result, cfg)
    windows = {split: str(window) for split, window in configured.walkforward_splits().items()}  # as text
    data_version = tracking.frame_version(walkforward_predictions)

    reports = Path(courtside.reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    table.to_csv(reports / "prematch_backtest.csv", index=False)
    seasons.to_csv(reports / "prematch_backtest_by_season.csv", index=False)

    exp_id = mlflow.configure(BACKTEST_EXPERIMENT)
    links, images = {}, {}
    for s in result.strategies:
        artifacts = []
        for split, ledger in s.ledgers.items():
            png = _curve_png(ledger, f"{s.name} ({split}, {windows[split]})")
            path = reports / f"prematch_backtest_{s.name}_{split}.png"
            path.write_bytes(png)
            if split == "test":
                images[s.name] = png
            bets = reports / f"prematch_backtest_{s.name}_{split}_bets.csv"
            ledger.bets.to_csv(bets, index=False)
            artifacts += [path, bets]
        run_id = backtest_tracking.log_prematch_strategy(
            s,
            table[table["strategy"] == s.name],
            seasons[seasons["strategy"] == s.name],
            result.grids.get(f"{s.book.name}/{s.forecaster}"),
            cfg,
            windows,
            data_version,
            artifacts,
        )
        configured.tag_runs([run_id])
        links[f"mlflow_run_{s.name}"] = dg.MetadataValue.url(mlflow.run_url(exp_id, run_id))

    summary = (
        "Bets at real bookmaker closing prices (rounded down to the exchange ladder, no commission), "
        f"validation {windows['validation']}, test {windows['test']}; thresholds chosen on validation "
        "only (flat stakes, highest ROI with enough bets). ROI interval: bootstrap over bets.\n\n"
        + _markdown(table, HEADLINE)
    )
    (reports / "prematch_backtest.md").write_text(
        summary
        + "\n\n"
        + _markdown(
            seasons,
            [
                "strategy",
                "split",
                "season",
                "bets",
                "pnl",
                "roi",
                "roi_ci_low",
                "roi_ci_high",
                "hit_rate",
                "max_drawdown",
            ],
        )
        + "\n\n"
        + configured.markdown()
        + "\n"
    )
    context.log.info(f"pre-match backtest: {len(result.strategies)} strategies in {result.seconds:.1f} s")
    return dg.Output(
        table,
        metadata={
            "summary": dg.MetadataValue.md(summary),
            **{
                f"bankroll_test_{name}": dg.MetadataValue.md(plots.markdown_image(png, name))
                for name, png in images.items()
                if "baseline" not in name
            },
            "validation_grids": dg.MetadataValue.md(
                "\n\n".join(f"**{k}**\n\n{g.to_markdown(index=False, floatfmt='.3f')}" for k, g in result.grids.items())
            ),
            "report": dg.MetadataValue.path(str(reports / "prematch_backtest.md")),
            "seconds": round(result.seconds, 1),
            "data_version": data_version,
            "windows": dg.MetadataValue.json(configured.as_dict()),
            **links,
        },
    )


class InplayBacktestAssetConfig(dg.Config):
    """In-play backtest settings: which matches and models (the engine's own configuration otherwise)."""

    matches: int = 100
    """Matches replayed per model and market, evenly spaced in date order; 0 = every match of the sources
    (all ATP point-by-point matches take minutes: ``benchmarks/backtest_bench.py`` measures it)."""
    sources: list[str] = ["pbp", "slam"]
    models: list[str] = list(ib.INPLAY_MODELS)
    """Names in ``training.inplay_backtest.INPLAY_MODELS``."""
    markets: list[str] = list(ib.INPLAY_MARKETS)
    """Names in ``training.inplay_backtest.INPLAY_MARKETS`` (every market is SIMULATED)."""


@dg.asset(group_name="backtest", kinds={"mlflow", "pandas"})
def inplay_backtest(
    context: dg.AssetExecutionContext,
    config: InplayBacktestAssetConfig,
    courtside: CourtsideResource,
    mlflow: MlflowResource,
    windows: WindowsResource,
    replay_catalog: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    """Point-by-point matches replayed against the SIMULATED in-play market with the live engine's
    rules (triggers, value, Kelly, risk limits, paper exchange with bet delay, settlement): the Markov
    chain with serve updates, and the constant-serve chain (the simulator's own fair model: what it earns
    is the simulator's lag and noise). SIMULATED prices: a measure of the machinery, not of real-money edge."""
    for kind, names, known in (
        ("models", config.models, ib.INPLAY_MODELS),
        ("markets", config.markets, ib.INPLAY_MARKETS),
    ):
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"unknown in-play {kind} {unknown}; known: {sorted(known)}")
    configured = windows.get()
    replayed, replay_seasons = configured.replay_mask(replay_catalog)  # the replay seasons' matches only
    replay_catalog = replay_catalog[replayed]
    reports = Path(courtside.reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    exp_id = mlflow.configure(BACKTEST_EXPERIMENT)
    rows, frames, links, images = [], [], {}, {}
    results = {}
    for market_name in config.markets:  # the models side by side on each market: each match prepared once
        cfg = ib.InplayBacktestConfig(market=ib.INPLAY_MARKETS[market_name])
        by_model = ib.run_inplay_models(
            replay_catalog,
            {name: ib.INPLAY_MODELS[name] for name in config.models},
            cfg,
            limit=config.matches or None,
            sources=tuple(config.sources),
        )
        results.update({(market_name, name): (cfg, result) for name, result in by_model.items()})
    for (market_name, name), (cfg, result) in results.items():
        label = f"{name}@{market_name}"
        summary = bt.summarize(result.ledger)
        seasons = bt.by_season(result.ledger)
        seasons.insert(0, "market", market_name)
        seasons.insert(0, "model", name)
        frames.append(seasons)
        row = {
            "model": name,
            "market": market_name,
            "prices": "SIMULATED",
            "matches": result.matches,
            "points": result.points,
            "predictions": result.predictions,
            "orders": result.orders,
            **summary,
            "seconds": round(result.seconds, 2),
            "points_per_second": round(result.points / result.seconds) if result.seconds else None,
        }
        rows.append(row)
        png = _curve_png(result.ledger, f"SIMULATED in-play market ({market_name}): {name}")
        path = reports / f"inplay_backtest_{name}_{market_name}.png"
        path.write_bytes(png)
        images[label] = png
        run_id = backtest_tracking.log_inplay_backtest(
            name, market_name, cfg, result, row, seasons, replay_catalog, config.sources, path
        )
        configured.tag_runs([run_id], {"windows.replayed": json.dumps(replay_seasons)})
        links[f"mlflow_run_{label}"] = dg.MetadataValue.url(mlflow.run_url(exp_id, run_id))
        context.log.info(f"{label}: {result.matches} matches, {result.points} points in {result.seconds:.1f} s")

    table = pd.DataFrame(rows)
    by_season = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    table.to_csv(reports / "inplay_backtest.csv", index=False)
    by_season.to_csv(reports / "inplay_backtest_by_season.csv", index=False)
    summary_md = (
        f"**{ib.SIMULATED}.** In-play prices are simulated from the margin-free pre-match price "
        "by the constant-serve Markov chain: `simulated` (the feed's: one point late, noise 0.10 on the "
        "log-odds, one-tick spread) and `simulated-fair` (current score, no noise, one-tick spread). "
        "The late, noisy prices can be beaten by any model that knows the score (see markov-constant, "
        "the simulator's own model); on the fair market only information beyond it can win. Results "
        "measure the machinery and the model *against a simulator*, not a real-money edge.\n\n"
        + _markdown(
            table,
            ["model", "market", "prices", "matches", "points", *bt.HEADLINE_FIGURES, "seconds"],
        )
        + f"\n\nReplayed seasons by source: {replay_seasons}. "
        + configured.markdown()
    )
    (reports / "inplay_backtest.md").write_text(summary_md + "\n")
    return dg.Output(
        table,
        metadata={
            "label": dg.MetadataValue.text(ib.SIMULATED),
            "summary": dg.MetadataValue.md(summary_md),
            **{
                f"bankroll_{name}": dg.MetadataValue.md(plots.markdown_image(png, name)) for name, png in images.items()
            },
            "by_season": dg.MetadataValue.md(
                by_season.to_markdown(index=False, floatfmt=".3f") if len(by_season) else "none"
            ),
            "report": dg.MetadataValue.path(str(reports / "inplay_backtest.md")),
            "replay_seasons": dg.MetadataValue.json(replay_seasons),
            "windows": dg.MetadataValue.json(configured.as_dict()),
            **links,
        },
    )
