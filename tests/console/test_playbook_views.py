"""Responder pages and API: runs with live step status, the approvals inbox, the drill launcher."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from console.auth import create_user
from console.services import store_of
from playbooks.actions import REGISTRY
from playbooks.model import PlaybookLibrary
from playbooks.runner import Runner, new_run
from store.base import Store
from store.models import Incident, IncidentStatus, RunStatus, Severity, StepStatus
from tests.console import (
    HOSTILE,
    PASSWORD,
    SCRIPT,
    console_app,
    form_token,
    logged_in,
    login,
    seed_incident,
    session_token,
)
from tests.helpers import T0

PLAYBOOKS = Path(__file__).resolve().parent.parent / "data" / "console" / "playbooks"
PLAYBOOK = "approve-then-contain"


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("CITYSOC_HOME", str(tmp_path / "home"))
    with console_app(tmp_path, PLAYBOOK_DIRS=[str(PLAYBOOKS)]) as app:
        yield app


def _incident(store: Store, incident_id: str, agency: str) -> str:
    store.create_incident(
        Incident(id=incident_id, title=f"Pump writes at {agency}", severity=Severity.HIGH, status=IncidentStatus.NEW,
                 created=T0, updated=T0, first_event_time=T0, last_event_time=T0, group_key=f"asset.id={agency}",
                 entities={"asset.agency": (agency,)}),
        actor="test",
    )
    return incident_id


def _waiting_run(store: Store, tmp_path: Path, incident_id: str) -> str:
    """A real run driven by the runner up to its approval step (which then waits for a person)."""
    library = PlaybookLibrary.load([PLAYBOOKS], REGISTRY)
    queue: deque[tuple[str, str, int]] = deque()
    runner = Runner(store, library, REGISTRY, tmp_path, send=lambda r, k, a, i: queue.append((r, k, a)))
    run = new_run(store, library.get(PLAYBOOK), incident_id, REGISTRY)
    runner.drive(run.id)
    while queue:
        runner.execute(*queue.popleft())
    return run.id


def _drive(store: Store, tmp_path: Path, run_id: str) -> None:
    """What the workers' sweeper does after a decision: drive the run on."""
    library = PlaybookLibrary.load([PLAYBOOKS], REGISTRY)
    queue: deque[tuple[str, str, int]] = deque()
    runner = Runner(store, library, REGISTRY, tmp_path, send=lambda r, k, a, i: queue.append((r, k, a)))
    runner.drive(run_id)
    while queue:
        runner.execute(*queue.popleft())


def _user(app: Flask, name: str, roles: tuple[str, ...], agencies: tuple[str, ...] = ()) -> FlaskClient:
    create_user(store_of(app), name, PASSWORD, roles, agencies=agencies)
    client = app.test_client()
    assert login(client, name).status_code == 302
    return client


def _api(client: FlaskClient, method: str, path: str, body: object | None = None) -> tuple[int, dict[str, object]]:
    response = client.open(path, method=method, json=body, headers={"X-CSRF-Token": session_token(client)})
    return response.status_code, response.get_json(silent=True) or {}


# ---------------------------------------------------------------- runs


def test_runs_list_and_run_page_escape_step_output_and_poll_without_inline_script(app: Flask) -> None:
    seed_incident(store_of(app), HOSTILE)
    client = logged_in(app, "r", ("responder",))
    html = client.get("/runs").get_data(as_text=True)
    assert 'href="/runs/run-1"' in html and "contain-ot-writer" in html and "run-failed" in html
    page = client.get("/runs/run-1").get_data(as_text=True)
    assert 'data-url="/api/v1/runs/run-1"' in page and 'data-final="true"' in page
    assert 'src="/static/playbooks.js"' in page and "<script>" not in page.replace(SCRIPT, "")
    assert SCRIPT not in page and "&lt;script&gt;" in page
    body = client.get("/api/v1/runs/run-1").get_json()
    assert body["final"] is True and body["run"]["status"] == "failed"
    assert [s["status"] for s in body["run"]["steps"]] == ["succeeded", "failed"]
    assert client.get("/api/v1/runs?status=failed").get_json()["runs"][0]["id"] == "run-1"
    assert client.get("/api/v1/runs?status=running").get_json()["runs"] == []
    assert client.get("/api/v1/runs?status=bogus").status_code == 400
    assert client.get("/api/v1/runs/nope").status_code == 404


@pytest.mark.parametrize(("roles", "status"), [(("responder",), 200), (("analyst",), 200), (("inspector",), 200),
                                               (("engineer",), 403), (("compliance",), 403)])
def test_runs_need_responder_analyst_or_inspector(app: Flask, roles: tuple[str, ...], status: int) -> None:
    seed_incident(store_of(app))
    client = logged_in(app, "u", roles)
    assert client.get("/runs").status_code == status
    assert client.get("/api/v1/runs/run-1").status_code == status


def test_runs_are_cut_to_the_users_agencies(app: Flask, tmp_path: Path) -> None:
    store = store_of(app)
    water = _waiting_run(store, tmp_path, _incident(store, "inc-water", "water"))
    transport = _waiting_run(store, tmp_path, _incident(store, "inc-transport", "transport"))
    client = _user(app, "wr", ("responder",), ("water",))
    ids = [r["id"] for r in client.get("/api/v1/runs").get_json()["runs"]]
    assert ids == [water]
    assert client.get(f"/api/v1/runs/{transport}").status_code == 404
    assert [a["run_id"] for a in client.get("/api/v1/approvals").get_json()["approvals"]] == [water]
    city = _user(app, "city", ("responder",))
    assert sorted(r["id"] for r in city.get("/api/v1/runs").get_json()["runs"]) == sorted([water, transport])


# ---------------------------------------------------------------- approvals


def test_approving_in_the_inbox_settles_the_step_and_the_run_goes_on(app: Flask, tmp_path: Path) -> None:
    store = store_of(app)
    run_id = _waiting_run(store, tmp_path, _incident(store, "inc-water", "water"))
    assert store.get_run(run_id).steps[0].status is StepStatus.RUNNING
    client = logged_in(app, "duty", ("responder",))
    page = client.get("/approvals").get_data(as_text=True)
    assert "approve-contain" in page and "Mark the pumping-station incident contained" in page
    response = client.post("/approvals", data={"run_id": run_id, "step_ref": "approve-contain", "reason": "",
                                                "decision": "approve", "csrf_token": form_token(page)})
    assert response.status_code == 302 and store.get_run(run_id).steps[0].status is StepStatus.RUNNING  # no reason
    response = client.post("/approvals", data={"run_id": run_id, "step_ref": "approve-contain",
                                                "reason": "pump verified offline", "decision": "approve",
                                                "csrf_token": form_token(page)})
    assert response.status_code == 302
    step = store.get_run(run_id).steps[0]
    assert step.status is StepStatus.SUCCEEDED and step.output["decisions"][0]["user"] == "duty"
    assert "No approval is waiting" in client.get("/approvals").get_data(as_text=True)
    _drive(store, tmp_path, run_id)
    assert store.get_run(run_id).status is RunStatus.SUCCEEDED
    assert store.get_incident("inc-water").status is IncidentStatus.CONTAINED
    decided = [e for e in store.audit_entries() if e.action == "approval.decided"]
    assert [(e.actor, e.details["reason"]) for e in decided] == [("duty", "pump verified offline")]


def test_api_decisions_need_a_required_role_and_a_reason(app: Flask, tmp_path: Path) -> None:
    store = store_of(app)
    run_id = _waiting_run(store, tmp_path, _incident(store, "inc-water", "water"))
    analyst = logged_in(app, "a", ("analyst",))
    assert _api(analyst, "GET", "/api/v1/approvals")[1] == {"approvals": []}
    status, body = _api(analyst, "POST", "/api/v1/approvals",
                        {"run_id": run_id, "step_ref": "approve-contain", "approve": True, "reason": "ok"})
    assert status == 403 and "responder" in str(body["error"])
    responder = logged_in(app, "r", ("responder",))
    [pending] = _api(responder, "GET", "/api/v1/approvals")[1]["approvals"]  # type: ignore[misc]
    assert pending["required_roles"] == ["responder"] and pending["remaining"] == 1
    assert _api(responder, "POST", "/api/v1/approvals",
                {"run_id": run_id, "step_ref": "approve-contain", "approve": False, "reason": " "})[0] == 400
    assert _api(responder, "POST", "/api/v1/approvals",
                {"run_id": run_id, "step_ref": "approve-contain", "approve": "yes", "reason": "x"})[0] == 400
    status, body = _api(responder, "POST", "/api/v1/approvals",
                        {"run_id": run_id, "step_ref": "approve-contain", "approve": False, "reason": "not yet"})
    assert status == 200 and body["settled"] is True
    assert store.get_run(run_id).steps[0].status is StepStatus.FAILED
    status, body = _api(responder, "POST", "/api/v1/approvals",
                        {"run_id": run_id, "step_ref": "approve-contain", "approve": True, "reason": "again"})
    assert status == 400 and "already decided" in str(body["error"])


# ---------------------------------------------------------------- drills


def test_drill_launcher_runs_a_simulated_drill_and_shows_the_report(app: Flask) -> None:
    store = store_of(app)
    _incident(store, "inc-water", "water")
    client = logged_in(app, "r", ("responder",))
    page = client.get("/drills").get_data(as_text=True)
    assert f'value="{PLAYBOOK}"' in page
    html = client.post("/drills", data={"playbook": PLAYBOOK, "incident_id": "inc-water", "decide_as_me": "1",
                                        "csrf_token": form_token(page)}).get_data(as_text=True)
    assert '<dd id="drill-status">succeeded</dd>' in html
    assert "approve-contain" in html and "r approved: drill: scripted decision" in html
    # simulated: the incident was not really contained and has no comment
    assert store.get_incident("inc-water").status is IncidentStatus.NEW
    [run] = [r for r in store.list_runs(incident_id="inc-water") if r.drill]
    assert run.status is RunStatus.SUCCEEDED


def test_drill_api_without_approver_leaves_the_approval_awaiting(app: Flask) -> None:
    client = logged_in(app, "r", ("responder",))
    body = client.get("/api/v1/drills/playbooks").get_json()
    assert [p["id"] for p in body["playbooks"]] == [PLAYBOOK]
    status, body = _api(client, "POST", "/api/v1/drills", {"playbook": PLAYBOOK, "incident_id": None})
    assert status == 201
    report = body["report"]
    assert report["status"] == "awaiting approval" and report["approvals"][0]["status"] == "awaiting"  # type: ignore[index]
    assert "# Drill report: approve-then-contain" in str(body["markdown"])
    status, body = _api(client, "POST", "/api/v1/drills", {"playbook": "nope"})
    assert status == 400 and "no playbook" in str(body["error"])
    assert _api(client, "POST", "/api/v1/drills", {"playbook": PLAYBOOK, "incident_id": "missing"})[0] == 404
    analyst = logged_in(app, "a", ("analyst",))
    assert _api(analyst, "POST", "/api/v1/drills", {"playbook": PLAYBOOK})[0] == 403


def test_an_agency_responder_drills_only_on_its_incidents(app: Flask) -> None:
    store = store_of(app)
    _incident(store, "inc-transport", "transport")
    client = _user(app, "wr", ("responder",), ("water",))
    assert _api(client, "POST", "/api/v1/drills", {"playbook": PLAYBOOK, "incident_id": "inc-transport"})[0] == 404
    status, body = _api(client, "POST", "/api/v1/drills", {"playbook": PLAYBOOK})
    assert status == 400 and "incident" in str(body["error"])
