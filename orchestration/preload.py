"""Imported by the fork server of the step processes (``orchestration.defs.shared.execution.PRELOAD``): the code
location loaded and its jobs resolved once, and a throwaway Dagster instance opened and closed once in a temporary
folder (the storage modules, Alembic among them, are imported on an instance's first use: 366 modules, 3.6 s at
load 4), so every step process, a fork of the server, starts with all of it instead of paying that before its
step. The run's own instance is not touched here: the command that starts the run may be creating it."""

import tempfile
from pathlib import Path

import dagster as dg

from orchestration.definitions import defs

defs.get_repository_def().get_all_jobs()

with tempfile.TemporaryDirectory(prefix="courtside-preload-") as _home:
    Path(_home, "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.local_temp(_home) as _instance:
        _instance.get_runs(limit=1)  # closed again: no connection crosses the fork
