"""kill -9: the engine (its own process, deterministic mode) is killed with SIGKILL at random moments
during a replay of real matches and started again each time, while the control plane settles finished
matches beside it. No order may be placed twice, no risk limit exceeded, no settled result lost, and
the final ledger must be exactly that of an undisturbed run of the same feed."""

from __future__ import annotations

import json
import random
import time

from betting.policy import TradingPolicy
from betting.records import Order, Settlement
from betting.risk import RiskBook, RiskLimits
from serving import control
from serving.engine.engine import EngineConfig
from storage import live as store
from tests.chaos.harness import (
    EngineProcess,
    FeedServer,
    Loop,
    cursors,
    engine,
    events,
    full,
    new_database,
    orders,
    real_frames,
    wait_until,
)


def _settlements(db) -> dict[str, tuple]:
    return {s["market_id"]: (s.get("winner"), s.get("void"), s["pnl"]["net_profit"]) for s in store.settlements(db)}


def _risk_breaches(db, limits: RiskLimits) -> list[str]:
    """Replay the log's orders in order, each match's markets settled (as persisted) at its end: every
    placement must respect the stake, exposure, open-order and stop-loss limits at the moment it was placed."""
    book = RiskBook(1000.0)
    persisted = {s["market_id"]: Settlement.from_dict(s) for s in store.settlements(db)}
    breaches = []
    with db.connect() as conn:
        rows = conn.exec_driver_sql(
            "select kind, payload from live_events where kind in ('ORDER_PLACED','ORDER_FILLED','ORDER_CANCELLED',"
            "'ORDER_LAPSED','MATCH_FINISHED','MARKET_UPDATE') order by id"
        ).all()
    for kind, payload in rows:
        p = json.loads(payload)
        if kind == "MARKET_UPDATE":
            book.register_market(p["market_id"], ("First Player", "Second Player"))
        elif kind == "MATCH_FINISHED":
            for market_id in p["markets"]:
                if market_id in persisted:
                    book.record_settlement(persisted.pop(market_id))
        else:
            order = Order.from_dict(p["order"])
            exposure_before = book.total_exposure()
            book.record_order(order)
            if kind != "ORDER_PLACED":
                continue
            ref = order.customer_order_ref
            adds_risk = book.total_exposure() > exposure_before + 1e-6
            if adds_risk and book.day_low(order.placed_at) <= -limits.daily_loss_limit + 1e-6:
                breaches.append(f"{ref}: placed after the day's stop-loss ({book.day_low(order.placed_at)})")
            if adds_risk and book.week_low(order.placed_at) <= -limits.weekly_loss_limit + 1e-6:
                breaches.append(f"{ref}: placed after the week's stop-loss ({book.week_low(order.placed_at)})")
            if order.size > limits.max_stake + 1e-9:
                breaches.append(f"{ref}: stake {order.size} > {limits.max_stake}")
            if book.market_exposure(order.market_id) > limits.max_market_exposure + 1e-6:
                breaches.append(f"{ref}: market exposure {book.market_exposure(order.market_id)}")
            if book.total_exposure() > limits.max_total_exposure + 1e-6:
                breaches.append(f"{ref}: total exposure {book.total_exposure()}")
            if book.live_order_count() > limits.max_open_orders:
                breaches.append(f"{ref}: {book.live_order_count()} open orders")
    return breaches


def _run(tmp_path, name, frames, prediction_service, *, rate, kills=0, seed=9):
    loop = Loop()
    feed = FeedServer(loop, frames, rate=rate)
    home = tmp_path / name
    home.mkdir()
    url = new_database(home, "live.db")
    proc = EngineProcess(url, feed.url, prediction_service, home)
    db = engine(url)
    totals = feed.counts()
    rng = random.Random(seed)
    settle_runs = 0
    try:
        proc.start()
        time.sleep(1.0)
        start = time.monotonic()
        feed.start_publishing()
        done = lambda: cursors(db) == totals  # noqa: E731
        progress = lambda: (sum(cursors(db).values()), len(events(db, "RECOVERED")))  # noqa: E731
        for k in range(kills):
            # a random moment of the engine's life: most once it has recovered and trades on (its cursors
            # moved), some while it is still starting or re-executing its past
            if k % 4:
                before = progress()
                wait_until(
                    "the restarted engine to make progress",
                    lambda b=before: progress() != b or done(),
                    timeout=120,
                    alive=proc.alive,
                    log=proc.log_tail,
                    every=0.05,
                )
            deadline = time.monotonic() + rng.uniform(0.0, 2.0)
            while time.monotonic() < deadline and not done():
                if not proc.alive():
                    raise AssertionError(f"the engine died on its own:\n{proc.log_tail()}")
                time.sleep(0.02)
            proc.kill9()
            control.settle_finished(db, TradingPolicy())  # the control plane settles beside the engine
            settle_runs += 1
            proc.start()
        wait_until("the engine to handle every frame", done, timeout=900, alive=proc.alive, log=proc.log_tail)
        seconds = time.monotonic() - start
        control.settle_finished(db, TradingPolicy())
    finally:
        proc.stop()
        feed.stop()
        loop.close()
    return db, proc, seconds, settle_runs


def test_kill_9_at_random_moments_loses_and_duplicates_nothing(tmp_path, prediction_service, figures):
    matches, kills = (3, 50) if full() else (2, 8)
    frames = real_frames(matches)
    calm, _, calm_s, _ = _run(tmp_path, "calm", frames, prediction_service, rate=3000)
    # published over about as long as the kills take (~4 s each), so they fall during the replay
    killed, proc, killed_s, settle_runs = _run(
        tmp_path, "killed", frames, prediction_service, rate=max(5.0, len(frames) / (kills * 4.0)), kills=kills
    )

    assert proc.kills == kills and proc.starts == kills + 1
    placed = [p["order"]["customer_order_ref"] for *_, p in events(killed, "ORDER_PLACED")]
    assert placed and len(placed) == len(set(placed)), "an order was placed twice"
    limits = EngineConfig().policy.risk
    breaches = _risk_breaches(killed, limits)
    assert not breaches, breaches[:5]
    finished = events(killed, "MATCH_FINISHED")
    assert len(finished) == matches, "a match end was lost or logged twice"
    markets = {m for *_, p in finished for m in p["markets"]}
    assert set(_settlements(killed)) == markets, "a finished market was not settled"
    assert _settlements(killed) == _settlements(calm), "settled results differ from the undisturbed run"
    assert orders(killed) == orders(calm), "the final ledger differs from the undisturbed run"
    recovered = events(killed, "RECOVERED")
    mismatches = sum(len(p.get("mismatches", [])) for *_, p in recovered)
    assert mismatches == 0

    figures.update(
        {
            "matches replayed": matches,
            "kill -9 of the engine (random moments)": proc.kills,
            "restarts that re-executed the feed (RECOVERED)": len(recovered),
            "re-executions that did not reach the committed orders": mismatches,
            "orders placed / placed twice": f"{len(placed)} / 0",
            "risk-limit breaches (log replayed against the limits)": len(breaches),
            "finished markets / settled (control plane ran after every kill)": f"{len(markets)} / "
            f"{len(_settlements(killed))}",
            "final ledger equal to the undisturbed run (orders, settlements)": "yes",
            "seconds, undisturbed / with kills": f"{calm_s:.1f} / {killed_s:.1f}",
            "control-plane settlement runs during the kills": settle_runs,
        }
    )
