"""Evaluation on the test window against the bookmakers, on exactly the same rows."""

from pathlib import Path

import dagster as dg
import mlflow as mlflow_api
import pandas as pd

from orchestration.defs.shared import metadata
from orchestration.defs.shared.execution import LONGEST_CHAIN
from orchestration.defs.shared.progress import reporter
from orchestration.defs.shared.resources import CourtsideResource, MlflowResource, WindowsResource
from training import plots, tracking
from training.evaluation import attach_market_prices, coverage, evaluate, priced_rows, summary_markdown
from training.models import predict, walkforward_xgboost
from training.prematch import CandidateResult
from training.splits import modelling_rows
from training.tours import MODEL, compare_on_slams, comparison_markdown
from training.walkforward import WalkForward, walk_forward
from training.walkforward import report as wf_report
from training.windows import require_seasons


@dg.asset(group_name="evaluation", kinds={"mlflow", "pandas"})
def test_evaluation(
    context: dg.AssetExecutionContext,
    courtside: CourtsideResource,
    mlflow: MlflowResource,
    windows: WindowsResource,
    model_dataset: pd.DataFrame,
    prematch_candidates: list[CandidateResult],
    prematch_challenger: dict,
) -> dg.Output[pd.DataFrame]:
    """Every candidate vs the margin-free Bet365 (all tour-level) and Pinnacle (Grand Slams)
    closing prices on the test window: log-loss, Brier, accuracy, calibration error, by tier."""
    configured = windows.get()
    configured.check_table(model_dataset, "model_dataset", configured.model_splits())
    test = model_dataset[model_dataset["split"] == "test"].reset_index(drop=True)
    forecasts = {r.name: predict(r.model, test) for r in prematch_candidates}
    table = evaluate(test, forecasts)
    summary = summary_markdown(table)

    sel = test[["b365_a", "b365_b"]].notna().all(axis=1).to_numpy()
    calib = plots.png_bytes(
        plots.reliability_diagram(
            {name: p[sel] for name, p in forecasts.items()},
            test.loc[sel, "a_won"].to_numpy(),
            "Test window calibration (tour-level rows with Bet365 prices)",
        )
    )
    tiers = plots.png_bytes(
        plots.scores_by_tier(
            table[(table["comparison"] == "tour_bet365") & (table["tier"] != "all")],
            "log_loss",
            "Test-window log-loss by tier (lower is better)",
        )
    )

    reports = Path(courtside.reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "test_evaluation.md").write_text(summary + "\n\n" + configured.markdown() + "\n")
    table.to_csv(reports / "test_evaluation.csv", index=False)
    (reports / "test_calibration.png").write_bytes(calib)
    (reports / "test_log_loss_by_tier.png").write_bytes(tiers)

    exp_id = mlflow.configure(tracking.EVALUATION_EXPERIMENT)
    with mlflow_api.start_run(run_name="test-evaluation") as run:
        mlflow_api.set_tags(
            {
                "kind": "evaluation",
                "challenger_version": prematch_challenger["version"],
                "data_version": tracking.frame_version(model_dataset),
                **configured.tags(),
            }
        )
        overall = table[table["tier"] == "all"]
        for r in overall.itertuples():  # <tour>_<rows>_<forecaster>_<metric> (tracking.EVALUATION_EXPERIMENT)
            prefix = f"atp_{r.comparison}_{r.forecaster}"
            mlflow_api.log_metrics(
                {
                    f"{prefix}_log_loss": r.log_loss,
                    f"{prefix}_brier": r.brier,
                    f"{prefix}_accuracy": r.accuracy,
                    f"{prefix}_calibration_error": r.calibration_error,
                }
            )
        mlflow_api.log_text(summary, "test_evaluation.md")
        mlflow_api.log_table(table, "test_evaluation.json")
        mlflow_api.log_artifact(str(reports / "test_calibration.png"))
        mlflow_api.log_artifact(str(reports / "test_log_loss_by_tier.png"))

    return dg.Output(
        table,
        metadata={
            "summary": dg.MetadataValue.md(summary),
            "calibration_plot": dg.MetadataValue.md(plots.markdown_image(calib, "calibration")),
            "log_loss_by_tier_plot": dg.MetadataValue.md(plots.markdown_image(tiers, "log-loss by tier")),
            "report": dg.MetadataValue.path(str(reports / "test_evaluation.md")),
            "mlflow_run": dg.MetadataValue.url(mlflow.run_url(exp_id, run.info.run_id)),
            "windows": dg.MetadataValue.json(configured.as_dict()),
            **{k: dg.MetadataValue.int(v) for k, v in coverage(test, table).items()},
            "scores": metadata.table(table[table["tier"] == "all"].round(5)),
            **metadata.numbers(
                {
                    f"{r.comparison}_{r.forecaster}_log_loss": r.log_loss
                    for r in table[table["tier"] == "all"].itertuples()
                }
            ),
        },
    )


def _rows_of(table: pd.DataFrame, tour: str) -> int:
    n = table.loc[table["tour"] == tour, "n"]
    return int(n.max()) if len(n) else 0


def _challenger_forecasts(rows: pd.DataFrame, candidates: list[CandidateResult], challenger: dict) -> dict:
    by_name = {r.name: r for r in candidates}
    model = by_name[challenger["model_family"]]
    elo = by_name["blend_elo"]
    return {
        MODEL: predict(model.model, rows, model.features),
        "blend_elo": predict(elo.model, rows, elo.features),
    }


@dg.asset(group_name="evaluation", kinds={"mlflow", "pandas"})
def tour_comparison(
    context: dg.AssetExecutionContext,
    courtside: CourtsideResource,
    mlflow: MlflowResource,
    model_dataset: pd.DataFrame,
    prematch_candidates: list[CandidateResult],
    prematch_challenger: dict,
    wta_model_dataset: pd.DataFrame,
    wta_prematch_candidates: list[CandidateResult],
    wta_prematch_challenger: dict,
) -> dg.Output[pd.DataFrame]:
    """The ATP and the WTA side by side on their test-window Grand Slam matches priced by both Pinnacle and
    Bet365: each tour's challenger vs its blended Elo vs the margin-free market, log-loss with 95% bootstrap
    intervals and the model's paired difference to each (``training.tours``); one ``tennis-evaluation`` run."""
    tables = []
    for tour, rows, candidates, challenger in (
        ("ATP", model_dataset, prematch_candidates, prematch_challenger),
        ("WTA", wta_model_dataset, wta_prematch_candidates, wta_prematch_challenger),
    ):
        test = rows[rows["split"] == "test"].reset_index(drop=True)
        tables.append(compare_on_slams(tour, test, _challenger_forecasts(test, candidates, challenger)))
    table = pd.concat([t for t in tables if len(t)] or [tables[0]], ignore_index=True)
    for tour in ("ATP", "WTA"):
        if not (table["tour"] == tour).any():
            context.log.warning(f"{tour}: no test-window Grand Slam match has both Pinnacle and Bet365 prices")
    models = {
        "ATP": f"{tracking.PREMATCH_MODEL} v{prematch_challenger['version']} ({prematch_challenger['model_family']})",
        "WTA": f"{tracking.WTA_PREMATCH_MODEL} v{wta_prematch_challenger['version']} "
        f"({wta_prematch_challenger['model_family']})",
    }
    summary = (
        comparison_markdown(table)
        + "\n\nmodel: "
        + "; ".join(f"{t}: {m}" for t, m in models.items())
        + " (the challenger of each tour's pipeline run)."
    )
    reports = Path(courtside.reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "tour_comparison.md").write_text(summary + "\n")
    table.to_csv(reports / "tour_comparison.csv", index=False)

    exp_id = mlflow.configure(tracking.EVALUATION_EXPERIMENT)
    with mlflow_api.start_run(run_name="tour-comparison-slams") as run:
        mlflow_api.set_tags(
            {
                "kind": "evaluation",
                "atp_model": models["ATP"],
                "wta_model": models["WTA"],
                "data_version": tracking.frame_version(model_dataset, wta_model_dataset),
            }
        )
        for r in table.itertuples():
            prefix = f"{r.tour.lower()}_slams_{r.forecaster}"
            mlflow_api.log_metrics(
                {
                    f"{prefix}_log_loss": r.log_loss,
                    f"{prefix}_brier": r.brier,
                    f"{prefix}_accuracy": r.accuracy,
                    f"{prefix}_n": float(r.n),
                }
            )
        mlflow_api.log_text(summary, "tour_comparison.md")
        mlflow_api.log_table(table, "tour_comparison.json")
    return dg.Output(
        table,
        metadata={
            "summary": dg.MetadataValue.md(summary),
            "report": dg.MetadataValue.path(str(reports / "tour_comparison.md")),
            "mlflow_run": dg.MetadataValue.url(mlflow.run_url(exp_id, run.info.run_id)),
            **{f"{t.lower()}_slam_rows": _rows_of(table, t) for t in ("ATP", "WTA")},
            "comparison": metadata.table(table.round(5)),
            **metadata.numbers(
                {f"{r.tour.lower()}_{r.forecaster}_log_loss": r.log_loss for r in table.itertuples()}
                | {
                    f"{r.tour.lower()}_model_minus_{r.forecaster}": r.model_minus
                    for r in table.itertuples()
                    if r.forecaster != MODEL
                }
            ),
        },
    )


class WalkForwardConfig(dg.Config):
    """How the walk-forward refits and calibrates; its seasons are the ``windows`` resource's (from
    ``walkforward_from`` to the end of the test window, trained from the first training season)."""

    step: int = WalkForward.step
    warmup_seasons: int = WalkForward.warmup_seasons
    calibration_seasons: int = WalkForward.calibration_seasons
    blend_seasons: int = WalkForward.blend_seasons


@dg.asset(group_name="evaluation", kinds={"xgboost", "pandas", "parquet"}, op_tags=LONGEST_CHAIN)
def walkforward_predictions(
    context: dg.AssetExecutionContext,
    config: WalkForwardConfig,
    windows: WindowsResource,
    prematch_features: pd.DataFrame,
    odds_tour_matched: pd.DataFrame,
    odds_slams_matched: pd.DataFrame,
    prematch_candidates: list[CandidateResult],
) -> dg.Output[pd.DataFrame]:
    """Out-of-sample P(player A wins) for every settled tour-level match of each season of the walk-forward
    window (``walkforward_from`` to the end of the test window): XGBoost refitted every ``step`` seasons on all
    earlier seasons (tree count fixed on the validation window), calibrated by a map fitted on earlier seasons
    only; the surface-blended Elo with its weight fitted on the preceding seasons; closing prices where the
    odds files have them. Seasons before the test window are ``validation``, the test window ``test``."""
    configured = windows.get()
    wf = WalkForward(**configured.walkforward_seasons(), **config.model_dump())
    xgb = next(r for r in prematch_candidates if r.name == "xgboost")
    trees = int(xgb.model.best_iteration) + 1
    rows = attach_market_prices(modelling_rows(prematch_features), odds_tour_matched, odds_slams_matched)
    require_seasons("walkforward", configured.walkforward, rows["season"], "tour-level modelling rows")
    table, summary = walk_forward(
        rows, wf, lambda: walkforward_xgboost(trees), progress=reporter(context, "walk-forward folds")
    )
    return dg.Output(
        table,
        metadata={
            "dagster/row_count": len(table),
            "xgboost_trees": trees,
            "calibration_method": summary["calibration_method"],
            "calibration_validation_log_loss": dg.MetadataValue.json(summary["calibration_validation_log_loss"]),
            "folds": dg.MetadataValue.md(pd.DataFrame(summary["folds"]).to_markdown(index=False)),
            "rows_by_split": dg.MetadataValue.json(table["split"].value_counts().to_dict()),
            "summary": dg.MetadataValue.json(summary),
            "windows": dg.MetadataValue.json(configured.as_dict()),
        },
    )


@dg.asset(group_name="evaluation", kinds={"mlflow", "pandas"})
def walkforward_evaluation(
    courtside: CourtsideResource,
    mlflow: MlflowResource,
    windows: WindowsResource,
    walkforward_predictions: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    """The walk-forward predictions scored: on the test seasons against the margin-free closing market
    on exactly the same rows (Bet365 tour-level, Pinnacle at Grand Slams), by season, tier and ranking
    band, with paired bootstrap differences, reliability plots and the issue's targets met or not."""
    table = walkforward_predictions
    configured = windows.get()
    configured.check_table(table, "walkforward_predictions", configured.walkforward_splits())
    rep = wf_report(table)
    test = priced_rows(table[table["split"] == "test"], "bet365")
    calib = plots.png_bytes(
        plots.reliability_diagram(
            {
                "xgboost (calibrated)": test["p_model"].to_numpy(),
                "xgboost (raw)": test["p_model_raw"].to_numpy(),
                "blend_elo": test["p_blend_elo"].to_numpy(),
                "market": test["p_market"].to_numpy(),
            },
            test["a_won"].to_numpy(),
            "Walk-forward, test seasons (Bet365 rows)",
        )
    )
    seasons = plots.png_bytes(
        plots.metric_by_group(rep.by_season, "log_loss", "Walk-forward log-loss by season (Bet365 rows)", "season")
    )

    reports = Path(courtside.reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "walkforward.md").write_text(rep.markdown + "\n\n" + configured.markdown() + "\n")
    (reports / "walkforward_calibration.png").write_bytes(calib)
    (reports / "walkforward_log_loss_by_season.png").write_bytes(seasons)
    for name in ("overall", "by_season", "by_tier", "by_rank_band", "season_all_rows", "paired"):
        getattr(rep, name).to_csv(reports / f"walkforward_{name}.csv", index=False)

    exp_id = mlflow.configure(tracking.EVALUATION_EXPERIMENT)
    with mlflow_api.start_run(run_name="walk-forward-evaluation") as run:
        mlflow_api.set_tags(
            {
                "kind": "evaluation",
                "evaluation": "walk-forward",
                "data_version": tracking.frame_version(table),
                **configured.tags(),
            }
        )
        mlflow_api.log_params(
            {
                "seasons": f"{int(table['season'].min())}-{int(table['season'].max())}",
                "test_start": int(table.loc[table["split"] == "test", "season"].min()),
                "calibration_method": str(table["calibration_method"].iloc[0]),
            }
        )
        for r in rep.overall.itertuples():  # <tour>_<rows>_<forecaster>_<metric>
            prefix = f"atp_walkforward_{r.market}_{r.forecaster.split(' ')[0]}"
            mlflow_api.log_metrics(
                {
                    f"{prefix}_log_loss": r.log_loss,
                    f"{prefix}_brier": r.brier,
                    f"{prefix}_accuracy": r.accuracy,
                    f"{prefix}_calibration_error": r.calibration_error,
                }
            )
        mlflow_api.log_metrics({f"atp_walkforward_{k}": float(v) for k, v in rep.targets.items()})
        mlflow_api.log_text(rep.markdown, "walkforward.md")
        mlflow_api.log_artifact(str(reports / "walkforward_calibration.png"))
        mlflow_api.log_artifact(str(reports / "walkforward_log_loss_by_season.png"))

    return dg.Output(
        rep.season_all_rows,
        metadata={
            "report": dg.MetadataValue.md(rep.markdown),
            "calibration_plot": dg.MetadataValue.md(plots.markdown_image(calib, "calibration")),
            "log_loss_by_season_plot": dg.MetadataValue.md(plots.markdown_image(seasons, "log-loss by season")),
            "targets": dg.MetadataValue.json(rep.targets),
            "overall": metadata.table(rep.overall.round(5)),
            **metadata.numbers(
                {f"{r.market}_{r.forecaster.split(' ')[0]}_log_loss": r.log_loss for r in rep.overall.itertuples()}
            ),
            "report_path": dg.MetadataValue.path(str(reports / "walkforward.md")),
            "windows": dg.MetadataValue.json(configured.as_dict()),
            "mlflow_run": dg.MetadataValue.url(mlflow.run_url(exp_id, run.info.run_id)),
        },
    )
