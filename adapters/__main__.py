"""The live feed from real venues, for the engine (in place of the replay server): API-Tennis's scores on the
``match`` channel and, with ``--prices betfair``, the Betfair Exchange's prices on the ``market`` channel — paper
trading on live prices (the engine's exchange stays the paper one: no real order exists yet).

    API_TENNIS_KEY=... python -m adapters [--port 8765] [--tours atp,wta]              # scores only: no trading
    API_TENNIS_KEY=... BETFAIR_APP_KEY=... BETFAIR_USERNAME=... BETFAIR_PASSWORD=... \\
        python -m adapters --prices betfair                                             # paper-live
    python -m adapters --standin 3 [--speed 30]     # no credentials: 3 real matches through both local stand-ins

The engine follows it as it follows the replay (``python -m serving.engine --feed live``). Every raw API-Tennis
push is recorded under ``<COURTSIDE_HOME>/feeds/api-tennis/<UTC day>.jsonl``. With ``--standin`` the in-play
prices are the simulated market's, played in Betfair's protocol: a demonstration of the plumbing, not of a strategy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import signal
import time
from datetime import UTC, datetime

from adapters.api_tennis.identity import LiveIdentity
from adapters.api_tennis.live import ApiTennisIngress, ApiTennisRefused, ApiTennisSettings, RawRecorder
from adapters.api_tennis.standin import ApiTennisStandIn
from adapters.betfair.prices import (
    BetfairCredentials,
    BetfairEndpoints,
    BetfairPrices,
    BetfairRefused,
    resolve_by_players,
)
from adapters.betfair.standin import BetfairStandIn
from adapters.standins import PlayedMatch, played_match
from courtside.settings import Settings
from feeds.live.catalog import slam_log_rows
from feeds.live.server import ReplayServer
from storage.db import make_engine, migrate

log = logging.getLogger("adapters")


def _standin_matches(n: int) -> list[PlayedMatch]:
    settings = Settings.from_env()
    rows = []
    for row in slam_log_rows(settings.data_dir, "2012-wimbledon", min_points=60):
        rows.append(row)
        if len(rows) == n:
            break
    return [played_match(row, 900 + i, f"1.9000000{i:02d}") for i, row in enumerate(rows)]


def _identity() -> LiveIdentity | None:
    """The live identity of the players, when the pipeline's warehouse is there (else ids stay empty)."""
    settings = Settings.from_env()
    if not (settings.warehouse_dir / "matches.parquet").exists():
        log.warning("no warehouse at %s: players are not identified (run the pipeline first)", settings.warehouse_dir)
        return None
    db = make_engine(settings.database_url)
    migrate(db)
    return LiveIdentity.from_warehouse(settings.warehouse_dir, db)


async def run(args: argparse.Namespace) -> int:
    home = Settings.from_env().home
    feed = ReplayServer({args.feed: []})
    port = await feed.start(args.host, args.port, publish=False)
    started = time.monotonic()
    clock = [0.0]
    standin_at: ApiTennisStandIn | None = None
    standin_bf: BetfairStandIn | None = None
    matches: list[PlayedMatch] = []
    if args.standin:
        matches = _standin_matches(args.standin)
        standin_at = ApiTennisStandIn([m.snapshots for m in matches])
        at_port = await standin_at.start()
        standin_bf = BetfairStandIn([m.market for m in matches]).start()
        at_settings = ApiTennisSettings(
            key=standin_at.key, ws_url=f"ws://127.0.0.1:{at_port}/live", rest_url=f"http://127.0.0.1:{at_port}/tennis/"
        )
        base = f"https://127.0.0.1:{standin_bf.https_port}"
        credentials = BetfairCredentials(standin_bf.app_key, standin_bf.username, standin_bf.password)
        endpoints = BetfairEndpoints(
            f"{base}/api/", f"{base}/exchange/", "127.0.0.1", standin_bf.stream_port, str(standin_bf.cert)
        )
        args.prices = "betfair"
    else:
        overrides = {"tours": frozenset(t.strip().lower() for t in args.tours.split(","))} if args.tours else {}
        try:
            at_settings = ApiTennisSettings.from_env(**overrides)
            if args.prices == "betfair":
                credentials, endpoints = BetfairCredentials.from_env(), BetfairEndpoints.from_env()
        except (ApiTennisRefused, BetfairRefused) as exc:
            log.error("%s", exc)
            await feed.stop()
            return 2

    def now() -> float:
        return clock[0] if args.standin else time.monotonic() - started

    recorder = RawRecorder(home / "feeds" / "api-tennis" / f"{datetime.now(UTC).date().isoformat()}.jsonl")
    identity = _identity()
    ingress = ApiTennisIngress(
        at_settings,
        lambda m, _t: feed.publish(args.feed, "match", m, now()),
        recorder,
        rng=random.Random(),
        identity=identity,
    )
    tasks = [asyncio.create_task(ingress.run())]
    prices = None
    if args.prices == "betfair":
        prices = BetfairPrices(
            credentials,
            resolve_by_players(
                lambda: [  # a match whose players are not identified is followed without trading: no market
                    match for match in ingress.translator.followed() if identity is None or identity.tradable(match[0])
                ]
            ),
            lambda u, _t: feed.publish(args.feed, "market", u, now()),
            endpoints,
            rediscover_s=5.0 if args.standin else 60.0,
        )
    log.info(
        "live feed on ws://%s:%d/feeds/%s/<match|market>: scores from API-Tennis%s; %s",
        args.host,
        port,
        args.feed,
        " (local stand-in)" if args.standin else "",
        "prices from Betfair (paper trading on them)" if prices else "no prices (nothing is traded)",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if prices is not None:
        tasks.append(asyncio.create_task(prices.run()))
    if standin_at is not None and standin_bf is not None:
        tasks.append(asyncio.create_task(_play(matches, standin_at, standin_bf, clock, args.speed)))
    try:
        await stop.wait()
    finally:
        if prices is not None:
            prices.stop()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        recorder.close()
        await feed.stop()
        if standin_at is not None:
            await standin_at.stop()
        if standin_bf is not None:
            standin_bf.stop()
        log.info(
            "stopped: scores %s; %d match messages; %s",
            dict(ingress.translator.counts),
            ingress.published,
            f"{prices.published} market messages, not followed: {prices.unresolved}" if prices else "no prices",
        )
    return 0


async def _play(
    matches: list[PlayedMatch], at: ApiTennisStandIn, bf: BetfairStandIn, clock: list[float], speed: float
) -> None:
    """The stand-ins play the matches one after another on the feed's clock, ``speed`` times real time."""
    loop = asyncio.get_running_loop()
    while not at.clients:
        await asyncio.sleep(0.1)
    offset = 100.0
    for index, match in enumerate(matches):
        first = match.order[0][0]
        for seconds, kind in match.order:
            target = offset + seconds - first
            await asyncio.sleep(max(0.0, (target - clock[0]) / speed))
            clock[0] = max(clock[0], target)
            if kind == "at":
                await at.push_next(index)
            else:
                await loop.run_in_executor(None, bf.advance_market, match.market.market_id)
        offset = clock[0] + 60.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m adapters", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--feed", default="live")
    parser.add_argument("--prices", choices=["none", "betfair"], default="none")
    parser.add_argument("--tours", help="atp, wta, challenger, itf (default API_TENNIS_TOURS or atp,wta)")
    parser.add_argument("--standin", type=int, default=0, help="play this many real matches through both stand-ins")
    parser.add_argument("--speed", type=float, default=30.0, help="stand-in: times real time")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
