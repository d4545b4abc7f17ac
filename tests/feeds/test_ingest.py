"""Historical ingest: bad rows quarantined with reasons, good rows kept, errata, and the same code
reading the upstream layout over real HTTP."""

import gzip
import http.server
import threading
from functools import partial

import pandas as pd
import pytest

from feeds.historical import Erratum, ingest
from feeds.sources import LocalDataSource, UpstreamDataSource
from tests.real_data import data_dir

HEADER = (
    "tourney_id,tourney_name,surface,draw_size,tourney_level,tourney_date,match_num,winner_id,winner_seed,"
    "winner_entry,winner_name,winner_hand,winner_ht,winner_ioc,winner_age,loser_id,loser_seed,loser_entry,"
    "loser_name,loser_hand,loser_ht,loser_ioc,loser_age,score,best_of,round,minutes,w_ace,w_df,w_svpt,"
    "w_1stIn,w_1stWon,w_2ndWon,w_SvGms,w_bpSaved,w_bpFaced,l_ace,l_df,l_svpt,l_1stIn,l_1stWon,l_2ndWon,"
    "l_SvGms,l_bpSaved,l_bpFaced,winner_rank,winner_rank_points,loser_rank,loser_rank_points"
)


def _row(match_num="1", winner_id="104925", date="20300107", rank="1", ht="188"):
    return (
        f"2030-001,Somewhere,Hard,32,A,{date},{match_num},{winner_id},,,Novak Djokovic,R,{ht},SRB,42.0,"
        "104745,,,Rafael Nadal,L,185,ESP,43.0,6-4 6-4,3,R32,90,5,1,60,40,30,10,10,1,2,3,2,"
        f"70,45,28,12,10,4,6,{rank},9000,2,8000"
    )


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "atp").mkdir()
    lines = [
        HEADER,
        _row("1"),
        _row("2", winner_id="abc"),
        _row("3", date="2030-01-07"),
        _row("4") + ",extra,fields",
        _row("5", winner_id=""),
        _row("6", rank="-3"),
        _row("7", ht="3"),
    ]
    (tmp_path / "atp" / "atp_matches_2030.csv.gz").write_bytes(gzip.compress("\n".join(lines).encode()))
    return tmp_path


def test_bad_rows_are_quarantined_with_reasons_and_good_rows_kept(folder):
    result = ingest(LocalDataSource(folder), "atp_matches", errata={})
    assert sorted(result.frame["match_num"].tolist()) == [1, 6, 7]  # -3 parses: GX judges it
    reasons = {r.line: r.reason for r in result.rejections if r.line}
    assert reasons[3] == "type: winner_id: 'abc' is not an integer"
    assert reasons[4].startswith("type: tourney_date")
    assert reasons[6] == "missing value: winner_id is required"
    assert any(r.reason.startswith("field count") for r in result.rejections)
    assert result.rejected_by_reason == {"type": 2, "missing value": 1, "field count": 1}
    assert result.frame.loc[result.frame["match_num"] == 1, "source_line"].item() == 2
    assert result.files[0].rows == 3 and result.files[0].rejected == 4


def test_errata_set_rows_aside_or_remove_one_value(folder):
    errata = {
        "atp_matches": [
            Erratum("2030-001|6", None, "reviewed: rank typo"),
            Erratum("2030-001|7", "winner_ht", "reviewed: height 3 cm"),
        ]
    }
    result = ingest(LocalDataSource(folder), "atp_matches", errata=errata)
    assert sorted(result.frame["match_num"].tolist()) == [1, 7]
    assert pd.isna(result.frame.loc[result.frame["match_num"] == 7, "winner_ht"].item())
    assert [r.reason for r in result.rejections if r.line == 7] == ["erratum: reviewed: rank typo"]
    assert [c.reason for c in result.corrections] == ["erratum (value removed): reviewed: height 3 cm"]


def test_missing_folder_is_a_clear_error(tmp_path):
    from feeds.sources import data_source

    with pytest.raises(FileNotFoundError, match="COURTSIDE_DATA_DIR"):
        data_source(str(tmp_path / "nowhere"))


@pytest.fixture
def upstream(tmp_path):
    """A local HTTP server laid out like the upstream sites (plain CSV, yearly xlsx workbooks)."""
    root = tmp_path / "site"
    (root / "atp").mkdir(parents=True)
    for year in (2018, 2019):
        raw = gzip.decompress((data_dir() / "atp" / f"atp_matches_{year}.csv.gz").read_bytes())
        (root / "atp" / f"atp_matches_{year}.csv").write_bytes(raw)
    slams = pd.read_csv(data_dir() / "odds" / "grand_slam_odds_tennis_data.csv.gz", dtype=str)
    year = slams[slams["Date"].str.startswith("2019")].copy()
    (root / "odds" / "2019").mkdir(parents=True)
    year.to_excel(root / "odds" / "2019" / "2019.xlsx", index=False)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield (
        UpstreamDataSource(
            first_year=2018, last_year=2020, atp_base=f"{base}/atp", odds_base=f"{base}/odds", retries=0
        ),
        year,
    )
    server.shutdown()


@pytest.mark.slow
def test_same_ingest_reads_the_upstream_layout_over_http(upstream):
    source, slam_rows = upstream
    local = ingest(LocalDataSource(data_dir()), "atp_matches")
    remote = ingest(source, "atp_matches")
    assert [f.missing for f in remote.files] == [False, False, True]  # 2020 not published: skipped
    expected = local.frame[local.frame["tourney_id"].str[:4].isin(["2018", "2019"])]
    assert len(remote.frame) == len(expected)
    slams = ingest(source, "odds_slams")
    assert len(slams.frame) == len(slam_rows) and slams.frame["B365W"].notna().mean() > 0.9
    tour = ingest(source, "odds_tour")  # the tennis-data workbook converted to the tour layout
    assert len(tour.frame) > 0 and (tour.frame["Winner"] == tour.frame["Player_1"]).all()
