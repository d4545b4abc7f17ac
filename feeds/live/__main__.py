"""The feed replay server as a process: real matches from the replay catalog published as a live
WebSocket feed (``make up`` starts it).

    python -m feeds.live [--port 8765] [--matches 16] [--speed 30] [--source slam]

Grand Slam point logs are replayed at their real timing divided by ``--speed``; each match's real
closing odds open ``--prematch-lead`` feed seconds before its first point and close when play
starts; the in-play market is SIMULATED (see ``feeds.live.market``). The server keeps serving
(resume by sequence number) after the last match until it is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

import pandas as pd

from courtside.settings import Settings
from feeds.live.catalog import choose
from feeds.live.replay import build_feed
from feeds.live.server import ReplayServer
from training.windows import compact

log = logging.getLogger("feeds.live")


async def serve(args: argparse.Namespace) -> int:
    if args.matches < 1:
        log.error("--matches must be at least 1")
        return 2
    names = {"atp": ["replay_catalog.parquet"], "wta": ["wta_replay_catalog.parquet"]}
    names["both"] = names["atp"] + names["wta"]
    paths = [Path(args.catalog)] if args.catalog else [Settings.from_env().warehouse_dir / n for n in names[args.tour]]
    for path in paths:
        if not path.exists():
            log.error("no replay catalog at %s: run the pipeline first (make up does)", path)
            return 2
    # both tours: the matches shared between them (the men's first when the count is odd)
    counts = [args.matches - args.matches // 2, args.matches // 2] if len(paths) == 2 else [args.matches]
    chosen = [choose(pd.read_parquet(path), args.source, n) for path, n in zip(paths, counts, strict=True)]
    rows = pd.concat(chosen, ignore_index=True) if len(chosen) > 1 else chosen[0]
    if "window" in rows.columns and len(rows):
        log.info(
            "replay seasons %s (the pipeline's windows): %s",
            compact(int(s) for s in rows["season"]),
            rows["window"].fillna("outside the windows").value_counts().to_dict(),
        )
    schedule, skipped = build_feed(rows.to_dict("records"), stagger_s=args.stagger, prematch_lead_s=args.prematch_lead)
    for key, reason in skipped:
        log.warning("left out match %s: %s", key, reason)
    server = ReplayServer({args.feed: schedule}, speed=args.speed, rate=args.rate)
    port = await server.start(args.host, args.port)
    span = (schedule[-1].at - schedule[0].at) / args.speed if schedule else 0.0
    log.info(
        "replaying %d matches (%d messages, ~%.0f s at speed %g) on ws://%s:%d/feeds/%s/<match|market>",
        len(rows) - len(skipped),
        len(schedule),
        span,
        args.speed,
        args.host,
        port,
        args.feed,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    done = asyncio.create_task(server.done.wait())
    await asyncio.wait([done, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    if server.done.is_set():
        log.info(
            "replay finished; still serving for resuming clients until stopped. Start another replay with "
            "`courtside up --skip-pipeline` (options: --speed N, --matches N, --tour atp|wta|both)"
        )
        await stop.wait()
    await server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m feeds.live", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--catalog", help="replay catalog parquet (default: the pipeline's)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--feed", default="live", help="feed name in the URL")
    parser.add_argument("--source", default="slam", choices=["slam", "pbp"])
    parser.add_argument(
        "--tour",
        default="atp",
        choices=["atp", "wta", "both"],
        help="whose matches: the men's catalog, the women's Grand Slam singles (source slam), or half of each",
    )
    parser.add_argument("--matches", type=int, default=16)
    parser.add_argument("--speed", type=float, default=30.0, help="replay speed factor (1 = real time)")
    parser.add_argument("--rate", type=float, default=None, help="messages per second instead of real timing")
    parser.add_argument("--stagger", type=float, default=600.0, help="feed seconds between match starts")
    parser.add_argument(
        "--prematch-lead",
        type=float,
        default=1200.0,
        help="feed seconds the pre-match market is open before the first point",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
