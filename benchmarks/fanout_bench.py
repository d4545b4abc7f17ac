"""WebSocket fan-out: 10,000 subscribers on one match (a benchmark, not a test; ``make bench`` runs it).

    uv run --frozen python -m benchmarks.fanout_bench [--subscribers 10000] [--client-procs 2]
        [--points 60] [--points-per-s 1] [--output fanout.json]

What runs (every part real, each in its own process as in production):

- the live API process ``python -m serving.api`` (REST API, dashboard and the WebSocket gateway in
  one asyncio loop) on a SQLite event log in a temporary folder;
- this process: the streaming engine (``serving.engine.engine.TradingEngine``) fed the real point
  log of one Grand Slam match from ``../shared/data/slam_pbp`` (its simulated in-play market
  included), ``--points-per-s`` points a second, committing to the event log as in production. Its
  predictions come from a stub that returns the pre-match prior (no prediction service: this is
  about delivery, not models);
- ``--client-procs`` client processes holding ``--subscribers`` WebSocket connections between them,
  all subscribed to that match's room. The clients are minimal (raw frames over asyncio, ~5 µs a
  message) so that the figures are the server's, not a slow client library's.

Figures (targets from ../shared/docs/PERFORMANCE.md, ``benchmarks.targets``: each update to all subscribers
within 250 ms p99, server memory <= 300 MB):

- **delivery latency**: for every message and every subscriber, client receive time minus the
  ``sent`` time the gateway stamped when it wrote the message (both ``time.time()`` on this machine):
  p50, p99, max over all (message, subscriber) pairs;
- **all-delivered latency**: per message, the time until its *last* subscriber had it: p50, p99, max
  over messages (the target's "each update delivered to all");
- **log to send** (server side, from ``/metrics``): entry committed to the event log -> message sent;
  this adds the tail poll interval and the coalescing wait (at most one flush per 1/rate_hz s);
- **memory**: resident set size of the API process before the clients, with every subscriber
  connected, and its peak while updates flow (sampled every 0.2 s);
- completeness: messages received / (messages sent x subscribers), and clients dropped (close codes).

The machine's load average is printed with the figures: other processes share the two cores.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import atexit
import base64
import contextlib
import json
import os
import platform
import resource
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from benchmarks import targets
from benchmarks.live_bench import Children, feed_rows, free_port
from courtside.settings import PROJECT_ROOT

TARGETS = {"all_delivered_p99_ms": targets.FANOUT_P99_MS, "rss_mb": targets.FANOUT_RSS_MB}


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- the client process ---------------------------------------------------------------------------
class _Recorder:
    def __init__(self) -> None:
        self.seq = array.array("i")
        self.latency_ms = array.array("f")
        self.subscribed = 0
        self.failed: list[str] = []
        self.closed: dict[str, int] = {}
        self.all_subscribed = asyncio.get_running_loop().create_future()
        self.expected = 0

    def done_one(self, ok: bool, why: str = "") -> None:
        if ok:
            self.subscribed += 1
        else:
            self.failed.append(why)
        if self.subscribed + len(self.failed) >= self.expected and not self.all_subscribed.done():
            self.all_subscribed.set_result(None)


def _number(payload: bytes, key: bytes) -> bytes | None:
    i = payload.find(key)
    if i < 0:
        return None
    i += len(key)
    j = i
    while j < len(payload) and payload[j] not in b",}":
        j += 1
    return payload[i:j]


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    mask = secrets.token_bytes(4)
    n = len(payload)
    head = bytes([0x80 | opcode, 0x80 | n]) if n < 126 else bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


class _WsClient(asyncio.Protocol):
    """A minimal WebSocket client: handshake, one subscribe, then frames read as they come."""

    def __init__(self, host: str, port: int, room: str, rec: _Recorder):
        self.request = (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(secrets.token_bytes(16)).decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.subscribe = json.dumps({"type": "subscribe", "match_id": room}).encode()
        self.rec = rec
        self.buf = bytearray()
        self.open = False
        self.acked = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc) -> None:
        if not self.acked:
            self.acked = True
            self.rec.done_one(False, f"connection lost before the subscription: {exc}")

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.buf += data
        if not self.open:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in self.buf[:end]:
                self.acked = True
                self.rec.done_one(False, bytes(self.buf[:60]).decode(errors="replace"))
                self.transport.close()
                return
            del self.buf[: end + 4]
            self.open = True
            self.transport.write(_masked_frame(1, self.subscribe))
        buf = self.buf
        while len(buf) >= 2:
            opcode, n, off = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, off = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, off = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < off + n:
                return
            payload = bytes(buf[off : off + n])
            del buf[: off + n]
            if opcode == 1:
                self.on_text(payload, now)
            elif opcode == 9:
                self.transport.write(_masked_frame(10, payload))
            elif opcode == 8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                key = f"{code} {payload[2:].decode(errors='replace')}"
                self.rec.closed[key] = self.rec.closed.get(key, 0) + 1
                self.transport.close()
                return

    def on_text(self, payload: bytes, now: float) -> None:
        if not self.acked:
            if payload.startswith(b'{"type":"subscribed"'):
                self.acked = True
                self.rec.done_one(True)
            return
        sent = _number(payload, b'"sent":')
        if sent is None:
            return  # heartbeat
        self.rec.seq.append(int(_number(payload, b'"seq":')))
        self.rec.latency_ms.append((now - float(sent)) * 1000.0)


async def _client_main(args: argparse.Namespace) -> int:
    raise_fd_limit()
    rec = _Recorder()
    rec.expected = args.count
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(args.connect_concurrency)
    transports = []

    async def connect_one() -> None:
        async with gate:
            for attempt in range(5):
                try:
                    t, _ = await loop.create_connection(
                        lambda: _WsClient(args.host, args.port, args.room, rec), args.host, args.port
                    )
                    transports.append(t)
                    return
                except OSError as exc:
                    if attempt == 4:
                        rec.done_one(False, f"connect: {exc}")
                    await asyncio.sleep(0.2 * (attempt + 1))

    t0 = time.monotonic()
    await asyncio.gather(*(connect_one() for _ in range(args.count)))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(rec.all_subscribed, timeout=180)
    print(
        json.dumps(
            {
                "subscribed": rec.subscribed,
                "failed": len(rec.failed),
                "failures": rec.failed[:3],
                "seconds": round(time.monotonic() - t0, 2),
            }
        ),
        flush=True,
    )
    stop = asyncio.Event()
    loop.add_reader(sys.stdin.fileno(), stop.set)
    await stop.wait()
    out = Path(args.results)
    np.savez(
        out, seq=np.frombuffer(rec.seq, dtype=np.int32), latency_ms=np.frombuffer(rec.latency_ms, dtype=np.float32)
    )
    out.with_suffix(".json").write_text(json.dumps({"closed": rec.closed, "subscribed": rec.subscribed}))
    for t in transports:
        t.close()
    print("done", flush=True)
    return 0


# --- the parent ---------------------------------------------------------------------------------
def _get(url: str, timeout: float = 5.0) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    except OSError:
        return 0, {}


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Sampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop_flag = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, _rss_mb(self.pid))
            time.sleep(0.2)


def _match_envelopes(points: int):
    """The real feed of one Grand Slam match: its first ``points`` points with their market messages."""
    from feeds.live.replay import build_feed
    from tests.engine.fixtures import envelopes_of

    rows = feed_rows(10, 0)
    row = next((r for r in rows if len(r["point_winner"]) >= points), max(rows, key=lambda r: len(r["point_winner"])))
    schedule, skipped = build_feed([row], stagger_s=0, prematch_lead_s=60)
    if skipped:
        raise RuntimeError(f"the benchmark match was rejected: {skipped}")
    envelopes = envelopes_of(schedule)
    start = next(i for i, e in enumerate(envelopes) if e.channel == "match")
    # batches: everything up to and including the match start, then one batch per point (the point and
    # the market messages after it)
    batches, current = [envelopes[: start + 1]], []
    for env in envelopes[start + 1 :]:
        if env.channel == "match" and current and any(e.channel == "match" for e in current):
            batches.append(current)
            current = []
            if len(batches) > points:
                break
        current.append(env)
    return envelopes[start].data.event_key, batches


async def _stub_predict(states: list[dict]) -> list[dict]:
    return [
        {
            "probability": s["prematch_probability"],
            "prematch_probability": s["prematch_probability"],
            "model_name": "prior (fan-out benchmark stub)",
            "model_version": "-",
        }
        for s in states
    ]


def _dist(values: np.ndarray) -> dict:
    if len(values) == 0:
        return {"n": 0}
    return {
        "n": int(len(values)),
        "p50": round(float(np.percentile(values, 50)), 1),
        "p99": round(float(np.percentile(values, 99)), 1),
        "max": round(float(values.max()), 1),
    }


def run(args: argparse.Namespace) -> dict:
    from serving.engine.engine import EngineConfig, TradingEngine
    from storage.db import make_engine, migrate

    files = raise_fd_limit()
    children = Children()
    atexit.register(children.stop_all)
    result: dict = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "targets": TARGETS,
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "open_files": files},
        "args": vars(args),
        "load_average_start": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="fanout_bench-") as tmp:
        work = Path(tmp)
        url = f"sqlite:///{work / 'live.db'}"
        db = make_engine(url)
        migrate(db)
        match_id, batches = _match_envelopes(args.points)
        engine = TradingEngine(EngineConfig(), db, _stub_predict)

        async def feed(batch) -> None:
            await engine.process([(time.perf_counter(), e) for e in batch])
            await engine.commit(wait=True)

        loop = asyncio.new_event_loop()
        loop.run_until_complete(feed(batches[0]))

        port, ws_port = free_port(), free_port()
        env = {**os.environ, "COURTSIDE_DATABASE_URL": url, "COURTSIDE_HOME": str(work)}
        env.pop("COURTSIDE_API_TOKEN", None)
        api_log = (work / "api.log").open("wb")
        api = children.start(
            [
                sys.executable,
                "-m",
                "serving.api",
                "--port",
                str(port),
                "--ws-port",
                str(ws_port),
                "--rate-hz",
                str(args.rate_hz),
                "--no-access-log",
            ],
            env=env,
            stdout=api_log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while _get(f"http://127.0.0.1:{port}/live/games/{match_id}/state")[0] != 200:
            if api.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start: {(work / 'api.log').read_text()[-2000:]}")
            time.sleep(0.3)
        time.sleep(1.0)
        result["rss_mb"] = {"idle": round(_rss_mb(api.pid), 1)}
        print(
            f"API up (pid {api.pid}, RSS {result['rss_mb']['idle']:.0f} MB); match {match_id}; connecting "
            f"{args.subscribers} subscribers from {args.client_procs} processes ...",
            flush=True,
        )

        share = [
            args.subscribers // args.client_procs + (i < args.subscribers % args.client_procs)
            for i in range(args.client_procs)
        ]
        clients = []
        for i, count in enumerate(share):
            clients.append(
                children.start(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.fanout_bench",
                        "--client",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(ws_port),
                        "--room",
                        match_id,
                        "--count",
                        str(count),
                        "--results",
                        str(work / f"client{i}.npz"),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        connected = [json.loads(c.stdout.readline() or "{}") for c in clients]
        subscribed = sum(c.get("subscribed", 0) for c in connected)
        result["connect"] = {
            "subscribed": subscribed,
            "failed": sum(c.get("failed", 0) for c in connected),
            "failures": [f for c in connected for f in c.get("failures", [])][:5],
            "seconds": max((c.get("seconds", 0) for c in connected), default=0),
        }
        time.sleep(2.0)
        result["rss_mb"]["connected"] = round(_rss_mb(api.pid), 1)
        print(
            f"{subscribed} subscribed in {result['connect']['seconds']:.1f} s (RSS "
            f"{result['rss_mb']['connected']:.0f} MB); {len(batches) - 1} points at {args.points_per_s:g}/s ...",
            flush=True,
        )

        sampler = _Sampler(api.pid)
        sampler.start()
        cpu0, t0 = _cpu_s(api.pid), time.monotonic()
        for i, batch in enumerate(batches[1:]):
            loop.run_until_complete(feed(batch))
            time.sleep(max(0.0, t0 + (i + 1) / args.points_per_s - time.monotonic()))
        time.sleep(3.0)
        elapsed = time.monotonic() - t0
        sampler.stop_flag.set()
        result["rss_mb"]["peak"] = round(sampler.peak, 1)
        result["api_cpu_share"] = round((_cpu_s(api.pid) - cpu0) / elapsed, 2)
        _, metrics = _get(f"http://127.0.0.1:{port}/metrics", timeout=30)
        gateway = metrics.get("gateway", {})
        result["server"] = {
            "messages": gateway.get("messages"),
            "frames_written": gateway.get("frames_written"),
            "dropped_slow": gateway.get("dropped_slow"),
            "log_to_send_ms": gateway.get("log_to_send_ms"),
            "fanout_ms": gateway.get("fanout_ms"),
        }
        for c in clients:
            c.stdin.write("stop\n")
            c.stdin.flush()
        for c in clients:
            c.stdout.readline()
        seqs, lats, closed = [], [], {}
        for i in range(len(clients)):
            data = np.load(work / f"client{i}.npz")
            seqs.append(data["seq"])
            lats.append(data["latency_ms"])
            for k, v in json.loads((work / f"client{i}.json").read_text())["closed"].items():
                closed[k] = closed.get(k, 0) + v
        seq, lat = np.concatenate(seqs), np.concatenate(lats).astype(float)
        messages = np.unique(seq)
        per_message = np.array([lat[seq == s].max() for s in messages]) if len(messages) else np.array([])
        expected = len(messages) * subscribed
        result["delivery_ms"] = _dist(lat)
        result["all_delivered_ms"] = _dist(per_message)
        result["messages"] = {
            "distinct": int(len(messages)),
            "received": int(len(lat)),
            "expected": int(expected),
            "complete": round(len(lat) / expected, 6) if expected else None,
            "closed_by_server": closed,
        }
        result["load_average_end"] = os.getloadavg()
        children.stop_all()
        api_log.close()
        if engine._writer is not None:  # the engine's commit task, as engine.run leaves it
            engine._writer.cancel()
            loop.run_until_complete(asyncio.gather(engine._writer, return_exceptions=True))
        loop.close()
        db.dispose()
    return result


def report(r: dict) -> str:
    d, a, s, m = r["delivery_ms"], r["all_delivered_ms"], r["server"], r["messages"]
    rss = r["rss_mb"]
    ok = (
        a.get("p99", 1e9) <= TARGETS["all_delivered_p99_ms"]
        and rss["peak"] <= TARGETS["rss_mb"]
        and m["complete"] == 1.0
    )
    lag = s.get("log_to_send_ms") or {}
    fan = s.get("fanout_ms") or {}
    return "\n".join(
        [
            "| figure | p50 | p99 | max | target |",
            "|---|---|---|---|---|",
            f"| delivery, message sent -> received, {d['n']:,} (message, subscriber) pairs | {d['p50']} ms | "
            f"{d['p99']} ms | {d['max']} ms | |",
            f"| all delivered: message sent -> last of {r['connect']['subscribed']:,} subscribers has it "
            f"({a['n']} messages) | {a['p50']} ms | **{a['p99']} ms** | {a['max']} ms | "
            f"p99 <= {TARGETS['all_delivered_p99_ms']:.0f} ms |",
            f"| server: one flush written to every subscriber | {fan.get('p50')} ms | {fan.get('p99')} ms | "
            f"{fan.get('max')} ms | |",
            f"| server: event-log commit -> message sent (tail poll + coalescing wait) | {lag.get('p50')} ms | "
            f"{lag.get('p99')} ms | {lag.get('max')} ms | |",
            "",
            f"API process RSS: idle {rss['idle']} MB, {r['connect']['subscribed']:,} subscribers connected "
            f"{rss['connected']} MB, **peak {rss['peak']} MB** (target <= {TARGETS['rss_mb']:.0f} MB); "
            f"API CPU {r['api_cpu_share']} "
            f"cores while updates flowed",
            f"messages received {m['received']:,} of {m['expected']:,} ({m['complete']}); closed by the server: "
            f"{m['closed_by_server'] or 'none'}; subscribe failures {r['connect']['failed']}; connecting took "
            f"{r['connect']['seconds']} s",
            f"load average at start {r['load_average_start'][0]:.2f}, at end {r['load_average_end'][0]:.2f} (2 cores, "
            f"shared)",
            f"{'OK: targets met' if ok else 'TARGET MISSED'}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fanout_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--points", type=int, default=60, help="points of the match to replay")
    parser.add_argument("--points-per-s", type=float, default=1.0)
    parser.add_argument("--rate-hz", type=float, default=4.0, help="the gateway's flushes per second per room")
    parser.add_argument("--output", help="write the figures as JSON here")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--room", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--results", help=argparse.SUPPRESS)
    parser.add_argument("--connect-concurrency", type=int, default=200, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        import uvloop

        return uvloop.run(_client_main(args))
    os.chdir(PROJECT_ROOT)
    result = run(args)
    print("\n" + report(result), flush=True)
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2, default=str))
        print(f"figures written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
