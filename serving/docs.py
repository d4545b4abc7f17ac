"""The API docs pages of both services, offline: Swagger UI from the files the installed BentoML package ships,
ReDoc from the standalone bundle the installed ``fastapi-offline`` package ships (FastAPI's default pages load
them from a CDN, and Google's fonts for ReDoc, and stay blank without internet). Both pages are generated here
with local URLs only: no external address at all, and nothing the scripts would fetch from the internet by
themselves either (Swagger UI's online validator badge is off; ReDoc's sidebar logo, ``REDOC_LOGO``, is replaced
in the bundle served)."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles


def _package_folder(package: str, why: str) -> Path:
    spec = importlib.util.find_spec(package)  # located, not imported (the live API does not load BentoML)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"{package} is not installed: {why}")
    return Path(spec.origin).parent


SWAGGER_FILES = (
    _package_folder("bentoml", "its Swagger UI files serve the docs pages") / "_internal/server/static_content"
)
"""Swagger UI's bundle, stylesheet and favicons, as BentoML installs them."""
REDOC_FILES = _package_folder("fastapi_offline", "its ReDoc bundle serves the ReDoc pages") / "static"
"""ReDoc's standalone bundle (``redoc.standalone.js``) and a favicon, as fastapi-offline installs them."""
REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
"""The one address ReDoc's bundle loads by itself (the Redocly logo of its sidebar, hidden when it fails to
load): the bundle is served with an empty ``data:`` URL instead, so the page asks nothing of the internet."""
DOCS_CACHE = {"Cache-Control": "public, max-age=3600"}


@lru_cache(maxsize=1)
@lru_cache(maxsize=1)
def redoc_bundle() -> bytes:
    """ReDoc's standalone bundle as served: the installed file with ``REDOC_LOGO`` replaced (read once: ~1 MB)."""
    return (REDOC_FILES / "redoc.standalone.js").read_bytes().replace(REDOC_LOGO, b"data:,")


def install_offline_docs(app: FastAPI, path: str, title: str, redoc: str) -> None:
    """Serve Swagger UI at ``path`` from local files under ``<path>/static``, and ReDoc at ``redoc`` from local
    files under ``<redoc>/static`` (the app must be created with ``docs_url=None`` and ``redoc_url=None``)."""
    static = f"{path.rstrip('/')}/static"
    app.mount(static, StaticFiles(directory=SWAGGER_FILES), name=f"docs-static-{path}")

    @app.get(path, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{title} - docs",
            swagger_js_url=f"{static}/swagger-ui-bundle.js",
            swagger_css_url=f"{static}/swagger-ui.css",
            swagger_favicon_url=f"{static}/favicon-light-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # else a badge from validator.swagger.io off loopback
        )

    redoc_static = f"{redoc.rstrip('/')}/static"

    @app.get(f"{redoc_static}/redoc.standalone.js", include_in_schema=False)
    def redoc_js() -> Response:
        return Response(redoc_bundle(), media_type="text/javascript; charset=utf-8", headers=DOCS_CACHE)

    @app.get(f"{redoc_static}/favicon.png", include_in_schema=False)
    def redoc_favicon() -> FileResponse:
        return FileResponse(REDOC_FILES / "favicon.png", media_type="image/png", headers=DOCS_CACHE)

    @app.get(redoc, include_in_schema=False)
    def redoc_page() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{title} - ReDoc",
            redoc_js_url=f"{redoc_static}/redoc.standalone.js",
            redoc_favicon_url=f"{redoc_static}/favicon.png",
            with_google_fonts=False,
        )
