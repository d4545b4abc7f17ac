"""The live API / gateway replica's Prometheus metrics (``GET /metrics/prometheus``; ``/metrics`` stays the JSON
report people read). Read when scraped, from what the replica already counts: subscribers, rooms, messages and
frames sent, slow clients dropped, the log-to-send and fan-out latency percentiles, how far the replica has read
the event log, tail errors, whether its log listener is up, webhook deliveries. Names start ``courtside_api_``;
every series has the ``replica`` label (``GatewayConfig.replica``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class ApiCollector(Collector):
    """``read()`` returns the replica's figures: ``gateway`` (``Gateway.figures``), ``read_up_to``, ``newest``,
    ``tail_errors``, ``log_listener`` (``LiveService.listener_up``; optional), ``webhooks``
    (``WebhookDeliverer.figures``), ``request_ms`` (percentiles)."""

    def __init__(self, read: Callable[[], dict[str, Any]]):
        self.read = read

    def collect(self) -> Iterator[Metric]:
        f = self.read()
        g = f["gateway"]
        replica = str(g.get("replica") or "0")

        def gauge(name: str, doc: str, value: float | None, **labels: str) -> Metric:
            m = GaugeMetricFamily(f"courtside_api_{name}", doc, labels=["replica", *labels])
            if value is not None:
                m.add_metric([replica, *labels.values()], float(value))
            return m

        def counter(name: str, doc: str, value: float) -> Metric:
            m = CounterMetricFamily(f"courtside_api_{name}", doc, labels=["replica"])
            m.add_metric([replica], float(value))
            return m

        yield gauge("subscribers", "WebSocket clients connected", g["clients"])
        yield gauge("subscriptions", "room subscriptions", g["subscriptions"])
        yield gauge("rooms", "rooms with subscribers", g["rooms"])
        yield counter("connections", "WebSocket connections accepted", g["connections_total"])
        yield counter("messages", "updates published to rooms", g["messages"])
        yield counter("frames_written", "frames written to subscribers", g["frames_written"])
        yield counter("dropped_slow", "subscribers dropped for lagging", g["dropped_slow"])
        latency = GaugeMetricFamily(
            "courtside_api_latency_ms",
            "percentiles of the replica's latencies (log entry to send, fan-out of a flush, HTTP request handling)",
            labels=["replica", "what", "quantile"],
        )
        for what, figures in (
            ("log_to_send", g.get("log_to_send_ms")),
            ("fanout", g.get("fanout_ms")),
            ("request", f.get("request_ms")),
        ):
            for q in ("p50", "p99", "max"):
                value = (figures or {}).get(q)
                if value is not None:
                    latency.add_metric([replica, what, q], float(value))
        yield latency
        yield gauge("log_read_up_to", "the newest event-log entry this replica has read", f["read_up_to"])
        newest = f.get("newest")
        lag = None if newest is None else max(0, newest - f["read_up_to"])
        yield gauge("log_lag_entries", "event-log entries committed but not read yet by this replica", lag)
        yield counter("tail_errors", "failed reads of the event log", f["tail_errors"])
        listener = f.get("log_listener")  # LiveService.listener_up: None on SQLite (always polls)
        yield gauge(
            "log_listener_up",
            "1 while this replica is woken by the event log's Postgres notifications, 0 while it polls the log "
            "because its listening connection is down (no series on SQLite, which is always polled)",
            None if listener is None else float(bool(listener)),
        )
        hooks = f.get("webhooks") or {}
        delivering = hooks.get("delivering")
        yield gauge(
            "webhook_sender",
            "1 when this replica is the one that sends the webhooks",
            None if delivering is None else float(bool(delivering)),
        )
        for key in ("delivered", "failed_attempts", "errors"):
            if isinstance(hooks.get(key), int | float):
                yield counter(f"webhook_{key}", f"webhook deliveries: {key.replace('_', ' ')}", hooks[key])


def exposition(read: Callable[[], dict[str, Any]]) -> bytes:
    """The Prometheus text format of one scrape."""
    registry = CollectorRegistry()
    registry.register(ApiCollector(read))
    return generate_latest(registry)
