"""Compliance records on their own SQLite file: manual attestations and vulnerability scans.

Some evidence cannot come from telemetry: the approved security policy, the licensed body's
assessment report, the result of a vulnerability scan.  A compliance officer records them here,
with who recorded them, when, and the SHA-256 of the uploaded document, so a report can cite
them and an inspector can check the document later.  Records are append-only (a correction is a
new record); the file lives beside the other data (``$CITYSOC_HOME/compliance.db``) whichever event
store is configured.  The pattern follows :mod:`store.detection_state`.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from store.errors import StoreError
from store.event import format_ts, parse_ts
from store.sqlite_busy import use_wal

_DDL = (
    """CREATE TABLE IF NOT EXISTS attestations (
        id INTEGER PRIMARY KEY AUTOINCREMENT, control_id TEXT NOT NULL, subject TEXT NOT NULL,
        actor TEXT NOT NULL, at TEXT NOT NULL, filename TEXT NOT NULL, sha256 TEXT NOT NULL,
        valid_until TEXT NOT NULL, note TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS vulnerability_scans (
        id INTEGER PRIMARY KEY AUTOINCREMENT, subject TEXT NOT NULL, scanned_at TEXT NOT NULL,
        open_critical INTEGER NOT NULL, open_high INTEGER NOT NULL, open_total INTEGER NOT NULL,
        tool TEXT NOT NULL, actor TEXT NOT NULL, at TEXT NOT NULL
    )""",
)


@dataclass(frozen=True)
class Attestation:
    """An uploaded document attesting a manual control for a system (or ``city``)."""

    id: int
    control_id: str
    subject: str
    actor: str
    at: datetime
    filename: str
    sha256: str
    valid_until: datetime
    note: str = ""


@dataclass(frozen=True)
class VulnerabilityScan:
    """The open findings of one vulnerability scan of a system."""

    id: int
    subject: str
    scanned_at: datetime
    open_critical: int
    open_high: int
    open_total: int
    tool: str
    actor: str
    at: datetime


class ComplianceRecords:
    """Attestations and vulnerability scans on the SQLite file at ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        for ddl in _DDL:
            self._conn().execute(ddl)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                # autocommit: a record is durable when the call returns
                conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
                use_wal(conn)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open compliance records at {self.path}: {exc}") from exc
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn

    def add_attestation(
        self,
        control_id: str,
        subject: str,
        actor: str,
        at: datetime,
        filename: str,
        sha256: str,
        valid_until: datetime,
        note: str = "",
    ) -> Attestation:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise StoreError(f"attestation for {control_id}/{subject}: {sha256!r} is not a SHA-256 hex digest")
        cur = self._conn().execute(
            "INSERT INTO attestations (control_id, subject, actor, at, filename, sha256, valid_until, note) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (control_id, subject, actor, format_ts(at), filename, sha256, format_ts(valid_until), note),
        )
        return Attestation(int(cur.lastrowid or 0), control_id, subject, actor, at, filename, sha256, valid_until, note)

    def attestations(self, subject: str | None = None, control_id: str | None = None) -> list[Attestation]:
        sql, args = "SELECT * FROM attestations WHERE 1=1", list[str]()
        if subject is not None:
            sql, args = sql + " AND subject = ?", [*args, subject]
        if control_id is not None:
            sql, args = sql + " AND control_id = ?", [*args, control_id]
        rows = self._conn().execute(sql + " ORDER BY at, id", args).fetchall()
        return [
            Attestation(
                r["id"],
                r["control_id"],
                r["subject"],
                r["actor"],
                parse_ts(r["at"]),
                r["filename"],
                r["sha256"],
                parse_ts(r["valid_until"]),
                r["note"],
            )
            for r in rows
        ]

    def add_scan(
        self,
        subject: str,
        scanned_at: datetime,
        open_critical: int,
        open_high: int,
        open_total: int,
        tool: str,
        actor: str,
        at: datetime,
    ) -> VulnerabilityScan:
        if min(open_critical, open_high, open_total) < 0 or open_total < open_critical + open_high:
            raise StoreError(f"vulnerability scan of {subject}: counts must be >= 0 and total >= critical + high")
        cur = self._conn().execute(
            "INSERT INTO vulnerability_scans (subject, scanned_at, open_critical, open_high, open_total, tool, actor, "
            "at) VALUES (?,?,?,?,?,?,?,?)",
            (subject, format_ts(scanned_at), open_critical, open_high, open_total, tool, actor, format_ts(at)),
        )
        return VulnerabilityScan(
            int(cur.lastrowid or 0), subject, scanned_at, open_critical, open_high, open_total, tool, actor, at
        )

    def scans(self, subject: str | None = None) -> list[VulnerabilityScan]:
        sql, args = "SELECT * FROM vulnerability_scans", list[str]()
        if subject is not None:
            sql, args = sql + " WHERE subject = ?", [subject]
        rows = self._conn().execute(sql + " ORDER BY scanned_at, id", args).fetchall()
        return [
            VulnerabilityScan(
                r["id"],
                r["subject"],
                parse_ts(r["scanned_at"]),
                r["open_critical"],
                r["open_high"],
                r["open_total"],
                r["tool"],
                r["actor"],
                parse_ts(r["at"]),
            )
            for r in rows
        ]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
