from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from detections.incidents import IncidentManager, group_key, severity_for
from store.models import Alert, Incident, IncidentStatus, Severity
from store.sqlite import SQLiteStore
from tests.helpers import T0


def _alert(aid: str, seconds: float, level: Severity = Severity.HIGH, **entities: str) -> Alert:
    return Alert(
        aid,
        f"rule-{aid}",
        f"Rule {aid}",
        level,
        T0,
        T0 + timedelta(seconds=seconds),
        (f"e{aid}",),
        entities,
        ("attack.t1110",),
    )


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bool]] = []

    def on_incident_alert(self, incident: Incident, alert: Alert, created: bool) -> None:
        self.seen.append((incident.id, alert.id, created))


def test_alerts_group_by_entity_within_window(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db")
    listener = Recorder()
    clock = iter([T0 + timedelta(seconds=30), T0 + timedelta(hours=5)])
    manager = IncidentManager(store, window=timedelta(hours=1), listeners=[listener], clock=lambda: next(clock))
    alerts = [
        _alert("1", 0, **{"source.ip": "10.20.5.66", "iot.device.id": "cam-0042"}),
        _alert("2", 60, Severity.CRITICAL, **{"source.ip": "10.20.5.66", "destination.ip": "10.30.1.10"}),
        _alert("3", 4 * 3600, **{"source.ip": "10.20.5.66"}),  # outside the window: a new incident
    ]
    incidents = []
    for alert in alerts:
        store.add_alert(alert)
        incidents.append(manager.handle(alert))
    first, second, third = incidents
    assert first.id == second.id != third.id
    assert second.alert_count == 2 and second.severity is Severity.CRITICAL
    assert second.entities["destination.ip"] == ("10.30.1.10",)
    assert second.mttd_seconds == 30.0
    assert second.group_key == "source.ip=10.20.5.66"
    assert [created for _, _, created in listener.seen] == [True, False, True]
    assert store.get_incident(first.id).status is IncidentStatus.NEW


def test_group_key_and_severity_rules() -> None:
    assert group_key(_alert("1", 0, **{"host.name": "web-01", "user.name": "bob"})) == "host.name=web-01"
    assert group_key(_alert("1", 0)) == "rule=rule-1"
    crit = _alert("1", 0, Severity.MEDIUM, **{"asset.security_level": "4"})
    assert severity_for(crit) is Severity.HIGH
    assert severity_for(_alert("1", 0, Severity.CRITICAL, **{"asset.criticality": "critical"})) is Severity.CRITICAL
    assert severity_for(_alert("1", 0, Severity.LOW, **{"asset.security_level": "2"})) is Severity.LOW
    assert isinstance(T0, datetime)
