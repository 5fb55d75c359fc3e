"""Waiting for SQLite's locks where its busy handler does not: switching a file to WAL, taking the write lock."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from store.compliance import ComplianceRecords
from store.detection_state import DetectionStateStore
from store.errors import StoreError
from store.intel import IntelStore
from store.sqlite import SQLiteStore
from store.sqlite_busy import until_free, use_wal


@pytest.fixture
def journal_file(tmp_path: Path) -> Path:
    """A database file in rollback-journal mode (as a new file, or one an earlier version wrote)."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    return path


@pytest.fixture
def writer(journal_file: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding the file's write lock (RESERVED: it is opening or switching it too)."""
    conn = sqlite3.connect(journal_file, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    yield conn
    conn.close()


def _release_later(conn: sqlite3.Connection, seconds: float = 0.2) -> threading.Thread:
    def release() -> None:
        time.sleep(seconds)
        conn.execute("COMMIT")

    thread = threading.Thread(target=release)
    thread.start()
    return thread


def test_sqlite_refuses_the_switch_to_wal_at_once_while_another_connection_writes(
    journal_file: Path, writer: sqlite3.Connection
) -> None:
    conn = sqlite3.connect(journal_file, isolation_level=None, timeout=5)  # a busy handler of 5 s: not used
    began = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        conn.execute("PRAGMA journal_mode=WAL")
    assert time.monotonic() - began < 1
    conn.close()


def test_use_wal_waits_for_the_other_connection_and_switches(journal_file: Path, writer: sqlite3.Connection) -> None:
    conn = sqlite3.connect(journal_file, isolation_level=None)
    thread = _release_later(writer)
    began = time.monotonic()
    use_wal(conn, timeout_ms=10_000)
    thread.join()
    assert time.monotonic() - began >= 0.15
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


@pytest.mark.parametrize("open_store", [SQLiteStore, ComplianceRecords, DetectionStateStore, IntelStore],
                         ids=["events", "compliance", "detection-state", "intel"])  # fmt: skip
def test_every_store_opens_a_file_another_connection_is_switching(
    journal_file: Path, writer: sqlite3.Connection, open_store: type
) -> None:
    thread = _release_later(writer)
    store = open_store(journal_file)
    thread.join()
    try:
        conn = sqlite3.connect(journal_file)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()
    finally:
        store.close()


def test_until_free_without_waiting_says_busy_at_once(journal_file: Path, writer: sqlite3.Connection) -> None:
    conn = sqlite3.connect(journal_file, isolation_level=None, timeout=0)
    assert until_free(lambda: conn.execute("BEGIN IMMEDIATE"), 10_000, wait=False) is False
    assert not conn.in_transaction
    writer.execute("COMMIT")
    assert until_free(lambda: conn.execute("BEGIN IMMEDIATE"), 10_000, wait=False) is True
    assert conn.in_transaction
    conn.execute("ROLLBACK")
    conn.close()


def test_until_free_gives_up_with_sqlites_error_after_the_timeout(
    journal_file: Path, writer: sqlite3.Connection
) -> None:
    conn = sqlite3.connect(journal_file, isolation_level=None, timeout=0)
    began = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        until_free(lambda: conn.execute("BEGIN IMMEDIATE"), 150)
    assert 0.15 <= time.monotonic() - began < 5
    conn.close()


def test_until_free_raises_other_errors_at_once(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    calls: list[int] = []

    def attempt() -> None:
        calls.append(1)
        conn.execute("SELECT * FROM no_such_table")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        until_free(attempt, 10_000)
    assert calls == [1]
    conn.close()


def test_a_file_that_is_not_a_database_is_a_store_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    path.write_bytes(b"not a database, " * 512)
    with pytest.raises(StoreError, match=rf"cannot open embedded store at {path}: file is not a database"):
        SQLiteStore(path)
