"""Partitions by tour and season through the real Dagster job (``season_update``): a backfill of every ATP season in
one run equals the full walk; a new week of results then materializes its season's partition only, and that
partition equals a full rebuild on the new data."""

import dagster as dg
import pandas as pd
import pytest

from benchmarks.incremental_bench import plant_a_week
from features.prematch import build_prematch_features
from features.seasons import year_of
from orchestration.definitions import build_definitions
from orchestration.defs.features.seasons import run_season_update, season_store
from tests.orchestration.harness import mirror_data, settings_for


def _full_walk(home) -> pd.DataFrame:
    matches = pd.read_parquet(home / "warehouse" / "matches.parquet")
    players = pd.read_parquet(home / "warehouse" / "players.parquet")
    table, _ = build_prematch_features(matches, players, matches["is_tour_main"] & (year_of(matches) >= 1990))
    return table


def _partitions_in(result: dg.ExecuteInProcessResult) -> set[str]:
    return {
        m.event_specific_data.materialization.partition
        for m in result.get_asset_materialization_events()
        if m.event_specific_data.materialization.asset_key == dg.AssetKey("atp_season_features")
    }


@pytest.mark.slow
def test_a_backfill_equals_the_full_walk_and_a_new_week_touches_its_season_only(tmp_path):
    data = mirror_data(tmp_path / "data")
    home = tmp_path / "home"
    settings = settings_for(home, data)
    instance = dg.DagsterInstance.ephemeral()

    backfill = run_season_update(build_definitions(settings), instance, ["atp"], 1968, 2021)
    assert backfill.success
    assert _partitions_in(backfill) == {str(y) for y in range(1968, 2022)}  # one run, every season
    store = season_store(str(home), "atp")
    pd.testing.assert_frame_equal(store.read(), _full_walk(home), check_exact=True)
    before = {y: store.features_path(y).stat().st_mtime_ns for y in range(1968, 2022)}

    week = plant_a_week(data)
    update = run_season_update(build_definitions(settings), instance, ["atp"], 2022, 2022)
    assert update.success
    assert _partitions_in(update) == {"2022"}
    assert {y: store.features_path(y).stat().st_mtime_ns for y in range(1968, 2022)} == before  # nothing else
    full = _full_walk(home)
    new = pd.read_parquet(store.features_path(2022))
    assert 0 < len(new) <= week
    pd.testing.assert_frame_equal(new, full[year_of(full) == 2022].reset_index(drop=True), check_exact=True)
    materialized = instance.get_materialized_partitions(dg.AssetKey("atp_season_features"))
    assert {str(y) for y in range(1968, 2023)} <= materialized
