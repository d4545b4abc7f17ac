"""Both venue stand-ins around one feed server, as a trader's machine would have them: the API-Tennis stand-in
pushing a real match's snapshots to the ingress (``adapters.api_tennis.live``), the Betfair stand-in playing its
market to ``BetfairPrices`` (betfairlightweight's own client and stream), both publishing into one feed server an
engine follows — in this process or as its own. ``play()`` plays the match in its own order, a step at a time."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import text

from adapters.api_tennis.live import ApiTennisIngress, ApiTennisSettings
from adapters.api_tennis.standin import ApiTennisStandIn
from adapters.betfair.prices import BetfairCredentials, BetfairEndpoints, BetfairPrices, resolve_by_players
from adapters.betfair.standin import BetfairStandIn
from adapters.standins import PlayedMatch
from feeds.live.server import ReplayServer


async def until(condition: Callable[[], Any], timeout_s: float = 30.0, state: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out ({state()})"
        await asyncio.sleep(0.01)


class Venues:
    def __init__(self, played: PlayedMatch, **betfair: Any) -> None:
        self.played = played
        self.now = 0.0
        """The feed's clock: the match's own timeline (the bet delay runs between its points)."""
        self.feed = ReplayServer({"live": []}, heartbeat_s=0.2)
        self.at_standin = ApiTennisStandIn([played.snapshots])
        self.bf = BetfairStandIn([played.market], **betfair)
        self.tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> Venues:
        self.feed_port = await self.feed.start(publish=False)
        at_port = await self.at_standin.start()
        self.ingress = ApiTennisIngress(
            ApiTennisSettings(
                key="test-key", ws_url=f"ws://127.0.0.1:{at_port}/live", rest_url=f"http://127.0.0.1:{at_port}/tennis/"
            ),
            lambda m, _t: self.feed.publish("live", "match", m, self.now),
            rng=random.Random(0),
        )
        self.bf.start()
        base = f"https://127.0.0.1:{self.bf.https_port}"
        self.endpoints = BetfairEndpoints(
            f"{base}/api/", f"{base}/exchange/", "127.0.0.1", self.bf.stream_port, str(self.bf.cert)
        )
        self.prices = BetfairPrices(
            BetfairCredentials(self.bf.app_key, self.bf.username, self.bf.password),
            resolve_by_players(self.ingress.translator.followed),
            lambda u, _t: self.feed.publish("live", "market", u, self.now),
            self.endpoints,
        )
        self.tasks.append(asyncio.create_task(self.ingress.run()))
        return self

    @property
    def feed_url(self) -> str:
        return f"ws://127.0.0.1:{self.feed_port}"

    def betfair_env(self) -> dict[str, str]:
        """What a live engine process needs to reach this Betfair (credentials, the explicit switch, endpoints)."""
        return {
            "COURTSIDE_REAL_MONEY": "yes-real-orders",
            "BETFAIR_APP_KEY": self.bf.app_key,
            "BETFAIR_USERNAME": self.bf.username,
            "BETFAIR_PASSWORD": self.bf.password,
            "BETFAIR_IDENTITY_URL": str(self.endpoints.identity),
            "BETFAIR_API_URL": str(self.endpoints.api),
            "BETFAIR_STREAM_HOST": "127.0.0.1",
            "BETFAIR_STREAM_PORT": str(self.bf.stream_port),
            "BETFAIR_CA_CERT": str(self.bf.cert),
        }

    def published(self) -> dict[str, int]:
        """Messages published on each channel (of the one feed, ``live``), as the engine's cursors name them."""
        return {c: len(ch.published) for (_, c), ch in self.feed.channels.items()}

    async def play(self, between: Callable[[], Awaitable[None]], state: Callable[[], str] = str) -> None:
        """Every step of the match (a snapshot pushed, or a market message played), ``between()`` before each;
        the market is resolved and subscribed when its match is followed; returns when every price is out."""
        loop = asyncio.get_running_loop()
        await until(lambda: self.at_standin.clients, state=state)
        played_at = played_bf = 0
        for at, kind in self.played.order:
            await asyncio.sleep(0)
            await between()
            self.now = max(self.now, 100.0 + at)
            if kind == "at":
                await self.at_standin.tick()
                played_at += 1
                await until(lambda n=played_at: self.ingress.pushes >= n, state=state)
                if played_at == 1:  # the match is followed: now its market resolves to it
                    await loop.run_in_executor(None, self.prices.discover)
                    assert self.prices.followed and not self.prices.unresolved
                    self.tasks.append(asyncio.create_task(self.prices.run()))
                    await until(lambda: self.bf.subscriptions, state=state)
            else:
                await loop.run_in_executor(None, self.bf.advance, 1)
                played_bf += 1
                if self.prices.followed and self.bf.subscriptions:
                    await until(lambda n=played_bf: self.prices.published >= n, state=state)
        await until(lambda: self.prices.published >= len(self.played.updates), state=state)

    async def __aexit__(self, *exc: object) -> None:
        self.prices.stop()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.feed.stop()
        await self.at_standin.stop()
        self.bf.stop()


def ledger(db) -> list[tuple]:
    """The ledger's orders (not the refused): reference, side, price, size, matched, cancelled, lapsed."""
    with db.connect() as conn:
        rows = conn.execute(
            text(
                "select customer_order_ref, side, price, size, size_matched, payload from orders"
                " where status <> 'REJECTED'"
            )
        )
        return sorted((*r[:5], json.loads(r[5])["size_cancelled"], json.loads(r[5])["size_lapsed"]) for r in rows)


def exchange_book(bf: BetfairStandIn) -> list[tuple]:
    """What the stand-in's exchange has, in the ledger's terms."""
    return sorted(
        (o.customer_order_ref, str(o.side), o.price, o.size, o.size_matched, o.size_cancelled, o.size_lapsed)
        for o in bf.exchange.orders()
        if str(o.status) != "REJECTED"
    )
