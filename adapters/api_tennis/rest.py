"""API-Tennis REST (``https://api.api-tennis.com/tennis/?method=...&APIkey=KEY``): fixtures, pre-match odds and in-play
odds, guarded — the vendor's plans cap calls a day and a month, and an outage must not become a storm of retries.

- ``SlidingQuota``: calls counted over sliding windows (a day, a month; limits configurable); a call that would go
  over is refused before it is sent (``QuotaExceeded``, with the window and the count).
- A response cache: each method's answers are kept for a time (fixtures minutes, odds seconds), so asking twice
  costs one call.
- A circuit breaker (``purgatory``): after ``breaker_threshold`` failures in a row (timeouts, 5xx, malformed
  answers) calls are refused at once (``ApiTennisUnavailable``) for ``breaker_ttl_s``, then one is tried again.
  A refused key is not a failure of the service: it raises ``ApiTennisRefused`` and never opens the circuit.

``odds_updates`` turns ``get_odds`` into the feed's market messages: one per bookmaker and match, its price on
the exchange ladder (rounded down for a back: a bookmaker's 1.83 is not a ladder price), the bookmaker in the
message's source (``api-tennis:<bookmaker>``).
"""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from adapters.api_tennis.live import ApiTennisRefused, ApiTennisSettings
from betting.ladder import InvalidPrice, round_to_tick
from betting.records import Side
from feeds.live.protocol import MarketUpdate, RunnerPrices

DAY_S, MONTH_S = 86_400.0, 30 * 86_400.0
CACHE_S = {"get_fixtures": 300.0, "get_odds": 30.0, "get_live_odds": 5.0, "get_livescore": 2.0}
"""How long each method's answers are kept."""


class QuotaExceeded(RuntimeError):
    """A call would go over the plan's limit: not sent."""


class ApiTennisUnavailable(RuntimeError):
    """The service failed (or its circuit is open): nothing to do but wait."""


@dataclass
class SlidingQuota:
    """Calls over sliding windows: ``limits`` are (window seconds, most calls in it)."""

    limits: tuple[tuple[float, int], ...] = ((DAY_S, 1000), (MONTH_S, 20_000))
    clock: Callable[[], float] = time.time
    calls: deque = field(default_factory=deque)

    def take(self) -> None:
        """Count one call now, or raise ``QuotaExceeded`` (nothing counted)."""
        now = self.clock()
        longest = max(w for w, _ in self.limits)
        while self.calls and self.calls[0] <= now - longest:
            self.calls.popleft()
        for window, most in self.limits:
            used = sum(1 for t in self.calls if t > now - window)
            if used >= most:
                raise QuotaExceeded(f"{used} API-Tennis calls in the last {window / 3600:g} h: the limit is {most}")
        self.calls.append(now)


@dataclass
class ApiTennisRest:
    settings: ApiTennisSettings
    session: aiohttp.ClientSession
    quota: SlidingQuota = field(default_factory=SlidingQuota)
    breaker_threshold: int = 5
    breaker_ttl_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    counts: Counter = field(default_factory=Counter)
    """calls, cache hits, failures, refused by the quota or the open circuit."""

    def __post_init__(self) -> None:
        self._cache: dict[str, tuple[float, Any]] = {}
        self._breakers = AsyncCircuitBreakerFactory(
            default_threshold=self.breaker_threshold, default_ttl=self.breaker_ttl_s, exclude=[ApiTennisRefused]
        )

    async def call(self, method: str, **params: Any) -> Any:
        """The ``result`` of one REST method (cached for ``CACHE_S[method]``)."""
        key = json.dumps([method, sorted(params.items())], default=str)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > self.clock():
            self.counts["cache hits"] += 1
            return cached[1]
        try:
            self.quota.take()
        except QuotaExceeded:
            self.counts["refused: quota"] += 1
            raise
        try:
            async with await self._breakers.get_breaker("api-tennis-rest"):
                result = await self._get(method, params)
        except OpenedState:
            self.counts["refused: circuit open"] += 1
            raise ApiTennisUnavailable("API-Tennis REST: the circuit is open after repeated failures") from None
        self._cache[key] = (self.clock() + CACHE_S.get(method, 10.0), result)
        return result

    async def _get(self, method: str, params: dict) -> Any:
        self.counts["calls"] += 1
        query = urlencode({"method": method, **params, "APIkey": self.settings.key})
        timeout = aiohttp.ClientTimeout(total=self.settings.rest_timeout_s)
        try:
            async with self.session.get(f"{self.settings.rest_url}?{query}", timeout=timeout) as response:
                text = await response.text()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.counts["failures"] += 1
            raise ApiTennisUnavailable(f"{method}: {type(exc).__name__}: {exc}") from None
        if status >= 500:
            self.counts["failures"] += 1
            raise ApiTennisUnavailable(f"{method}: HTTP {status}")
        try:
            answer = json.loads(text)
        except ValueError:
            self.counts["failures"] += 1
            raise ApiTennisUnavailable(f"{method}: not JSON: {text[:120]!r}") from None
        if isinstance(answer, dict) and str(answer.get("error", "0")) not in ("0", ""):
            detail = answer.get("result")
            if "credentials" in str(detail).lower() or "apikey" in str(detail).lower():
                raise ApiTennisRefused(f"API-Tennis refused the key: {detail}")
            self.counts["failures"] += 1
            raise ApiTennisUnavailable(f"{method}: {detail}")
        return answer.get("result") if isinstance(answer, dict) else answer

    async def fixtures(self, date_start: str, date_stop: str) -> Any:
        return await self.call("get_fixtures", date_start=date_start, date_stop=date_stop)

    async def odds(self, match_key: str | None = None) -> Any:
        return await self.call("get_odds", **({"match_key": match_key} if match_key else {}))

    async def live_odds(self) -> Any:
        return await self.call("get_live_odds")


def odds_updates(result: dict, event_keys: Callable[[str], str | None]) -> Iterable[MarketUpdate]:
    """``get_odds``'s answer as the feed's market messages: for each match (``event_keys`` maps the vendor's match
    key to ours; None: not followed) and bookmaker with both players' "Home/Away" prices."""
    for match_key, markets in (result or {}).items():
        key = event_keys(str(match_key))
        home_away = (markets or {}).get("Home/Away") if isinstance(markets, dict) else None
        if key is None or not isinstance(home_away, dict):
            continue
        home, away = home_away.get("Home") or {}, home_away.get("Away") or {}
        for bookmaker in sorted(set(home) & set(away)):
            try:
                prices = [
                    round_to_tick(float(home[bookmaker]), Side.BACK),
                    round_to_tick(float(away[bookmaker]), Side.BACK),
                ]
            except (InvalidPrice, TypeError, ValueError):
                continue  # a price below the ladder, or not a number: that bookmaker's line is left out
            yield MarketUpdate(
                event_key=key,
                market_id=f"odds-{key}",
                status="OPEN",
                in_play=False,
                simulated=False,
                source=f"api-tennis:{bookmaker}"[:64],
                runners=[
                    RunnerPrices(selection="First Player", back_price=prices[0], back_size=100.0),
                    RunnerPrices(selection="Second Player", back_price=prices[1], back_size=100.0),
                ],
            )
