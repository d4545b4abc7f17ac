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

import dagster as dg

from orchestration.defs.shared.processes import PRELOAD, STEP_PROCESSES

CRITICAL_PATH = {"dagster/priority": "10"}
"""Op tags of the steps on the run's longest chain (ingest of the match, player and odds files and their checks,
the clean tables, the odds matching, the feature walk, the candidates, the walk-forward, the in-play points,
models, evaluation and registration): started before any other ready step. The rest (the other files, the
replay catalog and both backtests, the pre-match evaluations and registration) fill the other process."""

pipeline_executor = dg.multiprocess_executor.configured(
    {
        "max_concurrent": STEP_PROCESSES,
        "start_method": {"forkserver": {"preload_modules": list(PRELOAD)}},
    },
    name="courtside_executor",
)
"""The executor of every job launched from a persistent instance (``courtside pipeline``, ``courtside bench``,
the Dagster UI). ``execute_in_process`` (the tests) still runs the steps one by one in the calling process."""
