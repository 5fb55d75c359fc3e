"""Copying one store into another (``citysoc store migrate``), e.g. the embedded file into a cluster.

Most records go through the ordinary :class:`store.base.Store` interface, which is
idempotent for them (events and alerts by id, runs refused when present, users and API tokens
replaced).  Three kinds must keep what the interface would re-stamp, so the target
takes them verbatim through :class:`RecordImporter`:

* incidents with their whole timeline (``create_incident`` would append a new
  ``created`` entry and reset the projection),
* the audit log with its original sequence numbers, times and hashes, so the
  chain still verifies in the target,
* dead letters with their ids and times.

:class:`store.elastic.ElasticStore` implements the importer; :class:`SQLiteImporter`
does it for the embedded store.  A migration can be re-run after an interruption:
what is in the target already is skipped, and the audit log of the target must be
a prefix of the source's (otherwise it is refused, never merged).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, runtime_checkable

from store.base import Store
from store.errors import Conflict, NotFound, StoreError
from store.event import format_ts
from store.models import AuditEntry, DeadLetter, Incident, TimelineEntry
from store.sqlite import SQLiteStore, incident_row

log = logging.getLogger(__name__)

PAGE = 1000
R = TypeVar("R")


class MigrationError(StoreError):
    """The target cannot take the source's records as they are (diverging audit log, missing importer)."""


@runtime_checkable
class RecordImporter(Protocol):
    """Verbatim writes a target store offers for migration."""

    def import_incident(self, incident: Incident, timeline: Sequence[TimelineEntry]) -> bool:
        """Store the projection and its timeline as given; False when the incident exists."""

    def import_audit(self, entry: AuditEntry) -> None:
        """Append one entry as given (entries arrive in sequence order)."""

    def import_dead_letter(self, letter: DeadLetter) -> bool:
        """Store a dead letter with its id and time; False when the id exists."""


class SQLiteImporter:
    """:class:`RecordImporter` for the embedded store, in its own transactions.

    It writes the embedded store's tables directly (same package, same schema
    owner); the SQL mirrors :mod:`store.sqlite` and uses placeholders only.
    """

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def import_incident(self, incident: Incident, timeline: Sequence[TimelineEntry]) -> bool:
        with self.store._write() as conn:
            if conn.execute("SELECT 1 FROM incidents WHERE id=?", (incident.id,)).fetchone():
                return False
            conn.execute(
                "INSERT INTO incidents VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                incident_row(incident),
            )
            conn.executemany(
                "INSERT INTO incident_timeline VALUES (?,?,?,?,?,?)",
                [(e.incident_id, e.seq, format_ts(e.at), e.kind, e.actor, _dumps(dict(e.data))) for e in timeline],
            )
        return True

    def import_audit(self, entry: AuditEntry) -> None:
        with self.store._write() as conn:
            conn.execute(
                "INSERT INTO audit VALUES (?,?,?,?,?,?,?,?)",
                (
                    entry.seq,
                    format_ts(entry.at),
                    entry.actor,
                    entry.action,
                    entry.object,
                    _dumps(dict(entry.details)),
                    entry.prev_hash,
                    entry.hash,
                ),
            )

    def import_dead_letter(self, letter: DeadLetter) -> bool:
        with self.store._write() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO dead_letters(id, at, source, offset, reason, raw) VALUES (?,?,?,?,?,?)",
                (letter.id, format_ts(letter.at), letter.source, letter.offset, letter.reason, letter.raw),
            )
        return cur.rowcount == 1


def _dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def importer_for(store: Store) -> RecordImporter:
    if isinstance(store, SQLiteStore):
        return SQLiteImporter(store)
    if isinstance(store, RecordImporter):
        return store
    raise MigrationError(
        f"the {type(store).__name__} backend offers no verbatim import (import_incident, import_audit, "
        "import_dead_letter); incidents and the audit chain cannot be copied into it without being re-stamped"
    )


@dataclass
class KindReport:
    source: int = 0
    copied: int = 0
    skipped: int = 0


@dataclass
class MigrationReport:
    kinds: dict[str, KindReport] = field(default_factory=dict)
    audit_verified: int = 0

    def kind(self, name: str) -> KindReport:
        return self.kinds.setdefault(name, KindReport())

    def lines(self) -> list[str]:
        out = [
            f"{name}: {k.copied} copied, {k.skipped} already there (source {k.source})"
            for name, k in self.kinds.items()
        ]
        out.append(f"audit chain verifies in the target: {self.audit_verified} entries")
        return out


Progress = Callable[[str, int], None]


def _pages(fetch: Callable[[int, int], list[R]], page: int = PAGE) -> Iterator[list[R]]:
    offset = 0
    while True:
        rows = fetch(page, offset)
        if not rows:
            return
        yield rows
        offset += len(rows)


def migrate(source: Store, target: Store, batch: int = 1000, progress: Progress | None = None) -> MigrationReport:
    """Copy everything from ``source`` into ``target``; safe to re-run."""
    importer = importer_for(target)
    report = MigrationReport()
    note = progress or (lambda kind, n: None)

    kind = report.kind("users")
    for user in source.list_users():
        kind.source += 1
        target.put_user(user)  # replace: the source is authoritative
        kind.copied += 1

    kind = report.kind("api_tokens")
    for token in source.list_api_tokens():
        kind.source += 1
        target.put_api_token(token)  # hashed secrets only; keyed by id, so a re-run replaces
        kind.copied += 1

    kind = report.kind("events")
    pending = []
    for event in source.iter_events():
        kind.source += 1
        pending.append(event)
        if len(pending) >= batch:
            kind.copied += len(target.put_events(pending))
            pending = []
            note("events", kind.source)
    if pending:
        kind.copied += len(target.put_events(pending))
    kind.skipped = kind.source - kind.copied

    kind = report.kind("dead_letters")
    letters = [dl for rows in _pages(lambda n, o: source.list_dead_letters(n, o)) for dl in rows]
    for letter in sorted(letters, key=lambda d: d.id):
        kind.source += 1
        if importer.import_dead_letter(letter):
            kind.copied += 1
        else:
            kind.skipped += 1

    kind = report.kind("alerts")
    for alert in source.list_alerts(limit=max(1, source.count_alerts())):
        kind.source += 1
        if target.add_alert(alert):
            kind.copied += 1
        else:
            kind.skipped += 1

    kind = report.kind("incidents")
    for rows in _pages(lambda n, o: source.list_incidents(limit=n, offset=o)):
        for incident in rows:
            kind.source += 1
            if importer.import_incident(incident, source.timeline(incident.id)):
                kind.copied += 1
            else:
                kind.skipped += 1

    kind = report.kind("runs")
    for run in source.list_runs(limit=max(1, source.count_runs())):
        kind.source += 1
        try:
            target.create_run(run)
            kind.copied += 1
        except Conflict:
            kind.skipped += 1

    _copy_audit(source, target, importer, report.kind("audit"))
    report.audit_verified = target.verify_audit()
    return report


def _copy_audit(source: Store, target: Store, importer: RecordImporter, kind: KindReport) -> None:
    entries = [e for rows in _pages(lambda n, o: source.audit_entries(n, o)) for e in rows]
    entries.sort(key=lambda e: e.seq)
    existing = [e for rows in _pages(lambda n, o: target.audit_entries(n, o)) for e in rows]
    existing.sort(key=lambda e: e.seq)
    kind.source = len(entries)
    for have, want in zip(existing, entries, strict=False):
        if have.hash != want.hash:
            raise MigrationError(
                f"the target's audit log diverges from the source at entry {have.seq}: "
                "migrate into a store with an empty audit log (or the same chain)"
            )
    if len(existing) > len(entries):
        raise MigrationError(f"the target's audit log is longer ({len(existing)}) than the source's ({len(entries)})")
    for entry in entries[len(existing) :]:
        importer.import_audit(entry)
        kind.copied += 1
    kind.skipped = len(existing)


def verify_copy(source: Store, target: Store) -> list[str]:
    """Differences in record counts between source and target (empty when the copy is complete)."""
    problems = []
    counts: tuple[tuple[str, Callable[[Store], int]], ...] = (
        ("events", lambda s: s.count_events()),
        ("alerts", lambda s: s.count_alerts()),
        ("incidents", lambda s: s.count_incidents()),
        ("runs", lambda s: s.count_runs()),
        ("dead letters", lambda s: s.count_dead_letters()),
    )
    for name, count in counts:
        a, b = count(source), count(target)
        if b < a:
            problems.append(f"{name}: {a} in the source, {b} in the target")
    try:
        target.verify_audit()
    except StoreError as exc:
        problems.append(f"audit: {exc}")
    for user in source.list_users():
        try:
            target.get_user(user.username)
        except NotFound:
            problems.append(f"user {user.username!r} missing in the target")
    return problems
