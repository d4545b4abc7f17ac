"""The per-message data-quality score (``features.live_quality``)."""

from types import SimpleNamespace

import pytest

from features.live_quality import QualityTally, completeness, message_quality, timeliness


def _event(kind="point", **missing):
    fields = dict(
        kind=kind,
        event_serve="First Player",
        first_player_key=1,
        second_player_key=2,
        tournament_key="t",
        elapsed_s=12.0,
        pointbypoint=[object()],
    )
    fields.update(missing)
    return SimpleNamespace(**fields)


def test_completeness_counts_the_optional_fields_present():
    assert completeness(_event()) == 1.0
    assert completeness(_event(elapsed_s=None, pointbypoint=[])) == pytest.approx(4 / 6, abs=1e-4)
    assert completeness(_event("status", first_player_key=None)) == pytest.approx(4 / 5)


def test_timeliness_is_one_on_time_and_falls_to_zero_when_late():
    assert timeliness(None) is None and timeliness(0.2) == 1.0
    assert timeliness(5.5) == pytest.approx(0.5) and timeliness(30.0) == 0.0


def test_the_score_is_the_mean_of_what_is_known_and_a_resync_or_a_refusal_costs_consistency():
    clean = message_quality(_event(), "point", None)
    assert clean["score"] == 1.0 and clean["timeliness"] is None
    assert message_quality(_event(), "resync", 0.0)["score"] == pytest.approx(3.5 / 4)
    refused = message_quality(_event(), "refused", 20.0)
    assert refused["consistency"] == 0.0 and refused["score"] == pytest.approx(2 / 4)
    tally = QualityTally()
    malformed = {"completeness": 0.0, "validity": 0.0, "consistency": 0.0, "timeliness": None, "score": 0.0}
    for dq in (clean, refused, malformed):
        tally.add(dq)
    summary = tally.as_dict()
    assert summary["messages"] == 3 and summary["min_score"] == 0.0
    assert (
        summary["validity"] == pytest.approx(2 / 3, abs=1e-4) and summary["timeliness"] == 0.0
    )  # only the refusal was timed
    assert QualityTally().as_dict() is None
