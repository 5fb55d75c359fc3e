"""``Store.count_alerts_by_rule`` on every backend: alerts per rule since a time, split by incident verdict."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from store.base import Store
from store.models import Alert, Incident, IncidentStatus, Severity
from store.sqlite import SQLiteStore
from tests.helpers import T0
from tests.store.conftest import cluster_store


@pytest.fixture(params=["sqlite", "elasticsearch", "opensearch"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        backend = SQLiteStore(tmp_path / "citysoc.db")
        yield backend
        backend.close()
    else:
        yield from cluster_store(request.param)


def _incident(store: Store, incident_id: str, verdict: str | None) -> None:
    store.create_incident(
        Incident(incident_id, "t", Severity.LOW, IncidentStatus.NEW, T0, T0, T0, T0, f"k={incident_id}"), actor="test"
    )
    if verdict:
        store.append_timeline(incident_id, "verdict", "analyst", {"value": verdict})


def test_alerts_per_rule_and_verdict_since_a_time(store: Store) -> None:
    _incident(store, "i-fp", "false_positive")
    _incident(store, "i-tp", "true_positive")
    _incident(store, "i-open", None)
    plan = [("r1", 1, "i-fp"), ("r1", 2, "i-fp"), ("r1", 3, "i-tp"), ("r1", 50, "i-open"), ("r2", 60, None)]
    for n, (rule_id, hours_ago, incident_id) in enumerate(plan):
        at = T0 - timedelta(hours=hours_ago)
        alert = Alert(f"a{n}", rule_id, "t", Severity.LOW, at, at, (f"e{n}",), {})
        store.add_alert(alert)
        if incident_id:
            store.attach_alert(incident_id, alert, actor="test")
    assert store.count_alerts_by_rule(None) == {
        "r1": {"false_positive": 2, "true_positive": 1, None: 1},
        "r2": {None: 1},
    }
    assert store.count_alerts_by_rule(T0 - timedelta(hours=24)) == {"r1": {"false_positive": 2, "true_positive": 1}}
    assert store.count_alerts_by_rule(T0) == {}
