"""The live API process (``make up`` starts it): REST API and dashboard on one port, the WebSocket
gateway on another, both in one asyncio loop over one view of the event log.

    python -m serving.api [--host 127.0.0.1] [--port 8000] [--ws-port 8001] [--replicas N]

Reads ``COURTSIDE_DATABASE_URL`` (the engine's event log and ledger). Operator endpoints need
``COURTSIDE_API_TOKEN`` (or ``COURTSIDE_API_TOKEN_FILE``); the gateway's ``ledger`` and alert rooms need
``COURTSIDE_READ_TOKEN`` or that token; tokens are never logged. Both listeners bind ``--host``,
127.0.0.1 by default. Browser pages may open the gateway from ``COURTSIDE_ALLOWED_ORIGINS`` only
(default: this API's own origins); ``X-Forwarded-For`` is believed from ``COURTSIDE_TRUSTED_PROXIES``
only (uvicorn's own proxy-header handling is off). One process holds the gateway, the alerts and the
REST answers over one view of the log (the fan-out benchmark, benchmarks/fanout_bench.py, meets its
targets with REST in the same process).

Replicas: ``--replicas N`` starts N such processes (a small supervisor here, restarting one that dies) that
share both ports with SO_REUSEPORT: the kernel spreads new connections among them, no load balancer needed
on one machine (Linux lets only processes of the same user join a port; a port some other socket holds is
refused at start). Each replica tails the event log itself, numbers the WebSocket messages by log entry and
derives the session from the log, so a subscriber that reconnects lands on any replica and resumes
(``serving.api.gateway``); one replica at a time delivers the webhooks (``serving.api.alerts.DeliveryLease``).
Per replica: the REST rate limit, ``/metrics`` and ``/health`` (``gateway.replica`` says which answered)
and at most ``--max-clients`` WebSocket connections (default: its open-file limit less 256).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from courtside.settings import MIN_TOKEN_LENGTH, Settings

# the supervisor of --replicas imports nothing more: the rest is imported by the processes that serve (run)

log = logging.getLogger("serving.api")
WS_PATH = "/ws"
FD_RESERVE = 256
"""Open files kept for other things than WebSocket clients (REST connections, the database, logs)."""


class Redact(logging.Filter):
    """Replaces secrets in every log record (defence in depth: nothing logs the token on purpose)."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if any(s in message for s in self.secrets):
                for s in self.secrets:
                    message = message.replace(s, "[redacted]")
                record.msg, record.args = message, ()
        return True


def configure_logging(secrets: list[str], replica: str | None = None) -> None:
    handler = logging.StreamHandler()
    who = f" [replica {replica}]" if replica else ""
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s %(name)s{who}: %(message)s"))
    handler.addFilter(Redact(secrets))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.getLogger("websockets").setLevel(logging.WARNING)


def operator_token(settings: Settings) -> str | None:
    """The operator token: ``COURTSIDE_API_TOKEN``, else the content of ``COURTSIDE_API_TOKEN_FILE``."""
    token = settings.api_token
    if token is None and settings.api_token_file:
        path = Path(settings.api_token_file)
        if not path.is_file():
            raise SystemExit(f"COURTSIDE_API_TOKEN_FILE names {path}, which does not exist")
        token = path.read_text().strip() or None
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise SystemExit(f"the operator token must have at least {MIN_TOKEN_LENGTH} characters")
    return token


def read_token(settings: Settings) -> str | None:
    """The token of the gateway's ledger and alert rooms (``COURTSIDE_READ_TOKEN``), if any."""
    token = settings.read_token
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise SystemExit(f"COURTSIDE_READ_TOKEN must have at least {MIN_TOKEN_LENGTH} characters")
    return token


def dashboard_origins(host: str, port: int) -> tuple[str, ...]:
    """The dashboard's own origins: the API on localhost, 127.0.0.1 and the address it is bound to."""
    origins = [f"http://localhost:{port}", f"http://127.0.0.1:{port}"]
    if host not in ("", "0.0.0.0", "::", "localhost", "127.0.0.1"):
        origins.append(f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}")
    return tuple(origins)


def raise_fd_limit() -> int:
    """As many open files as allowed (each WebSocket client is one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def shared_socket(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port) with SO_REUSEPORT: the replicas' REST port."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(4096)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


async def run(args: argparse.Namespace) -> int:
    import uvicorn
    from websockets.asyncio.server import serve

    from serving.api.app import ApiConfig, create_app
    from serving.api.gateway import GatewayConfig, handshake_check
    from serving.api.live import LiveService
    from serving.api.proxies import TrustedProxies
    from serving.api.ratelimit import RateLimit
    from serving.api.status import ServiceStatus
    from serving.body_limit import API_MAX_BODY_BYTES
    from storage.db import make_engine, migrate

    settings = Settings.from_env()
    token, reader = operator_token(settings), read_token(settings)
    replica = f"{args.replica_index}/{args.replicas}" if args.replica_index is not None else None
    configure_logging([token or "", reader or ""], replica)
    try:
        TrustedProxies(settings.trusted_proxies)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    files = raise_fd_limit()
    db = make_engine(settings.database_url)
    migrate(db)
    gateway_cfg = GatewayConfig(
        rate_hz=args.rate_hz,
        heartbeat_s=args.heartbeat_s,
        buffer_size=args.buffer_size,
        max_lag_bytes=args.max_lag_bytes,
        send_buffer_bytes=args.send_buffer_bytes or None,
        tokens=tuple(t for t in (reader, token) if t),
        max_clients=args.max_clients or max(64, files - FD_RESERVE),
        replica=replica,
    )
    service = LiveService(db, settings.bankroll, gateway_cfg, poll_s=args.poll_s)
    status = ServiceStatus(settings.prediction_url, settings.dagster_url)
    ws_port = args.ws_port if args.ws_port is not None else settings.ws_port
    port = args.port if args.port is not None else settings.api_port
    origins = settings.allowed_origins or dashboard_origins(args.host, port)
    config = ApiConfig(
        token=token,
        rate=RateLimit.parse(args.rate_limit or settings.api_rate_limit),
        ws_url=settings.ws_public_url,
        ws_port=ws_port,
        run_service=False,
        trusted_proxies=settings.trusted_proxies,
        max_body_bytes=settings.max_body_bytes or API_MAX_BODY_BYTES,
    )
    app = create_app(service, status, config)
    rest_sockets = [shared_socket(args.host, port)] if replica else None
    await service.start()
    # what is here now (modules, the view of the log read so far) lives as long as the process: out of the cyclic
    # collector's way, so that its full collections, which stop the fan-out, scan only what came later
    gc.collect()
    gc.freeze()
    async with serve(
        service.gateway.handler,
        args.host,
        ws_port,
        compression=None,
        max_size=64 * 1024,
        max_queue=16,
        ping_interval=20,
        ping_timeout=20,
        close_timeout=5,
        process_request=handshake_check(WS_PATH, origins, service.gateway.admit),
        backlog=4096,
        reuse_port=replica is not None,
    ) as ws_server:
        ws_port = ws_server.sockets[0].getsockname()[1]
        log.info(
            "WebSocket gateway on ws://%s:%d%s (at most %d connections, %d open files); browser origins allowed: %s; "
            "ledger and alert rooms %s; operator endpoints %s",
            args.host,
            ws_port,
            WS_PATH,
            gateway_cfg.max_clients,
            files,
            ", ".join(origins),
            "need a token" if gateway_cfg.tokens else "CLOSED (no COURTSIDE_READ_TOKEN nor operator token)",
            "enabled" if token else "DISABLED (no COURTSIDE_API_TOKEN)",
        )
        if settings.trusted_proxies:
            log.info("X-Forwarded-For believed from %s", ", ".join(settings.trusted_proxies))
        # proxy_headers off: the client address is decided by one rule (serving.api.proxies), not uvicorn's
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=args.host,
                port=port,
                log_config=None,
                loop="none",
                ws="none",
                lifespan="on",
                access_log=not args.no_access_log,
                timeout_graceful_shutdown=5,
                proxy_headers=False,
                server_header=False,
            )
        )
        try:
            await server.serve(sockets=rest_sockets)
        finally:
            await service.stop()
    db.dispose()
    return 0


def _port_free(host: str, port: int) -> str | None:
    """None when nothing listens on (host, port), else why (a socket without SO_REUSEPORT: refused even where
    another replica set of this user holds it with SO_REUSEPORT, which must not be joined by mistake)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return f"port {port} on {host}: address already in use ({exc.strerror})"
    return None


def _listening(host: str, port: int) -> bool:
    connect_host = "127.0.0.1" if host in ("", "0.0.0.0") else ("::1" if host == "::" else host)
    try:
        with socket.create_connection((connect_host, port), timeout=1):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:
    """In a replica, before it runs: SIGTERM when the supervisor dies (Linux), so no replica keeps the ports."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def supervise(args: argparse.Namespace, argv: list[str]) -> int:
    """Run ``args.replicas`` replicas (this command with ``--replica-index``) until SIGTERM/SIGINT; start again
    one that exits (1 s later, backing off to 30 s while it keeps failing at once)."""
    configure_logging([])
    settings = Settings.from_env()
    port = args.port if args.port is not None else settings.api_port
    ws_port = args.ws_port if args.ws_port is not None else settings.ws_port
    if not port or not ws_port:
        raise SystemExit("--replicas needs fixed ports (--port and --ws-port, not 0): the replicas share them")
    for p in (port, ws_port):
        problem = _port_free(args.host, p)
        if problem is not None:
            raise SystemExit(f"cannot start {args.replicas} replicas: {problem}")
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def spawn(i: int) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "serving.api", *argv, "--replica-index", str(i)], preexec_fn=_die_with_parent
        )
        log.info("replica %d/%d started: pid %d", i, args.replicas, proc.pid)
        return proc

    procs = {1: spawn(1)}
    # the first one alone until it listens: it migrates the database, the others find it done
    deadline = time.monotonic() + 300
    while not stopping and procs[1].poll() is None and time.monotonic() < deadline and not _listening(args.host, port):
        time.sleep(0.2)
    if procs[1].poll() is not None and not stopping:
        log.error("replica 1 exited with code %s before it listened: not starting the others", procs[1].returncode)
        return procs[1].returncode or 1
    started = dict.fromkeys(range(1, args.replicas + 1), time.monotonic())
    backoff = dict.fromkeys(range(1, args.replicas + 1), 1.0)
    restart_at: dict[int, float] = {}
    for i in range(2, args.replicas + 1):
        if not stopping:
            procs[i] = spawn(i)
    log.info(
        "%d replicas on http://%s:%d and ws://%s:%d%s (SO_REUSEPORT)",
        args.replicas,
        args.host,
        port,
        args.host,
        ws_port,
        WS_PATH,
    )
    while not stopping:
        time.sleep(0.2)
        now = time.monotonic()
        for i, proc in list(procs.items()):
            if i in restart_at:
                if now >= restart_at[i] and not stopping:
                    del restart_at[i]
                    procs[i], started[i] = spawn(i), now
                continue
            if proc.poll() is None:
                continue
            backoff[i] = 1.0 if now - started[i] > 30 else min(30.0, backoff[i] * 2)
            restart_at[i] = now + backoff[i]
            log.warning("replica %d exited with code %s: starting it again in %.0f s", i, proc.returncode, backoff[i])
    for proc in procs.values():
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.info("replicas stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving.api", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address of the REST API and of the gateway (default 127.0.0.1: this machine only)",
    )
    parser.add_argument("--port", type=int, help="REST API and dashboard (default COURTSIDE_API_PORT or 8000)")
    parser.add_argument("--ws-port", type=int, help="WebSocket gateway (default COURTSIDE_WS_PORT or 8001)")
    parser.add_argument("--rate-limit", help="requests/seconds per client (default COURTSIDE_API_RATE_LIMIT, 300/60)")
    parser.add_argument("--rate-hz", type=float, default=4.0, help="flushes per second per room at most")
    parser.add_argument("--heartbeat-s", type=float, default=5.0)
    parser.add_argument("--buffer-size", type=int, default=512, help="messages kept per room for resuming")
    parser.add_argument("--max-lag-bytes", type=int, default=256 << 10, help="unsent bytes before a client is dropped")
    parser.add_argument(
        "--send-buffer-bytes",
        type=int,
        default=64 << 10,
        help="kernel send buffer per WebSocket connection (0: the kernel's autotuning)",
    )
    parser.add_argument("--poll-s", type=float, default=0.1, help="seconds between reads of the event log")
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="API processes sharing both ports (SO_REUSEPORT; each tails the event log), restarted when they die",
    )
    parser.add_argument(
        "--max-clients",
        type=int,
        default=0,
        help=f"WebSocket connections per process at most (0: its open-file limit less {FD_RESERVE}); 503 beyond",
    )
    parser.add_argument("--replica-index", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--no-access-log", action="store_true")
    args = parser.parse_args(argv)
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")
    if args.replicas > 1 and args.replica_index is None:
        return supervise(args, list(sys.argv[1:] if argv is None else argv))
    import uvloop

    return uvloop.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
