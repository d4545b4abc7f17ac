"""Three engine workers (their own processes, ``python -m serving.engine --worker``) over one replay of real
Wimbledon matches, one Postgres database, tight risk limits: one worker is killed with SIGKILL mid-replay and
the others take its matches over. Every match is traded by one worker at a time, no order is placed twice, no
limit that spans matches is ever exceeded, and every finished market is settled."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections import defaultdict

import pytest

from betting.policy import TradingPolicy
from serving import control
from storage import live as store
from storage import shared_risk
from storage.db import make_engine, migrate
from tests.chaos.harness import EngineProcess, FeedServer, Loop, events, real_frames, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TIGHT = {"max_total_exposure": 60.0, "max_open_orders": 3, "max_orders_per_hour": 10}
"""Limits that span matches, tight enough that the workers compete for them (checked: they do reject)."""
WORKERS = ("w1", "w2", "w3")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(port: int) -> tuple[str, dict, dict]:
    base = f"http://127.0.0.1:{port}"
    metrics = urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode()
    health = json.loads(urllib.request.urlopen(f"{base}/healthz", timeout=10).read())
    ready = json.loads(urllib.request.urlopen(f"{base}/readyz", timeout=10).read())
    return metrics, health, ready


def _worker_cursors(db) -> dict[str, dict[str, int]]:
    with db.connect() as conn:
        rows = conn.exec_driver_sql("select channel, last_seq from feed_cursors").all()
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for channel, seq in rows:
        name, _, worker = channel.partition("@")  # a single engine's cursors: worker ""
        out[worker][name] = seq
    return out


def _start_workers(
    db, url: str, feed_url: str, prediction_service: str, tmp_path, env: dict[str, dict[str, str]]
) -> dict[str, EngineProcess]:
    """Live-mode engine workers (``env``: worker id -> more of its environment), started and seen beating."""
    procs = {
        w: EngineProcess(
            url,
            feed_url,
            prediction_service,
            tmp_path / w,
            deterministic=False,
            env={"COURTSIDE_ENGINE_WORKER": w, **more},
        )
        for w, more in env.items()
    }
    try:
        for p in procs.values():
            p.home.mkdir()
            p.start()
        wait_until(
            f"the {len(procs)} workers to beat",
            lambda: len(shared_risk.SharedRisk(db, "probe").alive()) == len(procs) + 1,  # the probe counts itself
            timeout=120,
            alive=lambda: all(p.alive() for p in procs.values()),
            log=lambda: "\n".join(p.log_tail(1500) for p in procs.values()),
        )
    except BaseException:
        for p in procs.values():
            p.stop()
        raise
    return procs


def test_three_workers_one_killed_share_the_limits_and_trade_each_match_once(
    tmp_path, postgres_database_url, prediction_service
):
    url = postgres_database_url
    migrate(url)
    db = make_engine(url)
    store.change_controls(db, "test", risk_limits=TIGHT, reason="tight limits the workers compete for")
    frames = real_frames(6, stagger_s=120.0)
    loop = Loop()
    feed = FeedServer(loop, frames, rate=120.0)
    totals = feed.counts()
    ports = {w: _free_port() for w in WORKERS}
    victim = "w2"
    procs: dict[str, EngineProcess] = {}
    try:
        env = {w: {"COURTSIDE_ENGINE_METRICS_PORT": str(ports[w])} for w in WORKERS}
        procs = _start_workers(db, url, feed.url, prediction_service, tmp_path, env)
        feed.start_publishing()

        def victim_holds_a_match_in_play() -> bool:
            leases = shared_risk.leases(db)
            return feed.published > len(frames) * 0.3 and any(lease["worker"] == victim for lease in leases.values())

        wait_until("the victim to hold a match in play", victim_holds_a_match_in_play, timeout=120, every=0.1)
        scraped = {w: _scrape(ports[w]) for w in WORKERS}
        procs[victim].kill9()
        killed_at = time.monotonic()

        survivors = [w for w in WORKERS if w != victim]

        def done() -> bool:
            c = _worker_cursors(db)
            return all(c.get(w) == totals for w in survivors)

        wait_until(
            "the survivors to handle every frame",
            done,
            timeout=600,
            alive=lambda: all(procs[w].alive() for w in survivors),
            log=lambda: "\n".join(procs[w].log_tail(2000) for w in survivors),
        )
        time.sleep(2.0)  # a housekeeping tick after the last frame: leases of finished matches closed
        took_s = time.monotonic() - killed_at
    finally:
        for p in procs.values():
            p.stop()
        feed.stop()
        loop.close()

    # every worker's Prometheus metrics, health and readiness, scraped mid-replay
    for w, (metrics, health, ready) in scraped.items():
        assert health["status"] == "ok" and ready["ready"] and ready["worker"] == w, (health, ready)
        for name in ("messages_total", "decision_seconds_bucket", "leases", "risk_headroom", "shadowed_total"):
            assert f"courtside_engine_{name}{{" in metrics, (w, name)
        assert f'worker="{w}"' in metrics
    control.settle_finished(db, TradingPolicy())
    reservations = shared_risk.reservations(db)
    placed = [p["order"]["customer_order_ref"] for *_, p in events(db, "ORDER_PLACED")]

    # no order twice: one ORDER_PLACED per reference, one reservation per reference, every placed one reserved
    assert placed and len(placed) == len(set(placed)), "an order was placed twice"
    assert len({r["ref"] for r in reservations}) == len(reservations)
    assert set(placed) <= {r["ref"] for r in reservations}

    # one worker at a time: per match, reservations in order go through lease epochs that never go back, and
    # each epoch belongs to one worker; the victim placed nothing after it was killed (its epochs all come first)
    by_match: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for r in reservations:
        by_match[r["match_id"]].append((r["lease_epoch"], r["placed_by"]))
    for match_id, seq in by_match.items():
        epochs = [e for e, _ in seq]
        assert epochs == sorted(epochs), f"{match_id}: a lease epoch went back: {seq}"
        owners = defaultdict(set)
        for e, w in seq:
            owners[e].add(w)
        assert all(len(ws) == 1 for ws in owners.values()), f"{match_id}: two workers under one lease: {seq}"

    # the limits that span matches, as measured under the lock: the placing worker's own markets exactly, the
    # others' as they published them (never below the truth: betting.shared_limits). The event log cannot be
    # replayed for this: several writers commit their steps in an order that is not the order they decided in.
    kinds = ("ORDER_PLACED", "ORDER_REJECTED", "ORDER_FILLED", "ORDER_LAPSED", "ORDER_CANCELLED", "MATCH_FINISHED")
    (tmp_path / "run.json").write_text(  # for a post-mortem when an assertion below fails
        json.dumps({"reservations": reservations, **{k: events(db, k) for k in kinds}}, default=str)
    )
    table = "\n".join(
        f"{r['id']} {r['placed_by']} e{r['lease_epoch']} {r['match_id']} {r['placed_at']:%H:%M:%S} "
        f"total {r['total_exposure']} others {r['others_exposure']} live {r['live_orders']}"
        for r in reservations
    )
    for r in reservations:
        assert r["total_exposure"] <= TIGHT["max_total_exposure"] + 1e-6, table
        assert r["live_orders"] <= TIGHT["max_open_orders"], r
        assert r["orders_in_hour"] <= TIGHT["max_orders_per_hour"], r
    rejected = [p for *_, p in events(db, "ORDER_REJECTED")]
    spanning = {"TOTAL_EXPOSURE", "TOO_MANY_OPEN_ORDERS", "ORDER_RATE"}
    assert any(p["reason"] in spanning for p in rejected), "the limits never bound: the test proves nothing"

    # the take-over: the victim's unfinished matches went to the survivors, their orders adopted
    taken = events(db, "MATCH_TAKEN_OVER")
    assert taken, "nobody took the killed worker's matches over"
    assert all(p["from"] == victim and p["worker"] in survivors for *_, p in taken)
    leases = shared_risk.leases(db)
    assert all(lease["worker"] == shared_risk.CLOSED for lease in leases.values()), leases

    # every match ended in the log once, and every finished market with orders is settled
    finished = events(db, "MATCH_FINISHED")
    assert sorted(m for _, _, _, m, _ in finished) == sorted({m for _, _, _, m, _ in finished})
    assert len(finished) == 6
    markets_with_orders = {o["market_id"] for o in store.orders(db)}
    settled = {s["market_id"]: s["pnl"]["net_profit"] for s in store.settlements(db)}
    assert markets_with_orders <= set(settled)
    # the shared realised P&L (every worker's bankroll and stop-losses) is the ledger's: each settled market once,
    # by the worker that held it then, for the same net profit the control plane settled
    with db.connect() as conn:
        realised = {
            m: (w, net) for m, w, net in conn.exec_driver_sql("select market_id, worker, net_profit from risk_realised")
        }
    assert {m for m, net in settled.items() if abs(net) >= 0.005} <= set(realised), (sorted(realised), settled)
    for market_id, (worker, net) in realised.items():
        assert abs(net - settled[market_id]) < 0.005, (market_id, worker, net, settled[market_id])
        assert worker in WORKERS
    print(
        f"\n3 workers, 1 killed: {len(placed)} orders, {len(rejected)} rejected "
        f"({sum(p['reason'] in spanning for p in rejected)} by limits spanning matches), {len(taken)} matches taken "
        f"over, {took_s:.1f} s from the kill to the last frame"
    )


def _ledger(db) -> dict[str, dict]:
    """The orders as the ledger holds them, by reference; the exchange's bet id left out (each worker's paper
    exchange numbers its own bets)."""
    out = {}
    for o in store.orders(db):
        o = dict(o)
        o.pop("bet_id", None)
        out[o["customer_order_ref"]] = o
    return out


def _replay(
    tmp_path, name: str, url: str, frames, prediction_service, workers: tuple[str, ...], limits: dict
) -> tuple[dict[str, dict], dict[str, int]]:
    """Deterministic engines (one, or workers) over the whole feed, to the end, under ``limits``; the ledger they
    leave and the reasons of the orders the risk checks refused."""
    migrate(url)
    db = make_engine(url)
    store.change_controls(db, "test", risk_limits=limits, reason="the limits of the comparison")
    loop = Loop()
    feed = FeedServer(loop, frames, rate=3000.0)
    totals = feed.counts()
    procs = [
        EngineProcess(
            url,
            feed.url,
            prediction_service,
            tmp_path / f"{name}-{w or 'single'}",
            deterministic=True,
            env={"COURTSIDE_ENGINE_WORKER": w, "COURTSIDE_ENGINE_WORKERS": str(len(workers))} if w else {},
        )
        for w in workers
    ]
    try:
        for p in procs:
            p.home.mkdir()
            p.start()
        if workers != ("",):
            wait_until(
                "the workers to beat",
                lambda: len(shared_risk.SharedRisk(db, "probe").alive()) == len(workers) + 1,
                timeout=120,
                alive=lambda: all(p.alive() for p in procs),
            )
        else:
            time.sleep(1.0)
        feed.start_publishing()

        def done() -> bool:
            c = _worker_cursors(db)
            return all(c.get(w) == totals for w in workers)

        wait_until(
            f"{name}: every engine to handle every frame",
            done,
            timeout=900,
            alive=lambda: all(p.alive() for p in procs),
            log=lambda: "\n".join(p.log_tail(2000) for p in procs),
        )
    finally:
        for p in procs:
            p.stop()
        feed.stop()
        loop.close()
    reasons: dict[str, int] = defaultdict(int)
    for *_, p in events(db, "ORDER_REJECTED"):
        reasons[p["reason"]] += 1
    return _ledger(db), dict(reasons)


def test_deterministic_workers_leave_the_ledger_of_one_engine(tmp_path, postgres_url, prediction_service):
    """The same recorded feed, deterministic mode, under the TIGHT limits the workers compete for: one engine, then
    three workers on another database. Each worker handles a message once the others have handled the ones
    before it, and the worker that trades the message's match once they have handled that one too (what a message
    does to the others' orders - bet delays ending on the clock it moves - happens before any decision); it sizes
    its stakes on the shared bankroll and checks the limits against every worker's exact positions. So the
    ledgers are the same order for order, rejections included, while the limits that span matches refuse orders
    (checked: they bind)."""
    import uuid

    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    urls = {}
    for name in ("single", "workers"):
        db_name = f"courtside_{name}_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{db_name}"')
        urls[name] = make_url(postgres_url).set(database=db_name).render_as_string(hide_password=False)
    frames = real_frames(6, stagger_s=120.0)
    one, one_rejected = _replay(tmp_path, "single", urls["single"], frames, prediction_service, ("",), TIGHT)
    three, three_rejected = _replay(tmp_path, "workers", urls["workers"], frames, prediction_service, WORKERS, TIGHT)
    assert one, "the single engine placed no order: nothing compared"
    spanning = {"TOTAL_EXPOSURE", "TOO_MANY_OPEN_ORDERS", "ORDER_RATE"}
    assert spanning & set(one_rejected), f"the limits that span matches never bound: {one_rejected}"
    assert sorted(three) == sorted(one), (len(one), len(three), one_rejected, three_rejected)
    different = [ref for ref in one if one[ref] != three[ref]]
    assert not different, [(one[r], three[r]) for r in different[:2]]
    assert three_rejected == one_rejected
    print(f"\ndeterministic, tight limits: 1 engine and 3 workers, {len(one)} orders, the same ledger; {one_rejected}")


def test_a_worker_killed_and_restarted_resumes_its_own_matches(tmp_path, postgres_database_url, prediction_service):
    """Restart safety per worker: two workers, one killed with SIGKILL mid-replay and started again (same id)
    within its leases (``COURTSIDE_ENGINE_LEASE_S``). It renews every lease it held before its replay reaches
    their matches, restores the orders it holds, recovers silently up to its own cursors and trades on: nobody
    takes a match over, no order is placed twice, every finished market is settled once and booked in the shared
    realised P&L for what the ledger settled."""
    url = postgres_database_url
    migrate(url)
    db = make_engine(url)
    store.change_controls(db, "test", risk_limits=TIGHT, reason="tight limits the workers compete for")
    frames = real_frames(6, stagger_s=120.0)
    loop = Loop()
    feed = FeedServer(loop, frames, rate=120.0)
    totals = feed.counts()
    workers = ("w1", "w2")
    victim = ""
    procs: dict[str, EngineProcess] = {}
    try:
        env = {w: {"COURTSIDE_ENGINE_LEASE_S": "120"} for w in workers}
        procs = _start_workers(db, url, feed.url, prediction_service, tmp_path, env)
        feed.start_publishing()

        def a_worker_holds_orders() -> bool:
            nonlocal victim
            holders = sorted({r["worker"] for r in shared_risk.reservations(db)})
            victim = holders[0] if holders and feed.published > len(frames) * 0.3 else ""
            return bool(victim)

        wait_until("a worker to hold orders", a_worker_holds_orders, timeout=180, every=0.1)
        held_before = {r["ref"] for r in shared_risk.reservations(db) if r["worker"] == victim}
        leased_before = {m for m, lease in shared_risk.leases(db).items() if lease["worker"] == victim}
        procs[victim].kill9()
        time.sleep(1.0)
        procs[victim].start()

        def done() -> bool:
            c = _worker_cursors(db)
            return all(c.get(w) == totals for w in workers)

        wait_until(
            "both workers to handle every frame",
            done,
            timeout=600,
            alive=lambda: all(p.alive() for p in procs.values()),
            log=lambda: "\n".join(p.log_tail(2000) for p in procs.values()),
        )
        time.sleep(2.0)  # a housekeeping tick after the last frame
    finally:
        for p in procs.values():
            p.stop()
        feed.stop()
        loop.close()

    assert procs[victim].starts == 2 and procs[victim].kills == 1
    assert not events(db, "MATCH_TAKEN_OVER"), "a match was taken over: the restarted worker's leases were lost"
    reservations = shared_risk.reservations(db)
    assert held_before <= {r["ref"] for r in reservations if r["worker"] == victim}
    assert all(r["lease_epoch"] == 1 for r in reservations), "a lease changed hands"
    leases = shared_risk.leases(db)
    assert leased_before and all(leases[m]["epoch"] == 1 for m in leased_before), leases
    placed = [p["order"]["customer_order_ref"] for *_, p in events(db, "ORDER_PLACED")]
    assert placed and len(placed) == len(set(placed)), "an order was placed twice"
    for r in reservations:
        assert r["total_exposure"] <= TIGHT["max_total_exposure"] + 1e-6, r
    control.settle_finished(db, TradingPolicy())
    settled = {s["market_id"]: s["pnl"]["net_profit"] for s in store.settlements(db)}
    assert {o["market_id"] for o in store.orders(db)} <= set(settled)
    with db.connect() as conn:
        realised = dict(conn.exec_driver_sql("select market_id, net_profit from risk_realised").all())
    assert {m for m, net in settled.items() if abs(net) >= 0.005} <= set(realised)
    assert all(abs(net - settled[m]) < 0.005 for m, net in realised.items()), (realised, settled)
    finished = events(db, "MATCH_FINISHED")
    assert len(finished) == len({m for _, _, _, m, _ in finished}) == 6
    recovered = [p for *_, p in events(db, "RECOVERED")]
    assert recovered, "the restarted worker did not recover"
    status = {s["engine"]: s["payload"] for s in store.engine_statuses(db)}
    assert all(p.get("released") == 0 for p in status.values()), {w: p.get("released") for w, p in status.items()}
    print(f"\n2 workers, 1 killed and restarted: {len(placed)} orders, {len(realised)} markets realised")
