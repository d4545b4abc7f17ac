"""A bet's lineage and the book's exposure, for people: what ``GET /bets/{ref}`` and ``GET /live/exposure`` say.

The lineage of an order reference is read from the event log and the ledger (``storage.live.lineage_rows``):

    the feed message that triggered it (feed, channel, sequence)
    -> the prediction it was decided on (model, version, data version, P(selection), the market's margin-free P)
    -> the decision (side, price, edge, fair price, the stake and the rule that sized it)
    -> every risk check (value, limit, passed)
    -> its fate (placed, rejected with the reason, matched, lapsed, cancelled, settled with result and profit)

Nothing here decides anything: it lays out what the engine logged when it decided. Exposure is computed with
the same rules the risk checks use (``betting.exposure``), from the ledger's orders.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from betting.exposure import market_outcomes, order_outcome_pnl
from betting.money import round_money
from betting.records import Order
from features.live_match import FIRST, SECOND

EDGE_DEFINITION = (
    "expected profit after commission per unit at risk: the stake for a back, the liability for a lay "
    "(betting.value.edge)"
)


def selection_name(selection: str | None, players: list[str] | None) -> str | None:
    """The player a selection label names ("First Player" -> the match's first player), else the label."""
    if selection is None:
        return None
    if players and len(players) == 2 and all(players):
        if selection == FIRST:
            return players[0]
        if selection == SECOND:
            return players[1]
    return selection


def _summary(kind: str, payload: dict[str, Any]) -> str:
    order = payload.get("order") or {}
    if kind == "OPPORTUNITY":
        return str(payload.get("reason") or "")
    if kind == "ORDER_REJECTED":
        return f"rejected {payload.get('reason')}: {payload.get('message')}"
    if kind == "ORDER_PLACED":
        if order.get("status") == "REJECTED":
            return f"refused by the exchange: {order.get('error_code')}"
        return f"placed {order.get('side')} {order.get('size')} at {order.get('price')} ({order.get('status')})"
    if kind == "ORDER_FILLED":
        fill = payload.get("fill") or {}
        return f"matched {fill.get('size', order.get('size_matched'))} at {fill.get('price', order.get('price'))}"
    if kind == "ORDER_LAPSED":
        return f"lapsed {order.get('size_lapsed')} ({order.get('lapse_reason')})"
    if kind == "ORDER_CANCELLED":
        return f"cancelled {order.get('size_cancelled')}"
    if kind == "BET_SETTLED":
        return "settled"
    return kind


def _fate(
    opportunity: dict | None,
    rejected: dict | None,
    order: dict | None,
    request: dict | None,
    bet: dict | None,
) -> dict[str, Any]:
    if rejected is not None and order is None:  # an order in the ledger wins: a later decision placed it
        code = rejected.get("reason") or (rejected.get("order") or {}).get("error_code")
        return {"status": "rejected", "reason": code, "message": rejected.get("message") or f"refused: {code}"}
    if order is not None:
        if order.get("status") == "REJECTED":
            code = order.get("error_code")
            return {"status": "rejected", "reason": code, "message": f"refused by the exchange: {code}"}
        if bet is not None:
            return {
                "status": "settled",
                "reason": bet.get("result"),
                "message": f"{bet.get('result')}: profit {bet.get('profit')}",
            }
        matched = float(order.get("size_matched") or 0.0)
        if order.get("status") in ("PENDING", "EXECUTABLE"):
            status = "matched" if matched > 0 else "placed"
            return {"status": status, "reason": None, "message": f"{matched:g} of {order.get('size')} matched"}
        if matched > 0:
            return {"status": "matched", "reason": None, "message": f"{matched:g} of {order.get('size')} matched"}
        if float(order.get("size_lapsed") or 0.0) > 0:
            return {"status": "lapsed", "reason": order.get("lapse_reason"), "message": "lapsed unmatched"}
        return {"status": "cancelled", "reason": None, "message": "cancelled unmatched"}
    if request is not None:
        return {"status": f"request {request['status']}", "reason": request.get("reason"), "message": None}
    if opportunity is not None and not opportunity.get("ref"):
        return {"status": "not_staked", "reason": None, "message": "the Kelly stake was below the exchange minimum"}
    return {"status": "unknown", "reason": None, "message": None}


def bet_lineage(raw: dict[str, Any], ref: str, players: list[str] | None) -> dict[str, Any] | None:
    """The lineage of ``ref`` from ``storage.live.lineage_rows``; None when nothing is known of it."""
    entries, order, request = raw["entries"], raw["order"], raw["request"]
    if not entries and order is None and request is None:
        return None
    by_kind: dict[str, dict] = {}
    for e in entries:  # the latest of each kind (a reference re-decided after a restart has several)
        by_kind[e["kind"]] = e
    opp_entry = by_kind.get("OPPORTUNITY")
    opp = opp_entry["payload"] if opp_entry else None
    rejected = by_kind.get("ORDER_REJECTED", {}).get("payload")
    placed = by_kind.get("ORDER_PLACED", {}).get("payload")
    terms = opp or (rejected or {}).get("request") or order or (request or {}).get("payload") or {}
    settlement = raw["settlement"]
    bet = None
    if settlement:
        bet = next((b for b in settlement.get("bets", []) if b.get("customer_order_ref") == ref), None)
    first = opp_entry or (entries[0] if entries else None)
    trigger_payload = (first or {}).get("payload", {}).get("trigger") or {}
    message = raw["trigger"]
    prediction_entry = raw["prediction"]
    match_id = (first or {}).get("match_id") or (order or request or {}).get("match_id")
    selection = terms.get("selection")
    probability = (opp or {}).get("model_probability")
    checks = ((placed if order is not None else None) or rejected or placed or {}).get("risk_checks") or []
    return {
        "ref": ref,
        "match_id": match_id,
        "market_id": terms.get("market_id") or (order or {}).get("market_id"),
        "players": players,
        "selection": selection,
        "selection_name": selection_name(selection, players),
        "side": terms.get("side"),
        "source": (opp or {}).get("source") or (rejected or {}).get("source") or (order or {}).get("source"),
        "trigger": {
            "feed": trigger_payload.get("feed") or (first or {}).get("feed"),
            "channel": trigger_payload.get("channel"),
            "seq": trigger_payload.get("seq") or (first or {}).get("seq") or (message or {}).get("seq"),
            "event_id": message["id"] if message else None,
            "event_time": message["event_time"] if message else (first or {}).get("event_time"),
            "kind": message["kind"] if message else None,
            "message": (message or {}).get("payload"),
        },
        "prediction": {
            "model": (opp or {}).get("model"),
            "version": (opp or {}).get("version"),
            "data_version": (opp or {}).get("data_version"),
            "probability": probability,
            "market_probability": (opp or {}).get("market_probability"),
            "score": (opp or {}).get("score"),
            "points_played": (opp or {}).get("points_played"),
            "event_id": prediction_entry["id"] if prediction_entry else None,
            "event_time": prediction_entry["event_time"] if prediction_entry else None,
        },
        "decision": {
            "price": terms.get("price"),
            "edge": terms.get("edge"),
            "edge_definition": EDGE_DEFINITION,
            "fair_price": (opp or {}).get("fair_price"),
            "confidence": terms.get("confidence"),
            "size": (opp or {}).get("size", terms.get("size")),
            "stake_rule": (opp or {}).get("stake_rule"),
            "reason": (opp or {}).get("reason"),
            "within_limits": (opp or {}).get("within_limits"),
        },
        "risk_checks": checks,
        "fate": _fate(opp, rejected, order, request, bet),
        "order": order,
        "settlement": None
        if settlement is None
        else {
            "result": (bet or {}).get("result"),
            "profit": (bet or {}).get("profit"),
            "winner": settlement.get("winner"),
            "winner_name": selection_name(settlement.get("winner"), players),
            "void": settlement.get("void"),
            "settled_at": (settlement.get("pnl") or {}).get("settled_at"),
        },
        "timeline": [
            {
                "event_id": e["id"],
                "kind": e["kind"],
                "event_time": e["event_time"],
                "recorded_at": e["recorded_at"],
                "feed": e["feed"],
                "seq": e["seq"],
                "summary": _summary(e["kind"], e["payload"]),
            }
            for e in entries
        ],
    }


def exposure_report(
    orders: list[dict[str, Any]],
    settlements: dict[str, dict[str, Any]],
    players_of: dict[str, list[str]],
    limits: dict[str, Any],
    rejections: list[tuple[datetime, str]],
) -> dict[str, Any]:
    """Per match and runner: matched stakes, liability, P&L if each player wins, open orders; the totals against
    every exposure limit with the room left; rejections by reason, in total and per hour of event time.

    ``orders``: the ledger's order dicts (``storage.live.orders``); ``settlements``: market id -> settlement;
    ``limits``: the risk limits in force (``RiskLimits`` fields)."""
    by_market: dict[str, list[Order]] = {}
    match_of: dict[str, str] = {}
    for o in orders:
        order = Order.from_dict(o)
        by_market.setdefault(order.market_id, []).append(order)
        match_of[order.market_id] = o.get("match_id") or order.market_id
    matches, total, total_matched, open_count, realised = [], 0.0, 0.0, 0, 0.0
    for market_id, market_orders in sorted(by_market.items()):
        match_id = match_of[market_id]
        players = players_of.get(match_id) or []
        settled = settlements.get(market_id)
        live = [o for o in market_orders if o.is_live or o.size_matched > 0]
        labelled = all(o.selection in (FIRST, SECOND) for o in market_orders)
        outcomes = market_outcomes(live, [FIRST, SECOND] if labelled else None)
        pnl_if = {w: round_money(sum(order_outcome_pnl(o, w) for o in live)) for w in outcomes}
        liability = 0.0 if settled or not live else round_money(max(0.0, -min(pnl_if.values())))
        runners = []
        for sel in outcomes:
            mine = [o for o in live if o.selection == sel]
            sel_pnl = [round_money(sum(order_outcome_pnl(o, w) for o in mine)) for w in (sel, f"not {sel}")]
            runners.append(
                {
                    "selection": sel,
                    "name": selection_name(sel, players),
                    "back_matched": round_money(sum(o.size_matched for o in mine if o.side == "BACK")),
                    "lay_matched": round_money(sum(o.size_matched for o in mine if o.side == "LAY")),
                    "liability": 0.0 if settled else round_money(max(0.0, -min(sel_pnl))) if mine else 0.0,
                }
            )
        matched = round_money(sum(o.size_matched for o in market_orders))
        opened = [o for o in market_orders if o.is_live]
        net = None if settled is None else (settled.get("pnl") or {}).get("net_profit")
        matches.append(
            {
                "match_id": match_id,
                "players": players,
                "market_id": market_id,
                "settled": settled is not None,
                "matched_stake": matched,
                "open_orders": len(opened),
                "open_stake": round_money(sum(o.size_remaining for o in opened)),
                "liability": liability,
                "pnl_if": [
                    {"selection": w, "name": selection_name(w, players), "pnl": None if settled else pnl_if[w]}
                    for w in outcomes
                ],
                "runners": runners,
                "realised_pnl": net,
                "winner": None if settled is None else selection_name(settled.get("winner"), players),
            }
        )
        total += liability
        total_matched += matched if settled is None else 0.0
        open_count += len(opened)
        realised += float(net or 0.0)
    worst_market = max((m["liability"] for m in matches), default=0.0)
    worst_selection = max((r["liability"] for m in matches for r in m["runners"]), default=0.0)
    measured = {
        "max_total_exposure": round_money(total),
        "max_market_exposure": worst_market,
        "max_selection_exposure": worst_selection,
        "max_open_orders": open_count,
    }
    limit_rows = []
    for name, value in measured.items():
        limit = limits.get(name)
        limit_rows.append(
            {
                "name": name,
                "value": value,
                "limit": limit,
                "room": None if limit is None else round_money(max(0.0, float(limit) - value)),
            }
        )
    by_hour: Counter[tuple[str, str]] = Counter()
    for at, reason in rejections:
        by_hour[(at.replace(minute=0, second=0, microsecond=0).isoformat(), reason)] += 1
    return {
        "matches": matches,
        "totals": {
            "exposure": round_money(total),
            "matched_stake": round_money(total_matched),
            "open_orders": open_count,
            "realised_pnl": round_money(realised),
        },
        "limits": limit_rows,
        "rejections": {
            "by_reason": dict(Counter(reason for _, reason in rejections)),
            "timeline": [{"at": at, "reason": r, "count": n} for (at, r), n in sorted(by_hour.items())],
        },
    }
