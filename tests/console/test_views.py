"""The web pages: queue, incident page, status and comment forms, events, dead letters, health."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask

from console.services import add_comment, change_status, incident_detail, store_of
from store.errors import NotFound
from store.models import IncidentStatus
from tests.console import console_app, logged_in, seed_incident, session_token
from tests.helpers import T0


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    # the console's clock two hours after the seeded events (tests.helpers.T0): the event search's default
    # range (the last 24 hours) holds them whatever day the suite runs
    with console_app(tmp_path, CLOCK=lambda: T0 + timedelta(hours=2)) as app:
        yield app


def test_healthz_answers_without_login(app: Flask) -> None:
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "store": "ok"}


def test_incident_queue_shows_the_columns_and_filters_by_status(app: Flask) -> None:
    seed_incident(store_of(app), "plain text")
    client = logged_in(app)
    html = client.get("/incidents").get_data(as_text=True)
    assert 'href="/incidents/inc-1"' in html
    assert "Unauthorised Modbus writes to the pumping station" in html
    assert 'class="badge sev-high"' in html and 'class="badge status-new"' in html
    assert "10.20.0.5" in html and "10.30.1.10" in html  # entities
    assert '<td class="num">1</td>' in html  # alert count
    assert "2026-11-21 08:00:20 UTC" in html  # created
    assert "20s" in html  # MTTD
    assert "inc-1" in client.get("/incidents?status=new").get_data(as_text=True)
    closed = client.get("/incidents?status=closed").get_data(as_text=True)
    assert "inc-1" not in closed and "No incidents match these filters." in closed
    assert client.get("/incidents?status=bogus").status_code == 400


def test_incident_page_shows_alerts_events_timeline_and_runs(app: Flask) -> None:
    seeded = seed_incident(store_of(app), "plain text")
    client = logged_in(app)
    html = client.get("/incidents/inc-1").get_data(as_text=True)
    # header
    assert "Unauthorised Modbus writes to the pumping station" in html and "20s" in html
    # alerts with rule title and ATT&CK ids
    assert "Modbus write plain text" in html
    assert '<span class="attack">T0855</span>' in html
    assert "attack.impair_process_control" in html
    # the events of the alert with key fields and message
    assert "modbus write single register 40001" in html
    assert "write_single_register" in html and "camera.platform" in html
    for event_id in seeded.event_ids:
        assert event_id in html  # under "All fields"
    # timeline
    assert "Incident created: Unauthorised Modbus writes" in html
    assert "Alert: Modbus write plain text (high)" in html
    # playbook run with each step's status, output and error
    assert "contain-ot-writer" in html and "step block-source failed" in html
    assert "enrich-source" in html and 'class="badge step-succeeded"' in html
    assert "&#34;asset&#34;: &#34;eng-ws-07&#34;" in html
    assert 'class="badge step-failed"' in html and "firewall refused: plain text" in html
    # forms, with CSRF
    assert 'action="/incidents/inc-1/status"' in html and 'action="/incidents/inc-1/comments"' in html
    assert html.count('name="csrf_token"') >= 3  # status, comment, logout


def test_unknown_incident_is_a_404_page(app: Flask) -> None:
    client = logged_in(app)
    response = client.get("/incidents/nope")
    assert response.status_code == 404
    assert "incident &#39;nope&#39; not found" in response.get_data(as_text=True)


def test_status_change_appends_a_timeline_entry_and_an_audit_entry(app: Flask) -> None:
    store = store_of(app)
    seed_incident(store)
    client = logged_in(app)
    response = client.post("/incidents/inc-1/status", data={"csrf_token": session_token(client), "status": "triage"})
    assert response.status_code == 302 and response.headers["Location"] == "/incidents/inc-1"
    assert store.get_incident("inc-1").status is IncidentStatus.TRIAGE
    entry = store.timeline("inc-1")[-1]
    assert (entry.kind, entry.actor, dict(entry.data)) == ("status", "analyst", {"value": "triage"})
    audit = store.audit_entries(limit=1)[0]
    assert (audit.actor, audit.action, audit.object) == ("analyst", "incident.status", "incident:inc-1")
    assert audit.details == {"from": "new", "to": "triage", "timeline_seq": entry.seq}
    assert store.verify_audit() >= 1
    html = client.get("/incidents/inc-1").get_data(as_text=True)
    assert "Status set to triage." in html and 'class="badge status-triage"' in html


def test_setting_the_same_or_an_unknown_status_writes_nothing(app: Flask) -> None:
    store = store_of(app)
    seed_incident(store)
    client = logged_in(app)
    token = session_token(client)
    audits = len(store.audit_entries())
    client.post("/incidents/inc-1/status", data={"csrf_token": token, "status": "new"})
    assert "already has that status" in client.get("/incidents/inc-1").get_data(as_text=True)
    client.post("/incidents/inc-1/status", data={"csrf_token": token, "status": "pwned"})
    assert "is not an incident status" in client.get("/incidents/inc-1").get_data(as_text=True)
    assert [e.kind for e in store.timeline("inc-1")] == ["created", "alert"]
    assert len(store.audit_entries()) == audits


def test_comment_appends_a_timeline_entry_and_an_audit_entry(app: Flask) -> None:
    store = store_of(app)
    seed_incident(store)
    client = logged_in(app)
    response = client.post("/incidents/inc-1/comments",
                           data={"csrf_token": session_token(client), "text": "  Called the plant operator.\n"})
    assert response.headers["Location"] == "/incidents/inc-1#timeline"
    entry = store.timeline("inc-1")[-1]
    assert (entry.kind, entry.actor, dict(entry.data)) == ("comment", "analyst", {"text": "Called the plant operator."})
    audit = store.audit_entries(limit=1)[0]
    assert (audit.action, audit.object, audit.details) == ("incident.comment", "incident:inc-1",
                                                           {"timeline_seq": entry.seq})
    assert "Called the plant operator." in client.get("/incidents/inc-1").get_data(as_text=True)


def test_empty_comment_is_refused(app: Flask) -> None:
    store = store_of(app)
    seed_incident(store)
    client = logged_in(app)
    client.post("/incidents/inc-1/comments", data={"csrf_token": session_token(client), "text": "   "})
    assert "Comment failed: this cannot be empty." in client.get("/incidents/inc-1").get_data(as_text=True)
    assert [e.kind for e in store.timeline("inc-1")] == ["created", "alert"]


def test_changes_to_an_unknown_incident_are_404(app: Flask) -> None:
    client = logged_in(app)
    token = session_token(client)
    assert client.post("/incidents/nope/status", data={"csrf_token": token, "status": "closed"}).status_code == 404
    assert client.post("/incidents/nope/comments", data={"csrf_token": token, "text": "x"}).status_code == 404


def test_events_page_searches_full_text(app: Flask) -> None:
    seed_incident(store_of(app), "plain text")
    client = logged_in(app)
    html = client.get("/events?q=register").get_data(as_text=True)
    assert "modbus write single register 40001" in html
    assert "camera.platform" not in html
    assert "No events match." in client.get("/events?q=nothingmatchesthis&range=365d").get_data(as_text=True)
    newest = client.get("/events").get_data(as_text=True)
    assert "modbus write single register" in newest and "camera.platform" in newest


def test_dead_letters_page_shows_source_offset_reason_and_raw(app: Flask) -> None:
    seed_incident(store_of(app), "plain text")
    client = logged_in(app)
    html = client.get("/dead-letters").get_data(as_text=True)
    assert "1 record could not be ingested" in html
    assert "syslog:udp/5514" in html and "datagram 17" in html and "not RFC 5424" in html
    assert "&lt;14&gt;1 garbage plain text" in html


def test_services_work_on_a_plain_store(app: Flask) -> None:
    store = store_of(app)
    seeded = seed_incident(store)
    detail = incident_detail(store, "inc-1")
    assert [a.id for a in detail.alerts] == [seeded.alert.id]
    assert tuple(e.id for e in detail.events) == seeded.event_ids and not detail.events_truncated
    assert [r.id for r in detail.runs] == ["run-1"]
    assert incident_detail(store, "inc-1", event_limit=1).events_truncated
    assert change_status(store, "inc-1", "contained", "bot") is not None
    assert change_status(store, "inc-1", "contained", "bot") is None
    add_comment(store, "inc-1", "noted", "bot")
    with pytest.raises(NotFound):
        add_comment(store, "nope", "noted", "bot")
    assert [e.kind for e in store.timeline("inc-1")] == ["created", "alert", "status", "comment"]
