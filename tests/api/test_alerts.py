"""Value alerts for real: subscriptions checked against the matches and players the live view knows, stored in
the database (they survive a restart of the API), and delivered to a webhook -- signed, retried with backoff
when the receiver fails, each alert once, those logged while the API was down included -- with a delivery log.

The API is a real ``python -m serving.api`` process, the value bets come from the real engine trading on the
session's replay, and the webhook receiver is a little HTTP server in the test."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import shutil
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from betting.records import EventKind
from features.names import normalize_name
from storage import alerts as alert_store
from storage import live as store
from storage.db import make_engine, migrate
from tests.api.conftest import trade
from tests.api.services import TOKEN, api_server, get, request

OPERATOR = {"Authorization": f"Bearer {TOKEN}"}


class Receiver:
    """A webhook receiver on 127.0.0.1: records every POST; answers 500 to the first ``fail_first`` of them."""

    def __init__(self, fail_first: int = 0):
        self.fail_first = fail_first
        self.posts: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    status = 500 if len(receiver.posts) < receiver.fail_first else 200
                    receiver.posts.append({"status": status, "headers": dict(self.headers), "body": body})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/courtside"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def accepted(self) -> list[dict]:
        """The POSTs answered 200, as JSON."""
        with self.lock:
            return [json.loads(p["body"]) for p in self.posts if p["status"] == 200]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Feed:
    """The rest of the replay, traded by a (restarted) engine piece by piece."""

    def __init__(self, url: str, prediction_url: str, envelopes, start: int):
        self.url, self.prediction_url, self.envelopes, self.pos = url, prediction_url, envelopes, start

    def next(self, n: int) -> None:
        self.pos = min(self.pos + n, len(self.envelopes))
        asyncio.run(trade(self.url, self.prediction_url, self.envelopes[: self.pos]))


@pytest.fixture
def db_url(session_log, tmp_path):
    shutil.copyfile(session_log, tmp_path / "live.db")
    return f"sqlite:///{tmp_path / 'live.db'}"


def _wait_for(condition, timeout: float = 30.0, every: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()


def _expected(db, after: int, players: set[str], players_of) -> set[int]:
    """The value bets (OPPORTUNITY entries) after ``after`` of a match one of ``players`` plays in."""
    rows = store.events_after(db, after, kinds=[str(EventKind.OPPORTUNITY)], limit=10**7)
    return {i for i, _, _, _, m, _ in rows if m and {normalize_name(p) for p in players_of(m)} & players}


def test_an_alert_survives_a_restart_and_reaches_the_webhook_once_signed(
    db_url, tmp_path, prediction_service, envelopes, split
):
    receiver = Receiver(fail_first=2)
    feed = Feed(db_url, prediction_service, envelopes, split)
    db = make_engine(db_url)
    try:
        with api_server(db_url, tmp_path, "--poll-s", "0.05") as api:
            active = get(f"{api.url}/live/games/active")[1]["matches"]
            surnames = [m["players"][0].split()[-1].upper() for m in active[:2]]  # whole words, in any case
            status, alert, _ = request(
                "POST",
                f"{api.url}/live/alerts/subscribe",
                {"players": surnames, "min_edge": 0.0, "webhook_url": receiver.url},
            )
            assert status == 401 and alert["error"] == "unauthorized", alert  # a webhook calls out: token needed
            status, alert, _ = request(
                "POST",
                f"{api.url}/live/alerts/subscribe",
                {"players": surnames, "min_edge": 0.0, "webhook_url": receiver.url},
                headers={"Authorization": "Bearer not-the-token"},
            )
            assert status == 403, alert
            status, alert, _ = request(
                "POST",
                f"{api.url}/live/alerts/subscribe",
                {"players": surnames, "min_edge": 0.0, "webhook_url": receiver.url},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert status == 201, alert
            assert alert["webhook_url"] == receiver.url and len(alert["secret"]) == 64
            # reading or deleting it is the operator's too
            assert get(f"{api.url}/live/alerts/{alert['alert_id']}")[0] == 401
            assert request("DELETE", f"{api.url}/live/alerts/{alert['alert_id']}")[0] == 401
            assert alert["criteria"]["players"] == [m["players"][0] for m in active[:2]]  # in the order asked
            alert_id, secret = alert["alert_id"], alert["secret"]
            status, state, _ = get(f"{api.url}/live/alerts/{alert_id}", OPERATOR)
            assert status == 200 and state["deliveries"] == [] and "secret" not in state
            start = state["last_event_id"]
            assert start == store.last_event_id(db)
            players = {normalize_name(p) for p in alert["criteria"]["players"]}

            def players_of(match_id: str) -> list[str]:
                return get(f"{api.url}/live/games/{match_id}/state")[1]["match"]["players"]

            feed.next(300)
            before_stop = _expected(db, start, players, players_of)
            assert before_stop, "no value bet of those players in this stretch of the matches"
            assert _wait_for(lambda: {a["event_id"] for a in receiver.accepted()} >= before_stop)
            down_from = store.last_event_id(db)
        # the API is down while the engine goes on
        feed.next(300)
        with api_server(db_url, tmp_path, "--poll-s", "0.05") as api:
            status, state, _ = get(f"{api.url}/live/alerts/{alert_id}", OPERATOR)
            assert status == 200 and state["criteria"] == alert["criteria"]
            assert state["webhook_url"] == receiver.url and "secret" not in state
            expected = _expected(db, start, players, players_of)
            assert expected - before_stop, "no value bet of those players while the API was down"
            assert min(expected - before_stop) > down_from
            assert _wait_for(lambda: {a["event_id"] for a in receiver.accepted()} >= expected)
            time.sleep(1.0)  # nothing more comes
            status, state, _ = get(f"{api.url}/live/alerts/{alert_id}", OPERATOR)
            assert status == 200
        accepted = receiver.accepted()
        # each alert once, across the restart; what the API logged is what was received
        assert sorted(a["event_id"] for a in accepted) == sorted(expected)
        assert all(a["alert_id"] == alert_id and a["value_bet"]["id"] == a["event_id"] for a in accepted)
        assert all(
            normalize_name(a["value_bet"]["players"][0]) in players
            or normalize_name(a["value_bet"]["players"][1]) in players
            for a in accepted
        )
        assert all(datetime.fromisoformat(a["sent_at"]).tzinfo is not None for a in accepted)
        # every request is signed with the secret over its exact body, and says which delivery it is
        for post in receiver.posts:
            headers = {k.lower(): v for k, v in post["headers"].items()}
            digest = hmac.new(secret.encode(), post["body"], hashlib.sha256).hexdigest()
            assert headers["x-courtside-signature"] == f"sha256={digest}"
            assert headers["x-courtside-alert"] == alert_id and headers["x-courtside-delivery"].isdigit()
            assert headers["content-type"] == "application/json"
        # the first two requests failed (500) and were retried: the log counts every attempt
        log = alert_store.delivery_log(db, alert_id, limit=10**6)
        assert {d["event_id"] for d in log} == expected and {d["status"] for d in log} == {"delivered"}
        assert sum(d["attempts"] for d in log) == len(receiver.posts) == len(expected) + 2
        retried = [d for d in log if d["attempts"] > 1]
        assert retried and all(d["last_status_code"] == 200 and d["delivered_at"] for d in retried)
        first = [json.loads(p["body"])["event_id"] for p in receiver.posts[:2]]
        assert all(d["attempts"] >= 2 for d in log if d["event_id"] in first)
        # the API's log, newest first, the same
        assert [d["event_id"] for d in state["deliveries"]] == sorted(expected, reverse=True)[:100]
        assert all(d["status"] == "delivered" and d["value_bet"]["id"] == d["event_id"] for d in state["deliveries"])
    finally:
        receiver.close()
        db.dispose()


def test_subscriptions_name_known_matches_and_players_and_http_webhooks(db_url, tmp_path):
    with api_server(db_url, tmp_path) as api:
        url = f"{api.url}/live/alerts/subscribe"
        matches = get(f"{api.url}/live/games/active")[1]["matches"]
        match_id, player = matches[0]["match_id"], matches[0]["players"][0]  # e.g. Novak Djokovic
        surname = player.split()[-1]

        status, err, _ = request("POST", url, {"match_ids": [match_id, match_id + "9", "no-such-match"]})
        assert status == 422 and err["error"] == "validation_error", err
        assert [d["loc"] for d in err["detail"]] == [["body", "match_ids", 1], ["body", "match_ids", 2]]
        assert match_id in err["detail"][0]["suggestions"] and err["detail"][1]["type"] == "unknown_match"
        assert f"{match_id}9" in err["message"]

        status, err, _ = request("POST", url, {"players": [surname + "h", "Zzqxv Wwkj"]})
        assert status == 422 and err["error"] == "validation_error", err
        assert [d["loc"] for d in err["detail"]] == [["body", "players", 0], ["body", "players", 1]]
        assert player in err["detail"][0]["suggestions"] and player in err["message"]
        assert err["detail"][1]["suggestions"] == [] and err["detail"][1]["type"] == "unknown_player"

        for webhook in ("ftp://example.com/hook", "javascript:alert(1)", "http://", "http://exa mple.com/", "/hook"):
            status, err, _ = request("POST", url, {"webhook_url": webhook})
            assert status == 422 and err["error"] == "validation_error", (webhook, err)
            assert err["detail"][0]["loc"][-1] == "webhook_url", err

        # a surname, in any case and without accents, is resolved to the full name; no webhook: no secret
        status, body, _ = request("POST", url, {"players": [surname.lower()], "match_ids": [match_id]})
        assert status == 201 and body["criteria"]["players"] == [player] and body["criteria"]["match_ids"] == [match_id]
        assert body["secret"] is None and body["webhook_url"] is None
        alert_id = body["alert_id"]
        status, state, _ = get(f"{api.url}/live/alerts/{alert_id}")
        assert status == 200 and state["room"] == f"alert:{alert_id}" and state["deliveries"] == []
        status, _, _ = request("DELETE", f"{api.url}/live/alerts/{alert_id}")
        assert status == 204
        for method in ("GET", "DELETE"):
            status, err, _ = request(method, f"{api.url}/live/alerts/{alert_id}")
            assert status == 404 and err["error"] == "not_found" and alert_id in err["message"], err
        status, err, _ = get(f"{api.url}/live/alerts/nonexistent")
        assert status == 404 and err["error"] == "not_found"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request, tmp_path):
    url = (
        f"sqlite:///{tmp_path / 'alerts.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_database_url")
    )
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def _subscribe(db, alert_id: str, webhook: str | None = "http://127.0.0.1:9/hook", ttl_s: float = 3600) -> None:
    now = datetime.now(UTC)
    alert_store.add_subscription(
        db,
        alert_id=alert_id,
        criteria={"match_ids": [], "players": ["Novak Djokovic"], "min_edge": 0.0},
        webhook_url=webhook,
        secret="s3cret" if webhook else None,
        last_event_id=0,
        created_by="127.0.0.1",
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_s),
    )


def test_the_delivery_queue_queues_once_retries_with_backoff_and_gives_up(db):
    _subscribe(db, "a1")
    _subscribe(db, "a2", webhook=None)
    bet = {"id": 7, "edge": 0.1, "ts": "2012-06-25T12:00:00Z"}
    alert_store.enqueue(db, [{"alert_id": "a1", "event_id": 7, "payload": bet}], {"a1": 7, "a2": 7})
    alert_store.enqueue(  # again (a restart re-reading the log), and a duplicate within one batch
        db,
        [{"alert_id": "a1", "event_id": 7, "payload": bet}] * 2 + [{"alert_id": "a1", "event_id": 9, "payload": bet}],
    )
    assert [(d["event_id"], d["status"]) for d in alert_store.delivery_log(db, "a1")] == [
        (9, "pending"),
        (7, "pending"),
    ]
    assert {s["alert_id"]: s["last_event_id"] for s in alert_store.live_subscriptions(db)} == {"a1": 7, "a2": 7}
    due = alert_store.due_deliveries(db)
    assert [d["event_id"] for d in due] == [7, 9] and due[0]["secret"] == "s3cret" and due[0]["payload"] == bet
    # failures: 1 s, 2 s, 4 s ... then failed after max_attempts
    now = datetime.now(UTC)
    first = due[0]["id"]
    waits = []
    for _ in range(3):
        out = alert_store.mark_failed_attempt(db, first, error="HTTP 500", status_code=500, max_attempts=4, now=now)
        waits.append((out["next_attempt_at"] - now).total_seconds())
        assert out["status"] == "pending"
    assert waits == [1.0, 2.0, 4.0]
    # in log order: 9 waits behind 7's retry, and holds up no other subscription
    _subscribe(db, "a3")
    alert_store.enqueue(db, [{"alert_id": "a3", "event_id": 11, "payload": bet}])
    soon = now + timedelta(seconds=1)  # a1's next try is at now + 4 s
    assert [(d["alert_id"], d["event_id"]) for d in alert_store.due_deliveries(db, now=soon)] == [("a3", 11)]
    alert_store.mark_delivered(db, alert_store.due_deliveries(db, now=soon)[0]["id"], 200)
    assert alert_store.due_deliveries(db, now=soon) == []
    assert [d["event_id"] for d in alert_store.due_deliveries(db, now=now + timedelta(seconds=5))] == [7, 9]
    out = alert_store.mark_failed_attempt(db, first, error="timeout", max_attempts=4, now=now)
    assert out == {"status": "failed", "attempts": 4, "next_attempt_at": None}
    assert [d["event_id"] for d in alert_store.due_deliveries(db, now=now)] == [9]  # 7 gave up: 9 goes
    alert_store.mark_delivered(db, due[1]["id"], 204)
    log = {d["event_id"]: d for d in alert_store.delivery_log(db, "a1")}
    assert (log[7]["status"], log[7]["attempts"], log[7]["last_error"]) == ("failed", 4, "timeout")
    assert (log[9]["status"], log[9]["attempts"], log[9]["last_status_code"]) == ("delivered", 1, 204)
    assert alert_store.due_deliveries(db, now=now + timedelta(hours=1)) == []
    assert alert_store.backoff_s(20) == 60.0
    # a new session (reset_live): deliveries of the old log gone, cursors back to 0, subscriptions kept
    store.reset_live(db)
    assert alert_store.delivery_log(db, "a1") == []
    cursors = {s["alert_id"]: s["last_event_id"] for s in alert_store.live_subscriptions(db)}
    assert cursors == {"a1": 0, "a2": 0, "a3": 0}
    # deleting, expiring
    assert alert_store.delete_subscription(db, "a2") and not alert_store.delete_subscription(db, "a2")
    _subscribe(db, "old", ttl_s=-1)
    alert_store.enqueue(db, [{"alert_id": "old", "event_id": 1, "payload": bet}])
    assert alert_store.subscription(db, "old") is None and alert_store.due_deliveries(db) == []
    assert alert_store.purge_expired(db) == 1 and alert_store.delivery_log(db, "old") == []
    assert [s["alert_id"] for s in alert_store.live_subscriptions(db)] == ["a1", "a3"]
