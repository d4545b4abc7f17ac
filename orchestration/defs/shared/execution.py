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
