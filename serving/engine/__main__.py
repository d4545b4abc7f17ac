"""The streaming engine as a process (``make up`` starts it).

    python -m serving.engine [--feed-url ws://127.0.0.1:8765] [--prediction-url http://127.0.0.1:3001]
                             [--deterministic]

Follows the feed, trades on the paper exchange and appends every step to the event log in
``COURTSIDE_DATABASE_URL``. Stop it with SIGINT/SIGTERM (or kill it): started again, it resumes
from its cursors without a duplicate bet. ``--deterministic`` (or ``COURTSIDE_DETERMINISTIC=1``):
the feed's own order, each decision waiting for its prediction — the same feed gives the same orders
(audits, backtests); a restart re-executes up to its cursors and checks it arrives at the committed
orders. Live trading keeps the default, real-time mode.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import signal
import sys
from collections.abc import Mapping

from betting.policy import TradingPolicy
from courtside.settings import Settings
from serving.engine.engine import EngineConfig, TradingEngine
from serving.engine.prediction import PredictionClient
from storage.db import make_engine, migrate

log = logging.getLogger("serving.engine")


def _stats_line(engine: TradingEngine) -> str:
    s = engine.stats
    lat = s.decision_summary()
    figures = f"decision p50 {lat['p50_ms']:.2f} ms p99 {lat['p99_ms']:.2f} ms" if lat else "no decisions yet"
    return (
        f"messages {s.messages} (recovered {s.recovered + s.replayed}), quarantined {s.quarantined} "
        f"(poison {s.poison}), suspended matches {len(engine.suspended)}, gaps skipped {s.gaps_skipped}, "
        f"predictions "
        f"{s.predictions} (failed {s.prediction_failures}), opportunities {s.opportunities}, orders {s.orders}, "
        f"risk-rejected {s.rejected}; {figures}"
    )


def lease_seconds(env: Mapping[str, str]) -> float:
    """``COURTSIDE_ENGINE_LEASE_S``: how long a worker's match lease lasts unrenewed (default 5 s; a dead worker's
    matches wait this long, and a restarted worker finds its own still leased to it within it)."""
    raw = env.get("COURTSIDE_ENGINE_LEASE_S") or "5"
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 3.0 <= value <= 3600.0):  # at least a few ticks (1 s) and the heartbeat's 3 s
        raise SystemExit(f"COURTSIDE_ENGINE_LEASE_S={raw!r}: seconds between 3 and 3600")
    return value


async def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    db = make_engine(settings.database_url)
    migrate(db)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    deterministic = args.deterministic or os.environ.get("COURTSIDE_DETERMINISTIC", "") in ("1", "true", "yes")
    feed, venue = os.environ.get("COURTSIDE_FEED") or "replay", os.environ.get("COURTSIDE_VENUE") or "paper"
    live = venue == "betfair-live"
    config = EngineConfig(
        mode="live" if live else "paper-live" if venue == "betfair-paper-live" or feed == "standin" else "paper",
        venue={"api-tennis": "api-tennis" if venue == "paper" else "api-tennis+betfair"}.get(feed, feed),
        feed_url=args.feed_url or settings.feed_url,
        feeds=tuple(args.feed),
        policy=TradingPolicy(bankroll=settings.bankroll),
        deterministic=deterministic,
        worker=args.worker or os.environ.get("COURTSIDE_ENGINE_WORKER") or None,
        workers=int(os.environ.get("COURTSIDE_ENGINE_WORKERS") or 1),
        lease_s=lease_seconds(os.environ),
    )
    async with PredictionClient(args.prediction_url or settings.prediction_url) as client:
        log.info("waiting for the prediction service at %s", client.url)
        while not await client.wait_ready(timeout_s=30):
            if stop.is_set():
                return 0
            log.warning("prediction service not ready yet (is the model loaded? see its /health)")
        exchange = None
        if live:  # REAL orders: only behind the explicit switch (adapters.betfair.exchange.live_exchange_factory)
            from adapters.betfair.exchange import live_exchange_factory

            holder: list[TradingEngine] = []
            exchange = live_exchange_factory(
                os.environ,
                lambda: [
                    (k, m.event_date, m.players[0], m.players[1])
                    for k, m in (holder[0].core.matches.items() if holder else ())
                ],
            )
        engine = TradingEngine(config, db, client.predict_live, exchange=exchange)
        if live:
            holder.append(engine)
        log.info(
            "engine started (%s, %s mode, orders %s, feed from %s): feeds %s at %s, bankroll %.2f, "
            "%d orders committed, resuming after %s",
            "deterministic" if deterministic else "live",
            config.mode.upper(),
            "to BETFAIR: REAL MONEY" if live else "on the PAPER exchange (no money)",
            config.venue,
            config.feeds,
            config.feed_url,
            engine.risk.bankroll,
            len(engine._committed_orders),
            {f"{f}/{c}": seq for (f, c), seq in engine.recover_upto.items()} or "nothing (fresh session)",
        )

        async def report() -> None:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), timeout=args.report_s)
                except TimeoutError:
                    log.info(_stats_line(engine))

        reporter = asyncio.create_task(report())
        endpoints = None
        port = os.environ.get("COURTSIDE_ENGINE_METRICS_PORT")
        if port:  # Prometheus /metrics, /healthz, /readyz (serving.engine.metrics)
            from serving.engine.metrics import serve

            host = os.environ.get("COURTSIDE_ENGINE_METRICS_HOST") or "127.0.0.1"
            endpoints = await serve(engine, host, int(port))
            log.info("metrics, health and readiness on http://%s:%s/metrics, /healthz, /readyz", host, port)
        try:
            await engine.run(stop)
        finally:
            reporter.cancel()
            if endpoints is not None:
                await endpoints.cleanup()
        log.info("stopped. %s", _stats_line(engine))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving.engine", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--feed-url", help="default COURTSIDE_FEED_URL or ws://127.0.0.1:8765")
    parser.add_argument("--prediction-url", help="default COURTSIDE_PREDICTION_URL or http://127.0.0.1:3001")
    parser.add_argument("--feed", action="append", default=None, help="feed name(s) to follow (default: live)")
    parser.add_argument("--report-s", type=float, default=15.0, help="seconds between progress lines")
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="the feed's own order, every decision waits for its prediction (audits, backtests)",
    )
    parser.add_argument(
        "--worker",
        help="one of several engine workers on one Postgres database: this worker's id (1-8 letters/digits); it "
        "trades the matches it leases, under risk limits shared by every worker (default COURTSIDE_ENGINE_WORKER; "
        "none: the only engine)",
    )
    args = parser.parse_args(argv)
    args.feed = args.feed or ["live"]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
