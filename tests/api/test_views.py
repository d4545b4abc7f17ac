"""The live view projected from a real event log, the score parser on every score the engine logged,
and the sliding-window rate limit."""

from __future__ import annotations

import pytest

from betting.records import EventKind
from serving.api.ratelimit import RateLimit, SlidingWindowLimiter
from serving.api.views import LiveView, ScoreFormatError, parse_score
from storage import live as store
from storage.db import make_engine
from tests.api.conftest import match_ids


@pytest.fixture(scope="module")
def log(session_log):
    db = make_engine(f"sqlite:///{session_log}")
    yield store.event_rows(db, 0, 10**12), match_ids(db)
    db.dispose()


@pytest.fixture(scope="module")
def rows(log):
    return log[0]


def test_every_logged_score_parses_and_agrees_with_the_feed(rows):
    points = [
        r["payload"] for r in rows if r["kind"] == str(EventKind.FEED_MESSAGE) and r["payload"].get("kind") == "point"
    ]
    assert len(points) > 300
    for p in points:
        score = parse_score(p["score"])
        won = [sum(a > b for a, b in score["sets"]), sum(b > a for a, b in score["sets"])]
        assert f"{won[0]} - {won[1]}" == p["sets"], p  # completed sets agree with the feed's set count
        if score["winner"] is None:
            assert score["server"] in (1, 2) and len(score["games"]) == 2
            assert score["points"].replace("-", " - ") == p["game"]


@pytest.mark.parametrize(
    "text, sets, games, points, server, winner",
    [
        ("0-0, 0-0, A serving", [], [0, 0], "0-0", 1, None),
        ("6-7(4) 7-5 6-0 5-4, 40-A, B serving", [[6, 7], [7, 5], [6, 0]], [5, 4], "40-A", 2, None),
        ("6-6, tie-break 3-2, B serving", [], [6, 6], "3-2", 2, None),
        ("6-3 6-3 6-1 won by A", [[6, 3], [6, 3], [6, 1]], None, None, None, 1),
    ],
)
def test_parse_score_examples(text, sets, games, points, server, winner):
    s = parse_score(text)
    assert (s["sets"], s["games"], s["points"], s["server"], s["winner"]) == (sets, games, points, server, winner)


@pytest.mark.parametrize("text", ["", "6-3 6-x, 0-0, A serving", "4-3, 15-0", "4-3, 15-0, C serving", "won by"])
def test_malformed_scores_are_refused(text):
    with pytest.raises(ScoreFormatError):
        parse_score(text)


def test_view_of_the_session(log):
    rows, (started, finished) = log
    view = LiveView()
    updates = [u for r in rows for u in view.apply(r)]
    assert view.last_id == rows[-1]["id"]
    assert {m.status for m in view.matches.values()} == {"in_play", "finished"}
    n = len(started - finished)
    assert n >= 2 and len(view.active()) == n and len(view.active(surface="grass")) == n
    assert not view.active(surface="Clay") and not view.active(tournament="US Open")
    finished = [m for m in view.matches.values() if m.status == "finished"]
    assert len(finished) == 1 and finished[0].winner in ("First Player", "Second Player")
    opportunities = [r for r in rows if r["kind"] == str(EventKind.OPPORTUNITY)]
    assert sum(len(m.value_bets) for m in view.matches.values()) == len(opportunities) > 0
    predictions = [r for r in rows if r["kind"] == str(EventKind.PREDICTION)]
    assert sum(len(m.predictions) for m in view.matches.values()) == len(predictions)
    assert view.bankroll_curve and all(p["bankroll"] is not None for p in view.bankroll_curve)
    types = {u.type for u in updates}
    assert {"game_event", "odds_update", "prediction_update", "value_bet", "bet_update", "bankroll_update"} <= types
    for u in updates:  # match updates go to the match's room and "*"; the ledger's to "ledger"
        assert u.rooms == (
            (u.match_id, "*")
            if u.type in ("game_event", "odds_update", "prediction_update", "value_bet")
            else ("ledger",)
        )
    in_play = view.active()[0]
    assert 0 < in_play.probability < 1 and in_play.market_probability is not None


def test_sliding_window_rate_limit():
    now = [0.0]
    limiter = SlidingWindowLimiter(RateLimit(3, 10.0), clock=lambda: now[0])
    assert [limiter.hit("a") for _ in range(3)] == [None, None, None]
    assert limiter.hit("a") == pytest.approx(10.0)  # the oldest leaves the window in 10 s
    assert limiter.hit("b") is None  # per client
    now[0] = 4.0
    assert limiter.hit("a") == pytest.approx(6.0)
    now[0] = 10.5  # the first three left the window: a sliding window, not a fixed minute
    assert limiter.hit("a") is None
    assert RateLimit.parse("300/60") == RateLimit(300, 60.0)
    for bad in ("300", "a/b", "0/60", "10/0"):
        with pytest.raises(ValueError):
            RateLimit.parse(bad)


def test_a_suspended_match_says_why_until_it_resumes(rows):
    view = LiveView()
    match_id = next(r["match_id"] for r in rows if r["match_id"])
    for r in rows[:50]:
        view.apply(r)
    last = rows[49]
    suspended = {
        **last,
        "id": last["id"] + 1,
        "kind": str(EventKind.MATCH_SUSPENDED),
        "match_id": match_id,
        "payload": {"reason": "impossible score: 0-0 -> 40-30", "channel": "match"},
    }
    updates = view.apply(suspended)
    assert view.matches[match_id].summary()["suspended"] == "impossible score: 0-0 -> 40-30"
    assert updates and updates[0].data["event"] == "suspended"
    resumed = {**suspended, "id": suspended["id"] + 1, "kind": str(EventKind.MATCH_RESUMED), "payload": {}}
    view.apply(resumed)
    assert view.matches[match_id].summary()["suspended"] is None


def test_the_end_of_a_replay_is_said_with_what_to_do_next():
    from datetime import UTC, datetime

    view = LiveView()
    at = datetime(2026, 12, 7, tzinfo=UTC)

    def feed(i: int, kind: str, match_id: str, payload: dict) -> None:
        view.apply(
            {
                "id": i,
                "kind": kind,
                "event_time": at,
                "feed": "live",
                "seq": i,
                "match_id": match_id,
                "payload": payload,
                "recorded_at": at,
            }
        )

    assert view.replay_state()["over"] is False  # nothing played yet
    feed(1, "FEED_MESSAGE", "m1", {"kind": "match_start", "players": ["Novak Djokovic", "Juan Martin del Potro"]})
    feed(2, "FEED_MESSAGE", "m2", {"kind": "match_start", "players": ["Serena Williams", "Kirsten Flipkens"]})
    feed(3, "MATCH_FINISHED", "m1", {"winner": "First Player", "outcome": "completed"})
    state = view.replay_state()
    assert (state["in_play"], state["finished"], state["over"], state["hint"]) == (1, 1, False, None)
    feed(4, "MATCH_FINISHED", "m2", {"winner": "Second Player", "outcome": "retired"})
    state = view.replay_state()
    assert state["over"] is True and "courtside up --skip-pipeline" in state["hint"] and "2 played" in state["hint"]
