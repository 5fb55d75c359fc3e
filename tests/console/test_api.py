"""The REST API: JSON shapes, comments and status changes, JSON errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask

from console.services import store_of
from store.event import Event
from tests.console import HOSTILE, console_app, logged_in, seed_incident, session_token
from tests.helpers import T0

ERROR_KEYS = {"code", "message"}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    # the console's clock two hours after the seeded events (tests.helpers.T0): the event search's default
    # range (the last 24 hours) holds them whatever day the suite runs
    with console_app(tmp_path, CLOCK=lambda: T0 + timedelta(hours=2)) as app:
        yield app


def test_me_gives_the_user_and_the_csrf_token(app: Flask) -> None:
    client = logged_in(app)
    body = client.get("/api/v1/me").get_json()
    assert body == {"username": "analyst", "roles": ["analyst"], "must_change_password": False,
                    "csrf_token": session_token(client)}


def test_list_incidents(app: Flask) -> None:
    seed_incident(store_of(app))
    client = logged_in(app)
    body = client.get("/api/v1/incidents").get_json()
    assert body["limit"] == 50 and body["offset"] == 0 and body["total"] == 1
    [incident] = body["incidents"]
    assert incident == {
        "id": "inc-1",
        "title": "Unauthorised Modbus writes to the pumping station",
        "severity": "high",
        "status": "new",
        "created": "2026-11-21T08:00:20.000000Z",
        "updated": incident["updated"],
        "first_event_time": "2026-11-21T08:00:00.000000Z",
        "last_event_time": "2026-11-21T08:00:05.000000Z",
        "group_key": "source.ip=10.20.0.5",
        "entities": {"source.ip": ["10.20.0.5"], "destination.ip": ["10.30.1.10"]},
        "tags": ["attack.t0855", "attack.impair_process_control"],
        "alert_count": 1,
        "mttd_seconds": 20.0,
        "assignee": None,
        "verdict": None,
        "sla": "due",  # high: 4 hours to close, and the clock says two hours after creation
        "sla_deadline": "2026-11-21T12:00:20.000000Z",
    }
    assert client.get("/api/v1/incidents?status=closed").get_json()["incidents"] == []


def test_incident_detail_has_alerts_events_timeline_and_runs(app: Flask) -> None:
    seeded = seed_incident(store_of(app), HOSTILE)
    client = logged_in(app)
    response = client.get("/api/v1/incidents/inc-1")
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"incident", "alerts", "events", "events_truncated", "timeline", "runs", "attack", "intel"}
    assert body["incident"]["id"] == "inc-1"
    [alert] = body["alerts"]
    assert alert["rule_title"] == f"Modbus write {HOSTILE}"  # JSON carries the data as is
    assert alert["attack"] == ["T0855"] and alert["event_ids"] == list(seeded.event_ids)
    assert [e["event"]["id"] for e in body["events"]] == list(seeded.event_ids)
    tainted = body["events"][1]
    assert tainted["message"] == HOSTILE and tainted["user"]["name"] == HOSTILE
    assert tainted["@timestamp"] == "2026-11-21T08:00:05.000000Z" and tainted["ecs"]["version"]
    assert Event.from_document(tainted).id == seeded.event_ids[1]  # events are ECS documents
    assert [(t["seq"], t["kind"], t["actor"]) for t in body["timeline"]] == [(1, "created", "detections"),
                                                                             (2, "alert", "detections")]
    [run] = body["runs"]
    assert (run["id"], run["playbook"], run["status"], run["error"]) == ("run-1", "contain-ot-writer", "failed",
                                                                          "step block-source failed")
    assert [(s["ref"], s["status"], s["attempt"]) for s in run["steps"]] == [("enrich-source", "succeeded", 1),
                                                                             ("block-source", "failed", 2)]
    assert run["steps"][0]["output"]["asset"] == "eng-ws-07"
    assert run["steps"][1]["error"] == f"firewall refused: {HOSTILE}"


def test_unknown_incident_is_404_json(app: Flask) -> None:
    client = logged_in(app)
    response = client.get("/api/v1/incidents/nope")
    assert response.status_code == 404
    assert response.get_json() == {"error": {"code": "not_found", "message": "incident 'nope' not found"}}


def test_add_comment(app: Flask) -> None:
    store = store_of(app)
    seed_incident(store)
    client = logged_in(app)
    response = client.post("/api/v1/incidents/inc-1/comments", json={"text": "Isolated the engineering VLAN."},
                           headers={"X-CSRF-Token": session_token(client)})
    assert response.status_code == 201
    entry = response.get_json()["entry"]
    assert (entry["seq"], entry["kind"], entry["actor"], entry["data"]) == (
        3, "comment", "analyst", {"text": "Isolated the engineering VLAN."})
    assert store.timeline("inc-1")[-1].data == {"text": "Isolated the engineering VLAN."}
    assert store.audit_entries(limit=1)[0].action == "incident.comment"


@pytest.mark.parametrize(
    "body,field",
    [({"text": ""}, "text"), ({"text": 5}, "text"), ({}, "text"), (["text"], "body"), ({"text": "x" * 10_001}, "text")],
)
def test_bad_comments_are_400_json(app: Flask, body: object, field: str) -> None:
    seed_incident(store_of(app))
    client = logged_in(app)
    response = client.post("/api/v1/incidents/inc-1/comments", json=body,
                           headers={"X-CSRF-Token": session_token(client)})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert set(error) == ERROR_KEYS and error["code"] == "invalid_input" and error["message"].startswith(field)
    assert [e.kind for e in store_of(app).timeline("inc-1")] == ["created", "alert"]


def test_change_status(app: Flask) -> None:
    store = store_of(app)
    seed_incident(store)
    client = logged_in(app)
    headers = {"X-CSRF-Token": session_token(client)}
    body = client.post("/api/v1/incidents/inc-1/status", json={"status": "closed"}, headers=headers).get_json()
    assert body["incident"]["status"] == "closed"
    assert body["entry"]["kind"] == "status" and body["entry"]["data"] == {"value": "closed"}
    again = client.post("/api/v1/incidents/inc-1/status", json={"status": "closed"}, headers=headers).get_json()
    assert again["entry"] is None
    response = client.post("/api/v1/incidents/inc-1/status", json={"status": "done"}, headers=headers)
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_input"


def test_search_events(app: Flask) -> None:
    seeded = seed_incident(store_of(app), "plain text")
    client = logged_in(app)
    body = client.get("/api/v1/events?q=register").get_json()
    assert [e["event"]["id"] for e in body["events"]] == [seeded.event_ids[0]]
    assert body["events"][0]["ot"]["function"] == "write_single_register"
    newest = client.get("/api/v1/events?limit=1").get_json()
    assert [e["event"]["id"] for e in newest["events"]] == [seeded.event_ids[1]]
    assert client.get("/api/v1/events?q=register&offset=1").get_json()["events"] == []


def test_dead_letters(app: Flask) -> None:
    seed_incident(store_of(app), "plain text")
    client = logged_in(app)
    body = client.get("/api/v1/dead-letters").get_json()
    assert body["total"] == 1 and body["limit"] == 100 and body["offset"] == 0
    [letter] = body["dead_letters"]
    assert {k: letter[k] for k in ("source", "offset", "reason", "raw")} == {
        "source": "syslog:udp/5514", "offset": "datagram 17", "reason": "not RFC 5424",
        "raw": "<14>1 garbage plain text"}
    assert isinstance(letter["id"], int) and letter["at"].endswith("Z")


@pytest.mark.parametrize(
    "method,path,status,code",
    [
        ("GET", "/api/v1/nothing-here", 404, "not_found"),
        ("DELETE", "/api/v1/incidents", 405, "method_not_allowed"),
        ("GET", "/api/v1/events?limit=lots", 400, "invalid_input"),
        ("GET", "/api/v1/incidents?limit=100000", 400, "invalid_input"),
        ("GET", "/api/v1/incidents?status=open", 400, "invalid_input"),
    ],
)
def test_errors_are_json(app: Flask, method: str, path: str, status: int, code: str) -> None:
    client = logged_in(app)
    response = client.open(path, method=method, headers={"X-CSRF-Token": session_token(client)})
    assert response.status_code == status
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS
    assert body["error"]["code"] == code and body["error"]["message"]
