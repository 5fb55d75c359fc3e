"""Session lifetime and rotation: absolute lifetime, a new session at login, disabled users logged out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask

from console import auth
from console.app import create_app
from console.services import ConfigError, store_of
from tests.console import add_user, console_app, logged_in, login


@pytest.fixture(autouse=True)
def _fast_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    # scrypt costs ~0.3 s per hash on the shared test machine; these tests are not about the hash
    monkeypatch.setattr(auth, "HASH_METHOD", "pbkdf2:sha256:1000")



@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    with console_app(tmp_path) as app:
        yield app


def test_a_session_ends_after_its_maximum_lifetime_even_when_active(app: Flask) -> None:
    client = logged_in(app)
    assert client.get("/incidents").status_code == 200
    with client.session_transaction() as session:
        session["born"] = time.time() - 13 * 3600  # logged in 13 hours ago, active a moment ago
    response = client.get("/incidents")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    page = client.get("/login").get_data(as_text=True)
    assert "maximum lifetime of 12 hours" in page


def test_login_starts_a_new_session(app: Flask) -> None:
    add_user(app)
    client = app.test_client()
    client.get("/login")
    with client.session_transaction() as session:
        before = session["csrf"]
        session["planted"] = "by an attacker (session fixation)"
    login(client)
    with client.session_transaction() as session:
        assert session["csrf"] != before
        assert "planted" not in session
        assert session["user"] == "analyst"


def test_disabling_a_user_ends_their_sessions(app: Flask) -> None:
    client = logged_in(app)
    store = store_of(app)
    store.put_user(replace(store.get_user("analyst"), disabled=True))
    assert client.get("/incidents").status_code == 302
    assert login(app.test_client()).status_code == 401


def test_session_max_hours_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SESSION_MAX_HOURS"):
        create_app({"STORE_URL": f"sqlite:///{tmp_path}/t.db", "SECRET_KEY": "s" * 64, "SESSION_MAX_HOURS": 0})


def test_the_csp_forbids_inline_scripts_and_styles(app: Flask) -> None:
    csp = app.test_client().get("/login").headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert "script-src 'self'" in csp and "object-src 'none'" in csp
