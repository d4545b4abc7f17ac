"""Proposed errata name failing rows by their source key, and once applied the suite passes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from expectations.propose_errata import main, propose, write_errata
from expectations.suites import validate_dataset
from feeds.historical import SPECS, ingest, load_errata
from feeds.sources import LocalDataSource
from tests.expectations.sample_frames import SMALL, atp_row, clean_atp_rows, odds_tour_row


def write_csv(path: Path, dataset: str, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=SPECS[dataset].names).fillna("").to_csv(path, index=False)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    tour = [
        odds_tour_row("2019-11-10", "Nishikori K.", "Dimitrov G."),
        # tennis-data left a space after these names: the key must keep it
        odds_tour_row(
            "2019-11-10", "Berrettini M. ", "Djokovic N. ", Winner="Djokovic N. ", Odd_1="9.5", Odd_2="1.002"
        ),
        odds_tour_row("2019-11-11", "Medvedev D.", "Tsitsipas S."),
        odds_tour_row("2019-11-11", "Medvedev D.", "Tsitsipas S."),  # the row again
    ]
    write_csv(tmp_path / "odds" / "atp_tour_odds_2013_onward.csv", "odds_tour", tour)
    matches = [
        *clean_atp_rows(),
        atp_row(9, 2, 3),  # line 6: the first-round match of line 3 again
        atp_row(5, 1, 1),
    ]  # line 7: a player beats himself
    write_csv(tmp_path / "atp" / "atp_matches_qual_chall_2019.csv", "atp_matches_qual_chall", matches)
    return tmp_path


def test_odds_errata_keep_the_source_text_of_the_key(data_dir: Path) -> None:
    source = LocalDataSource(data_dir)
    frame = ingest(source, "odds_tour", errata={}).frame
    proposal = propose("odds_tour", frame, source, row_bounds=SMALL)
    assert [(e.key, e.reason) for e in proposal.errata] == [
        ("2019-11-10|Berrettini M. |Djokovic N. ", "Bet365 price Odd_2 1.002 below the exchange minimum 1.01"),
        ("2019-11-11|Medvedev D.|Tsitsipas S.", "duplicate of line 4 (same Date and players)"),
    ]
    assert [(e.source_file, e.source_line) for e in proposal.errata] == [
        ("odds/atp_tour_odds_2013_onward.csv", 3),
        ("odds/atp_tour_odds_2013_onward.csv", 5),
    ]
    # Errata name rows by key, so the first copy of the duplicate is set aside as well.
    assert proposal.failing_rows == (1, 3) and proposal.set_aside == (1, 2, 3)
    assert proposal.unfixable == ()


def test_match_errata_list_only_the_later_copy_of_a_duplicate(data_dir: Path) -> None:
    source = LocalDataSource(data_dir)
    frame = ingest(source, "atp_matches_qual_chall", errata={}).frame
    proposal = propose("atp_matches_qual_chall", frame, source, row_bounds=SMALL)
    assert [(e.key, e.reason) for e in proposal.errata] == [
        ("2019-0301|9", "duplicate of match 2019-0301:2 (same round R32 and players 103819 vs 106421)"),
        ("2019-0301|5", "winner_id equals loser_id: player 104745 'Rafael Nadal' recorded as playing himself"),
    ]


def test_applied_errata_make_the_suites_pass(data_dir: Path, tmp_path: Path) -> None:
    source = LocalDataSource(data_dir)
    errata_file = tmp_path / "errata.csv"
    with errata_file.open("w", encoding="utf-8") as out:
        write_errata(
            [
                e
                for dataset in ("odds_tour", "atp_matches_qual_chall")
                for e in propose(dataset, ingest(source, dataset, errata={}).frame, source, row_bounds=SMALL).errata
            ],
            out,
        )
    errata = load_errata(errata_file)
    for dataset, kept in (("odds_tour", 1), ("atp_matches_qual_chall", 4)):
        frame = ingest(source, dataset, errata=errata).frame
        assert len(frame) == kept
        assert validate_dataset(dataset, frame, row_bounds=SMALL).success


def test_command_line_prints_errata_csv_and_flags_what_errata_cannot_fix(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["--data", str(data_dir), "odds_tour"])
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == "dataset,key,column,reason"
    assert out.splitlines()[1] == (
        "odds_tour,2019-11-10|Berrettini M. |Djokovic N. ,,Bet365 price Odd_2 1.002 below the exchange minimum 1.01"
    )
    # Four rows are far below the full history's plausible count: no erratum can fix that.
    assert status == 1 and "NOT FIXABLE BY ERRATA: row_count_plausible" in err
