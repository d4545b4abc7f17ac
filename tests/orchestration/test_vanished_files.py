"""A file that vanished between two ingests is a systemic failure: the dataset's check fails and names it."""

from __future__ import annotations

import dagster as dg

from orchestration.defs.ingest.assets import raw_asset
from orchestration.defs.shared.resources import CourtsideResource
from tests.orchestration.harness import mirror_data


def test_a_file_read_last_time_that_is_gone_fails_the_check(tmp_path):
    data = mirror_data(tmp_path / "data")
    asset = raw_asset("slam_matches", "Grand Slam matches")
    courtside = CourtsideResource(
        data_dir=str(data), database_url=f"sqlite:///{tmp_path / 'app.db'}", reports_dir=str(tmp_path / "reports")
    )
    instance = dg.DagsterInstance.ephemeral()

    def ingest() -> dg.AssetCheckEvaluation:
        result = dg.materialize([asset], resources={"courtside": courtside}, instance=instance, raise_on_error=False)
        (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "gx_suite"]
        return check

    assert ingest().passed
    gone = sorted((data / "slam_pbp").glob("2012-wimbledon-matches.csv*"))
    assert gone
    for path in gone:
        path.unlink()
    check = ingest()
    assert not check.passed and "files read last time are gone" in check.description
    assert check.metadata["files_vanished"].value == [f"slam_pbp/{gone[0].name}"]
    assert ingest().passed, "the next ingest compares with the last one: told once, not forever"
