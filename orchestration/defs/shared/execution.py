"""How a run's steps share the machine: two step processes at a time, forked from a server that has already
imported the code location and the libraries the steps use, the longest chain of steps first.

Measured on the shared 2-core machine (``courtside pipeline`` on fresh state): the steps are single-threaded
Python (feature walk, in-play replays, backtests) or single-threaded XGBoost (the walk-forward refits), and in one
process they ran one after the other while the second core idled. The backtests and the replay catalog need
nothing from the models, so they run beside the feature -> candidates -> walk-forward -> in-play chain.
Steps in two processes at once share the embedded stores safely: the application database's migration holds a
database-wide lock (``storage.db.migrate``), MLflow's store is created and its experiments found or created under
a file lock (``training.tracking.configure``), and Dagster's own storage is made for many processes.
"""

import os
from collections.abc import Mapping

import dagster as dg

from orchestration.defs.shared.processes import PRELOAD, STEP_PROCESSES, executor_choice

LONGEST_CHAIN = {"dagster/priority": "20"}
"""Op tags of the steps of the run's longest chain, up to the walk-forward (ingest of the ATP match and player files
and their checks, the clean tables and their check, the feature walk, the modelling table, the candidates and their
check, the walk-forward): started before any other ready step. Without this level the odds matching (2 s each,
needed only by the modelling table, 20 s later) took both processes while the feature walk, ready, waited: a
list-scheduling simulation of the measured steps on the dependency graph gave 88.1 s of steps with two levels and
85.6 s with three (the plain longest-remaining-chain order 84.8 s; half the total step work 76.7 s)."""

CRITICAL_PATH = {"dagster/priority": "10"}
"""Op tags of the other steps every model waits for (the odds files, their checks and matching, the in-play
points, models, evaluation and registration): started before the rest (the other files, the replay catalog and
both backtests, the pre-match evaluations and registration), which fill the other process."""

pipeline_executor = dg.multiprocess_executor.configured(
    {
        "max_concurrent": STEP_PROCESSES,
        "start_method": {"forkserver": {"preload_modules": list(PRELOAD)}},
    },
    name="courtside_executor",
)
"""The executor of every job launched from a persistent instance (``courtside pipeline``, ``courtside bench``,
the Dagster UI). ``execute_in_process`` (the tests) still runs the steps one by one in the calling process."""


# --- the distributed executor (issue 14): Dagster steps as Celery tasks, on workers of one or many machines ---

BROKER_VARIABLE = "COURTSIDE_CELERY_BROKER"
"""The Celery broker, a Redis URL (``redis://host:6379/0``); the run and every worker must name the same one."""
BACKEND_VARIABLE = "COURTSIDE_CELERY_BACKEND"
"""Where workers put a step's result (the events the run reads back); default: the broker's Redis."""
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
CELERY_QUEUE = "dagster"
"""dagster-celery's queue (``dagster-celery/queue`` op tags could route steps to other queues; none do)."""

REDIS_VISIBILITY_TIMEOUT_S = 12 * 3600
"""With Redis as broker, a task a worker has reserved but not yet acknowledged goes back to the queue after this
long (Celery's default: one hour) and another worker runs it too. A worker reserves its next task while it runs a
step; the longest steps (walk-forward refits, backtests on a big history) must not make that task run twice."""


def celery_settings(env: Mapping[str, str] | None = None) -> dict[str, object]:
    """The Celery app settings of the run (the executor) and of every worker (``courtside worker`` writes a
    ``dagster_celery_config`` module that reads them from here): broker and result backend from the environment,
    one task reserved at a time, a fresh process per step (forked from a worker that imported everything once)."""
    env = os.environ if env is None else env
    broker = env.get(BROKER_VARIABLE) or DEFAULT_BROKER
    return {
        "broker_url": broker,
        "result_backend": env.get(BACKEND_VARIABLE) or broker,
        "broker_connection_retry_on_startup": True,
        "worker_prefetch_multiplier": 1,
        "worker_max_tasks_per_child": 1,
        # dagster-celery's own retry settings, and the visibility timeout above
        "broker_transport_options": {
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
            "visibility_timeout": REDIS_VISIBILITY_TIMEOUT_S,
        },
        "result_backend_transport_options": {"visibility_timeout": REDIS_VISIBILITY_TIMEOUT_S},
        "result_expires": 7 * 24 * 3600,
    }


def celery_executor(env: Mapping[str, str] | None = None) -> dg.ExecutorDefinition:
    """dagster-celery's executor on the Redis broker of ``COURTSIDE_CELERY_BROKER``. The URLs are given as ``env``
    references when set, so no password lands in a run's stored configuration. The run's instance must be one the
    workers reach too (Postgres: the production storage profile), and the warehouse a folder they all see."""
    from dagster_celery import celery_executor as dagster_celery_executor

    env = os.environ if env is None else env
    broker = {"env": BROKER_VARIABLE} if env.get(BROKER_VARIABLE) else DEFAULT_BROKER
    backend = {"env": BACKEND_VARIABLE} if env.get(BACKEND_VARIABLE) else broker
    source = {k: v for k, v in celery_settings(env).items() if k not in ("broker_url", "result_backend")}
    return dagster_celery_executor.configured(
        {"broker": broker, "backend": backend, "config_source": source}, name="courtside_celery_executor"
    )


def executor_from_env(env: Mapping[str, str] | None = None) -> dg.ExecutorDefinition:
    """The executor ``COURTSIDE_EXECUTOR`` selects: ``pipeline_executor`` by default, ``celery_executor()``."""
    return celery_executor(env) if executor_choice(env) == "celery" else pipeline_executor
