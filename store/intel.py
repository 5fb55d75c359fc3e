"""Versioned storage of threat-intel (STIX 2.1) objects beside the events.

An :class:`IntelStore` keeps every version of every STIX object (keyed by id and
``modified``), as STIX keeps objects immutable and changes them by new versions.
It also remembers, per feed, the last ``date_added`` a TAXII pull saw, so the next
pull is incremental.  It lives in the same SQLite file as :class:`store.sqlite.SQLiteStore`
(its own tables, its own connection per thread).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from store.errors import StoreError
from store.sqlite_busy import use_wal

_DDL = """
CREATE TABLE IF NOT EXISTS intel_objects (
    id TEXT NOT NULL,
    modified TEXT NOT NULL,
    type TEXT NOT NULL,
    feed TEXT NOT NULL,
    added TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (id, modified)
);
CREATE INDEX IF NOT EXISTS intel_objects_type ON intel_objects(type);
CREATE TABLE IF NOT EXISTS intel_feeds (
    feed TEXT PRIMARY KEY,
    added_after TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class StoredIntel:
    """One version of one STIX object and the feed it came from."""

    id: str
    modified: str
    type: str
    feed: str
    doc: Mapping[str, Any]


def _version(obj: Mapping[str, Any]) -> str:
    # SCOs and marking definitions have no 'modified'; their one version is their creation
    return str(obj.get("modified") or obj.get("created") or "")


class IntelStore:
    """STIX objects, all versions, in the SQLite file at ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        with self._lock:
            self._conn().executescript(_DDL)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open intel store at {self.path}: {exc}") from exc
            use_wal(conn)
            self._local.conn = conn
            self._all.append(conn)
        return conn

    def put_objects(self, objects: Iterable[Mapping[str, Any]], feed: str) -> list[StoredIntel]:
        """Store objects; returns the versions that were new (a re-import stores nothing)."""
        added = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        new: list[StoredIntel] = []
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            for obj in objects:
                oid, otype, version = str(obj.get("id", "")), str(obj.get("type", "")), _version(obj)
                if not oid or not otype:
                    raise StoreError(f"feed {feed}: STIX object without id or type: {json.dumps(obj)[:200]}")
                cur = conn.execute(
                    "INSERT OR IGNORE INTO intel_objects(id, modified, type, feed, added, doc) VALUES (?,?,?,?,?,?)",
                    (oid, version, otype, feed, added, json.dumps(obj, sort_keys=True)),
                )
                if cur.rowcount:
                    new.append(StoredIntel(oid, version, otype, feed, obj))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return new

    def versions(self, object_id: str) -> list[StoredIntel]:
        """Every stored version of one object, oldest first."""
        rows = self._conn().execute(
            "SELECT id, modified, type, feed, doc FROM intel_objects WHERE id = ? ORDER BY modified", (object_id,)
        )
        return [StoredIntel(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def get(self, object_id: str) -> StoredIntel:
        """The latest version of one object."""
        versions = self.versions(object_id)
        if not versions:
            raise StoreError(f"no intel object {object_id!r}")
        return versions[-1]

    def latest(self, object_type: str | None = None) -> Iterator[StoredIntel]:
        """The latest version of every object (of one type, if given)."""
        sql = (
            "SELECT o.id, o.modified, o.type, o.feed, o.doc FROM intel_objects o "
            "JOIN (SELECT id, max(modified) AS m FROM intel_objects {where} GROUP BY id) l "
            "ON o.id = l.id AND o.modified = l.m ORDER BY o.id"
        )
        if object_type is None:
            rows = self._conn().execute(sql.format(where=""))
        else:
            rows = self._conn().execute(sql.format(where="WHERE type = ?"), (object_type,))
        for r in rows:
            yield StoredIntel(r[0], r[1], r[2], r[3], json.loads(r[4]))

    def count(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM intel_objects").fetchone()[0])

    def added_after(self, feed: str) -> str | None:
        """The ``X-TAXII-Date-Added-Last`` of the last pull of ``feed``."""
        row = self._conn().execute("SELECT added_after FROM intel_feeds WHERE feed = ?", (feed,)).fetchone()
        return str(row[0]) if row else None

    def set_added_after(self, feed: str, value: str) -> None:
        self._conn().execute(
            "INSERT INTO intel_feeds(feed, added_after) VALUES (?, ?) "
            "ON CONFLICT(feed) DO UPDATE SET added_after = excluded.added_after",
            (feed, value),
        )

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


def open_intel(store: object) -> IntelStore:
    """The intel store beside an event store; only the embedded (SQLite) backend has intel tables so far."""
    from store.sqlite import SQLiteStore

    if not isinstance(store, SQLiteStore):
        raise StoreError(
            f"threat intel is kept in the embedded SQLite store; the {type(store).__name__} backend has no intel "
            "tables (use the embedded store, or add an intel store for this backend)"
        )
    return IntelStore(store.path)
