"""Role × endpoint matrix: every endpoint of every blueprint declares a policy and enforces it; agency scope holds.

Generic over ``app.url_map``: endpoints added later are covered without
changes here.  For each endpoint and method, a request from each role (one
session user and one API token per role, plus a responder scoped to one
agency) must be refused with 403 exactly when the declared policy
(:data:`console.auth.ENDPOINT_POLICY`) refuses that role (or, for tokens, the
endpoint is :func:`console.auth.session_only`), and anonymous
requests must be refused with 401 (API) or a redirect to the login page.
Then a responder of one agency gets 404 or 403 from every incident endpoint
for another agency's incident, and nothing is written to it.

Requests carry empty bodies and ids that do not exist (except the incident
ids), so a permitted request fails validation or finds nothing: the matrix
tests access control, not behaviour.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from console import auth, tokens
from console.auth import ROLES, allowed, create_user, policy_of, tokens_accepted
from console.services import store_of
from store.models import Incident, IncidentStatus, Severity
from tests.console import PASSWORD, console_app, login, session_token
from tests.helpers import T0

#: Endpoints anyone may call: the login steps, logout, health, static files and the API description.
PUBLIC = frozenset({"web.login", "account.mfa_login", "web.logout", "web.healthz", "static", "api.openapi_document"})
WATER, METRO = "Hanoi Water Company", "Hanoi Metro"
OURS, THEIRS = "inc-water", "inc-metro"
MISSING = "no-such-id"
#: One body for every incident write: each endpoint takes what it needs, so the scope check is what refuses.
INCIDENT_BODY = {"text": "probe", "status": "triage", "assignee": "resp.water", "verdict": "true_positive",
                 "reason": "probe", "target": OURS, "into": OURS, "alert_ids": ["alert-x"], "incident_ids": [OURS],
                 "level": "city"}  # fmt: skip


@dataclass(frozen=True)
class Principal:
    name: str
    roles: tuple[str, ...]
    session: FlaskClient
    csrf: str
    token: str


@dataclass(frozen=True)
class Matrix:
    app: Flask
    principals: tuple[Principal, ...]
    scoped: Principal


def _incident(incident_id: str, agency: str) -> Incident:
    return Incident(id=incident_id, title=f"Pump writes at {agency}", severity=Severity.HIGH, status=IncidentStatus.NEW,
                    created=T0, updated=T0, first_event_time=T0, last_event_time=T0 + timedelta(seconds=5),
                    group_key=f"asset.agency={agency}", entities={"asset.agency": (agency,)})  # fmt: skip


@pytest.fixture(autouse=True)
def _fast_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    # scrypt costs ~0.3 s per hash on the shared test machine; this test is about access control
    monkeypatch.setattr(auth, "HASH_METHOD", "pbkdf2:sha256:1000")


def _principal(app: Flask, name: str, roles: tuple[str, ...], agencies: tuple[str, ...] = ()) -> Principal:
    store = store_of(app)
    user = create_user(store, name, PASSWORD, roles, agencies=agencies)
    client = app.test_client()
    assert login(client, name).status_code == 302
    secret = tokens.create_token(store, user, user, "matrix", roles).secret
    return Principal(name, roles, client, session_token(client), secret)


@pytest.fixture
def matrix(tmp_path: Path) -> Iterator[Matrix]:
    with console_app(tmp_path) as app:
        store = store_of(app)
        for incident_id, agency in ((OURS, WATER), (THEIRS, METRO)):
            store.create_incident(_incident(incident_id, agency), actor="detections")
        principals = tuple(_principal(app, f"u-{role}", (role,)) for role in ROLES)
        scoped = _principal(app, "resp.water", ("responder",), (WATER,))
        yield Matrix(app, (*principals, scoped), scoped)


def _rules(app: Flask) -> list[tuple[Rule, str]]:
    out = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        if rule.endpoint in PUBLIC:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out.append((rule, method))
    return out


def _path(rule: Rule, incident_id: str = OURS) -> str:
    values = {arg: incident_id if arg == "incident_id" else MISSING for arg in rule.arguments}
    if "name" in rule.arguments:
        values["name"] = MISSING
    built = rule.build(values, append_unknown=False)
    assert built is not None, rule.rule
    return built[1]


def _call(client: FlaskClient, method: str, path: str, headers: dict[str, str], body: dict[str, Any]) -> int:
    if method == "GET":
        return client.get(path, headers=headers).status_code
    if path.startswith("/api/"):
        return client.open(path, method=method, headers=headers, json=body).status_code
    return client.open(path, method=method, headers=headers, data=body).status_code


def test_every_endpoint_declares_a_policy(matrix: Matrix) -> None:
    app = matrix.app
    missing = [rule.endpoint for rule in app.url_map.iter_rules()
               if rule.endpoint not in PUBLIC and policy_of(app.view_functions[rule.endpoint]) is None]  # fmt: skip
    assert missing == [], "endpoints without auth.login_required / auth.roles_required"
    assert PUBLIC - {"api.openapi_document"} <= {rule.endpoint for rule in app.url_map.iter_rules()}


def test_anonymous_requests_are_refused(matrix: Matrix) -> None:
    client = matrix.app.test_client()
    client.get("/login")
    csrf = {"X-CSRF-Token": session_token(client)}
    for rule, method in _rules(matrix.app):
        path = _path(rule)
        status = _call(client, method, path, csrf, {})
        if path.startswith("/api/"):
            assert status == 401, f"{method} {path}: {status} without login"
        else:
            assert status == 302, f"{method} {path}: {status} without login"


def test_sessions_and_tokens_get_403_exactly_when_the_policy_refuses(matrix: Matrix) -> None:
    failures = []
    for rule, method in _rules(matrix.app):
        view = matrix.app.view_functions[rule.endpoint]
        policy = policy_of(view)
        assert policy is not None, rule.endpoint
        path = _path(rule)
        for who in matrix.principals:
            ways = [("session", who.session, {"X-CSRF-Token": who.csrf})]
            if path.startswith("/api/"):
                ways.append(("token", matrix.app.test_client(), {"Authorization": f"Bearer {who.token}"}))
            for how, client, headers in ways:
                status = _call(client, method, path, headers, {})
                expected_ok = allowed(policy, who.roles) and (how == "session" or tokens_accepted(view))
                if expected_ok != (status not in (401, 403)) or (not expected_ok and status != 403):
                    failures.append(f"{method} {path} as {who.name} by {how}: {status}, policy {policy}")
    assert failures == [], "\n".join(failures)


def test_a_scoped_responder_cannot_reach_another_agencys_incident(matrix: Matrix) -> None:
    app, who = matrix.app, matrix.scoped
    store = store_of(app)
    before = store.timeline(THEIRS)
    failures = []
    incident_rules = [(rule, method) for rule, method in _rules(app) if "incident_id" in rule.arguments]
    assert len(incident_rules) >= 8, "the incident endpoints are missing from the app"
    for rule, method in incident_rules:
        path = _path(rule, THEIRS)
        ways = [("session", who.session, {"X-CSRF-Token": who.csrf})]
        if path.startswith("/api/"):
            ways.append(("token", app.test_client(), {"Authorization": f"Bearer {who.token}"}))
        for how, client, headers in ways:
            status = _call(client, method, path, headers, INCIDENT_BODY)
            if status not in (403, 404):
                failures.append(f"{method} {path} by {how}: {status}")
            if method == "GET":
                own = _call(client, method, _path(rule, OURS), headers, {})
                if own != 200:
                    failures.append(f"{method} {_path(rule, OURS)} (own agency) by {how}: {own}")
    assert failures == []
    assert store.timeline(THEIRS) == before  # nothing was written to the other agency's incident
    listed = who.session.get("/api/v1/incidents").get_json()["incidents"]
    assert [i["id"] for i in listed] == [OURS]
    token_listed = app.test_client().get("/api/v1/incidents", headers={"Authorization": f"Bearer {who.token}"})
    assert [i["id"] for i in token_listed.get_json()["incidents"]] == [OURS]
    page = who.session.get("/incidents").get_data(as_text=True)
    assert OURS in page and THEIRS not in page
