"""The live API process (``make up`` starts it): REST API and dashboard on one port, the WebSocket
gateway on another, both in one asyncio loop over one view of the event log.

    python -m serving.api [--host 127.0.0.1] [--port 8000] [--ws-port 8001]

Reads ``COURTSIDE_DATABASE_URL`` (the engine's event log and ledger). Operator endpoints need
``COURTSIDE_API_TOKEN`` (or ``COURTSIDE_API_TOKEN_FILE``); the gateway's ``ledger`` and alert rooms need
``COURTSIDE_READ_TOKEN`` or that token; tokens are never logged. Both listeners bind ``--host``,
127.0.0.1 by default. Browser pages may open the gateway from ``COURTSIDE_ALLOWED_ORIGINS`` only
(default: this API's own origins); ``X-Forwarded-For`` is believed from ``COURTSIDE_TRUSTED_PROXIES``
only (uvicorn's own proxy-header handling is off). One process on purpose: the gateway, the alerts and
the REST answers share the view, and the fan-out benchmark (benchmarks/fanout_bench.py) meets its
targets with REST in the same process.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
from pathlib import Path

import uvicorn
import uvloop
from websockets.asyncio.server import serve

from courtside.settings import MIN_TOKEN_LENGTH, Settings
from serving.api.app import ApiConfig, create_app
from serving.api.gateway import GatewayConfig, handshake_check
from serving.api.live import LiveService
from serving.api.proxies import TrustedProxies
from serving.api.ratelimit import RateLimit
from serving.api.status import ServiceStatus
from serving.body_limit import API_MAX_BODY_BYTES
from storage.db import make_engine, migrate

log = logging.getLogger("serving.api")
WS_PATH = "/ws"


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


def configure_logging(secrets: list[str]) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
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


async def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    token, reader = operator_token(settings), read_token(settings)
    configure_logging([token or "", reader or ""])
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
    await service.start()
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
        process_request=handshake_check(WS_PATH, origins),
        backlog=4096,
    ) as ws_server:
        ws_port = ws_server.sockets[0].getsockname()[1]
        log.info(
            "WebSocket gateway on ws://%s:%d%s (up to %d open files); browser origins allowed: %s; ledger and "
            "alert rooms %s; operator endpoints %s",
            args.host,
            ws_port,
            WS_PATH,
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
            await server.serve()
        finally:
            await service.stop()
    db.dispose()
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
    parser.add_argument("--no-access-log", action="store_true")
    args = parser.parse_args(argv)
    return uvloop.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
