"""Evaluation on the test window against the bookmakers, on exactly the same rows."""


from pathlib import Path

import dagster as dg
import mlflow as mlflow_api
import pandas as pd

from orchestration.defs.shared.resources import CourtsideResource, MlflowResource
from training import plots, tracking
from training.evaluation import coverage, evaluate, summary_markdown
from training.models import predict
from training.prematch import CandidateResult


@dg.asset(group_name="evaluation", kinds={"mlflow", "pandas"})
def test_evaluation(
    context: dg.AssetExecutionContext,
    courtside: CourtsideResource,
    mlflow: MlflowResource,
    model_dataset: pd.DataFrame,
    prematch_candidates: list[CandidateResult],
    prematch_challenger: dict,
) -> dg.Output[pd.DataFrame]:
    """Every candidate vs the margin-free Bet365 (all tour-level) and Pinnacle (Grand Slams)
    closing prices on the test window: log-loss, Brier, accuracy, calibration error, by tier."""
    test = model_dataset[model_dataset["split"] == "test"].reset_index(drop=True)
    forecasts = {r.name: predict(r.model, test) for r in prematch_candidates}
    table = evaluate(test, forecasts)
    summary = summary_markdown(table)

    tour = table[(table["comparison"] == "tour_bet365") & (table["tier"] == "all")]
    sel = test[["b365_a", "b365_b"]].notna().all(axis=1).to_numpy()
    calib = plots.png_bytes(plots.reliability_diagram(
        {name: p[sel] for name, p in forecasts.items()}, test.loc[sel, "a_won"].to_numpy(),
        "Test window calibration (tour-level rows with Bet365 prices)"))
    tiers = plots.png_bytes(plots.scores_by_tier(
        table[(table["comparison"] == "tour_bet365") & (table["tier"] != "all")], "log_loss",
        "Test-window log-loss by tier (lower is better)"))

    reports = Path(courtside.reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "test_evaluation.md").write_text(summary + "\n")
    table.to_csv(reports / "test_evaluation.csv", index=False)
    (reports / "test_calibration.png").write_bytes(calib)
    (reports / "test_log_loss_by_tier.png").write_bytes(tiers)

    exp_id = mlflow.configure(tracking.PREMATCH_EXPERIMENT)
    with mlflow_api.start_run(run_name="test-evaluation") as run:
        mlflow_api.set_tags({"kind": "evaluation", "challenger_version": prematch_challenger["version"],
                             "data_version": tracking.frame_version(model_dataset)})
        for r in tour.itertuples():
            mlflow_api.log_metrics({f"test_{r.forecaster}_log_loss": r.log_loss,
                                    f"test_{r.forecaster}_brier": r.brier,
                                    f"test_{r.forecaster}_accuracy": r.accuracy,
                                    f"test_{r.forecaster}_calibration_error": r.calibration_error})
        mlflow_api.log_text(summary, "test_evaluation.md")
        mlflow_api.log_table(table, "test_evaluation.json")
        mlflow_api.log_artifact(str(reports / "test_calibration.png"))
        mlflow_api.log_artifact(str(reports / "test_log_loss_by_tier.png"))

    return dg.Output(table, metadata={
        "summary": dg.MetadataValue.md(summary),
        "calibration_plot": dg.MetadataValue.md(plots.markdown_image(calib, "calibration")),
        "log_loss_by_tier_plot": dg.MetadataValue.md(plots.markdown_image(tiers, "log-loss by tier")),
        "report": dg.MetadataValue.path(str(reports / "test_evaluation.md")),
        "mlflow_run": dg.MetadataValue.url(mlflow.run_url(exp_id, run.info.run_id)),
        **{k: dg.MetadataValue.int(v) for k, v in coverage(test, table).items()},
    })
