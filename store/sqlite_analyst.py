"""The analyst queries of the embedded store: incident queue, event search with histogram, dashboards.

:class:`store.sqlite.SQLiteStore` delegates its analyst methods here; each function
takes the connection.  Incidents' entity values are kept in ``incident_terms``
(field, value, incident) so agency scoping, sector filters and entity pivots are
index lookups; every value reaches SQL as a bound parameter, and SQL text comes
only from this module and :mod:`store.query`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from store.errors import StoreError
from store.event import Event, format_ts, parse_ts
from store.filters import (
    INCIDENT_SORTS,
    Bucket,
    EventPage,
    IncidentFilter,
    IncidentStats,
    SourceActivity,
    TrendPoint,
    bucket_start,
    choose_interval,
)
from store.models import IncidentStatus, Severity
from store.query import Node, QueryError, to_sql
from store.sqlite_upgrade import upgrade_once

#: Up to this many matches an event search with histogram reads them in one pass.
SINGLE_PASS_LIMIT = 200_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS incident_terms (
    field TEXT NOT NULL, value TEXT NOT NULL, incident_id TEXT NOT NULL,
    PRIMARY KEY (field, value, incident_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS incident_terms_incident ON incident_terms(incident_id);
CREATE INDEX IF NOT EXISTS incident_terms_value ON incident_terms(value);
CREATE INDEX IF NOT EXISTS incidents_status_created ON incidents(status, created);
CREATE INDEX IF NOT EXISTS incidents_severity_created ON incidents(severity, created);
CREATE INDEX IF NOT EXISTS incidents_assignee_created ON incidents(assignee, created);
CREATE INDEX IF NOT EXISTS incidents_updated ON incidents(updated)
"""

def install(conn: sqlite3.Connection) -> None:
    """Create the analyst tables and indexes, migrating a database made before they existed.

    ``incident_terms`` is filled from the incidents' entities, once, under the write lock,
    and skipped by a process that finds it done.  (The event tables, with their time-windowed
    term index, are :mod:`store.sqlite_events`'.)
    """
    upgrade_once(conn, _installed, _migrate)
    conn.executescript(SCHEMA)  # indexes added by later versions (IF NOT EXISTS: a no-op once there)


def _installed(conn: sqlite3.Connection) -> bool:
    has_table = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='incident_terms'").fetchone()
    return bool(has_table)


def _migrate(conn: sqlite3.Connection) -> None:
    fill = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='incident_terms'").fetchone() is None
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    if fill:
        conn.execute(
            "INSERT OR IGNORE INTO incident_terms(field, value, incident_id) "
            "SELECT k.key, v.value, i.id FROM incidents i, json_each(i.entities) k, json_each(k.value) v"
        )


def index_entities(conn: sqlite3.Connection, incident_id: str, entities: Mapping[str, Iterable[str]]) -> None:
    """Add an incident's entity values to ``incident_terms`` (inside the caller's transaction)."""
    rows = [(key, str(value), incident_id) for key, values in entities.items() for value in values]
    conn.executemany("INSERT OR IGNORE INTO incident_terms(field, value, incident_id) VALUES (?,?,?)", rows)


def reindex_entities(conn: sqlite3.Connection, incident_id: str, entities: Mapping[str, Iterable[str]]) -> None:
    conn.execute("DELETE FROM incident_terms WHERE incident_id=?", (incident_id,))
    index_entities(conn, incident_id, entities)


# the incident queue -----------------------------------------------------------------------------
def _has_term(field: str, values: Sequence[str], params: list[Any]) -> str:
    params.append(field)
    params.extend(values)
    marks = ",".join("?" * len(values))
    return f"i.id IN (SELECT incident_id FROM incident_terms WHERE field=? AND value IN ({marks}))"  # noqa: S608


def incident_where(flt: IncidentFilter) -> tuple[str, list[Any]]:
    """WHERE clause over ``incidents i`` and its parameters."""
    where: list[str] = []
    params: list[Any] = []
    if flt.scope is not None:
        if not flt.scope:
            where.append("0")  # scoped to no agency: sees nothing
        else:
            where.append(_has_term("asset.agency", flt.scope, params))
    if flt.statuses:
        where.append(f"i.status IN ({','.join('?' * len(flt.statuses))})")
        params.extend(s.value for s in flt.statuses)
    if flt.severities:
        where.append(f"i.severity IN ({','.join('?' * len(flt.severities))})")
        params.extend(int(s) for s in flt.severities)
    if flt.sectors:
        where.append(_has_term("asset.sector", flt.sectors, params))
    if flt.agencies:
        where.append(_has_term("asset.agency", flt.agencies, params))
    if flt.entity is not None:
        where.append(_has_term(flt.entity[0], (flt.entity[1],), params))
    if flt.unassigned:
        where.append("i.assignee IS NULL")
    elif flt.assignee:
        where.append("i.assignee = ?")
        params.append(flt.assignee)
    if flt.text:
        needle = "%" + flt.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        # id, words of the title, or exactly an entity value (an IP, a host): indexed except the title
        where.append("(i.id = ? OR i.title LIKE ? ESCAPE '\\' OR i.id IN "
                     "(SELECT incident_id FROM incident_terms WHERE value = ?))")
        params.extend([flt.text, needle, flt.text])
    if flt.created_after is not None:
        where.append("i.created >= ?")
        params.append(format_ts(flt.created_after))
    if flt.sla is not None:
        deadlines = flt.deadlines()
        where.append("i.status != ?")
        params.append(IncidentStatus.CLOSED.value)
        cases = []
        for severity, deadline in sorted(deadlines.items()):
            cases.append(f"(i.severity = ? AND i.created {'<' if flt.sla == 'breached' else '>='} ?)")
            params.extend([int(severity), format_ts(deadline)])
        where.append("(" + " OR ".join(cases) + ")")
    return (" AND ".join(where) if where else "1"), params


def query_incidents(conn: sqlite3.Connection, flt: IncidentFilter, limit: int, offset: int) -> tuple[list[Any], int]:
    """Rows of one page of the queue and the total that match."""
    where, params = incident_where(flt)
    column = INCIDENT_SORTS[flt.sort]
    direction = "DESC" if flt.descending else "ASC"
    total = int(conn.execute(f"SELECT count(*) FROM incidents i WHERE {where}", params).fetchone()[0])  # noqa: S608
    rows = conn.execute(
        f"SELECT i.* FROM incidents i WHERE {where} ORDER BY i.{column} {direction}, i.id LIMIT ? OFFSET ?",  # noqa: S608
        [*params, limit, offset],
    ).fetchall()
    return rows, total


# event search --------------------------------------------------------------------------------------
def _event_where(
    query: Node | None, term_fields: Sequence[str], start: datetime | None, end: datetime | None
) -> tuple[str, list[Any]]:
    compiled = to_sql(query, frozenset(term_fields), start, end)
    where = [compiled.where]
    params = list(compiled.params)
    if start is not None:
        where.append("e.ts >= ?")
        params.append(format_ts(start))
    if end is not None:
        where.append("e.ts < ?")
        params.append(format_ts(end))
    return " AND ".join(where), params


def find_events(
    conn: sqlite3.Connection,
    query: Node | None,
    term_fields: Sequence[str],
    start: datetime | None,
    end: datetime | None,
    limit: int,
    offset: int,
    histogram: bool,
) -> EventPage:
    """Newest first; with ``histogram`` (needs ``start`` and ``end``) the buckets and the total, else total -1.

    With a histogram the matches are found once: their (ts, id) come back in one pass,
    up to SINGLE_PASS_LIMIT of them, and the page and the buckets are cut from that; only
    a larger match set (an unfiltered day of a busy city) is counted by a GROUP BY and
    paged by a second, index-ordered query.
    """
    where, params = _event_where(query, term_fields, start, end)
    try:
        if not histogram or start is None or end is None:
            return EventPage(_page(conn, where, params, limit, offset), -1)
        interval = choose_interval(start, end)
        step = int(interval.total_seconds())
        origin = bucket_start(start, interval, datetime(1970, 1, 1, tzinfo=start.tzinfo))
        matches = conn.execute(
            f"SELECT e.ts, e.id FROM events e WHERE {where} LIMIT ?",  # noqa: S608
            [*params, SINGLE_PASS_LIMIT + 1],
        ).fetchall()
        if len(matches) <= SINGLE_PASS_LIMIT:
            matches.sort(key=lambda r: (r[0], _Reverse(r[1])), reverse=True)  # ts newest first, then id
            wanted = [r[1] for r in matches[offset : offset + limit]]
            items = _by_ids(conn, wanted)
            per_second: dict[str, int] = {}
            for ts, _ in matches:
                per_second[ts[:19]] = per_second.get(ts[:19], 0) + 1
            by_bucket: dict[int, int] = {}
            base = int(origin.timestamp())
            for second, n in per_second.items():  # parse each distinct second once
                k = (int(parse_ts(second + "Z").timestamp()) - base) // step
                by_bucket[k] = by_bucket.get(k, 0) + n
        else:
            items = _page(conn, where, params, limit, offset)
            # bucket number from the text timestamp: seconds since the origin, by unixepoch() on the ts prefix
            counts = conn.execute(
                f"SELECT (unixepoch(substr(e.ts, 1, 19)) - ?) / ? AS b, count(*) FROM events e "  # noqa: S608
                f"WHERE {where} GROUP BY b ORDER BY b",
                [int(origin.timestamp()), step, *params],
            ).fetchall()
            by_bucket = {int(b): int(n) for b, n in counts}
    except sqlite3.OperationalError as exc:
        if "fts5" in str(exc).lower() or "syntax" in str(exc).lower():
            raise QueryError(f"the full-text index cannot run this query: {exc}") from exc
        raise StoreError(f"event search failed: {exc}") from exc
    buckets = []
    k = 0
    while True:
        at = origin + k * interval
        if at >= end:
            break
        buckets.append(Bucket(at, by_bucket.get(k, 0)))
        k += 1
    return EventPage(items, sum(by_bucket.values()), tuple(buckets), interval)


class _Reverse(str):
    """Orders strings backwards (ids ascending inside a descending sort)."""

    def __lt__(self, other: object) -> bool:
        return str.__gt__(self, other)  # type: ignore[operator]


def _page(conn: sqlite3.Connection, where: str, params: list[Any], limit: int, offset: int) -> tuple[Event, ...]:
    rows = conn.execute(
        f"SELECT e.doc FROM events e WHERE {where} ORDER BY e.ts DESC, e.id LIMIT ? OFFSET ?",  # noqa: S608
        [*params, limit, offset],
    ).fetchall()
    return tuple(Event.from_json(r[0]) for r in rows)


def _by_ids(conn: sqlite3.Connection, ids: list[str]) -> tuple[Event, ...]:
    if not ids:
        return ()
    marks = ",".join("?" * len(ids))
    docs = dict(conn.execute(f"SELECT id, doc FROM events WHERE id IN ({marks})", ids).fetchall())  # noqa: S608
    return tuple(Event.from_json(docs[i]) for i in ids if i in docs)


def source_activity(conn: sqlite3.Connection, since: datetime) -> list[SourceActivity]:
    rows = conn.execute(
        "SELECT coalesce(dataset, '(none)') AS d, count(*) AS n, max(ts) AS last FROM events "
        "WHERE ts >= ? GROUP BY d ORDER BY d",
        (format_ts(since),),
    ).fetchall()
    return [SourceActivity(r["d"], int(r["n"]), parse_ts(r["last"])) for r in rows]


# dashboards -------------------------------------------------------------------------------------------
def incident_stats(
    conn: sqlite3.Connection, start: datetime, end: datetime, interval: timedelta, scope: tuple[str, ...] | None
) -> IncidentStats:
    scope_sql, params = incident_where(IncidentFilter(scope=scope))
    window = [format_ts(start), format_ts(end)]
    origin = int(start.timestamp())
    step = int(interval.total_seconds())
    created = conn.execute(
        f"SELECT (unixepoch(substr(i.created, 1, 19)) - ?) / ? AS b, count(*), avg(i.mttd_seconds) "  # noqa: S608
        f"FROM incidents i WHERE {scope_sql} AND i.created >= ? AND i.created < ? GROUP BY b",
        [origin, step, *params, *window],
    ).fetchall()
    # time to close: the last "closed" status entry of each incident closed in the window
    closed = conn.execute(
        f"SELECT (unixepoch(substr(c.at, 1, 19)) - ?) / ? AS b, count(*), "  # noqa: S608
        f"avg(unixepoch(substr(c.at, 1, 19)) - unixepoch(substr(i.created, 1, 19))) "
        f"FROM incidents i JOIN (SELECT incident_id, max(at) AS at FROM incident_timeline "
        f"WHERE kind = 'status' AND json_extract(data, '$.value') = 'closed' GROUP BY incident_id) c "
        f"ON c.incident_id = i.id WHERE {scope_sql} AND i.status = 'closed' AND c.at >= ? AND c.at < ? GROUP BY b",
        [origin, step, *params, *window],
    ).fetchall()
    made = {int(r[0]): (int(r[1]), r[2]) for r in created}
    done = {int(r[0]): (int(r[1]), r[2]) for r in closed}
    trend = []
    k = 0
    while start + k * interval < end:
        n_created, mttd = made.get(k, (0, None))
        n_closed, mttr = done.get(k, (0, None))
        trend.append(TrendPoint(start + k * interval, n_created, mttd, n_closed, mttr))
        k += 1
    in_window = f"{scope_sql} AND i.created >= ? AND i.created < ?"
    by_sector = conn.execute(
        f"SELECT t.value, count(*) FROM incidents i JOIN incident_terms t ON t.incident_id = i.id "  # noqa: S608
        f"AND t.field = 'asset.sector' WHERE {in_window} GROUP BY t.value ORDER BY count(*) DESC, t.value",
        [*params, *window],
    ).fetchall()
    unknown = conn.execute(
        f"SELECT count(*) FROM incidents i WHERE {in_window} AND NOT EXISTS "  # noqa: S608
        f"(SELECT 1 FROM incident_terms t WHERE t.incident_id = i.id AND t.field = 'asset.sector')",
        [*params, *window],
    ).fetchone()[0]
    by_status = conn.execute(
        f"SELECT i.status, count(*) FROM incidents i WHERE {in_window} GROUP BY i.status",  # noqa: S608
        [*params, *window],
    ).fetchall()
    by_severity = conn.execute(
        f"SELECT i.severity, count(*) FROM incidents i WHERE {in_window} GROUP BY i.severity "  # noqa: S608
        f"ORDER BY i.severity DESC",
        [*params, *window],
    ).fetchall()
    sectors = [(str(r[0]), int(r[1])) for r in by_sector]
    if unknown:
        sectors.append(("(no sector)", int(unknown)))
    return IncidentStats(
        trend=tuple(trend),
        by_sector=tuple(sectors),
        by_status=tuple((str(r[0]), int(r[1])) for r in by_status),
        by_severity=tuple((Severity(r[0]).label, int(r[1])) for r in by_severity),
    )


# merge and split ------------------------------------------------------------------------------------
def recompute(conn: sqlite3.Connection, incident_id: str) -> None:
    """Rebuild an incident's alert-derived projection (entities, tags, severity, times, count) from its alerts."""
    rows = conn.execute(
        "SELECT severity, event_time, entities, tags FROM alerts WHERE incident_id=? ORDER BY event_time, id",
        (incident_id,),
    ).fetchall()
    if not rows:
        conn.execute("UPDATE incidents SET alert_count=0 WHERE id=?", (incident_id,))
        reindex_entities(conn, incident_id, {})
        conn.execute("UPDATE incidents SET entities='{}', tags='[]' WHERE id=?", (incident_id,))
        return
    entities: dict[str, list[str]] = {}
    tags: list[str] = []
    for r in rows:
        for key, value in json.loads(r["entities"]).items():
            bucket = entities.setdefault(key, [])
            if value not in bucket:
                bucket.append(value)
        tags.extend(t for t in json.loads(r["tags"]) if t not in tags)
    conn.execute(
        "UPDATE incidents SET severity=?, first_event_time=?, last_event_time=?, entities=?, tags=?, alert_count=? "
        "WHERE id=?",
        (
            max(int(r["severity"]) for r in rows),
            min(r["event_time"] for r in rows),
            max(r["event_time"] for r in rows),
            json.dumps(entities, sort_keys=True, ensure_ascii=False),
            json.dumps(tags, ensure_ascii=False),
            len(rows),
            incident_id,
        ),
    )
    reindex_entities(conn, incident_id, entities)


def move_alerts(conn: sqlite3.Connection, alert_ids: Sequence[str], source_id: str, target_id: str) -> list[str]:
    """Re-link alerts of ``source_id`` to ``target_id``; returns the ids moved (others are not on the source)."""
    moved = []
    for alert_id in dict.fromkeys(alert_ids):
        cur = conn.execute(
            "UPDATE alerts SET incident_id=? WHERE id=? AND incident_id=?", (target_id, alert_id, source_id)
        )
        if cur.rowcount:
            moved.append(alert_id)
    recompute(conn, source_id)
    recompute(conn, target_id)
    return moved
