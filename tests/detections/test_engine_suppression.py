"""Per-rule suppression windows, and correlation windows that survive an engine restart."""

from __future__ import annotations

from pathlib import Path

from detections.engine import DetectionEngine
from detections.incidents import IncidentManager
from detections.pack import RULES_DIR, load_rules
from store.detection_state import DetectionStateStore
from store.sqlite import SQLiteStore
from tests.helpers import event

RULE = """
title: MQTT Wildcard Subscribe
id: 3c2b1a09-8f7e-4d6c-9b5a-4f3e2d1c0b9a
status: test
logsource: {product: citysoc, service: mqtt}
detection:
  selection: {event.action: subscribe, iot.mqtt.topic: '#'}
  condition: selection
level: medium
suppression:
  timespan: 10m
  group-by: [source.ip]
"""


def _subscribe(ip: str) -> dict[str, str]:
    return {"event.dataset": "iot.mqtt", "event.action": "subscribe", "iot.mqtt.topic": "#", "source.ip": ip}


def test_suppression_window_per_group(tmp_path: Path) -> None:
    (tmp_path / "rule.yml").write_text(RULE, encoding="utf-8")
    pack = load_rules([tmp_path])
    store = SQLiteStore(tmp_path / "s.db")
    engine = DetectionEngine(store, pack.ruleset, IncidentManager(store), pack.correlator, pack.names)
    alerts = []
    for i, (seconds, ip) in enumerate([(0, "10.0.0.5"), (60, "10.0.0.5"), (90, "10.0.0.6"), (601, "10.0.0.5")]):
        e = event(seconds, _subscribe(ip), event_id=f"m{i}")
        store.put_events([e])
        alerts += [(seconds, a.entities.get("source.ip")) for a in engine.evaluate(e)]
    # the second match of 10.0.0.5 is inside its window; 10.0.0.6 is another group; 601 s opens a new window
    assert alerts == [(0, "10.0.0.5"), (90, "10.0.0.6"), (601, "10.0.0.5")]
    assert engine.stats.suppressed == 1
    store.close()


def test_camera_brute_force_counts_failures_from_before_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "citysoc.db"
    failure = {
        "event.dataset": "camera.platform",
        "event.action": "login",
        "event.outcome": "failure",
        "source.ip": "203.0.113.7",
        "user.name": "admin",
    }

    def run(seconds: list[int], prefix: str) -> list[str]:
        store = SQLiteStore(db)
        pack = load_rules([RULES_DIR], state=DetectionStateStore(db))
        engine = DetectionEngine(store, pack.ruleset, IncidentManager(store), pack.correlator, pack.names)
        titles: list[str] = []
        for i, second in enumerate(seconds):
            e = event(second, failure, event_id=f"{prefix}{i}")
            store.put_events([e])
            titles += [a.rule_title for a in engine.evaluate(e)]
        store.close()
        return titles

    assert "Camera Credential Brute Force" not in run([0, 10, 20], "a")
    assert run([30, 40], "b").count("Camera Credential Brute Force") == 1  # 5 failures in 5 minutes
