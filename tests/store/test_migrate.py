"""Copying a store into another keeps every record, the incident timelines and the audit chain."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from store.base import Store
from store.errors import AuditChainBroken
from store.migrate import MigrationError, migrate, verify_copy
from store.models import (
    Alert,
    ApiToken,
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
from tests.store.conftest import cluster_store


def _fill(store: Store) -> None:
    events = [
        event(i, {"event.dataset": "camera.platform", "event.action": "login", "event.outcome": "failure",
                  "source.ip": f"10.20.5.{60 + i % 3}", "message": f"login failed #{i}"})
        for i in range(1200)
    ]  # fmt: skip
    store.put_events(events)
    store.add_dead_letter("udp://10.20.1.5:514", "4711", "unknown field 'foo'", '{"foo": 1}')
    store.add_dead_letter("file:/var/log/vms.jsonl", "17", "key 'ts': not a timestamp", '{"ts": "yesterday"}')
    for n in range(3):
        alert = Alert(f"ALR-{n}", "rule-1", "Camera brute force", Severity.HIGH, T0, T0 + timedelta(seconds=n),
                      (events[n].id,), {"source.ip": f"10.20.5.{60 + n}"}, ("attack.t1110",))  # fmt: skip
        store.add_alert(alert)
    store.add_alert(Alert("ALR-free", "rule-2", "Lone alert", Severity.LOW, T0, T0, (events[5].id,)))
    incident = Incident("INC-1", "Brute force", Severity.MEDIUM, IncidentStatus.NEW, T0, T0, T0, T0,
                        "source.ip=10.20.5.60", mttd_seconds=12.5)  # fmt: skip
    store.create_incident(incident, "detections")
    for n in range(3):
        store.attach_alert("INC-1", store.get_alert(f"ALR-{n}"), "detections")
    store.append_timeline("INC-1", "status", "analyst.le", {"value": "in_progress"})
    store.append_timeline("INC-1", "comment", "analyst.le", {"text": "blocking 10.20.5.60 at the edge"})
    step = StepRecord("RUN-1", "block", "firewall.block", StepStatus.SUCCEEDED, 1, T0, T0, {"ip": "10.20.5.60"},
                      {"rule": 17})  # fmt: skip
    store.create_run(PlaybookRun("RUN-1", "block-bruteforce", "3", "INC-1", RunStatus.SUCCEEDED, T0, T0,
                                 steps=(step,)))  # fmt: skip
    for n in range(5):
        store.audit("analyst.le", "incident.status", "INC-1", {"n": n, "value": "in_progress"})
    store.put_user(User("admin", "pbkdf2:sha256$x$y", ("admin",), True, T0))
    store.put_user(User("analyst.le", "pbkdf2:sha256$a$b", ("analyst",), False, T0))
    store.put_api_token(ApiToken("tok1", "soar", "analyst.le", "ab" * 32, ("analyst",), ("Hanoi Water Company",), T0,
                                 expires=T0 + timedelta(days=90)))  # fmt: skip


def _snapshot(store: Store) -> dict[str, object]:
    return {
        "events": list(store.iter_events()),
        "dead_letters": store.list_dead_letters(),
        "alerts": sorted(store.list_alerts(), key=lambda a: a.id),
        "incidents": store.list_incidents(),
        "timeline": store.timeline("INC-1"),
        "runs": store.list_runs(),
        "audit": store.audit_entries(),
        "users": store.list_users(),
        "api_tokens": store.list_api_tokens(),
    }


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Store]:
    store = SQLiteStore(tmp_path / "source.db")
    _fill(store)
    yield store
    store.close()


@pytest.fixture(params=["sqlite", "elasticsearch", "opensearch"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        store = SQLiteStore(tmp_path / "target.db")
        yield store
        store.close()
    else:
        yield from cluster_store(request.param)


def test_everything_is_copied_as_it_was(source: Store, target: Store) -> None:
    report = migrate(source, target, batch=500)
    assert _snapshot(target) == _snapshot(source)
    assert target.verify_audit() == 5 == report.audit_verified
    assert {k: (v.source, v.copied) for k, v in report.kinds.items()} == {
        "users": (2, 2),
        "api_tokens": (1, 1),
        "events": (1200, 1200),
        "dead_letters": (2, 2),
        "alerts": (4, 4),
        "incidents": (1, 1),
        "runs": (1, 1),
        "audit": (5, 5),
    }
    assert verify_copy(source, target) == []
    # the copied store goes on working: the chain and the timeline continue
    target.audit("admin", "store.migrate", "target", {})
    assert target.verify_audit() == 6
    assert target.append_timeline("INC-1", "comment", "admin", {"text": "migrated"}).seq == 7
    assert target.add_dead_letter("udp://x", "1", "bad", "raw").id == 3


def test_a_second_run_copies_nothing_twice(source: Store, target: Store) -> None:
    migrate(source, target)
    source.audit("admin", "user.create", "op.tran", {})
    source.put_events([event(5000, {"message": "late event"})])
    report = migrate(source, target)
    assert report.kinds["events"].copied == 1 and report.kinds["events"].skipped == 1200
    assert report.kinds["incidents"].skipped == 1 and report.kinds["alerts"].skipped == 4
    assert report.kinds["audit"].copied == 1 and report.kinds["audit"].skipped == 5
    assert _snapshot(target) == _snapshot(source)


def test_a_target_with_another_audit_chain_is_refused(source: Store, target: Store) -> None:
    target.audit("someone", "other.history", "x", {})
    with pytest.raises(MigrationError, match="diverges from the source at entry 1"):
        migrate(source, target)


def test_a_tampered_copy_is_reported(source: Store, tmp_path: Path) -> None:
    target = SQLiteStore(tmp_path / "t.db")
    migrate(source, target)
    conn = target._conn()
    conn.execute("UPDATE audit SET actor='mallory' WHERE seq=3")
    with pytest.raises(AuditChainBroken):
        target.verify_audit()
    assert any(p.startswith("audit:") for p in verify_copy(source, target))
    target.close()
