"""Each suite on small hand-written frames: clean frames pass, each planted defect fails its named
expectation, and the failure names the offending row by ``source_file``/``source_line``."""

from __future__ import annotations

import pandas as pd
import pytest

from expectations.runner import SuiteResult
from expectations.suites import SUITES, validate_dataset
from tests.expectations.sample_frames import (
    SMALL,
    SOURCE_FILE,
    atp_row,
    clean_atp_rows,
    odds_slams_row,
    odds_tour_row,
    typed_frame,
)

ATP = ["atp_matches", "atp_matches_qual_chall"]


def check(dataset: str, frame: pd.DataFrame) -> SuiteResult:
    return validate_dataset(dataset, frame, row_bounds=SMALL)


def failed(result: SuiteResult) -> set[str]:
    return {f.name for f in result.failures}


def failing_lines(result: SuiteResult, name: str) -> list[int]:
    outcome = result.outcome(name)
    assert all(x["source_file"] == SOURCE_FILE for x in outcome.examples)
    return [x["source_line"] for x in outcome.examples]


def test_every_expectation_has_a_unique_stable_name() -> None:
    for dataset, build in SUITES.items():
        names = [(e.meta or {}).get("name") for e in build()]
        assert all(names), dataset
        assert len(names) == len(set(names)), dataset
        assert all(n.replace("_", "").isalnum() for n in names), dataset  # usable as check names


@pytest.mark.parametrize("dataset", ATP)
def test_clean_matches_pass(dataset: str) -> None:
    result = check(dataset, typed_frame(dataset, clean_atp_rows()))
    assert result.success, result.summary_markdown()
    assert result.evaluated_rows == 4
    assert len(result.expectations) == len(SUITES[dataset]())


@pytest.mark.parametrize("dataset", ATP)
def test_negative_rank_fails(dataset: str) -> None:
    rows = clean_atp_rows()
    rows[2]["loser_rank"] = "-3"  # line 4
    result = check(dataset, typed_frame(dataset, rows))
    assert failed(result) == {"loser_rank_at_least_1"}
    outcome = result.outcome("loser_rank_at_least_1")
    assert outcome.unexpected_count == 1
    assert failing_lines(result, "loser_rank_at_least_1") == [4]
    assert outcome.examples[0] | {"loser_rank": -3, "tourney_id": "2019-0301", "match_num": 3} == outcome.examples[0]


def test_winner_equal_to_loser_fails() -> None:
    rows = clean_atp_rows()
    rows[1] = atp_row(2, 2, 2)  # line 3: Federer beat Federer
    result = check("atp_matches", typed_frame("atp_matches", rows))
    assert failed(result) == {"winner_differs_from_loser"}
    assert failing_lines(result, "winner_differs_from_loser") == [3]
    assert result.outcome("winner_differs_from_loser").examples[0]["winner_id"] == 103819


def test_copied_row_fails_both_match_keys() -> None:
    rows = clean_atp_rows()
    rows.append(dict(rows[1]))  # line 6 repeats line 3
    result = check("atp_matches", typed_frame("atp_matches", rows))
    assert failed(result) == {"match_key_unique", "pairing_unique_per_round"}
    assert failing_lines(result, "match_key_unique") == [3, 6]
    assert failing_lines(result, "pairing_unique_per_round") == [3, 6]


def test_same_pairing_twice_in_a_round_fails_even_with_a_new_match_number() -> None:
    rows = clean_atp_rows()
    rows.append(atp_row(9, 2, 3))  # line 6: the first-round match of line 3 again, as match 9
    result = check("atp_matches_qual_chall", typed_frame("atp_matches_qual_chall", rows))
    assert failed(result) == {"pairing_unique_per_round"}
    assert failing_lines(result, "pairing_unique_per_round") == [3, 6]


def test_round_robin_rematches_pass() -> None:
    rows = [atp_row(1, 0, 1, round="RR"), atp_row(2, 0, 1, round="RR"), atp_row(3, 2, 3, round="SF")]
    assert check("atp_matches", typed_frame("atp_matches", rows)).success


@pytest.mark.parametrize(
    ("field", "value", "name"),
    [
        ("best_of", "4", "best_of_allowed"),
        ("round", "R256", "round_known"),
        ("surface", "Sand", "surface_known"),
        ("tourney_level", "X", "tourney_level_known"),
        ("winner_age", "8", "winner_age_plausible"),
        ("loser_ht", "3", "loser_ht_plausible"),
        ("w_ace", "-1", "w_ace_non_negative"),
        ("tourney_date", "19500101", "tourney_date_in_range"),
        ("minutes", "4756", "minutes_plausible"),
    ],
)
def test_out_of_range_values_fail_their_expectation(field: str, value: str, name: str) -> None:
    rows = clean_atp_rows()
    rows[0][field] = value
    result = check("atp_matches", typed_frame("atp_matches", rows))
    assert failed(result) == {name}
    assert failing_lines(result, name) == [2]


def test_missing_column_fails_the_schema_expectation(atp_frame_without_surface: pd.DataFrame) -> None:
    result = check("atp_matches", atp_frame_without_surface)
    schema = result.outcome("columns_match_source")
    assert not schema.success
    assert schema.observed_value == {"missing": ["surface"]}
    assert not result.outcome("surface_is_str").success  # cannot be checked, so it fails
    assert "columns_match_source" in result.summary_markdown()


@pytest.fixture
def atp_frame_without_surface() -> pd.DataFrame:
    return typed_frame("atp_matches", clean_atp_rows()).drop(columns=["surface"])


def test_a_wrong_dtype_fails_the_type_expectation() -> None:
    frame = typed_frame("atp_matches", clean_atp_rows())
    frame["winner_rank"] = frame["winner_rank"].astype(str)
    assert "winner_rank_is_int" in failed(check("atp_matches", frame))


def test_too_few_rows_fail_the_row_count() -> None:
    result = validate_dataset("atp_matches", typed_frame("atp_matches", clean_atp_rows()))
    assert failed(result) == {"row_count_plausible"}
    assert result.outcome("row_count_plausible").observed_value == 4


def tour_rows() -> list[dict[str, str]]:
    return [
        odds_tour_row("2019-01-01", "Nishikori K.", "Dimitrov G."),
        odds_tour_row("2019-01-01", "Medvedev D.", "Tsonga J.W.", Winner="Tsonga J.W.", Odd_1="1.5", Odd_2="2.6"),
        odds_tour_row("2019-01-02", "Nishikori K.", "Medvedev D."),
    ]


def test_clean_tour_odds_pass() -> None:
    result = check("odds_tour", typed_frame("odds_tour", tour_rows()))
    assert result.success, result.summary_markdown()


@pytest.mark.parametrize("price", ["1.005", "1.0", "0.967"])
def test_tour_price_below_the_exchange_minimum_fails(price: str) -> None:
    rows = tour_rows()
    rows[1]["Odd_2"] = price  # line 3
    result = check("odds_tour", typed_frame("odds_tour", rows))
    assert failed(result) == {"odd_2_not_below_exchange_minimum"}
    assert failing_lines(result, "odd_2_not_below_exchange_minimum") == [3]
    example = result.outcome("odd_2_not_below_exchange_minimum").examples[0]
    assert example["Player_2"] == "Tsonga J.W." and example["Date"] == "2019-01-01"


def test_tour_winner_who_did_not_play_fails() -> None:
    rows = tour_rows()
    rows[2]["Winner"] = "Djokovic N."
    result = check("odds_tour", typed_frame("odds_tour", rows))
    assert failed(result) == {"winner_is_player_1_or_2"}
    assert failing_lines(result, "winner_is_player_1_or_2") == [4]


def test_tour_duplicated_match_fails() -> None:
    rows = [*tour_rows(), tour_rows()[0]]
    result = check("odds_tour", typed_frame("odds_tour", rows))
    assert failed(result) == {"match_key_unique"}
    assert failing_lines(result, "match_key_unique") == [2, 5]


def slam_rows() -> list[dict[str, str]]:
    return [
        odds_slams_row("2019-01-14", "Djokovic N.", "Krueger M."),
        odds_slams_row("2019-01-14", "Nadal R.", "Duckworth J.", PSW="", PSL=""),
    ]


def test_clean_slam_odds_pass() -> None:
    result = check("odds_slams", typed_frame("odds_slams", slam_rows()))
    assert result.success, result.summary_markdown()


@pytest.mark.parametrize(
    ("field", "value", "name"),
    [
        ("B365W", "1.002", "b365w_not_below_exchange_minimum"),
        ("PSW", "1.005", "psw_not_below_exchange_minimum"),
        ("MaxL", "42586", "maxl_not_above_exchange_maximum"),
        ("Loser", "Djokovic N.", "winner_differs_from_loser"),
        ("Best of", "4", "best_of_allowed"),
    ],
)
def test_slam_odds_defects_fail(field: str, value: str, name: str) -> None:
    rows = slam_rows()
    rows[0][field] = value
    result = check("odds_slams", typed_frame("odds_slams", rows))
    assert failed(result) == {name}
    assert failing_lines(result, name) == [2]


def test_players() -> None:
    rows = [
        {
            "player_id": "104925",
            "name_first": "Novak",
            "name_last": "Djokovic",
            "hand": "R",
            "dob": "19870522",
            "ioc": "SRB",
            "height": "188",
        },
        {
            "player_id": "100001",
            "name_first": "Gardnar",
            "name_last": "Mulloy",
            "hand": "R",
            "dob": "19130000",
            "ioc": "USA",
        },
    ]
    assert check("atp_players", typed_frame("atp_players", rows)).success
    bad = [rows[0], rows[1] | {"hand": "X", "height": "3"}, rows[0]]
    result = check("atp_players", typed_frame("atp_players", bad))
    assert failed(result) == {"hand_known", "height_plausible", "player_id_unique"}
    assert failing_lines(result, "player_id_unique") == [2, 4]


def pbp_rows() -> list[dict[str, str]]:
    return [
        {
            "pbp_id": "2231275",
            "date": "28 Jul 11",
            "tny_name": "ATPUmag2011",
            "tour": "ATP",
            "draw": "Main",
            "server1": "Olivier Rochus",
            "server2": "Fabio Fognini",
            "winner": "2",
            "pbp": "SSSS;RRRR;SRSRA/DS.SSSS",
            "score": "6-4 6-1",
            "adf_flag": "0",
            "wh_minutes": "66",
        },
        {
            "pbp_id": "2231276",
            "date": "28 Jul 11",
            "tny_name": "ATPUmag2011",
            "tour": "ATP",
            "draw": "Qual",
            "server1": "Robin Haase",
            "server2": "Marin Cilic",
            "winner": "1",
            "pbp": "SSRSS;RRSSRSSS",
            "score": "4-6 6-4 6-3",
            "adf_flag": "1",
        },
    ]


@pytest.mark.parametrize(
    ("field", "value", "name"),
    [
        ("winner", "3", "winner_is_1_or_2"),
        ("pbp", "SSXS;RRRR", "pbp_only_point_codes"),
        ("server2", "Olivier Rochus", "servers_differ"),
        ("pbp_id", "2231276", "pbp_id_unique"),
    ],
)
def test_point_by_point_matches(field: str, value: str, name: str) -> None:
    assert check("pbp_matches", typed_frame("pbp_matches", pbp_rows())).success
    rows = pbp_rows()
    rows[0][field] = value
    result = check("pbp_matches", typed_frame("pbp_matches", rows))
    assert failed(result) == {name}
    assert 2 in failing_lines(result, name)


def test_slam_matches_allow_winner_0_for_unfinished() -> None:
    row = {
        "match_id": "2011-usopen-1101",
        "year": "2011",
        "slam": "usopen",
        "match_num": "1101",
        "player1": "Novak Djokovic",
        "player2": "Conor Niland",
        "status": "Retired",
        "winner": "1",
    }
    rows = [row, row | {"match_id": "2011-usopen-1102", "match_num": "1102", "winner": "0", "status": "In Progress"}]
    assert check("slam_matches", typed_frame("slam_matches", rows)).success
    rows[1]["winner"] = "3"
    assert failed(check("slam_matches", typed_frame("slam_matches", rows))) == {"winner_is_0_1_or_2"}


def test_slam_points_opening_row_may_have_no_winner_but_a_played_point_must() -> None:
    base = {
        "match_id": "2011-usopen-1101",
        "ElapsedTime": "0:00:00",
        "SetNo": "1",
        "P1GamesWon": "0",
        "P2GamesWon": "0",
        "SetWinner": "0",
        "GameNo": "1",
        "GameWinner": "0",
        "P1Score": "0",
        "P2Score": "0",
        "Speed_KMH": "0",
        "P1Ace": "0",
        "P2Ace": "0",
        "P1DoubleFault": "0",
        "P2DoubleFault": "0",
        "ServeIndicator": "0",
    }
    rows = [
        base | {"PointNumber": "0", "PointWinner": "0", "PointServer": "0"},
        base
        | {
            "PointNumber": "1",
            "PointWinner": "1",
            "PointServer": "1",
            "P1Score": "15",
            "ElapsedTime": "0:00:31",
            "ServeIndicator": "1",
            "Speed_KMH": "201",
        },
        base
        | {
            "PointNumber": "2",
            "PointWinner": "2",
            "PointServer": "1",
            "P1Score": "15",
            "P2Score": "15",
            "ElapsedTime": "0:01:05",
            "ServeIndicator": "2",
        },
    ]
    assert check("slam_points", typed_frame("slam_points", rows)).success
    rows[2]["PointWinner"] = "0"
    result = check("slam_points", typed_frame("slam_points", rows))
    assert failed(result) == {"point_winner_is_1_or_2"}
    assert failing_lines(result, "point_winner_is_1_or_2") == [4]


def test_summary_names_the_failing_rows() -> None:
    rows = clean_atp_rows()
    rows[2]["winner_rank"] = "-3"
    text = check("atp_matches", typed_frame("atp_matches", rows)).summary_markdown()
    assert "`winner_rank_at_least_1`" in text
    assert f"`{SOURCE_FILE}:4`" in text
    assert "1 of" in text.splitlines()[0]
