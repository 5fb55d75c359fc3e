"""Retention per data class: events expire after their source policy's days for their most restrictive class."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from collectors.privacy import PrivacyPolicy
from collectors.retention import RetentionPolicy, event_class, prune
from console.cli import cli
from store.event import Event
from store.schema import Classification
from store.sqlite import SQLiteStore
from tests.helpers import T0

NOW = T0


def _event(event_id: str, age_days: float, source: str, **fields: str) -> Event:
    return Event(event_id, NOW - timedelta(days=age_days), {"labels.source": source, **fields})


def test_the_class_of_an_event_is_its_most_restrictive_field() -> None:
    assert event_class(_event("a", 0, "s", message="pump 3 started")) is Classification.PUBLIC
    assert event_class(_event("b", 0, "s", **{"user.name": "pseudo:1f2e"})) is Classification.PERSONAL
    assert event_class(_event("c", 0, "s", **{"user.name": "x", "event.original": "raw"})) is Classification.SENSITIVE


@pytest.fixture
def filled(tmp_path: Path) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "citysoc.db")
    store.put_events([
        # camera platform: personal data 30 days, public 60
        _event("cam-personal-29", 29, "http:camera-vms", **{"user.name": "pseudo:aa"}),
        _event("cam-personal-31", 31, "http:camera-vms", **{"user.name": "pseudo:bb"}),
        _event("cam-public-31", 31, "http:camera-vms", message="stream opened"),
        _event("cam-public-61", 61, "http:camera-vms", message="stream opened"),
        # any other source: the default policy (public 365, personal 90, sensitive 30)
        _event("scada-public-100", 100, "file:/var/log/scada.csv", message="PS1_LT01 4.2"),
        _event("syslog-sensitive-31", 31, "udp:514", **{"event.original": "<13>raw"}),
        _event("syslog-sensitive-29", 29, "udp:514", **{"event.original": "<13>raw"}),
    ])  # fmt: skip
    return store


def _policies() -> RetentionPolicy:
    camera = PrivacyPolicy(source="http:camera-*", retention_days={"public": 60, "personal": 30, "sensitive": 7})
    return RetentionPolicy([camera])


def test_prune_deletes_exactly_the_expired_events_per_class_and_source(filled: SQLiteStore) -> None:
    report = prune(filled, _policies(), NOW)
    assert report.deleted == {"public": 1, "personal": 1, "sensitive": 1}
    left = sorted(e.id for e in filled.iter_events())
    assert left == ["cam-personal-29", "cam-public-31", "scada-public-100", "syslog-sensitive-29"]
    assert prune(filled, _policies(), NOW).total_deleted == 0  # idempotent
    # one day later the 29-day-old personal camera event is 30 days old: at its limit, still kept
    assert prune(filled, _policies(), NOW + timedelta(days=1)).total_deleted == 0
    assert prune(filled, _policies(), NOW + timedelta(days=1, seconds=1)).deleted["personal"] == 1


def test_a_dry_run_counts_and_deletes_nothing(filled: SQLiteStore) -> None:
    report = prune(filled, _policies(), NOW, dry_run=True)
    assert report.total_deleted == 3
    assert filled.count_events() == 7


def test_the_cli_prunes_with_the_policies_of_citysoc_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime.now(UTC)  # the CLI prunes at the real time
    store = SQLiteStore(tmp_path / "citysoc.db")
    store.put_events([
        Event("old", now - timedelta(days=31), {"labels.source": "http:camera-vms", "user.name": "pseudo:aa"}),
        Event("young", now - timedelta(days=29), {"labels.source": "http:camera-vms", "user.name": "pseudo:bb"}),
    ])  # fmt: skip
    store.close()
    monkeypatch.setenv("CITYSOC_HOME", str(tmp_path))
    (tmp_path / "privacy.json").write_text(json.dumps({"sources": [
        {"source": "http:camera-*", "retention_days": {"public": 60, "personal": 30, "sensitive": 7}},
    ]}))  # fmt: skip
    result = CliRunner().invoke(cli, ["retention", "prune", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"scanned": 2, "deleted": {"public": 0, "personal": 1, "sensitive": 0},
                                         "dry_run": True}  # fmt: skip
    result = CliRunner().invoke(cli, ["retention", "prune"])
    assert result.exit_code == 0, result.output
    store = SQLiteStore(tmp_path / "citysoc.db")
    try:
        assert [e.id for e in store.iter_events()] == ["young"]
    finally:
        store.close()
    result = CliRunner().invoke(cli, ["retention", "prune", "--policies", str(tmp_path / "missing.json")])
    assert result.exit_code == 2 and "does not exist" in result.output
