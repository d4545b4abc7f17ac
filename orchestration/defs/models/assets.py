"""Models: the modelling table with its time windows, the candidates (each an MLflow run), the
challenger registered as ``tennis-prematch@challenger``, and the champion alias."""

import datetime as dt

import dagster as dg
import pandas as pd

from orchestration.defs.shared.execution import LONGEST_CHAIN
from orchestration.defs.shared.progress import reporter
from orchestration.defs.shared.registry import promote
from orchestration.defs.shared.resources import MlflowResource, WindowsResource
from training import tracking
from training.evaluation import attach_market_prices
from training.metrics import score
from training.models import BOTH_TOURS, predict
from training.prematch import CandidateResult, best_by_validation, fit_and_log, train_all
from training.splits import model_rows
from training.tours import with_tour_feature
from training.windows import require_seasons


def _model_dataset(
    windows: WindowsResource,
    features: pd.DataFrame,
    tour_odds: pd.DataFrame | None,
    slam_odds: pd.DataFrame,
    what: str,
    priced_by: str,
) -> dg.Output[pd.DataFrame]:
    configured = windows.get()
    rows = attach_market_prices(model_rows(features, configured.model), tour_odds, slam_odds)
    for split in ("train", "validation", "test"):
        require_seasons(split, getattr(configured, split), rows.loc[rows["split"] == split, "season"], what)
    counts = rows["split"].value_counts().to_dict()
    priced = rows.groupby("split")[priced_by].apply(lambda s: int(s.notna().sum())).to_dict()
    label = "bet365" if priced_by == "b365_a" else "pinnacle"
    return dg.Output(
        rows,
        metadata={
            "dagster/row_count": len(rows),
            **{f"{k}_rows": int(v) for k, v in counts.items()},
            **{f"{k}_rows_with_{label}": v for k, v in priced.items()},
            "windows": dg.MetadataValue.json(configured.as_dict()),
            "data_version": tracking.frame_version(rows),
        },
    )


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
    return _model_dataset(
        windows, prematch_features, odds_tour_matched, odds_slams_matched, "tour-level modelling rows", "b365_a"
    )


@dg.asset(group_name="models", kinds={"pandas", "parquet"})
def wta_model_dataset(
    windows: WindowsResource, wta_prematch_features: pd.DataFrame, wta_odds_slams_matched: pd.DataFrame
) -> dg.Output[pd.DataFrame]:
    """The WTA's modelling rows, the same windows as the men's, with the Grand Slam closing prices (Pinnacle,
    Bet365) where the women's odds file has them: the data has no WTA tour-level odds."""
    return _model_dataset(
        windows, wta_prematch_features, None, wta_odds_slams_matched, "WTA tour-level modelling rows", "ps_a"
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


def _challenger(
    context: dg.AssetExecutionContext,
    mlflow: MlflowResource,
    candidates: list[CandidateResult],
    experiment: str,
    model_name: str,
) -> dg.Output[dict]:
    """The candidate with the lowest validation log-loss registered as ``model_name@challenger``."""
    exp_id = mlflow.configure(experiment)
    best = best_by_validation(candidates)
    registered = tracking.register_challenger(best.model_uri, best.run_id, best.name, best.description, model_name)
    version, data_version = registered.version, registered.data_version
    if registered.reused:
        context.log.info(f"{model_name}@challenger v{version} is already {best.name} on data {data_version}")
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
            "model": f"{model_name}@{tracking.CHALLENGER}",
            "version": version,
            "reused_existing_version": registered.reused,
            "model_family": best.name,
            "one_model_for_both_tours": best.name == BOTH_TOURS.name,
            "validation_log_loss": best.validation_scores["log_loss"],
            "mlflow_run": dg.MetadataValue.url(mlflow.run_url(exp_id, best.run_id)),
        },
    )


@dg.asset(group_name="models", kinds={"mlflow"})
def prematch_challenger(
    context: dg.AssetExecutionContext, mlflow: MlflowResource, prematch_candidates: list[CandidateResult]
) -> dg.Output[dict]:
    """The candidate with the lowest validation log-loss, registered as a new version of
    ``tennis-prematch`` with alias ``challenger`` (not registered again when the current
    challenger is the same model family trained on the same data)."""
    return _challenger(context, mlflow, prematch_candidates, tracking.PREMATCH_EXPERIMENT, tracking.PREMATCH_MODEL)


@dg.asset(group_name="models", kinds={"mlflow"})
def prematch_champion(
    context: dg.AssetExecutionContext, mlflow: MlflowResource, prematch_challenger: dict
) -> dg.Output[dict]:
    """``tennis-prematch@champion``: set to the challenger when the blocking check
    ``challenger_beats_champion`` passed (otherwise this asset does not run)."""
    return promote(context, mlflow, prematch_challenger, tracking.PREMATCH_EXPERIMENT, tracking.PREMATCH_MODEL)


@dg.asset(group_name="models", kinds={"mlflow", "xgboost", "scikitlearn"})
def wta_prematch_candidates(
    context: dg.AssetExecutionContext,
    mlflow: MlflowResource,
    windows: WindowsResource,
    wta_model_dataset: pd.DataFrame,
    model_dataset: pd.DataFrame,
) -> dg.Output[list[CandidateResult]]:
    """Every candidate fitted on the women's rows alone, and the model of both tours (``xgboost_both_tours``:
    the men's and the women's training rows with the tour as a feature); every one scored on the WTA validation
    rows, one MLflow run each in the ``tennis-prematch-wta`` experiment (the model of both tours also has its
    men's validation log-loss, for the record)."""
    exp_id = mlflow.configure(tracking.WTA_PREMATCH_EXPERIMENT)
    configured = windows.get()
    configured.check_table(wta_model_dataset, "wta_model_dataset", configured.model_splits())
    configured.check_table(model_dataset, "model_dataset", configured.model_splits())  # pooled below
    data_version = tracking.frame_version(wta_model_dataset)
    batch = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{context.run_id[:8]}"
    progress = reporter(context, "train")
    tags = {"tour": "WTA"}
    results = train_all(wta_model_dataset, configured.model, data_version, batch, progress=progress, tags=tags)
    both = with_tour_feature(model_dataset, wta_model_dataset)
    wta_validation = wta_model_dataset[wta_model_dataset["split"] == "validation"]
    pooled = fit_and_log(
        BOTH_TOURS,
        both,
        configured.model,
        tracking.frame_version(model_dataset, wta_model_dataset),
        batch,
        scored_on=wta_validation,
        tags={"tour": "ATP+WTA", "scored_on": "WTA validation"},
    )
    atp_validation = model_dataset[model_dataset["split"] == "validation"]
    atp_ll = score(atp_validation["a_won"].to_numpy(), predict(pooled.model, atp_validation, pooled.features))
    results.append(pooled)
    own = min((r for r in results if r is not pooled), key=lambda r: r.validation_scores["log_loss"])
    return dg.Output(
        results,
        metadata={
            "validation_scores": dg.MetadataValue.md(_scores_markdown(results)),
            "best_of_the_wta_alone": own.name,
            "wta_alone_validation_log_loss": own.validation_scores["log_loss"],
            "both_tours_validation_log_loss_wta": pooled.validation_scores["log_loss"],
            "both_tours_validation_log_loss_atp": atp_ll["log_loss"],
            "data_version": data_version,
            "training_batch": batch,
            **{f"mlflow_run_{r.name}": dg.MetadataValue.url(mlflow.run_url(exp_id, r.run_id)) for r in results},
        },
    )


@dg.asset(group_name="models", kinds={"mlflow"})
def wta_prematch_challenger(
    context: dg.AssetExecutionContext, mlflow: MlflowResource, wta_prematch_candidates: list[CandidateResult]
) -> dg.Output[dict]:
    """The candidate with the lowest WTA validation log-loss -- a model of the women alone or the model of both
    tours: the choice between one model per tour and one for both, made on validation -- registered as a version
    of ``tennis-prematch-wta`` with alias ``challenger``."""
    return _challenger(
        context, mlflow, wta_prematch_candidates, tracking.WTA_PREMATCH_EXPERIMENT, tracking.WTA_PREMATCH_MODEL
    )


@dg.asset(group_name="models", kinds={"mlflow"})
def wta_prematch_champion(
    context: dg.AssetExecutionContext, mlflow: MlflowResource, wta_prematch_challenger: dict
) -> dg.Output[dict]:
    """``tennis-prematch-wta@champion``: set to the challenger when its blocking check
    ``challenger_beats_champion`` passed (the men's rule, on the WTA validation rows)."""
    return promote(
        context, mlflow, wta_prematch_challenger, tracking.WTA_PREMATCH_EXPERIMENT, tracking.WTA_PREMATCH_MODEL
    )
