"""Rules that group their alerts into incidents by target (``incident-group-by``), not per attacker."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from detections.engine import DetectionEngine
from detections.incidents import GroupByError, IncidentManager, group_key, parse_group_by
from detections.pack import RULES_DIR, load_rules
from detections.sigma.loader import RuleStatus, SigmaLoadError, load_rule_text
from store.models import Alert, Severity
from store.sqlite import SQLiteStore
from tests.helpers import T0, event

FLOOD = RULES_DIR / "web" / "ioc_api_request_flood.yml"
BOTS = [f"198.51.100.{n}" for n in range(10, 40)]  # 30 flooding addresses


def _flood(tmp_path: Path, rule_text: str) -> SQLiteStore:
    """100 API requests from each of 30 bots within 30 s, through the engine and the flood rule."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "flood.yml").write_text(rule_text, encoding="utf-8")
    pack = load_rules([tmp_path / "rules"])
    store = SQLiteStore(tmp_path / "s.db")
    engine = DetectionEngine(store, pack.ruleset, IncidentManager(store), pack.correlator, pack.names)
    for i in range(100):
        request = {"event.dataset": "web.access", "url.path": "/api/v1/traffic/flow"}
        batch = [event(i * 0.3, {**request, "source.ip": ip}, event_id=f"r{i}-{ip}") for ip in BOTS]
        store.put_events(batch)
        engine.on_events_stored(batch)
    assert engine.stats.alerts == 30
    return store


def test_the_flood_rule_opens_one_incident_for_thirty_bots(tmp_path: Path) -> None:
    store = _flood(tmp_path, FLOOD.read_text(encoding="utf-8"))
    [incident] = store.list_incidents()
    assert incident.alert_count == 30
    assert sorted(incident.entities["source.ip"]) == sorted(BOTS)
    assert incident.group_key == "rule=87fbaefc-044d-5523-bba6-d1713fd57aa4"
    assert incident.title == "Request Flood on the Operations-Centre API"
    alerts = store.list_alerts(incident.id)
    assert len(alerts) == 30 and {a.group_by for a in alerts} == {("rule",)}  # persisted with the alert
    store.close()


def test_without_the_attribute_each_bot_is_its_own_incident(tmp_path: Path) -> None:
    text = FLOOD.read_text(encoding="utf-8")
    assert "incident-group-by:\n- rule\n" in text
    store = _flood(tmp_path, text.replace("incident-group-by:\n- rule\n", ""))
    incidents = store.list_incidents()
    assert sorted(i.group_key for i in incidents) == sorted(f"source.ip={ip}" for ip in BOTS)
    store.close()


def _alert(group_by: tuple[str, ...], **entities: str) -> Alert:
    return Alert("ALR-1", "r-1", "Rule", Severity.HIGH, T0, T0, ("e1",), entities, group_by=group_by)


def test_group_key_by_target_falls_back_when_the_alert_lacks_it() -> None:
    target = {"source.ip": "203.0.113.9", "asset.id": "ioc-api-gw"}
    assert group_key(_alert(("rule", "asset.id"), **target)) == "rule=r-1|asset.id=ioc-api-gw"
    assert group_key(_alert(("asset.id",), **target)) == "rule=r-1|asset.id=ioc-api-gw"  # always per rule
    assert group_key(_alert(("asset.id",), **{"source.ip": "203.0.113.9"})) == "source.ip=203.0.113.9"
    assert group_key(_alert((), **target)) == "source.ip=203.0.113.9"


def test_incidents_by_target_are_titled_by_it(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    manager = IncidentManager(store, clock=lambda: T0 + timedelta(seconds=5))
    incidents = []
    for n, ip in enumerate(["203.0.113.9", "203.0.113.10"]):
        alert = Alert(f"ALR-{n}", "r-1", "Rule", Severity.HIGH, T0, T0, (f"e{n}",),
                      {"source.ip": ip, "asset.id": "ioc-api-gw"}, group_by=("asset.id",))  # fmt: skip
        store.add_alert(alert)
        incidents.append(manager.handle(alert))
    assert incidents[0].id == incidents[1].id and incidents[1].alert_count == 2
    assert incidents[1].title == "Rule (ioc-api-gw)"
    store.close()


RULE = """\
title: Operations-Centre API Request
id: 5fcc8b15-61fd-5597-b619-151a55260d1e
logsource: {category: webserver}
detection:
  selection: {url.path|startswith: /api/}
  condition: selection
level: low
incident-group-by: %s
"""


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("[api.key.id]", "'api.key.id' not an entity field"),
        ("[]", "must be a non-empty list"),
        ("{asset.id: 1}", "must be a non-empty list"),
    ],
)
def test_a_bad_attribute_is_a_load_error_with_its_location(value: str, problem: str) -> None:
    report = load_rule_text(RULE % value, "rules/api.yml")
    [entry] = report.entries
    assert entry.status is RuleStatus.INVALID
    assert str(entry.location) == "rules/api.yml:8"  # the incident-group-by line
    assert entry.reason is not None and "'Operations-Centre API Request'" in entry.reason and problem in entry.reason
    with pytest.raises(SigmaLoadError, match=r"^rules/api\.yml:8: rule 'Operations-Centre API Request'"):
        load_rule_text(RULE % value, "rules/api.yml", collect_errors=False)


def test_a_good_attribute_loads_and_reaches_the_compiled_rule() -> None:
    [entry] = load_rule_text(RULE % "[asset.id, rule, asset.id]").loaded
    assert entry.compiled is not None and entry.compiled.incident_group_by == ("asset.id", "rule")
    assert parse_group_by("rule") == ("rule",)
    with pytest.raises(GroupByError, match=r"url\.domain"):
        parse_group_by(["url.domain"])


def test_an_older_database_gains_the_column(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    SQLiteStore(db).close()
    with sqlite3.connect(db) as conn:  # the table as versions before incident-group-by made it
        conn.execute("ALTER TABLE alerts DROP COLUMN group_by")
        conn.execute(
            "INSERT INTO alerts VALUES ('ALR-OLD','r-1','Rule',3,'2026-11-16T00:00:00.000000Z',"
            "'2026-11-16T00:00:00.000000Z','[\"e1\"]','{}','[]','sigma','',NULL)"
        )
    conn.close()
    store = SQLiteStore(db)
    assert store.get_alert("ALR-OLD").group_by == ()
    store.add_alert(_alert(("rule", "asset.id")))
    assert store.get_alert("ALR-1").group_by == ("rule", "asset.id")
    store.close()
    SQLiteStore(db).close()  # the migration is idempotent
