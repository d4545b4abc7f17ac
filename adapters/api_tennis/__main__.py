"""API-Tennis's live scores as the feed the engine follows (in place of the replay server).

    API_TENNIS_KEY=... python -m adapters.api_tennis [--port 8765] [--feed live] [--tours atp,wta]
    python -m adapters.api_tennis --standin 4     # no key: 4 real ATP matches through a local stand-in

Publishes the match messages on ``ws://127.0.0.1:<port>/feeds/<feed>/match`` with sequence numbers, so the
engine (``python -m serving.engine --feed live``) resumes as it does on the replay; every raw push is
recorded under ``<COURTSIDE_HOME>/feeds/api-tennis/<UTC day>.jsonl``. No prices come with it: the engine
trades a match only where a market is published for it (the Betfair adapter's job, not built yet).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import signal
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from adapters.api_tennis.live import ApiTennisIngress, ApiTennisRefused, ApiTennisSettings, RawRecorder
from adapters.api_tennis.standin import ApiTennisStandIn
from adapters.api_tennis.vendor import VendorMatch, snapshots, vendor_name
from courtside.settings import Settings
from features.replays import replay_pbp_points
from features.scoring import Score, ScoringError, match_format
from feeds.live.server import ReplayServer

log = logging.getLogger("adapters.api_tennis")


def _standin_matches(n: int, seed: int = 0) -> list[list[dict]]:
    """``n`` real ATP matches of the shared point-by-point data as the vendor's snapshots."""
    path = Path(Settings.from_env().data_dir) / "pbp" / "pbp_matches_atp_main_archive.csv.gz"
    raw = pd.read_csv(path).sample(n * 3, random_state=seed)
    out: list[list[dict]] = []
    for i, row in enumerate(raw.itertuples()):
        fmt = match_format(str(row.tny_name), 2015, 3)
        try:
            scores, _ = replay_pbp_points(str(row.pbp), fmt, first_server=0)
        except ScoringError:
            continue
        vm = VendorMatch(
            12_000_000 + i,
            datetime.now(UTC).date().isoformat(),
            vendor_name(str(row.server1)),
            4000 + i,
            vendor_name(str(row.server2)),
            5000 + i,
            "Atp Singles",
            str(row.tny_name),
            200 + i,
            str(datetime.now(UTC).year),
        )
        out.append(snapshots(vm, Score.start(fmt, 0), scores))
        if len(out) == n:
            break
    return out


async def run(args: argparse.Namespace) -> int:
    home = Settings.from_env().home
    standin = None
    if args.standin:
        standin = ApiTennisStandIn(_standin_matches(args.standin))
        port = await standin.start()
        settings = ApiTennisSettings(
            key=standin.key, ws_url=f"ws://127.0.0.1:{port}/live", rest_url=f"http://127.0.0.1:{port}/tennis/"
        )
        log.info("stand-in: %d real ATP matches on 127.0.0.1:%d (no key needed)", args.standin, port)
    else:
        overrides = {"tours": frozenset(t.strip().lower() for t in args.tours.split(","))} if args.tours else {}
        try:
            settings = ApiTennisSettings.from_env(**overrides)
        except ApiTennisRefused as exc:
            log.error("%s", exc)
            return 2
    server = ReplayServer({args.feed: []})
    port = await server.start(args.host, args.port, publish=False)
    recorder = RawRecorder(home / "feeds" / "api-tennis" / f"{datetime.now(UTC).date().isoformat()}.jsonl")
    ingress = ApiTennisIngress(
        settings, lambda m, t: server.publish(args.feed, "match", m, t), recorder, rng=random.Random()
    )
    log.info(
        "API-Tennis (%s) -> ws://%s:%d/feeds/%s/match", ", ".join(sorted(settings.tours)), args.host, port, args.feed
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(ingress.run())]
    if standin is not None:
        tasks.append(asyncio.create_task(standin.play(args.standin_interval)))
    status = 0
    try:
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([tasks[0], waiter], return_when=asyncio.FIRST_COMPLETED)
        if tasks[0] in done and tasks[0].exception() is not None:
            log.error("%s", tasks[0].exception())
            status = 2
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        recorder.close()
        await server.stop()
        if standin is not None:
            await standin.stop()
        log.info("stopped: %s; %d messages published", dict(ingress.translator.counts), ingress.published)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m adapters.api_tennis", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--feed", default="live")
    parser.add_argument(
        "--tours", help="comma-separated: atp, wta, challenger, itf (default API_TENNIS_TOURS or atp,wta)"
    )
    parser.add_argument("--standin", type=int, default=0, help="play this many real matches through a local stand-in")
    parser.add_argument("--standin-interval", type=float, default=1.0, help="seconds between the stand-in's pushes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
