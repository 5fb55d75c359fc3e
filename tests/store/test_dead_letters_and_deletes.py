"""Dead letters keyed by source, offset and content (also in databases made before the key), and event deletes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from store.sqlite import SQLiteStore
from tests.helpers import event


def test_an_older_database_gains_the_key_and_keeps_its_dead_letters(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, source TEXT NOT NULL, "
        "offset TEXT NOT NULL, reason TEXT NOT NULL, raw TEXT NOT NULL)"
    )
    for _ in range(2):  # the duplicates an older version stored stay, as they were
        conn.execute("INSERT INTO dead_letters(at, source, offset, reason, raw) VALUES "
                     "('2026-11-01T00:00:00.000000Z', 'file:/var/log/x', '10', 'bad', 'raw')")  # fmt: skip
    conn.commit()
    conn.close()
    store = SQLiteStore(path)
    try:
        first = store.add_dead_letter("file:/var/log/x", "10", "bad", "raw")
        again = store.add_dead_letter("file:/var/log/x", "10", "bad again", "raw")
        assert again == first
        assert store.count_dead_letters() == 3
        assert {"key"} <= {r[1] for r in store._conn().execute("PRAGMA table_info(dead_letters)")}
    finally:
        store.close()
    SQLiteStore(path).close()  # opening it again migrates nothing and fails on nothing


def test_deleted_events_are_gone_from_search_and_terms(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "x.db")
    try:
        keep = event(0, {"source.ip": "10.0.0.1", "message": "pump started"}, event_id="keep")
        drop = event(1, {"source.ip": "10.0.0.1", "message": "pump stopped"}, event_id="drop")
        store.put_events([keep, drop])
        assert store.delete_events(["drop", "drop", "never-stored"]) == 1
        assert [e.id for e in store.search_events(filters={"source.ip": "10.0.0.1"})] == ["keep"]
        assert store.search_events(text="stopped") == []
        assert store.count_events() == 1
        assert store.put_events([drop]) == [drop]  # the id can be stored again
    finally:
        store.close()
