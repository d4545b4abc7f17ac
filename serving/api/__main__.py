"""The live API process (``make up`` starts it): REST API and dashboard on one port, the WebSocket
gateway on another, both in one asyncio loop over one view of the event log.

    python -m serving.api [--host 127.0.0.1] [--port 8000] [--ws-port 8001]

Reads ``COURTSIDE_DATABASE_URL`` (the engine's event log and ledger). Operator endpoints need
``COURTSIDE_API_TOKEN`` (or ``COURTSIDE_API_TOKEN_FILE``); the token is never logged. One process on
purpose: the gateway, the alerts and the REST answers share the view, and the fan-out benchmark
(benchmarks/fanout_bench.py) meets its targets with REST in the same process.
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
from websockets.datastructures import Headers
from websockets.http11 import Response

from courtside.settings import Settings
from serving.api.app import ApiConfig, create_app
from serving.api.gateway import GatewayConfig
from serving.api.live import LiveService
from serving.api.ratelimit import RateLimit
from serving.api.status import ServiceStatus
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


MIN_TOKEN_LENGTH = 16


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


def raise_fd_limit() -> int:
    """As many open files as allowed (each WebSocket client is one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def _only_ws_path(connection, request):
    if request.path.split("?")[0] != WS_PATH:
        body = f"the WebSocket gateway is at {WS_PATH}\n".encode()
        return Response(404, "Not Found", Headers([("Content-Type", "text/plain"),
                                                   ("Content-Length", str(len(body)))]), body)
    return None


async def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    token = operator_token(settings)
    configure_logging([token or ""])
    files = raise_fd_limit()
    db = make_engine(settings.database_url)
    migrate(db)
    gateway_cfg = GatewayConfig(rate_hz=args.rate_hz, heartbeat_s=args.heartbeat_s, buffer_size=args.buffer_size,
                                max_lag_bytes=args.max_lag_bytes, send_buffer_bytes=args.send_buffer_bytes or None)
    service = LiveService(db, settings.bankroll, gateway_cfg, poll_s=args.poll_s)
    status = ServiceStatus(settings.prediction_url, settings.dagster_url)
    ws_port = args.ws_port if args.ws_port is not None else settings.ws_port
    port = args.port if args.port is not None else settings.api_port
    config = ApiConfig(token=token, rate=RateLimit.parse(args.rate_limit or settings.api_rate_limit),
                       ws_url=settings.ws_public_url, ws_port=ws_port, run_service=False)
    app = create_app(service, status, config)
    await service.start()
    async with serve(service.gateway.handler, args.host, ws_port, compression=None, max_size=64 * 1024,
                     max_queue=16, ping_interval=20, ping_timeout=20, close_timeout=5,
                     process_request=_only_ws_path, backlog=4096) as ws_server:
        ws_port = ws_server.sockets[0].getsockname()[1]
        log.info("WebSocket gateway on ws://%s:%d%s (up to %d open files); operator endpoints %s", args.host, ws_port,
                 WS_PATH, files, "enabled" if token else "DISABLED (no COURTSIDE_API_TOKEN)")
        server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=port, log_config=None, loop="none",
                                               ws="none", lifespan="on", access_log=not args.no_access_log,
                                               timeout_graceful_shutdown=5))
        try:
            await server.serve()
        finally:
            await service.stop()
    db.dispose()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.api", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="REST API and dashboard (default COURTSIDE_API_PORT or 8000)")
    parser.add_argument("--ws-port", type=int, help="WebSocket gateway (default COURTSIDE_WS_PORT or 8001)")
    parser.add_argument("--rate-limit", help="requests/seconds per client (default COURTSIDE_API_RATE_LIMIT, 300/60)")
    parser.add_argument("--rate-hz", type=float, default=4.0, help="flushes per second per room at most")
    parser.add_argument("--heartbeat-s", type=float, default=5.0)
    parser.add_argument("--buffer-size", type=int, default=512, help="messages kept per room for resuming")
    parser.add_argument("--max-lag-bytes", type=int, default=256 << 10,
                        help="unsent bytes before a client is dropped")
    parser.add_argument("--send-buffer-bytes", type=int, default=64 << 10,
                        help="kernel send buffer per WebSocket connection (0: the kernel's autotuning)")
    parser.add_argument("--poll-s", type=float, default=0.1, help="seconds between reads of the event log")
    parser.add_argument("--no-access-log", action="store_true")
    args = parser.parse_args(argv)
    return uvloop.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
