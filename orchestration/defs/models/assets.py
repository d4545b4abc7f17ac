"""Models: the modelling table with its time windows, the candidates (each an MLflow run), the
challenger registered as ``tennis-prematch@challenger``, and the champion alias."""

import datetime as dt

import dagster as dg
import pandas as pd

from orchestration.defs.shared.execution import LONGEST_CHAIN
from orchestration.defs.shared.progress import reporter
from orchestration.defs.shared.resources import MlflowResource, WindowsResource
from training import tracking
from training.evaluation import attach_market_prices
from training.prematch import CandidateResult, best_by_validation, train_all
from training.splits import model_rows
from training.windows import require_seasons


@dg.asset(group_name="models", kinds={"pandas", "parquet"}, op_tags=LONGEST_CHAIN)
def model_dataset(
    windows: WindowsResource,
    prematch_features: pd.DataFrame,
    odds_tour_matched: pd.DataFrame,
    odds_slams_matched: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    """Tour-level matches that settle, inside the train/validation/test windows (the ``windows`` resource),
    with ``split`` and the closing prices of both players where the odds files have them (never features:
    they mark the rows on which models are compared with the market)."""
    configured = windows.get()
    rows = attach_market_prices(model_rows(prematch_features, configured.model), odds_tour_matched, odds_slams_matched)
    for split in ("train", "validation", "test"):
        require_seasons(
            split, getattr(configured, split), rows.loc[rows["split"] == split, "season"], "tour-level modelling rows"
        )
    counts = rows["split"].value_counts().to_dict()
    priced = rows.groupby("split")["b365_a"].apply(lambda s: int(s.notna().sum())).to_dict()
    return dg.Output(
        rows,
        metadata={
            "dagster/row_count": len(rows),
            **{f"{k}_rows": int(v) for k, v in counts.items()},
            **{f"{k}_rows_with_bet365": v for k, v in priced.items()},
            "windows": dg.MetadataValue.json(configured.as_dict()),
            "data_version": tracking.frame_version(rows),
        },
    )


def _scores_markdown(results: list[CandidateResult]) -> str:
    frame = pd.DataFrame(
        [{"model": r.name, **{f"val_{k}": v for k, v in r.validation_scores.items() if k != "n"}} for r in results]
    )
    return frame.sort_values("val_log_loss").to_markdown(index=False, floatfmt=".4f")


@dg.asset(group_name="models", kinds={"mlflow", "xgboost", "scikitlearn"}, op_tags=LONGEST_CHAIN)
def prematch_candidates(
    context: dg.AssetExecutionContext, mlflow: MlflowResource, windows: WindowsResource, model_dataset: pd.DataFrame
) -> dg.Output[list[CandidateResult]]:
    """Every candidate (higher-rank, Elo, logistic regression, XGBoost) fitted on the training
    window and scored on the validation window; one MLflow run each, with plots and the model."""
    exp_id = mlflow.configure(tracking.PREMATCH_EXPERIMENT)
    configured = windows.get()
    configured.check_table(model_dataset, "model_dataset", configured.model_splits())
    data_version = tracking.frame_version(model_dataset)
    batch = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{context.run_id[:8]}"
    results = train_all(model_dataset, configured.model, data_version, batch, progress=reporter(context, "train"))
    configured.tag_runs(r.run_id for r in results)
    return dg.Output(
        results,
        metadata={
            "validation_scores": dg.MetadataValue.md(_scores_markdown(results)),
            "data_version": data_version,
            "training_batch": batch,
            **{f"mlflow_run_{r.name}": dg.MetadataValue.url(mlflow.run_url(exp_id, r.run_id)) for r in results},
        },
    )


@dg.asset(group_name="models", kinds={"mlflow"})
def prematch_challenger(
    context: dg.AssetExecutionContext, mlflow: MlflowResource, prematch_candidates: list[CandidateResult]
) -> dg.Output[dict]:
    """The candidate with the lowest validation log-loss, registered as a new version of
    ``tennis-prematch`` with alias ``challenger`` (not registered again when the current
    challenger is the same model family trained on the same data)."""
    exp_id = mlflow.configure(tracking.PREMATCH_EXPERIMENT)
    best = best_by_validation(prematch_candidates)
    registered = tracking.register_challenger(
        best.model_uri, best.run_id, best.name, best.description, tracking.PREMATCH_MODEL
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
    }
    return dg.Output(
        summary,
        metadata={
            "model": f"{tracking.PREMATCH_MODEL}@{tracking.CHALLENGER}",
            "version": version,
            "reused_existing_version": registered.reused,
            "model_family": best.name,
            "validation_log_loss": best.validation_scores["log_loss"],
            "mlflow_run": dg.MetadataValue.url(mlflow.run_url(exp_id, best.run_id)),
        },
    )


@dg.asset(group_name="models", kinds={"mlflow"})
def prematch_champion(
    context: dg.AssetExecutionContext, mlflow: MlflowResource, prematch_challenger: dict
) -> dg.Output[dict]:
    """``tennis-prematch@champion``: set to the challenger when the blocking check
    ``challenger_beats_champion`` passed (otherwise this asset does not run)."""
    mlflow.configure(tracking.PREMATCH_EXPERIMENT)
    version = prematch_challenger["version"]
    tracking.promote_to_champion(version, tracking.PREMATCH_MODEL)
    context.log.info(f"{tracking.PREMATCH_MODEL}@{tracking.CHAMPION} -> v{version}")
    return dg.Output(
        prematch_challenger,
        metadata={
            "model": f"{tracking.PREMATCH_MODEL}@{tracking.CHAMPION}",
            "version": version,
            "model_family": prematch_challenger["model_family"],
            "validation_log_loss": prematch_challenger["validation_log_loss"],
        },
    )
