"""The step processes of a run (no Dagster import here: ``courtside pipeline`` starts their fork server before it
imports anything heavy). The executor that uses them: ``orchestration.defs.shared.execution``."""

import os
from collections.abc import Mapping

EXECUTOR_VARIABLE = "COURTSIDE_EXECUTOR"
"""Which executor the jobs use: ``multiprocess`` (default: two step processes on this machine, forked from the
server below) or ``celery`` (each step a Celery task that a ``courtside worker`` process runs, on this machine or
another: ``orchestration.defs.shared.execution.celery_executor``)."""
EXECUTORS = ("multiprocess", "celery")


def executor_choice(env: Mapping[str, str] | None = None) -> str:
    """``COURTSIDE_EXECUTOR`` (``multiprocess`` when unset); ValueError for anything else."""
    choice = ((os.environ if env is None else env).get(EXECUTOR_VARIABLE) or "multiprocess").strip().lower()
    if choice not in EXECUTORS:
        raise ValueError(f"{EXECUTOR_VARIABLE}={choice!r}: expected one of {', '.join(EXECUTORS)}")
    return choice


STEP_PROCESSES = 2
"""Steps at a time: the machine's 2 cores (each step is single-threaded, the walk-forward refits included)."""

PRELOAD = (
    "dagster._core.executor.multiprocess",
    "orchestration.preload",
    "great_expectations",
    "great_expectations.expectations",
    "mlflow.xgboost",
    "mlflow.sklearn",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "storage.db",
    "courtside.cli",
)
"""Imported once by the fork server; every step process is a fork of it (Dagster, pandas, XGBoost, MLflow and
Great Expectations take seconds each to import, tens of seconds on a busy machine). ``orchestration.preload`` also
resolves the jobs (1-4 s a process otherwise). ``courtside.cli``: a step process re-runs the main module of the
command that started the run (``courtside pipeline``), whose imports then are already there. The executor's own
module comes first, as Dagster puts it."""


def start_fork_server() -> None:
    """Start the step processes' fork server now, importing ``PRELOAD`` on the other core while this process
    loads the code location (otherwise the first step waits for both, one after the other). The executor finds
    it running and forks its steps from it."""
    import multiprocessing
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(list(PRELOAD))
    forkserver.ensure_running()
