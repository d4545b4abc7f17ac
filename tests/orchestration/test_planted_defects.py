"""Planted defects in otherwise real data, through the real pipeline. Row-level defects (a negative rank, a winner
who is his own opponent, a price below the exchange minimum, a duplicated match) are set aside at ingest with their
reasons, errata are proposed for them, the checks pass on what goes on, and training runs. A systemic defect (the
same impossible rank on a tenth of one season's file) fails its blocking check — the UI metadata names the failed
expectation with the offending rows — and training does not run.

The data folder is the real shared data (linked, not copied) with one file replaced by an
edited copy in a temporary folder. Each run is the pipeline job's part that training needs: the
training assets and everything upstream of them, with their checks (the rest of the job — point-by-point
ingest, walk-forward, in-play, backtests — is not upstream of training, so it cannot change whether
training runs, and it is left out to save minutes).
"""

import csv
import io
import re

import pytest
from sqlalchemy import text

from storage.db import make_engine
from tests.orchestration.harness import edit_csv, mirror_data, run_pipeline

TRAINING = {"prematch_candidates", "prematch_challenger", "prematch_champion", "test_evaluation"}


def _set_field(lines, line_no, column, value):
    header = next(csv.reader([lines[0]]))
    row = next(csv.reader([lines[line_no - 1]]))
    row[header.index(column)] = value
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(row)
    out = list(lines)
    out[line_no - 1] = buf.getvalue()
    return out


def _copy_winner_to_loser(lines, line_no):
    header = next(csv.reader([lines[0]]))
    row = next(csv.reader([lines[line_no - 1]]))
    return _set_field(lines, line_no, "loser_id", row[header.index("winner_id")])


DEFECTS = {
    "negative_rank": (
        "atp/atp_matches_2019.csv.gz",
        "raw_atp_matches",
        "winner_rank_at_least_1",
        40,
        lambda lines: _set_field(lines, 40, "winner_rank", "-5"),
    ),
    "winner_equals_loser": (
        "atp/atp_matches_2019.csv.gz",
        "raw_atp_matches",
        "winner_differs_from_loser",
        41,
        lambda lines: _copy_winner_to_loser(lines, 41),
    ),
    "odds_below_1_01": (
        "odds/atp_tour_odds_2013_onward.csv.gz",
        "raw_odds_tour",
        "odd_1_not_below_exchange_minimum",
        2,
        lambda lines: _set_field(lines, 2, "Odd_1", "1.005"),
    ),
    "duplicated_match": (
        "atp/atp_matches_2019.csv.gz",
        "raw_atp_matches",
        "match_key_unique",
        3,
        lambda lines: [*lines[:2], lines[1], *lines[2:]],
    ),
}


@pytest.mark.slow
def test_row_level_defects_are_set_aside_with_reasons_and_training_goes_on(tmp_path):
    data = mirror_data(tmp_path / "data")
    for name in sorted(DEFECTS, key=lambda d: d != "duplicated_match"):  # the inserted row first: lines stay put
        relative, _, _, _, edit = DEFECTS[name]
        edit_csv(data, relative, edit)

    run = run_pipeline(tmp_path / "home", data, upstream_of=TRAINING)
    assert run.result.success and run.materialized() >= TRAINING
    with make_engine(run.settings.database_url).connect() as conn:
        quarantined = conn.execute(
            text("select source, location, line, reason from quarantine where reason like 'data check:%'")
        ).all()
    for defect, (relative, asset, _, planted_line, _) in DEFECTS.items():
        check = run.check(asset, "gx_suite")
        assert check.passed, (defect, check.metadata["failed_expectations"].value)
        assert check.metadata["set_aside_by_data_checks"].value >= 1
        if defect == "negative_rank":  # an optional value: removed, the match kept
            removed = run.materialization(asset).metadata["values_removed_sample"].value
            assert re.search(rf"\|\s+{planted_line} \| winner_rank=-5 \|", removed), removed
            continue
        hits = [q for q in quarantined if q.location.endswith(relative.split("/")[-1]) and q.line == planted_line]
        assert hits, (defect, quarantined)
    proposed = run.settings.proposed_errata_dir
    assert {p.stem for p in proposed.glob("*.csv")} >= {"atp_matches", "odds_tour"}


@pytest.mark.slow
def test_a_systemic_defect_fails_its_check_and_stops_training(tmp_path):
    data = mirror_data(tmp_path / "data")

    def ranks(lines):  # a tenth of the season's rows: a changed source, not a bad row
        for line_no in range(2, len(lines) // 10):
            lines = _set_field(lines, line_no, "winner_rank", "-5")
        return lines

    edit_csv(data, "atp/atp_matches_2019.csv.gz", ranks)
    run = run_pipeline(tmp_path / "home", data, upstream_of=TRAINING)
    assert {k.to_user_string() for k in run.result.dagster_run.asset_selection} >= TRAINING  # in the run

    check = run.check("raw_atp_matches", "gx_suite")
    assert not check.passed
    failed = check.metadata["failed_expectations"].value
    assert "winner_rank_at_least_1" in failed, list(failed)
    examples = failed["winner_rank_at_least_1"]["examples"]
    assert any(x["source_file"].endswith("atp_matches_2019.csv.gz") for x in examples), examples
    assert "winner_rank_at_least_1" in check.metadata["summary"].value  # the markdown the UI shows
    assert any("atp_matches_2019" in s for s in check.metadata["systemic_failures"].value)
    assert not (TRAINING & run.materialized())
    assert not run.result.success
