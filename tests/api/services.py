"""Real processes for the live API tests: the API (``python -m serving.api``), a feed replay server
and the streaming engine, each in its own process group, stopped (by pid) when the block ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.services import ROOT, free_port

TOKEN = "test-operator-token-5f2c9a7e41b8d6"
"""The operator token of the test API servers (what must never appear in their logs)."""


@dataclass
class Process:
    proc: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Api(Process):
    url: str
    ws_url: str


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def _start(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            cmd, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, dict, dict]:
    """(status, JSON body, headers) of a GET."""
    return request("GET", url, None, headers, timeout)


def request(
    method: str, url: str, body: dict | None = None, headers: dict[str, str] | None = None, timeout: float = 10
) -> tuple[int, dict, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={**({"Content-Type": "application/json"} if data else {}), **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw and raw[:1] in b"{[" else {}), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, (json.loads(raw) if raw and raw[:1] in b"{[" else {"raw": raw.decode()}), dict(exc.headers)


@contextmanager
def api_server(
    database_url: str,
    folder: Path,
    *args: str,
    token: str | None = TOKEN,
    env: dict[str, str] | None = None,
    timeout_s: float = 90,
) -> Iterator[Api]:
    """``python -m serving.api`` on free ports over ``database_url``; yields once /health answers. A port
    another process took between ``free_port`` and the bind is given up for new ones (3 tries)."""
    for attempt in range(3):
        port, ws_port = free_port(), free_port()
        full_env = {
            "COURTSIDE_DATABASE_URL": database_url,
            "COURTSIDE_HOME": str(folder),
            "COURTSIDE_PREDICTION_URL": f"http://127.0.0.1:{free_port()}",  # nothing there: "unknown"
            "COURTSIDE_DAGSTER_URL": f"http://127.0.0.1:{free_port()}",
            **(env or {}),
            "COURTSIDE_API_TOKEN": token or "",
        }
        log = folder / f"api-{port}.log"
        proc = _start(
            [sys.executable, "-m", "serving.api", "--port", str(port), "--ws-port", str(ws_port), *args], log, full_env
        )
        api = Api(proc, log, f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{ws_port}/ws")
        deadline = time.monotonic() + timeout_s
        started = False
        try:
            while not started:
                try:
                    with urllib.request.urlopen(f"{api.url}/health", timeout=2):
                        started = True
                except OSError:
                    if proc.poll() is not None and "address already in use" in api.output() and attempt < 2:
                        break  # lost the port race: new ports
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"the API did not start:\n{api.output()[-3000:]}") from None
                    time.sleep(0.3)
            if started:
                yield api
                return
        finally:
            _stop(proc)


@contextmanager
def feed_server(folder: Path, year_slam: str, matches: int, rate: float) -> Iterator[str]:
    """The replay server (``feeds.live.server.ReplayServer``) publishing real matches in its own process."""
    port = free_port()
    log = folder / f"feed-{port}.log"
    proc = _start(
        [
            sys.executable,
            "-m",
            "tests.api.feed_process",
            "--port",
            str(port),
            "--year-slam",
            year_slam,
            "--matches",
            str(matches),
            "--rate",
            str(rate),
        ],
        log,
        {},
    )
    deadline = time.monotonic() + 60
    try:
        while "serving" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the feed server did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield f"ws://127.0.0.1:{port}"
    finally:
        _stop(proc)


@contextmanager
def engine_process(folder: Path, database_url: str, feed_url: str, prediction_url: str) -> Iterator[Process]:
    """``python -m serving.engine`` following the feed and writing to ``database_url``."""
    log = folder / "engine.log"
    proc = _start(
        [
            sys.executable,
            "-m",
            "serving.engine",
            "--feed-url",
            feed_url,
            "--prediction-url",
            prediction_url,
            "--report-s",
            "5",
        ],
        log,
        {"COURTSIDE_DATABASE_URL": database_url, "COURTSIDE_HOME": str(folder)},
    )
    try:
        yield Process(proc, log)
    finally:
        _stop(proc)


def send_raw(
    url: str, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None, timeout: float = 10
) -> tuple[int, bytes, dict]:
    """One request with exactly ``body`` as its bytes (e.g. ``NaN`` in JSON, which ``json.dumps`` would
    not write): (status, raw body, headers)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def oversized(
    url: str, path: str, declared: int = 50 << 20, sent: int = 256 << 10, chunked: bool = False, timeout: float = 10
) -> tuple[int, bytes]:
    """POST a body of ``declared`` bytes (or an endless chunked one) but send only ``sent`` bytes of it
    before reading the answer: a server that enforces a limit answers without waiting for the rest.
    (status, body) of the answer; raises TimeoutError when the server waits for the whole body."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {declared}"
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\nContent-Type: application/json"
            f"\r\n{framing}\r\n\r\n".encode()
        )
        piece = b'{"x": "' + b"a" * (64 << 10)
        try:
            for _ in range(max(1, sent // len(piece))):
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while we were sending: read its answer
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        head, _, rest = answer.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
            None,
        )
        while length is not None and len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, rest


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (from /proc/net/tcp and tcp6)."""
    import ipaddress

    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:
                continue
            raw = bytes.fromhex(address)
            # the kernel prints each 32-bit word in host (little-endian) order
            packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add(str(ipaddress.ip_address(packed)) if width == 8 else str(ipaddress.IPv6Address(packed)))
    return found
