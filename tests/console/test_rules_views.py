"""Detection-engineer pages and API: rule list, enable/disable, Sigma editor, exceptions, ATT&CK coverage."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from console import openapi
from console.services import store_of
from detections.engine import DetectionEngine
from detections.incidents import IncidentManager
from detections.pack import load_rules
from detections.rule_admin import parse_sample
from detections.rule_state import RuleGate
from store.event import Event
from tests.console import HOSTILE, SCRIPT, console_app, form_token, logged_in, session_token
from tests.helpers import event

DATA = Path(__file__).resolve().parent.parent / "data" / "detections" / "rule_admin"
RULE_ID = "3b7e9d6a-2f4c-4e1b-9a8d-5c6b7a8e9f01"
RULE_TEXT = (DATA / "camera_admin_login.yml").read_text(encoding="utf-8")
SAMPLES = (DATA / "sample_events.ndjson").read_text(encoding="utf-8")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "home"
    directory.mkdir()
    monkeypatch.setenv("CITYSOC_HOME", str(directory))
    return directory


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    directory = tmp_path / "pack"
    directory.mkdir()
    shutil.copy(DATA / "camera_admin_login.yml", directory)
    return directory


@pytest.fixture
def app(tmp_path: Path, home: Path, pack: Path) -> Iterator[Flask]:
    with console_app(tmp_path, RULE_PATHS=[str(pack)]) as app:
        yield app


def _api(client: FlaskClient, method: str, path: str, body: object | None = None) -> tuple[int, dict[str, object]]:
    response = client.open(path, method=method, json=body, headers={"X-CSRF-Token": session_token(client)})
    return response.status_code, response.get_json(silent=True) or {}


def _engineer(app: Flask) -> FlaskClient:
    return logged_in(app, "eng", ("engineer",))


# ---------------------------------------------------------------- roles


@pytest.mark.parametrize(
    ("roles", "read", "write"),
    [(("engineer",), 200, 200), (("analyst",), 200, 403), (("inspector",), 200, 403), (("responder",), 403, 403),
     (("compliance",), 403, 403), (("admin",), 200, 200)],
)
def test_reading_needs_engineer_analyst_or_inspector_and_writing_engineer(
    app: Flask, roles: tuple[str, ...], read: int, write: int
) -> None:
    client = logged_in(app, "u", roles)
    assert client.get("/rules").status_code == read
    assert client.get("/api/v1/rules").status_code == read
    assert _api(client, "POST", "/api/v1/rules/validate", {"text": RULE_TEXT})[0] == write
    assert client.get("/rules/editor").status_code == write
    assert app.test_client().get("/api/v1/rules").status_code == 401


# ---------------------------------------------------------------- list, detail, enable/disable


def test_rule_list_shows_level_logsource_attack_and_hits(app: Flask) -> None:
    client = _engineer(app)
    html = client.get("/rules").get_data(as_text=True)
    assert "Camera Admin Login From Outside The Operations Network" in html
    assert f'href="/rules/{RULE_ID}"' in html
    assert "product:citysoc/service:camera" in html and '<span class="attack">T0866</span>' in html
    body = client.get("/api/v1/rules").get_json()
    [rule] = body["rules"]
    assert rule["id"] == RULE_ID and rule["enabled"] is True and rule["level"] == "high"
    assert rule["hits"] == {"24h": 0, "7d": 0, "total": 0, "false_positives": 0} and rule["noise"] is None
    assert client.get("/api/v1/rules?state=disabled").get_json()["rules"] == []
    assert client.get("/api/v1/rules?state=bogus").status_code == 400
    assert client.get("/api/v1/rules?q=operations").get_json()["rules"][0]["id"] == RULE_ID
    assert client.get("/api/v1/rules?q=nothing-like-this").get_json()["rules"] == []
    assert client.get("/api/v1/rules/nope").status_code == 404


def test_disabling_through_the_api_is_seen_by_an_engine_and_audited(app: Flask, home: Path, pack: Path) -> None:
    client = _engineer(app)
    status, body = _api(client, "PUT", f"/api/v1/rules/{RULE_ID}/enabled", {"enabled": False})
    assert status == 400 and "reason" in str(body["error"])
    status, body = _api(client, "PUT", f"/api/v1/rules/{RULE_ID}/enabled", {"enabled": False, "reason": "rollout"})
    assert status == 200 and body["changed"] is True
    assert body["rule"]["enabled"] is False and body["rule"]["disabled_by"] == "eng"  # type: ignore[index]
    store = store_of(app)
    loaded = load_rules([pack])
    engine = DetectionEngine(store, loaded.ruleset, IncidentManager(store), gate=RuleGate(home, interval=0))
    login = event(0, {"event.dataset": "camera.platform", "event.action": "login", "event.outcome": "success",
                      "user.name": "admin", "source.ip": "203.0.113.7"})
    store.put_events([login])
    assert engine.evaluate(login) == []
    # the page form switches it back on
    page = client.get(f"/rules/{RULE_ID}").get_data(as_text=True)
    assert "rollout" in page and '<button type="submit">Enable</button>' in page
    response = client.post(f"/rules/{RULE_ID}/enabled", data={"enabled": "1", "csrf_token": form_token(page)})
    assert response.status_code == 302
    assert len(engine.evaluate(login)) == 1
    assert [e.action for e in store.audit_entries() if e.action.startswith("rule.")] == ["rule.enable", "rule.disable"]


# ---------------------------------------------------------------- editor


def test_editor_validates_with_line_numbers_and_escapes_the_rule(app: Flask) -> None:
    client = _engineer(app)
    page = client.get("/rules/editor").get_data(as_text=True)
    assert 'src="/static/rules.js"' in page and "<script>" not in page
    broken = RULE_TEXT.replace("source.ip|cidr:", "source.ip|cidrx:").replace("Camera Admin", f"Camera {SCRIPT}")
    response = client.post("/rules/editor", data={"text": broken, "action": "validate", "csrf_token": form_token(page)})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    line = broken.splitlines().index("        source.ip|cidrx: 10.20.0.0/16") + 1
    assert f"line {line}: error:" in html
    assert SCRIPT not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    status, body = _api(client, "POST", "/api/v1/rules/validate", {"text": broken})
    assert status == 200 and body["ok"] is False
    assert body["problems"][0]["line"] == line  # type: ignore[index]


def test_editor_tests_a_rule_on_a_pasted_sample_and_on_stored_events(app: Flask) -> None:
    client = _engineer(app)
    token = form_token(client.get("/rules/editor").get_data(as_text=True))
    html = client.post("/rules/editor", data={"text": RULE_TEXT, "action": "test", "source": "sample",
                                              "sample": SAMPLES, "csrf_token": token}).get_data(as_text=True)
    assert '<span id="match-count">1</span> matching events of 3 scanned' in html and "203.0.113.7" in html
    status, body = _api(client, "POST", "/api/v1/rules/test", {"text": RULE_TEXT, "sample": SAMPLES})
    assert status == 200 and body["matched"] == 1 and body["scanned"] == 3
    # stored events: the sample is stored first, with timestamps of now
    store = store_of(app)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    stored = [Event.from_document({**e.to_document(), "@timestamp": now}) for e in parse_sample(SAMPLES)]
    store.put_events(stored)
    status, body = _api(client, "POST", "/api/v1/rules/test", {"text": RULE_TEXT, "hours": 1})
    assert status == 200 and body["matched"] == 1
    status, body = _api(client, "POST", "/api/v1/rules/test", {"text": RULE_TEXT, "sample": "{bad"})
    assert status == 400 and "sample: line 1" in str(body["error"])


def test_hostile_event_content_in_test_matches_is_escaped(app: Flask) -> None:
    client = _engineer(app)
    token = form_token(client.get("/rules/editor").get_data(as_text=True))
    sample = SAMPLES.splitlines()[0].replace('"cam-junction-12"', '"' + HOSTILE.replace('"', '\\"') + '"')
    html = client.post("/rules/editor", data={"text": RULE_TEXT, "action": "test", "source": "sample",
                                              "sample": sample, "csrf_token": token}).get_data(as_text=True)
    assert "1</span> matching events" in html
    assert SCRIPT not in html and "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_saving_a_rule_puts_it_in_the_custom_directory(app: Flask, home: Path) -> None:
    client = _engineer(app)
    new = RULE_TEXT.replace(RULE_ID, "9c1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f").replace("Camera Admin", "Camera Root")
    status, body = _api(client, "POST", "/api/v1/rules", {"text": new})
    assert status == 201, body
    assert (home / "rules" / "9c1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f.yml").read_text(encoding="utf-8") == new
    assert body["rule"]["custom"] is True and body["rule"]["title"].startswith("Camera Root")  # type: ignore[index]
    assert len(client.get("/api/v1/rules").get_json()["rules"]) == 2
    status, body = _api(client, "POST", "/api/v1/rules", {"text": RULE_TEXT})  # the id of the pack's rule
    assert status == 400 and "already used by" in str(body["error"])


# ---------------------------------------------------------------- exceptions


def _fp_incident(app: Flask, verdict: str) -> str:
    store = store_of(app)
    loaded = load_rules([Path(app.config["RULE_PATHS"][0])])
    engine = DetectionEngine(store, loaded.ruleset, IncidentManager(store))
    login = event(0, {"event.dataset": "camera.platform", "event.action": "login", "event.outcome": "success",
                      "user.name": "admin", "source.ip": "203.0.113.7", "host.name": "cam-junction-12"})
    store.put_events([login])
    [alert] = engine.evaluate(login)
    incident_id = store.get_alert(alert.id).incident_id
    assert incident_id is not None
    store.append_timeline(incident_id, "verdict", "analyst", {"value": verdict})
    return incident_id


def test_exception_from_a_false_positive_incident_through_page_and_api(app: Flask) -> None:
    incident_id = _fp_incident(app, "false_positive")
    client = _engineer(app)
    page = client.get(f"/rules/exceptions/new?incident={incident_id}").get_data(as_text=True)
    assert 'value="source.ip"' in page and "203.0.113.7" in page and RULE_ID in page
    response = client.post("/rules/exceptions/new", data={
        "incident": incident_id, "rule_id": RULE_ID, "fields": ["source.ip"], "reason": "vendor VPN",
        "expires_hours": "", "csrf_token": form_token(page)})
    assert response.status_code == 302
    status, body = _api(client, "GET", "/api/v1/rules/exceptions")
    [created] = body["exceptions"]  # type: ignore[misc]
    assert created["rules"] == [RULE_ID] and created["reason"] == "vendor VPN" and created["expires"] is None
    assert created["source"] == {"incident": incident_id, "verdict": "false_positive"}
    listing = client.get("/rules/exceptions").get_data(as_text=True)
    assert created["id"] in listing and "vendor VPN" in listing

    status, body = _api(client, "POST", "/api/v1/rules/exceptions", {
        "incident_id": incident_id, "rule_id": RULE_ID, "fields": ["host.name"], "reason": "pen test",
        "expires_hours": 4})
    assert status == 201 and body["exception"]["expires"] is not None  # type: ignore[index]
    assert _api(client, "DELETE", f"/api/v1/rules/exceptions/{created['id']}")[0] == 204
    assert _api(client, "DELETE", f"/api/v1/rules/exceptions/{created['id']}")[0] == 404
    assert len(_api(client, "GET", "/api/v1/rules/exceptions")[1]["exceptions"]) == 1  # type: ignore[arg-type]


def test_no_exception_without_a_false_positive_verdict_or_outside_the_agency(app: Flask) -> None:
    incident_id = _fp_incident(app, "true_positive")
    client = _engineer(app)
    status, body = _api(client, "POST", "/api/v1/rules/exceptions", {
        "incident_id": incident_id, "rule_id": RULE_ID, "fields": ["source.ip"], "reason": "x"})
    assert status == 400 and "no false-positive verdict" in str(body["error"])
    assert _api(client, "POST", "/api/v1/rules/exceptions", {
        "incident_id": "INC-NOPE", "rule_id": RULE_ID, "fields": ["source.ip"], "reason": "x"})[0] == 404


# ---------------------------------------------------------------- coverage


def test_coverage_marks_techniques_of_enabled_rules_only(app: Flask) -> None:
    client = logged_in(app, "c", ("compliance",))
    html = client.get("/coverage").get_data(as_text=True)
    assert '<span class="heat heat-1"' in html and "T0866" in html and "T1078" in html
    assert "ICS" in html and "Enterprise" in html
    body = client.get("/api/v1/coverage").get_json()
    ids = {t["id"]: t["rules"] for d in body["domains"] for tac in d["tactics"] for t in tac["techniques"]}
    assert ids == {"T0866": [RULE_ID], "T1078": [RULE_ID]}
    engineer = _engineer(app)
    _api(engineer, "PUT", f"/api/v1/rules/{RULE_ID}/enabled", {"enabled": False, "reason": "test"})
    body = client.get("/api/v1/coverage").get_json()
    assert body == {"domains": []}


def test_every_rules_and_playbooks_endpoint_is_in_the_openapi_document(app: Flask) -> None:
    paths = openapi.document()["paths"]
    documented = {(path, method.upper()) for path, item in paths.items() for method in item if method != "parameters"}
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in ("rules_api", "playbooks_api"):
            continue
        path = rule.rule.removeprefix("/api/v1").replace("<", "{").replace(">", "}")
        served |= {(path, m) for m in (rule.methods or set()) - {"HEAD", "OPTIONS"}}
    assert served and served <= documented, served - documented
