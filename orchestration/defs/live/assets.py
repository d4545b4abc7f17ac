"""The live lane seen from the control plane: the replay catalog the feed server publishes (built by
the pipeline), and the assets the streaming sensor materializes while the engine trades: pre-match
value scans, settlement, live data checks and the P&L. Thin wrappers over ``serving.control``."""

from pathlib import Path

import dagster as dg
import pandas as pd

from betting.policy import TradingPolicy
from feeds.live.catalog import attach_prematch, pbp_matches, slam_matches
from orchestration.defs.shared.resources import CourtsideResource, WindowsResource
from serving import control
from training import plots
from training.windows import require_seasons

LIVE_GROUP = "live"
"""Assets the streaming sensor materializes (not part of the batch pipeline)."""


def _policy(courtside: CourtsideResource) -> TradingPolicy:
    return TradingPolicy(bankroll=courtside.bankroll)


def _table(frame: pd.DataFrame, rows: int = 20) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame.head(rows).to_markdown(index=False) if len(frame) else "none")


@dg.asset(group_name="replay", kinds={"pandas", "parquet"})
def replay_catalog(
    windows: WindowsResource,
    raw_slam_matches: pd.DataFrame,
    raw_slam_points: pd.DataFrame,
    pbp_matched: pd.DataFrame,
    matches: pd.DataFrame,
    players: pd.DataFrame,
    odds_slams_matched: pd.DataFrame,
    odds_tour_matched: pd.DataFrame,
    elo_ratings: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    """Real matches with point-level data that the feed server replays as a live feed: Grand Slam
    point logs (real timing) and ATP point-by-point sequences, with Sackmann ids, real closing odds
    and a margin-free pre-match probability; ``window``: the match's pre-match window (``train`` = in-sample
    for the champion), ``replay``: inside the replay seasons (what the feed publishes and the in-play backtest
    replays; the ``windows`` resource's rule)."""
    configured = windows.get()
    catalog = attach_prematch(
        pd.concat(
            [slam_matches(raw_slam_matches, raw_slam_points, matches, players), pbp_matches(pbp_matched, matches)],
            ignore_index=True,
        ),
        odds_slams_matched,
        odds_tour_matched,
        elo_ratings,
        matches,
    )
    catalog["window"] = configured.window_of(catalog["season"])
    catalog["replay"], replay_seasons = configured.replay_mask(catalog)
    if configured.replay is not None:
        require_seasons("replay", configured.replay, catalog["season"], "point-level matches")
    by = (
        catalog.groupby(["source", "season"])
        .agg(
            matches=("event_key", "size"),
            with_ids=("sackmann_match_id", lambda s: int(s.notna().sum())),
            with_closing_odds=("close_p1", lambda s: int(s.notna().sum())),
            replayed=("replay", "sum"),
        )
        .reset_index()
    )
    replayed = catalog[catalog["replay"]]
    in_sample = int((replayed["window"] == "train").mean() * 100) if len(replayed) else 0
    return dg.Output(
        catalog,
        metadata={
            "dagster/row_count": len(catalog),
            "by_source_and_season": _table(by, 50),
            "prematch_source": dg.MetadataValue.json(catalog["prematch_source"].value_counts().to_dict()),
            "replay_seasons": dg.MetadataValue.json(replay_seasons),
            "replayed_by_window": dg.MetadataValue.json(
                replayed["window"].fillna("outside the windows").value_counts().to_dict()
            ),
            "windows": dg.MetadataValue.json(configured.as_dict()),
            "seasons_in_model_training_window": dg.MetadataValue.text(
                f"{in_sample}% of the replayed matches are from the champion's training seasons {configured.train}: "
                "pre-match value bets on them are in-sample and exercise the machinery, they do not measure skill"
            ),
        },
    )


@dg.asset(group_name="replay", kinds={"pandas", "parquet"})
def wta_replay_catalog(
    windows: WindowsResource,
    raw_slam_matches: pd.DataFrame,
    raw_slam_points: pd.DataFrame,
    wta_matches: pd.DataFrame,
    wta_players: pd.DataFrame,
    wta_odds_slams_matched: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    """The women's singles of the Grand Slam point logs (best of three), with Sackmann WTA ids and real closing
    odds (Pinnacle, else Bet365; 0.5 without odds), in the men's catalog layout: what ``python -m feeds.live
    --tour wta`` replays through the live lane (the in-play models and backtests stay the men's)."""
    configured = windows.get()
    singles = slam_matches(raw_slam_matches, raw_slam_points, wta_matches, wta_players, tour="WTA")
    catalog = attach_prematch(singles, wta_odds_slams_matched, None, None, wta_matches)
    catalog["window"] = configured.window_of(catalog["season"])
    catalog["replay"], replay_seasons = configured.replay_mask(catalog)
    return dg.Output(
        catalog,
        metadata={
            "dagster/row_count": len(catalog),
            "with_ids": int(catalog[["player1_id", "player2_id"]].notna().all(axis=1).sum()),
            "with_closing_odds": int(catalog["close_p1"].notna().sum()),
            "replayed": int(catalog["replay"].sum()),
            "replay_seasons": dg.MetadataValue.json(replay_seasons),
            "prematch_source": dg.MetadataValue.json(catalog["prematch_source"].value_counts().to_dict()),
        },
    )


@dg.asset(group_name=LIVE_GROUP, kinds={"python"}, deps=["wta_replay_catalog"])
def prematch_value_scan(
    context: dg.AssetExecutionContext, courtside: CourtsideResource, replay_catalog: pd.DataFrame
) -> dg.MaterializeResult:
    """New pre-match odds in the event log -> the champion's probabilities (``/predict``, one batch; each match
    asks its tour's champion) -> value after commission -> fractional-Kelly order requests, which the engine
    risk-checks and places. Each pre-match market is scanned once."""
    women = Path(courtside.home) / "warehouse" / "wta_replay_catalog.parquet"  # absent in a home from before it
    catalog = pd.concat([replay_catalog, *([pd.read_parquet(women)] if women.exists() else [])], ignore_index=True)
    scan = control.scan_prematch(
        courtside.engine, catalog, control.http_predict(courtside.prediction_url), _policy(courtside)
    )
    context.log.info(
        f"{scan.markets} new pre-match markets, {scan.predicted} predicted, "
        f"{len(scan.requests)} order requests queued, {len(scan.skipped)} skipped"
    )
    for market, reason in scan.skipped:
        context.log.warning(f"{market}: {reason}")
    requests = (
        pd.DataFrame(scan.requests, columns=["match_id", "selection", "side", "price", "size", "edge"])
        if scan.requests
        else pd.DataFrame()
    )
    return dg.MaterializeResult(
        metadata={
            "new_markets": scan.markets,
            "predicted": scan.predicted,
            "order_requests": len(scan.requests),
            "no_value": scan.no_value,
            "skipped": len(scan.skipped),
            "requests": _table(
                requests[["match_id", "selection", "side", "price", "size", "edge"]] if len(requests) else requests
            ),
            "skipped_reasons": _table(pd.DataFrame(scan.skipped, columns=["market", "reason"])),
            "caveat": dg.MetadataValue.text(
                "replayed matches are historical: the prediction uses the features as "
                "of each match; matches inside the training window are in-sample"
            ),
        }
    )


@dg.asset(group_name=LIVE_GROUP, kinds={"python"})
def live_settlements(context: dg.AssetExecutionContext, courtside: CourtsideResource) -> dg.MaterializeResult:
    """Every market of every finished match settled once: winner, retirement and walkover rules,
    commission on net winnings; orders marked settled in the same transaction."""
    run = control.settle_finished(courtside.engine, _policy(courtside))
    for market, reason in run.unsettleable:
        context.log.error(f"cannot settle {market}: {reason}")
    rows = pd.DataFrame(
        [
            {
                "market": s.market_id,
                "outcome": s.outcome,
                "winner": s.winner,
                "void": s.void,
                "bets": len(s.bets),
                "net_profit": s.pnl.net_profit,
                "bankroll_after": s.pnl.bankroll_after,
            }
            for s in run.settled
        ]
    )
    return dg.MaterializeResult(
        metadata={
            "settled_now": len(run.settled),
            "net_profit_now": round(float(rows["net_profit"].sum()), 2) if len(rows) else 0.0,
            "unsettleable": len(run.unsettleable),
            "settled": _table(rows, 50),
        }
    )


@dg.asset(group_name=LIVE_GROUP, kinds={"python"}, deps=[live_settlements])
def live_pnl(courtside: CourtsideResource) -> dg.MaterializeResult:
    """The session's bankroll after each settled market, ROI, drawdown, and the calibration of the
    in-play predictions on finished matches, with charts (also written to the reports folder)."""
    cfg = _policy(courtside)
    pnl = control.live_pnl(courtside.engine, cfg)
    reports = Path(courtside.reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    curve_png = plots.png_bytes(
        plots.bankroll_curve(pnl.curve["settled_at"], pnl.curve["bankroll"], cfg.bankroll, "Paper bankroll")
    )
    (reports / "live_bankroll.png").write_bytes(curve_png)
    metadata = {k: (v if v is not None else dg.MetadataValue.text("n/a")) for k, v in pnl.summary.items()}
    metadata["bankroll_chart"] = dg.MetadataValue.md(plots.markdown_image(curve_png, "bankroll"))
    if len(pnl.calibration) >= 20:
        calib_png = plots.png_bytes(
            plots.reliability_diagram(
                {"in-play model": pnl.calibration["probability"].to_numpy()},
                pnl.calibration["first_won"].to_numpy(),
                f"In-play predictions on {pnl.summary['finished_matches']} finished matches",
            )
        )
        (reports / "live_calibration.png").write_bytes(calib_png)
        metadata["calibration_chart"] = dg.MetadataValue.md(plots.markdown_image(calib_png, "calibration"))
    metadata["chart_files"] = dg.MetadataValue.path(str(reports / "live_bankroll.png"))
    metadata["settlements"] = _table(pnl.curve.tail(20))
    return dg.MaterializeResult(metadata=metadata)


class LiveBatchConfig(dg.Config):
    """Which log entries form the batch: after_id < id <= upto_id."""

    after_id: int = 0
    upto_id: int = 0
    """0: up to the newest entry."""


@dg.asset(group_name=LIVE_GROUP, kinds={"pandas"})
def live_event_batch(config: LiveBatchConfig, courtside: CourtsideResource) -> dg.Output[pd.DataFrame]:
    """One batch of the live event log, flat, for the Great Expectations suite ``live_events``."""
    from storage.live import last_event_id

    upto = config.upto_id or last_event_id(courtside.engine)
    frame = control.events_frame(courtside.engine, config.after_id, upto)
    return dg.Output(
        frame,
        metadata={
            "dagster/row_count": len(frame),
            "after_id": config.after_id,
            "upto_id": upto,
            "by_kind": dg.MetadataValue.json(frame["kind"].value_counts().to_dict()),
        },
    )
