"""Embedded store: one SQLite database (WAL, JSON1, FTS5) under ``CITYSOC_HOME``.

Each thread of each process opens its own connection; WAL lets readers run
beside one writer, ``busy_timeout`` and ``BEGIN IMMEDIATE`` serialise writers
across processes (collector, worker, console).  Every query is parameterised:
event content never reaches SQL text.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

from store import sqlite_analyst, sqlite_events
from store.base import Store
from store.errors import AuditChainBroken, Conflict, NotFound, StoreError
from store.event import Event, format_ts, parse_ts, stable_id, without_surrogates
from store.filters import EventPage, IncidentFilter, IncidentPage, IncidentStats, SourceActivity
from store.models import (
    Alert,
    ApiToken,
    AuditEntry,
    DeadLetter,
    Incident,
    IncidentStatus,
    PlaybookRun,
    RunStatus,
    Severity,
    StepRecord,
    StepStatus,
    TimelineEntry,
    User,
)
from store.query import Node
from store.schema import FIELDS
from store.sqlite_busy import until_free, use_wal
from store.sqlite_upgrade import upgrade_once

# the event tables (events, events_fts, event_terms) are in store.sqlite_events
SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL, source TEXT NOT NULL, offset TEXT NOT NULL,
    reason TEXT NOT NULL, raw TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    rule_id TEXT NOT NULL, rule_title TEXT NOT NULL, severity INTEGER NOT NULL,
    created TEXT NOT NULL, event_time TEXT NOT NULL,
    event_ids TEXT NOT NULL, entities TEXT NOT NULL, tags TEXT NOT NULL,
    source TEXT NOT NULL, description TEXT NOT NULL, incident_id TEXT
);
CREATE INDEX IF NOT EXISTS alerts_incident ON alerts(incident_id);
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL, severity INTEGER NOT NULL, status TEXT NOT NULL,
    created TEXT NOT NULL, updated TEXT NOT NULL,
    first_event_time TEXT NOT NULL, last_event_time TEXT NOT NULL,
    group_key TEXT NOT NULL, entities TEXT NOT NULL, tags TEXT NOT NULL,
    alert_count INTEGER NOT NULL, mttd_seconds REAL,
    assignee TEXT, verdict TEXT
);
CREATE INDEX IF NOT EXISTS incidents_group ON incidents(group_key, last_event_time);
CREATE INDEX IF NOT EXISTS incidents_created ON incidents(created);
CREATE TABLE IF NOT EXISTS incident_timeline (
    incident_id TEXT NOT NULL, seq INTEGER NOT NULL, at TEXT NOT NULL,
    kind TEXT NOT NULL, actor TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (incident_id, seq)
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, playbook TEXT NOT NULL, playbook_version TEXT NOT NULL,
    incident_id TEXT, status TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL,
    drill INTEGER NOT NULL, error TEXT
);
CREATE INDEX IF NOT EXISTS runs_incident ON runs(incident_id);
CREATE TABLE IF NOT EXISTS run_steps (
    run_id TEXT NOT NULL, ref TEXT NOT NULL, action TEXT NOT NULL, status TEXT NOT NULL,
    attempt INTEGER NOT NULL, started TEXT, finished TEXT,
    inputs TEXT NOT NULL, output TEXT, error TEXT, pos INTEGER NOT NULL,
    PRIMARY KEY (run_id, ref)
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    object TEXT NOT NULL, details TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, roles TEXT NOT NULL,
    must_change_password INTEGER NOT NULL, created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_tokens (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, owner TEXT NOT NULL, token_hash TEXT NOT NULL,
    roles TEXT NOT NULL, agencies TEXT NOT NULL, created TEXT NOT NULL,
    expires TEXT, last_used TEXT, revoked TEXT
);
CREATE INDEX IF NOT EXISTS api_tokens_owner ON api_tokens(owner);
"""

#: Fields indexed for exact-match filters and entity pivots (defined with the event tables).
TERM_FIELDS = sqlite_events.TERM_FIELDS

GENESIS = "0" * 64

#: how long a writer waits for another one's transaction before the store gives up with an error
BUSY_TIMEOUT_MS = 60_000

#: Columns added to existing tables after the first release: (table, column, declaration), added when missing.
MIGRATIONS: tuple[tuple[str, str, str], ...] = (
    ("users", "agencies", "TEXT NOT NULL DEFAULT '[]'"),
    ("users", "disabled", "INTEGER NOT NULL DEFAULT 0"),
    ("users", "mfa_required", "INTEGER NOT NULL DEFAULT 0"),
    ("users", "mfa_enabled", "INTEGER NOT NULL DEFAULT 0"),
    ("users", "totp_secret", "TEXT NOT NULL DEFAULT ''"),
    ("users", "totp_last_step", "INTEGER NOT NULL DEFAULT 0"),
    ("users", "failed_logins", "INTEGER NOT NULL DEFAULT 0"),
    ("users", "locked_until", "TEXT"),
    ("dead_letters", "key", "TEXT"),
    ("alerts", "group_by", "TEXT NOT NULL DEFAULT '[]'"),
)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _audit_hash(seq: int, at: str, actor: str, action: str, obj: str, details: str, prev: str) -> str:
    payload = _dumps([seq, at, actor, action, obj, json.loads(details), prev])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class _EventRows:
    """A batch of events built into rows before the write lock (``SQLiteStore._new_events``)."""

    events: list[Event]  # not stored yet as far as seen: first occurrence of each id
    dropped: int  # events left out because their ids were found stored
    bodies: list[tuple[int, str]]  # (k, full-text body)
    postings: sqlite_events.Postings
    guess: int  # the first free rid when the rows were built
    rows: list[tuple[Any, ...]]  # events table rows numbered from ``guess``
    bodies_in: list[tuple[int, str]]  # (rid, body) numbered from ``guess``
    terms: list[sqlite_events.Posting]  # posting rows numbered from ``guess``


class SQLiteStore(Store):
    """The embedded default backend."""

    name: ClassVar[str] = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # set when a batch held stored events; the next batch is then checked before its rows are built
        self._duplicates_seen = False
        self._conn().executescript(SCHEMA)
        sqlite_events.install(self._conn())  # before the analyst tables: it may rebuild an old file's event tables
        sqlite_analyst.install(self._conn())
        self._migrate()
        # after _migrate: older databases get the key column there (rows from before keep NULL, never equal)
        self._conn().execute("CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_key ON dead_letters(key)")

    def _migrate(self) -> None:
        """Add columns that databases made by older versions lack (idempotent, safe across processes)."""
        def missing(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
            present = {t: {r["name"] for r in conn.execute(f"PRAGMA table_info({t})")} for t, _, _ in MIGRATIONS}
            return [m for m in MIGRATIONS if m[1] not in present[m[0]]]

        def add(conn: sqlite3.Connection) -> None:
            for table, column, declaration in missing(conn):
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

        upgrade_once(self._conn(), lambda conn: not missing(conn), add)

    # connections ------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
                )
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open embedded store at {self.path}: {exc}") from exc
            conn.row_factory = sqlite3.Row
            try:
                use_wal(conn, BUSY_TIMEOUT_MS)
            except sqlite3.Error as exc:
                conn.close()
                raise StoreError(f"cannot open embedded store at {self.path}: {exc}") from exc
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys=ON")
            # checkpoint the WAL every ~40 MB instead of 4 MB: pages rewritten meanwhile (indexes, full-text
            # segments) are copied to the database once, and the writer stops for a checkpoint a tenth as often
            conn.execute("PRAGMA wal_autocheckpoint=10000")
            # a 32 MiB page cache instead of 2: an event batch inserts at ~1,000 scattered places (its ids, its
            # posting rows), and with 2 MiB the pages were read again per batch and spilled to the WAL mid-transaction
            # (200,000-event store: 5.7 -> 1.5 page reads and 8.5 -> 6.1 writes per event; memory is taken as used)
            conn.execute("PRAGMA cache_size=-32768")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        self._begin(conn)
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    @staticmethod
    def _begin(conn: sqlite3.Connection, wait: bool = True) -> bool:
        """``BEGIN IMMEDIATE`` (take the write lock); False at once, without ``wait``, while another connection has it.

        Waiting polls every millisecond or less, up to :data:`BUSY_TIMEOUT_MS` (then SQLite's
        "database is locked" error), instead of SQLite's busy handler: that one sleeps 1, 2, 5,
        10, 15, 20, 25... ms between tries, so with two collector processes the lock sat idle
        for up to tens of milliseconds after each commit while the other process slept.
        """
        conn.execute("PRAGMA busy_timeout=0")
        try:
            return until_free(lambda: conn.execute("BEGIN IMMEDIATE"), BUSY_TIMEOUT_MS, wait)
        finally:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    def release(self) -> None:
        """Close this thread's connection (web servers call it at the end of each request)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        conn.close()

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):  # closing a broken connection must not fail close()
                    conn.close()
            self._all.clear()
        self._local = threading.local()

    # events -----------------------------------------------------------------------
    def put_events(self, events: Sequence[Event]) -> list[Event]:
        try:
            return self._put_events(events)
        except UnicodeEncodeError:
            # a lone surrogate in some text (a JSON record can carry "\udcff"): SQLite holds UTF-8 only, so
            # the batch (rolled back) is stored again with U+FFFD in its place; the others are unchanged
            return self._put_events([without_surrogates(event) for event in events])

    def try_put_events(self, events: Sequence[Event]) -> list[Event] | None:
        """:meth:`put_events` if no other connection holds the write lock now; None, and nothing written, if one does.

        The lock is tried first, without waiting, and the rows are built under it: a writer that
        finds the lock taken has lost nothing and can parse its next batch instead of waiting
        (:class:`collectors.pipeline.IngestPipeline` does).
        """
        if not events:
            return []
        conn = self._conn()
        if not self._begin(conn, wait=False):
            return None
        try:
            try:
                stored = self._insert_events(conn, self._new_events(events))
            except UnicodeEncodeError:  # as in put_events
                conn.execute("ROLLBACK")
                self._begin(conn)  # waits: this batch had the lock a moment ago
                stored = self._insert_events(conn, self._new_events([without_surrogates(e) for e in events]))
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return stored

    def _put_events(self, events: Sequence[Event]) -> list[Event]:
        if not events:
            return []
        # everything is built before the write lock is taken, so other writers wait only for SQLite itself:
        # event k of the batch gets rid (first free rid) + k, numbered from the first free rid as seen now --
        # with one writer it is the same under the lock; if another writer came in between, renumbered there.
        batch = self._new_events(events)
        if batch.events:
            with self._write() as conn:
                return self._insert_events(conn, batch)
        return []

    def _new_events(self, events: Sequence[Event]) -> _EventRows:
        """The rows of the events of ``events`` not stored yet, numbered from the first free rid as seen now."""
        batch = list({event.id: event for event in events}.values())  # first occurrence of each id wins
        dropped = 0
        if self._duplicates_seen:  # the last batch had stored events (a source re-read): drop them before building
            stored_ids = self._stored_ids([event.id for event in batch])
            dropped = len(stored_ids)
            batch = [event for event in batch if event.id not in stored_ids]
            if not batch:
                return _EventRows([], dropped, [], sqlite_events.Postings({}), 0, [], [], [])
        ingested = format_ts(_now())
        # index_batch first: it computes (or finds, from a parse worker) each event's index entry, ts text included
        bodies, postings = sqlite_events.index_batch(enumerate(batch))
        guess = sqlite_events.next_rid(self._conn())
        rows = [
            (guess + k, e.id, e.__dict__["_index"][0], ingested, e.fields.get("event.dataset"), e.to_json())
            for k, e in enumerate(batch)
        ]
        bodies_in = [(guess + k, body) for k, body in bodies]
        return _EventRows(batch, dropped, bodies, postings, guess, rows, bodies_in, postings.rows(guess))

    def _insert_events(self, conn: sqlite3.Connection, batch: _EventRows) -> list[Event]:
        """Insert built rows (inside the caller's write transaction); returns the events that were new."""
        if not batch.events:
            self._duplicates_seen = bool(batch.dropped)
            return []
        rows_in, bodies_in, bodies, terms = batch.rows, batch.bodies_in, batch.bodies, batch.terms
        base = sqlite_events.next_rid(conn)
        if base != batch.guess:  # another writer came in since the rows were built
            rows_in = [(base + k, *row[1:]) for k, row in enumerate(rows_in)]
            bodies_in = [(base + k, body) for k, body in bodies]
            terms = batch.postings.rows(base)
        skip: frozenset[int] = frozenset()
        before = conn.total_changes
        # a stored id is skipped by the unique index itself
        conn.executemany(
            "INSERT INTO events(rid, id, ts, ingested, dataset, doc) VALUES (?,?,?,?,?,?)"
            " ON CONFLICT(id) DO NOTHING",
            rows_in,
        )
        if conn.total_changes - before != len(rows_in):  # some ids were stored: their rids were not used
            taken = {r[0] - base for r in conn.execute(
                "SELECT rid FROM events WHERE rid >= ? AND rid < ?", (base, base + len(rows_in)))}  # fmt: skip
            skip = frozenset(k for k in range(len(rows_in)) if k not in taken)
            bodies_in = [(base + k, body) for k, body in bodies if k not in skip]
            terms = batch.postings.rows(base, skip)
        sqlite_events.insert_index_rows(conn, bodies_in, terms)
        self._duplicates_seen = bool(skip or batch.dropped)
        return [event for k, event in enumerate(batch.events) if k not in skip] if skip else batch.events

    def _stored_ids(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` are stored (a read: no write lock)."""
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            sql = f"SELECT id FROM events WHERE id IN ({','.join('?' * len(chunk))})"  # noqa: S608 - placeholders
            found.update(row[0] for row in self._conn().execute(sql, chunk))
        return found

    @staticmethod
    def _event(row: sqlite3.Row) -> Event:
        return Event.from_json(row["doc"])

    def get_event(self, event_id: str) -> Event:
        row = self._conn().execute("SELECT doc FROM events WHERE id=?", (event_id,)).fetchone()
        if row is None:
            raise NotFound("event", event_id)
        return self._event(row)

    def get_events(self, event_ids: Sequence[str]) -> list[Event]:
        out: list[Event] = []
        ids = list(dict.fromkeys(event_ids))
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT doc FROM events WHERE id IN ({marks})"  # noqa: S608 - placeholders only
            rows = self._conn().execute(sql, chunk).fetchall()
            out.extend(self._event(r) for r in rows)
        return sorted(out, key=lambda e: (e.timestamp, e.id))

    def search_events(
        self,
        text: str | None = None,
        filters: Mapping[str, str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Event]:
        where: list[str] = []
        params: list[Any] = []
        if text:
            where.append("e.rid IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)")
            params.append(_fts_query(text))
        for name, value in (filters or {}).items():
            if name in TERM_FIELDS:
                where.append("e.rid IN (SELECT t.rid + j.value FROM event_terms t, json_each(t.more) j"
                             " WHERE t.field=? AND t.value=?)")
                params.extend([name, value])
            elif name == "event.dataset":
                where.append("e.dataset = ?")
                params.append(value)
            elif name in FIELDS or name == "event.id":
                where.append("json_extract(e.doc, ?) = ?")
                params.extend([_json_path(name), value])
            else:
                raise StoreError(f"unknown field {name!r} in search filter")
        if start is not None:
            where.append("e.ts >= ?")
            params.append(format_ts(start))
        if end is not None:
            where.append("e.ts < ?")
            params.append(format_ts(end))
        sql = "SELECT e.doc FROM events e"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY e.ts DESC, e.id LIMIT ? OFFSET ?"
        params.extend([limit, offset])
        try:
            rows = self._conn().execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            raise StoreError(f"search failed: {exc}") from exc
        return [self._event(r) for r in rows]

    def iter_events(self, start: datetime | None = None, end: datetime | None = None) -> Iterator[Event]:
        last_ts, last_id = format_ts(start) if start else "", ""
        end_ts = format_ts(end) if end else "\uffff"
        while True:
            rows = (
                self._conn()
                .execute(
                    "SELECT id, ts, doc FROM events WHERE (ts, id) > (?, ?) AND ts < ? ORDER BY ts, id LIMIT 1000",
                    (last_ts, last_id, end_ts),
                )
                .fetchall()
            )
            if not rows:
                return
            for row in rows:
                yield self._event(row)
            last_ts, last_id = rows[-1]["ts"], rows[-1]["id"]

    def count_events(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM events").fetchone()[0])

    def delete_events(self, event_ids: Sequence[str]) -> int:
        ids = list(dict.fromkeys(event_ids))
        deleted = 0
        for i in range(0, len(ids), 5000):
            chunk = ids[i : i + 5000]
            marks = ",".join("?" * len(chunk))
            with self._write() as conn:  # one transaction per chunk: the three tables never disagree
                found = conn.execute(f"SELECT rid, doc FROM events WHERE id IN ({marks})", chunk).fetchall()  # noqa: S608
                sqlite_events.delete_index_rows(conn, [(r[0], r[1]) for r in found])
                conn.executemany("DELETE FROM events WHERE rid=?", [(r[0],) for r in found])
                deleted += len(found)
        return deleted

    # dead letters -------------------------------------------------------------------
    def add_dead_letter(self, source: str, offset: str, reason: str, raw: str) -> DeadLetter:
        at = _now()
        key = stable_id("dead-letter", source, offset, raw)  # a resent record is the same dead letter
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO dead_letters(at, source, offset, reason, raw, key) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT(key) DO NOTHING",
                (format_ts(at), source, offset, reason, raw, key),
            )
            if cur.rowcount == 0:
                r = conn.execute("SELECT * FROM dead_letters WHERE key=?", (key,)).fetchone()
                return DeadLetter(r["id"], parse_ts(r["at"]), r["source"], r["offset"], r["reason"], r["raw"])
        return DeadLetter(int(cur.lastrowid or 0), at, source, offset, reason, raw)

    def list_dead_letters(self, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        rows = (
            self._conn()
            .execute("SELECT * FROM dead_letters ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset))
            .fetchall()
        )
        return [DeadLetter(r["id"], parse_ts(r["at"]), r["source"], r["offset"], r["reason"], r["raw"]) for r in rows]

    def count_dead_letters(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM dead_letters").fetchone()[0])

    # alerts ---------------------------------------------------------------------------
    def add_alert(self, alert: Alert) -> bool:
        with self._write() as conn:
            cur = conn.execute(
                # named columns: group_by is added by a migration, after whatever columns came before it
                "INSERT OR IGNORE INTO alerts (id, rule_id, rule_title, severity, created, event_time, event_ids,"
                " entities, tags, source, description, incident_id, group_by) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    alert.id,
                    alert.rule_id,
                    alert.rule_title,
                    int(alert.severity),
                    format_ts(alert.created),
                    format_ts(alert.event_time),
                    _dumps(list(alert.event_ids)),
                    _dumps(dict(alert.entities)),
                    _dumps(list(alert.tags)),
                    alert.source,
                    alert.description,
                    alert.incident_id,
                    _dumps(list(alert.group_by)),
                ),
            )
        return cur.rowcount == 1

    @staticmethod
    def _alert(r: sqlite3.Row) -> Alert:
        return Alert(
            id=r["id"],
            rule_id=r["rule_id"],
            rule_title=r["rule_title"],
            severity=Severity(r["severity"]),
            created=parse_ts(r["created"]),
            event_time=parse_ts(r["event_time"]),
            event_ids=tuple(json.loads(r["event_ids"])),
            entities=json.loads(r["entities"]),
            tags=tuple(json.loads(r["tags"])),
            source=r["source"],
            description=r["description"],
            incident_id=r["incident_id"],
            group_by=tuple(json.loads(r["group_by"])),
        )

    def get_alert(self, alert_id: str) -> Alert:
        row = self._conn().execute("SELECT * FROM alerts WHERE id=?", (alert_id,)).fetchone()
        if row is None:
            raise NotFound("alert", alert_id)
        return self._alert(row)

    def list_alerts(self, incident_id: str | None = None, limit: int = 1000) -> list[Alert]:
        if incident_id is None:
            rows = self._conn().execute("SELECT * FROM alerts ORDER BY event_time DESC LIMIT ?", (limit,)).fetchall()
        else:
            rows = (
                self._conn()
                .execute(
                    "SELECT * FROM alerts WHERE incident_id=? ORDER BY event_time, id LIMIT ?", (incident_id, limit)
                )
                .fetchall()
            )
        return [self._alert(r) for r in rows]

    def count_alerts(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM alerts").fetchone()[0])

    def count_alerts_by_rule(self, since: datetime | None = None) -> dict[str, dict[str | None, int]]:
        rows = (
            self._conn()
            .execute(
                "SELECT a.rule_id, i.verdict, count(*) FROM alerts a LEFT JOIN incidents i ON i.id = a.incident_id"
                " WHERE a.created >= ? GROUP BY a.rule_id, i.verdict",
                (format_ts(since) if since is not None else "",),
            )
            .fetchall()
        )
        out: dict[str, dict[str | None, int]] = {}
        for rule_id, verdict, count in rows:
            out.setdefault(rule_id, {})[verdict] = int(count)
        return out

    # incidents --------------------------------------------------------------------------
    @staticmethod
    def _incident(r: sqlite3.Row) -> Incident:
        return Incident(
            id=r["id"],
            title=r["title"],
            severity=Severity(r["severity"]),
            status=IncidentStatus(r["status"]),
            created=parse_ts(r["created"]),
            updated=parse_ts(r["updated"]),
            first_event_time=parse_ts(r["first_event_time"]),
            last_event_time=parse_ts(r["last_event_time"]),
            group_key=r["group_key"],
            entities={k: tuple(v) for k, v in json.loads(r["entities"]).items()},
            tags=tuple(json.loads(r["tags"])),
            alert_count=r["alert_count"],
            mttd_seconds=r["mttd_seconds"],
            assignee=r["assignee"],
            verdict=r["verdict"],
        )

    def _append(
        self, conn: sqlite3.Connection, incident_id: str, kind: str, actor: str, data: Mapping[str, Any]
    ) -> TimelineEntry:
        at = _now()
        seq = conn.execute(
            "SELECT coalesce(max(seq), 0) + 1 FROM incident_timeline WHERE incident_id=?", (incident_id,)
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO incident_timeline VALUES (?,?,?,?,?,?)",
            (incident_id, seq, format_ts(at), kind, actor, _dumps(dict(data))),
        )
        conn.execute("UPDATE incidents SET updated=? WHERE id=?", (format_ts(at), incident_id))
        return TimelineEntry(incident_id, seq, at, kind, actor, dict(data))

    def create_incident(self, incident: Incident, actor: str) -> Incident:
        with self._write() as conn:
            try:
                conn.execute(
                    "INSERT INTO incidents VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    incident_row(incident),
                )
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"incident {incident.id!r} exists already") from exc
            sqlite_analyst.index_entities(conn, incident.id, incident.entities)
            self._append(
                conn,
                incident.id,
                "created",
                actor,
                {"title": incident.title, "severity": incident.severity.label, "mttd_seconds": incident.mttd_seconds},
            )
        return self.get_incident(incident.id)

    def get_incident(self, incident_id: str) -> Incident:
        row = self._conn().execute("SELECT * FROM incidents WHERE id=?", (incident_id,)).fetchone()
        if row is None:
            raise NotFound("incident", incident_id)
        return self._incident(row)

    def list_incidents(self, status: IncidentStatus | None = None, limit: int = 100, offset: int = 0) -> list[Incident]:
        if status is None:
            rows = (
                self._conn()
                .execute("SELECT * FROM incidents ORDER BY created DESC, id LIMIT ? OFFSET ?", (limit, offset))
                .fetchall()
            )
        else:
            rows = (
                self._conn()
                .execute(
                    "SELECT * FROM incidents WHERE status=? ORDER BY created DESC, id LIMIT ? OFFSET ?",
                    (status.value, limit, offset),
                )
                .fetchall()
            )
        return [self._incident(r) for r in rows]

    def count_incidents(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM incidents").fetchone()[0])

    def find_open_incident(self, group_key: str, since: datetime) -> Incident | None:
        row = (
            self._conn()
            .execute(
                "SELECT * FROM incidents WHERE group_key=? AND status != 'closed' AND last_event_time >= ? "
                "ORDER BY last_event_time DESC LIMIT 1",
                (group_key, format_ts(since)),
            )
            .fetchone()
        )
        return self._incident(row) if row else None

    def attach_alert(self, incident_id: str, alert: Alert, actor: str) -> Incident:
        with self._write() as conn:
            row = conn.execute("SELECT * FROM incidents WHERE id=?", (incident_id,)).fetchone()
            if row is None:
                raise NotFound("incident", incident_id)
            current = self._incident(row)
            cur = conn.execute(
                "UPDATE alerts SET incident_id=? WHERE id=? AND incident_id IS NULL", (incident_id, alert.id)
            )
            if cur.rowcount == 0:
                return current  # already attached (redelivery): nothing to do
            entities = {k: list(v) for k, v in current.entities.items()}
            for key, value in alert.entities.items():
                bucket = entities.setdefault(key, [])
                if value not in bucket:
                    bucket.append(value)
            tags = list(dict.fromkeys([*current.tags, *alert.tags]))
            conn.execute(
                "UPDATE incidents SET severity=?, first_event_time=?, last_event_time=?, entities=?, tags=?, "
                "alert_count=alert_count+1 WHERE id=?",
                (
                    max(int(current.severity), int(alert.severity)),
                    format_ts(min(current.first_event_time, alert.event_time)),
                    format_ts(max(current.last_event_time, alert.event_time)),
                    _dumps(entities),
                    _dumps(tags),
                    incident_id,
                ),
            )
            sqlite_analyst.index_entities(conn, incident_id, {k: (v,) for k, v in alert.entities.items()})
            self._append(
                conn,
                incident_id,
                "alert",
                actor,
                {
                    "alert_id": alert.id,
                    "rule_id": alert.rule_id,
                    "rule_title": alert.rule_title,
                    "severity": alert.severity.label,
                    "event_time": format_ts(alert.event_time),
                },
            )
        return self.get_incident(incident_id)

    _PROJECTED: ClassVar[dict[str, str]] = {"status": "status", "assign": "assignee", "verdict": "verdict"}

    def append_timeline(self, incident_id: str, kind: str, actor: str, data: Mapping[str, Any]) -> TimelineEntry:
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM incidents WHERE id=?", (incident_id,)).fetchone() is None:
                raise NotFound("incident", incident_id)
            column = self._PROJECTED.get(kind)
            if column is not None:
                value = data.get("value")
                if column == "status":
                    value = IncidentStatus(str(value)).value
                conn.execute(f"UPDATE incidents SET {column}=? WHERE id=?", (value, incident_id))  # noqa: S608
            return self._append(conn, incident_id, kind, actor, data)

    def timeline(self, incident_id: str) -> list[TimelineEntry]:
        rows = (
            self._conn()
            .execute("SELECT * FROM incident_timeline WHERE incident_id=? ORDER BY seq", (incident_id,))
            .fetchall()
        )
        return [
            TimelineEntry(r["incident_id"], r["seq"], parse_ts(r["at"]), r["kind"], r["actor"], json.loads(r["data"]))
            for r in rows
        ]

    # runs ----------------------------------------------------------------------------------
    def create_run(self, run: PlaybookRun) -> PlaybookRun:
        with self._write() as conn:
            try:
                conn.execute(
                    "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        run.id,
                        run.playbook,
                        run.playbook_version,
                        run.incident_id,
                        run.status.value,
                        format_ts(run.created),
                        format_ts(run.updated),
                        int(run.drill),
                        run.error,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"playbook run {run.id!r} exists already") from exc
            for pos, step in enumerate(run.steps):
                self._put_step(conn, step, pos)
        return self.get_run(run.id)

    def _put_step(self, conn: sqlite3.Connection, step: StepRecord, pos: int | None = None) -> None:
        if pos is None:
            row = conn.execute("SELECT pos FROM run_steps WHERE run_id=? AND ref=?", (step.run_id, step.ref)).fetchone()
            pos = (
                row["pos"]
                if row
                else conn.execute(
                    "SELECT coalesce(max(pos), -1) + 1 FROM run_steps WHERE run_id=?", (step.run_id,)
                ).fetchone()[0]
            )
        conn.execute(
            "INSERT OR REPLACE INTO run_steps VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                step.run_id,
                step.ref,
                step.action,
                step.status.value,
                step.attempt,
                format_ts(step.started) if step.started else None,
                format_ts(step.finished) if step.finished else None,
                _dumps(dict(step.inputs)),
                _dumps(step.output) if step.output is not None else None,
                step.error,
                pos,
            ),
        )

    def get_run(self, run_id: str) -> PlaybookRun:
        conn = self._conn()
        r = conn.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if r is None:
            raise NotFound("playbook run", run_id)
        steps = tuple(
            StepRecord(
                run_id=s["run_id"],
                ref=s["ref"],
                action=s["action"],
                status=StepStatus(s["status"]),
                attempt=s["attempt"],
                started=parse_ts(s["started"]) if s["started"] else None,
                finished=parse_ts(s["finished"]) if s["finished"] else None,
                inputs=json.loads(s["inputs"]),
                output=json.loads(s["output"]) if s["output"] is not None else None,
                error=s["error"],
            )
            for s in conn.execute("SELECT * FROM run_steps WHERE run_id=? ORDER BY pos", (run_id,)).fetchall()
        )
        return PlaybookRun(
            id=r["id"],
            playbook=r["playbook"],
            playbook_version=r["playbook_version"],
            incident_id=r["incident_id"],
            status=RunStatus(r["status"]),
            created=parse_ts(r["created"]),
            updated=parse_ts(r["updated"]),
            drill=bool(r["drill"]),
            steps=steps,
            error=r["error"],
        )

    def list_runs(self, incident_id: str | None = None, limit: int = 100) -> list[PlaybookRun]:
        if incident_id is None:
            rows = self._conn().execute("SELECT id FROM runs ORDER BY created DESC LIMIT ?", (limit,)).fetchall()
        else:
            rows = (
                self._conn()
                .execute("SELECT id FROM runs WHERE incident_id=? ORDER BY created DESC LIMIT ?", (incident_id, limit))
                .fetchall()
            )
        return [self.get_run(r["id"]) for r in rows]

    def count_runs(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM runs").fetchone()[0])

    def set_run_status(self, run_id: str, status: RunStatus, error: str | None = None) -> None:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE runs SET status=?, error=?, updated=? WHERE id=?",
                (status.value, error, format_ts(_now()), run_id),
            )
            if cur.rowcount == 0:
                raise NotFound("playbook run", run_id)

    def record_step(self, step: StepRecord) -> None:
        with self._write() as conn:
            self._put_step(conn, step)
            conn.execute("UPDATE runs SET updated=? WHERE id=?", (format_ts(_now()), step.run_id))

    def claim_step(self, run_id: str, ref: str, attempt: int) -> bool:
        with self._write() as conn:
            row = conn.execute("SELECT status FROM run_steps WHERE run_id=? AND ref=?", (run_id, ref)).fetchone()
            return not (row is not None and row["status"] in (StepStatus.SUCCEEDED.value, StepStatus.SKIPPED.value))

    def swap_step(self, expected: StepRecord | None, new: StepRecord) -> bool:
        with self._write() as conn:
            row = conn.execute(
                "SELECT status, attempt, started, finished, output, error FROM run_steps WHERE run_id=? AND ref=?",
                (new.run_id, new.ref),
            ).fetchone()
            if expected is None:
                if row is not None:
                    return False
            else:
                want = (
                    expected.status.value,
                    expected.attempt,
                    format_ts(expected.started) if expected.started else None,
                    format_ts(expected.finished) if expected.finished else None,
                    _dumps(expected.output) if expected.output is not None else None,
                    expected.error,
                )
                if row is None or tuple(row) != want:
                    return False
            self._put_step(conn, new)
            conn.execute("UPDATE runs SET updated=? WHERE id=?", (format_ts(_now()), new.run_id))
        return True

    def active_runs(self) -> dict[str, datetime]:
        rows = self._conn().execute(
            "SELECT id, updated FROM runs WHERE status IN (?,?,?)",
            (RunStatus.PENDING.value, RunStatus.RUNNING.value, RunStatus.WAITING.value),
        )
        return {r["id"]: parse_ts(r["updated"]) for r in rows}

    # audit ---------------------------------------------------------------------------------
    def audit(self, actor: str, action: str, obj: str, details: Mapping[str, Any]) -> AuditEntry:
        at = format_ts(_now())
        body = _dumps(dict(details))
        with self._write() as conn:
            last = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq = (last["seq"] + 1) if last else 1
            prev = last["hash"] if last else GENESIS
            digest = _audit_hash(seq, at, actor, action, obj, body, prev)
            conn.execute(
                "INSERT INTO audit VALUES (?,?,?,?,?,?,?,?)", (seq, at, actor, action, obj, body, prev, digest)
            )
        return AuditEntry(seq, parse_ts(at), actor, action, obj, json.loads(body), prev, digest)

    def audit_entries(self, limit: int = 1000, offset: int = 0) -> list[AuditEntry]:
        rows = (
            self._conn().execute("SELECT * FROM audit ORDER BY seq DESC LIMIT ? OFFSET ?", (limit, offset)).fetchall()
        )
        return [
            AuditEntry(
                r["seq"],
                parse_ts(r["at"]),
                r["actor"],
                r["action"],
                r["object"],
                json.loads(r["details"]),
                r["prev_hash"],
                r["hash"],
            )
            for r in rows
        ]

    def verify_audit(self) -> int:
        prev = GENESIS
        count = 0
        for r in self._conn().execute("SELECT * FROM audit ORDER BY seq"):
            expected = _audit_hash(r["seq"], r["at"], r["actor"], r["action"], r["object"], r["details"], prev)
            if r["prev_hash"] != prev or r["hash"] != expected:
                raise AuditChainBroken(f"audit entry {r['seq']} does not match the chain (altered or removed entry)")
            prev = r["hash"]
            count += 1
        return count

    # users -----------------------------------------------------------------------------------
    def put_user(self, user: User) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO users(username, password_hash, roles, must_change_password, created, agencies,"
                " disabled, mfa_required, mfa_enabled, totp_secret, totp_last_step, failed_logins, locked_until)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    user.username,
                    user.password_hash,
                    _dumps(list(user.roles)),
                    int(user.must_change_password),
                    format_ts(user.created or _now()),
                    _dumps(list(user.agencies)),
                    int(user.disabled),
                    int(user.mfa_required),
                    int(user.mfa_enabled),
                    user.totp_secret,
                    user.totp_last_step,
                    user.failed_logins,
                    format_ts(user.locked_until) if user.locked_until else None,
                ),
            )

    @staticmethod
    def _user(r: sqlite3.Row) -> User:
        return User(
            r["username"],
            r["password_hash"],
            tuple(json.loads(r["roles"])),
            bool(r["must_change_password"]),
            parse_ts(r["created"]),
            agencies=tuple(json.loads(r["agencies"])),
            disabled=bool(r["disabled"]),
            mfa_required=bool(r["mfa_required"]),
            mfa_enabled=bool(r["mfa_enabled"]),
            totp_secret=r["totp_secret"],
            totp_last_step=int(r["totp_last_step"]),
            failed_logins=int(r["failed_logins"]),
            locked_until=parse_ts(r["locked_until"]) if r["locked_until"] else None,
        )

    def get_user(self, username: str) -> User:
        row = self._conn().execute("SELECT * FROM users WHERE username=?", (username,)).fetchone()
        if row is None:
            raise NotFound("user", username)
        return self._user(row)

    def list_users(self) -> list[User]:
        return [self._user(r) for r in self._conn().execute("SELECT * FROM users ORDER BY username")]

    # API tokens ----------------------------------------------------------------------------------
    def put_api_token(self, token: ApiToken) -> None:
        def ts(value: datetime | None) -> str | None:
            return format_ts(value) if value is not None else None

        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO api_tokens(id, name, owner, token_hash, roles, agencies, created, expires,"
                " last_used, revoked) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (token.id, token.name, token.owner, token.token_hash, _dumps(list(token.roles)),
                 _dumps(list(token.agencies)), format_ts(token.created), ts(token.expires), ts(token.last_used),
                 ts(token.revoked)),
            )  # fmt: skip

    @staticmethod
    def _api_token(r: sqlite3.Row) -> ApiToken:
        def ts(value: str | None) -> datetime | None:
            return parse_ts(value) if value else None

        return ApiToken(
            id=r["id"], name=r["name"], owner=r["owner"], token_hash=r["token_hash"],
            roles=tuple(json.loads(r["roles"])), agencies=tuple(json.loads(r["agencies"])),
            created=parse_ts(r["created"]), expires=ts(r["expires"]), last_used=ts(r["last_used"]),
            revoked=ts(r["revoked"]),
        )  # fmt: skip

    def get_api_token(self, token_id: str) -> ApiToken:
        row = self._conn().execute("SELECT * FROM api_tokens WHERE id=?", (token_id,)).fetchone()
        if row is None:
            raise NotFound("api token", token_id)
        return self._api_token(row)

    def list_api_tokens(self, owner: str | None = None) -> list[ApiToken]:
        if owner is None:
            rows = self._conn().execute("SELECT * FROM api_tokens ORDER BY created DESC, id")
        else:
            rows = self._conn().execute("SELECT * FROM api_tokens WHERE owner=? ORDER BY created DESC, id", (owner,))
        return [self._api_token(r) for r in rows]

    def touch_api_token(self, token_id: str, at: datetime) -> None:
        with self._write() as conn:
            conn.execute("UPDATE api_tokens SET last_used=? WHERE id=?", (format_ts(at), token_id))

    # analyst queries (console); the SQL is in store.sqlite_analyst ---------------------------
    def query_incidents(self, flt: IncidentFilter, limit: int = 50, offset: int = 0) -> IncidentPage:
        rows, total = sqlite_analyst.query_incidents(self._conn(), flt, limit, offset)
        return IncidentPage(tuple(self._incident(r) for r in rows), total)

    def find_events(
        self,
        query: Node | None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        histogram: bool = False,
    ) -> EventPage:
        return sqlite_analyst.find_events(self._conn(), query, TERM_FIELDS, start, end, limit, offset, histogram)

    def incident_stats(
        self, start: datetime, end: datetime, interval: timedelta, scope: tuple[str, ...] | None = None
    ) -> IncidentStats:
        return sqlite_analyst.incident_stats(self._conn(), start, end, interval, scope)

    def source_activity(self, since: datetime) -> list[SourceActivity]:
        return sqlite_analyst.source_activity(self._conn(), since)

    def move_alerts(self, alert_ids: Sequence[str], source_id: str, target_id: str, actor: str) -> list[str]:
        if source_id == target_id:
            raise Conflict(f"cannot move alerts from incident {source_id!r} to itself")
        with self._write() as conn:
            for incident_id in (source_id, target_id):
                if conn.execute("SELECT 1 FROM incidents WHERE id=?", (incident_id,)).fetchone() is None:
                    raise NotFound("incident", incident_id)
            moved = sqlite_analyst.move_alerts(conn, alert_ids, source_id, target_id)
            if moved:
                self._append(conn, source_id, "alerts_moved_out", actor, {"alert_ids": moved, "to": target_id})
                self._append(conn, target_id, "alerts_moved_in", actor, {"alert_ids": moved, "from": source_id})
        return moved


def incident_row(incident: Incident) -> tuple[Any, ...]:
    """The ``incidents`` table row of an incident projection, in column order."""
    return (
        incident.id,
        incident.title,
        int(incident.severity),
        incident.status.value,
        format_ts(incident.created),
        format_ts(incident.updated),
        format_ts(incident.first_event_time),
        format_ts(incident.last_event_time),
        incident.group_key,
        _dumps({k: list(v) for k, v in incident.entities.items()}),
        _dumps(list(incident.tags)),
        incident.alert_count,
        incident.mttd_seconds,
        incident.assignee,
        incident.verdict,
    )


def _json_path(name: str) -> str:
    parts = name.split(".") if name != "@timestamp" else [name]
    return "$" + "".join(f'."{p}"' for p in parts)


def _fts_query(text: str) -> str:
    """Quote every term so user input is matched as words, never as FTS syntax."""
    terms = [t for t in text.split() if t]
    return " ".join('"' + t.replace('"', '""') + '"' for t in terms)
