"""Live prices from the Betfair Exchange Stream API, on betfairlightweight: the market channel of the feed.

``BetfairPrices`` logs in (interactive, or with a certificate when ``BETFAIR_CERTS`` is set), finds the tennis
``MATCH_ODDS`` markets (``listMarketCatalogue``), asks ``resolve`` which followed match each one is (the
match's event key and which runner is "First Player"; a market it cannot resolve is not followed and is
listed with why), subscribes to their prices on the Exchange Stream API and publishes every market book as
the feed's market message (``historical.feed_update``: top of book, the market's real status and turn
in-play), so the engine trades real prices — on the paper exchange (``paper-live``) until real orders exist.

The stream runs betfairlightweight's own socket and cache in a thread (``streaming.ResubscribingStream``): when
the connection drops it subscribes again from the last ``initialClk``/``clk``, so no update is lost. Credentials
come from the environment only (``BETFAIR_APP_KEY``, ``BETFAIR_USERNAME``, ``BETFAIR_PASSWORD``, ``BETFAIR_CERTS``).
``BetfairEndpoints`` points the same library at another host (the local stand-in in tests).
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import betfairlightweight
import requests
from betfairlightweight import filters
from betfairlightweight.exceptions import BetfairError

from adapters.betfair.historical import MATCH_ODDS, TENNIS, TennisMarket, feed_update, pair_markets
from adapters.betfair.streaming import ResubscribingStream
from feeds.live.protocol import MarketUpdate

log = logging.getLogger(__name__)

ENV = ("BETFAIR_APP_KEY", "BETFAIR_USERNAME", "BETFAIR_PASSWORD")


class BetfairRefused(RuntimeError):
    """Betfair refused the credentials (or they are not set): retrying would not help."""


@dataclass(frozen=True)
class BetfairCredentials:
    app_key: str
    username: str
    password: str
    certs: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BetfairCredentials:
        env = os.environ if env is None else env
        missing = [name for name in ENV if not env.get(name)]
        if missing:
            raise BetfairRefused(f"set {', '.join(missing)} (and BETFAIR_CERTS for a certificate login)")
        return cls(env["BETFAIR_APP_KEY"], env["BETFAIR_USERNAME"], env["BETFAIR_PASSWORD"], env.get("BETFAIR_CERTS"))

    def __repr__(self) -> str:  # never the password in a log
        return f"BetfairCredentials(app_key={self.app_key[:4]}..., username={self.username!r})"


@dataclass(frozen=True)
class BetfairEndpoints:
    """Where betfairlightweight's calls go (default: Betfair's own hosts)."""

    identity: str | None = None
    """e.g. ``https://127.0.0.1:8443/api/`` (interactive and certificate login, keep-alive)."""
    api: str | None = None
    """e.g. ``https://127.0.0.1:8443/exchange/``."""
    stream_host: str | None = None
    stream_port: int = 443
    verify: str | bool = True
    """TLS verification of the HTTPS calls: True, or the certificate of a private host."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BetfairEndpoints:
        """Betfair's own hosts unless ``BETFAIR_IDENTITY_URL``, ``BETFAIR_API_URL``, ``BETFAIR_STREAM_HOST`` /
        ``BETFAIR_STREAM_PORT`` and ``BETFAIR_CA_CERT`` (the private host's certificate) name another — a stand-in
        or a proxy the user runs."""
        env = os.environ if env is None else env
        return cls(
            env.get("BETFAIR_IDENTITY_URL") or None,
            env.get("BETFAIR_API_URL") or None,
            env.get("BETFAIR_STREAM_HOST") or None,
            int(env.get("BETFAIR_STREAM_PORT") or 443),
            env.get("BETFAIR_CA_CERT") or True,
        )


def api_client(credentials: BetfairCredentials, endpoints: BetfairEndpoints = BetfairEndpoints()) -> Any:
    """betfairlightweight's ``APIClient``, pointed at ``endpoints``."""
    session = requests.Session()
    session.verify = endpoints.verify
    if endpoints.verify is not True:  # a private host's certificate: REQUESTS_CA_BUNDLE would override it
        session.trust_env = False
    client = betfairlightweight.APIClient(
        credentials.username,
        credentials.password,
        app_key=credentials.app_key,
        certs=credentials.certs,
        session=session,
    )
    if endpoints.identity:
        client.identity_uri = client.identity_cert_uri = endpoints.identity
    if endpoints.api:
        client.api_uri = endpoints.api
    return client


def login(client: Any, credentials: BetfairCredentials) -> None:
    """Certificate login when certificates are given, else interactive; a refusal raises ``BetfairRefused``."""
    try:
        client.login() if credentials.certs else client.login_interactive()
    except BetfairError as exc:
        raise BetfairRefused(f"Betfair login refused: {exc}") from None


def tennis_markets(client: Any, max_results: int = 200) -> list[TennisMarket]:
    """The tennis ``MATCH_ODDS`` markets on offer (``listMarketCatalogue``)."""
    catalogue = client.betting.list_market_catalogue(
        filter=filters.market_filter(event_type_ids=[TENNIS], market_type_codes=[MATCH_ODDS]),
        market_projection=["RUNNER_DESCRIPTION", "EVENT", "MARKET_START_TIME"],
        max_results=max_results,
    )
    out = []
    for c in catalogue:
        if len(c.runners) != 2:
            continue
        out.append(
            TennisMarket(
                c.market_id,
                c.event.name if c.event else c.market_name,
                c.market_start_time,
                tuple((int(r.selection_id), str(r.runner_name)) for r in c.runners),
                0,
            )
        )
    return out


Resolve = Callable[[TennisMarket], "tuple[str, dict[int, str]] | str"]
"""A market -> (the followed match's event key, selection id -> "First Player"/"Second Player"), or why not."""


def resolve_by_players(matches: Callable[[], Iterable[tuple[str, str, str, str]]], within_days: int = 1) -> Resolve:
    """A resolver against the matches a score feed follows — ``matches()`` gives (event key, date, first player,
    second player) — by both names (folded, or surname and first initial: "N. Djokovic" is "Novak Djokovic") and
    the day. No match, or more than one: not resolved, with why; nothing is guessed."""

    def resolve(market: TennisMarket) -> tuple[str, dict[int, str]] | str:
        rows = [
            {"event_key": key, "event_date": day, "player1": first, "player2": second}
            for key, day, first, second in matches()
        ]
        paired, unpaired = pair_markets([market], rows, timedelta(days=within_days))
        if market.market_id in paired:
            row, labels = paired[market.market_id]
            return str(row["event_key"]), labels
        return f"{market.event_name}: {unpaired[market.market_id]} among the followed matches"

    return resolve


Publish = Callable[[MarketUpdate, float], Any]


@dataclass
class BetfairPrices:
    """Betfair's tennis prices as the feed's market messages (see the module docstring)."""

    credentials: BetfairCredentials
    resolve: Resolve
    publish: Publish
    endpoints: BetfairEndpoints = BetfairEndpoints()
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    rediscover_s: float = 60.0
    """How often the markets on offer are listed again (new matches, a score feed that follows more)."""
    rng: random.Random = field(default_factory=random.Random)
    followed: dict[str, tuple[str, dict[int, str]]] = field(default_factory=dict)
    """Betfair market id -> (event key, labels)."""
    unresolved: dict[str, str] = field(default_factory=dict)
    """Markets not followed, with why (the review list)."""
    published: int = 0
    refused: int = 0
    _error: str | None = None

    def __post_init__(self) -> None:
        self.client = api_client(self.credentials, self.endpoints)
        self._stop = threading.Event()
        self._started = time.monotonic()
        self.stream = ResubscribingStream(
            self.client,
            self._subscribe,
            "prices",
            self.endpoints.stream_host,
            self.endpoints.stream_port,
            self.rng,
            self.backoff_base_s,
            self.backoff_cap_s,
        )

    @property
    def connections(self) -> int:
        return self.stream.connections

    @property
    def resubscriptions(self) -> int:
        return self.stream.resubscriptions

    @property
    def last_error(self) -> str | None:
        return self._error or self.stream.last_error

    def discover(self) -> dict[str, tuple[str, dict[int, str]]]:
        """Log in (the first time) and resolve the tennis markets on offer to followed matches; a market newly
        resolved makes the stream subscribe again, from scratch, with it."""
        if self.client.session_token is None:
            login(self.client, self.credentials)
        else:  # the session lives while it is used: keep it alive, or log in again if it lapsed
            try:
                self.client.keep_alive()
            except BetfairError:
                login(self.client, self.credentials)
        before = set(self.followed)
        self.unresolved.clear()
        for market in tennis_markets(self.client):
            if market.market_id in self.followed:
                continue
            found = self.resolve(market)
            if isinstance(found, str):
                self.unresolved[market.market_id] = found
            else:
                self.followed[market.market_id] = found
        if set(self.followed) != before and self.stream.connections:
            self.stream.restart_fresh()  # a new subscription with them all, their images
        return self.followed

    # --- the stream, in a thread ------------------------------------------------------------------
    def _subscribe(self, stream: Any, initial_clk: str | None, clk: str | None) -> None:
        stream.subscribe_to_markets(
            market_filter=filters.streaming_market_filter(market_ids=sorted(self.followed)),
            market_data_filter=filters.streaming_market_data_filter(
                fields=["EX_BEST_OFFERS", "EX_MARKET_DEF", "EX_TRADED_VOL"], ladder_levels=1
            ),
            initial_clk=initial_clk,
            clk=clk,
        )

    async def run(self) -> None:
        """Follow the markets until ``stop()``: the stream in a thread, its books published here."""
        if not self.followed:
            self.discover()
        self.stream.start()
        loop = asyncio.get_running_loop()
        listed = time.monotonic()
        try:
            while not self._stop.is_set():
                if time.monotonic() - listed > self.rediscover_s:
                    listed = time.monotonic()
                    try:
                        await loop.run_in_executor(None, self.discover)
                    except (BetfairError, BetfairRefused) as exc:
                        self._error = f"listing markets: {exc}"
                try:
                    books = await loop.run_in_executor(None, self.stream.output.get, True, 0.2)
                except queue.Empty:
                    continue
                for book in books:
                    self._publish(book)
        finally:
            self.stop()

    def _publish(self, book: Any) -> None:
        found = self.followed.get(book.market_id)
        if found is None:
            return
        key, labels = found
        try:
            update = feed_update(book, key, labels)
        except ValueError as exc:  # a book the feed protocol refuses: counted, the stream goes on
            self.refused += 1
            log.warning("Betfair book of %s refused: %s", book.market_id, exc)
            return
        self.publish(update, time.monotonic() - self._started)
        self.published += 1

    def drop(self) -> None:
        """Close the socket now (as a network cut would); the stream subscribes again from its clk."""
        self.stream.drop()

    def stop(self) -> None:
        self._stop.set()
        self.stream.stop()
