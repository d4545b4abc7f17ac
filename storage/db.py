"""Engine, sessions and schema migrations of the application database.

The application database is a SQLite file by default and Postgres (``postgresql+psycopg://``)
in production; the same code serves both. Typical process start::

    from courtside.settings import Settings
    from storage.db import Database

    db = Database(Settings.from_env().database_url)
    db.migrate()  # idempotent, safe at every start, safe when processes race
    with db.session() as session, session.begin():
        ...

SQLite files are opened in WAL mode with foreign keys on and a busy timeout, so several
processes (Dagster runs, the live engine, the API) can share one file.

Migrations live in ``storage/migrations`` (inside the package, so they ship with it) and run
through Alembic's Python API; callers never need an ``alembic.ini``. To write a new revision
use ``python -m storage revision -m "what changed"`` (see ``storage/__main__.py``).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "courtside_alembic_version"
"""Alembic's version table. Not the default ``alembic_version``: Dagster and MLflow use Alembic
too, and an operator pointing them at the same Postgres database must not mix up revisions."""

SQLITE_BUSY_TIMEOUT_MS = 30_000
_PG_MIGRATION_LOCK_KEY = 0x436F7572  # pg_advisory_xact_lock key held while migrating ("Cour")
_ALEMBIC_LOCK = threading.Lock()  # Alembic's `context` and `op` proxies are process-global


DAGSTER_SCHEMA = "dagster"
"""Postgres schema of Dagster's run, event log and schedule storage in the production storage profile."""
MLFLOW_SCHEMA = "mlflow"
"""Postgres schema of MLflow's tracking and registry store in the production storage profile. Dagster and MLflow
both have tables named ``runs``, ``jobs`` and ``alembic_version``: in one database they need schemas of their own;
the application's tables stay in the default schema (``public``)."""


def is_postgres(url: str | URL | None) -> bool:
    """True for a PostgreSQL URL (any driver), False for SQLite, anything else or nothing."""
    if not url:
        return False
    try:
        return make_url(url).get_backend_name() == "postgresql"
    except Exception:  # noqa: BLE001 - not a SQLAlchemy URL (e.g. an MLflow http:// server): not Postgres
        return False


def schema_url(url: str | URL, schema: str, driver: str = "psycopg") -> str:
    """``url`` (a Postgres database) for a client that keeps its tables in ``schema`` of the same database: the
    same server, database and credentials, the SQLAlchemy ``driver`` (``psycopg`` or ``psycopg2``) and
    ``search_path`` set to ``schema`` by the connection's ``options`` (added to any options ``url`` has). Dagster's
    Postgres storage needs ``psycopg2`` (its event log sends ``NOTIFY`` with a bound parameter, which psycopg 3
    refuses); MLflow takes either. The password is kept (the result is a connection string, not for printing)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"not a PostgreSQL URL: {parsed.render_as_string(hide_password=True)}")
    query = dict(parsed.query)
    options = query.get("options", "")
    options = " ".join(options) if isinstance(options, tuple) else options
    query["options"] = f"{options} -csearch_path={schema}".strip()
    return parsed.set(drivername=f"postgresql+{driver}", query=query).render_as_string(hide_password=False)


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """Create the engine for ``url``; extra keyword arguments go to ``create_engine``.

    SQLite: creates the file's parent folder and sets WAL journal, foreign keys, a busy
    timeout and ``synchronous=NORMAL`` on every new connection. Postgres: ``pool_pre_ping``.
    """
    url = make_url(url)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough in WAL mode, much faster
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _wal(cursor: Any) -> None:
    """``PRAGMA journal_mode = WAL`` (persistent in the file; a no-op once set). Switching a fresh file needs
    it alone, and SQLite answers "database is locked" at once, without the busy timeout, while other
    connections have it open (processes starting together on a new database): retried until the timeout."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A ``sessionmaker`` bound to ``engine``; objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(url: str | URL | None = None) -> Config:
    """Alembic configuration of the application database, without any ``alembic.ini``.

    ``url`` is only needed by commands that open their own connection (e.g. ``revision
    --autogenerate``); :func:`migrate` and :func:`downgrade` pass their connection instead.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("version_table", VERSION_TABLE)
    if url is not None:
        # ConfigParser interpolation: a literal '%' (URL-encoded passwords) must be doubled.
        rendered = make_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def migrate(target: str | URL | Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` (default: the newest).

    Idempotent and safe to call at every process start, including by processes starting at
    the same time: the upgrade holds a database-wide lock (``BEGIN IMMEDIATE`` on SQLite, an
    advisory lock on Postgres) and runs in one transaction, so it applies completely or not at
    all, and a process that waited finds the schema already current.
    """
    _run_alembic(target, lambda config: command.upgrade(config, revision))


def downgrade(target: str | URL | Engine, revision: str = "base") -> None:
    """Downgrade the schema to ``revision`` (default: ``base``, dropping every table)."""
    _run_alembic(target, lambda config: command.downgrade(config, revision))


def current_revision(target: str | URL | Engine) -> str | None:
    """The schema's current Alembic revision, or ``None`` when never migrated."""
    from alembic.runtime.migration import MigrationContext

    with _engine_for(target) as engine, engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def head_revision() -> str | None:
    """The newest revision shipped with this package."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _run_alembic(target: str | URL | Engine, run: Callable[[Config], None]) -> None:
    with (
        _ALEMBIC_LOCK,
        _engine_for(target) as engine,
        engine.connect() as conn,
        _migration_lock(conn),
    ):
        config = alembic_config()
        config.attributes["connection"] = conn
        run(config)


@contextlib.contextmanager
def _engine_for(target: str | URL | Engine) -> Iterator[Engine]:
    """Use ``target`` if it is an engine, else a temporary engine disposed afterwards."""
    if isinstance(target, Engine):
        yield target
        return
    engine = make_engine(target)
    try:
        yield engine
    finally:
        engine.dispose()


@contextlib.contextmanager
def _migration_lock(conn: Connection) -> Iterator[None]:
    """Open the migration transaction on ``conn``, holding a database-wide lock.

    Alembic sees a transaction already in progress and runs inside it; it is committed here
    when the block succeeds and rolled back when it raises. On SQLite the Python driver would
    otherwise commit implicitly around DDL; we take manual control of the transaction instead
    (``isolation_level = None``), so the whole upgrade is atomic. Foreign keys are off while
    migrating, as SQLite's docs require for the copy-and-rename that batch mode performs, and
    checked before committing.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK_KEY})")
        yield
        conn.commit()
        return
    if conn.dialect.name != "sqlite":
        conn.begin()
        yield
        conn.commit()
        return
    dbapi_connection: Any = conn.connection.driver_connection
    previous_isolation = dbapi_connection.isolation_level
    dbapi_connection.isolation_level = None  # the driver no longer BEGINs/COMMITs on its own
    try:
        conn.exec_driver_sql("PRAGMA foreign_keys = OFF")  # ignored inside a transaction
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # waits up to busy_timeout for other writers
        yield
        violations = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if violations:
            raise RuntimeError(f"migration left foreign key violations: {violations[:10]}")
        conn.commit()
    finally:
        conn.rollback()  # no-op after a successful commit
        dbapi_connection.isolation_level = previous_isolation
        dbapi_connection.execute("PRAGMA foreign_keys = ON")


class Database:
    """The application database: an engine, its session factory and its migrations."""

    def __init__(self, url: str | URL, **engine_kwargs: Any) -> None:
        self.url = make_url(url)
        self.engine = make_engine(self.url, **engine_kwargs)
        self.sessions = session_factory(self.engine)

    @classmethod
    def from_settings(cls, settings: Any = None) -> Database:
        """The database named by ``settings.database_url`` (default: from the environment)."""
        if settings is None:
            from courtside.settings import Settings

            settings = Settings.from_env()
        return cls(settings.database_url)

    def migrate(self) -> None:
        """Bring the schema to the newest revision (see :func:`migrate`)."""
        migrate(self.engine)

    def session(self) -> Session:
        """A new session; use as ``with db.session() as s, s.begin(): ...``."""
        return self.sessions()

    def dispose(self) -> None:
        """Close all pooled connections."""
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"
