"""API tokens: shown once and stored hashed, roles and agencies within the owner's, expiry, revocation, CSRF."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask

from console import auth, tokens
from console.auth import create_user
from console.services import InvalidInput, NotAuthenticated, PermissionDenied, store_of
from tests.console import PASSWORD, add_user, console_app, form_token, logged_in, seed_incident, session_token

WATER = "Hanoi Water Company"


@pytest.fixture(autouse=True)
def _fast_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    # scrypt costs ~0.3 s per hash on the shared test machine; these tests are not about the hash
    monkeypatch.setattr(auth, "HASH_METHOD", "pbkdf2:sha256:1000")



@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    with console_app(tmp_path) as app:
        seed_incident(store_of(app))
        yield app


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def new_token(app: Flask, username: str = "analyst", roles: tuple[str, ...] = ("analyst",), **kw: object) -> str:
    store = store_of(app)
    owner = store.get_user(username)
    return tokens.create_token(store, owner, owner, "ci", roles, **kw).secret  # type: ignore[arg-type]


def test_a_token_authenticates_api_calls_without_cookie_or_csrf(app: Flask) -> None:
    add_user(app)
    secret = new_token(app)
    client = app.test_client()
    me = client.get("/api/v1/me", headers=bearer(secret))
    assert me.status_code == 200 and me.get_json()["username"] == "analyst"
    response = client.post("/api/v1/incidents/inc-1/comments", json={"text": "from the SIEM bridge"},
                           headers=bearer(secret))  # fmt: skip
    assert response.status_code == 201
    assert store_of(app).timeline("inc-1")[-1].actor == "analyst"


def test_only_the_hash_is_stored_and_the_token_is_audited(app: Flask) -> None:
    add_user(app)
    secret = new_token(app)
    stored = store_of(app).list_api_tokens("analyst")[0]
    assert stored.token_hash == tokens.token_hash(secret) and secret not in repr(stored)
    assert secret.startswith("cst_" + stored.id + "_")
    entry = store_of(app).audit_entries()[0]
    assert (entry.action, entry.object) == ("token.create", f"token:{stored.id}")
    assert secret not in str(entry.details)


def test_tokens_work_only_on_the_api(app: Flask) -> None:
    add_user(app)
    secret = new_token(app)
    assert app.test_client().get("/incidents", headers=bearer(secret)).status_code == 302


def test_cookie_sessions_still_need_csrf_even_with_a_bogus_bearer_header(app: Flask) -> None:
    client = logged_in(app)
    response = client.post("/api/v1/incidents/inc-1/comments", json={"text": "x"}, headers=bearer("cst_forged"))
    assert response.status_code == 401  # the bearer header makes it a token request: the cookie does not count
    assert client.post("/api/v1/incidents/inc-1/comments", json={"text": "x"}).status_code == 400  # no CSRF token


@pytest.mark.parametrize("mangle", [lambda s: s[:-1] + ("A" if s[-1] != "A" else "B"), lambda s: "cst_00_x",
                                    lambda s: "not-a-token"])
def test_wrong_tokens_are_refused(app: Flask, mangle: object) -> None:
    add_user(app)
    secret = new_token(app)
    response = app.test_client().get("/api/v1/me", headers=bearer(mangle(secret)))  # type: ignore[operator]
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "not_authenticated"


def test_revoked_expired_and_disabled_owner_tokens_are_refused(app: Flask) -> None:
    add_user(app)
    store = store_of(app)
    owner = store.get_user("analyst")
    secret = new_token(app)
    token_id = store.list_api_tokens()[0].id
    now = datetime.now(UTC)
    assert tokens.authenticate(store, secret, now).username == "analyst"
    with pytest.raises(NotAuthenticated, match="expired"):
        tokens.authenticate(store, secret, now + timedelta(days=tokens.DEFAULT_DAYS + 1))
    store.put_user(replace(owner, disabled=True))
    with pytest.raises(NotAuthenticated, match="disabled"):
        tokens.authenticate(store, secret, now)
    store.put_user(owner)
    tokens.revoke_token(store, owner, token_id)
    with pytest.raises(NotAuthenticated, match="revoked"):
        tokens.authenticate(store, secret, now)
    assert app.test_client().get("/api/v1/me", headers=bearer(secret)).status_code == 401


def test_token_roles_and_agencies_stay_within_the_owners(app: Flask) -> None:
    store = store_of(app)
    owner = create_user(store, "resp.water", PASSWORD, ("responder", "inspector"), agencies=(WATER,))
    with pytest.raises(InvalidInput, match="does not have the role analyst"):
        tokens.create_token(store, owner, owner, "x", ("analyst",))
    with pytest.raises(InvalidInput, match="does not see the agency"):
        tokens.create_token(store, owner, owner, "x", ("inspector",), ("Hanoi Metro",))
    other = create_user(store, "other", PASSWORD, ("analyst",))
    with pytest.raises(PermissionDenied, match="only admins"):
        tokens.create_token(store, other, owner, "x", ("inspector",))
    secret = tokens.create_token(store, owner, owner, "read only", ("inspector",)).secret
    acting = tokens.authenticate(store, secret)
    assert (acting.roles, acting.agencies) == (("inspector",), (WATER,))  # the owner's scope, the token's roles
    store.put_user(replace(owner, roles=("responder",)))  # the owner lost the role: so did the token
    with pytest.raises(NotAuthenticated, match="no longer has"):
        tokens.authenticate(store, secret)


def test_a_read_only_token_cannot_write(app: Flask) -> None:
    add_user(app, "ops", ("analyst",))
    secret = new_token(app, "ops", ("analyst",))
    store = store_of(app)
    ops = store.get_user("ops")
    store.put_user(replace(ops, roles=("inspector",)))
    assert app.test_client().get("/api/v1/me", headers=bearer(secret)).status_code == 401
    ops = replace(ops, roles=("analyst", "inspector"))
    store.put_user(ops)
    reader = tokens.create_token(store, ops, ops, "reader", ("inspector",)).secret
    response = app.test_client().post("/api/v1/incidents/inc-1/comments", json={"text": "x"}, headers=bearer(reader))
    assert response.status_code == 403


def test_tokens_through_the_api_and_pages(app: Flask) -> None:
    client = logged_in(app)
    csrf = {"X-CSRF-Token": session_token(client)}
    made = client.post("/api/v1/tokens", json={"name": "bridge", "roles": ["analyst"], "days": 7}, headers=csrf)
    assert made.status_code == 201
    body = made.get_json()
    secret, token_id = body["secret"], body["token"]["id"]
    # a token cannot mint tokens
    again = app.test_client().post("/api/v1/tokens", json={"name": "x", "roles": ["analyst"]}, headers=bearer(secret))
    assert again.status_code == 403
    listed = client.get("/api/v1/tokens").get_json()["tokens"]
    assert [t["id"] for t in listed] == [token_id] and "secret" not in listed[0] and "token_hash" not in listed[0]
    page = client.get("/account/tokens").get_data(as_text=True)
    assert token_id in page and secret not in page
    assert client.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": form_token(page)}).status_code == 302
    assert app.test_client().get("/api/v1/me", headers=bearer(secret)).status_code == 401
    created = client.post("/account/tokens", data={"csrf_token": form_token(page), "name": "shown once",
                                                   "roles": "analyst", "days": "30"}).get_data(as_text=True)
    assert 'id="new-token">cst_' in created


def test_users_cannot_see_or_revoke_others_tokens(app: Flask) -> None:
    add_user(app, "ops")
    secret = new_token(app, "ops")
    token_id = store_of(app).list_api_tokens()[0].id
    client = logged_in(app, "nosy", ("analyst",))
    assert client.get("/api/v1/tokens").get_json()["tokens"] == []
    response = client.delete(f"/api/v1/tokens/{token_id}", headers={"X-CSRF-Token": session_token(client)})
    assert response.status_code == 404
    assert app.test_client().get("/api/v1/me", headers=bearer(secret)).status_code == 200
