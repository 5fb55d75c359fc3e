"""CSRF, security headers, the session cookie and idle timeout, escaping of hostile content, the secret key."""

from __future__ import annotations

import re
import stat
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.datastructures import Headers

from console.app import SIGNING_KEY_FILE, create_app
from console.services import store_of
from tests.console import (
    HOSTILE,
    IMG,
    PASSWORD,
    SCRIPT,
    add_user,
    console_app,
    logged_in,
    login,
    seed_incident,
    session_token,
)
from tests.helpers import T0

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
TEMPLATES = Path(__file__).resolve().parents[2] / "console" / "templates"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    # the console's clock two hours after the seeded events (tests.helpers.T0): the event search's default
    # range (the last 24 hours) holds them whatever day the suite runs
    with console_app(tmp_path, CLOCK=lambda: T0 + timedelta(hours=2)) as app:
        yield app


def _assert_headers(headers: Headers, path: str) -> None:
    assert headers.get("Content-Security-Policy") == CSP, path
    assert headers.get("X-Content-Type-Options") == "nosniff", path
    assert headers.get("Referrer-Policy") == "no-referrer", path
    assert headers.get("X-Frame-Options") == "DENY", path


@pytest.mark.parametrize("path", ["/login", "/healthz", "/incidents", "/no-such-page", "/api/v1/incidents",
                                  "/api/v1/nothing", "/static/console.css", "/static/console.js"])
def test_security_headers_on_every_response(app: Flask, path: str) -> None:
    with app.test_client().get(path) as response:  # closes the static file
        _assert_headers(response.headers, path)


def test_security_headers_on_pages_after_login(app: Flask) -> None:
    seed_incident(store_of(app))
    client = logged_in(app)
    for path in ("/incidents", "/incidents/inc-1", "/events", "/dead-letters", "/incidents/none", "/api/v1/me"):
        response = client.get(path)
        _assert_headers(response.headers, path)
        assert response.headers["Cache-Control"] == "no-store", path


def test_session_cookie_is_httponly_and_samesite_strict(app: Flask) -> None:
    add_user(app)
    response = login(app.test_client())
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie


def test_form_post_without_csrf_token_is_400(app: Flask) -> None:
    seed_incident(store_of(app))
    client = logged_in(app)
    response = client.post("/incidents/inc-1/status", data={"status": "closed"})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    response = client.post("/incidents/inc-1/comments", data={"text": "hi", "csrf_token": "forged"})
    assert response.status_code == 400
    assert [e.kind for e in store_of(app).timeline("inc-1")] == ["created", "alert"]


def test_api_call_without_csrf_header_is_400_json(app: Flask) -> None:
    seed_incident(store_of(app))
    client = logged_in(app)
    response = client.post("/api/v1/incidents/inc-1/comments", json={"text": "hi"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "csrf_failed"
    response = client.post("/api/v1/incidents/inc-1/comments", json={"text": "hi"},
                           headers={"X-CSRF-Token": session_token(client)})
    assert response.status_code == 201


def test_login_form_needs_the_csrf_token(app: Flask) -> None:
    add_user(app)
    client = app.test_client()
    client.get("/login")
    response = client.post("/login", data={"username": "analyst", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/incidents").status_code == 302


def test_login_starts_a_new_session_with_a_new_csrf_token(app: Flask) -> None:
    add_user(app)
    client = app.test_client()
    client.get("/login")
    before = session_token(client)
    login(client)
    assert session_token(client) != before


def _age_session(client: FlaskClient, seconds: float) -> None:
    with client.session_transaction() as session:
        session["seen"] = time.time() - seconds


def test_idle_session_times_out(app: Flask) -> None:
    client = logged_in(app)
    _age_session(client, 29 * 60)
    assert client.get("/incidents").status_code == 200  # and the request counts as activity
    _age_session(client, 31 * 60)
    response = client.get("/incidents")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/incidents"
    assert "session expired" in client.get("/login").get_data(as_text=True)
    assert client.get("/api/v1/me").status_code == 401


def test_session_timeout_is_configurable(tmp_path: Path) -> None:
    with console_app(tmp_path, SESSION_TIMEOUT_MINUTES=2) as app:
        client = logged_in(app)
        _age_session(client, 90)
        assert client.get("/api/v1/me").status_code == 200
        _age_session(client, 150)
        assert client.get("/api/v1/me").status_code == 401


def test_post_after_timeout_leads_to_login_not_csrf_error(app: Flask) -> None:
    seed_incident(store_of(app))
    client = logged_in(app)
    token = session_token(client)
    _age_session(client, 31 * 60)
    response = client.post("/incidents/inc-1/comments", data={"csrf_token": token, "text": "late"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert [e.kind for e in store_of(app).timeline("inc-1")] == ["created", "alert"]


def test_hostile_event_and_alert_content_is_escaped(app: Flask) -> None:
    seed_incident(store_of(app), HOSTILE)
    client = logged_in(app)
    client.post("/incidents/inc-1/comments", data={"csrf_token": session_token(client), "text": HOSTILE})
    for path in ("/incidents/inc-1", "/events?q=alert", "/dead-letters", "/incidents"):
        html = client.get(path).get_data(as_text=True)
        assert SCRIPT not in html, path
        assert IMG not in html, path
        assert "<img" not in html, path
        assert "onerror=alert(1)>" not in html, path
        if path != "/incidents":
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path
            assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html, path
    page = client.get("/incidents/inc-1").get_data(as_text=True)
    # rule title, message, user.name (key fields and all fields), step output and error, comment
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 7


def test_a_hostile_search_query_is_escaped(app: Flask) -> None:
    client = logged_in(app)
    html = client.get("/events", query_string={"q": HOSTILE}).get_data(as_text=True)
    assert SCRIPT not in html and IMG not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_templates_have_no_inline_code_and_never_bypass_escaping() -> None:
    templates = sorted(TEMPLATES.glob("*.html"))
    assert len(templates) >= 8
    for path in templates:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), f"{path.name}: inline script"
        assert "<style" not in text, f"{path.name}: inline style element"
        assert not re.search(r"\sstyle=", text), f"{path.name}: style attribute"
        assert not re.search(r"\son[a-z]+=", text), f"{path.name}: event handler attribute"
        assert "|safe" not in text.replace(" ", ""), f"{path.name}: |safe"
        assert "autoescape false" not in text, f"{path.name}: autoescape off"
    for module in ("app.py", "views.py", "api.py", "services.py", "auth.py", "security.py"):
        source = (TEMPLATES.parent / module).read_text(encoding="utf-8")
        assert "Markup" not in source and "|safe" not in source, module


def test_secret_key_is_created_once_in_citysoc_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("CITYSOC_HOME", str(home))
    config = {"STORE_URL": f"sqlite:///{tmp_path}/t.db", "TESTING": True}
    first = create_app(config)
    second = create_app(config)
    try:
        key_file = home / SIGNING_KEY_FILE
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"] == key_file.read_text().strip()
        assert len(first.config["SECRET_KEY"]) == 64
    finally:
        store_of(first).close()
        store_of(second).close()
