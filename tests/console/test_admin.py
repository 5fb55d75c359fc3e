"""Admin pages and API: users, roles, agencies, MFA requirement, sources; audited and escaped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from console import auth
from console.services import store_of
from tests.console import HOSTILE, PASSWORD, console_app, form_token, logged_in, login, session_token
from tests.helpers import event

WATER = "Hanoi Water Company"


@pytest.fixture(autouse=True)
def _fast_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    # scrypt costs ~0.3 s per hash on the shared test machine; these tests are not about the hash
    monkeypatch.setattr(auth, "HASH_METHOD", "pbkdf2:sha256:1000")



@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    assets = tmp_path / "assets.json"
    register = [
        {"id": "pump-1", "name": "Yen Phu pumping station PLC", "agency": WATER, "sector": "water", "domain": "OT",
         "security_level": 4, "ips": ["10.30.1.10"]},
        {"id": "cam-9", "name": f"camera {HOSTILE}", "agency": f"Traffic {HOSTILE}", "sector": "transport",
         "domain": "IoT", "security_level": 2},
    ]  # fmt: skip
    assets.write_text(json.dumps(register), encoding="utf-8")
    with console_app(tmp_path, ASSETS_PATH=str(assets)) as app:
        yield app


@pytest.fixture
def boss(app: Flask) -> FlaskClient:
    return logged_in(app, "boss", ("admin",))


def test_admin_creates_a_scoped_user_who_must_change_the_password(app: Flask, boss: FlaskClient) -> None:
    page = boss.get("/admin/users").get_data(as_text=True)
    response = boss.post("/admin/users", data={"csrf_token": form_token(page), "username": "resp.water",
                                               "password": PASSWORD, "roles": ["responder"], "agencies": WATER + "\n",
                                               "mfa_required": "on"})  # fmt: skip
    assert response.headers["Location"] == "/admin/users/resp.water"
    user = store_of(app).get_user("resp.water")
    assert (user.roles, user.agencies, user.mfa_required, user.must_change_password) == (
        ("responder",), (WATER,), True, True)
    entry = store_of(app).audit_entries()[0]
    assert (entry.actor, entry.action, entry.object) == ("boss", "user.create", "user:resp.water")
    assert entry.details["agencies"] == [WATER]


def test_admin_changes_roles_and_disables(app: Flask, boss: FlaskClient) -> None:
    logged_in(app, "ops", ("analyst",))
    page = boss.get("/admin/users/ops").get_data(as_text=True)
    boss.post("/admin/users/ops", data={"csrf_token": form_token(page), "roles": ["analyst", "engineer"],
                                        "agencies": "", "disabled": "on"})  # fmt: skip
    user = store_of(app).get_user("ops")
    assert user.roles == ("analyst", "engineer") and user.disabled
    entry = store_of(app).audit_entries()[0]
    assert entry.action == "user.update" and entry.details == {"roles": ["analyst", "engineer"], "disabled": True}
    assert login(app.test_client(), "ops").status_code == 401


def test_an_admin_cannot_lock_themself_out(app: Flask, boss: FlaskClient) -> None:
    csrf = {"X-CSRF-Token": session_token(boss)}
    response = boss.patch("/api/v1/admin/users/boss", json={"roles": ["analyst"]}, headers=csrf)
    assert response.status_code == 400
    assert boss.patch("/api/v1/admin/users/boss", json={"disabled": True}, headers=csrf).status_code == 400
    assert store_of(app).get_user("boss").roles == ("admin",)


def test_admin_api_round_trip(app: Flask, boss: FlaskClient) -> None:
    csrf = {"X-CSRF-Token": session_token(boss)}
    made = boss.post("/api/v1/admin/users", json={"username": "insp", "password": PASSWORD, "roles": ["inspector"],
                                                   "agencies": [WATER]}, headers=csrf)  # fmt: skip
    assert made.status_code == 201
    body = made.get_json()["user"]
    assert body["agencies"] == [WATER] and "password_hash" not in body and "totp_secret" not in body
    changed = boss.patch("/api/v1/admin/users/insp", json={"mfa_required": True}, headers=csrf).get_json()["user"]
    assert changed["mfa_required"] is True
    assert boss.patch("/api/v1/admin/users/insp", json={"password_hash": "x"}, headers=csrf).status_code == 400
    assert boss.patch("/api/v1/admin/users/insp", json={"roles": ["root"]}, headers=csrf).status_code == 400
    assert boss.get("/api/v1/admin/users/nobody").status_code == 404
    names = [u["username"] for u in boss.get("/api/v1/admin/users").get_json()["users"]]
    assert names == ["boss", "insp"]


def test_admins_cannot_give_an_admin_agencies(app: Flask, boss: FlaskClient) -> None:
    csrf = {"X-CSRF-Token": session_token(boss)}
    response = boss.post("/api/v1/admin/users", json={"username": "x", "password": PASSWORD, "roles": ["admin"],
                                                       "agencies": [WATER]}, headers=csrf)  # fmt: skip
    assert response.status_code == 400
    assert "admin sees every agency" in response.get_json()["error"]["message"]


def test_require_mfa_for_a_role(app: Flask, boss: FlaskClient) -> None:
    logged_in(app, "ops", ("analyst",))
    logged_in(app, "eng", ("engineer",))
    page = boss.get("/admin/users").get_data(as_text=True)
    boss.post("/admin/mfa-role", data={"csrf_token": form_token(page), "role": "analyst"})
    store = store_of(app)
    assert store.get_user("ops").mfa_required and not store.get_user("eng").mfa_required
    assert store.audit_entries()[0].details == {"users": ["ops"]}
    client = app.test_client()
    assert login(client, "ops").headers["Location"] == "/account/mfa"


def test_agencies_come_from_the_register_and_users_and_are_escaped(app: Flask, boss: FlaskClient) -> None:
    csrf = {"X-CSRF-Token": session_token(boss)}
    boss.post("/api/v1/admin/users", json={"username": "metro", "password": PASSWORD, "roles": ["responder"],
                                            "agencies": ["Hanoi Metro"]}, headers=csrf)  # fmt: skip
    rows = boss.get("/api/v1/admin/agencies").get_json()["agencies"]
    by_name = {row["name"]: row for row in rows}
    assert by_name[WATER]["assets"] == 1 and by_name[WATER]["in_register"]
    assert by_name["Hanoi Metro"] == {"name": "Hanoi Metro", "assets": 0, "users": ["metro"], "in_register": False}
    page = boss.get("/admin/agencies").get_data(as_text=True)
    assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_sources_page_shows_activity_per_dataset(app: Flask, boss: FlaskClient) -> None:
    from datetime import UTC, datetime, timedelta

    recent = datetime.now(UTC) - timedelta(minutes=5)
    offset = (recent - event(0).timestamp).total_seconds()
    store_of(app).put_events([event(offset, {"event.dataset": f"ot.modbus{HOSTILE}", "message": "x"})])
    body = boss.get("/api/v1/admin/sources").get_json()
    assert [s["dataset"] for s in body["sources"]] == [f"ot.modbus{HOSTILE}"]
    page = boss.get("/admin/sources").get_data(as_text=True)
    assert HOSTILE not in page and "ot.modbus" in page


def test_admin_pages_need_the_admin_role(app: Flask, boss: FlaskClient) -> None:
    others = [logged_in(app, f"u-{role}", (role,)) for role in ("analyst", "engineer", "responder", "compliance",
                                                                 "inspector")]  # fmt: skip
    for path in ("/admin/users", "/admin/agencies", "/admin/tokens", "/admin/sources", "/admin/users/boss",
                 "/api/v1/admin/users", "/api/v1/admin/sources"):
        assert boss.get(path).status_code == 200, path
        assert [client.get(path).status_code for client in others] == [403] * 5, path


def test_admin_token_pages(app: Flask, boss: FlaskClient) -> None:
    logged_in(app, "ops", ("analyst",))
    page = boss.get("/admin/tokens").get_data(as_text=True)
    created = boss.post("/admin/tokens", data={"csrf_token": form_token(page), "owner": "ops", "name": "bridge",
                                               "roles": ["analyst"], "days": "5"})  # fmt: skip
    assert created.status_code == 200 and 'id="new-token">cst_' in created.get_data(as_text=True)
    token = store_of(app).list_api_tokens("ops")[0]
    refused = boss.post("/admin/tokens", data={"csrf_token": form_token(page), "owner": "ops", "name": "too much",
                                               "roles": ["admin"], "days": "5"})  # fmt: skip
    assert refused.status_code == 302 and len(store_of(app).list_api_tokens()) == 1
    boss.post(f"/admin/tokens/{token.id}/revoke", data={"csrf_token": form_token(page)})
    assert store_of(app).get_api_token(token.id).revoked is not None
    assert [e.action for e in store_of(app).audit_entries()[:2]] == ["token.revoke", "token.create"]


def test_the_admin_fragment_documents_routes_that_exist(app: Flask) -> None:
    from importlib import resources

    import yaml

    fragment = yaml.safe_load(resources.files("console.openapi").joinpath("admin.yml").read_text("utf-8"))
    routes = {(rule.rule, method) for rule in app.url_map.iter_rules() for method in rule.methods or ()}
    for path, item in fragment["paths"].items():
        flask_path = "/api/v1" + path.replace("{", "<").replace("}", ">")
        for method in set(item) - {"parameters"}:
            assert (flask_path, method.upper()) in routes, f"{method.upper()} {path} is documented but not served"
