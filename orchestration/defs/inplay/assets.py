"""In-play: the point-level dataset of the ATP point-by-point matches, the three in-play models (each an
MLflow run in ``tennis-inplay``), their test scores by stage of the match, the challenger registered as
``tennis-inplay@challenger`` and the champion alias that ``/predict_live`` serves. Thin wrappers over
``training.inplay_data``, ``training.inplay_models`` and ``training.inplay_evaluation``."""

import datetime as dt
import time
from pathlib import Path

import dagster as dg
import pandas as pd

from orchestration.defs.shared.execution import CRITICAL_PATH
from orchestration.defs.shared.progress import reporter
from orchestration.defs.shared.registry import promote
from orchestration.defs.shared.resources import CourtsideResource, MlflowResource, WindowsResource
from training import plots, tracking
from training.inplay_data import InplayTrainingConfig, build_points, pbp_sequences, strength_of
from training.inplay_evaluation import (
    beats_at_every_stage,
    choose_inplay_challenger,
    log_test_evaluation,
    stage_markdown,
    stage_plot,
    stage_table,
)
from training.inplay_models import fit_and_log, predict_rows
from training.prematch import CandidateResult, best_by_validation
from training.windows import require_seasons

GROUP = "inplay"


class InplayPointsConfig(dg.Config):
    """The share of train/validation points kept (the seasons are the ``windows`` resource's in-play windows)."""

    sample_share: float = InplayTrainingConfig.sample_share
    """Share of the points of train and validation matches kept (test matches keep every point)."""
    seed: int = InplayTrainingConfig.seed


@dg.asset(group_name=GROUP, kinds={"pandas", "parquet"}, op_tags=CRITICAL_PATH)
def inplay_points(
    context: dg.AssetExecutionContext,
    config: InplayPointsConfig,
    windows: WindowsResource,
    pbp_matched: pd.DataFrame,
    walkforward_predictions: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    """The state before every point of the test matches (a seeded share of the points of training and
    validation matches) of the ATP point-by-point data, as in-play feature rows with the match's result
    for the first server; the pre-match probability is the walk-forward model's (out of sample), made with
    the same windows. The serve prior strength of the updated chain is chosen on the validation points."""
    start = time.perf_counter()
    configured = windows.get()
    configured.check_table(walkforward_predictions, "walkforward_predictions", configured.walkforward_splits())
    settings = InplayTrainingConfig(windows=configured.inplay, sample_share=config.sample_share, seed=config.seed)
    sequences, left_out = pbp_sequences(pbp_matched, walkforward_predictions, settings.windows)
    for split, window in configured.inplay_splits().items():
        require_seasons(
            f"inplay_{split}",
            window,
            sequences.loc[sequences["split"] == split, "season"],
            "point-by-point matches with a walk-forward prior",
        )
    prior = sequences[["match_id", "split"]].merge(
        walkforward_predictions[["match_id", "split"]].drop_duplicates("match_id"),
        on="match_id",
        suffixes=("", "_prior"),
    )
    points, chosen = build_points(sequences, settings, progress=reporter(context, "in-play points"))
    rows = points.rows
    return dg.Output(
        rows,
        metadata={
            "dagster/row_count": len(rows),
            "seconds": round(time.perf_counter() - start, 1),
            "serve_prior_strength": chosen.serve_prior_strength,
            "serve_prior_strength_choice": dg.MetadataValue.md(
                points.strength_scores.to_markdown(index=False, floatfmt=".4f")
            ),
            "left_out_before_replay": dg.MetadataValue.json(left_out),
            "replay": dg.MetadataValue.json(points.counts),
            "rejected_sequences_sample": dg.MetadataValue.md(
                "\n".join(f"- {e}" for e in points.errors) if points.errors else "none"
            ),
            "windows": dg.MetadataValue.json(configured.as_dict()),
            "prior_split_by_inplay_split": dg.MetadataValue.json(
                {
                    str(k): {str(p): int(n) for p, n in g.value_counts().items()}
                    for k, g in prior.groupby("split")["split_prior"]
                }
            ),
            "sample_share": settings.sample_share,
            "data_version": tracking.frame_version(sequences[["match_id", "prematch_p", "a_won", "pbp"]]),
        },
    )


def _validation_markdown(results: list[CandidateResult]) -> str:
    frame = pd.DataFrame(
        [{"model": r.name, **{f"val_{k}": v for k, v in r.validation_scores.items() if k != "n"}} for r in results]
    )
    return frame.sort_values("val_log_loss").to_markdown(index=False, floatfmt=".4f")


@dg.asset(group_name=GROUP, kinds={"mlflow", "xgboost"}, op_tags=CRITICAL_PATH)
def inplay_candidates(
    context: dg.AssetExecutionContext, mlflow: MlflowResource, windows: WindowsResource, inplay_points: pd.DataFrame
) -> dg.Output[list[CandidateResult]]:
    """The three in-play models (constant-serve chain, updated chain, XGBoost correction of the updated
    chain) fitted on the training seasons and scored on the validation points; one MLflow run each."""
    exp_id = mlflow.configure(tracking.INPLAY_EXPERIMENT)
    data_version = tracking.frame_version(inplay_points)
    batch = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{context.run_id[:8]}"
    results = fit_and_log(inplay_points, data_version, batch)
    windows.get().tag_runs(r.run_id for r in results)
    return dg.Output(
        results,
        metadata={
            "validation_scores": dg.MetadataValue.md(_validation_markdown(results)),
            "serve_prior_strength": strength_of(inplay_points),
            "data_version": data_version,
            "training_batch": batch,
            **{f"mlflow_run_{r.name}": dg.MetadataValue.url(mlflow.run_url(exp_id, r.run_id)) for r in results},
        },
    )


@dg.asset(group_name=GROUP, kinds={"mlflow", "pandas"}, op_tags=CRITICAL_PATH)
def inplay_evaluation(
    courtside: CourtsideResource,
    mlflow: MlflowResource,
    windows: WindowsResource,
    inplay_points: pd.DataFrame,
    inplay_candidates: list[CandidateResult],
) -> dg.Output[pd.DataFrame]:
    """Every in-play model on every point of the test matches: log-loss, Brier and accuracy before the
    first point, over each quarter of the match's points, and over each set; added to each model's MLflow run."""
    test = inplay_points[inplay_points["split"] == "test"].reset_index(drop=True)
    forecasts = {r.name: predict_rows(r.model, test) for r in inplay_candidates}
    table = stage_table(test, forecasts)
    summary = stage_markdown(table)
    beats = {name: beats_at_every_stage(table, name) for name in forecasts if name != "markov"}

    reports = Path(courtside.reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    calib = plots.png_bytes(
        plots.reliability_diagram(
            forecasts, test["a_won"].to_numpy(), "In-play calibration, every point of the test matches"
        )
    )
    stages = plots.png_bytes(stage_plot(table, "log_loss", "In-play log-loss by stage (test matches, lower is better)"))
    paths = {"inplay_calibration.png": calib, "inplay_log_loss_by_stage.png": stages}
    for name, png in paths.items():
        (reports / name).write_bytes(png)
    (reports / "inplay_evaluation.md").write_text(summary + "\n\n" + windows.get().markdown() + "\n")
    table.to_csv(reports / "inplay_evaluation.csv", index=False)
    mlflow.configure(tracking.INPLAY_EXPERIMENT)
    log_test_evaluation(inplay_candidates, table, [str(reports / name) for name in paths])

    return dg.Output(
        table,
        metadata={
            "summary": dg.MetadataValue.md(summary),
            "test_matches": int(test["match_id"].nunique()),
            "test_points": len(test),
            "beats_constant_chain_at_every_stage": dg.MetadataValue.json(
                {name: all(b.values()) for name, b in beats.items()}
            ),
            "beats_constant_chain_by_stage": dg.MetadataValue.json(beats),
            "calibration_plot": dg.MetadataValue.md(plots.markdown_image(calib, "in-play calibration")),
            "log_loss_by_stage_plot": dg.MetadataValue.md(plots.markdown_image(stages, "log-loss by stage")),
            "report": dg.MetadataValue.path(str(reports / "inplay_evaluation.md")),
        },
    )


@dg.asset(group_name=GROUP, kinds={"mlflow"}, op_tags=CRITICAL_PATH)
def inplay_challenger(
    context: dg.AssetExecutionContext,
    mlflow: MlflowResource,
    inplay_candidates: list[CandidateResult],
    inplay_points: pd.DataFrame,
) -> dg.Output[dict]:
    """Of the in-play models that beat the constant-serve chain on the validation points in every stage bin (each
    quarter of the match's points, each set; the chain itself qualifies), the one with the lowest validation
    log-loss, registered as a new version of ``tennis-inplay`` with alias ``challenger`` (not registered again
    when the current challenger is the same model family trained on the same data)."""
    exp_id = mlflow.configure(tracking.INPLAY_EXPERIMENT)
    validation = inplay_points[inplay_points["split"] == "validation"].reset_index(drop=True)
    best, bins = choose_inplay_challenger(inplay_candidates, validation, predict_rows)
    lowest = best_by_validation(inplay_candidates)
    if lowest.name != best.name:
        lost = [stage for stage, b in bins[lowest.name].items() if not b["beats"]]
        context.log.warning(
            f"{lowest.name} has the lowest validation log-loss but does not beat the constant chain in {lost}: "
            f"the challenger is {best.name}"
        )
    registered = tracking.register_challenger(
        best.model_uri, best.run_id, best.name, best.description, tracking.INPLAY_MODEL
    )
    version, data_version = registered.version, registered.data_version
    if registered.reused:
        context.log.info(f"challenger v{version} is already {best.name} on data {data_version}")
    summary = {
        "version": version,
        "model_family": best.name,
        "run_id": best.run_id,
        "validation_log_loss": best.validation_scores["log_loss"],
        "data_version": data_version,
        "serve_prior_strength": float(best.model.serve_prior_strength),
    }
    return dg.Output(
        summary,
        metadata={
            "model": f"{tracking.INPLAY_MODEL}@{tracking.CHALLENGER}",
            "version": version,
            "reused_existing_version": registered.reused,
            "model_family": best.name,
            "validation_log_loss": best.validation_scores["log_loss"],
            "serve_prior_strength": summary["serve_prior_strength"],
            "bins_against_the_constant_chain": dg.MetadataValue.json(bins),
            "mlflow_run": dg.MetadataValue.url(mlflow.run_url(exp_id, best.run_id)),
        },
    )


@dg.asset(group_name=GROUP, kinds={"mlflow"}, op_tags=CRITICAL_PATH)
def inplay_champion(
    context: dg.AssetExecutionContext, mlflow: MlflowResource, inplay_challenger: dict
) -> dg.Output[dict]:
    """``tennis-inplay@champion`` (what ``/predict_live`` serves): set to the challenger when the blocking
    check ``challenger_beats_champion`` passed (otherwise this asset does not run)."""
    return promote(context, mlflow, inplay_challenger, tracking.INPLAY_EXPERIMENT, tracking.INPLAY_MODEL)
