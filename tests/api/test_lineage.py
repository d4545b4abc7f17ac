"""A bet's lineage (``GET /bets/{ref}``) and the book's exposure (``GET /live/exposure``) against the event log
and the ledger the real engine wrote over real Wimbledon 2012 matches: placed and settled bets, bets the risk
limits rejected (the operator tightened the total exposure limit mid-session, so TOTAL_EXPOSURE rejections are
certain), and opportunities that were not staked. Each answer is checked entry by entry against the log."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from betting.exposure import market_outcomes, order_outcome_pnl
from betting.money import round_money
from betting.records import EventKind, Order
from betting.risk import RiskLimits
from features.live_match import FIRST, SECOND
from storage import live as store
from storage.db import make_engine
from tests.api.conftest import trade
from tests.api.services import api_server, get


@pytest.fixture(scope="module")
def traded(session_log, tmp_path_factory, prediction_service, envelopes, split):
    """The session log, then the rest of the feed traded with the total exposure limit cut to 40."""
    import shutil

    path = tmp_path_factory.mktemp("lineage") / "live.db"
    shutil.copyfile(session_log, path)
    url = f"sqlite:///{path}"
    db = make_engine(url)
    store.change_controls(db, "test", risk_limits={"max_total_exposure": 40.0}, reason="lineage test")
    asyncio.run(trade(url, prediction_service, envelopes[: split + 1500]))
    yield url, db
    db.dispose()


@pytest.fixture(scope="module")
def api(traded, tmp_path_factory):
    with api_server(traded[0], tmp_path_factory.mktemp("lineage-api")) as server:
        yield server


def _entries(db, *kinds: EventKind):
    return store.events_after(db, 0, kinds=[str(k) for k in kinds], limit=10**7)


def _ref(payload: dict) -> str | None:
    return payload.get("ref") or (payload.get("order") or payload.get("request") or {}).get("customer_order_ref")


def _check_trigger_and_prediction(db, body: dict, opportunity_id: int) -> None:
    """The trigger is the logged feed message with the opportunity's feed and sequence; the prediction is the
    match's newest PREDICTION entry before the opportunity, with the model and version the opportunity names."""
    rows = store.event_rows(db, 0, opportunity_id)
    opp = rows[-1]
    assert opp["kind"] == "OPPORTUNITY"
    trigger = body["trigger"]
    assert (trigger["feed"], trigger["seq"]) == (opp["feed"], opp["seq"]) and trigger["seq"] is not None
    message = next(r for r in reversed(rows) if r["id"] == trigger["event_id"])
    assert (message["feed"], message["seq"]) == (opp["feed"], opp["seq"])
    assert message["kind"] in ("FEED_MESSAGE", "MARKET_UPDATE")
    prediction = next(r for r in reversed(rows) if r["kind"] == "PREDICTION" and r["match_id"] == opp["match_id"])
    assert body["prediction"]["event_id"] == prediction["id"]
    assert body["prediction"]["model"] == prediction["payload"]["model"] == opp["payload"]["model"]
    assert body["prediction"]["version"] == prediction["payload"]["version"] and body["prediction"]["version"]
    p_first = prediction["payload"]["probability"]
    p = p_first if body["selection"] == FIRST else 1 - p_first
    assert body["prediction"]["probability"] == pytest.approx(p)
    assert 0 < body["prediction"]["market_probability"] < 1
    rule = body["decision"]["stake_rule"]
    assert rule["rule"] == "fractional Kelly" and rule["size"] == body["decision"]["size"]


def test_placed_and_settled_bets_explain_themselves(api, traded):
    _, db = traded
    settled = {b["customer_order_ref"]: (s, b) for s in store.settlements(db) for b in s["bets"]}
    opportunities = {_ref(p): i for i, _, _, _, _, p in _entries(db, EventKind.OPPORTUNITY) if _ref(p)}
    placed = [(i, p) for i, _, _, _, _, p in _entries(db, EventKind.ORDER_PLACED)]
    assert placed and settled
    seen_settled = 0
    for entry_id, payload in placed[:25] + [(i, p) for i, p in placed if _ref(p) in settled][:5]:
        ref = _ref(payload)
        status, body, _ = get(f"{api.url}/bets/{ref}")
        assert status == 200, body
        assert body["ref"] == ref and body["side"] == payload["order"]["side"]
        assert body["selection_name"] not in (FIRST, SECOND) and body["selection_name"] in body["players"]
        # every entry the log holds about this order, in order
        assert [t["event_id"] for t in body["timeline"]] == [
            i for i, _, _, _, _, p in _entries(db, *LINEAGE) if _ref(p) == ref
        ]
        assert any(t["event_id"] == entry_id and t["kind"] == "ORDER_PLACED" for t in body["timeline"])
        # every risk check the engine measured before placing it, all passed
        checks = payload["risk_checks"]
        assert checks and body["risk_checks"] == checks and all(c["passed"] for c in checks)
        names = {c["check"] for c in checks}
        assert {"KILL_SWITCH", "STAKE_ABOVE_MAX", "SELECTION_EXPOSURE", "MARKET_EXPOSURE", "TOTAL_EXPOSURE"} <= names
        if "not raised" not in next(c for c in checks if c["check"] == "TOTAL_EXPOSURE")["detail"]:
            assert {"PRICE_OUT_OF_BOUNDS", "EDGE_BELOW_MIN", "DAILY_LOSS_LIMIT", "BANKROLL_FLOOR"} <= names
        total = next(c for c in checks if c["check"] == "TOTAL_EXPOSURE")
        assert total["limit"] in (RiskLimits().max_total_exposure, 40.0) and total["value"] <= total["limit"]
        if ref in opportunities:
            _check_trigger_and_prediction(db, body, opportunities[ref])
        if ref in settled:
            s, bet = settled[ref]
            assert body["fate"]["status"] == "settled" and body["fate"]["reason"] == bet["result"]
            assert body["settlement"]["profit"] == bet["profit"] and body["settlement"]["winner"] == s["winner"]
            seen_settled += 1
        else:
            assert body["fate"]["status"] in ("placed", "matched", "lapsed", "cancelled")
    assert seen_settled


LINEAGE = (
    EventKind.OPPORTUNITY,
    EventKind.ORDER_REJECTED,
    EventKind.ORDER_PLACED,
    EventKind.ORDER_FILLED,
    EventKind.ORDER_CANCELLED,
    EventKind.ORDER_LAPSED,
    EventKind.BET_SETTLED,
)


def test_rejected_bets_name_the_limit_and_every_check(api, traded):
    _, db = traded
    rejected = [(i, p) for i, _, _, _, _, p in _entries(db, EventKind.ORDER_REJECTED) if "request" in p]
    reasons = Counter(p["reason"] for _, p in rejected)
    assert reasons["TOTAL_EXPOSURE"], reasons
    opportunities = {_ref(p): i for i, _, _, _, _, p in _entries(db, EventKind.OPPORTUNITY) if _ref(p)}
    for _, payload in [x for x in rejected if x[1]["reason"] == "TOTAL_EXPOSURE"][:10]:
        ref = _ref(payload)
        status, body, _ = get(f"{api.url}/bets/{ref}")
        assert status == 200, body
        assert body["fate"] == {"status": "rejected", "reason": "TOTAL_EXPOSURE", "message": payload["message"]}
        assert body["order"] is None  # never left
        failed = [c for c in body["risk_checks"] if not c["passed"]]
        assert [c["check"] for c in failed][0] == "TOTAL_EXPOSURE"
        total = failed[0]
        assert total["limit"] == 40.0 and total["value"] > 40.0 and total["detail"] == payload["message"]
        _check_trigger_and_prediction(db, body, opportunities[ref])
    # the value list shows the same fate on the opportunity's row
    status, rows, _ = get(f"{api.url}/live/value-bets?limit=500")
    assert status == 200
    fated = {r["ref"]: r["fate"] for r in rows if r.get("ref")}
    shown = [p for _, p in rejected if _ref(p) in fated]
    assert shown, "no rejected order among the newest 500 value bets"
    for p in shown:
        assert fated[_ref(p)] == {"status": "rejected", "reason": p["reason"], "message": p["message"]}
    placed = {_ref(p) for *_, p in _entries(db, EventKind.ORDER_PLACED)}
    assert all(fated[r]["status"] == "placed" for r in placed if r in fated)


def test_unknown_references_are_a_json_404(api):
    status, body, _ = get(f"{api.url}/bets/0123456789abcdef0123456789abcdef")
    assert status == 404 and body["error"] == "not_found" and "0123456789abcdef" in body["message"]
    status, body, _ = get(f"{api.url}/bets/not%20a%20ref")
    assert status == 422 and body["error"] == "validation_error"


def test_exposure_per_match_is_what_the_ledger_implies(api, traded):
    _, db = traded
    status, body, _ = get(f"{api.url}/live/exposure")
    assert status == 200, body
    settled_markets = {s["market_id"] for s in store.settlements(db)}
    by_market: dict[str, list[Order]] = {}
    for _, _, o in store.order_rows(db):
        by_market.setdefault(o["market_id"], []).append(Order.from_dict(o))
    assert {m["market_id"] for m in body["matches"]} == set(by_market)
    total = 0.0
    for m in body["matches"]:
        orders = [o for o in by_market[m["market_id"]] if o.is_live or o.size_matched > 0]
        if m["market_id"] in settled_markets:
            assert m["settled"] and m["liability"] == 0.0 and m["realised_pnl"] is not None
            continue
        pnl = {
            w: round_money(sum(order_outcome_pnl(o, w) for o in orders))
            for w in market_outcomes(orders, [FIRST, SECOND])
        }
        assert m["liability"] == round_money(max(0.0, -min(pnl.values())))
        assert {p["selection"]: p["pnl"] for p in m["pnl_if"]} == pnl
        assert all(p["name"] not in (FIRST, SECOND) for p in m["pnl_if"])
        total += m["liability"]
    assert body["totals"]["exposure"] == round_money(total)
    limits = {row["name"]: row for row in body["limits"]}
    assert limits["max_total_exposure"]["limit"] == 40.0
    assert limits["max_total_exposure"]["room"] == round_money(max(0.0, 40.0 - total))
    rejected = Counter(p.get("reason") for *_, p in _entries(db, EventKind.ORDER_REJECTED) if "request" in p)
    assert {k: v for k, v in body["rejections"]["by_reason"].items() if k in rejected} == dict(rejected)
    assert sum(r["count"] for r in body["rejections"]["timeline"]) == sum(body["rejections"]["by_reason"].values())
