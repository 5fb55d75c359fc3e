"""Source health: late and silent sources, one "source silent" alert per silence, through the pipeline."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from collectors.base import CollectorError, RawRecord, get_parser
from collectors.health import SourceExpectation, SourceHealth
from collectors.pipeline import IngestPipeline
from detections.incidents import IncidentManager
from detections.source_health import RULE_ID, SourceSilenceAlerter
from store.models import Severity
from store.sqlite import SQLiteStore
from tests.helpers import REPO, T0

SYSLOG = REPO / "tests" / "data" / "collectors" / "syslog.log"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_states_and_one_alert_per_silence(store: SQLiteStore) -> None:
    clock = Clock()
    alerter = SourceSilenceAlerter(store, IncidentManager(store, clock=clock), clock=clock)
    health = SourceHealth(
        [SourceExpectation("syslog:udp:*", timedelta(minutes=1), grace=3, area="hoan-kiem", domain="IT"),
         SourceExpectation("mqtt:*", timedelta(minutes=5), grace=2, area="ba-dinh", domain="OT")],
        listeners=[alerter], clock=clock)
    pipeline = IngestPipeline(store, listeners=[health], name="health-test")
    line = SYSLOG.read_text().splitlines()[0]
    pipeline.ingest([RawRecord(line, "syslog:udp:127.0.0.1:514", "udp:1", received=T0)], get_parser("syslog"))
    assert [s.state for s in health.check()] == ["ok", "ok"]
    clock.now = T0 + timedelta(minutes=2)
    assert [s.state for s in health.check()] == ["late", "ok"]
    clock.now = T0 + timedelta(minutes=11)
    statuses = health.check()
    assert [s.state for s in statuses] == ["silent", "silent"]
    assert statuses[0].last_seen == T0 and statuses[1].last_seen is None
    health.check()  # the same silence is not alerted twice
    alerts = sorted(store.list_alerts(), key=lambda a: a.entities["service.name"])
    assert [(a.rule_id, a.entities["service.name"], a.severity) for a in alerts] == [
        (RULE_ID, "mqtt:*", Severity.HIGH), (RULE_ID, "syslog:udp:*", Severity.MEDIUM)]
    assert "quiet for 660 s" in alerts[1].description and "last event 2026-11-21T08:00:00" in alerts[1].description
    # silent sources have no host or address to group by: one "source silent" incident collects them
    assert store.count_incidents() == 1 and len(store.list_alerts(incident_id=alerts[0].incident_id)) == 2
    # the source reports again, then goes quiet again: a new silence, a new alert
    pipeline.ingest([RawRecord(line, "syslog:udp:127.0.0.1:514", "udp:2", received=clock.now)],
                    get_parser("syslog"))
    assert health.check()[0].state == "ok"
    clock.now += timedelta(minutes=4)
    health.check()
    assert store.count_alerts() == 3


def test_expectation_errors_say_where() -> None:
    with pytest.raises(CollectorError, match=r"sources\[2\]: missing key 'interval_seconds'"):
        SourceExpectation.from_dict({"source": "x"}, "health.json: sources[2]")
    with pytest.raises(CollectorError, match="interval must be positive"):
        SourceExpectation("x", timedelta(0))
