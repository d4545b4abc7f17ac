"""The API-Tennis live push, followed: WebSocket in, the feed's sequenced match messages out.

``ApiTennisIngress`` connects to ``wss://wss.api-tennis.com/live?APIkey=KEY`` (the key from
``API_TENNIS_KEY``; the URLs are settings, so a local stand-in can take their place), records every raw
push as it arrives (one JSON line each: when, from where, the text — so a day replays exactly:
``replay_recorded``), turns the snapshots into match messages (``snapshots.SnapshotTranslator``) and
publishes each on the feed server's ``match`` channel, where it gets its sequence number and the engine
resumes from it as from the replay.

The push has no resume: after every reconnect the ingress asks ``get_livescore`` (REST) for the matches'
snapshots, so what happened while it was away becomes resyncs (never invented points). It reconnects with
jittered exponential backoff (full jitter: a random wait up to min(cap, base * 2^attempt)). A wrong key
is not retried: the vendor's refusal stops the ingress with its message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from adapters.api_tennis.snapshots import DEFAULT_TOURS, SnapshotTranslator
from feeds.live.protocol import MatchEvent

log = logging.getLogger(__name__)

WS_URL = "wss://wss.api-tennis.com/live"
REST_URL = "https://api.api-tennis.com/tennis/"
KEY_ENV = "API_TENNIS_KEY"


class ApiTennisRefused(RuntimeError):
    """The vendor refused the key (or the request): retrying would not help."""


@dataclass(frozen=True)
class ApiTennisSettings:
    key: str
    ws_url: str = WS_URL
    rest_url: str = REST_URL
    tours: frozenset[str] = DEFAULT_TOURS
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    rest_timeout_s: float = 10.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> ApiTennisSettings:
        env = dict(os.environ) if env is None else env
        key = env.get(KEY_ENV, "").strip()
        if not key:
            raise ApiTennisRefused(f"set {KEY_ENV} to your API-Tennis key to follow its live scores")
        tours = env.get("API_TENNIS_TOURS")
        if tours:
            overrides.setdefault("tours", frozenset(t.strip().lower() for t in tours.split(",") if t.strip()))
        overrides.setdefault("ws_url", env.get("API_TENNIS_WS_URL", WS_URL))
        overrides.setdefault("rest_url", env.get("API_TENNIS_REST_URL", REST_URL))
        return cls(key=key, **overrides)


def backoff_s(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff: a uniform wait in [0, min(cap, base * 2^attempt)]."""
    return rng.uniform(0.0, min(cap, base * 2 ** min(attempt, 30)))


@dataclass
class RawRecorder:
    """Every raw push and REST answer, one JSON line each, flushed as it comes (a day replays exactly)."""

    path: Path

    def __post_init__(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def record(self, source: str, text: str) -> None:
        line = {"received_at": datetime.now(UTC).isoformat(), "source": source, "raw": text}
        self._file.write(json.dumps(line) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def replay_recorded(path: Path, tours: frozenset[str] = DEFAULT_TOURS) -> tuple[list[MatchEvent], SnapshotTranslator]:
    """The match messages a recorded day gives, through the same translator, in the same order."""
    translator = SnapshotTranslator(tours=tours)
    out: list[MatchEvent] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.extend(translator.translate(json.loads(line)["raw"]))
    return out, translator


Publish = Callable[[MatchEvent, float], Any]
"""Where a match message goes: (message, the feed's clock in seconds) -> ... (e.g. ``ReplayServer.publish``)."""


@dataclass
class ApiTennisIngress:
    """The live push followed (see the module docstring); ``run()`` until ``stop()`` or a refused key."""

    settings: ApiTennisSettings
    publish: Publish
    recorder: RawRecorder | None = None
    rng: random.Random = field(default_factory=random.Random)
    identity: Any = None
    """``adapters.api_tennis.identity.LiveIdentity``: the players of each match start given our ids (None: not)."""
    translator: SnapshotTranslator = field(init=False)
    connections: int = 0
    reconnects: int = 0
    resync_requests: int = 0
    pushes: int = 0
    published: int = 0
    last_error: str | None = None

    def __post_init__(self) -> None:
        self.translator = SnapshotTranslator(tours=self.settings.tours)
        self._started = time.monotonic()
        self._stopping = asyncio.Event()

    def _clock(self) -> float:
        return time.monotonic() - self._started

    def _take(self, source: str, text: str) -> int:
        if self.recorder is not None:
            self.recorder.record(source, text)
        messages = self.translator.translate(text)
        for message in messages:
            if message.kind == "match_start" and self.identity is not None:
                message = self.identity.identify(message, self.translator.matches[message.event_key].vendor_keys)
            self.publish(message, self._clock())
        self.published += len(messages)
        return len(messages)

    async def resync(self, session: aiohttp.ClientSession) -> int:
        """``get_livescore``: every live match's snapshot (after a reconnect); returns the messages it gave."""
        self.resync_requests += 1
        query = urlencode({"method": "get_livescore", "APIkey": self.settings.key})
        timeout = aiohttp.ClientTimeout(total=self.settings.rest_timeout_s)
        async with session.get(f"{self.settings.rest_url}?{query}", timeout=timeout) as response:
            text = await response.text()
        answer = json.loads(text)
        if isinstance(answer, dict) and str(answer.get("error", "0")) not in ("0", "") and "result" in answer:
            raise ApiTennisRefused(f"get_livescore refused: {answer['result']}")
        return self._take("rest:get_livescore", text)

    async def run(self) -> None:
        attempt = 0
        url = f"{self.settings.ws_url}?{urlencode({'APIkey': self.settings.key})}"
        async with aiohttp.ClientSession() as session:
            while not self._stopping.is_set():
                try:
                    async with connect(url, open_timeout=10, max_size=2**24) as ws:
                        self.connections += 1
                        if self.connections > 1:
                            self.reconnects += 1
                            await self.resync(session)
                        attempt = 0
                        async for raw in ws:
                            self.pushes += 1
                            self._take("ws", raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))
                            if self._stopping.is_set():
                                break
                except InvalidStatus as exc:
                    status = exc.response.status_code
                    if status in (401, 403):
                        raise ApiTennisRefused(f"API-Tennis refused the key (HTTP {status})") from None
                    self.last_error = f"HTTP {status}"
                except (OSError, ConnectionClosed, TimeoutError, aiohttp.ClientError, ValueError) as exc:
                    self.last_error = f"{type(exc).__name__}: {exc}"
                if self._stopping.is_set():
                    break
                wait = backoff_s(attempt, self.settings.backoff_base_s, self.settings.backoff_cap_s, self.rng)
                attempt += 1
                log.warning("API-Tennis push lost (%s); reconnecting in %.2f s", self.last_error, wait)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=wait)

    def stop(self) -> None:
        self._stopping.set()
