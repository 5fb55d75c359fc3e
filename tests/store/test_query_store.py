"""The analyst queries every backend answers: incident queue filters, dashboards, merge/split, migration."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from store.base import Store
from store.errors import Conflict, NotFound
from store.filters import FilterError, IncidentFilter
from store.models import Alert, Incident, IncidentStatus, Severity
from store.query import parse
from store.sqlite import SQLiteStore
from tests.helpers import T0, event

SLA = {s: timedelta(hours=1) for s in Severity}


def incident(n: int, severity: Severity, agency: str, sector: str, minutes: int) -> Incident:
    created = T0 + timedelta(minutes=minutes)
    return Incident(
        id=f"inc-{n}", title=f"Incident {n} at {sector}", severity=severity, status=IncidentStatus.NEW,
        created=created, updated=created, first_event_time=created, last_event_time=created,
        group_key=f"k{n}", mttd_seconds=30.0 * n,
    )  # fmt: skip


def alert(n: int, incident_id: str | None, agency: str, sector: str, ip: str, minutes: int,
          severity: Severity = Severity.MEDIUM) -> Alert:  # fmt: skip
    return Alert(
        id=f"alert-{n}", rule_id="r1", rule_title="Rule one", severity=severity,
        created=T0 + timedelta(minutes=minutes), event_time=T0 + timedelta(minutes=minutes),
        event_ids=(), entities={"asset.agency": agency, "asset.sector": sector, "source.ip": ip},
        tags=(f"attack.t100{n}",),
    )  # fmt: skip


def seed(store: Store) -> None:
    rows = [
        (1, Severity.HIGH, "water-dept", "water", "10.0.0.1", 0),
        (2, Severity.LOW, "water-dept", "water", "10.0.0.2", 10),
        (3, Severity.CRITICAL, "transport-dept", "transport", "10.0.0.3", 20),
        (4, Severity.HIGH, "transport-dept", "transport", "10.0.0.1", 30),
    ]
    for n, severity, agency, sector, ip, minutes in rows:
        store.create_incident(incident(n, severity, agency, sector, minutes), actor="t")
        a = alert(n, None, agency, sector, ip, minutes, severity)
        store.add_alert(a)
        store.attach_alert(f"inc-{n}", a, actor="t")
    store.append_timeline("inc-2", "status", "t", {"value": "closed"})
    store.append_timeline("inc-4", "assign", "t", {"value": "alice"})


def ids(store: Store, flt: IncidentFilter, limit: int = 50, offset: int = 0) -> list[str]:
    return [i.id for i in store.query_incidents(flt, limit=limit, offset=offset).items]


def test_queue_filters_sort_and_count(store: Store) -> None:
    seed(store)
    assert ids(store, IncidentFilter()) == ["inc-4", "inc-3", "inc-2", "inc-1"]
    assert ids(store, IncidentFilter(descending=False)) == ["inc-1", "inc-2", "inc-3", "inc-4"]
    assert ids(store, IncidentFilter(sort="severity"))[0] == "inc-3"
    assert ids(store, IncidentFilter(statuses=(IncidentStatus.CLOSED,))) == ["inc-2"]
    assert ids(store, IncidentFilter(severities=(Severity.HIGH,))) == ["inc-4", "inc-1"]
    assert ids(store, IncidentFilter(sectors=("transport",))) == ["inc-4", "inc-3"]
    assert ids(store, IncidentFilter(agencies=("water-dept",))) == ["inc-2", "inc-1"]
    assert ids(store, IncidentFilter(entity=("source.ip", "10.0.0.1"))) == ["inc-4", "inc-1"]
    assert ids(store, IncidentFilter(assignee="alice")) == ["inc-4"]
    assert ids(store, IncidentFilter(unassigned=True)) == ["inc-3", "inc-2", "inc-1"]
    assert ids(store, IncidentFilter(text="at transport")) == ["inc-4", "inc-3"]
    assert ids(store, IncidentFilter(text="inc-2")) == ["inc-2"]
    assert ids(store, IncidentFilter(text="100%_")) == []  # LIKE metacharacters are literal
    assert ids(store, IncidentFilter(created_after=T0 + timedelta(minutes=15))) == ["inc-4", "inc-3"]
    page = store.query_incidents(IncidentFilter(), limit=2, offset=1)
    assert [i.id for i in page.items] == ["inc-3", "inc-2"] and page.total == 4
    assert store.query_incidents(IncidentFilter(severities=(Severity.HIGH,)), limit=0).total == 2


def test_agency_scope(store: Store) -> None:
    seed(store)
    assert ids(store, IncidentFilter(scope=("transport-dept",))) == ["inc-4", "inc-3"]
    assert ids(store, IncidentFilter(scope=("transport-dept",), agencies=("water-dept",))) == []
    assert ids(store, IncidentFilter(scope=())) == []  # scoped to no agency: nothing
    assert ids(store, IncidentFilter(scope=None)) == ["inc-4", "inc-3", "inc-2", "inc-1"]


def test_sla_breached_and_due(store: Store) -> None:
    seed(store)
    targets = dict(SLA, critical=timedelta(minutes=5))
    targets = {Severity.parse(k) if isinstance(k, str) else k: v for k, v in targets.items()}
    now = T0 + timedelta(minutes=65)
    breached = IncidentFilter(sla="breached", sla_targets=targets, now=now)
    due = IncidentFilter(sla="due", sla_targets=targets, now=now)
    # inc-1 (high, +0) is past 1 h, inc-3 (critical, +20) past 5 min; inc-2 is closed; inc-4 (+30) is in time
    assert ids(store, breached) == ["inc-3", "inc-1"]
    assert ids(store, due) == ["inc-4"]


def test_filter_validation() -> None:
    with pytest.raises(FilterError, match="unknown sort key"):
        IncidentFilter(sort="title; DROP")
    with pytest.raises(FilterError, match="needs a target for every severity"):
        IncidentFilter(sla="breached")
    with pytest.raises(FilterError, match="cannot be filtered on"):
        IncidentFilter(entity=("message", "x"))


def test_stats_trend_sectors_and_time_to_close(store: Store) -> None:
    seed(store)
    stats = store.incident_stats(T0, T0 + timedelta(hours=1), timedelta(minutes=15))
    assert [p.created for p in stats.trend] == [2, 1, 1, 0]
    assert stats.trend[0].mttd_seconds == 45.0  # mean of 30 s and 60 s
    assert sum(p.closed for p in stats.trend) == 0  # inc-2 was closed now (wall clock), after the window
    now = datetime.now(UTC)
    whole = store.incident_stats(T0, now + timedelta(hours=1), now + timedelta(hours=1) - T0)
    [point] = whole.trend
    assert point.closed == 1
    expected = (now - (T0 + timedelta(minutes=10))).total_seconds()  # inc-2: created T0 + 10 min
    assert point.mttr_seconds is not None and abs(point.mttr_seconds - expected) < 120
    assert dict(stats.by_sector) == {"water": 2, "transport": 2}
    assert dict(stats.by_status) == {"new": 3, "closed": 1}
    assert dict(stats.by_severity) == {"critical": 1, "high": 2, "low": 1}
    scoped = store.incident_stats(T0, T0 + timedelta(hours=1), timedelta(minutes=15), scope=("water-dept",))
    assert [p.created for p in scoped.trend] == [2, 0, 0, 0]


def test_move_alerts_rebuilds_both_projections(store: Store) -> None:
    seed(store)
    moved = store.move_alerts(["alert-3", "alert-1", "alert-9"], "inc-3", "inc-1", actor="ana")
    assert moved == ["alert-3"]  # alert-1 is not on inc-3; alert-9 does not exist
    target = store.get_incident("inc-1")
    source = store.get_incident("inc-3")
    assert target.alert_count == 2 and target.severity is Severity.CRITICAL
    assert set(target.entities["asset.agency"]) == {"water-dept", "transport-dept"}
    assert set(target.tags) == {"attack.t1001", "attack.t1003"}
    assert source.alert_count == 0
    assert [a.id for a in store.list_alerts(incident_id="inc-1")] == ["alert-1", "alert-3"]
    assert store.timeline("inc-1")[-1].kind == "alerts_moved_in"
    assert store.timeline("inc-3")[-1].data == {"alert_ids": ["alert-3"], "to": "inc-1"}
    # the entity index follows: inc-1 is now in the transport agency's scope too
    assert "inc-1" in ids(store, IncidentFilter(scope=("transport-dept",)))
    with pytest.raises(Conflict):
        store.move_alerts(["alert-1"], "inc-1", "inc-1", actor="ana")
    with pytest.raises(NotFound):
        store.move_alerts(["alert-1"], "inc-1", "inc-404", actor="ana")


def test_source_activity(store: Store) -> None:
    store.put_events([event(i, {"event.dataset": "ot.modbus" if i % 2 else "linux.auth"}) for i in range(5)]
                     + [event(9, {"message": "no dataset"})])  # fmt: skip
    activity = {a.dataset: a for a in store.source_activity(T0 - timedelta(minutes=1))}
    assert activity["ot.modbus"].count == 2 and activity["linux.auth"].count == 3
    assert activity["linux.auth"].last_seen == T0 + timedelta(seconds=4)
    assert activity["(none)"].count == 1


def test_find_events_with_window(store: Store) -> None:
    store.put_events([event(i * 60, {"source.ip": "10.9.9.9", "event.action": "a"}) for i in range(10)])
    page = store.find_events(parse("source.ip:10.9.9.9"), T0 + timedelta(minutes=3), T0 + timedelta(minutes=6),
                             histogram=True)  # fmt: skip
    assert page.total == 3 and len(page.items) == 3
    assert sum(b.count for b in page.histogram) == 3


def test_an_old_database_is_migrated(tmp_path: Path) -> None:
    """A database from before the analyst tables: event terms without time, no incident entity index."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE events (id TEXT PRIMARY KEY, ts TEXT NOT NULL, ingested TEXT NOT NULL, dataset TEXT,"
        " doc TEXT NOT NULL CHECK (json_valid(doc)));"
        "CREATE TABLE event_terms (field TEXT NOT NULL, value TEXT NOT NULL, event_id TEXT NOT NULL,"
        " PRIMARY KEY (field, value, event_id)) WITHOUT ROWID;"
        "CREATE TABLE incidents (id TEXT PRIMARY KEY, title TEXT NOT NULL, severity INTEGER NOT NULL,"
        " status TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL, first_event_time TEXT NOT NULL,"
        " last_event_time TEXT NOT NULL, group_key TEXT NOT NULL, entities TEXT NOT NULL, tags TEXT NOT NULL,"
        " alert_count INTEGER NOT NULL, mttd_seconds REAL, assignee TEXT, verdict TEXT);"
    )
    old = event(0, {"source.ip": "10.1.1.1"}, event_id="old-1")
    conn.execute("INSERT INTO events VALUES (?,?,?,?,?)", ("old-1", "2026-11-21T08:00:00.000000Z",
                 "2026-11-21T08:00:00.000000Z", None, old.to_json()))  # fmt: skip
    conn.execute("INSERT INTO event_terms VALUES ('source.ip', '10.1.1.1', 'old-1')")
    conn.execute(
        "INSERT INTO incidents VALUES ('inc-old','t',3,'new','2026-11-21T08:00:00.000000Z',"
        "'2026-11-21T08:00:00.000000Z','2026-11-21T08:00:00.000000Z','2026-11-21T08:00:00.000000Z','k',?, '[]',1,"
        "NULL,NULL,NULL)",
        (json.dumps({"asset.agency": ["water-dept"]}),),
    )
    conn.commit()
    conn.close()
    for _ in range(2):  # opening again changes nothing
        store = SQLiteStore(path)
        try:
            assert ids(store, IncidentFilter(scope=("water-dept",))) == ["inc-old"]
            page = store.find_events(parse("source.ip:10.1.1.1"), T0 - timedelta(hours=1), T0 + timedelta(hours=1))
            assert [e.id for e in page.items] == ["old-1"]
        finally:
            store.close()
