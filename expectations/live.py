"""Great Expectations suite for batches of the live event log (what the engine appended between
two sensor ticks): the log is what settlement, the P&L and the people-facing API read, so a
malformed entry, a probability outside [0, 1], a price off the exchange's range or a feed message
processed twice must be seen within a batch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from betting.ladder import MAX_PRICE, MIN_PRICE
from betting.records import EventKind
from expectations.suites import _condition, _gxe, _meta, between, in_set, present, unique

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation

CONTROL_PLANE_KINDS = ("PREMATCH_PREDICTION",)
"""Entries written outside ``EventKind``: the pre-match scan's predictions."""
MAX_QUARANTINED_SHARE = 0.05
"""More quarantined feed messages than this in one batch means the feed (or our parser) is broken."""


def live_events() -> list[Expectation]:
    """Expectations over ``serving.control.events_frame``."""
    kinds = [str(k) for k in EventKind] + list(CONTROL_PLANE_KINDS)
    return [
        present("id"),
        present("kind"),
        present("event_time"),
        in_set("kind_known", "kind", kinds),
        between("probability_in_0_1", "probability", 0.0, 1.0),
        between("price_on_exchange_range", "price", MIN_PRICE, MAX_PRICE),
        between("size_positive", "size", 0.01, None),
        between("seq_positive", "seq", 1, None),
        unique(
            "feed_message_processed_once",
            ["feed", "seq"],
            where=_condition("kind == 'FEED_MESSAGE'"),
            reason="feed {feed} message {seq} logged twice (processed twice?)",
        ),
        _gxe().ExpectColumnValuesToNotBeInSet(
            column="kind",
            value_set=[str(EventKind.QUARANTINED)],
            mostly=1 - MAX_QUARANTINED_SHARE,
            meta=_meta("quarantined_share_below_5pct", "quarantined feed message"),
        ),
    ]
