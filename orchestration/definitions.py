"""The Dagster code location: merges each domain's definitions and applies global policy."""

import dagster as dg

from courtside.settings import Settings
from orchestration.defs import (
    backtest,
    clean,
    evaluation,
    features,
    identity,
    ingest,
    inplay,
    live,
    models,
    monitoring,
    ratings,
)
from orchestration.defs.operations.jobs import (
    live_checks_job,
    pipeline_job,
    prematch_value_job,
    retrain_job,
    season_update_job,
    settlement_job,
)
from orchestration.defs.operations.schedules import weekly_retrain
from orchestration.defs.operations.sensors import data_files_changed, drift_retrain, live_event_log
from orchestration.defs.shared.execution import executor_from_env
from orchestration.defs.shared.resources import resources_from_settings
from training.windows import WindowSettings

DOMAINS = (ingest, clean, identity, ratings, features, models, evaluation, inplay, backtest, live, monitoring)


def build_definitions(settings: Settings | None = None, windows: WindowSettings | None = None) -> dg.Definitions:
    """Definitions for one configuration (the environment's unless ``settings`` / ``windows`` are given)."""
    settings = settings or Settings.from_env()
    settings.ensure_dirs()
    assets, checks = [], []
    for domain in DOMAINS:
        assets += dg.load_assets_from_package_module(domain)
        checks += dg.load_asset_checks_from_package_module(domain)
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=[pipeline_job, retrain_job, prematch_value_job, settlement_job, live_checks_job, season_update_job],
        schedules=[weekly_retrain],
        sensors=[data_files_changed, live_event_log, drift_retrain],
        resources=resources_from_settings(settings, windows),
        # Two step processes at a time, forked from a server that imported everything once, or with
        # COURTSIDE_EXECUTOR=celery each step a Celery task run by `courtside worker` processes (see
        # ``orchestration.defs.shared.execution``); ``execute_in_process`` still runs one step at a time.
        executor=executor_from_env(),
    )


defs = build_definitions()


def courtside_pipeline() -> dg.JobDefinition:
    """The whole pipeline job, resolved (entry point for ``courtside pipeline``)."""
    return defs.resolve_job_def("courtside_pipeline")


def retrain_prematch() -> dg.JobDefinition:
    """The pre-match retrain job, resolved."""
    return defs.resolve_job_def("retrain_prematch")
