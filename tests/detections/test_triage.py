"""Triage: every change is a timeline entry plus an audit entry; merge, split and escalation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from detections import triage
from store.models import Alert, Incident, IncidentStatus, Severity
from store.sqlite import SQLiteStore
from tests.helpers import T0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    backend = SQLiteStore(tmp_path / "t.db")
    for n in (1, 2):
        backend.create_incident(Incident(
            id=f"inc-{n}", title=f"Incident {n}", severity=Severity.LOW, status=IncidentStatus.NEW, created=T0,
            updated=T0, first_event_time=T0, last_event_time=T0, group_key=f"k{n}"), actor="detections")  # fmt: skip
    for n, incident_id, severity in ((1, "inc-1", Severity.LOW), (2, "inc-1", Severity.HIGH),
                                     (3, "inc-2", Severity.MEDIUM)):  # fmt: skip
        alert = Alert(id=f"a{n}", rule_id=f"r{n}", rule_title=f"Rule {n}", severity=severity,
                      created=T0, event_time=T0 + timedelta(minutes=n), event_ids=(),
                      entities={"source.ip": f"10.0.0.{n}"})  # fmt: skip
        backend.add_alert(alert)
        backend.attach_alert(incident_id, alert, actor="detections")
    yield backend
    backend.close()


def last_audit(store: SQLiteStore) -> tuple[str, str, dict[str, object]]:
    entry = store.audit_entries(limit=1)[0]
    return entry.action, entry.object, dict(entry.details)


def test_status_assign_comment_are_timeline_and_audit(store: SQLiteStore) -> None:
    entry = triage.set_status(store, "inc-1", "triage", "ana")
    assert entry is not None and entry.kind == "status"
    assert triage.set_status(store, "inc-1", "triage", "ana") is None  # no change, no entry
    assert last_audit(store)[:2] == ("incident.status", "incident:inc-1")
    with pytest.raises(triage.TriageError, match="not an incident status"):
        triage.set_status(store, "inc-1", "done", "ana")
    triage.assign(store, "inc-1", "bob", "ana", known_user=lambda u: u == "bob")
    assert store.get_incident("inc-1").assignee == "bob"
    assert last_audit(store) == ("incident.assign", "incident:inc-1", {"from": None, "to": "bob", "timeline_seq": 5})
    with pytest.raises(triage.TriageError, match="there is no user 'eve'"):
        triage.assign(store, "inc-1", "eve", "ana", known_user=lambda u: u == "bob")
    triage.assign(store, "inc-1", "", "ana")
    assert store.get_incident("inc-1").assignee is None
    with pytest.raises(triage.TriageError, match="cannot be empty"):
        triage.comment(store, "inc-1", "   ", "ana")


def test_a_verdict_needs_a_known_value_and_a_reason(store: SQLiteStore) -> None:
    with pytest.raises(triage.TriageError) as caught:
        triage.set_verdict(store, "inc-1", "false_positive", "  ", "ana")
    assert caught.value.field == "reason"
    with pytest.raises(triage.TriageError, match="is not a verdict"):
        triage.set_verdict(store, "inc-1", "maybe", "because", "ana")
    entry = triage.set_verdict(store, "inc-1", "false_positive", "backup job of the historian", "ana")
    assert entry.data == {"value": "false_positive", "reason": "backup job of the historian"}
    assert store.get_incident("inc-1").verdict == "false_positive"
    action, obj, details = last_audit(store)
    assert (action, obj, details["reason"]) == ("incident.verdict", "incident:inc-1", "backup job of the historian")


def test_merge_moves_alerts_and_closes_the_source(store: SQLiteStore) -> None:
    merged = triage.merge(store, "inc-1", ["inc-2"], "ana")
    assert merged.alert_count == 3 and merged.severity is Severity.HIGH
    source = store.get_incident("inc-2")
    assert source.status is IncidentStatus.CLOSED and source.alert_count == 0
    assert [e.kind for e in store.timeline("inc-2")][-3:] == ["alerts_moved_out", "merged_into", "status"]
    assert store.timeline("inc-1")[-1].data == {"incident_id": "inc-2", "alerts": 1}
    assert last_audit(store) == ("incident.merge", "incident:inc-1", {"merged": ["inc-2"]})
    with pytest.raises(triage.TriageError, match="into itself"):
        triage.merge(store, "inc-1", ["inc-1"], "ana")
    with pytest.raises(triage.TriageError, match="at least one"):
        triage.merge(store, "inc-1", [" "], "ana")


def test_split_makes_a_new_incident_from_chosen_alerts(store: SQLiteStore) -> None:
    created = triage.split(store, "inc-1", ["a2"], "ana", title="The high one")
    assert created.title == "The high one" and created.alert_count == 1 and created.severity is Severity.HIGH
    assert created.status is IncidentStatus.TRIAGE
    assert store.get_incident("inc-1").alert_count == 1
    assert store.get_incident("inc-1").severity is Severity.LOW  # rebuilt from the alert left
    assert store.timeline(created.id)[-1].data == {"incident_id": "inc-1", "alerts": 1}
    with pytest.raises(triage.TriageError, match="not alerts of incident inc-1: a3"):
        triage.split(store, "inc-1", ["a3"], "ana")
    with pytest.raises(triage.TriageError, match="leave at least one alert"):
        triage.split(store, "inc-1", ["a1"], "ana")


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, str, str, str]] = []
        self.fail = fail

    def escalate(self, incident: Incident, target: str, reason: str, actor: str) -> str:
        if self.fail:
            raise ConnectionError("mail relay refused")
        self.calls.append((incident.id, target, reason, actor))
        return "TICKET-7"


def test_escalation_without_an_escalator_is_recorded_undelivered(store: SQLiteStore) -> None:
    done = triage.escalate(store, "inc-1", "national-cert", "OT process impact", "ana")
    assert not done.delivered and done.reference is None
    assert done.entry.data["delivered"] is False and "by hand" in done.entry.data["note"]
    assert last_audit(store)[0] == "incident.escalate"


def test_escalation_through_an_escalator(store: SQLiteStore) -> None:
    recorder = Recorder()
    done = triage.escalate(store, "inc-1", "national-cert", "OT impact", "ana", recorder)
    assert done.delivered and done.reference == "TICKET-7"
    assert recorder.calls == [("inc-1", "national-cert", "OT impact", "ana")]
    with pytest.raises(ConnectionError):
        triage.escalate(store, "inc-1", "national-cert", "OT impact", "ana", Recorder(fail=True))
    last = store.timeline("inc-1")[-1]
    assert last.kind == "escalation" and last.data["error"] == "mail relay refused"
