"""Great Expectations over each batch of the live event log (not blocking: the batch is history,
the check raises the alarm in the UI)."""

import dagster as dg
import pandas as pd

from expectations.live import live_events
from expectations.runner import validate
from orchestration.defs.shared.gx import check_result


@dg.asset_check(
    asset="live_event_batch",
    name="gx_live_events",
    description="Great Expectations suite 'live_events': known kinds, probabilities in [0, 1], "
    "prices on the exchange range, each feed message processed once, quarantine "
    "share below 5%.",
)
def gx_live_events(live_event_batch: pd.DataFrame) -> dg.AssetCheckResult:
    return check_result(
        validate(
            live_event_batch, "live_events", live_events(), context_columns=["id", "kind", "feed", "seq", "match_id"]
        )
    )
