"""A feed replay server process for the tests: the first men's matches of one Grand Slam point log in
the shared data, published by the real ``ReplayServer`` (what ``python -m feeds.live`` runs, without the
pipeline's catalog, which these tests do not build).

    python -m tests.api.feed_process --port 8765 --year-slam 2012-wimbledon --matches 3 --rate 20
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from feeds.live.replay import build_feed
from feeds.live.server import ReplayServer
from tests.engine.fixtures import slam_rows


async def serve(args: argparse.Namespace) -> int:
    schedule, skipped = build_feed(
        slam_rows(args.year_slam, args.matches), stagger_s=args.stagger, prematch_lead_s=args.prematch_lead
    )
    if skipped:
        print(f"left out: {skipped}", flush=True)
    server = ReplayServer({"live": schedule}, rate=args.rate)
    port = await server.start("127.0.0.1", args.port)
    print(f"serving {len(schedule)} messages on ws://127.0.0.1:{port}/feeds/live/<match|market>", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--year-slam", default="2012-wimbledon")
    parser.add_argument("--matches", type=int, default=3)
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second")
    parser.add_argument("--stagger", type=float, default=0.0)
    parser.add_argument("--prematch-lead", type=float, default=60.0)
    return asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
