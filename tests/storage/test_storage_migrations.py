"""Alembic migrations: from empty, idempotent, reversible, concurrent, matching the models."""

from __future__ import annotations

import multiprocessing
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from storage.db import (
    VERSION_TABLE,
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    migrate,
)
from storage.models import Base
from storage.quarantine import QuarantinedRecord, quarantine_counts, replace_quarantine


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrate_from_empty_database_and_again(database_url: str) -> None:
    assert current_revision(database_url) is None
    migrate(database_url)
    assert current_revision(database_url) == head_revision()
    assert {"quarantine", VERSION_TABLE} <= _tables(database_url)
    migrate(database_url)  # idempotent: a second process start changes nothing
    migrate(database_url)
    assert current_revision(database_url) == head_revision()


def test_migrate_accepts_an_engine(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine)
        migrate(engine)
        assert current_revision(engine) == head_revision()
        assert quarantine_counts(engine) == {}
    finally:
        engine.dispose()


def test_downgrade_to_base_then_upgrade_again(database_url: str) -> None:
    migrate(database_url)
    engine = make_engine(database_url)
    try:
        replace_quarantine(engine, "atp_matches", [QuarantinedRecord("f.csv", 2, "x", "bad")])
        downgrade(database_url, "base")
        assert current_revision(database_url) is None
        assert "quarantine" not in _tables(database_url)
        migrate(database_url)
        assert current_revision(database_url) == head_revision()
        assert quarantine_counts(engine) == {}
    finally:
        engine.dispose()


def test_models_match_migrations(database_url: str) -> None:
    """Autogenerate finds nothing to do after upgrading: models and migrations agree."""
    migrate(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "version_table": VERSION_TABLE,
                    "compare_type": True,
                    "compare_server_default": True,
                },
            )
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def _start_process(url: str, barrier: Any, errors: Any) -> None:
    try:
        barrier.wait(timeout=60)
        migrate(url)
    except BaseException as exc:
        errors.put(f"{type(exc).__name__}: {exc}")
        raise SystemExit(1) from exc


def test_concurrent_migrate_calls_do_not_collide(database_url: str) -> None:
    """Processes starting together all call migrate(); exactly one creates the schema."""
    methods = multiprocessing.get_all_start_methods()
    mp = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    workers = 4
    barrier = mp.Barrier(workers)
    errors = mp.Queue()
    processes = [mp.Process(target=_start_process, args=(database_url, barrier, errors)) for _ in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    exitcodes = [process.exitcode for process in processes]
    reported = [errors.get(timeout=5) for code in exitcodes if code == 1]
    assert exitcodes == [0] * workers, reported
    assert current_revision(database_url) == head_revision()


def _connect_process(url: str, barrier: Any, errors: Any) -> None:
    try:
        barrier.wait(timeout=60)
        engine = make_engine(url)
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        engine.dispose()
    except BaseException as exc:
        errors.put(f"{type(exc).__name__}: {exc}")
        raise SystemExit(1) from exc


def test_processes_opening_a_new_sqlite_file_together_all_connect(tmp_path) -> None:
    """Switching a new file to WAL needs it alone, and SQLite answers "database is locked" at once (no busy
    timeout) to the others: seen as a CI failure of the concurrent-migrate test; every connection retries."""
    mp = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    workers, rounds = 8, 10
    for n in range(rounds):
        url = f"sqlite:///{tmp_path / f'new-{n}.db'}"
        barrier, errors = mp.Barrier(workers), mp.Queue()
        processes = [mp.Process(target=_connect_process, args=(url, barrier, errors)) for _ in range(workers)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=120)
        failed = [errors.get(timeout=5) for p in processes if p.exitcode != 0]
        assert failed == [], f"round {n}: {failed}"
