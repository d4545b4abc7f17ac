"""Running the real Dagster job on a data folder in a temporary home."""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from benchmarks.incremental_bench import mirror_data as mirror
from courtside.settings import Settings
from orchestration.definitions import build_definitions
from tests.real_data import data_dir


@dataclass
class PipelineRun:
    result: dg.ExecuteInProcessResult
    instance: dg.DagsterInstance
    settings: Settings
    defs: dg.Definitions

    def check(self, asset: str, name: str) -> dg.AssetCheckEvaluation:
        """The evaluation of one asset check in this run."""
        for ev in self.result.get_asset_check_evaluations():
            if ev.asset_key == dg.AssetKey(asset) and ev.check_name == name:
                return ev
        raise KeyError(f"{asset}:{name} was not evaluated in this run")

    def materialization(self, asset: str) -> dg.AssetMaterialization:
        """The materialization of one asset in this run."""
        for m in self.result.get_asset_materialization_events():
            event = m.event_specific_data.materialization
            if event.asset_key == dg.AssetKey(asset):
                return event
        raise KeyError(f"{asset} was not materialized in this run")

    def materialized(self) -> set[str]:
        return {
            m.asset_key.to_user_string()
            for m in self.result.get_asset_materialization_events()
            for m in [m.event_specific_data.materialization]
        }


def settings_for(home: Path, data: Path) -> Settings:
    return Settings.from_env({"COURTSIDE_HOME": str(home), "COURTSIDE_DATA_DIR": str(data)})


def run_pipeline(
    home: Path,
    data: Path,
    instance: dg.DagsterInstance | None = None,
    job: str = "courtside_pipeline",
    upstream_of: Iterable[str] | None = None,
) -> PipelineRun:
    """Execute a job of the real definitions, configured for ``home`` and ``data``; with ``upstream_of``,
    only those assets and everything they need (the job's own steps and checks for them)."""
    settings = settings_for(home, data)
    defs = build_definitions(settings)
    instance = instance or dg.DagsterInstance.ephemeral()
    selection = None
    if upstream_of is not None:
        selection = sorted(
            dg.AssetSelection.assets(*upstream_of)
            .upstream()
            .required_multi_asset_neighbors()
            .resolve(defs.resolve_asset_graph())
        )
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, raise_on_error=False, asset_selection=selection
    )
    return PipelineRun(result, instance, settings, defs)


def mirror_data(target: Path) -> Path:
    """A folder laid out like the shared data whose files are links to the real ones."""
    return mirror(data_dir(), target)


def edit_csv(data: Path, relative: str, edit) -> None:
    """Replace one (gzip) CSV of a mirrored folder by an edited copy: ``edit(lines) -> lines``."""
    path = data / relative
    lines = gzip.decompress(path.read_bytes()).decode("utf-8").splitlines()
    edited = edit(lines)
    path.unlink()
    path.write_bytes(gzip.compress(("\n".join(edited) + "\n").encode("utf-8")))
