"""A sliding-window rate limit per client for the HTTP API (an ASGI middleware).

Each client (its address) may make ``limit`` requests in any ``window_s`` seconds: the times of its
requests inside the window are kept, so the limit holds over every window, not per fixed minute. A
request over the limit gets 429 with a JSON error and ``Retry-After`` (seconds until the oldest
request in the window leaves it). WebSocket connections are not counted here (the gateway runs on
its own port and limits what a connection may ask).
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send


@dataclass(frozen=True)
class RateLimit:
    """``limit`` requests per ``window_s`` seconds per client."""

    limit: int = 300
    window_s: float = 60.0

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """``"300/60"`` -> 300 requests per 60 s."""
        try:
            limit, window = text.split("/")
            parsed = cls(int(limit), float(window))
        except ValueError:
            raise ValueError(f"rate limit {text!r}: expected REQUESTS/SECONDS, e.g. 300/60") from None
        if parsed.limit < 1 or parsed.window_s <= 0:
            raise ValueError(f"rate limit {text!r}: both numbers must be positive")
        return parsed


class SlidingWindowLimiter:
    """Request times per client over the last window."""

    def __init__(self, rate: RateLimit, clock: Callable[[], float] = time.monotonic, max_clients: int = 100_000):
        self.rate = rate
        self.clock = clock
        self.max_clients = max_clients
        self._hits: dict[str, deque[float]] = {}
        self._next_sweep = 0.0

    def hit(self, client: str) -> float | None:
        """Count a request; None when allowed, else the seconds to wait."""
        now = self.clock()
        start = now - self.rate.window_s
        if now >= self._next_sweep or len(self._hits) > self.max_clients:
            self._sweep(start)
            self._next_sweep = now + self.rate.window_s
        hits = self._hits.setdefault(client, deque())
        while hits and hits[0] <= start:
            hits.popleft()
        if len(hits) >= self.rate.limit:
            return max(hits[0] - start, 0.001)
        hits.append(now)
        return None

    def _sweep(self, start: float) -> None:
        """Forget clients with no request in the window (bounded memory)."""
        for client in [c for c, h in self._hits.items() if not h or h[-1] <= start]:
            del self._hits[client]


class RateLimitMiddleware:
    """429 for clients over their limit; every other request passes through."""

    def __init__(self, app: ASGIApp, limiter: SlidingWindowLimiter):
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        client = scope.get("client")
        key = client[0] if client else "unknown"
        wait = self.limiter.hit(key)
        if wait is None:
            return await self.app(scope, receive, send)
        retry = max(1, math.ceil(wait))
        rate = self.limiter.rate
        body = json.dumps(
            {
                "error": "rate_limited",
                "message": f"more than {rate.limit} requests in {rate.window_s:g} s from {key}; retry in {retry} s",
                "detail": None,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"retry-after", str(retry).encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
