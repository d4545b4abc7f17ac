"""The API docs pages of both services, offline: Swagger UI from the files the installed BentoML package ships
(FastAPI's default page loads them from a CDN, and stays blank without internet). ReDoc is not served: no
installed package ships it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles


def _bentoml_folder() -> Path:
    spec = importlib.util.find_spec("bentoml")  # located, not imported: the live API does not load BentoML
    if spec is None or spec.origin is None:
        raise RuntimeError("BentoML is not installed: its Swagger UI files serve the docs pages")
    return Path(spec.origin).parent


SWAGGER_FILES = _bentoml_folder() / "_internal" / "server" / "static_content"
"""Swagger UI's bundle, stylesheet and favicons, as BentoML installs them."""


def install_offline_docs(app: FastAPI, path: str, title: str) -> None:
    """Serve Swagger UI at ``path`` from local files under ``<path>/static`` (the app must be created with
    ``docs_url=None``)."""
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
        )
