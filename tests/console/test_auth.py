"""Logins, logouts, password changes, the first admin and the login and role checks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from console.auth import authenticate, create_user, ensure_admin
from console.services import InvalidInput, store_of
from store.errors import Conflict
from tests.console import PASSWORD, add_user, console_app, form_token, logged_in, login, seed_incident, session_token

BANNER = "The default password has not been changed"
PUBLIC_ENDPOINTS = {"web.login", "web.logout", "web.healthz", "static"}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    with console_app(tmp_path) as app:
        yield app


@pytest.mark.parametrize("path", ["/", "/incidents", "/incidents/inc-1", "/events?q=x", "/dead-letters",
                                  "/account/password"])
def test_pages_redirect_to_login(app: Flask, path: str) -> None:
    response = app.test_client().get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("path", ["/api/v1/incidents", "/api/v1/incidents/inc-1", "/api/v1/events",
                                  "/api/v1/dead-letters", "/api/v1/me"])
def test_api_needs_login(app: Flask, path: str) -> None:
    response = app.test_client().get(path)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "not_authenticated"


def test_every_endpoint_but_login_logout_healthz_and_static_needs_login(app: Flask) -> None:
    seed_incident(store_of(app))
    client = app.test_client()
    client.get("/login")
    headers = {"X-CSRF-Token": session_token(client)}
    checked = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        built = rule.build(dict.fromkeys(rule.arguments, "inc-1"), append_unknown=False)
        assert built is not None
        path = built[1]
        methods = rule.methods or set()
        method = "GET" if "GET" in methods else sorted(methods - {"HEAD", "OPTIONS"})[0]
        response = client.open(path, method=method, headers=headers, json={} if method != "GET" else None)
        assert response.status_code in (302, 401), f"{method} {path} answered {response.status_code} without login"
        checked.add(rule.endpoint)
    assert {"web.incident", "web.comment", "web.status", "api.get_incident", "api.add_comment"} <= checked
    assert store_of(app).timeline("inc-1")[-1].kind == "alert"  # nothing was written


def test_login_works_and_follows_next(app: Flask) -> None:
    add_user(app)
    client = app.test_client()
    token = form_token(client.get("/login?next=/dead-letters").get_data(as_text=True))
    response = client.post("/login", data={"username": "analyst", "password": PASSWORD, "csrf_token": token,
                                           "next": "/dead-letters"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/dead-letters"
    assert client.get("/incidents").status_code == 200
    assert store_of(app).audit_entries(limit=1)[0].action == "auth.login"


def test_login_does_not_redirect_off_site(app: Flask) -> None:
    add_user(app)
    client = app.test_client()
    token = form_token(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"username": "analyst", "password": PASSWORD, "csrf_token": token,
                                           "next": "//evil.example/phish"})
    assert response.headers["Location"] == "/incidents"


@pytest.mark.parametrize("username,password", [("analyst", "wrong password!!"), ("nobody", PASSWORD), ("", "")])
def test_wrong_credentials_are_rejected(app: Flask, username: str, password: str) -> None:
    add_user(app)
    client = app.test_client()
    response = login(client, username, password)
    assert response.status_code == 401
    assert "Wrong user name or password." in response.get_data(as_text=True)
    assert client.get("/incidents").status_code == 302
    entry = store_of(app).audit_entries(limit=1)[0]
    assert entry.action == "auth.login_failed"
    assert entry.object == f"user:{username}"


def test_logout_ends_the_session(app: Flask) -> None:
    client = logged_in(app)
    response = client.post("/logout", data={"csrf_token": session_token(client)})
    assert response.status_code == 302
    assert client.get("/incidents").status_code == 302
    assert client.get("/api/v1/me").status_code == 401


def test_first_admin_must_change_password_and_sees_the_banner_until_then(app: Flask) -> None:
    store = store_of(app)
    password = ensure_admin(store)
    assert password and len(password) >= 20
    assert ensure_admin(store) is None  # only when no user exists
    admin = store.get_user("admin")
    assert admin.must_change_password and admin.roles == ("admin",)
    assert admin.password_hash.startswith("scrypt:") and password not in admin.password_hash

    client = app.test_client()
    response = login(client, "admin", password)
    assert response.headers["Location"] == "/account/password"
    for path in ("/incidents", "/events", "/dead-letters", "/account/password"):
        page = client.get(path).get_data(as_text=True)
        assert BANNER in page and 'href="/account/password"' in page, path

    new = "a much better passphrase 2026"
    response = client.post("/account/password", data={
        "csrf_token": session_token(client), "current_password": password, "new_password": new,
        "confirm_password": new})
    assert response.status_code == 302
    assert BANNER not in client.get("/incidents").get_data(as_text=True)
    assert not store.get_user("admin").must_change_password
    assert authenticate(store, "admin", new) is not None
    assert authenticate(store, "admin", password) is None
    assert store.audit_entries(limit=1)[0].action == "user.password_change"


@pytest.mark.parametrize(
    "current,new,confirm,reason",
    [
        ("wrong current pw", "another good passphrase", "another good passphrase", "the current password is wrong"),
        (PASSWORD, "short", "short", "use at least 12 characters"),
        (PASSWORD, "another good passphrase", "a different passphrase", "the new passwords do not match"),
        (PASSWORD, PASSWORD, PASSWORD, "the new password must differ"),
    ],
)
def test_bad_password_changes_are_refused(app: Flask, current: str, new: str, confirm: str, reason: str) -> None:
    client = logged_in(app)
    before = store_of(app).get_user("analyst").password_hash
    response = client.post("/account/password", data={
        "csrf_token": session_token(client), "current_password": current, "new_password": new,
        "confirm_password": confirm})
    assert response.status_code == 400
    assert reason in response.get_data(as_text=True)
    assert store_of(app).get_user("analyst").password_hash == before


def test_a_password_change_ends_the_users_other_sessions(app: Flask) -> None:
    first = logged_in(app)
    second = app.test_client()
    login(second)
    assert second.get("/incidents").status_code == 200
    new = "a much better passphrase 2026"
    first.post("/account/password", data={"csrf_token": session_token(first), "current_password": PASSWORD,
                                          "new_password": new, "confirm_password": new})
    assert first.get("/incidents").status_code == 200
    assert second.get("/incidents").status_code == 302


def test_inspectors_read_but_cannot_change_incidents(app: Flask) -> None:
    seed_incident(store_of(app))
    client = logged_in(app, "watcher", ("inspector",))
    page = client.get("/incidents/inc-1").get_data(as_text=True)
    assert "Your role can read this incident but not change it." in page
    assert 'action="/incidents/inc-1/status"' not in page
    token = session_token(client)
    assert client.post("/incidents/inc-1/status", data={"csrf_token": token, "status": "closed"}).status_code == 403
    response = client.post("/api/v1/incidents/inc-1/comments", json={"text": "hi"}, headers={"X-CSRF-Token": token})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"
    assert [e.kind for e in store_of(app).timeline("inc-1")] == ["created", "alert"]


def test_create_user_checks_name_roles_password_and_duplicates(app: Flask) -> None:
    store = store_of(app)
    create_user(store, "ops.lead", PASSWORD, ("analyst", "admin"))
    with pytest.raises(Conflict, match="exists already"):
        create_user(store, "ops.lead", PASSWORD, ("analyst",))
    with pytest.raises(InvalidInput, match="roles"):
        create_user(store, "someone", PASSWORD, ("root",))
    with pytest.raises(InvalidInput, match="username"):
        create_user(store, "bad name", PASSWORD, ("inspector",))
    with pytest.raises(InvalidInput, match="at least 12"):
        create_user(store, "someone", "short", ("inspector",))
    assert [u.username for u in store.list_users()] == ["ops.lead"]
