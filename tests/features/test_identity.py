"""Player identity: names from bookmakers and point-by-point feeds -> Sackmann ids and matches."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pytest

from features.identity import PlayerIndex, match_full_names, match_odds
from features.identity_reference import measure_against_reference
from features.names import normalize_name, parse_abbreviated, parse_full_name
from features.odds_layout import odds_slams_neutral, odds_tour_neutral

PLAYERS = pd.DataFrame(
    [
        (1, "Novak", "Djokovic"),
        (2, "Juan Martin", "del Potro"),
        (3, "Pablo", "Carreno Busta"),
        (4, "Andrey", "Kuznetsov"),
        (5, "Alex", "Kuznetsov"),
        (6, "Gael", "Monfils"),
        (7, "Roberto", "Bautista Agut"),
        (8, "Nicolás", "Jarry"),
        (9, "Albert", "Ramos"),
        (10, "Christopher", "O'Connell"),
        (11, "Stan", "Wawrinka"),
        (12, "Dominic", "Thiem"),
        (13, "Andy", "Murray"),
    ],
    columns=["player_id", "name_first", "name_last"],
)
NAMES = {int(r.player_id): f"{r.name_first} {r.name_last}" for r in PLAYERS.itertuples()}


def _matches(rows: list[tuple[str, str, str, int, int]]) -> pd.DataFrame:
    """Sackmann-like matches from (match_id, tourney_date, round, winner_id, loser_id)."""
    frame = pd.DataFrame(rows, columns=["match_id", "tourney_date", "round", "winner_id", "loser_id"])
    frame["tourney_id"] = frame["match_id"].str.split(":").str[0]
    frame["tourney_name"] = "Somewhere"
    frame["tourney_level"] = "A"
    frame["tourney_date"] = pd.to_datetime(frame["tourney_date"])
    frame["winner_name"] = frame["winner_id"].map(NAMES)
    frame["loser_name"] = frame["loser_id"].map(NAMES)
    return frame


MATCHES = _matches(
    [
        ("2018-100:1", "2018-01-15", "R128", 3, 2),  # Carreno Busta d. Del Potro
        ("2018-100:2", "2018-01-15", "R128", 8, 10),  # Jarry d. O'Connell
        ("2018-100:3", "2018-01-15", "R128", 9, 7),  # Ramos d. Bautista Agut
        ("2018-100:4", "2018-01-15", "R64", 4, 6),  # Andrey Kuznetsov d. Monfils
        ("2018-100:5", "2018-01-15", "R64", 1, 5),  # Djokovic d. Alex Kuznetsov
        ("2018-200:1", "2018-03-05", "R32", 6, 4),  # Monfils d. Andrey Kuznetsov
        ("2018-200:2", "2018-03-05", "R32", 6, 5),  # Monfils d. Alex Kuznetsov, same week
        ("2018-200:3", "2018-03-05", "R32", 11, 13),  # Wawrinka d. Murray
        ("2018-300:1", "2018-04-02", "R32", 12, 1),  # Thiem d. Djokovic
        ("2018-400:1", "2018-04-09", "F", 12, 1),  # Thiem d. Djokovic again, next week
    ]
)


def _odds(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    """Neutral odds rows from (date, round, p1_name, p2_name)."""
    frame = pd.DataFrame(rows, columns=["date", "round", "p1_name", "p2_name"])
    frame["date"] = pd.to_datetime(frame["date"])
    frame["tournament"] = "Somewhere Open"
    frame["b365_p1"] = 1.5
    return frame


def _ids(frame: pd.DataFrame, cols: tuple[str, str] = ("p1_id", "p2_id")) -> list[tuple]:
    return [tuple(None if pd.isna(v) else int(v) for v in row) for row in frame[list(cols)].itertuples(index=False)]


# --- names ---------------------------------------------------------------------------------------


def test_normalize_name_folds_accents_hyphens_apostrophes_and_spaces() -> None:
    assert normalize_name("Carreño-Busta  P.") == "carreno busta p"
    assert normalize_name("Gaël Monfils") == "gael monfils"
    assert normalize_name("O’Connell") == normalize_name("O'Connell") == "oconnell"
    assert normalize_name("Nicolás Jarry") == "nicolas jarry"
    assert normalize_name("Łukasz Kubot") == "lukasz kubot"
    assert normalize_name(None) == normalize_name(float("nan")) == ""


@pytest.mark.parametrize(
    ("text", "surname", "given"),
    [
        ("Djokovic N.", ("djokovic",), ("n",)),
        ("Del Potro J.M.", ("del", "potro"), ("j", "m")),
        ("Del Potro J. M.", ("del", "potro"), ("j", "m")),
        ("Stebe C-M.", ("stebe",), ("c", "m")),
        ("Kuznetsov An.", ("kuznetsov",), ("an",)),
        ("Aragone JC", ("aragone",), ("j", "c")),
        ("Hernandez-Fernandez J", ("hernandez", "fernandez"), ("j",)),
        ("Zhang Ze", ("zhang",), ("ze",)),
        ("Bogomolov Jr.A.", ("bogomolov",), ("a",)),
        ("Bogomolov Jr. A.", ("bogomolov",), ("a",)),
        ("Kohlschreiber P..", ("kohlschreiber",), ("p",)),
        ("O Connell C.", ("o", "connell"), ("c",)),
    ],
)
def test_parse_abbreviated_reads_surname_and_initials(text: str, surname: tuple, given: tuple) -> None:
    reading = parse_abbreviated(text)
    assert reading is not None
    assert (reading.surname, reading.given) == (surname, given)


def test_parse_full_name_rejects_doubles_and_team_labels() -> None:
    assert parse_full_name("Marin Cilic/Ivan Dodig") == ()
    assert parse_full_name("USA Doubles") == ()
    assert parse_full_name("Juan Martin Del Potro")[0].surname == ("martin", "del", "potro")


# --- bookmaker rows ------------------------------------------------------------------------------


def test_spelling_variants_match_the_pair_and_the_match() -> None:
    odds = _odds(
        [
            ("2018-01-16", "1st Round", "Carreno-Busta P.", "Del Potro J. M."),
            ("2018-01-16", "1st Round", "Jarry N.", "O Connell C."),
            ("2018-01-17", "1st Round", "Ramos-Vinolas A.", "Bautista R."),
        ]
    )
    out = match_odds(odds, MATCHES, PLAYERS)
    assert _ids(out) == [(3, 2), (8, 10), (9, 7)]
    assert out["match_id"].tolist() == ["2018-100:1", "2018-100:2", "2018-100:3"]
    assert out["match_method"].tolist() == ["pair", "pair", "pair+loose"]
    assert out["b365_p1"].tolist() == [1.5] * 3  # other columns pass through
    assert str(out["p1_id"].dtype) == "Int64"


def test_two_players_sharing_surname_and_initial_are_told_apart_by_who_played() -> None:
    odds = _odds(
        [
            ("2018-01-18", "2nd Round", "Kuznetsov A.", "Monfils G."),
            ("2018-01-18", "2nd Round", "Djokovic N.", "Kuznetsov A."),
        ]
    )
    out = match_odds(odds, MATCHES, PLAYERS)
    assert _ids(out) == [(4, 6), (1, 5)]
    assert out["match_id"].tolist() == ["2018-100:4", "2018-100:5"]


def test_two_candidate_pairs_in_the_window_are_never_guessed() -> None:
    odds = _odds([("2018-03-07", "1st Round", "Monfils G.", "Kuznetsov A.")])
    out = match_odds(odds, MATCHES, PLAYERS)
    assert _ids(out) == [(None, None)]
    assert pd.isna(out["match_id"].iloc[0])
    assert out["match_method"].iloc[0].startswith("unmatched: several candidate pairs")


def test_unknown_player_stays_unmatched_with_a_reason() -> None:
    odds = _odds([("2018-01-16", "1st Round", "Nobody X.", "Djokovic N.")])
    out = match_odds(odds, MATCHES, PLAYERS)
    assert _ids(out) == [(None, None)]
    method = out["match_method"].iloc[0]
    assert method.startswith("unmatched:")
    assert "'Nobody X.': no player of that name" in method


def test_misspelt_name_is_the_unique_close_opponent() -> None:
    odds = _odds([("2018-01-18", "2nd Round", "Monfills G.", "Kuznetsov An.")])
    out = match_odds(odds, MATCHES, PLAYERS)
    assert _ids(out) == [(6, 4)]
    assert out["match_method"].iloc[0] == "pair+fuzzy"
    assert out["match_id"].iloc[0] == "2018-100:4"


def test_names_alone_when_sackmann_lacks_the_match() -> None:
    odds = _odds([("2018-03-08", "2nd Round", "Wawrinka S.", "Djokovic N.")])
    out = match_odds(odds, MATCHES, PLAYERS)
    assert _ids(out) == [(11, 1)]
    assert pd.isna(out["match_id"].iloc[0])
    assert out["match_method"].iloc[0] == "names"


def test_round_and_date_choose_between_two_meetings_of_one_pair() -> None:
    odds = _odds(
        [
            ("2018-04-15", "The Final", "Thiem D.", "Djokovic N."),
            ("2018-04-04", "1st Round", "Thiem D.", "Djokovic N."),
        ]
    )
    out = match_odds(odds, MATCHES, PLAYERS)
    assert out["match_id"].tolist() == ["2018-400:1", "2018-300:1"]


def test_a_prebuilt_index_gives_the_same_answer() -> None:
    odds = _odds([("2018-01-16", "1st Round", "Carreno-Busta P.", "Del Potro J.M.")])
    index = PlayerIndex(MATCHES, PLAYERS)
    a = match_odds(odds, MATCHES, PLAYERS, index=index)
    b = match_odds(odds, MATCHES, PLAYERS)
    pd.testing.assert_frame_equal(a, b)


# --- full names ----------------------------------------------------------------------------------


def test_full_names_match_ids_and_match() -> None:
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(["2018-01-16", "2018-01-18", "2018-01-18"]),
            "server1": ["Juan Martin Del Potro", "Andrey Kuznetsov", "Marin Cilic/Ivan Dodig"],
            "server2": ["Pablo Carreño-Busta", "Gaël Monfils", "Novak Djokovic"],
        }
    )
    out = match_full_names(frame, ["server1", "server2"], "date", MATCHES, PLAYERS)
    assert _ids(out, ("server1_id", "server2_id")) == [(2, 3), (4, 6), (None, None)]
    assert out["match_id"].tolist()[:2] == ["2018-100:1", "2018-100:4"]
    assert "not a player name" in out["match_method"].iloc[2]


# --- layouts and measuring ---------------------------------------------------------------------


def test_neutral_layouts_name_the_prices_clearly() -> None:
    tour = pd.DataFrame(
        {
            "Tournament": ["X"],
            "Date": pd.to_datetime(["2019-01-01"]),
            "Series": ["ATP250"],
            "Surface": ["Hard"],
            "Round": ["1st Round"],
            "Best of": [3],
            "Player_1": ["A B."],
            "Player_2": ["C D."],
            "Winner": ["C D."],
            "Odd_1": [2.5],
            "Odd_2": [1.5],
        }
    )
    t = odds_tour_neutral(tour)
    assert {
        "date",
        "tournament",
        "round",
        "p1_name",
        "p2_name",
        "winner_name",
        "b365_p1",
        "b365_p2",
        "series",
        "surface",
        "best_of",
    } <= set(t.columns)
    assert (t["b365_p1"].iloc[0], t["winner_name"].iloc[0]) == (2.5, "C D.")
    slams = pd.DataFrame(
        {
            "Date": pd.to_datetime(["2019-01-14"]),
            "Tournament": ["AO"],
            "Series": ["Grand Slam"],
            "Surface": ["Hard"],
            "Round": ["1st Round"],
            "Best of": [5],
            "Winner": ["A B."],
            "Loser": ["C D."],
            "Comment": ["Completed"],
            "B365W": [1.2],
            "B365L": [4.0],
            "PSW": [1.21],
            "PSL": [4.5],
            "MaxW": [1.25],
            "MaxL": [5.0],
            "AvgW": [1.2],
            "AvgL": [4.2],
        }
    )
    s = odds_slams_neutral(slams)
    row = s.iloc[0]
    assert (row.p1_name, row.p2_name, row.winner_name, row.comment) == ("A B.", "C D.", "A B.", "Completed")
    assert (row.b365_p1, row.b365_p2, row.ps_p1, row.ps_p2) == (1.2, 4.0, 1.21, 4.5)
    assert (row.avg_p1, row.avg_p2, row.max_p1, row.max_p2) == (1.2, 4.2, 1.25, 5.0)


def test_measure_against_reference_counts_ids_and_matches() -> None:
    ours = _odds(
        [
            ("2018-01-16", "1st Round", "Carreno-Busta P.", "Del Potro J.M."),
            ("2018-01-16", "1st Round", "Nobody X.", "Djokovic N."),
        ]
    )
    ours = match_odds(ours, MATCHES, PLAYERS)
    reference = pd.DataFrame(
        {
            "Date": pd.to_datetime(["2018-01-16", "2018-01-16"]),
            "Winner": ["Carreno-Busta P.", "Nobody X."],
            "Loser": ["Del Potro J.M.", "Djokovic N."],
            "winner_id": [3, 99],
            "loser_id": [2, 1],
            "tourney_id": ["2018-100", "2018-100"],
            "match_id": ["2018-100:1", "2018-100:9"],
        }
    )
    got = measure_against_reference(ours, reference)
    assert (got["ids_reference"], got["ids_assigned"], got["ids_correct"]) == (4, 2, 2)
    assert got["precision"] == 1.0 and got["recall"] == 0.5
    assert (got["matches_assigned"], got["matches_correct"]) == (1, 1)


# --- the real data -------------------------------------------------------------------------------


def _data_dir() -> Path:
    env = os.environ.get("COURTSIDE_DATA_DIR")
    if env and env != "upstream":
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.mark.slow
def test_real_data_meets_precision_and_recall_without_the_reference() -> None:
    from feeds.historical import ingest
    from feeds.sources import LocalDataSource

    root = _data_dir()
    if not (root / "odds").is_dir():
        pytest.skip(f"no shared tennis data at {root}")
    src = LocalDataSource(root)
    players = ingest(src, "atp_players").frame
    matches = pd.concat(
        [ingest(src, "atp_matches").frame, ingest(src, "atp_matches_qual_chall").frame], ignore_index=True
    )
    matches["match_id"] = matches["tourney_id"] + ":" + matches["match_num"].astype(str)
    odds_tour = odds_tour_neutral(ingest(src, "odds_tour").frame)
    odds_slams = odds_slams_neutral(ingest(src, "odds_slams").frame)
    pbp = ingest(src, "pbp_matches").frame

    started = time.perf_counter()
    index = PlayerIndex(matches, players)
    slams = match_odds(odds_slams, matches, players, index=index)  # no reference given
    tour = match_odds(odds_tour, matches, players, index=index)
    points = match_full_names(
        pbp,
        ["server1", "server2"],
        "date",
        matches,
        players,
        index=index,
        winner_col="winner",
        tournament_col="tny_name",
    )
    elapsed = time.perf_counter() - started

    reference = ingest(src, "reference_name_mapping").frame  # read only now, to measure
    scores = measure_against_reference(slams, reference, matches)
    assert scores["precision"] >= 0.99, scores
    assert scores["recall"] >= 0.97, scores
    assert tour["match_id"].notna().mean() >= 0.99
    assert points["match_id"].notna().mean() >= 0.98
    assert tour.loc[tour["match_id"].notna(), ["p1_id", "p2_id"]].notna().all().all()
    assert not tour["match_id"].dropna().duplicated().any()  # one row per Sackmann match
    assert elapsed < 20, f"matching took {elapsed:.1f} s"
