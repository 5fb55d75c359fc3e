"""Helpers of the console tests: an app on a fresh SQLite store, users, logins and one seeded incident."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from console.app import create_app
from console.auth import create_user
from console.services import store_of
from store.base import Store
from store.models import Alert, Incident, IncidentStatus, PlaybookRun, RunStatus, Severity, StepRecord, StepStatus
from tests.helpers import T0, event

PASSWORD = "correct horse battery staple"
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
HOSTILE = f"{SCRIPT} {IMG}"


@contextmanager
def console_app(tmp_path: Path, **config: Any) -> Iterator[Flask]:
    """A console app on a new SQLite store in ``tmp_path``; the store is closed afterwards."""
    settings = {"STORE_URL": f"sqlite:///{tmp_path}/t.db", "SECRET_KEY": "s" * 64, "TESTING": True, **config}
    app = create_app(settings)
    try:
        yield app
    finally:
        store_of(app).close()


def add_user(
    app: Flask,
    username: str = "analyst",
    roles: Sequence[str] = ("analyst",),
    must_change_password: bool = False,
    password: str = PASSWORD,
) -> None:
    create_user(store_of(app), username, password, roles, must_change_password)


def form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def login(client: FlaskClient, username: str = "analyst", password: str = PASSWORD) -> TestResponse:
    token = form_token(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token})


def session_token(client: FlaskClient) -> str:
    with client.session_transaction() as session:
        token = session["csrf"]
    assert isinstance(token, str)
    return token


def logged_in(app: Flask, username: str = "analyst", roles: Sequence[str] = ("analyst",)) -> FlaskClient:
    add_user(app, username, roles)
    client = app.test_client()
    assert login(client, username).status_code == 302
    return client


@dataclass(frozen=True)
class Seeded:
    incident: Incident
    alert: Alert
    event_ids: tuple[str, ...]
    run: PlaybookRun


def seed_incident(store: Store, hostile: str = HOSTILE) -> Seeded:
    """One incident with one alert on two events, a playbook run with a good and a failed step, a dead letter.

    ``hostile`` goes into the rule title, an event's message and user name, a step's output and error,
    and a dead letter's raw record.
    """
    benign = event(0, {"message": "modbus write single register 40001", "event.dataset": "ot.modbus",
                       "source.ip": "10.20.0.5", "destination.ip": "10.30.1.10",
                       "ot.function": "write_single_register"})
    tainted = event(5, {"message": hostile, "user.name": hostile, "event.dataset": "camera.platform",
                        "source.ip": "10.20.0.5"})
    store.put_events([benign, tainted])
    alert = Alert(
        id="alert-1",
        rule_id="rule-modbus-write",
        rule_title=f"Modbus write {hostile}",
        severity=Severity.HIGH,
        created=T0 + timedelta(seconds=20),
        event_time=T0 + timedelta(seconds=5),
        event_ids=(benign.id, tainted.id),
        entities={"source.ip": "10.20.0.5", "destination.ip": "10.30.1.10"},
        tags=("attack.t0855", "attack.impair_process_control"),
    )
    store.add_alert(alert)
    incident = Incident(
        id="inc-1",
        title="Unauthorised Modbus writes to the pumping station",
        severity=Severity.HIGH,
        status=IncidentStatus.NEW,
        created=T0 + timedelta(seconds=20),
        updated=T0 + timedelta(seconds=20),
        first_event_time=T0,
        last_event_time=T0 + timedelta(seconds=5),
        group_key="source.ip=10.20.0.5",
        mttd_seconds=20.0,
    )
    store.create_incident(incident, actor="detections")
    incident = store.attach_alert(incident.id, alert, actor="detections")
    run = PlaybookRun(
        id="run-1",
        playbook="contain-ot-writer",
        playbook_version="3",
        incident_id=incident.id,
        status=RunStatus.FAILED,
        created=T0 + timedelta(seconds=21),
        updated=T0 + timedelta(seconds=25),
        steps=(
            StepRecord("run-1", "enrich-source", "asset.lookup", StepStatus.SUCCEEDED, 1, T0, T0,
                       {"ip": "10.20.0.5"}, {"asset": "eng-ws-07", "note": hostile}),
            StepRecord("run-1", "block-source", "firewall.block_ip", StepStatus.FAILED, 2, T0, T0,
                       {"ip": "10.20.0.5"}, None, f"firewall refused: {hostile}"),
        ),
        error="step block-source failed",
    )
    store.create_run(run)
    store.add_dead_letter("syslog:udp/5514", "datagram 17", "not RFC 5424", f"<14>1 garbage {hostile}")
    return Seeded(incident, store.get_alert(alert.id), (benign.id, tainted.id), store.get_run(run.id))
