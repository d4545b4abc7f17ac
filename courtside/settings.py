"""Configuration by environment: where the data is, where embedded state lives, which databases.

Every setting has an embedded default so a fresh clone runs with no configuration at all; every
default can be replaced by an environment variable for production (see README, "Configuration").
"""

from __future__ import annotations

import ipaddress
import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The repository root (the folder holding pyproject.toml)."""

MIN_TOKEN_LENGTH = 16
"""Fewest characters of any bearer token (operator, read, Dagster proxy): the one rule every process checks."""

UPSTREAM = "upstream"
"""Value of COURTSIDE_DATA_DIR that makes ingest read the public upstream URLs instead of a folder."""


def _default_data_dir() -> str:
    shared = PROJECT_ROOT.parent / "shared" / "data"
    return str(shared) if shared.is_dir() else str(PROJECT_ROOT / "data")


@dataclass(frozen=True)
class Settings:
    """Resolved configuration of one Courtside process."""

    data_dir: str
    """Local folder laid out like ../shared/data, or ``upstream`` for the public URLs."""
    home: Path
    """Embedded state: SQLite application database, MLflow store, Dagster home, warehouse."""
    database_url: str
    """SQLAlchemy URL of the application database (SQLite file or postgresql+psycopg://...)."""
    mlflow_tracking_uri: str
    """MLflow tracking (and registry) URI."""
    dagster_home: Path
    """Dagster instance folder (dagster.yaml, run and event storage)."""
    artifact_root: str = ""
    """Where MLflow keeps the artifacts (models, plots) of the experiments created from now on
    (``COURTSIDE_ARTIFACT_ROOT``): a URI such as ``s3://bucket/prefix`` (an S3-compatible store's endpoint in
    ``MLFLOW_S3_ENDPOINT_URL``, credentials as boto3 finds them) or a local path; empty: ``mlflow_artifacts_dir``.
    ``mlflow_artifact_root`` is the value in force."""
    prediction_url: str = "http://127.0.0.1:3001"
    """The BentoML prediction service (``COURTSIDE_PREDICTION_URL``)."""
    feed_url: str = "ws://127.0.0.1:8765"
    """The live feed (``COURTSIDE_FEED_URL``; ``make up`` starts a replay server there)."""
    bankroll: float = 1000.0
    """Starting bankroll of the paper-trading session (``COURTSIDE_BANKROLL``)."""
    sources_file: str = ""
    """File globs per dataset (``COURTSIDE_SOURCES``: a TOML file with a ``[globs]`` table; default
    ``<home>/sources.toml`` when it exists; see ``feeds.sources.load_globs``)."""
    errata_file: str = ""
    """The reviewed errata the ingest applies (``COURTSIDE_ERRATA``; default ``<home>/errata.csv`` when it exists,
    else the packaged ``feeds/errata.csv``)."""
    api_port: int = 8000
    """The live REST API and dashboard (``COURTSIDE_API_PORT``)."""
    ws_port: int = 8001
    """The WebSocket gateway, in the API process (``COURTSIDE_WS_PORT``)."""
    ws_public_url: str = ""
    """The gateway's URL as browsers reach it (``COURTSIDE_WS_PUBLIC_URL``; default: the page's host, ws_port)."""
    api_token: str | None = field(default=None, repr=False)
    """Bearer token of the operator endpoints (``COURTSIDE_API_TOKEN``); never printed (not in ``repr``)."""
    api_token_file: str | None = None
    """A file holding that token instead (``COURTSIDE_API_TOKEN_FILE``; ``make up`` writes one). The live API
    reads it (``serving.api.__main__.operator_token``); without either, its operator endpoints are off."""
    api_rate_limit: str = "300/60"
    """Requests per seconds per client, sliding window (``COURTSIDE_API_RATE_LIMIT``)."""
    dagster_url: str = "http://127.0.0.1:3000"
    """The Dagster webserver whose GraphQL API has the live data checks (``COURTSIDE_DAGSTER_URL``)."""
    # --- HTTP exposure (issue 9) ---
    trusted_proxies: tuple[str, ...] = ()
    """Reverse proxies (IP addresses or CIDR networks) whose ``X-Forwarded-For`` the live API believes, for
    its rate limit and the operator audit (``COURTSIDE_TRUSTED_PROXIES``, comma-separated); empty: none, the
    client is the socket's peer."""
    allowed_origins: tuple[str, ...] = ()
    """Origins whose pages may open the WebSocket gateway (``COURTSIDE_ALLOWED_ORIGINS``, comma-separated, e.g.
    ``https://desk.example``); empty: the dashboard's own, ``http://localhost:<port>`` and
    ``http://127.0.0.1:<port>`` of the API. A handshake without ``Origin`` (not a browser) is allowed."""
    read_token: str | None = field(default=None, repr=False)
    """Token that opens the gateway's ``ledger`` and ``alert:<id>`` rooms (``COURTSIDE_READ_TOKEN``, at least
    16 characters; the operator token opens them too); never printed."""
    max_body_bytes: int | None = None
    """Largest request body of the HTTP services, 413 beyond (``COURTSIDE_MAX_BODY_BYTES``); None: each
    service's default (prediction service 16 MiB, live API 64 KiB)."""

    # --- process exposure (issue 9, ops) ---
    bind_host: str = "127.0.0.1"
    """The address every ``make up`` listener binds (``COURTSIDE_BIND_HOST``). Loopback by default; anything
    else exposes them, and ``courtside up`` then refuses to start unless each is protected (docs/OPERATIONS.md).
    Dagster itself always stays on loopback: an authenticating proxy (``courtside.gatekeeper``) takes its port."""
    protect: bool = False
    """Protect the services as if exposed even on a loopback address (``COURTSIDE_PROTECT=1``): on a machine other
    people log in to, 127.0.0.1 is reachable by all of them. Always on when ``bind_host`` is not loopback."""
    allowed_hosts: tuple[str, ...] = ()
    """Host names people use to reach the exposed services (``COURTSIDE_ALLOWED_HOSTS``, comma-separated): what
    MLflow's host check accepts besides the loopback names (empty: MLflow's default, loopback and private IPs)."""
    mlflow_admin_user: str = "courtside-admin"
    """MLflow basic-auth administrator, created on the first start (``COURTSIDE_MLFLOW_ADMIN_USER``)."""
    mlflow_admin_password: str | None = field(default=None, repr=False)
    """Its password (``COURTSIDE_MLFLOW_ADMIN_PASSWORD``, at least 12 characters); required when exposed."""
    mlflow_reader_user: str = "courtside-reader"
    """The read-only MLflow user the prediction service loads models with (``COURTSIDE_MLFLOW_READER_USER``)."""
    mlflow_reader_password: str | None = field(default=None, repr=False)
    """Its password (``COURTSIDE_MLFLOW_READER_PASSWORD``, at least 12 characters); required when exposed."""
    dagster_user: str = "courtside"
    """HTTP basic user of the Dagster proxy (``COURTSIDE_DAGSTER_USER``)."""
    dagster_password: str | None = field(default=None, repr=False)
    """Its password (``COURTSIDE_DAGSTER_PASSWORD``, at least 12 characters)."""
    dagster_token: str | None = field(default=None, repr=False)
    """Or a bearer token for the Dagster proxy (``COURTSIDE_DAGSTER_TOKEN``, at least 16 characters)."""
    dagster_internal_port: int = 3100
    """Where Dagster listens on 127.0.0.1 when the proxy takes its port (``COURTSIDE_DAGSTER_INTERNAL_PORT``)."""
    crash_loop_restarts: int = 5
    """Supervisor: this many crashes of one service ... (``COURTSIDE_CRASH_LOOP_RESTARTS``)"""
    crash_loop_window_s: float = 600.0
    """... within this many seconds is a crash loop; an engine crash loop pauses betting
    (``COURTSIDE_CRASH_LOOP_WINDOW_S``)."""
    restart_backoff_max_s: float = 60.0
    """Supervisor: the longest wait before restarting a crashed service (``COURTSIDE_RESTART_BACKOFF_MAX_S``)."""

    @property
    def exposed(self) -> bool:
        """True when the listeners bind an address other machines can reach."""
        return not is_loopback(self.bind_host)

    @property
    def requires_auth(self) -> bool:
        """True when MLflow runs behind its basic-auth app and Dagster behind the authenticating proxy."""
        return self.protect or self.exposed

    @property
    def warehouse_dir(self) -> Path:
        """Parquet files written by assets."""
        return self.home / "warehouse"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        """Default artifact root for MLflow experiments created by the embedded store."""
        return self.home / "mlflow" / "artifacts"

    @property
    def mlflow_artifact_root(self) -> str:
        """The artifact root of new MLflow experiments, as a URI: ``artifact_root`` when set, else the local
        ``mlflow_artifacts_dir`` (``file:///...``). The pipeline creates its experiments with it and the MLflow
        server ``courtside up`` starts gives it to the experiments created through it (``--default-artifact-root``)."""
        return self.artifact_root or self.mlflow_artifacts_dir.as_uri()

    @property
    def uses_upstream(self) -> bool:
        """True when ingest reads the public upstream URLs."""
        return self.data_dir == UPSTREAM

    @property
    def errata_path(self) -> Path:
        """The errata file in force (``feeds.historical.errata_path``)."""
        from feeds.historical import errata_path

        return errata_path(self.errata_file, self.home)

    def source_globs(self) -> dict[str, list[str]]:
        """The file globs that replace a dataset's defaults (none unless a sources file says so)."""
        from feeds.sources import load_globs

        if self.sources_file:
            return load_globs(Path(self.sources_file))
        local = self.home / "sources.toml"
        return load_globs(local) if local.exists() else {}

    @property
    def proposed_errata_dir(self) -> Path:
        """Where the pipeline writes the errata it proposes, one CSV a dataset."""
        return self.home / "errata" / "proposed"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Read the settings from the environment (or from ``env`` when given)."""
        env = dict(os.environ if env is None else env)
        home = Path(env.get("COURTSIDE_HOME") or PROJECT_ROOT / ".courtside").resolve()
        data_dir = env.get("COURTSIDE_DATA_DIR") or _default_data_dir()
        if data_dir != UPSTREAM:
            data_dir = str(Path(data_dir).resolve())
        database_url = env.get("COURTSIDE_DATABASE_URL") or f"sqlite:///{home / 'courtside.db'}"
        mlflow_uri = env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
        dagster_home = Path(env.get("DAGSTER_HOME") or home / "dagster").resolve()
        return cls(
            data_dir=data_dir,
            home=home,
            database_url=database_url,
            mlflow_tracking_uri=mlflow_uri,
            dagster_home=dagster_home,
            artifact_root=artifact_root_uri(env.get("COURTSIDE_ARTIFACT_ROOT") or ""),
            prediction_url=env.get("COURTSIDE_PREDICTION_URL") or "http://127.0.0.1:3001",
            feed_url=env.get("COURTSIDE_FEED_URL") or "ws://127.0.0.1:8765",
            bankroll=float(env.get("COURTSIDE_BANKROLL") or 1000.0),
            errata_file=env.get("COURTSIDE_ERRATA") or "",
            sources_file=env.get("COURTSIDE_SOURCES") or "",
            api_port=int(env.get("COURTSIDE_API_PORT") or 8000),
            ws_port=int(env.get("COURTSIDE_WS_PORT") or 8001),
            ws_public_url=env.get("COURTSIDE_WS_PUBLIC_URL") or "",
            api_token=(env.get("COURTSIDE_API_TOKEN") or "").strip() or None,
            api_token_file=env.get("COURTSIDE_API_TOKEN_FILE") or None,
            api_rate_limit=env.get("COURTSIDE_API_RATE_LIMIT") or "300/60",
            dagster_url=env.get("COURTSIDE_DAGSTER_URL")
            or f"http://127.0.0.1:{env.get('COURTSIDE_DAGSTER_PORT') or 3000}",
            # --- process exposure (issue 9, ops) ---
            bind_host=(env.get("COURTSIDE_BIND_HOST") or "127.0.0.1").strip(),
            protect=(env.get("COURTSIDE_PROTECT") or "").strip().lower() in ("1", "true", "yes", "on"),
            allowed_hosts=tuple(h.strip() for h in (env.get("COURTSIDE_ALLOWED_HOSTS") or "").split(",") if h.strip()),
            mlflow_admin_user=env.get("COURTSIDE_MLFLOW_ADMIN_USER") or "courtside-admin",
            mlflow_admin_password=env.get("COURTSIDE_MLFLOW_ADMIN_PASSWORD") or None,
            mlflow_reader_user=env.get("COURTSIDE_MLFLOW_READER_USER") or "courtside-reader",
            mlflow_reader_password=env.get("COURTSIDE_MLFLOW_READER_PASSWORD") or None,
            dagster_user=env.get("COURTSIDE_DAGSTER_USER") or "courtside",
            dagster_password=env.get("COURTSIDE_DAGSTER_PASSWORD") or None,
            dagster_token=(env.get("COURTSIDE_DAGSTER_TOKEN") or "").strip() or None,
            dagster_internal_port=int(env.get("COURTSIDE_DAGSTER_INTERNAL_PORT") or 3100),
            crash_loop_restarts=int(env.get("COURTSIDE_CRASH_LOOP_RESTARTS") or 5),
            crash_loop_window_s=float(env.get("COURTSIDE_CRASH_LOOP_WINDOW_S") or 600.0),
            restart_backoff_max_s=float(env.get("COURTSIDE_RESTART_BACKOFF_MAX_S") or 60.0),
            # --- HTTP exposure (issue 9) ---
            trusted_proxies=tuple(
                p.strip() for p in (env.get("COURTSIDE_TRUSTED_PROXIES") or "").split(",") if p.strip()
            ),
            allowed_origins=tuple(
                o.strip() for o in (env.get("COURTSIDE_ALLOWED_ORIGINS") or "").split(",") if o.strip()
            ),
            read_token=(env.get("COURTSIDE_READ_TOKEN") or "").strip() or None,
            max_body_bytes=int(env["COURTSIDE_MAX_BODY_BYTES"]) if env.get("COURTSIDE_MAX_BODY_BYTES") else None,
        )

    def ensure_dirs(self) -> None:
        """Create the local folders the embedded defaults write to."""
        for path in (self.home, self.warehouse_dir, self.mlflow_artifacts_dir, self.dagster_home):
            path.mkdir(parents=True, exist_ok=True)


def artifact_root_uri(value: str) -> str:
    """``COURTSIDE_ARTIFACT_ROOT`` as MLflow takes it: a URI (``s3://bucket/prefix``, ``file:///...``) unchanged,
    a local path as a ``file://`` URI (absolute); empty stays empty (the default root)."""
    value = value.strip()
    if not value or urllib.parse.urlparse(value).scheme:
        return value
    return Path(value).expanduser().resolve().as_uri()


def is_loopback(host: str) -> bool:
    """True for an address only this machine reaches (127.0.0.0/8, ::1, ``localhost``)."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: assume it resolves to an address others can reach
