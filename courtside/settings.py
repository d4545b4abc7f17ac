"""Configuration by environment: where the data is, where embedded state lives, which databases.

Every setting has an embedded default so a fresh clone runs with no configuration at all; every
default can be replaced by an environment variable for production (see README, "Configuration").
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The repository root (the folder holding pyproject.toml)."""

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
    prediction_url: str = "http://127.0.0.1:3001"
    """The BentoML prediction service (``COURTSIDE_PREDICTION_URL``)."""
    feed_url: str = "ws://127.0.0.1:8765"
    """The live feed (``COURTSIDE_FEED_URL``; ``make up`` starts a replay server there)."""
    bankroll: float = 1000.0
    """Starting bankroll of the paper-trading session (``COURTSIDE_BANKROLL``)."""
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

    @property
    def warehouse_dir(self) -> Path:
        """Parquet files written by assets."""
        return self.home / "warehouse"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        """Default artifact root for MLflow experiments created by the embedded store."""
        return self.home / "mlflow" / "artifacts"

    @property
    def uses_upstream(self) -> bool:
        """True when ingest reads the public upstream URLs."""
        return self.data_dir == UPSTREAM

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
            prediction_url=env.get("COURTSIDE_PREDICTION_URL") or "http://127.0.0.1:3001",
            feed_url=env.get("COURTSIDE_FEED_URL") or "ws://127.0.0.1:8765",
            bankroll=float(env.get("COURTSIDE_BANKROLL") or 1000.0),
            api_port=int(env.get("COURTSIDE_API_PORT") or 8000),
            ws_port=int(env.get("COURTSIDE_WS_PORT") or 8001),
            ws_public_url=env.get("COURTSIDE_WS_PUBLIC_URL") or "",
            api_token=(env.get("COURTSIDE_API_TOKEN") or "").strip() or None,
            api_token_file=env.get("COURTSIDE_API_TOKEN_FILE") or None,
            api_rate_limit=env.get("COURTSIDE_API_RATE_LIMIT") or "300/60",
            dagster_url=env.get("COURTSIDE_DAGSTER_URL")
            or f"http://127.0.0.1:{env.get('COURTSIDE_DAGSTER_PORT') or 3000}",
            # --- HTTP exposure (issue 9) ---
            trusted_proxies=tuple(p.strip() for p in (env.get("COURTSIDE_TRUSTED_PROXIES") or "").split(",")
                                  if p.strip()),
            allowed_origins=tuple(o.strip() for o in (env.get("COURTSIDE_ALLOWED_ORIGINS") or "").split(",")
                                  if o.strip()),
            read_token=(env.get("COURTSIDE_READ_TOKEN") or "").strip() or None,
            max_body_bytes=int(env["COURTSIDE_MAX_BODY_BYTES"]) if env.get("COURTSIDE_MAX_BODY_BYTES") else None,
        )

    def ensure_dirs(self) -> None:
        """Create the local folders the embedded defaults write to."""
        for path in (self.home, self.warehouse_dir, self.mlflow_artifacts_dir, self.dagster_home):
            path.mkdir(parents=True, exist_ok=True)
