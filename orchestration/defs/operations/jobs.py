"""Jobs: the whole pipeline, and the pre-match retrain."""


import dagster as dg

pipeline_job = dg.define_asset_job(
    "courtside_pipeline",
    selection=dg.AssetSelection.all(),
    description="Everything: ingest, checks, features, models, evaluation.",
)

retrain_job = dg.define_asset_job(
    "retrain_prematch",
    selection=dg.AssetSelection.assets("prematch_champion", "test_evaluation").upstream(),
    description="Re-ingest, re-check, rebuild features and retrain the pre-match models; promote "
                "the challenger when it beats the champion.",
)
