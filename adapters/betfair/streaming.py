"""One Exchange Stream API subscription kept alive: the rule both streams (prices, ``mcm``; orders, ``ocm``) follow.

``ResubscribingStream`` runs betfairlightweight's own socket and cache in a thread. When the connection drops it
subscribes again with the last ``initialClk``/``clk`` the cache saw, so Betfair sends only what was missed
(``RESUB_DELTA``) into the same cache and no update is lost; the waits between attempts are jittered and grow
(``backoff_base_s * 2**attempt``, capped) until a connection stays up ``STABLE_S``. Any error of one connection
(Betfair's, the socket's, TLS) is retried: the thread only ends at ``stop()``. ``restart_fresh()`` drops the
clks: a new subscription, full images
(e.g. the market filter changed). What the stream produces goes to ``output`` (betfairlightweight's resources).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from betfairlightweight import StreamListener
from betfairlightweight.exceptions import BetfairError

log = logging.getLogger(__name__)

STABLE_S = 10.0
"""A connection that lasted this long was up: the backoff starts again from its shortest wait."""

Subscribe = Callable[[Any, "str | None", "str | None"], Any]
"""(the library's stream, initial clk, clk) -> subscribes it (``subscribe_to_markets`` / ``subscribe_to_orders``)."""


class ResubscribingStream:
    def __init__(
        self,
        client: Any,
        subscribe: Subscribe,
        name: str,
        stream_host: str | None = None,
        stream_port: int = 443,
        rng: random.Random | None = None,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        order_updates_only: bool = False,
        first_id: int = 0,
    ) -> None:
        self.client = client
        self.subscribe = subscribe
        self.name = name
        self.stream_host, self.stream_port = stream_host, stream_port
        self.rng = rng or random.Random()
        self.backoff_base_s, self.backoff_cap_s = backoff_base_s, backoff_cap_s
        self.output: queue.Queue = queue.Queue()
        self._listener = StreamListener(
            output_queue=self.output, max_latency=None, order_updates_only=order_updates_only
        )
        self._first_id = first_id
        self._stop = threading.Event()
        self._fresh = False
        self._stream: Any = None
        self._thread: threading.Thread | None = None
        self.connections = 0
        self.resubscriptions = 0
        self.last_error: str | None = None
        self.subscribed = threading.Event()
        """Set while a subscription runs (requested on a live socket); cleared when the socket is lost."""

    def start(self) -> ResubscribingStream:
        self._thread = threading.Thread(target=self.run, name=f"betfair-{self.name}", daemon=True)
        self._thread.start()
        return self

    def run(self) -> None:
        """Blocks until ``stop()``: subscribe, follow, and subscribe again from the clk after every drop."""
        attempt = 0
        initial_clk = clk = None
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self.connections += 1
                if clk is not None:
                    self.resubscriptions += 1
                stream = self.client.streaming.create_stream(
                    listener=self._listener, unique_id=self._first_id + self.connections * 100
                )
                if self.stream_host:
                    stream.host = self.stream_host
                    stream._BetfairStream__port = self.stream_port  # the library's socket, another host
                self._stream = stream
                self.subscribe(stream, initial_clk, clk)
                # with both clks the library keeps the listener's cache (only the subscription id changes), and
                # Betfair's RESUB_DELTA brings it up to date from where it stood
                if stream.running and not self._stop.is_set() and not self._fresh:  # not dropped meanwhile
                    self.subscribed.set()
                    stream.start()  # blocks until the socket fails or stop()
            except (BetfairError, OSError) as exc:  # a refused connection, DNS, TLS: retried like a drop
                self.last_error = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # noqa: BLE001 - the thread must outlive anything one connection raises
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("Betfair %s stream failed unexpectedly; subscribing again", self.name)
            finally:
                self.subscribed.clear()
            if time.monotonic() - began > STABLE_S:
                attempt = 0  # it ran: the next wait starts short again
            cache = getattr(self._listener, "stream", None)
            if self._fresh:
                self._fresh = False
                initial_clk = clk = None
                continue
            if cache is not None:  # where the cache stands: Betfair resends what came after
                initial_clk = cache._initial_clk or initial_clk
                clk = cache._clk or clk
            if self._stop.is_set():
                break
            wait = self.rng.uniform(0.0, min(self.backoff_cap_s, self.backoff_base_s * 2**attempt))
            attempt += 1
            log.warning(
                "Betfair %s stream lost (%s); subscribing again in %.2f s from clk %s",
                self.name,
                self.last_error,
                wait,
                clk,
            )
            self._stop.wait(wait)

    def restart_fresh(self) -> None:
        """Subscribe again from scratch (full images), e.g. with other markets."""
        self._fresh = True
        self.drop()

    def drop(self) -> None:
        """Close the socket now (as a network cut would); the stream subscribes again from its clk."""
        if self._stream is not None:
            self._stream.stop()

    def stop(self, join_s: float = 5.0) -> None:
        self._stop.set()
        self.drop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=join_s)
