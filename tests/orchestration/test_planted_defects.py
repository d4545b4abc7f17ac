"""Planted defects in otherwise real data: each fails its Great Expectations check, the UI
metadata names the failed expectation with the offending row, and training does not run.

The data folder is the real shared data (linked, not copied) with one file replaced by an
edited copy in a temporary folder. Each run is the pipeline job's part that training needs: the
training assets and everything upstream of them, with their checks (the rest of the job — point-by-point
ingest, walk-forward, in-play, backtests — is not upstream of training, so it cannot change whether
training runs, and it is left out to save minutes).
"""

import csv
import io

import pytest

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
@pytest.mark.parametrize("defect", list(DEFECTS))
def test_planted_defect_fails_its_check_and_stops_training(defect, tmp_path):
    relative, asset, expectation, planted_line, edit = DEFECTS[defect]
    data = mirror_data(tmp_path / "data")
    edit_csv(data, relative, edit)

    run = run_pipeline(tmp_path / "home", data, upstream_of=TRAINING)
    assert {k.to_user_string() for k in run.result.dagster_run.asset_selection} >= TRAINING  # in the run

    check = run.check(asset, "gx_suite")
    assert not check.passed
    failed = check.metadata["failed_expectations"].value
    assert expectation in failed, list(failed)
    examples = failed[expectation]["examples"]
    assert any(
        x["source_file"].endswith(relative.split("/")[-1]) and x["source_line"] == planted_line for x in examples
    ), examples
    assert expectation in check.metadata["summary"].value  # the markdown the UI shows
    assert not (TRAINING & run.materialized())
    assert not run.result.success
