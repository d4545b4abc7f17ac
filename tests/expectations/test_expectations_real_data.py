"""Every suite on the real shared data (read through ``feeds.historical.ingest``).

The errata are not applied here (``errata={}``): the data still holds its known upstream
defects, so instead of success this asserts that the result is well formed, that nothing but
rows fails (schema, types and row counts hold), that every failing row is one
``expectations.propose_errata`` reports, and that with the committed ``feeds/errata.csv`` applied
by ingest the suite passes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from courtside.settings import Settings
from expectations.propose_errata import Proposal, propose
from expectations.suites import SUITES, validate_dataset
from feeds.historical import SPECS, ingest
from feeds.sources import LocalDataSource

pytestmark = pytest.mark.slow  # every suite on the whole real data (make test-fast leaves it out)

CLEAN_UPSTREAM = {"slam_matches"}
"""Datasets without known upstream defects: their suite passes as it is."""


@pytest.fixture(scope="module")
def source() -> LocalDataSource:
    root = Path(Settings.from_env().data_dir)
    assert root.is_dir(), f"the shared data folder {root} is missing (see ../shared/data/README.md)"
    return LocalDataSource(root)


@pytest.mark.parametrize("dataset", list(SUITES))
def test_suite_on_real_data(dataset: str, source: LocalDataSource) -> None:
    frame = ingest(source, dataset, errata={}).frame
    proposal: Proposal = propose(dataset, frame, source)
    result = proposal.result

    assert result.suite_name == dataset
    assert result.evaluated_rows == len(frame) > 1_000
    assert len(result.expectations) == len(SUITES[dataset]())
    assert result.outcome("row_count_plausible").success
    assert proposal.unfixable == ()  # columns, dtypes and row count hold: only rows fail
    assert result.success == (not proposal.errata)
    if dataset in CLEAN_UPSTREAM:
        assert result.success, result.summary_markdown()

    listed = set(proposal.failing_rows)
    for outcome in result.failures:
        assert outcome.unexpected_count == len(outcome.failing_rows) > 0
        assert outcome.examples and outcome.reason
        for example in outcome.examples:
            assert {"source_file", "source_line", *SPECS[dataset].key} <= example.keys()
        if "unique" in outcome.expectation_type:
            # Every copy fails; only the second and later copies are reported (the suite passes
            # without them, checked below).
            assert set(outcome.failing_rows) & listed
        else:
            assert set(outcome.failing_rows) <= listed
    assert {e.dataset for e in proposal.errata} <= {dataset}
    assert all(e.key and e.reason for e in proposal.errata)
    assert len({(e.key, e.column) for e in proposal.errata}) == len(proposal.errata)

    # with the reviewed errata committed in feeds/errata.csv, the real data passes its suite
    after = validate_dataset(dataset, ingest(source, dataset).frame)
    assert after.success, after.summary_markdown()
