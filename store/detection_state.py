"""Persistent state of the stream detectors (correlation windows) on the embedded SQLite file.

Correlation windows must survive a restart: an attacker's fourth failed login after a
restart still counts the three before it.  This module keeps one small table,
``detection_state`` (key, JSON value, expiry), in the same SQLite file as the events, on its
own connection so it never shares a transaction with :mod:`store.sqlite`.  Values are opaque
JSON text to the store; the detections package decides what they mean.  Expired rows are
dropped by :meth:`DetectionStateStore.prune`, so the table stays bounded by live windows.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime
from pathlib import Path

from store.errors import StoreError
from store.event import format_ts
from store.sqlite_busy import use_wal

_DDL = """
CREATE TABLE IF NOT EXISTS detection_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    expires TEXT NOT NULL
)
"""


class DetectionStateStore:
    """Key -> JSON text with an expiry time, on the SQLite file at ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._conn().execute(_DDL)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                # autocommit: every save is durable on return, as the window it records
                conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
                use_wal(conn)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open detection state at {self.path}: {exc}") from exc
            self._local.conn = conn
        return conn

    def load(self, key: str) -> str | None:
        row = self._conn().execute("SELECT value FROM detection_state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def save(self, key: str, value: str, expires: datetime) -> None:
        self._conn().execute(
            "INSERT INTO detection_state (key, value, expires) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires = excluded.expires",
            (key, value, format_ts(expires)),
        )

    def delete(self, key: str) -> None:
        self._conn().execute("DELETE FROM detection_state WHERE key = ?", (key,))

    def prune(self, now: datetime) -> int:
        """Drop rows that expired before ``now``; returns how many."""
        return self._conn().execute("DELETE FROM detection_state WHERE expires < ?", (format_ts(now),)).rowcount

    def count(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM detection_state").fetchone()[0])

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
