"""A limit on the size of request bodies for the HTTP services (an ASGI middleware).

A request whose ``Content-Length`` is over the limit is answered 413 before a byte of its body is
read; a body without one (chunked) is counted as it streams in and refused as soon as it passes the
limit. The answer is the services' JSON error ``{"error": "payload_too_large", ...}``.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.errors import error_content

PREDICTION_MAX_BODY_BYTES = 16 << 20
"""Default of the prediction service. Measured: 10,000 ``/predict`` requests are 1.05 MB of compact
JSON (2.5 MB with every optional field, 3.3 MB indented); 10,000 ``/predict_live`` states with their
players 5.1 MB (8.6 MB indented)."""
API_MAX_BODY_BYTES = 64 << 10
"""Default of the live API, whose largest body (an alert subscription of 100 matches and 50
players) is ~20 KB."""


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the limit (FastAPI turns it into the 413)."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body over {limit} bytes (COURTSIDE_MAX_BODY_BYTES)")


class BodyLimitMiddleware:
    """413 for request bodies over ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            return await self._refuse(send)
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        exc = BodyTooLarge(self.max_bytes)
        body = json.dumps(error_content(413, exc.detail)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
