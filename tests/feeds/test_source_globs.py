"""Every ingest source is configurable: file globs per dataset from a TOML file (``COURTSIDE_SOURCES``), the
defaults kept for the datasets it does not name, and Sackmann's ``*_current`` point-by-point files read beside the
archives."""

from __future__ import annotations

import pytest

from courtside.settings import Settings
from feeds.sources import LocalDataSource, load_globs


def _touch(root, *names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def test_the_current_point_by_point_files_are_read_beside_the_archives(tmp_path):
    _touch(
        tmp_path,
        "pbp/pbp_matches_atp_main_archive.csv.gz",
        "pbp/pbp_matches_atp_main_current.csv.gz",
        "pbp/pbp_matches_atp_qual_current.csv",
        "pbp/pbp_matches_wta_main_current.csv",
    )
    names = [f.name for f in LocalDataSource(tmp_path).files("pbp_matches")]
    assert names == [
        "pbp/pbp_matches_atp_main_archive.csv.gz",
        "pbp/pbp_matches_atp_main_current.csv.gz",
        "pbp/pbp_matches_atp_qual_current.csv",
    ]


def test_globs_from_a_sources_file_replace_a_datasets_defaults(tmp_path):
    _touch(tmp_path, "mine/results-2022.csv", "mine/results-2023.csv.gz", "atp/atp_matches_2021.csv.gz")
    sources = tmp_path / "sources.toml"
    sources.write_text('[globs]\natp_matches = ["mine/results-*.csv*"]\n')
    settings = Settings.from_env({"COURTSIDE_HOME": str(tmp_path / "home"), "COURTSIDE_SOURCES": str(sources)})
    source = LocalDataSource(tmp_path, settings.source_globs())
    assert [f.name for f in source.files("atp_matches")] == ["mine/results-2022.csv", "mine/results-2023.csv.gz"]
    assert [f.year for f in source.files("atp_matches")] == [2022, 2023]
    assert source.files("atp_players") == []  # not named: the default glob, which finds nothing here


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('[globs]\nmatchez = ["x"]\n', "not a dataset"),
        ("[globs]\natp_matches = []\n", "a glob or a list of globs"),
        ("[globs]\natp_matches = [3]\n", "a glob or a list of globs"),
    ],
)
def test_a_sources_file_that_cannot_be_right_is_refused_with_why(tmp_path, text, why):
    path = tmp_path / "sources.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=why):
        load_globs(path)
