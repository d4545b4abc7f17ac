"""The Dagster code location: asset graph, checks, jobs, schedule and sensor."""

import json

import dagster as dg
import pytest

from orchestration.definitions import build_definitions
from orchestration.defs.ingest.checks import GATES_TRAINING
from orchestration.defs.operations.sensors import data_files_changed
from orchestration.defs.shared.resources import CourtsideResource
from tests.orchestration.harness import settings_for


@pytest.fixture(scope="module")
def defs(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    return build_definitions(settings_for(home, home))


def test_asset_graph_reads_as_the_pipeline(defs):
    graph = defs.resolve_asset_graph()
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups["raw_atp_matches"] == "ingest"
    assert groups["matches"] == "clean"
    assert groups["odds_tour_matched"] == "identity"
    assert groups["elo_ratings"] == "ratings"
    assert groups["prematch_features"] == "features"
    assert {groups[k] for k in ("model_dataset", "prematch_challenger", "prematch_champion")} == {"models"}
    assert groups["test_evaluation"] == "evaluation"
    assert groups["wta_matches"] == "clean" and groups["wta_odds_slams_matched"] == "identity"
    assert groups["wta_prematch_champion"] == "models" and groups["tour_comparison"] == "evaluation"
    upstream = dg.AssetSelection.assets("prematch_candidates", "wta_prematch_candidates").upstream().resolve(graph)
    for dataset in GATES_TRAINING:
        assert dg.AssetKey(f"raw_{dataset}") in upstream


def test_every_dataset_has_a_gx_check_and_training_gates_are_blocking(defs):
    graph = defs.resolve_asset_graph()
    checks = {(k.asset_key.to_user_string(), k.name): k for k in graph.asset_check_keys}
    for asset in [a.to_user_string() for a in graph.get_all_asset_keys() if a.path[0].startswith("raw_")]:
        key = checks[(asset, "gx_suite")]
        blocking = graph.get_check_spec(key).blocking
        assert blocking == (asset.removeprefix("raw_") in GATES_TRAINING), asset
    assert graph.get_check_spec(checks[("prematch_challenger", "challenger_beats_champion")]).blocking


def test_every_sensor_schedule_and_job_says_what_it_does(defs):
    described = [*defs.sensors, *defs.schedules, *defs.jobs]
    assert len(described) >= 10
    assert all(len(d.description or "") > 30 for d in described), [d.name for d in described if not d.description]


def test_jobs_schedule_and_sensor(defs):
    assert defs.resolve_job_def("courtside_pipeline")
    retrain = defs.resolve_job_def("retrain_prematch")
    assert dg.AssetKey("prematch_champion") in retrain.asset_layer.asset_graph.get_all_asset_keys()
    assert defs.resolve_schedule_def("weekly_retrain").cron_schedule == "0 5 * * 1"
    assert defs.resolve_sensor_def("data_files_changed")
    assert defs.resolve_sensor_def("live_event_log")
    pipeline = defs.resolve_job_def("courtside_pipeline").asset_layer.selected_asset_keys
    assert dg.AssetKey("replay_catalog") in pipeline
    for live in ("prematch_value_scan", "live_settlements", "live_pnl", "live_event_batch"):
        assert dg.AssetKey(live) not in pipeline  # the streaming sensor's, not the batch pipeline's
    assert dg.AssetKey("player_snapshot") in retrain.asset_layer.selected_asset_keys
    assert dg.AssetKey("wta_prematch_champion") in retrain.asset_layer.selected_asset_keys
    seasons = defs.resolve_job_def("season_update")
    assert dg.AssetKey("atp_season_features") not in pipeline
    assert {dg.AssetKey("atp_season_features"), dg.AssetKey("raw_atp_matches")} <= set(
        seasons.asset_layer.selected_asset_keys
    )
    keys = seasons.partitions_def.get_partition_keys()
    assert keys[0] == "1968" and int(keys[-1]) >= 2026  # through the year under way


def test_sensor_requests_a_retrain_when_a_file_changes(tmp_path):
    (tmp_path / "atp").mkdir()
    f = tmp_path / "atp" / "atp_matches_2030.csv"
    f.write_text("a\n1\n")
    resource = CourtsideResource(data_dir=str(tmp_path), database_url="sqlite://", reports_dir=str(tmp_path))

    first = data_files_changed(dg.build_sensor_context(resources={"courtside": resource}))
    assert not first.run_requests and first.cursor  # first look only records the files
    same = data_files_changed(dg.build_sensor_context(cursor=first.cursor, resources={"courtside": resource}))
    assert not same.run_requests

    f.write_text("a\n1\n2\n")
    changed = data_files_changed(dg.build_sensor_context(cursor=first.cursor, resources={"courtside": resource}))
    assert len(changed.run_requests) == 1
    assert "atp/atp_matches_2030.csv" in changed.run_requests[0].tags["courtside/changed_files"]
    assert json.loads(changed.cursor)["digest"] != json.loads(first.cursor)["digest"]
    # the same change is not requested twice (idempotent run key)
    again = data_files_changed(dg.build_sensor_context(cursor=changed.cursor, resources={"courtside": resource}))
    assert not again.run_requests


def test_a_changed_season_file_requests_its_seasons_only_through_the_current_one(tmp_path, defs):
    (tmp_path / "atp").mkdir()
    f = tmp_path / "atp" / "atp_matches_2025.csv"
    f.write_text("tourney_id,tourney_date\n2025-1,20250106\n")
    resource = CourtsideResource(data_dir=str(tmp_path), database_url="sqlite://", reports_dir=str(tmp_path))
    first = data_files_changed(dg.build_sensor_context(resources={"courtside": resource}, definitions=defs))
    f.write_text("tourney_id,tourney_date\n2025-1,20250106\n2025-2,20241230\n")  # a week dated in late 2024
    changed = data_files_changed(
        dg.build_sensor_context(cursor=first.cursor, resources={"courtside": resource}, definitions=defs)
    )
    retrain, seasons = changed.run_requests
    assert retrain.job_name == "retrain_prematch" and seasons.job_name == "season_update"
    current = defs.resolve_job_def("season_update").partitions_def.get_last_partition_key()
    assert seasons.tags["dagster/asset_partition_range_start"] == "2024"
    assert seasons.tags["dagster/asset_partition_range_end"] == current
    keys = {k.to_user_string() for k in seasons.asset_selection}
    assert {"atp_season_features", "raw_atp_matches", "matches"} <= keys and "wta_season_features" not in keys


def test_a_season_a_file_no_longer_holds_and_a_changed_player_register_are_requested_too(tmp_path, defs):
    (tmp_path / "atp").mkdir()
    f = tmp_path / "atp" / "atp_matches_2025.csv"
    f.write_text("tourney_id,tourney_date\n2025-1,20241230\n2025-2,20250106\n")
    resource = CourtsideResource(data_dir=str(tmp_path), database_url="sqlite://", reports_dir=str(tmp_path))

    def tick(cursor=None):
        return data_files_changed(
            dg.build_sensor_context(cursor=cursor, resources={"courtside": resource}, definitions=defs)
        )

    first = tick()
    f.write_text("tourney_id,tourney_date\n2025-1,20250101\n2025-2,20250106\n")  # the December row corrected
    moved = tick(first.cursor)
    assert moved.run_requests[1].tags["dagster/asset_partition_range_start"] == "2024"  # 2024 lost a row
    (tmp_path / "atp" / "atp_players.csv").write_text("player_id,height\n1,185\n")
    players = tick(moved.cursor)
    (seasons,) = [r for r in players.run_requests if r.job_name == "season_update"]
    assert seasons.tags["dagster/asset_partition_range_start"] == "1968"  # a player's facts: every season
