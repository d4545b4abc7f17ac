"""Schedules: the weekly retrain."""

import dagster as dg

from orchestration.defs.operations.jobs import retrain_job

weekly_retrain = dg.ScheduleDefinition(
    name="weekly_retrain",
    job=retrain_job,
    cron_schedule="0 5 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Retrain every Monday 05:00 UTC (after the weekend's tournaments end).",
)
