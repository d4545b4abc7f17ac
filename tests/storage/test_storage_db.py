"""Engine and session factory: SQLite settings for several processes, Postgres options."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from storage.db import Database, make_engine, session_factory
from storage.models import Quarantine


def test_sqlite_file_is_shared_safely(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "courtside.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            pragma = conn.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA busy_timeout").scalar() >= 5000
        assert path.parent.is_dir()
    finally:
        engine.dispose()


def test_postgres_engine_pings_pooled_connections() -> None:
    engine = make_engine("postgresql+psycopg://user@localhost:5432/db")
    assert engine.pool._pre_ping  # type: ignore[attr-defined]
    assert engine.dialect.driver == "psycopg"


def test_sessions_and_database_class(database_url: str) -> None:
    db = Database(database_url)
    try:
        db.migrate()
        db.migrate()
        moment = datetime(2024, 6, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))
        with db.session() as session, session.begin():
            session.add(
                Quarantine(
                    source="s",
                    location="l",
                    line=1,
                    record="r",
                    reason="why",
                    stage="live",
                    batch_id="b",
                    created_at=moment,
                )
            )
        with session_factory(db.engine)() as session:
            row = session.scalars(select(Quarantine)).one()
        assert row.created_at == moment
        assert row.created_at.tzinfo == UTC
        assert "password" not in repr(db)
    finally:
        db.dispose()


def test_naive_datetimes_are_refused(engine: Engine) -> None:
    with pytest.raises(Exception, match="naive datetime"), session_factory(engine)() as session:
        session.add(
            Quarantine(
                source="s",
                location="l",
                record="r",
                reason="r",
                stage="live",
                batch_id="b",
                created_at=datetime(2024, 1, 1),
            )
        )
        session.commit()
