"""Writers of one embedded store: the write lock taken without waiting, and waiting for it in short naps."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import store.sqlite as sqlite_module
from store.event import Event
from store.sqlite import SQLiteStore
from tests.store.test_sqlite_events import QUERIES, expected, found, sample


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    backend = SQLiteStore(tmp_path / "s.db")
    yield backend
    backend.close()


def other_writer(store: SQLiteStore) -> sqlite3.Connection:
    """Another connection (as another collector process has) holding the write lock."""
    conn = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def ids(events: list[Event] | None) -> list[str] | None:
    return None if events is None else [e.id for e in events]


def test_try_put_events_writes_nothing_while_another_writer_holds_the_lock(store: SQLiteStore) -> None:
    events = sample()
    holder = other_writer(store)
    try:
        started = time.monotonic()
        assert store.try_put_events(events[:10]) is None
        assert time.monotonic() - started < 1.0  # not SQLite's busy timeout
        assert store.count_events() == 0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # the connection is usable and waits again as usual: its busy timeout is back
    assert store._conn().execute("PRAGMA busy_timeout").fetchone()[0] == sqlite_module.BUSY_TIMEOUT_MS
    assert ids(store.try_put_events(events[:10])) == ids(events[:10])
    assert not store._conn().in_transaction


def test_try_put_events_stores_and_indexes_as_put_events_does(tmp_path: Path) -> None:
    events = sample()
    tried, put = SQLiteStore(tmp_path / "tried.db"), SQLiteStore(tmp_path / "put.db")
    try:
        for first in range(0, 40, 15):
            part = events[first : first + 15]
            assert ids(tried.try_put_events(part)) == ids(put.put_events(part))
        # a batch with stored ids: only the new ones, as put_events
        assert ids(tried.try_put_events(events[30:])) == [] == ids(put.put_events(events[30:]))
        assert ids(tried.try_put_events(events[::-1][:5] + sample()[:2])) == []
        want = expected(events)
        for query in QUERIES:
            assert found(tried, query) == found(put, query) == want[query], query
        assert tried.try_put_events([]) == []
    finally:
        tried.close()
        put.close()


def test_a_lone_surrogate_is_replaced_when_stored_without_waiting(store: SQLiteStore) -> None:
    hostile = Event("ev-sur", sample()[0].timestamp, {"message": "bad \udcff byte", "event.kind": "event"})
    stored = store.try_put_events([hostile])
    assert ids(stored) == ["ev-sur"]
    assert store.get_event("ev-sur").fields["message"] == "bad \ufffd byte"
    assert not store._conn().in_transaction


def test_a_waiting_writer_goes_in_soon_after_the_other_commits(store: SQLiteStore) -> None:
    events = sample()
    holder = other_writer(store)
    released = threading.Event()

    def commit_later() -> None:
        time.sleep(0.3)
        holder.execute("COMMIT")
        released.set()

    thread = threading.Thread(target=commit_later)
    thread.start()
    try:
        assert ids(store.put_events(events[:5])) == ids(events[:5])  # waited for the lock, then stored
        assert released.is_set()
    finally:
        thread.join()
        holder.close()
    assert store.count_events() == 5


def test_a_writer_gives_up_with_sqlites_error_after_the_busy_timeout(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "BUSY_TIMEOUT_MS", 200)
    holder = other_writer(store)
    try:
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            store.put_events(sample()[:3])
        assert 0.15 < time.monotonic() - started < 5
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.count_events() == 0
    assert not store._conn().in_transaction
    assert ids(store.put_events(sample()[:3])) == ids(sample()[:3])
