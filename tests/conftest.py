"""Shared fixtures: a real PostgreSQL server for the tests marked ``postgres``.

``postgres_url`` (session): the server's admin URL. Taken from ``COURTSIDE_TEST_POSTGRES_URL``
when set (CI starts the server), otherwise a throwaway server is started with
``scripts/test-postgres`` for the session and stopped at the end. When no server can be had the
tests FAIL with the reason; ``COURTSIDE_SKIP_POSTGRES=1`` skips them instead.

``postgres_database_url`` (per test): a fresh, empty database on that server, dropped after the
test, so tests never see each other's rows.

``prediction_service`` (session): one ``bentoml serve`` without a champion, shared by the engine, API
and fault tests.

Under pytest-xdist with ``--dist loadscope`` (``make test`` runs two workers) each test module is one
unit of work, so module fixtures (servers, real-data builds) are built once; the modules that share the
session's pipeline run (fixture ``runs``, tests/orchestration/conftest.py) are one unit, scheduled
first, as they are the longest chain. Each worker has its own session fixtures (and, without
``COURTSIDE_TEST_POSTGRES_URL``, its own throwaway PostgreSQL server).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url

pytest_plugins = ["tests.chaos.figures"]  # the fault suite's figures, printed at the end of the run

# OpenMP threads sleep when idle, as in the pipeline (orchestration/__init__.py), set before any test module
# loads XGBoost: two xdist workers each running multi-threaded XGBoost otherwise spin at every barrier
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

TEST_POSTGRES_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "test-postgres"
_HOW_TO = (
    "Set COURTSIDE_TEST_POSTGRES_URL=postgresql+psycopg://USER@HOST:PORT/postgres, or make "
    f"`{TEST_POSTGRES_SCRIPT} start` work (PostgreSQL server binaries initdb/pg_ctl on PATH), "
    "or set COURTSIDE_SKIP_POSTGRES=1 to skip the PostgreSQL tests."
)


def _check_reachable(url: str, origin: str) -> None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "no usable server"
        pytest.fail(f"PostgreSQL at {origin} is not reachable: {exc}\n{_HOW_TO}", pytrace=False)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Admin SQLAlchemy URL of a PostgreSQL server for this test session."""
    if os.environ.get("COURTSIDE_SKIP_POSTGRES") == "1":
        pytest.skip("COURTSIDE_SKIP_POSTGRES=1: PostgreSQL tests skipped")
    url = os.environ.get("COURTSIDE_TEST_POSTGRES_URL")
    if url:
        _check_reachable(url, "COURTSIDE_TEST_POSTGRES_URL")
        yield url
        return

    folder = tempfile.mkdtemp(prefix="courtside-pg-")
    try:
        started = subprocess.run(
            [str(TEST_POSTGRES_SCRIPT), "start", folder],
            capture_output=True,
            text=True,
            timeout=180,
        )
        error = started.stderr.strip() if started.returncode else ""
    except (OSError, subprocess.TimeoutExpired) as exc:
        error = str(exc)
    if error:
        _stop(folder)
        pytest.fail(f"could not start a throwaway PostgreSQL server:\n{error}\n{_HOW_TO}", pytrace=False)
    url = started.stdout.strip().splitlines()[-1]
    try:
        _check_reachable(url, f"{TEST_POSTGRES_SCRIPT} start ({url})")
        yield url
    finally:
        _stop(folder)


def _stop(folder: str) -> None:
    subprocess.run([str(TEST_POSTGRES_SCRIPT), "stop", folder], capture_output=True, timeout=120, check=False)
    shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def new_database(postgres_url: str) -> Iterator[str]:
    """URL of a new empty database on the test server, dropped on leaving."""
    name = f"courtside_test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:  # FORCE: ends sessions the test left open
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture
def postgres_database_url(postgres_url: str) -> Iterator[str]:
    """URL of a new empty database on the test server, dropped after the test."""
    with new_database(postgres_url) as url:
        yield url


@pytest.fixture(scope="module")
def postgres_module_db(postgres_url: str):
    """A SQLAlchemy engine on a new migrated database for the test module, dropped after it."""
    from storage.db import make_engine, migrate

    with new_database(postgres_url) as url:
        migrate(url)
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A throwaway Redis for the module (``scripts/test-redis``), or the one ``COURTSIDE_TEST_REDIS_URL`` names; the
    tests that need one skip only when ``redis-server`` is not installed (``scripts/ensure-test-tools`` installs it)."""
    url = os.environ.get("COURTSIDE_TEST_REDIS_URL")
    if url:
        yield url
        return
    if shutil.which("redis-server") is None:
        pytest.skip(
            "redis-server is not installed (Debian's redis-server: scripts/ensure-test-tools redis), and "
            "COURTSIDE_TEST_REDIS_URL names no Redis"
        )
    folder = tempfile.mkdtemp(prefix="courtside-redis-")
    script = str(Path(__file__).resolve().parents[1] / "scripts" / "test-redis")
    try:
        started = subprocess.run([script, "start", folder], capture_output=True, text=True, timeout=60)
        if started.returncode:
            pytest.fail(f"scripts/test-redis could not start Redis:\n{started.stderr}", pytrace=False)
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([script, "stop", folder], capture_output=True, timeout=60, check=False)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def prediction_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of one running ``bentoml serve`` of the prediction service for the whole session, without a
    champion (``/predict_live`` answers from the engine's prior): the engine, live API and fault tests
    share it, as none changes its state. Tests that need a champion start their own."""
    from tests.services import prediction_service as serve

    with serve(tmp_path_factory.mktemp("prediction-service-home")) as url:
        yield url


PIPELINE_MODULES = (
    "tests/orchestration/test_backtest_pipeline.py",
    "tests/orchestration/test_inplay_pipeline.py",
    "tests/orchestration/test_live_lane.py",
    "tests/orchestration/test_pipeline_real_data.py",
)
"""The modules whose tests use the session's pipeline run (fixture ``runs``): one unit of work under xdist."""


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadscope``: a test module is a unit of work, and the pipeline modules together are one."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class PipelineTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "pipeline" if module in PIPELINE_MODULES else super()._split_scope(nodeid)

    return PipelineTogether(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):  # only in an xdist worker
        return
    strays = [
        i.nodeid
        for i in items
        if "runs" in getattr(i, "fixturenames", ()) and i.nodeid.split("::", 1)[0] not in PIPELINE_MODULES
    ]
    if strays:
        raise pytest.UsageError(f"tests using the pipeline run outside PIPELINE_MODULES (tests/conftest.py): {strays}")
    # the pipeline unit first: the longest chain starts at once (with --no-loadscope-reorder the work
    # queue keeps the collection order)
    items.sort(key=lambda i: i.nodeid.split("::", 1)[0] not in PIPELINE_MODULES)
