"""The control plane's live work — settlement, pre-match value scans, live-batch frames and the
live P&L — as plain functions over the application database. The Dagster assets in
``orchestration/defs/live`` are thin wrappers around them; the rules themselves live in ``betting``
(``decide``, ``settle_market``) and are the same the engine uses in play.

The engine owns the exchange connection: the control plane never places an order itself, it
queues order requests that the engine risk-checks and submits (``storage.live.add_order_requests``).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine as DbEngine

from betting.decision import decide, stake_rule
from betting.market import MarketBook
from betting.policy import TradingPolicy
from betting.prior import mid_probability
from betting.records import EventKind, Order, Settlement
from betting.settlement import MatchResult, settle_market
from features.live_match import FIRST, SECOND
from feeds.live.books import logged_book
from storage import live as store

PredictBatch = Callable[[list[dict]], list[dict]]
"""``/predict`` requests -> answers (same order); raises ``PredictRejected`` for a bad row."""


class PredictRejected(ValueError):
    """The prediction service refused one request of a batch (422): which one and why."""

    def __init__(self, index: int, message: str):
        super().__init__(f"request {index}: {message}")
        self.index = index
        self.message = message


def http_predict(url: str, timeout_s: float = 30.0) -> PredictBatch:
    """``POST {url}/predict`` in one batch."""

    def call(requests: list[dict]) -> list[dict]:
        body = json.dumps({"requests": requests}).encode()
        req = urllib.request.Request(
            f"{url.rstrip('/')}/predict", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                return json.loads(resp.read())["predictions"]
        except urllib.error.HTTPError as exc:
            detail = json.loads(exc.read() or b"{}").get("detail")
            if exc.code == 422 and isinstance(detail, list) and detail:
                loc = detail[0].get("loc", [])
                index = next((x for x in loc if isinstance(x, int)), None)
                if index is not None:
                    raise PredictRejected(index, f"{'.'.join(map(str, loc))}: {detail[0].get('msg')}") from None
            raise RuntimeError(f"/predict answered {exc.code}: {str(detail)[:500]}") from None

    return call


def bankroll(db: DbEngine, start: float) -> float:
    """Starting bankroll plus every settled market's net P&L."""
    return round(start + sum(s["pnl"]["net_profit"] for s in store.settlements(db)), 2)


# --- settlement --------------------------------------------------------------------------------
@dataclass
class SettlementRun:
    settled: list[Settlement] = field(default_factory=list)
    unsettleable: list[tuple[str, str]] = field(default_factory=list)
    """(market id, reason) of markets that cannot be settled automatically (left for an operator)."""


def settle_finished(db: DbEngine, cfg: TradingPolicy) -> SettlementRun:
    """Settle every market of every finished match that is not settled yet (idempotent: a market
    is settled once, in one transaction with its orders and a log entry)."""
    out = SettlementRun()
    done = {s["market_id"] for s in store.settlements(db)}
    bank = bankroll(db, cfg.bankroll)
    for _, _, at, _, match_id, payload in store.events_after(
        db, 0, kinds=[str(EventKind.MATCH_FINISHED)], limit=1_000_000
    ):
        result = MatchResult(
            winner=payload.get("winner"),
            outcome=payload.get("outcome") or "unknown",
            sets_completed=int(payload.get("sets_completed") or 0),
        )
        for market_id in payload.get("markets", []):
            if market_id in done:
                continue
            orders = [Order.from_dict(o) for _, _, o in store.order_rows(db, [market_id])]
            try:
                s = settle_market(
                    market_id,
                    orders,
                    result,
                    commission=cfg.exchange.commission,
                    bankroll=bank,
                    settled_at=at,
                    config=cfg.exchange.settlement,
                )
            except ValueError as exc:
                out.unsettleable.append((market_id, str(exc)))
                continue
            if store.record_settlement(
                db,
                market_id,
                match_id,
                s.to_dict(),
                at,
                [o.customer_order_ref for o in orders],
                str(EventKind.MARKET_SETTLED),
            ):
                bank = s.pnl.bankroll_after
                out.settled.append(s)
            done.add(market_id)
    return out


# --- pre-match value -----------------------------------------------------------------------------
@dataclass
class PrematchScan:
    markets: int = 0
    """Open pre-match markets not scanned before."""
    predicted: int = 0
    requests: list[dict] = field(default_factory=list)
    """Order requests queued for the engine."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(market id, reason) of markets that got no prediction."""
    no_value: int = 0


def open_prematch_markets(db: DbEngine) -> dict[str, tuple[str, MarketBook]]:
    """market id -> (match id, latest book) of pre-match markets whose latest update is OPEN."""
    return {m: (match_id, book) for m, (match_id, book, _) in _open_prematch_books(db).items()}


def _open_prematch_books(db: DbEngine) -> dict[str, tuple[str, MarketBook, dict]]:
    """``open_prematch_markets`` with the log entry each book was read from (feed, id: a bet's trigger)."""
    latest: dict[str, tuple[str, datetime, dict, dict]] = {}
    for entry_id, _, at, feed, match_id, payload in store.events_after(
        db, 0, kinds=[str(EventKind.MARKET_UPDATE)], limit=10_000_000
    ):
        if not payload.get("in_play"):
            latest[payload["market_id"]] = (
                match_id,
                at,
                payload,
                {"feed": feed, "channel": "market", "event_id": entry_id},
            )
    return {
        m: (match_id, logged_book(p, at), trigger)
        for m, (match_id, at, p, trigger) in latest.items()
        if p["status"] == "OPEN"
    }


def _prematch_request(row: pd.Series) -> dict:
    tour = row.get("tour")
    return {
        "player_one": int(row["player1_id"]),
        "player_two": int(row["player2_id"]),
        "tour": tour if isinstance(tour, str) else "ATP",  # a catalog from before the tour column: the men's
        "surface": row["surface"],
        "date": str(row["event_date"]),
        "best_of": int(row["best_of"]),
        "level": "G" if row["source"] == "slam" else "A",
        "round": str(row["round"] or "R32"),
        "match_id": str(row["sackmann_match_id"]),
    }


def scan_prematch(db: DbEngine, catalog: pd.DataFrame, predict: PredictBatch, cfg: TradingPolicy) -> PrematchScan:
    """For every open pre-match market not scanned before: the champion's probability (``/predict``
    in one batch), value after commission, fractional-Kelly stake -> an order request for the engine."""
    scan = PrematchScan()
    seen = store.requested_markets(db)
    books = _open_prematch_books(db)
    markets = {m: (match_id, book) for m, (match_id, book, _) in books.items() if m not in seen}
    scan.markets = len(markets)
    by_key = catalog.drop_duplicates("event_key").set_index("event_key")
    asks: list[tuple[str, str, MarketBook, dict]] = []
    for market_id, (match_id, book) in sorted(markets.items()):
        row = by_key.loc[match_id] if match_id in by_key.index else None
        if row is None:
            scan.skipped.append((market_id, f"match {match_id} is not in the replay catalog"))
        elif pd.isna(row["player1_id"]) or pd.isna(row["player2_id"]) or pd.isna(row["sackmann_match_id"]):
            scan.skipped.append((market_id, "players not identified (no Sackmann ids): no model input"))
        else:
            asks.append((market_id, match_id, book, _prematch_request(row)))
    answers: list[dict | None] = [None] * len(asks)
    failed: list[str] = []
    tours = sorted({ask["tour"] for *_, ask in asks})
    for tour in tours:  # a batch per tour: one tour's model being down does not stop the other's bets
        pending = [i for i, (*_, ask) in enumerate(asks) if ask["tour"] == tour]
        while pending:
            try:
                got = predict([asks[i][3] for i in pending])
            except PredictRejected as exc:  # drop the refused request with its reason, ask again for the rest
                bad = pending.pop(exc.index)
                scan.skipped.append((asks[bad][0], f"/predict refused it: {exc.message}"))
                continue
            except RuntimeError as exc:
                failed.append(f"{tour}: {exc}")
                scan.skipped.extend((asks[i][0], f"/predict failed for the {tour}: {exc}") for i in pending)
                break
            for i, answer in zip(pending, got, strict=True):
                answers[i] = answer
            break
    if failed and len(failed) == len(tours):  # nothing could be asked: the run fails, visibly
        raise RuntimeError("; ".join(failed))
    bank = bankroll(db, cfg.bankroll)
    queued, events = [], []
    for (market_id, match_id, book, ask), answer in zip(asks, answers, strict=True):
        if answer is None:
            continue
        scan.predicted += 1
        p = float(answer["probability"])
        decision = decide(
            match_id,
            book,
            p,
            (FIRST, SECOND),
            bank,
            cfg.value,
            cfg.staking,
            cfg.risk.max_stake,
            ("prematch", market_id),
        )
        events.append(
            store.EventEntry(
                "PREMATCH_PREDICTION",
                book.publish_time,
                {
                    "market_id": market_id,
                    "probability": p,
                    "model": answer["model_name"],
                    "version": answer["model_version"],
                    "sackmann_match_id": ask["match_id"],
                    "players": [str(by_key.loc[match_id, "player1"]), str(by_key.loc[match_id, "player2"])],
                },
                None,
                None,
                match_id,
            )
        )
        if (opp := decision.opportunity) is not None:
            ref = decision.request.customer_order_ref if decision.request is not None else None
            size = decision.request.size if decision.request is not None else 0.0
            first = mid_probability(book)
            events.append(
                store.EventEntry(
                    str(EventKind.OPPORTUNITY),
                    book.publish_time,
                    {
                        **opp.to_dict(),
                        "source": "prematch",
                        "trigger": books[market_id][2],
                        "ref": ref,
                        "market_id": market_id,
                        "size": size,
                        "market_probability": None
                        if first is None
                        else (first if opp.selection == FIRST else 1 - first),
                        "model": answer["model_name"],
                        "version": answer["model_version"],
                        "data_version": answer.get("data_version"),
                        "stake_rule": stake_rule(opp, bank, cfg.staking, cfg.risk.max_stake, size),
                        "within_limits": cfg.risk.min_price <= opp.price <= cfg.risk.max_price
                        and opp.edge >= cfg.risk.min_edge,
                    },
                    None,
                    None,
                    match_id,
                    ref,
                )
            )
        if decision.request is None:
            scan.no_value += 1
            continue
        request = decision.request.to_dict()
        queued.append((decision.request.customer_order_ref, match_id, market_id, request))
        scan.requests.append({"match_id": match_id, **request})
    store.append_events(db, events)
    store.add_order_requests(db, queued)
    return scan


# --- live batches and P&L ------------------------------------------------------------------------
def events_frame(db: DbEngine, after_id: int, upto_id: int) -> pd.DataFrame:
    """Log entries in (after_id, upto_id] as a flat frame for the live-batch expectations. With ``upto_id`` at most
    a ``last_event_id()`` read before, the range is final: entry ids are in commit order
    (``storage.live.LOG_WRITE_LOCK_KEY``), so no entry in it commits later."""
    rows = []
    for r in store.event_rows(db, after_id, upto_id):
        payload = r["payload"]
        order = payload.get("order") or payload.get("request") or {}
        rows.append(
            {
                "id": r["id"],
                "kind": r["kind"],
                "event_time": pd.Timestamp(r["event_time"]),
                "feed": r["feed"],
                "seq": r["seq"],
                "match_id": r["match_id"],
                "probability": payload.get("probability"),
                "price": order.get("price"),
                "size": order.get("size"),
            }
        )
    frame = pd.DataFrame(
        rows, columns=["id", "kind", "event_time", "feed", "seq", "match_id", "probability", "price", "size"]
    )
    frame["seq"] = frame["seq"].astype("Int64")
    for column in ("probability", "price", "size"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


@dataclass
class LivePnL:
    curve: pd.DataFrame
    """One row per settled market: settled_at, market, net profit, bankroll after."""
    calibration: pd.DataFrame
    """In-play predictions of finished matches: predicted P(first player), the model ("name vN"), whether they
    won."""
    summary: dict


def live_pnl(db: DbEngine, cfg: TradingPolicy) -> LivePnL:
    """The session's P&L curve and the calibration of its in-play predictions on finished matches."""
    settled = store.settlements(db)
    curve = pd.DataFrame(
        [
            {
                "settled_at": s["pnl"]["settled_at"],
                "market_id": s["market_id"],
                "bets": len(s["bets"]),
                "staked": sum(b["size_matched"] for b in s["bets"]),
                "net_profit": s["pnl"]["net_profit"],
                "bankroll": s["pnl"]["bankroll_after"],
            }
            for s in settled
        ],
        columns=["settled_at", "market_id", "bets", "staked", "net_profit", "bankroll"],
    )
    winners = {
        m: p.get("winner")
        for _, _, _, _, m, p in store.events_after(db, 0, kinds=[str(EventKind.MATCH_FINISHED)], limit=1_000_000)
    }
    preds = [
        (m, p["probability"], f"{p.get('model') or '?'} v{p.get('version') or '?'}")
        for _, _, _, _, m, p in store.events_after(db, 0, kinds=[str(EventKind.PREDICTION)], limit=10_000_000)
        if winners.get(m) in (FIRST, SECOND)
    ]
    calib = pd.DataFrame(preds, columns=["match_id", "probability", "model"])
    calib["first_won"] = [int(winners[m] == FIRST) for m in calib["match_id"]]
    y, p = calib["first_won"].to_numpy(), np.clip(calib["probability"].to_numpy(dtype=float), 1e-6, 1 - 1e-6)
    staked = float(curve["staked"].sum())
    net = float(curve["net_profit"].sum())
    peak = np.maximum.accumulate(np.r_[cfg.bankroll, curve["bankroll"].to_numpy(dtype=float)])
    drawdown = float((peak - np.r_[cfg.bankroll, curve["bankroll"].to_numpy(dtype=float)]).max()) if len(peak) else 0.0
    summary = {
        "markets_settled": len(curve),
        "bets_settled": int(curve["bets"].sum()),
        "staked": round(staked, 2),
        "net_profit": round(net, 2),
        "roi": round(net / staked, 4) if staked else None,
        "bankroll": round(cfg.bankroll + net, 2),
        "max_drawdown": round(drawdown, 2),
        "finished_matches": len(winners),
        "predictions_scored": len(calib),
        "brier": round(float(np.mean((p - y) ** 2)), 4) if len(calib) else None,
        "log_loss": round(float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))), 4) if len(calib) else None,
    }
    return LivePnL(curve, calib, summary)
