"""Pre-match features partitioned by tour and season: ``atp_season_features`` and ``wta_season_features``, one
partition a calendar year (``features.seasons``). A new week of results touches the current year's partition only;
a partition starts from the previous year's state (a self-dependency, so a backfill runs the years in order, in
one run: ``BackfillPolicy.single_run``). Each partition's rows equal the full walk's (``prematch_features``) bit for
bit (``tests/features/test_seasons.py``). Backfills: the UI (the asset's *Materialize* -> partitions), or
``courtside backfill``."""

import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd

from features.seasons import SeasonStore
from orchestration.defs.features.assets import FeatureConfig
from orchestration.defs.shared.progress import reporter
from orchestration.defs.shared.resources import CourtsideResource

FIRST_SEASON = 1968
SEASONS = dg.TimeWindowPartitionsDefinition(cron_schedule="0 0 1 1 *", start=str(FIRST_SEASON), fmt="%Y", end_offset=1)
"""One partition per calendar year from 1968 to the current year (``end_offset=1``: the year under way)."""

GROUP = "seasons"
TOURS = {"atp": ("matches", "players"), "wta": ("wta_matches", "wta_players")}
"""Each tour's clean results and players (the unpartitioned assets the partitions read)."""


def season_store(home: str, tour: str) -> SeasonStore:
    """Where a tour's per-season rows and checkpoints live (under the warehouse)."""
    return SeasonStore(Path(home) / "warehouse" / "seasons" / tour)


def season_features_asset(tour: str) -> dg.AssetsDefinition:
    matches_key, players_key = TOURS[tour]
    name = f"{tour}_season_features"

    @dg.asset(
        name=name,
        group_name=GROUP,
        kinds={"pandas", "parquet"},
        partitions_def=SEASONS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[dg.AssetDep(name, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1))],
        ins={"matches": dg.AssetIn(matches_key), "players": dg.AssetIn(players_key)},
        description=f"The {tour.upper()}'s pre-match feature rows of one season (calendar year of the tournament's "
        "Monday), walked from the previous season's state: equal to the same rows of the full walk. Files under "
        f"<warehouse>/seasons/{tour}/.",
    )
    def _season(
        context: dg.AssetExecutionContext,
        courtside: CourtsideResource,
        config: FeatureConfig,
        matches: pd.DataFrame,
        players: pd.DataFrame,
    ) -> dg.MaterializeResult:
        years = [int(k) for k in context.partition_keys]
        store = season_store(courtside.home, tour)
        before = store.checkpoints()
        done = store.update(matches, players, years, config.first_season, progress=reporter(context, "seasons"))
        rows = {str(r.year): r.rows for r in done}
        context.log.info(
            f"{tour} seasons {years[0]}-{years[-1]}: {sum(rows.values())} feature rows "
            f"(checkpoints before: {before[-3:]})"
        )
        return dg.MaterializeResult(
            metadata={
                "seasons": f"{years[0]}-{years[-1]}" if len(years) > 1 else str(years[0]),
                "feature_rows": sum(rows.values()),
                "rows_by_season": dg.MetadataValue.json(rows) if len(rows) <= 60 else dg.MetadataValue.text("many"),
                "matches_walked": sum(r.matches for r in done),
                "results_fingerprint": done[-1].fingerprint if done else "",
                "checkpoints": dg.MetadataValue.json(store.checkpoints()),
                "updated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
        )

    return _season


season_assets = [season_features_asset(tour) for tour in TOURS]


def season_selection(tours: list[str]) -> list[dg.AssetKey]:
    """The season assets of ``tours`` and everything they read (ingest with its checks, clean tables)."""
    return [dg.AssetKey(f"{t}_season_features") for t in tours]


def run_season_update(
    defs: dg.Definitions, instance: dg.DagsterInstance, tours: list[str], first: int, last: int
) -> dg.ExecuteInProcessResult:
    """Materialize the seasons ``first``..``last`` of ``tours`` -- re-ingesting and re-cleaning their results first
    -- in one run of the ``season_update`` job (a backfill when the range is long; a new week's update when it is the
    current season)."""
    graph = defs.resolve_asset_graph()
    selection = sorted(dg.AssetSelection.assets(*season_selection(tours)).upstream().resolve(graph))
    tags = {"dagster/asset_partition_range_start": str(first), "dagster/asset_partition_range_end": str(last)}
    return defs.resolve_job_def("season_update").execute_in_process(
        instance=instance, tags=tags, asset_selection=selection, raise_on_error=False
    )
