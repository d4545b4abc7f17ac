"""Operator controls end to end: a running API takes pause / kill switch / risk limits behind the bearer
token and records them; the real engine (restarted on the same event log, as after a crash) honours
them — a kill switch survives restarts of the engine and of the API; the token never reaches a log."""

from __future__ import annotations

import asyncio

import pytest

from betting.records import EventKind
from storage import live as store
from storage.db import make_engine
from tests.api.conftest import trade
from tests.api.services import TOKEN, api_server, get, request

AUTH = {"Authorization": f"Bearer {TOKEN}"}
WRONG = "wrong-token-0123456789-abcdef"


def _since(db, after: int, kind: str) -> list[dict]:
    return [p for *_, p in store.events_after(db, after, kinds=[kind], limit=10**7)]


def test_operator_endpoints_need_the_token_and_it_is_never_logged(log_copy, tmp_path):
    with api_server(log_copy, tmp_path) as api:
        for method, path, body in (
            ("GET", "/control", None),
            ("POST", "/control/pause", None),
            ("POST", "/control/resume", {}),
            ("POST", "/control/kill-switch", {"engaged": True}),
            ("PUT", "/control/risk-limits", {"max_stake": 10}),
        ):
            status, err, headers = request(method, api.url + path, body)
            assert status == 401 and err["error"] == "unauthorized" and headers.get("www-authenticate") == "Bearer"
            status, err, _ = request(method, api.url + path, body, {"Authorization": f"Bearer {WRONG}"})
            assert status == 403 and err["error"] == "forbidden", path
            status, err, _ = request(method, api.url + path, body, {"Authorization": f"Basic {TOKEN}"})
            assert status == 401, path  # only the bearer scheme
        status, state, _ = request("POST", f"{api.url}/control/pause", {"reason": "checking"}, AUTH)
        assert status == 200 and state["controls"]["paused"] and state["controls"]["version"] == 1
        assert state["controls"]["changed_by"] == "127.0.0.1" and state["controls"]["reason"] == "checking"
        # a token in the query string is no token (and must not be logged either)
        assert get(f"{api.url}/control?token={TOKEN}")[0] == 401
        output = api.output()
    assert "POST /control/pause" in output and "GET /control" in output  # the requests were logged ...
    assert TOKEN not in output and WRONG not in output  # ... without the token, right or wrong
    db = make_engine(log_copy)
    with db.connect() as conn:
        stored = " ".join(str(v) for row in conn.exec_driver_sql("select * from operator_controls") for v in row)
    db.dispose()
    assert TOKEN not in stored and "127.0.0.1" in stored


def test_operator_endpoints_are_off_without_a_token(log_copy, tmp_path):
    with api_server(log_copy, tmp_path, token=None) as api:
        status, body, _ = request("POST", f"{api.url}/control/pause", None, AUTH)
        assert status == 503 and "COURTSIDE_API_TOKEN" in body["message"]


def test_pause_stops_new_orders_and_resume_restarts_them(log_copy, tmp_path, prediction_service, envelopes, split):
    db = make_engine(log_copy)
    with api_server(log_copy, tmp_path) as api:
        before = store.last_event_id(db)
        state = request("POST", f"{api.url}/control/pause", {"reason": "test"}, AUTH)[1]
        version = state["controls"]["version"]
        assert state["engines"][0]["in_force"] is False  # the engine has not taken it yet
        asyncio.run(trade(log_copy, prediction_service, envelopes[: split + 400]))  # restart, go on trading
        assert not _since(db, before, str(EventKind.ORDER_PLACED))
        paused = [p for p in _since(db, before, str(EventKind.ORDER_REJECTED)) if p["reason"] == "BETTING_PAUSED"]
        assert paused and all(p["message"] == "betting paused by the operator" for p in paused)
        assert _since(db, before, str(EventKind.OPPORTUNITY))  # value is still detected and shown
        state = request("GET", f"{api.url}/control", None, AUTH)[1]
        assert state["engines"][0]["controls_version"] == version and state["engines"][0]["in_force"]
        assert state["engines"][0]["status"]["paused"] is True

        before = store.last_event_id(db)
        request("POST", f"{api.url}/control/resume", None, AUTH)
        asyncio.run(trade(log_copy, prediction_service, envelopes[: split + 1200]))
        assert not [p for p in _since(db, before, str(EventKind.ORDER_REJECTED)) if p["reason"] == "BETTING_PAUSED"]
        assert _since(db, before, str(EventKind.ORDER_PLACED))  # trading again
    db.dispose()


def test_kill_switch_survives_engine_and_api_restarts(log_copy, tmp_path, prediction_service, envelopes, split):
    db = make_engine(log_copy)
    with api_server(log_copy, tmp_path) as api:
        state = request("POST", f"{api.url}/control/kill-switch", {"engaged": True, "reason": "drill"}, AUTH)[1]
        assert state["controls"]["kill_switch"] and state["effective_risk_limits"]["kill_switch"]
    before = store.last_event_id(db)
    for upto in (split + 300, split + 700):  # two engine restarts, each with the switch already pulled
        engine = asyncio.run(trade(log_copy, prediction_service, envelopes[:upto]))
        assert engine.limits.kill_switch and engine.stats.orders == 0
    assert not _since(db, before, str(EventKind.ORDER_PLACED))
    rejected = _since(db, before, str(EventKind.ORDER_REJECTED))
    assert rejected and {p["reason"] for p in rejected} == {"KILL_SWITCH"}
    assert not store.orders(db, unsettled_only=True) or all(
        o["status"] != "EXECUTABLE" for o in store.orders(db, unsettled_only=True)
    )  # nothing resting on the book
    with api_server(log_copy, tmp_path) as api:  # the API restarted: the switch is still pulled
        state = request("GET", f"{api.url}/control", None, AUTH)[1]
        assert state["controls"]["kill_switch"] and state["engines"][0]["status"]["kill_switch"]
        assert get(f"{api.url}/live/status")[1]["controls"]["kill_switch"] is True
        request("POST", f"{api.url}/control/kill-switch", {"engaged": False}, AUTH)
    before = store.last_event_id(db)
    engine = asyncio.run(trade(log_copy, prediction_service, envelopes[: split + 1300]))
    assert not engine.limits.kill_switch
    assert not [p for p in _since(db, before, str(EventKind.ORDER_REJECTED)) if p["reason"] == "KILL_SWITCH"]
    db.dispose()


def test_risk_limit_overrides_are_validated_and_applied(log_copy, tmp_path, prediction_service, envelopes, split):
    db = make_engine(log_copy)
    with api_server(log_copy, tmp_path) as api:
        url = f"{api.url}/control/risk-limits"
        for bad, field in (
            ({"max_stake": -5}, "body"),
            ({"min_price": 12}, "body"),
            ({"kill_switch": True}, "kill_switch"),
            ({"max_open_orders": "many"}, "max_open_orders"),
        ):
            status, body, _ = request("PUT", url, bad, AUTH)
            assert status == 422 and body["error"] == "validation_error", bad
            assert any(d["loc"][-1] == field for d in body["detail"]), body
        status, state, _ = request("PUT", url, {"max_stake": 5.0, "min_edge": 0.03, "reason": "smaller"}, AUTH)
        assert status == 200 and state["controls"]["risk_limits"] == {"max_stake": 5.0, "min_edge": 0.03}
        effective = state["effective_risk_limits"]
        assert effective["max_stake"] == 5.0 and effective["max_price"] == 10.0
        before = store.last_event_id(db)
        engine = asyncio.run(trade(log_copy, prediction_service, envelopes[: split + 800]))
        assert engine.limits.max_stake == 5.0 and engine.limits.min_edge == 0.03
        placed = [p["order"] for p in _since(db, before, str(EventKind.ORDER_PLACED))]
        assert placed and all(o["size"] <= 5.0 for o in placed)
        status, state, _ = request("PUT", url, {"max_stake": None}, AUTH)  # null removes the override
        assert state["controls"]["risk_limits"] == {"min_edge": 0.03}
        history = state["history"]
        assert [h["version"] for h in history] == sorted((h["version"] for h in history), reverse=True)
        assert history[1]["reason"] == "smaller" and history[0]["changed_by"] == "127.0.0.1"
    db.dispose()


@pytest.mark.parametrize("bad", ['{"max_stake": -1}', '{"nonsense": 1}'])
def test_limits_the_engine_cannot_apply_pause_it(log_copy, prediction_service, envelopes, split, bad):
    """Fail safe: an override written to the table by hand that RiskLimits refuses pauses betting."""
    db = make_engine(log_copy)
    with db.begin() as conn:
        conn.exec_driver_sql(
            "insert into operator_controls (version, paused, kill_switch, risk_limits, reason, "
            "changed_by, changed_at) values (1, 0, 0, ?, 'by hand', 'psql', CURRENT_TIMESTAMP)",
            (bad,),
        )
    before = store.last_event_id(db)
    engine = asyncio.run(trade(log_copy, prediction_service, envelopes[: split + 300]))
    assert engine.paused and "not applied" in engine.controls_error
    assert not _since(db, before, str(EventKind.ORDER_PLACED))
    db.dispose()


def test_the_identity_review_list_and_the_operator_answer(log_copy, tmp_path):
    from storage import identity as identities

    db = make_engine(log_copy)
    identities.record_player(db, "api-tennis", "21", "A. Zverev", None, "unmatched: 2 players of that name active then")
    with api_server(log_copy, tmp_path) as api:
        status, review, _ = request("GET", f"{api.url}/live/identity/review", None)
        assert status == 200 and [r["name"] for r in review] == ["A. Zverev"]
        answer = {"venue": "api-tennis", "venue_key": "21", "player_id": 100644}
        assert request("POST", f"{api.url}/control/identity", answer)[0] == 401
        status, row, _ = request("POST", f"{api.url}/control/identity", answer, AUTH)
        assert status == 200 and row["status"] == "operator" and row["player_id"] == 100644
        assert request("GET", f"{api.url}/live/identity/review", None)[1] == []
        status, err, _ = request("POST", f"{api.url}/control/identity", {**answer, "venue_key": "99"}, AUTH)
        assert status == 404 and "never seen" in err["message"]
    db.dispose()
