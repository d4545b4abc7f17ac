"""WebSocket fan-out: 10,000 subscribers on one match on one gateway process, or 50,000 across gateway replicas,
each beside raw ``websockets.broadcast`` of the same messages to the same clients (a benchmark, not a test;
``make bench`` runs the first).

    uv run --frozen python -m benchmarks.fanout_bench [--subscribers 10000] [--client-procs 2]
        [--points 60] [--points-per-s 1] [--output fanout.json]
    uv run --frozen python -m benchmarks.fanout_bench --replicas 3 --subscribers 50000 [--client-procs 4]
        [--baseline-procs 3] [--output fanout-replicas.json]

What runs (every part real, each in its own process as in production):

- the live API: ``python -m serving.api`` (REST API, dashboard and the WebSocket gateway in one asyncio
  loop), or with ``--replicas N`` ``python -m serving.api --replicas N`` (N such processes sharing the ports
  with SO_REUSEPORT, each tailing the log), on a SQLite event log in a temporary folder;
- this process: the streaming engine (``serving.engine.engine.TradingEngine``) fed the real point
  log of one Grand Slam match from ``../shared/data/slam_pbp`` (its simulated in-play market
  included), ``--points-per-s`` points a second, committing to the event log as in production. Its
  predictions come from a stub that returns the pre-match prior (no prediction service: this is
  about delivery, not models);
- ``--client-procs`` client processes holding ``--subscribers`` WebSocket connections between them,
  all subscribed to that match's room. The clients are minimal (raw frames over asyncio, ~5 µs a
  message) so that the figures are the server's, not a slow client library's. Each client process
  connects from its own loopback address (127.0.0.2, .3, ...): one source address has ~28,000 ephemeral
  ports towards one server port. A handshake answered 503 (a replica full) is tried again;
- the baseline, in the same run, after the gateway (``--no-baseline`` skips it): ``--baseline-procs``
  plain ``websockets`` servers (default: as many as replicas; SO_REUSEPORT when several) that answer the
  subscribe and ``websockets.broadcast`` the messages one subscriber got from the gateway, flush by flush
  at the same moments, to the same number of clients of the same client processes.

Figures (targets from ../shared/docs/PERFORMANCE.md, ``benchmarks.targets``: one process, each update to all
10,000 subscribers within 250 ms p99, server memory <= 300 MB; replicas: 50,000 subscribers, within 1.5x of
raw broadcast):

- **delivery latency**: for every message and every subscriber, client receive time minus the
  ``sent`` time the server stamped when it began writing the message's flush (both ``time.time()`` on this
  machine): p50, p99, max over all (message, subscriber) pairs;
- **all-delivered latency**: per message of a server (its ``sent`` stamp), the time until the last of that
  server's subscribers had it: p50, p99, max over messages (the target's "each update delivered to all");
  with replicas also per update (seq) over every replica: first ``sent`` -> last subscriber anywhere;
- **log to send** (server side, from ``/metrics``): entry committed to the event log -> message sent;
  this adds the tail poll interval and the coalescing wait (at most one flush per 1/rate_hz s);
- **memory**: resident set size of each API process (replica) before the clients, with every subscriber
  connected, and its peak while updates flow (sampled every 0.2 s); CPU share of each;
- completeness: every subscriber of a server must get every message that server sent (replicas flush
  their own batches: the subscribers of one replica get one stream; a subscriber whose stream misses
  messages of its replica's counts them as lost), in order, once; clients dropped (close codes); where
  the subscribers stop when fewer than asked connect, and why (handshake answers, connect errors).

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
import re
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
from typing import TYPE_CHECKING

from benchmarks import targets

if TYPE_CHECKING:
    import numpy as np

    from benchmarks.live_bench import Children

# numpy, the engine and the parent's helpers are imported where used: the baseline server stays a plain
# websockets process (its memory is the baseline's)

TARGETS = {"all_delivered_p99_ms": targets.FANOUT_P99_MS, "rss_mb": targets.FANOUT_RSS_MB}
REPLICA_TARGETS = {
    "subscribers": targets.FANOUT_REPLICAS_SUBSCRIBERS,
    "vs_broadcast_p99": targets.FANOUT_VS_BROADCAST,
}
PER_CLIENT_PROC = 12_500
"""Subscribers per client process by default (each is an open file: the hard limit here is 20,000)."""


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- the client process ---------------------------------------------------------------------------
MAX_TRIES = 6
"""Handshakes tried per subscriber (a 503 of a full replica, a refused or reset connection, then again)."""
HANDSHAKE_TIMEOUT_S = 60.0


class _Recorder:
    def __init__(self) -> None:
        self.conn = array.array("i")
        self.seq = array.array("q")
        self.sent = array.array("d")
        self.recv = array.array("d")
        self.subscribed = 0
        self.failed: dict[str, int] = {}
        self.retried: dict[str, int] = {}
        self.closed: dict[str, int] = {}
        self.probe: list[bytes] = []
        """The update messages subscriber 0 received, as sent (what the baseline broadcasts)."""


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
    """A minimal WebSocket client: handshake, one subscribe, then frames read as they come. ``outcome`` says how
    the subscription went: "ok", or why not ("retry: ..." worth another try, "fail: ...")."""

    def __init__(self, host: str, port: int, room: str, rec: _Recorder, index: int):
        self.request = (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(secrets.token_bytes(16)).decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.subscribe = json.dumps({"type": "subscribe", "match_id": room}).encode()
        self.rec = rec
        self.index = index
        self.probe = index == 0
        self.buf = bytearray()
        self.open = False
        self.outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def _settle(self, outcome: str) -> None:
        if not self.outcome.done():
            self.outcome.set_result(outcome)

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc) -> None:
        self._settle(f"retry: connection lost before the subscription ({exc or 'closed by the server'})")

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.buf += data
        if not self.open:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end])
            if b" 101 " not in head.split(b"\r\n", 1)[0]:
                status = head.split(b"\r\n", 1)[0].decode(errors="replace")
                body = bytes(self.buf[end + 4 :])[:160].decode(errors="replace")
                self._settle(f"{'retry' if ' 503 ' in status else 'fail'}: {status} {body}".strip())
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
        if not self.outcome.done():
            if payload.startswith(b'{"type":"subscribed"'):
                self._settle("ok")
            return
        sent = _number(payload, b'"sent":')
        if sent is None:
            return  # heartbeat
        rec = self.rec
        rec.conn.append(self.index)
        rec.seq.append(int(_number(payload, b'"seq":')))
        rec.sent.append(float(sent))
        rec.recv.append(now)
        if self.probe:
            rec.probe.append(payload)


def _reason(why: str) -> str:
    """A failure's kind, its numbers left out (so that the same kind is counted once)."""
    return re.sub(r"\d+", "N", why)[:160]


async def _client_main(args: argparse.Namespace) -> int:
    import numpy as np

    raise_fd_limit()
    rec = _Recorder()
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(args.connect_concurrency)
    transports: list[asyncio.BaseTransport] = []
    local = (args.source, 0) if args.source else None

    async def connect_one(index: int) -> None:
        async with gate:
            why = ""
            for attempt in range(MAX_TRIES):
                if attempt:
                    key = _reason(why)
                    rec.retried[key] = rec.retried.get(key, 0) + 1
                    await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
                try:
                    t, proto = await loop.create_connection(
                        lambda: _WsClient(args.host, args.port, args.room, rec, index),
                        args.host,
                        args.port,
                        local_addr=local,
                    )
                except OSError as exc:
                    why = f"retry: connect: {exc.strerror or exc}"
                    continue
                try:
                    why = await asyncio.wait_for(asyncio.shield(proto.outcome), HANDSHAKE_TIMEOUT_S)
                except TimeoutError:
                    why = f"fail: no answer to the handshake within {HANDSHAKE_TIMEOUT_S:.0f} s"
                if why == "ok":
                    transports.append(t)
                    rec.subscribed += 1
                    return
                t.close()
                if why.startswith("fail"):
                    break
            key = _reason(why)
            rec.failed[key] = rec.failed.get(key, 0) + 1

    t0 = time.monotonic()
    await asyncio.gather(*(connect_one(i) for i in range(args.count)))
    print(
        json.dumps(
            {
                "subscribed": rec.subscribed,
                "failed": sum(rec.failed.values()),
                "failures": rec.failed,
                "retried": rec.retried,
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
        out,
        conn=np.frombuffer(rec.conn, dtype=np.int32),
        seq=np.frombuffer(rec.seq, dtype=np.int64),
        sent=np.frombuffer(rec.sent, dtype=np.float64),
        recv=np.frombuffer(rec.recv, dtype=np.float64),
    )
    out.with_suffix(".json").write_text(
        json.dumps({"closed": rec.closed, "subscribed": rec.subscribed, "probe": [p.decode() for p in rec.probe]})
    )
    for t in transports:
        t.close()
    print("done", flush=True)
    return 0


# --- the baseline server: a plain websockets server and websockets.broadcast ------------------------
async def _baseline_main(args: argparse.Namespace) -> int:
    """Answers the subscribe of every client, then (on "go T0" on stdin) broadcasts each flush of the schedule
    (``--schedule``: [[seconds after T0, [message, ...]], ...]) with ``websockets.broadcast``, one message at a
    time, the flush's messages stamped with the time it began (as the gateway stamps a flush)."""
    from websockets.asyncio.server import broadcast, serve

    files = raise_fd_limit()
    limit = max(64, files - 256)
    schedule = json.loads(Path(args.schedule).read_text())
    subscribers: set = set()
    ack = json.dumps(
        {
            "type": "subscribed",
            "room": args.room,
            "match_id": args.room,
            "session": "baseline",
            "seq": 0,
            "resumed": False,
            "replayed": 0,
            "gap": None,
            "snapshot": [],
        },
        separators=(",", ":"),
    )

    def admit(conn, request):
        if len(conn.server.handler_tasks) > limit:  # as the gateway: no more than the open files allow
            return conn.respond(503, f"full: at most {limit} connections\n")
        return None

    async def handler(ws) -> None:
        try:
            await ws.recv()
            await ws.send(ack)
            subscribers.add(ws)
            await ws.wait_closed()
        finally:
            subscribers.discard(ws)

    loop = asyncio.get_running_loop()
    async with serve(
        handler,
        args.host,
        args.port,
        compression=None,
        max_size=64 * 1024,
        max_queue=16,
        ping_interval=20,
        ping_timeout=20,
        close_timeout=5,
        backlog=4096,
        reuse_port=True,
        process_request=admit,
    ):
        print("ready", flush=True)
        line = await loop.run_in_executor(None, sys.stdin.readline)
        t0 = float(line.split()[1])
        reached = 0
        for offset, messages in schedule:
            await asyncio.sleep(max(0.0, t0 + offset - time.time()))
            now = time.time()
            reached = max(reached, len(subscribers))
            for text in messages:
                msg = json.loads(text)
                msg["sent"] = now
                broadcast(subscribers, json.dumps(msg, separators=(",", ":")))
        print(json.dumps({"subscribers": reached}), flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
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
    """Peak RSS of each of some processes, sampled every 0.2 s."""

    def __init__(self, pids: list[int]):
        super().__init__(daemon=True)
        self.pids, self.peak, self.stop_flag = pids, dict.fromkeys(pids, 0.0), threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            for pid in self.pids:
                with contextlib.suppress(OSError):
                    self.peak[pid] = max(self.peak[pid], _rss_mb(pid))
            time.sleep(0.2)


def _match_envelopes(points: int):
    """The real feed of one Grand Slam match: its first ``points`` points with their market messages."""
    from benchmarks.live_bench import feed_rows
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
    import numpy as np

    if len(values) == 0:
        return {"n": 0}
    return {
        "n": int(len(values)),
        "p50": round(float(np.percentile(values, 50)), 1),
        "p99": round(float(np.percentile(values, 99)), 1),
        "max": round(float(values.max()), 1),
    }


# --- clients: start, connect, collect ----------------------------------------------------------------
def _start_clients(children: Children, work: Path, tag: str, port: int, room: str, share: list[int], concurrency: int):
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
                    str(port),
                    "--source",
                    f"127.0.0.{2 + i}",
                    "--room",
                    room,
                    "--count",
                    str(count),
                    "--connect-concurrency",
                    str(concurrency),
                    "--results",
                    str(work / f"{tag}{i}.npz"),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    connected = [json.loads(c.stdout.readline() or "{}") for c in clients]
    failures: dict[str, int] = {}
    retried: dict[str, int] = {}
    for c in connected:
        for k, v in c.get("failures", {}).items():
            failures[k] = failures.get(k, 0) + v
        for k, v in c.get("retried", {}).items():
            retried[k] = retried.get(k, 0) + v
    seconds = max((c.get("seconds", 0) for c in connected), default=0)
    subscribed = sum(c.get("subscribed", 0) for c in connected)
    return clients, {
        "asked": sum(share),
        "subscribed": subscribed,
        "failed": sum(c.get("failed", 0) for c in connected),
        "failures": dict(sorted(failures.items(), key=lambda kv: -kv[1])[:8]),
        "retried": dict(sorted(retried.items(), key=lambda kv: -kv[1])[:8]),
        "seconds": seconds,
        "per_s": round(subscribed / seconds, 1) if seconds else None,
    }


def _stop_clients(clients) -> None:
    for c in clients:
        c.stdin.write("stop\n")
        c.stdin.flush()
    for c in clients:
        c.stdout.readline()


def _analyse(work: Path, tag: str, procs: int, subscribed: int, servers: int) -> dict:
    """Delivery figures of one phase from the clients' records (see the module's docstring)."""
    import numpy as np

    parts = [np.load(work / f"{tag}{i}.npz") for i in range(procs)]
    extra = [json.loads((work / f"{tag}{i}.json").read_text()) for i in range(procs)]
    conn = np.concatenate([p["conn"].astype(np.int64) + i * 10_000_000 for i, p in enumerate(parts)])
    seq = np.concatenate([p["seq"] for p in parts])
    sent = np.concatenate([p["sent"] for p in parts])
    recv = np.concatenate([p["recv"] for p in parts])
    closed: dict[str, int] = {}
    for e in extra:
        for k, v in e["closed"].items():
            closed[k] = closed.get(k, 0) + v
    probe = next((e["probe"] for e in extra if e["probe"]), [])
    out: dict = {"delivery_ms": _dist((recv - sent) * 1000)}
    proc_of = conn // 10_000_000
    out["delivery_ms_by_client_proc"] = [_dist((recv - sent)[proc_of == i] * 1000) for i in range(procs)]
    if len(seq) == 0:
        return {**out, "all_delivered_ms": {"n": 0}, "messages": {"received": 0, "complete": None}, "probe": probe}
    # each message of each server: (seq, sent) -> its last subscriber
    order = np.lexsort((sent, seq))
    s_seq, s_sent, s_recv = seq[order], sent[order], recv[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (s_seq[1:] != s_seq[:-1]) | (s_sent[1:] != s_sent[:-1])
    starts = np.flatnonzero(new)
    last = np.maximum.reduceat(s_recv, starts)
    out["all_delivered_ms"] = _dist((last - s_sent[starts]) * 1000)
    counts = np.diff(np.append(starts, len(order)))
    t_first = float(s_sent.min())
    out["timeline_from"] = t_first
    out["timeline"] = sorted(  # each message of each server: when sent (s after the first), seq, subscribers, ms
        [round(float(s_sent[i]) - t_first, 3), int(s_seq[i]), int(n), round(float(x - s_sent[i]) * 1000, 1)]
        for i, n, x in zip(starts, counts, last, strict=True)
    )
    # each update (seq) over every server: first sent -> last subscriber anywhere
    first = np.ones(len(order), dtype=bool)
    first[1:] = s_seq[1:] != s_seq[:-1]
    ustarts = np.flatnonzero(first)
    out["per_update_ms"] = _dist((np.maximum.reduceat(s_recv, ustarts) - np.minimum.reduceat(s_sent, ustarts)) * 1000)
    # completeness: each subscriber's stream against its server's (the commonest streams)
    by_conn = np.argsort(conn, kind="stable")  # arrival order kept within a connection
    c_conn, c_seq = conn[by_conn], seq[by_conn]
    cstart = np.ones(len(c_conn), dtype=bool)
    cstart[1:] = c_conn[1:] != c_conn[:-1]
    bounds = np.append(np.flatnonzero(cstart), len(c_conn))
    disorder = int(np.sum((np.diff(c_seq) <= 0) & ~cstart[1:]))
    streams: dict[bytes, int] = {}
    keys = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        key = c_seq[a:b].tobytes()
        keys.append((a, b, key))
        streams[key] = streams.get(key, 0) + 1
    full = sorted(streams, key=lambda k: -streams[k])[:servers]
    full_sets = [set(np.frombuffer(k, dtype=np.int64).tolist()) for k in full]
    expected = received = 0
    short = 0
    for a, b, key in keys:
        received += b - a
        if key in full:
            expected += b - a
            continue
        short += 1
        mine = set(c_seq[a:b].tolist())
        best = max(full_sets, key=lambda f: len(f & mine))
        expected += len(best) + len(mine - best)
    silent = subscribed - len(keys)  # subscribed, and got nothing at all
    expected += silent * (max(len(f) for f in full_sets) if full_sets else 0)
    out["messages"] = {
        "distinct": int(len(starts)),
        "updates": int(len(ustarts)),
        "streams": [streams[k] for k in full],
        "received": int(received),
        "expected": int(expected),
        "lost": int(expected - received),
        "complete": round(received / expected, 6) if expected else None,
        "subscribers_short": short,
        "subscribers_with_nothing": silent,
        "out_of_order_or_repeated": disorder,
        "closed_by_server": closed,
    }
    out["probe"] = probe
    return out


def _per_delivery(cpu_s: float, messages: dict) -> float | None:
    """Server CPU microseconds per (message, subscriber) delivered: less at the mercy of a shared machine's load
    than latency."""
    received = messages.get("received") or 0
    return round(cpu_s / received * 1e6, 2) if received else None


def _share(total: int, procs: int) -> list[int]:
    return [total // procs + (i < total % procs) for i in range(procs)]


def _per_process(base: str, path: str, pids: set[int], tries: int = 80, timeout: float = 30.0) -> dict[int, dict]:
    """``path`` of every replica behind one port: asked again (a new connection each) until each pid answered."""
    seen: dict[int, dict] = {}
    for _ in range(tries):
        status, body = _get(f"{base}{path}", timeout=timeout)
        pid = (body.get("gateway") or {}).get("pid") if status == 200 else None
        if pid is not None:
            seen.setdefault(pid, body)
        if pids <= set(seen):
            break
    return seen


# --- one run -----------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict:
    from benchmarks.live_bench import Children, free_port, process_tree
    from serving.engine.engine import EngineConfig, TradingEngine
    from storage.db import make_engine, migrate

    files = raise_fd_limit()
    children = Children()
    atexit.register(children.stop_all)
    replicas = args.replicas
    procs = args.client_procs or max(2, -(-args.subscribers // PER_CLIENT_PROC))
    result: dict = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "targets": TARGETS if replicas == 1 else REPLICA_TARGETS,
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "open_files": files},
        "args": {**vars(args), "client_procs": procs},
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
        cmd = [sys.executable, "-m", "serving.api", "--port", str(port), "--ws-port", str(ws_port)]
        cmd += ["--rate-hz", str(args.rate_hz), "--no-access-log"]
        if replicas > 1:
            cmd += ["--replicas", str(replicas)]
        api = children.start(cmd, env=env, stdout=api_log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180

        def up() -> list[int] | None:
            if _get(f"{base}/live/games/{match_id}/state")[0] != 200:
                return None
            if replicas == 1:
                return [api.pid]
            pids = [p for p in process_tree(api.pid) if p != api.pid]
            if len(pids) < replicas or set(_per_process(base, "/health", set(pids), tries=40)) != set(pids):
                return None
            return pids

        while (pids := up()) is None:
            if api.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start: {(work / 'api.log').read_text()[-3000:]}")
            time.sleep(0.5)
        time.sleep(1.0)
        label = {
            pid: (b["gateway"].get("replica") or "1/1") for pid, b in _per_process(base, "/health", set(pids)).items()
        }
        rss = {pid: {"idle": round(_rss_mb(pid), 1)} for pid in pids}
        idle = ", ".join(f"{r['idle']:.0f}" for r in rss.values())
        print(
            f"API up ({replicas} process{'es' if replicas > 1 else ''}: pids {pids}, RSS {idle} MB); match "
            f"{match_id}; connecting {args.subscribers:,} subscribers from {procs} processes ...",
            flush=True,
        )
        clients, result["connect"] = _start_clients(
            children, work, "gw", ws_port, match_id, _share(args.subscribers, procs), args.connect_concurrency
        )
        subscribed = result["connect"]["subscribed"]
        time.sleep(2.0)
        health = _per_process(base, "/health", set(pids))
        for pid in pids:
            rss[pid]["connected"] = round(_rss_mb(pid), 1)
        held = ", ".join(f"replica {label[p]}: {(health.get(p, {}).get('gateway') or {}).get('clients')}" for p in pids)
        connected = ", ".join(f"{rss[p]['connected']:.0f}" for p in pids)
        print(
            f"{subscribed:,} subscribed in {result['connect']['seconds']:.1f} s ({held}; RSS {connected} MB); "
            f"failures {result['connect']['failures'] or 'none'}; {len(batches) - 1} points at "
            f"{args.points_per_s:g}/s ...",
            flush=True,
        )
        sampler = _Sampler(pids)
        sampler.start()
        result["load_average_updates"] = os.getloadavg()
        result["updates_from"] = time.time()
        cpu0, t0 = {p: _cpu_s(p) for p in pids}, time.monotonic()
        for i, batch in enumerate(batches[1:]):
            loop.run_until_complete(feed(batch))
            time.sleep(max(0.0, t0 + (i + 1) / args.points_per_s - time.monotonic()))
        time.sleep(3.0 if replicas == 1 else 6.0)
        elapsed = time.monotonic() - t0
        sampler.stop_flag.set()
        metrics = _per_process(base, "/metrics", set(pids))
        servers = []
        for pid in pids:
            rss[pid]["peak"] = round(max(sampler.peak[pid], rss[pid]["connected"]), 1)
            g = metrics.get(pid, {}).get("gateway", {})
            servers.append(
                {
                    "replica": label[pid],
                    "pid": pid,
                    "rss_mb": rss[pid],
                    "cpu_share": round((_cpu_s(pid) - cpu0[pid]) / elapsed, 2),
                    "cpu_s": round(_cpu_s(pid) - cpu0[pid], 2),
                    "subscribers": (health.get(pid, {}).get("gateway") or {}).get("clients"),
                    "messages": g.get("messages"),
                    "frames_written": g.get("frames_written"),
                    "dropped_slow": g.get("dropped_slow"),
                    "log_to_send_ms": g.get("log_to_send_ms"),
                    "fanout_ms": g.get("fanout_ms"),
                    "gc_pause_ms": g.get("gc_pause_ms"),
                    "gc_full_pauses": [
                        [round(t - result["updates_from"], 2), ms] for t, ms in g.get("gc_full_pauses") or []
                    ],
                }
            )
        result["replicas"] = servers
        if replicas > 1:
            supervisor_rss = round(_rss_mb(api.pid), 1)
            result["supervisor_rss_mb"] = supervisor_rss
        # the single-process figures as before (the largest replica's where there are several)
        result["rss_mb"] = max((s["rss_mb"] for s in servers), key=lambda r: r["peak"])
        result["api_cpu_share"] = round(sum(s["cpu_share"] for s in servers), 2)
        first = servers[0]
        result["server"] = {
            k: first[k] for k in ("messages", "frames_written", "dropped_slow", "log_to_send_ms", "fanout_ms")
        }
        _stop_clients(clients)
        figures = _analyse(work, "gw", procs, subscribed, len(pids))
        probe = figures.pop("probe")
        result.update(figures)
        result["cpu_us_per_delivery"] = _per_delivery(sum(s["cpu_s"] for s in servers), result["messages"])
        result["load_average_end"] = os.getloadavg()
        for c in clients:
            children.stop(c, timeout_s=5.0)
        children.stop(api)
        api_log.close()
        if engine._writer is not None:  # the engine's commit task, as engine.run leaves it
            engine._writer.cancel()
            loop.run_until_complete(asyncio.gather(engine._writer, return_exceptions=True))
        loop.close()
        db.dispose()
        if args.baseline:
            result["baseline"] = _baseline(args, children, work, match_id, probe, procs)
    return result


def _schedule(probe: list[str]) -> list[tuple[float, list[str]]]:
    """The flushes one gateway subscriber got: [(seconds after the first, [message, ...]), ...]."""
    flushes: list[tuple[float, list[str]]] = []
    first = None
    for text in probe:
        sent = json.loads(text)["sent"]
        first = sent if first is None else first
        if flushes and abs(flushes[-1][0] - (sent - first)) < 1e-9:
            flushes[-1][1].append(text)
        else:
            flushes.append((sent - first, [text]))
    return flushes


def _baseline(
    args: argparse.Namespace, children: Children, work: Path, room: str, probe: list[str], procs: int
) -> dict:
    """Raw ``websockets.broadcast`` of the same messages, at the same moments, to the same number of clients."""
    from benchmarks.live_bench import free_port

    schedule = _schedule(probe)
    if not schedule:
        return {"error": "no message reached the probe subscriber: nothing to broadcast"}
    (work / "schedule.json").write_text(json.dumps(schedule))
    servers = args.baseline_procs or args.replicas
    port = free_port()
    logs = [(work / f"baseline{i}.log").open("wb") for i in range(servers)]
    procs_ = [
        children.start(
            [
                sys.executable,
                "-m",
                "benchmarks.fanout_bench",
                "--baseline-server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--room",
                room,
                "--schedule",
                str(work / "schedule.json"),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=logs[i],
            text=True,
        )
        for i in range(servers)
    ]
    for p in procs_:
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError(f"a baseline server did not start: {(work / 'baseline0.log').read_text()[-2000:]}")
    pids = [p.pid for p in procs_]
    rss = {pid: {"idle": round(_rss_mb(pid), 1)} for pid in pids}
    print(
        f"\nbaseline: {servers} plain websockets server{'s' if servers > 1 else ''} (websockets.broadcast); "
        f"connecting {args.subscribers:,} subscribers ...",
        flush=True,
    )
    clients, connect = _start_clients(
        children, work, "bl", port, room, _share(args.subscribers, procs), args.connect_concurrency
    )
    time.sleep(2.0)
    for pid in pids:
        rss[pid]["connected"] = round(_rss_mb(pid), 1)
    print(
        f"{connect['subscribed']:,} subscribed in {connect['seconds']:.1f} s; failures {connect['failures'] or 'none'};"
        f" broadcasting {sum(len(m) for _, m in schedule)} messages in {len(schedule)} flushes ...",
        flush=True,
    )
    sampler = _Sampler(pids)
    sampler.start()
    load_start = os.getloadavg()
    cpu0, t0 = {p: _cpu_s(p) for p in pids}, time.time() + 1.0
    for p in procs_:
        p.stdin.write(f"go {t0}\n")
        p.stdin.flush()
    reached = [json.loads(p.stdout.readline() or "{}").get("subscribers") for p in procs_]
    time.sleep(5.0)
    elapsed = time.time() - t0
    sampler.stop_flag.set()
    out: dict = {"servers": servers, "connect": connect, "subscribers_per_server": reached}
    out["processes"] = [
        {
            "pid": pid,
            "rss_mb": {**rss[pid], "peak": round(max(sampler.peak[pid], rss[pid]["connected"]), 1)},
            "cpu_share": round((_cpu_s(pid) - cpu0[pid]) / elapsed, 2),
            "cpu_s": round(_cpu_s(pid) - cpu0[pid], 2),
        }
        for pid in pids
    ]
    _stop_clients(clients)
    figures = _analyse(work, "bl", procs, connect["subscribed"], 1)
    figures.pop("probe")
    out.update(figures)
    out["cpu_us_per_delivery"] = _per_delivery(sum(p["cpu_s"] for p in out["processes"]), out["messages"])
    out["load_average"] = {"start": load_start, "end": os.getloadavg()}
    for c in clients:
        children.stop(c, timeout_s=5.0)
    for p in procs_:
        with contextlib.suppress(OSError):
            p.stdin.write("stop\n")
            p.stdin.flush()
        children.stop(p, timeout_s=5.0)
    for f in logs:
        f.close()
    return out


# --- the report ----------------------------------------------------------------------------------
def report(r: dict) -> str:
    if r["args"].get("replicas", 1) > 1:
        return report_replicas(r)
    d, a, s, m = r["delivery_ms"], r["all_delivered_ms"], r["server"], r["messages"]
    rss = r["rss_mb"]
    ok = (
        a.get("p99", 1e9) <= TARGETS["all_delivered_p99_ms"]
        and rss["peak"] <= TARGETS["rss_mb"]
        and m["complete"] == 1.0
    )
    lag = s.get("log_to_send_ms") or {}
    fan = s.get("fanout_ms") or {}
    lines = [
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
    ]
    b = r.get("baseline") or {}
    if b.get("all_delivered_ms"):
        bd, ba = b["delivery_ms"], b["all_delivered_ms"]
        lines.append(
            f"| baseline, raw websockets.broadcast of the same messages to {b['connect']['subscribed']:,}: "
            f"delivery / all delivered | {bd.get('p50')} / {ba.get('p50')} ms | {bd.get('p99')} / "
            f"**{ba.get('p99')} ms** | {bd.get('max')} / {ba.get('max')} ms | |"
        )
    lines += [
        "",
        f"API process RSS: idle {rss['idle']} MB, {r['connect']['subscribed']:,} subscribers connected "
        f"{rss['connected']} MB, **peak {rss['peak']} MB** (target <= {TARGETS['rss_mb']:.0f} MB); "
        f"API CPU {r['api_cpu_share']} cores while updates flowed",
        f"messages received {m['received']:,} of {m['expected']:,} ({m['complete']}); closed by the server: "
        f"{m['closed_by_server'] or 'none'}; subscribe failures {r['connect']['failed']}; connecting took "
        f"{r['connect']['seconds']} s",
        f"load average at start {r['load_average_start'][0]:.2f}, at end {r['load_average_end'][0]:.2f} (2 cores, "
        f"shared)",
        f"{'OK: targets met' if ok else 'TARGET MISSED'}",
    ]
    return "\n".join(lines)


def report_replicas(r: dict) -> str:
    c, m, b = r["connect"], r["messages"], r.get("baseline") or {}
    lines = [
        f"{r['args']['replicas']} gateway replicas (`python -m serving.api --replicas {r['args']['replicas']}`, "
        f"SO_REUSEPORT) vs raw `websockets.broadcast` from {b.get('servers', '-')} plain websockets "
        f"server(s), same messages, same {r['args']['client_procs']} client processes:",
        "",
        "| | subscribed of asked | delivery p50 | delivery p99 | delivery max | all delivered p50 | all delivered p99 "
        "| all delivered max | lost |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def row(name: str, x: dict) -> str:
        d, a, mm, cc = x["delivery_ms"], x["all_delivered_ms"], x["messages"], x["connect"]
        return (
            f"| {name} | {cc['subscribed']:,} of {cc['asked']:,} | {d.get('p50')} ms | {d.get('p99')} ms | "
            f"{d.get('max')} ms | {a.get('p50')} ms | **{a.get('p99')} ms** | {a.get('max')} ms | "
            f"{mm.get('lost')} of {mm.get('expected'):,} |"
        )

    lines.append(row("gateway replicas", r))
    if b.get("delivery_ms"):
        lines.append(row("raw websockets.broadcast", b))
    u = r.get("per_update_ms") or {}
    lines += [
        "",
        f"per update over every replica (first replica's send -> last subscriber anywhere, {u.get('n')} updates): "
        f"p50 {u.get('p50')} ms, p99 {u.get('p99')} ms, max {u.get('max')} ms",
        "",
        "| process | subscribers | RSS idle | RSS connected | RSS peak | CPU (cores) | flush to all p50 / p99 "
        "| log commit -> send p50 / p99 | dropped slow |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in r["replicas"]:
        f, lag, rss = s.get("fanout_ms") or {}, s.get("log_to_send_ms") or {}, s["rss_mb"]
        lines.append(
            f"| replica {s['replica']} | {s['subscribers']} | {rss['idle']} MB | {rss['connected']} MB | "
            f"**{rss['peak']} MB** | {s['cpu_share']} | {f.get('p50')} / {f.get('p99')} ms | {lag.get('p50')} / "
            f"{lag.get('p99')} ms | {s['dropped_slow']} |"
        )
    for i, p in enumerate(b.get("processes", [])):
        rss = p["rss_mb"]
        n = (b.get("subscribers_per_server") or [None] * (i + 1))[i]
        lines.append(
            f"| baseline server {i + 1} | {n} | {rss['idle']} MB | {rss['connected']} MB | **{rss['peak']} MB** | "
            f"{p['cpu_share']} | | | |"
        )
    ratio = None
    if b.get("all_delivered_ms", {}).get("p99"):
        ratio = r["all_delivered_ms"].get("p99", 0) / b["all_delivered_ms"]["p99"]
    reached = c["subscribed"] >= REPLICA_TARGETS["subscribers"]
    ok = reached and m.get("lost") == 0 and ratio is not None and ratio <= REPLICA_TARGETS["vs_broadcast_p99"]
    lines += [
        "",
        f"connecting: {c['subscribed']:,} of {c['asked']:,} in {c['seconds']} s ({c['per_s']}/s); failures "
        f"{c['failures'] or 'none'}; retried {c['retried'] or 'never'}",
        f"messages: {m['received']:,} received of {m['expected']:,} expected ({m['complete']}); "
        f"{m['distinct']} messages from the replicas ({m['updates']} updates), streams per replica "
        f"{m['streams']}; subscribers short {m['subscribers_short']}, with nothing {m['subscribers_with_nothing']}; "
        f"out of order or repeated {m['out_of_order_or_repeated']}; closed by the server "
        f"{m['closed_by_server'] or 'none'}",
        f"server CPU per (message, subscriber) delivered: gateway replicas {r.get('cpu_us_per_delivery')} µs, raw "
        f"broadcast {b.get('cpu_us_per_delivery')} µs",
        f"supervisor RSS {r.get('supervisor_rss_mb')} MB; replicas' CPU together {r['api_cpu_share']} cores; "
        f"1-min load average (2 cores, shared with other work): gateway phase {r['load_average_updates'][0]:.2f} "
        f"when updates began, {r['load_average_end'][0]:.2f} at its end; baseline "
        f"{(b.get('load_average') or {}).get('start', [None])[0]} when broadcasts began, "
        f"{(b.get('load_average') or {}).get('end', [None])[0]} at its end",
        f"all delivered p99 {f'{ratio:.2f}' if ratio is not None else 'not measured'}x raw broadcast's (target <= "
        f"{REPLICA_TARGETS['vs_broadcast_p99']}x); {c['subscribed']:,} subscribers (target "
        f"{REPLICA_TARGETS['subscribers']:,})",
        f"{'OK: targets met' if ok else 'TARGET MISSED'}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fanout_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument(
        "--client-procs",
        type=int,
        help=f"client processes (default: one per {PER_CLIENT_PROC:,} subscribers, at least 2)",
    )
    parser.add_argument("--replicas", type=int, default=1, help="API processes (python -m serving.api --replicas N)")
    parser.add_argument(
        "--baseline-procs", type=int, help="plain websockets servers of the baseline (default: as many as replicas)"
    )
    parser.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the raw broadcast")
    parser.add_argument("--points", type=int, default=60, help="points of the match to replay")
    parser.add_argument("--points-per-s", type=float, default=1.0)
    parser.add_argument("--rate-hz", type=float, default=4.0, help="the gateway's flushes per second per room")
    parser.add_argument("--output", help="write the figures as JSON here")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--baseline-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--room", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--results", help=argparse.SUPPRESS)
    parser.add_argument("--schedule", help=argparse.SUPPRESS)
    parser.add_argument("--connect-concurrency", type=int, default=200, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client or args.baseline_server:
        import uvloop

        return uvloop.run(_client_main(args) if args.client else _baseline_main(args))
    from courtside.settings import PROJECT_ROOT

    os.chdir(PROJECT_ROOT)
    result = run(args)
    print("\n" + report(result), flush=True)
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2, default=str))
        print(f"figures written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
