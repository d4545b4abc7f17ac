"""Where the listeners of ``make up`` bind and what protects each one when they are exposed.

By default every listener binds 127.0.0.1 and nothing else can reach it. ``COURTSIDE_BIND_HOST`` set to
another address exposes them; ``courtside up`` then refuses to start (exit code 2) unless each exposed
service is protected:

- the live API's operator endpoints: the operator token (``make up`` writes one);
- MLflow: its ``basic-auth`` app, an administrator and a read-only user (``COURTSIDE_MLFLOW_*``); the
  prediction service loads the champions as the read-only user;
- Dagster (no authentication of its own): stays on 127.0.0.1, and ``courtside.gatekeeper`` takes its port
  on the exposed address with the credentials of ``COURTSIDE_DAGSTER_*``.

The prediction service, the feed replay and the WebSocket gateway have nothing to change: they answer
reads only. docs/OPERATIONS.md explains each and the nginx equivalent of the Dagster proxy.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from courtside.gatekeeper import Credentials
from courtside.settings import MIN_TOKEN_LENGTH, Settings

MIN_MLFLOW_PASSWORD = 12
"""MLflow's own password policy (``mlflow.utils.validation._validate_password``)."""
MIN_OPERATOR_TOKEN = MIN_TOKEN_LENGTH
"""The live API's (``courtside.settings.MIN_TOKEN_LENGTH``)."""
LEGACY_MLFLOW_PASSWORD = "password1234"
"""The admin password older MLflow versions shipped; refused."""
WILDCARDS = ("0.0.0.0", "::", "")


SECRET_VARS = frozenset(
    {
        "COURTSIDE_READ_TOKEN",
        "COURTSIDE_MLFLOW_ADMIN_PASSWORD",
        "COURTSIDE_MLFLOW_READER_PASSWORD",
        "COURTSIDE_DAGSTER_PASSWORD",
        "COURTSIDE_DAGSTER_TOKEN",
        "COURTSIDE_API_TOKEN",
        "MLFLOW_AUTH_ADMIN_PASSWORD",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
        "MLFLOW_TRACKING_PASSWORD",
    }
)
"""Secrets no child process inherits: each service gets only the ones it needs (``ServiceSpec.env``)."""


def child_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the services inherit: this one without ``SECRET_VARS``."""
    return {k: v for k, v in (os.environ if env is None else env).items() if k not in SECRET_VARS}


def proxy_env(settings: Settings) -> dict[str, str]:
    """The Dagster proxy's credentials (only the proxy gets them)."""
    values = {
        "COURTSIDE_DAGSTER_USER": settings.dagster_user,
        "COURTSIDE_DAGSTER_PASSWORD": settings.dagster_password,
        "COURTSIDE_DAGSTER_TOKEN": settings.dagster_token,
    }
    return {k: v for k, v in values.items() if v}


@dataclass(frozen=True)
class Ports:
    """The ports of ``make up``."""

    dagster: int = 3000
    mlflow: int = 5000
    prediction: int = 3001
    feed: int = 8765
    api: int = 8000
    ws: int = 8001


@dataclass(frozen=True)
class Listener:
    """One address people reach and what protects it."""

    name: str
    url: str
    protection: str


def url_host(host: str) -> str:
    """``host`` as it goes in a URL (IPv6 addresses in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def connect_host(bind_host: str) -> str:
    """The address local processes use to reach a listener bound to ``bind_host``."""
    if bind_host in WILDCARDS:
        return "::1" if bind_host == "::" else "127.0.0.1"
    return bind_host


def public_host(settings: Settings) -> str:
    """The host name to print in URLs."""
    if settings.bind_host in WILDCARDS:
        return settings.allowed_hosts[0] if settings.allowed_hosts else socket.gethostname()
    if settings.bind_host in ("127.0.0.1", "localhost"):
        return "localhost"
    return url_host(settings.bind_host)


def exposure_problems(settings: Settings, operator_token: str | None, ports: Ports) -> list[str]:
    """Why ``make up`` must not expose its listeners (or protect them: ``COURTSIDE_PROTECT``) with these
    settings; empty when it may."""
    if not settings.requires_auth:
        return []
    found = []
    if not operator_token or len(operator_token) < MIN_OPERATOR_TOKEN:
        found.append(
            f"the live API's operator token (COURTSIDE_API_TOKEN or COURTSIDE_API_TOKEN_FILE) must have "
            f"at least {MIN_OPERATOR_TOKEN} characters"
        )
    for var, value in (
        ("COURTSIDE_MLFLOW_ADMIN_PASSWORD", settings.mlflow_admin_password),
        ("COURTSIDE_MLFLOW_READER_PASSWORD", settings.mlflow_reader_password),
    ):
        if not value:
            found.append(f"{var} is not set (MLflow's basic-auth users)")
        elif len(value) < MIN_MLFLOW_PASSWORD:
            found.append(f"{var} must have at least {MIN_MLFLOW_PASSWORD} characters")
        elif value == LEGACY_MLFLOW_PASSWORD:
            found.append(f"{var} is MLflow's old default password")
    if settings.mlflow_admin_user == settings.mlflow_reader_user:
        found.append("COURTSIDE_MLFLOW_READER_USER must differ from COURTSIDE_MLFLOW_ADMIN_USER")
    elif settings.mlflow_admin_password and settings.mlflow_admin_password == settings.mlflow_reader_password:
        found.append("COURTSIDE_MLFLOW_READER_PASSWORD must differ from COURTSIDE_MLFLOW_ADMIN_PASSWORD")
    found += [f"Dagster proxy: {p}" for p in Credentials.from_settings(settings).problems()]
    if settings.dagster_internal_port in (
        ports.dagster,
        ports.mlflow,
        ports.prediction,
        ports.feed,
        ports.api,
        ports.ws,
    ):
        found.append(f"COURTSIDE_DAGSTER_INTERNAL_PORT ({settings.dagster_internal_port}) collides with another port")
    return found


PRIVATE_HOST_PATTERNS = ("10.*", "192.168.*", *(f"172.{n}.*" for n in range(16, 32)), "[fc*", "[fd*")
"""The private addresses (RFC 1918, RFC 4193) MLflow's host check accepts by default."""


def mlflow_allowed_hosts(settings: Settings) -> str | None:
    """``--allowed-hosts`` of the MLflow server. None on the default loopback (MLflow's default: the loopback
    names and private IPs). When protected: the loopback names, the address local processes use, and the
    names of ``COURTSIDE_ALLOWED_HOSTS`` (any port) — or, without them, the private IPs as MLflow would."""
    if not settings.requires_auth:
        return None
    names = [
        "localhost",
        "127.0.0.1",
        "[::1]",
        url_host(connect_host(settings.bind_host)),
        *(settings.allowed_hosts or PRIVATE_HOST_PATTERNS),
    ]
    patterns: list[str] = []
    for name in names:
        has_port = ":" in (name.rsplit("]", 1)[-1] if name.startswith("[") else name)
        for pattern in (name,) if "*" in name or has_port else (name, f"{name}:*"):
            if pattern not in patterns:
                patterns.append(pattern)
    return ",".join(patterns)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by the owner only (also when the file existed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text)


def mlflow_auth_config(settings: Settings) -> Path:
    """Write MLflow's basic-auth configuration (``MLFLOW_AUTH_CONFIG_PATH``) into ``$COURTSIDE_HOME/mlflow``
    (0600): every authenticated user may read, its user store beside the tracking store. No password in it:
    the administrator's comes from the environment of the MLflow process only (``MLFLOW_AUTH_ADMIN_PASSWORD``)."""
    folder = settings.home / "mlflow"
    path = folder / "basic_auth.ini"
    _write_private(
        path,
        "\n".join(
            [
                "# Written by `courtside up` (courtside/exposure.py) at every start; edits are overwritten.",
                "[mlflow]",
                "default_permission = READ",
                f"database_uri = sqlite:///{folder / 'basic_auth.db'}",
                f"admin_username = {settings.mlflow_admin_user}",
                "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
                "",
            ]
        ),
    )
    return path


def mlflow_secret_key(settings: Settings) -> str:
    """The Flask secret of MLflow's basic-auth app (CSRF protection of its sign-up form):
    ``MLFLOW_FLASK_SERVER_SECRET_KEY``, else a random one kept in ``$COURTSIDE_HOME/mlflow/flask-secret-key`` (0600)."""
    if os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY"):
        return os.environ["MLFLOW_FLASK_SERVER_SECRET_KEY"]
    path = settings.home / "mlflow" / "flask-secret-key"
    if not path.exists() or not path.read_text().strip():
        _write_private(path, secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


def mlflow_server_env(settings: Settings) -> dict[str, str]:
    """The environment of an MLflow server behind basic-auth (the administrator bootstraps on first start)."""
    return {
        "MLFLOW_AUTH_CONFIG_PATH": str(mlflow_auth_config(settings)),
        "MLFLOW_AUTH_ADMIN_PASSWORD": settings.mlflow_admin_password or "",
        "MLFLOW_FLASK_SERVER_SECRET_KEY": mlflow_secret_key(settings),
    }


def reader_env(settings: Settings, mlflow_url: str) -> dict[str, str]:
    """The environment of a process that only loads models: the MLflow server as the read-only user."""
    return {
        "MLFLOW_TRACKING_URI": mlflow_url,
        "MLFLOW_TRACKING_USERNAME": settings.mlflow_reader_user,
        "MLFLOW_TRACKING_PASSWORD": settings.mlflow_reader_password or "",
    }


def _mlflow_call(
    url: str, method: str, path: str, user: str, password: str, body: dict | None = None, query: dict | None = None
) -> tuple[int, dict]:
    target = f"{url.rstrip('/')}/api/2.0/mlflow/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    data = json.dumps(body).encode() if body is not None else None
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    req = urllib.request.Request(
        target,
        data=data,
        method=method,
        headers={"Authorization": f"Basic {auth}", **({"Content-Type": "application/json"} if data else {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"message": raw.decode(errors="replace")[:300]}


def ensure_mlflow_reader(settings: Settings, mlflow_url: str) -> str:
    """Create the read-only MLflow user, or reset its password to the configured one (as the administrator).
    Returns what was done; raises RuntimeError when the server refuses the administrator."""
    admin, admin_pw = settings.mlflow_admin_user, settings.mlflow_admin_password or ""
    reader, reader_pw = settings.mlflow_reader_user, settings.mlflow_reader_password or ""
    status, body = _mlflow_call(mlflow_url, "GET", "users/get", admin, admin_pw, query={"username": reader})
    if status == 403:  # an administrator has every permission: the request itself was refused
        raise RuntimeError(
            f"MLflow refused the request to {mlflow_url} (403: {body.get('message', body)}); "
            "its Host check (--allowed-hosts, COURTSIDE_ALLOWED_HOSTS) must accept that address"
        )
    if status == 401:
        raise RuntimeError(
            f"MLflow refused the administrator {admin!r} ({status}): MLflow keeps the password the "
            "administrator was created with; set COURTSIDE_MLFLOW_ADMIN_PASSWORD to it (see "
            "docs/OPERATIONS.md, rotating MLflow passwords)"
        )
    if status == 200:
        if body.get("user", {}).get("is_admin"):
            _mlflow_call(
                mlflow_url, "PATCH", "users/update-admin", admin, admin_pw, {"username": reader, "is_admin": False}
            )
        status, body = _mlflow_call(
            mlflow_url, "PATCH", "users/update-password", admin, admin_pw, {"username": reader, "password": reader_pw}
        )
        done = "password set"
    else:
        status, body = _mlflow_call(
            mlflow_url, "POST", "users/create", admin, admin_pw, {"username": reader, "password": reader_pw}
        )
        done = "created"
    if status != 200:
        raise RuntimeError(f"could not set up the MLflow reader {reader!r}: {status} {body}")
    return done


def listeners(settings: Settings, ports: Ports) -> list[Listener]:
    """Every URL ``make up`` serves, and what protects it with these settings."""
    host = public_host(settings)
    guarded = settings.requires_auth
    dagster = (
        "loopback only"
        if not guarded
        else f"authenticating proxy (HTTP basic user {settings.dagster_user!r}"
        + (" or bearer token" if settings.dagster_token else "")
        + "); Dagster itself on "
        f"127.0.0.1:{settings.dagster_internal_port}"
    )
    mlflow = (
        "loopback only"
        if not guarded
        else f"MLflow basic-auth: admin {settings.mlflow_admin_user!r}, read-only {settings.mlflow_reader_user!r}"
        f"; Host check: {'COURTSIDE_ALLOWED_HOSTS' if settings.allowed_hosts else 'loopback and private IPs'}"
    )
    reads = "loopback only" if not guarded else "no credentials: read-only"
    return [
        Listener("Dagster UI", f"http://{host}:{ports.dagster}", dagster),
        Listener("MLflow UI", f"http://{host}:{ports.mlflow}", mlflow),
        Listener(
            "Prediction service",
            f"http://{host}:{ports.prediction}/api/docs",
            reads + ("" if not guarded else " predictions (it loads models as the MLflow reader)"),
        ),
        Listener(
            "Live feed replay",
            f"ws://{host}:{ports.feed}/feeds/live/match",
            reads + ("" if not guarded else " replay of public match data"),
        ),
        Listener(
            "Live dashboard + API",
            f"http://{host}:{ports.api}/dashboard/",
            "loopback only" if not guarded else "reads open and rate-limited; operator endpoints need the bearer token",
        ),
        Listener(
            "WebSocket gateway",
            f"ws://{host}:{ports.ws}/ws",
            reads + ("" if not guarded else " live updates, bounded per client"),
        ),
    ]
