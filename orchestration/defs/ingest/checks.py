"""Great Expectations suites on every ingested dataset, as asset checks. The suites of datasets
that feed training are blocking: a failure stops every downstream asset of the run."""

import dagster as dg
import pandas as pd

from expectations.suites import validate_dataset
from orchestration.defs.ingest.assets import DATASETS, priority
from orchestration.defs.shared.gx import check_result

GATES_TRAINING = {"atp_matches", "atp_matches_qual_chall", "atp_players", "odds_tour", "odds_slams"}
"""Datasets upstream of the pre-match models and their evaluation."""

GX_CHECK = "gx_suite"


def gx_check(dataset: str) -> dg.AssetChecksDefinition:
    """The asset check running the suite of ``dataset`` on its ingest asset."""
    blocking = dataset in GATES_TRAINING

    @dg.asset_check(
        asset=f"raw_{dataset}",
        name=GX_CHECK,
        blocking=blocking,
        op_tags=priority(dataset),
        description=f"Great Expectations suite '{dataset}' (schema, types, ranges, "
        f"uniqueness, allowed values, row counts)" + (" - blocking: gates training." if blocking else "."),
    )
    def _check(frame: pd.DataFrame) -> dg.AssetCheckResult:
        return check_result(validate_dataset(dataset, frame))

    return _check


gx_checks = [gx_check(name) for name in DATASETS]
