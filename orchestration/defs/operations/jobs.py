"""Jobs: the whole pipeline, and the pre-match retrain."""

import dagster as dg

from orchestration.defs.features.seasons import SEASONS as SEASONS_PARTITIONS

LIVE = dg.AssetSelection.groups("live")
"""Materialized by the streaming sensor while the engine trades, never by the batch pipeline."""

SEASONS = dg.AssetSelection.groups("seasons")
"""Partitioned by tour and season: materialized by season (``season_update``, a backfill, the data sensor)."""

JOB_TAG = "courtside/job"
"""Run tag of every run of these jobs: the job's name. The run queue (``dagster.yaml``: ``tag_concurrency_limits``)
starts one run of a job at a time."""
WAREHOUSE_TAG = "courtside/warehouse"
"""Run tag ``write`` of the batch jobs, which rewrite the warehouse's files (features, models, the season store):
the run queue starts one of them at a time; the live jobs (settlement, checks, value scans) run beside them."""


def run_tags(job: str, writes_warehouse: bool = False) -> dict[str, str]:
    """The run tags of ``job`` the run queue's limits read."""
    return {JOB_TAG: job, **({WAREHOUSE_TAG: "write"} if writes_warehouse else {})}


pipeline_job = dg.define_asset_job(
    "courtside_pipeline",
    run_tags=run_tags("courtside_pipeline", writes_warehouse=True),
    selection=dg.AssetSelection.all() - LIVE - SEASONS,
    description="Everything: ingest, checks, features, models, evaluation, the replay catalog.",
)

season_update_job = dg.define_asset_job(
    "season_update",
    run_tags=run_tags("season_update", writes_warehouse=True),
    selection=SEASONS.upstream(),
    partitions_def=SEASONS_PARTITIONS,
    description="Re-ingest and re-clean the results, then the pre-match feature rows of the given seasons of both "
    "tours (run for the current season when a new week arrives; a range of seasons is a backfill).",
)

retrain_job = dg.define_asset_job(
    "retrain_prematch",
    run_tags=run_tags("retrain_prematch", writes_warehouse=True),
    selection=dg.AssetSelection.assets(
        "prematch_champion",
        "test_evaluation",
        "player_snapshot",
        "inplay_champion",
        "wta_prematch_champion",
        "wta_player_snapshot",
    ).upstream(),
    description="Re-ingest, re-check, rebuild features (and the player snapshot the prediction service "
    "reads) and retrain the pre-match models of both tours and the in-play model; promote a challenger when it "
    "beats its champion.",
)

prematch_value_job = dg.define_asset_job(
    "prematch_value",
    run_tags=run_tags("prematch_value"),
    selection=dg.AssetSelection.assets("prematch_value_scan"),
    description="New pre-match odds -> /predict in batch -> value -> order requests for the engine.",
)

settlement_job = dg.define_asset_job(
    "settle_live",
    run_tags=run_tags("settle_live"),
    selection=dg.AssetSelection.assets("live_settlements", "live_pnl", "live_calibration_drift"),
    description="Settle finished matches, update the live P&L and the calibration drift of the live predictions.",
)

live_checks_job = dg.define_asset_job(
    "live_data_checks",
    run_tags=run_tags("live_data_checks"),
    selection=dg.AssetSelection.assets("live_event_batch"),
    description="Great Expectations over one batch of the live event log.",
)
