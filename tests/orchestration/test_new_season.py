"""A new season arrives with the defects newer upstream files really have (issue 12's "Why"): impossible player
heights (3 and 132 cm), a match of over 700 minutes, a duplicated qualifying row, odds of 1.005, and ``Best of`` 0
on all 15 rows of the ATP Finals. The pipeline runs to a champion on the shared data plus that season without a
hand edit: each defect is set aside or removed with its reason, errata are proposed for them, and the season's
good rows go on into the clean tables.

The season is planted as 2022: the real 2021 files (results, qualifying/Challenger results, the 2021 rows of the
tour odds) copied with their dates moved a year on, in a mirror of the shared data (links, not copies). The run
is the part of the job training needs (see ``test_planted_defects``)."""

import csv
import gzip
import io
import re

import pandas as pd
import pytest
from sqlalchemy import text

from feeds.historical import ERRATA_FILE
from storage.db import make_engine
from tests.orchestration.harness import edit_csv, mirror_data, run_pipeline

TRAINING = {"prematch_candidates", "prematch_challenger", "prematch_champion", "test_evaluation"}


def _rows(lines: list[str]) -> tuple[list[str], list[list[str]]]:
    parsed = list(csv.reader(lines))
    return parsed[0], parsed[1:]


def _lines(header: list[str], rows: list[list[str]]) -> list[str]:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *rows])
    return buf.getvalue().splitlines()


def _next_season(row: list[str], header: list[str]) -> list[str]:
    out = list(row)
    i, d = header.index("tourney_id"), header.index("tourney_date")
    out[i] = out[i].replace("2021-", "2022-", 1)
    out[d] = "2022" + out[d][4:] if out[d].startswith("2021") else "2023" + out[d][4:]  # late-December starts
    return out


def _plant_results(data, name: str, edit) -> None:
    """``<name>_2022.csv.gz`` from the real 2021 file moved a year on, then ``edit(header, rows)``."""
    source = data / "atp" / f"{name}_2021.csv.gz"
    header, rows = _rows(gzip.decompress(source.read_bytes()).decode("utf-8").splitlines())
    rows = edit(header, [_next_season(r, header) for r in rows])
    (data / "atp" / f"{name}_2022.csv.gz").write_bytes(gzip.compress(("\n".join(_lines(header, rows)) + "\n").encode()))


def _results_defects(header, rows):
    rows[9][header.index("minutes")] = "745"  # line 11: a match of 745 minutes
    rows[10][header.index("winner_ht")] = "3"  # line 12: a player of 3 cm
    return rows


def _qualifying_defects(header, rows):
    return [*rows[:4], rows[3], *rows[4:]]  # line 6 repeats line 5


PLANTED_ODDS_FROM: list[int] = []


def _odds_next_season(lines: list[str]) -> list[str]:
    header, rows = _rows(lines)
    date, best_of, odd, series = (header.index(c) for c in ("Date", "Best of", "Odd_1", "Series"))
    season = [list(r) for r in rows if r[date].startswith("2021-")]
    for r in season:
        r[date] = "2022" + r[date][4:]
        if r[series] == "Masters Cup":
            r[best_of] = "0"  # every ATP Finals row
    season[-1][odd] = "1.005"
    PLANTED_ODDS_FROM[:] = [len(rows) + 2, len(rows) + len(season) + 1]  # lines of the first and last appended rows
    return _lines(header, [*rows, *season])


def _players_defects(lines: list[str]) -> list[str]:
    header, rows = _rows(lines)
    height = header.index("height")
    rows[99][height] = "132"  # line 101
    rows[199][height] = "3"  # line 201
    return _lines(header, rows)


@pytest.mark.slow
def test_a_new_season_with_real_kinds_of_defects_runs_to_a_champion_without_a_hand_edit(tmp_path):
    data = mirror_data(tmp_path / "data")
    _plant_results(data, "atp_matches", _results_defects)
    _plant_results(data, "atp_matches_qual_chall", _qualifying_defects)
    edit_csv(data, "odds/atp_tour_odds_2013_onward.csv.gz", _odds_next_season)
    edit_csv(data, "atp/atp_players.csv.gz", _players_defects)
    errata_before = ERRATA_FILE.read_bytes()

    run = run_pipeline(tmp_path / "home", data, upstream_of=TRAINING)
    assert run.result.success and run.materialized() >= TRAINING
    assert ERRATA_FILE.read_bytes() == errata_before  # nobody edited the errata
    assert not (tmp_path / "home" / "errata.csv").exists()

    with make_engine(run.settings.database_url).connect() as conn:
        quarantined = pd.DataFrame(
            conn.execute(text("select source, location, line, reason from quarantine where reason like 'data check:%'"))
            .mappings()
            .all()
        )
    new = quarantined[quarantined["location"].str.contains("2022|atp_tour_odds")]

    # whole rows set aside, each with its reason
    qual = new[new["location"].str.endswith("atp_matches_qual_chall_2022.csv.gz")]
    assert qual["line"].tolist() == [6] and "listed more than once (first at line 5" in qual["reason"].iloc[0], qual
    odds = new[(new["source"] == "odds_tour") & (new["line"] >= PLANTED_ODDS_FROM[0])]
    finals = odds[odds["reason"].str.contains("Best of 0 not one of")]
    assert len(finals) == 15, odds["reason"].value_counts()
    last = odds.loc[odds["line"] == PLANTED_ODDS_FROM[-1], "reason"]
    assert last.str.contains("Odd_1 1.005 below the exchange minimum 1.01").all() and len(last) == 1, odds
    # the 2021 rows the reviewed errata set aside are new rows in 2022 (the errata name their dates): caught again
    assert odds["reason"].str.contains("Odd_2 0.967 below the exchange minimum").any()

    # optional values that cannot be true are removed, and their matches and players kept
    removed = run.materialization("raw_atp_matches").metadata["values_removed_sample"].value
    assert re.search(r"atp_matches_2022\.csv\.gz \|\s+11 \| minutes=745", removed), removed
    assert re.search(r"atp_matches_2022\.csv\.gz \|\s+12 \| winner_ht=3", removed), removed
    removed = run.materialization("raw_atp_players").metadata["values_removed_sample"].value
    assert re.search(r"\|\s+101 \| height=132", removed) and re.search(r"\|\s+201 \| height=3\.0 ", removed), removed

    for asset in ("raw_atp_matches", "raw_atp_matches_qual_chall", "raw_odds_tour", "raw_atp_players"):
        check = run.check(asset, "gx_suite")
        assert check.passed, (asset, check.metadata["failed_expectations"].value)

    # the season's rows are in the clean table (the long match too, its minutes removed)
    clean = run.materialization("matches").metadata
    assert clean["last_match"].value[:4] in {"2022", "2023"}
    assert any(
        name.endswith("atp_matches_2022.csv.gz")
        for name in run.materialization("raw_atp_matches").metadata["file_names"].value
    )

    # errata proposed by the pipeline itself, with the examples, for a reviewer to accept
    proposed = {p.stem: p for p in run.settings.proposed_errata_dir.glob("*.csv")}
    assert {"atp_matches_qual_chall", "odds_tour"} <= set(proposed), sorted(proposed)
    odds_proposals = pd.read_csv(proposed["odds_tour"])
    assert len(odds_proposals) >= 16, odds_proposals.head()
