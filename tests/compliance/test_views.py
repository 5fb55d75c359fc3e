"""Compliance pages and API: roles, agency scope, generating a report and verifying it in the console."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from console.auth import create_user
from console.services import store_of
from tests.compliance.conftest import RULES
from tests.console import PASSWORD, console_app, logged_in, login, session_token


@pytest.fixture
def app(city: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    home: Path = city["home"]
    city["register"].dump(home / "assets.json")
    for name in ("CITYSOC_ASSETS", "CITYSOC_REPORTS", "CITYSOC_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CITYSOC_HOME", str(home))
    with console_app(home, STORE_URL=f"sqlite:///{home}/citysoc.db", COMPLIANCE_RULES=RULES) as app:
        yield app


PERIOD = "start=2026-11-01&end=2026-11-21"


def scoped(app: Flask, username: str, roles: tuple[str, ...], agencies: tuple[str, ...]) -> FlaskClient:
    create_user(store_of(app), username, PASSWORD, roles, agencies=agencies)
    client = app.test_client()
    assert login(client, username).status_code == 302
    return client


def test_overview_for_compliance_officer(app: Flask) -> None:
    client = logged_in(app, "officer", ("compliance",))
    html = client.get(f"/compliance?{PERIOD}&lang=en").get_data(as_text=True)
    assert "traffic-cams" in html and "L3.N2.PN1.01" in html and "Generate and archive a report" in html
    page = client.get(f"/compliance/systems/traffic-cams?{PERIOD}&lang=vi").get_data(as_text=True)
    assert "Nhật ký ngừng gửi về" in page and "cam-02" in page


def test_other_roles_are_refused(app: Flask) -> None:
    client = logged_in(app, "analyst", ("analyst",))
    assert client.get("/compliance").status_code == 403
    assert client.get("/api/v1/compliance/reports").status_code == 403


def test_inspector_reads_but_cannot_generate(app: Flask) -> None:
    client = logged_in(app, "inspector", ("inspector",))
    html = client.get(f"/compliance?{PERIOD}").get_data(as_text=True)
    assert "traffic-cams" in html and 'action="/compliance/reports"' not in html
    response = client.post("/compliance/reports", data={"csrf_token": session_token(client), "kind": "city"})
    assert response.status_code == 403


def test_generate_view_and_verify_in_console(app: Flask, city: dict[str, Any]) -> None:
    client = logged_in(app, "officer", ("compliance",))
    response = client.post(
        "/compliance/reports",
        data={
            "csrf_token": session_token(client),
            "kind": "system",
            "system": "water-scada",
            "lang": "en",
            "start": "2026-11-01",
            "end": "2026-11-21",
        },
    )
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "The files match the manifest" in page
    report_id = response.headers["Location"].rsplit("/", 1)[1]
    pdf = client.get(f"/compliance/reports/{report_id}/report.pdf")
    assert pdf.data.startswith(b"%PDF") and "attachment" in pdf.headers["Content-Disposition"]
    (city["home"] / "reports" / report_id / "data.json").write_text("{}", encoding="utf-8")
    assert client.get(f"/api/v1/compliance/reports/{report_id}/verify").get_json()["ok"] is False
    assert "does NOT verify" in client.get(f"/compliance/reports/{report_id}").get_data(as_text=True)
    assert client.get(f"/compliance/reports/{report_id}/etc-passwd").status_code == 404


def test_agency_scope(app: Flask) -> None:
    client = scoped(app, "water", ("compliance",), ("Da Nang water",))
    html = client.get(f"/compliance?{PERIOD}").get_data(as_text=True)
    assert "water-scada" in html and "traffic-cams" not in html and "L3.N2.PN1.01" not in html
    assert client.get(f"/compliance/systems/traffic-cams?{PERIOD}").status_code == 404
    token = session_token(client)
    assert client.post("/compliance/reports", data={"csrf_token": token, "kind": "city"}).status_code == 403
    api = client.get(f"/api/v1/compliance/assessment?{PERIOD}").get_json()
    assert {r["subject"] for r in api["results"]} == {"water-scada"}


def test_api_generate_and_list(app: Flask) -> None:
    client = logged_in(app, "officer", ("compliance",))
    response = client.post(
        "/api/v1/compliance/reports",
        headers={"X-CSRF-Token": session_token(client)},
        json={"kind": "maturity", "lang": "vi", "start": "2026-11-01", "end": "2026-11-21"},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    report_id = response.get_json()["id"]
    listed = client.get("/api/v1/compliance/reports").get_json()["reports"]
    assert [r["id"] for r in listed] == [report_id]
    bad = client.post(
        "/api/v1/compliance/reports", headers={"X-CSRF-Token": session_token(client)}, json={"kind": "weekly"}
    )
    assert bad.status_code == 400


def test_every_compliance_endpoint_is_in_the_openapi_document(app: Flask) -> None:
    from console import openapi

    paths = openapi.document()["paths"]
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("compliance_api."):
            path = rule.rule.removeprefix("/api/v1").replace("<", "{").replace(">", "}")
            assert path in paths, path
