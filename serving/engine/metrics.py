"""One engine process's Prometheus metrics, health and readiness (the only engine, or one of several workers).

``python -m serving.engine`` serves them when ``COURTSIDE_ENGINE_METRICS_PORT`` is set (off by default; on
127.0.0.1 unless ``COURTSIDE_ENGINE_METRICS_HOST`` says otherwise), in its own event loop:

- ``GET /metrics``: Prometheus text format. Everything is read from the engine's counters when scraped, so the
  hot path pays nothing but what it already counts; the decision latency histogram takes the latencies
  measured since the last scrape. Names start ``courtside_engine_``; every series has the ``worker`` label.
- ``GET /healthz``: 200 while the process's loop answers.
- ``GET /readyz``: 200 once the engine recovered after its start and a feed connection is up; else 503 with the
  reason. Every answer is JSON except ``/metrics``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from serving.engine.engine import TradingEngine

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
COUNTS = (
    ("messages", "feed messages handled (each once)"),
    ("predictions", "predictions received"),
    ("prediction_failures", "predictions the service did not give"),
    ("decisions", "trading decisions on an open in-play book (bet or no bet)"),
    ("opportunities", "value found"),
    ("orders", "orders sent to the exchange"),
    ("rejected", "orders refused before the exchange (by reason: courtside_engine_refusals_total)"),
    ("quarantined", "frames quarantined (invalid, impossible, poison)"),
    ("poison", "frames whose handling raised (quarantined)"),
    ("gaps_skipped", "gaps in a feed skipped after the bounded re-requests"),
    ("skipped_messages", "messages those gaps skipped"),
    ("commit_retries", "event-log commits retried (database away)"),
    ("housekeeping_errors", "housekeeping ticks that failed"),
    ("shadowed", "frames of other workers' matches (state followed, nothing traded)"),
    ("takeovers", "matches taken over from a dead worker"),
    ("released", "matches another worker took over while this one was late (orders forgotten here)"),
)


class EngineCollector(Collector):
    """Reads the engine when Prometheus scrapes."""

    def __init__(self, engine: TradingEngine):
        self.engine = engine
        self.worker = engine.cfg.worker or "single"
        self.latency = Histogram(
            "courtside_engine_decision_seconds",
            "feed message received -> trading decision made",
            ["worker"],
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        self._seen = 0

    def collect(self) -> Iterator[Metric]:
        e, s, w = self.engine, self.engine.stats, self.worker
        for name, doc in COUNTS:
            c = CounterMetricFamily(f"courtside_engine_{name}", doc, labels=["worker"])
            c.add_metric([w], float(getattr(s, name)))
            yield c
        refusals = CounterMetricFamily(
            "courtside_engine_refusals", "orders refused before the exchange, by reason", labels=["worker", "reason"]
        )
        for reason, n in sorted(e.core.refusals.items()):
            refusals.add_metric([w, reason], float(n))
        yield refusals
        new = s.decision_ms[self._seen :]
        self._seen = len(s.decision_ms)
        child = self.latency.labels(w)
        for ms in new:
            child.observe(ms / 1000.0)
        yield from self.latency.collect()
        limits, risk, now = e.limits, e.risk, e.clock.now()
        gauges: list[tuple[str, str, float]] = [
            ("bankroll", "realised bankroll of this engine's book", risk.bankroll),
            ("total_exposure", "worst-case loss of this engine's open markets", risk.total_exposure()),
            ("live_orders", "orders in the bet delay or resting", float(risk.live_order_count())),
            (
                "orders_last_hour",
                "orders placed in the last hour of feed time",
                float(risk.orders_placed_in_window(now)),
            ),
            ("matches", "matches followed", float(len(e.matches))),
            ("suspended_matches", "matches suspended from trading", float(len(e.suspended))),
            ("paused", "1 when the operator paused betting", float(e.paused)),
            ("kill_switch", "1 when the kill switch is on", float(limits.kill_switch)),
            ("recovered", "1 once the start's recovery is complete", float(e.recovered)),
            ("feed_lag_seconds", "wall clock minus the feed clock of the last message", e.feed_lag_s()),
        ]
        if e.partition is not None:
            gauges.append(("leases", "matches this worker trades (leases held)", float(len(e.partition.leases))))
            gauges.append(("workers_alive", "engine workers with a fresh heartbeat", float(len(e.partition.alive))))
        for name, doc, value in gauges:
            g = GaugeMetricFamily(f"courtside_engine_{name}", doc, labels=["worker"])
            g.add_metric([w], value)
            yield g
        headroom = GaugeMetricFamily(
            "courtside_engine_risk_headroom",
            "room left under each limit of this engine's book (exposure in money, counts in orders)",
            labels=["worker", "limit"],
        )
        for limit, room in (
            ("max_total_exposure", limits.max_total_exposure - risk.total_exposure()),
            ("max_open_orders", limits.max_open_orders - risk.live_order_count()),
            ("max_orders_per_hour", limits.max_orders_per_hour - risk.orders_placed_in_window(now)),
            ("daily_loss_limit", limits.daily_loss_limit + risk.day_low(now)),
            ("weekly_loss_limit", limits.weekly_loss_limit + risk.week_low(now)),
        ):
            headroom.add_metric([w, limit], float(room))
        yield headroom


def readiness(engine: TradingEngine) -> tuple[bool, str]:
    """Ready to trade: recovered after the start and connected to the feed."""
    if not engine.recovered:
        return False, "recovering after the start: replaying the feed up to the cursors"
    if engine.clients and not any(c.connected for c in engine.clients):
        return False, "no feed connection"
    return True, "recovered and following the feed"


def app(engine: TradingEngine) -> web.Application:
    registry = CollectorRegistry()
    registry.register(EngineCollector(engine))
    started = time.monotonic()

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "uptime_s": round(time.monotonic() - started, 1)})

    async def readyz(_: web.Request) -> web.Response:
        ready, why = readiness(engine)
        body: dict[str, Any] = {"ready": ready, "reason": why, "worker": engine.cfg.worker}
        return web.json_response(body, status=200 if ready else 503)

    @web.middleware
    async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            return web.json_response({"error": exc.reason, "status": exc.status}, status=exc.status)

    application = web.Application(middlewares=[json_errors])
    application.add_routes([web.get("/metrics", metrics), web.get("/healthz", healthz), web.get("/readyz", readyz)])
    return application


async def serve(engine: TradingEngine, host: str, port: int) -> web.AppRunner:
    """Start the endpoints in the running loop; the caller cleans the runner up."""
    runner = web.AppRunner(app(engine), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
