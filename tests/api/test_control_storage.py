"""The operator-control tables on SQLite and on a real PostgreSQL: append-only history, concurrent
changes never lost, engine heartbeats upserted."""

from __future__ import annotations

import threading

import pytest

from storage import live as store
from storage.db import make_engine, migrate


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request, tmp_path):
    url = (
        f"sqlite:///{tmp_path / 'controls.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_database_url")
    )
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def test_changes_are_versioned_and_keep_what_they_do_not_touch(db):
    assert store.current_controls(db) == store.CONTROL_DEFAULTS
    store.change_controls(db, "10.0.0.1", paused=True, reason="lunch")
    store.change_controls(db, "10.0.0.2", risk_limits={"max_stake": 20.0})
    now = store.current_controls(db)
    assert (now["version"], now["paused"], now["kill_switch"], now["risk_limits"]) == (
        2,
        True,
        False,
        {"max_stake": 20.0},
    )
    assert now["changed_by"] == "10.0.0.2" and now["changed_at"].tzinfo is not None
    assert [h["version"] for h in store.control_history(db)] == [2, 1]
    assert store.control_history(db)[1]["reason"] == "lunch"


def test_concurrent_changes_are_all_recorded(db):
    errors = []

    def pull(i: int) -> None:
        try:
            store.change_controls(db, f"client-{i}", risk_limits={"max_open_orders": i}, attempts=50)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=pull, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    history = store.control_history(db, 100)
    assert [h["version"] for h in history] == list(range(8, 0, -1))  # no version twice, none lost
    assert {h["changed_by"] for h in history} == {f"client-{i}" for i in range(8)}


def test_engine_heartbeats_are_upserted(db):
    store.record_engine_status(db, "paper", 0, {"messages": 1})
    store.record_engine_status(db, "paper", 3, {"messages": 9})
    (row,) = store.engine_statuses(db)
    assert (row["engine"], row["controls_version"], row["payload"]) == ("paper", 3, {"messages": 9})
    store.reset_live(db)  # a new session forgets heartbeats, not the operator's controls
    store.change_controls(db, "x", kill_switch=True)
    store.reset_live(db)
    assert store.engine_statuses(db) == [] and store.current_controls(db)["kill_switch"] is True
