"""One JSON shape for every error of the HTTP services (the prediction service and the live API):
``{"error": code, "message": sentence, "detail": [...] | null}``.

Validation errors name the fields in ``detail[].loc`` (the engine's client takes the request's index
from it) and are bounded: at most ``MAX_DETAILS`` entries, each with the input as a short excerpt, so
a request is never echoed back whole. NaN or Infinity in a body is parsed (Python's JSON accepts
them) and then refused by the models (``allow_inf_nan=False``) like any invalid value. An unexpected
exception answers 500 ``internal_error`` without its text; the traceback goes to the log.
"""

from __future__ import annotations

import logging
import reprlib
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

ERROR_NAMES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    426: "upgrade_required",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}
MAX_DETAILS = 10
"""Validation errors listed in ``detail`` (the message says how many there were)."""
EXCERPT_CHARS = 200
"""Longest excerpt of an invalid input (and of a name in ``loc``) sent back."""

_excerpts = reprlib.Repr()  # bounded work and size whatever the input (Python 3.11 takes no keywords)
_excerpts.maxlevel, _excerpts.maxstring, _excerpts.maxlong, _excerpts.maxother = 3, EXCERPT_CHARS, 60, EXCERPT_CHARS
_excerpts.maxdict = _excerpts.maxlist = _excerpts.maxtuple = _excerpts.maxset = 8


class ErrorBody(BaseModel):
    """Every error: a machine-readable code and a sentence for people."""

    error: str = Field(
        description="not_found, validation_error, unauthorized, forbidden, payload_too_large, "
        "rate_limited, internal_error, unavailable, ..."
    )
    message: str
    detail: list[dict[str, Any]] | None = Field(
        None,
        description=f"the invalid fields (validation errors): at most {MAX_DETAILS}, each with `loc`, `msg`, "
        f"`type` and an `input` excerpt of at most {EXCERPT_CHARS} characters",
    )


def error_content(status: int, message: str, detail: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"error": ERROR_NAMES.get(status, "error"), "message": message, "detail": detail}


def error_response(
    status: int, message: str, detail: list[dict[str, Any]] | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        error_content(status, message, detail), status_code=status, headers=dict(headers) if headers else None
    )


def excerpt(value: Any) -> str:
    """A short, JSON-safe picture of any input (built without rendering the whole value)."""
    try:
        text = value if isinstance(value, str) else _excerpts.repr(value)
    except ValueError:  # e.g. an integer too long to print
        text = f"<{type(value).__name__}>"
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 3] + "..."


def _loc_part(part: Any) -> str | int:
    if isinstance(part, int) and not isinstance(part, bool):
        return part
    return excerpt(str(part))


def bounded_details(errors: Iterable[Mapping[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    """(how many errors, the first ``MAX_DETAILS`` as ``{loc, msg, type, input}`` with short excerpts)."""
    shown: list[dict[str, Any]] = []
    total = 0
    for e in errors:
        total += 1
        if len(shown) < MAX_DETAILS:
            item: dict[str, Any] = {
                "loc": [_loc_part(p) for p in e.get("loc", ())],
                "msg": excerpt(str(e.get("msg", "invalid"))),
                "type": str(e.get("type", "error")),
            }
            if "input" in e:
                item["input"] = excerpt(e["input"])
            shown.append(item)
    return total, shown


def _not_json(error: Mapping[str, Any]) -> Mapping[str, Any]:
    """FastAPI's error for a body that is not JSON, told plainly: its ``loc`` is ``["body", <character>]``,
    and a client reading the first integer of ``loc`` as the request's index would blame request <character>."""
    if error.get("type") != "json_invalid":
        return error
    loc = list(error.get("loc", ()))
    ctx = error.get("ctx")
    reason = ctx.get("error") if isinstance(ctx, Mapping) and ctx.get("error") else "JSON decode error"
    at = f" at character {loc[1]}" if len(loc) > 1 and isinstance(loc[1], int) else ""
    return {"loc": loc[:1] or ["body"], "msg": f"the body is not valid JSON: {reason}{at}", "type": "json_invalid"}


def validation_response(errors: Iterable[Mapping[str, Any]]) -> JSONResponse:
    """422 naming the first invalid field, with a bounded ``detail``."""
    total, detail = bounded_details(_not_json(e) for e in errors)
    if not detail:
        return error_response(422, "invalid request", [])
    first = detail[0]
    where = ".".join(str(x) for x in first["loc"])
    message = f"invalid {where}: {first['msg']}" if where and first["type"] != "json_invalid" else first["msg"]
    if total > 1:
        message += f" ({total} errors; the first {len(detail)} are in detail)"
    return error_response(422, message, detail)


INTERNAL_ERROR = "internal error (logged by the server)"


def framework_message(status: int, message: str, docs: str) -> str:
    """The sentence for a framework's stock error text ("Not Found", ...), the same in both services."""
    if status == 400 and message == "There was an error parsing the body":
        return "the body could not be read (JSON in UTF-8 expected)"
    if status == 404 and message == "Not Found":
        return f"no such endpoint (see {docs})"
    if status == 405 and message == "Method Not Allowed":
        return "method not allowed on this endpoint"
    if status == 500 and message in ("", "Internal Server Error"):
        return INTERNAL_ERROR
    return message


def install_error_handlers(app: FastAPI, docs: str) -> None:
    """JSON errors in one shape for ``app``: HTTP errors, validation errors, anything unexpected."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 422 and isinstance(exc.detail, list):
            return validation_response(exc.detail)
        message = exc.detail if isinstance(exc.detail, str) else excerpt(exc.detail)
        message = framework_message(exc.status_code, message, docs)
        return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_response(exc.errors())

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
        return error_response(500, INTERNAL_ERROR)


class JsonErrorsMiddleware:
    """Rewrites error answers that are not JSON (a framework's own plain-text 404 or 500, outside the
    app's handlers) into the JSON shape, keeping their status and headers; the framework's stock texts get
    the app's own sentences (``framework_message``, ``docs`` as ``install_error_handlers``)."""

    def __init__(self, app: ASGIApp, docs: str = "/docs"):
        self.app = app
        self.docs = docs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        held: Message | None = None
        text = b""

        async def send_json_errors(message: Message) -> None:
            nonlocal held, text
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", ()))
                if message["status"] >= 400 and not headers.get(b"content-type", b"").startswith(b"application/json"):
                    held = message
                    return
            elif held is not None and message["type"] == "http.response.body":
                text = (text + message.get("body", b""))[:EXCERPT_CHARS]
                if message.get("more_body", False):
                    return
                status = held["status"]
                sentence = framework_message(status, text.decode("utf-8", "replace").strip(), self.docs) or "error"
                body = JSONResponse(error_content(status, sentence)).body
                keep = [(k, v) for k, v in held.get("headers", ()) if k not in (b"content-type", b"content-length")]
                await send(
                    {
                        **held,
                        "headers": [
                            *keep,
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                held = None
                return
            await send(message)

        await self.app(scope, receive, send_json_errors)
