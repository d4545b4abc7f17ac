"""An authenticating reverse proxy for a web UI that has no authentication of its own: the Dagster UI.

Dagster OSS lets anyone who reaches its webserver launch jobs (``retrain_prematch``, ``settle_live``)
over GraphQL. So Dagster always listens on 127.0.0.1, and when ``make up`` exposes the services
(``COURTSIDE_BIND_HOST``) this proxy listens on the exposed address instead:

    python -m courtside.gatekeeper --host 0.0.0.0 --port 3000 --upstream http://127.0.0.1:3100

Every request needs credentials from the environment: HTTP basic (``COURTSIDE_DAGSTER_USER`` /
``COURTSIDE_DAGSTER_PASSWORD``) or a bearer token (``COURTSIDE_DAGSTER_TOKEN``); without them it answers
401 with a JSON body (and ``WWW-Authenticate: Basic`` so a browser asks). With them it forwards HTTP
and WebSocket (the UI's GraphQL subscriptions) to the loopback upstream, without the credentials.
State-changing requests and WebSocket handshakes whose ``Origin`` is another site are refused (403): a
browser holding the credentials must not be driven by another page. The same pattern with nginx is in
docs/OPERATIONS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hmac
import logging
import sys
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from courtside.settings import MIN_TOKEN_LENGTH, Settings

log = logging.getLogger("courtside.gatekeeper")

MIN_PASSWORD, MIN_TOKEN = 12, MIN_TOKEN_LENGTH
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "authorization",
    }
)
"""Request/response headers that belong to one connection (RFC 9110 7.6.1), plus the client's credentials
and Host, which are never passed upstream."""
WS_HEADERS = frozenset(
    {
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
    }
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Credentials:
    """What a request must carry: HTTP basic user + password, or a bearer token (either configured)."""

    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Credentials:
        return cls(settings.dagster_user, settings.dagster_password, settings.dagster_token)

    def problems(self) -> list[str]:
        """Why these credentials cannot protect anything (empty when they can)."""
        if not (self.password or self.token):
            return [
                "no credentials: set COURTSIDE_DAGSTER_PASSWORD (HTTP basic, with COURTSIDE_DAGSTER_USER) "
                "or COURTSIDE_DAGSTER_TOKEN (bearer)"
            ]
        found = []
        if self.password and len(self.password) < MIN_PASSWORD:
            found.append(f"COURTSIDE_DAGSTER_PASSWORD must have at least {MIN_PASSWORD} characters")
        if self.password and not self.user:
            found.append("COURTSIDE_DAGSTER_USER is empty")
        if self.token and len(self.token) < MIN_TOKEN:
            found.append(f"COURTSIDE_DAGSTER_TOKEN must have at least {MIN_TOKEN} characters")
        return found

    def allow(self, authorization: str | None) -> bool:
        """True when the ``Authorization`` header carries the configured credentials (constant-time compare)."""
        if not authorization:
            return False
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and self.token:
            return hmac.compare_digest(value.encode(), self.token.encode())
        if scheme.lower() == "basic" and self.password and self.user:
            try:
                user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            ok_user = hmac.compare_digest(user.encode(), self.user.encode())
            ok_password = hmac.compare_digest(password.encode(), self.password.encode())
            return bool(sep) and ok_user and ok_password
        return False


def _json_error(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status, headers=headers)


def _cross_site(request: web.Request) -> bool:
    """True when a browser sent this request from a page of another site: its ``Sec-Fetch-Site`` says so, or its
    Origin is not this host (a cross-site ``<img>`` GET carries no Origin, but browsers send Sec-Fetch-Site)."""
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        # a link followed from another site opens the UI (a top-level navigation); nothing else may come in
        return request.headers.get("Sec-Fetch-Mode", "").lower() != "navigate" or request.method != "GET"
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return bool(origin)
    return urlsplit(origin).netloc.lower() != (request.host or "").lower()


def _forward_headers(request: web.Request) -> dict[str, str]:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP | WS_HEADERS}
    peer = request.remote or ""
    prior = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
    headers["X-Forwarded-Host"] = request.host or ""
    headers["X-Forwarded-Proto"] = request.scheme
    return headers


def create_app(upstream: str, credentials: Credentials, realm: str = "Dagster") -> web.Application:
    """The proxy in front of ``upstream`` (e.g. ``http://127.0.0.1:3100``)."""
    if credentials.problems():
        raise ValueError("; ".join(credentials.problems()))
    upstream = upstream.rstrip("/")
    ws_upstream = "ws" + upstream[len("http") :] if upstream.startswith("http") else upstream
    app = web.Application(client_max_size=64 << 20)
    challenge = {"WWW-Authenticate": f'Basic realm="{realm}", charset="UTF-8"'}

    async def session_ctx(app: web.Application):
        app["session"] = aiohttp.ClientSession(
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_read=300)
        )
        yield
        await app["session"].close()

    app.cleanup_ctx.append(session_ctx)

    async def handle(request: web.Request) -> web.StreamResponse:
        if not credentials.allow(request.headers.get("Authorization")):
            log.info("401 %s %s from %s", request.method, request.path, request.remote)
            return _json_error(
                401, "unauthorized", f"{realm} needs credentials: HTTP basic or a bearer token", challenge
            )
        websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        if _cross_site(request):  # any method: Dagster runs GraphQL mutations over GET too (?query=mutation...)
            return _json_error(403, "forbidden", f"cross-site request from {request.headers.get('Origin')} refused")
        if request.method in SAFE_METHODS and "mutation" in request.rel_url.query.get("query", "").lower():
            return _json_error(405, "method_not_allowed", "GraphQL mutations are accepted over POST only")
        try:
            if websocket:
                return await _websocket(request)
            return await _http(request)
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            return _json_error(502, "bad_gateway", f"{realm} is not reachable behind the proxy: {type(exc).__name__}")

    async def _http(request: web.Request) -> web.StreamResponse:
        session: aiohttp.ClientSession = request.app["session"]
        body = request.content if request.body_exists else None
        async with session.request(
            request.method,
            upstream + request.rel_url.raw_path_qs,
            headers=_forward_headers(request),
            data=body,
            allow_redirects=False,
        ) as up:
            response = web.StreamResponse(status=up.status, reason=up.reason)
            for key, value in up.headers.items():
                if key.lower() in HOP_BY_HOP:
                    continue
                if key.lower() == "location" and value.startswith(upstream):
                    value = value[len(upstream) :] or "/"
                response.headers.add(key, value)
            await response.prepare(request)
            async for chunk in up.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    async def _websocket(request: web.Request) -> web.StreamResponse:
        session: aiohttp.ClientSession = request.app["session"]
        protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        async with session.ws_connect(
            ws_upstream + request.rel_url.raw_path_qs,
            protocols=protocols,
            headers=_forward_headers(request),
            autoping=True,
            max_msg_size=0,
        ) as up:
            down = web.WebSocketResponse(protocols=[up.protocol] if up.protocol else (), autoping=True, max_msg_size=0)
            await down.prepare(request)

            async def pump(src, dst) -> None:
                async for msg in src:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        await dst.send_str(msg.data)
                    elif msg.type == aiohttp.WSMsgType.BINARY:
                        await dst.send_bytes(msg.data)
                    else:
                        break

            tasks = [asyncio.create_task(pump(up, down)), asyncio.create_task(pump(down, up))]
            _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await down.close()
            return down

    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m courtside.gatekeeper", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (the exposed one)")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--upstream", default="http://127.0.0.1:3100", help="the loopback UI to protect")
    parser.add_argument("--realm", default="Dagster")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    credentials = Credentials.from_settings(Settings.from_env())
    if credentials.problems():
        log.error("refusing to start: %s", "; ".join(credentials.problems()))
        return 2
    log.info(
        "%s on http://%s:%d -> %s (HTTP basic user %r%s)",
        args.realm,
        args.host,
        args.port,
        args.upstream,
        credentials.user if credentials.password else None,
        ", bearer token" if credentials.token else "",
    )
    web.run_app(
        create_app(args.upstream, credentials, args.realm),
        host=args.host,
        port=args.port,
        print=None,
        access_log=None,
        handle_signals=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
