"""The analyst's incident work in the pages and the API: queue filters, scope, verdict, assign, merge, split."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from console.auth import create_user
from console.services import store_of
from store.base import Store
from store.models import Alert, Incident, IncidentStatus, Severity
from tests.console import PASSWORD, form_token, logged_in, login, seed_incident, session_token
from tests.console import console_app as make_app
from tests.helpers import T0, event


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    # the clock is an hour after the seeded incidents: high ones (4 h) are in time, critical ones (1 h) are not
    with make_app(tmp_path, CLOCK=lambda: T0 + timedelta(hours=1, minutes=30)) as app:
        yield app


def add_incident(store: Store, n: int, severity: Severity, agency: str, sector: str, ip: str) -> None:
    created = T0 + timedelta(minutes=n)
    store.create_incident(Incident(
        id=f"INC-{n}", title=f"Suspicious logins at {sector} {n}", severity=severity, status=IncidentStatus.NEW,
        created=created, updated=created, first_event_time=created, last_event_time=created,
        group_key=f"source.ip={ip}"), actor="detections")  # fmt: skip
    alert = Alert(id=f"ALR-{n}", rule_id="r", rule_title="Brute force", severity=severity, created=created,
                  event_time=created, event_ids=(),
                  entities={"source.ip": ip, "asset.agency": agency, "asset.sector": sector})  # fmt: skip
    store.add_alert(alert)
    store.attach_alert(f"INC-{n}", alert, actor="detections")


def seed_queue(store: Store) -> None:
    add_incident(store, 1, Severity.CRITICAL, "water-dept", "water", "10.0.0.1")
    add_incident(store, 2, Severity.HIGH, "water-dept", "water", "10.0.0.2")
    add_incident(store, 3, Severity.HIGH, "transport-dept", "transport", "10.0.0.1")


def api_ids(client: FlaskClient, query: str) -> list[str]:
    response = client.get("/api/v1/incidents" + query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return [i["id"] for i in response.get_json()["incidents"]]


def test_queue_filters_in_the_api_and_the_page(app: Flask) -> None:
    seed_queue(store_of(app))
    client = logged_in(app)
    assert api_ids(client, "") == ["INC-3", "INC-2", "INC-1"]
    assert api_ids(client, "?severity=critical") == ["INC-1"]
    assert api_ids(client, "?sector=water&sort=created") == ["INC-1", "INC-2"]
    assert api_ids(client, "?agency=transport-dept") == ["INC-3"]
    assert api_ids(client, "?entity=source.ip:10.0.0.1") == ["INC-3", "INC-1"]
    assert api_ids(client, "?sla=breached") == ["INC-1"]
    assert api_ids(client, "?sla=due") == ["INC-3", "INC-2"]
    assert api_ids(client, "?q=transport") == ["INC-3"]
    assert api_ids(client, "?assignee=none&limit=1&offset=1") == ["INC-2"]
    body = client.get("/api/v1/incidents?limit=1").get_json()
    assert body["total"] == 3 and body["limit"] == 1
    html = client.get("/incidents?sla=breached").get_data(as_text=True)
    assert "INC-1" in html and "INC-2" not in html and 'class="badge sla-breached"' in html
    for bad, field in (("?sort=title", "sort"), ("?severity=urgent", "severity"), ("?sla=late", "sla"),
                       ("?entity=message:x", "entity"), ("?limit=9999", "limit")):  # fmt: skip
        response = client.get("/api/v1/incidents" + bad)
        assert response.status_code == 400
        assert response.get_json()["error"]["message"].startswith(field + ":")


def test_agency_scope_hides_other_agencies_everywhere(app: Flask) -> None:
    store = store_of(app)
    seed_queue(store)
    create_user(store, "ops", PASSWORD, ("analyst",), agencies=("transport-dept",))
    client = app.test_client()
    assert login(client, "ops").status_code == 302
    assert api_ids(client, "") == ["INC-3"]
    assert client.get("/api/v1/incidents/INC-1").status_code == 404
    assert client.get("/incidents/INC-1").status_code == 404
    token = session_token(client)
    response = client.post("/api/v1/incidents/INC-1/status", json={"status": "closed"},
                           headers={"X-CSRF-Token": token})  # fmt: skip
    assert response.status_code == 404
    response = client.post("/api/v1/incidents/INC-3/merge", json={"incidents": ["INC-1"]},
                           headers={"X-CSRF-Token": token})  # fmt: skip
    assert response.status_code == 404
    assert store.get_incident("INC-1").status is IncidentStatus.NEW
    # events too: only the agency's
    store.put_events([event(1, {"asset.agency": "transport-dept", "message": "tram depot gate"}),
                      event(2, {"asset.agency": "water-dept", "message": "pump station gate"})])  # fmt: skip
    found = client.get("/api/v1/events?q=gate&range=365d").get_json()
    assert [e["message"] for e in found["events"]] == ["tram depot gate"] and found["total"] == 1


def test_triage_an_incident_to_closed_through_the_pages(app: Flask) -> None:
    store = store_of(app)
    seed_incident(store, "plain text")
    client = logged_in(app)
    html = client.get("/incidents/inc-1").get_data(as_text=True)
    token = form_token(html)
    assert 'action="/incidents/inc-1/verdict"' in html and 'name="reason"' in html
    client.post("/incidents/inc-1/assign", data={"assignee": "me", "csrf_token": token})
    assert store.get_incident("inc-1").assignee == "analyst"
    response = client.post("/incidents/inc-1/verdict", data={"verdict": "true_positive", "reason": "",
                                                              "csrf_token": token}, follow_redirects=True)  # fmt: skip
    assert "Verdict failed: this cannot be empty." in response.get_data(as_text=True)
    assert store.get_incident("inc-1").verdict is None
    client.post("/incidents/inc-1/verdict", data={"verdict": "true_positive", "reason": "PLC writes confirmed",
                                                  "csrf_token": token})  # fmt: skip
    client.post("/incidents/inc-1/status", data={"status": "closed", "csrf_token": token})
    closed = store.get_incident("inc-1")
    assert (closed.status, closed.verdict, closed.assignee) == (IncidentStatus.CLOSED, "true_positive", "analyst")
    page = client.get("/incidents/inc-1").get_data(as_text=True)
    assert "PLC writes confirmed" in page and "Verdict: <strong>true positive</strong>" in page
    actions = [e.action for e in store.audit_entries()]
    assert {"incident.assign", "incident.verdict", "incident.status"} <= set(actions)


def test_a_read_only_role_cannot_triage(app: Flask) -> None:
    seed_incident(store_of(app), "plain text")
    client = logged_in(app, "inspector1", ("inspector",))
    assert client.get("/incidents/inc-1").status_code == 200
    response = client.post("/api/v1/incidents/inc-1/verdict", json={"verdict": "false_positive", "reason": "x"},
                           headers={"X-CSRF-Token": session_token(client)})  # fmt: skip
    assert response.status_code == 403
    assert store_of(app).get_incident("inc-1").verdict is None


def test_merge_split_and_escalate_through_the_api(app: Flask) -> None:
    store = store_of(app)
    seed_queue(store)
    client = logged_in(app)
    headers = {"X-CSRF-Token": session_token(client)}
    response = client.post("/api/v1/incidents/INC-1/merge", json={"incidents": ["INC-2"]}, headers=headers)
    assert response.status_code == 200 and response.get_json()["incident"]["alert_count"] == 2
    assert store.get_incident("INC-2").status is IncidentStatus.CLOSED
    response = client.post("/api/v1/incidents/INC-1/split", json={"alert_ids": ["ALR-2"], "title": "Second"},
                           headers=headers)  # fmt: skip
    assert response.status_code == 201
    created = response.get_json()["incident"]
    assert created["title"] == "Second" and created["alert_count"] == 1
    response = client.post("/api/v1/incidents/INC-1/split", json={"alert_ids": ["ALR-1"]}, headers=headers)
    assert response.status_code == 400 and "leave at least one alert" in response.get_json()["error"]["message"]
    response = client.post("/api/v1/incidents/INC-1/escalate", json={"target": "national-cert", "reason": "OT"},
                           headers=headers)  # fmt: skip
    body = response.get_json()
    assert response.status_code == 200 and body["delivered"] is False and body["entry"]["kind"] == "escalation"
    response = client.post("/api/v1/incidents/INC-1/assign", json={"assignee": "nobody-here"}, headers=headers)
    assert response.status_code == 400 and "there is no user" in response.get_json()["error"]["message"]
    response = client.post("/api/v1/incidents/INC-1/merge", json={"incidents": "INC-3"}, headers=headers)
    assert response.status_code == 400


def test_incident_page_pivots_and_intel(app: Flask) -> None:
    store = store_of(app)
    seed_incident(store, "plain text")
    store.put_events([event(7, {"source.ip": "10.20.0.5", "threat.indicator.id": ["indicator--1"],
                                "threat.indicator.name": "Known C2", "threat.indicator.type": "ipv4-addr",
                                "threat.indicator.matched.field": "source.ip",
                                "threat.indicator.matched.atomic": "10.20.0.5", "threat.feed.name": "city-cti"},
                            event_id="intel-1")])  # fmt: skip
    alert = Alert(id="alert-2", rule_id="intel", rule_title="Intel match", severity=Severity.HIGH, created=T0,
                  event_time=T0, event_ids=("intel-1",), entities={"source.ip": "10.20.0.5"})  # fmt: skip
    store.add_alert(alert)
    store.attach_alert("inc-1", alert, actor="detections")
    client = logged_in(app)
    html = client.get("/incidents/inc-1").get_data(as_text=True)
    assert "Known C2" in html and "city-cti" in html and "indicator--1" in html
    assert 'href="/events?q=source.ip:%2210.20.0.5%22&amp;range=30d"' in html  # pivot to events
    assert 'href="/incidents?entity=source.ip:10.20.0.5"' in html  # pivot to incidents
    detail = client.get("/api/v1/incidents/inc-1").get_json()
    assert detail["intel"][0]["name"] == "Known C2" and detail["intel"][0]["event_id"] == "intel-1"


def test_the_pager_keeps_repeated_filters(app: Flask) -> None:
    store = store_of(app)
    for n in range(1, 56):
        add_incident(store, n, Severity.HIGH if n % 2 else Severity.LOW, "water-dept", "water", f"10.1.0.{n}")
    client = logged_in(app)
    html = client.get("/incidents?severity=high&severity=low&entity=&sort=created").get_data(as_text=True)
    assert "1–50 of 55" in html
    assert 'href="/incidents?offset=50&amp;severity=high&amp;severity=low&amp;sort=created"' in html
    second = client.get("/incidents?offset=50&severity=high&severity=low&sort=created").get_data(as_text=True)
    assert "51–55 of 55" in second and "INC-55" in second
