"""The REST API against a running ``python -m serving.api`` over a real event log (three real matches
traded by the real engine, one of them settled): answers agree with the log and the ledger, bad
requests get clear JSON errors, every endpoint is in the OpenAPI document."""

from __future__ import annotations

import shutil
import time

import pytest

from betting.policy import TradingPolicy
from betting.records import EventKind
from serving import control
from storage import live as store
from storage.db import make_engine
from tests.api.conftest import match_ids
from tests.api.services import api_server, get, request


@pytest.fixture(scope="module")
def db_url(session_log, tmp_path_factory):
    path = tmp_path_factory.mktemp("rest") / "live.db"
    shutil.copyfile(session_log, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def api(db_url, tmp_path_factory):
    with api_server(db_url, tmp_path_factory.mktemp("rest-api")) as server:
        yield server


@pytest.fixture(scope="module")
def db(db_url):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def _log(db, kind: str, match_id: str | None = None):
    return [
        (i, p)
        for i, _, _, _, m, p in store.events_after(db, 0, kinds=[kind], limit=10**7)
        if match_id is None or m == match_id
    ]


def _assert_error(status, body, code, error, *fields):
    assert status == code, body
    assert body["error"] == error and isinstance(body["message"], str) and body["message"]
    for field in fields:
        assert any(d["loc"][-1] == field for d in body["detail"]), body


def test_health_says_how_far_the_log_is_read(api, db):
    status, body, _ = get(f"{api.url}/health")
    assert status == 200 and body["status"] == "ok" and body["database"] == "ok"
    assert body["last_event_id"] == body["read_up_to"] == store.last_event_id(db) > 0
    started, finished = match_ids(db)
    assert len(finished) == 1 and len(started - finished) >= 2
    assert body["matches"] == len(started) and body["in_play"] == len(started - finished)
    assert body["engines"] and body["engines"][0]["engine"] == "paper"  # the engine's heartbeat


def test_active_games_and_their_filters(api, db):
    started, finished = match_ids(db)
    n = len(started - finished)
    status, body, _ = get(f"{api.url}/live/games/active")
    assert status == 200 and body["count"] == n and {m["match_id"] for m in body["matches"]} == started - finished
    assert all(m["status"] == "in_play" and m["score"] and m["players"][0] for m in body["matches"])
    for query, count in (
        ("surface=grass", n),
        ("surface=GRASS", n),
        ("surface=Clay", 0),
        ("tournament=wimbledon", n),
        ("tournament=Roland%20Garros", 0),
        ("tournament=Wimbledon&surface=Hard", 0),
    ):
        assert get(f"{api.url}/live/games/active?{query}")[1]["count"] == count, query
    _assert_error(*get(f"{api.url}/live/games/active?surface=ice")[:2], 422, "validation_error", "surface")


def test_state_of_a_match_is_the_log_s_latest(api, db):
    active = get(f"{api.url}/live/games/active")[1]["matches"]
    for m in active:
        status, state, _ = get(f"{api.url}/live/games/{m['match_id']}/state")
        assert status == 200
        points = [p for _, p in _log(db, str(EventKind.FEED_MESSAGE), m["match_id"]) if p["kind"] == "point"]
        assert state["match"]["score_text"] == points[-1]["score"]
        assert state["match"]["sets"] == points[-1]["sets"] and state["match"]["game"] == points[-1]["game"]
        last = _log(db, str(EventKind.PREDICTION), m["match_id"])[-1][1]
        assert state["last_prediction"]["probability"] == pytest.approx(last["probability"])
        assert state["match"]["probability"] == pytest.approx(last["probability"])
        assert any(o["in_play"] for o in state["odds"].values())
    finished = _log(db, str(EventKind.MATCH_FINISHED))
    assert len(finished) == 1
    match_id = finished[0][1]["event_key"]
    state = get(f"{api.url}/live/games/{match_id}/state")[1]["match"]
    assert state["status"] == "finished" and state["winner"] == finished[0][1]["winner"]
    assert state["score"]["winner"] in (1, 2) and state["final_score"] == finished[0][1]["score"]
    status, body, _ = get(f"{api.url}/live/games/no-such-match/state")
    _assert_error(status, body, 404, "not_found")
    assert "no-such-match" in body["message"]


def test_predictions_of_a_match(api, db):
    match_id = get(f"{api.url}/live/games/active")[1]["matches"][0]["match_id"]
    logged = [p["probability"] for _, p in _log(db, str(EventKind.PREDICTION), match_id)]
    status, body, _ = get(f"{api.url}/live/games/{match_id}/predictions?limit=5000")
    assert status == 200 and body["count"] == len(logged) > 10
    assert [p["probability"] for p in body["predictions"]] == pytest.approx(logged)
    assert sum(p["market_probability"] is not None for p in body["predictions"]) > len(logged) / 2
    tail = get(f"{api.url}/live/games/{match_id}/predictions?limit=3")[1]
    assert [p["probability"] for p in tail["predictions"]] == pytest.approx(logged[-3:])
    _assert_error(*get(f"{api.url}/live/games/{match_id}/predictions?limit=0")[:2], 422, "validation_error", "limit")
    _assert_error(*get(f"{api.url}/live/games/nope/predictions")[:2], 404, "not_found")


def test_value_bets_with_a_minimum_edge(api, db):
    by_match = {}
    for _, p in _log(db, str(EventKind.OPPORTUNITY)):
        by_match.setdefault(p["match_id"], []).append(p["edge"])
    match_id = max(by_match, key=lambda m: len(by_match[m]))
    for min_edge in (0.0, 0.1, 0.2):
        status, body, _ = get(f"{api.url}/live/value-bets/{match_id}?min_edge={min_edge}&limit=2000")
        assert status == 200
        assert body["count"] == sum(e >= min_edge for e in by_match[match_id])
        assert all(b["edge"] >= min_edge and b["match_id"] == match_id for b in body["value_bets"])
        assert [b["id"] for b in body["value_bets"]] == sorted((b["id"] for b in body["value_bets"]), reverse=True)
    _assert_error(*get(f"{api.url}/live/value-bets/{match_id}?min_edge=-1")[:2], 422, "validation_error", "min_edge")
    _assert_error(*get(f"{api.url}/live/value-bets/{match_id}?min_edge=lots")[:2], 422, "validation_error", "min_edge")
    _assert_error(*get(f"{api.url}/live/value-bets/nope")[:2], 404, "not_found")
    recent = get(f"{api.url}/live/value-bets?limit=5")[1]
    assert len(recent) == 5 and recent[0]["id"] == max(i for i, _ in _log(db, str(EventKind.OPPORTUNITY)))


def test_bets_pages_and_filters(api, db):
    orders = {o["customer_order_ref"]: o for o in store.orders(db)}
    assert len(orders) > 10
    seen = []
    for offset in range(0, len(orders) + 5, 5):
        status, page, _ = get(f"{api.url}/bets?limit=5&offset={offset}")
        assert status == 200 and page["total"] == len(orders)
        seen += [b["customer_order_ref"] for b in page["bets"]]
    assert sorted(seen) == sorted(orders)  # every order once, across pages
    settled = get(f"{api.url}/bets?state=settled&limit=500")[1]
    results = {b["customer_order_ref"]: b for s in store.settlements(db) for b in s["bets"]}
    with db.connect() as conn:
        n_settled = conn.exec_driver_sql("select count(*) from orders where settled and size_matched > 0").scalar()
    assert settled["total"] == n_settled > 0
    for b in settled["bets"]:
        assert b["settled"] and b["customer_order_ref"] in results
        assert b["result"] == results[b["customer_order_ref"]]["result"]
        assert b["profit"] == pytest.approx(results[b["customer_order_ref"]]["profit"])
    open_ = get(f"{api.url}/bets?state=open&limit=500")[1]
    assert open_["total"] + settled["total"] <= len(orders)
    assert all(
        not b["settled"] and (b["size_matched"] > 0 or b["status"] in ("PENDING", "EXECUTABLE")) for b in open_["bets"]
    )
    match_id = next(iter(orders.values()))["market_id"].split("-", 1)[1]
    for query, check in (
        ("side=BACK", lambda b: b["side"] == "BACK"),
        ("source=inplay", lambda b: b["source"] == "inplay"),
        (f"match_id={match_id}", lambda b: b["match_id"] == match_id),
    ):
        page = get(f"{api.url}/bets?limit=500&{query}")[1]
        assert page["bets"] and all(check(b) for b in page["bets"]), query
    for query, field in (
        ("state=maybe", "state"),
        ("limit=1000", "limit"),
        ("offset=-1", "offset"),
        ("side=UP", "side"),
    ):
        _assert_error(*get(f"{api.url}/bets?{query}")[:2], 422, "validation_error", field)


def test_metrics_are_the_session_s_trading_figures(api, db):
    status, body, _ = get(f"{api.url}/metrics")
    assert status == 200
    summary = control.live_pnl(db, TradingPolicy()).summary
    t = body["trading"]
    for key in ("staked", "net_profit", "roi", "bankroll", "max_drawdown", "bets_settled", "markets_settled"):
        assert t[key] == summary[key], key
    results = [b["result"] for s in store.settlements(db) for b in s["bets"]]
    won, lost = results.count("WON"), results.count("LOST")
    assert t["hit_rate"] == pytest.approx(won / (won + lost), abs=1e-4) and t["orders"] == len(store.orders(db))
    assert sum(t["rejected_by_reason"].values()) == len(_log(db, str(EventKind.ORDER_REJECTED)))
    decision = body["latency"]["engine_decision_ms"]["paper"]
    assert decision["n"] > 0 and 0 < decision["p50_ms"] <= decision["p99_ms"] <= decision["max_ms"]
    assert body["latency"]["api_request_ms"]["n"] > 0


def test_prometheus_metrics_and_readiness_of_the_replica(api, db):
    """What Prometheus scrapes (deploy/prometheus/prometheus.yml: /metrics/prometheus) and what a load balancer
    asks (/readyz): the text format, the replica's figures, and ready once the log is read."""
    import urllib.request

    with urllib.request.urlopen(f"{api.url}/metrics/prometheus", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    for name in ("subscribers", "messages_total", "log_read_up_to", "log_lag_entries", "tail_errors_total"):
        assert f"courtside_api_{name}{{" in text, name
    read = next(line for line in text.splitlines() if line.startswith("courtside_api_log_read_up_to{"))
    assert float(read.rsplit(" ", 1)[1]) == store.last_event_id(db)  # the test's log is read to its end
    status, body, _ = get(f"{api.url}/readyz")
    assert status == 200 and body["ready"] and body["read_up_to"] == body["newest"] == store.last_event_id(db)


def test_value_alert_subscriptions(api):
    status, body, _ = request(
        "POST", f"{api.url}/live/alerts/subscribe", {"players": ["Djokovic"], "match_ids": [], "min_edge": 0.05}
    )
    assert status == 201 and body["room"] == f"alert:{body['alert_id']}"
    assert body["ws_url"].startswith("ws://127.0.0.1:") and body["criteria"]["min_edge"] == 0.05
    for bad, field in (
        ({"min_edge": -0.1}, "min_edge"),
        ({"players": [""]}, "players"),
        ({"colour": "red"}, "colour"),
        ({"match_ids": "x"}, "match_ids"),
    ):
        _assert_error(*request("POST", f"{api.url}/live/alerts/subscribe", bad)[:2], 422, "validation_error", field)


def test_openapi_documents_the_endpoints_and_the_websocket_protocol(api):
    status, spec, _ = get(f"{api.url}/openapi.json")
    assert status == 200
    for path in (
        "/health",
        "/live/games/active",
        "/live/games/{match_id}/state",
        "/live/games/{match_id}/predictions",
        "/live/value-bets/{match_id}",
        "/bets",
        "/metrics",
        "/live/alerts/subscribe",
        "/control",
        "/control/pause",
        "/control/resume",
        "/control/kill-switch",
        "/control/risk-limits",
    ):
        assert path in spec["paths"], path
    assert "subscribe" in spec["info"]["description"] and "odds_update" in spec["info"]["description"]
    assert "ErrorBody" in spec["components"]["schemas"]
    assert spec["paths"]["/control/pause"]["post"]["security"]  # the bearer token is documented
    import urllib.request

    with urllib.request.urlopen(f"{api.url}/docs", timeout=10) as resp:
        assert resp.status == 200 and b"swagger" in resp.read().lower()


def test_unknown_paths_and_methods_are_json_errors(api):
    _assert_error(*get(f"{api.url}/no/such/thing")[:2], 404, "not_found")
    _assert_error(*request("DELETE", f"{api.url}/bets")[:2], 405, "method_not_allowed")


def test_the_dashboard_is_served(api):
    import urllib.request

    with urllib.request.urlopen(f"{api.url}/", timeout=10) as resp:  # redirected
        page = resp.read().decode()
        assert resp.url.endswith("/dashboard/") and "dashboard.js" in page
    for asset in ("dashboard.js", "dashboard.css"):
        with urllib.request.urlopen(f"{api.url}/dashboard/{asset}", timeout=10) as resp:
            assert resp.status == 200 and len(resp.read()) > 500
    status, config, _ = get(f"{api.url}/live/config")
    assert status == 200 and config["ws_url"] == api.ws_url


def test_rate_limit_per_client_over_a_sliding_window(db_url, tmp_path):
    with api_server(db_url, tmp_path, "--rate-limit", "5/3") as api:
        time.sleep(3.1)  # the start-up probe leaves the window
        codes = [get(f"{api.url}/live/games/active")[0] for _ in range(5)]
        status, body, headers = get(f"{api.url}/live/games/active")
        assert codes == [200] * 5
        _assert_error(status, body, 429, "rate_limited")
        retry = int(headers["retry-after"])
        assert 1 <= retry <= 3 and "5 requests in 3 s" in body["message"]
        time.sleep(retry + 0.2)
        assert get(f"{api.url}/live/games/active")[0] == 200
