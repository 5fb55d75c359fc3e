"""Behaviour every store backend must have."""

from __future__ import annotations

import multiprocessing
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from store.base import Store
from store.errors import AuditChainBroken, Conflict, NotFound, StoreError
from store.models import (
    Alert,
    Incident,
    IncidentStatus,
    PlaybookRun,
    RunStatus,
    Severity,
    StepRecord,
    StepStatus,
    User,
)
from store.sqlite import SQLiteStore
from tests.helpers import T0, event


def _alert(aid: str, seconds: float = 0, **entities: str) -> Alert:
    return Alert(
        aid,
        "rule-1",
        "Rule One",
        Severity.HIGH,
        T0,
        T0 + timedelta(seconds=seconds),
        ("e1",),
        entities or {"source.ip": "10.0.0.9"},
        ("attack.t1110",),
    )


def _incident(iid: str = "INC-1", key: str = "source.ip=10.0.0.9") -> Incident:
    return Incident(iid, "Brute force", Severity.MEDIUM, IncidentStatus.NEW, T0, T0, T0, T0, key)


def test_events_are_stored_once_and_searchable(store: Store) -> None:
    a = event(1, {"message": "pump P1 started", "source.ip": "10.30.9.10", "event.dataset": "zeek.modbus"})
    b = event(2, {"message": "camera login failed", "source.ip": "10.20.5.66"})
    assert [e.id for e in store.put_events([a, b])] == [a.id, b.id]
    assert store.put_events([a]) == []
    assert store.count_events() == 2
    assert store.get_event(a.id) == a
    assert [e.id for e in store.search_events("camera")] == [b.id]
    assert [e.id for e in store.search_events(filters={"source.ip": "10.30.9.10"})] == [a.id]
    assert [e.id for e in store.search_events()] == [b.id, a.id]  # newest first
    assert [e.id for e in store.iter_events()] == [a.id, b.id]
    assert [e.id for e in store.iter_events(start=T0 + timedelta(seconds=2))] == [b.id]
    with pytest.raises(NotFound):
        store.get_event("nope")


def test_search_text_is_data_not_query_syntax(store: Store) -> None:
    store.put_events([event(1, {"message": 'x" OR 1=1; DROP TABLE events; -- NEAR(a b)'})])
    assert len(store.search_events('" OR 1=1; DROP TABLE events; --')) == 1
    assert len(store.search_events("NEAR(a b)")) == 1
    assert store.count_events() == 1
    with pytest.raises(StoreError, match="unknown field"):
        store.search_events(filters={"nope": "x"})


def test_dead_letters_keep_source_offset_reason_raw(store: Store) -> None:
    dl = store.add_dead_letter("file:/var/log/cam.jsonl", "1234", "BadRecord: missing 'event'", '{"ts": 1')
    assert store.count_dead_letters() == 1
    [got] = store.list_dead_letters()
    assert (got.id, got.source, got.offset, got.reason, got.raw) == (
        dl.id,
        "file:/var/log/cam.jsonl",
        "1234",
        "BadRecord: missing 'event'",
        '{"ts": 1',
    )


def test_incident_timeline_is_append_only_and_projects_state(store: Store) -> None:
    store.put_events([event(0, {"message": "x"}, event_id="e1")])
    created = store.create_incident(_incident(), actor="detections")
    assert created.status is IncidentStatus.NEW
    with pytest.raises(Conflict):
        store.create_incident(_incident(), actor="detections")
    assert store.add_alert(_alert("A1", 5, **{"source.ip": "10.0.0.9", "user.name": "admin"}))
    assert not store.add_alert(_alert("A1", 5))  # dedupe by id
    inc = store.attach_alert("INC-1", store.get_alert("A1"), actor="detections")
    assert inc.alert_count == 1 and inc.severity is Severity.HIGH
    assert inc.entities == {"source.ip": ("10.0.0.9",), "user.name": ("admin",)}
    assert inc.last_event_time == T0 + timedelta(seconds=5)
    assert store.attach_alert("INC-1", store.get_alert("A1"), actor="x").alert_count == 1  # idempotent
    store.append_timeline("INC-1", "status", "analyst1", {"value": "triage"})
    store.append_timeline("INC-1", "comment", "analyst1", {"text": "<b>looking</b>"})
    inc = store.get_incident("INC-1")
    assert inc.status is IncidentStatus.TRIAGE
    kinds = [(t.seq, t.kind) for t in store.timeline("INC-1")]
    assert kinds == [(1, "created"), (2, "alert"), (3, "status"), (4, "comment")]
    assert [a.id for a in store.list_alerts(incident_id="INC-1")] == ["A1"]
    with pytest.raises(ValueError):
        store.append_timeline("INC-1", "status", "analyst1", {"value": "bogus"})
    with pytest.raises(NotFound):
        store.append_timeline("INC-404", "comment", "a", {"text": "x"})


def test_find_open_incident_respects_window_and_status(store: Store) -> None:
    store.create_incident(_incident(), actor="d")
    assert store.find_open_incident("source.ip=10.0.0.9", T0 - timedelta(minutes=5)) is not None
    assert store.find_open_incident("source.ip=10.0.0.9", T0 + timedelta(minutes=5)) is None
    assert store.find_open_incident("source.ip=10.0.0.8", T0 - timedelta(minutes=5)) is None
    store.append_timeline("INC-1", "status", "a", {"value": "closed"})
    assert store.find_open_incident("source.ip=10.0.0.9", T0 - timedelta(minutes=5)) is None


def test_runs_and_steps(store: Store) -> None:
    steps = (
        StepRecord("R1", "a", "collect_evidence", StepStatus.PENDING, 0, None, None, {"limit": 5}),
        StepRecord("R1", "b", "block_ip", StepStatus.PENDING, 0, None, None, {}),
    )
    run = store.create_run(PlaybookRun("R1", "pb", "1", None, RunStatus.PENDING, T0, T0, steps=steps))
    assert [s.ref for s in run.steps] == ["a", "b"]
    assert store.claim_step("R1", "a", 1)
    store.record_step(
        replace(steps[0], status=StepStatus.SUCCEEDED, attempt=1, started=T0, finished=T0, output={"events": 3})
    )
    assert not store.claim_step("R1", "a", 2)
    store.set_run_status("R1", RunStatus.SUCCEEDED)
    got = store.get_run("R1")
    assert got.status is RunStatus.SUCCEEDED
    assert [(s.ref, s.status, s.output) for s in got.steps] == [
        ("a", StepStatus.SUCCEEDED, {"events": 3}),
        ("b", StepStatus.PENDING, None),
    ]
    assert store.count_runs() == 1
    with pytest.raises(NotFound):
        store.set_run_status("R404", RunStatus.FAILED)


def test_audit_chain_detects_tampering(store: Store, tmp_path: Path) -> None:
    for i in range(5):
        store.audit("analyst1", "incident.status", f"INC-{i}", {"value": "closed", "i": i})
    assert store.verify_audit() == 5
    assert [e.seq for e in store.audit_entries()] == [5, 4, 3, 2, 1]
    if isinstance(store, SQLiteStore):
        store._conn().execute('UPDATE audit SET details=\'{"value": "new"}\' WHERE seq=3')
        with pytest.raises(AuditChainBroken, match="entry 3"):
            store.verify_audit()


def test_users(store: Store) -> None:
    store.put_user(User("alice", "hash", ("analyst",), True))
    assert store.get_user("alice").roles == ("analyst",)
    assert [u.username for u in store.list_users()] == ["alice"]
    with pytest.raises(NotFound):
        store.get_user("bob")


def _writer(path: str, start: int) -> None:
    backend = SQLiteStore(path)
    for i in range(start, start + 200):
        backend.put_events([event(i, {"message": f"m{i}"}, event_id=f"ev{i}")])
        backend.audit("proc", "write", f"ev{i}", {})
    backend.close()


def test_several_processes_write_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    SQLiteStore(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, n * 1000)) for n in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    backend = SQLiteStore(path)
    assert backend.count_events() == 600
    assert backend.verify_audit() == 600
    backend.close()


def test_release_closes_only_this_threads_connection(tmp_path: Path) -> None:
    import threading

    backend = SQLiteStore(tmp_path / "r.db")
    backend.put_events([event(1, {"message": "a"})])

    def worker() -> None:
        assert backend.count_events() == 1
        backend.release()

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(backend._all) == 1  # the main thread's; the workers released theirs
    assert backend.count_events() == 1
    backend.close()
