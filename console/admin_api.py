"""The admin and token part of the REST API (``/api/v1/admin/...``, ``/api/v1/tokens``); see openapi/admin.yml.

The same library calls as the admin pages.  Tokens are created only in a
console session (cookie + CSRF), never with another token, so a leaked token
cannot mint longer-lived ones.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from console import admin, tokens
from console.api import json_body, str_field
from console.auth import login_required, require_user, roles_required, session_only
from console.services import InvalidInput, current_store
from store.models import ApiToken

admin_api = Blueprint("admin_api", __name__)


def _list_field(body: dict[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidInput(name, "a list of strings is required")
    return value


def _bool_field(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise InvalidInput(name, "true or false is required")
    return value


def token_json(token: ApiToken) -> dict[str, Any]:
    def ts(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {"id": token.id, "name": token.name, "owner": token.owner, "roles": list(token.roles),
            "agencies": list(token.agencies), "created": ts(token.created), "expires": ts(token.expires),
            "last_used": ts(token.last_used), "revoked": ts(token.revoked)}  # fmt: skip


# users ------------------------------------------------------------------------------------------
@admin_api.get("/admin/users")
@roles_required("admin")
def list_users() -> Response:
    return jsonify({"users": [admin.user_json(u) for u in current_store().list_users()]})


@admin_api.post("/admin/users")
@roles_required("admin")
def create_user() -> tuple[Response, int]:
    body = json_body()
    user = admin.add_user(current_store(), require_user(), str_field(body, "username"), str_field(body, "password"),
                          _list_field(body, "roles") or [], _list_field(body, "agencies") or [],
                          mfa_required=bool(_bool_field(body, "mfa_required")))  # fmt: skip
    return jsonify({"user": admin.user_json(user)}), 201


@admin_api.get("/admin/users/<username>")
@roles_required("admin")
def get_user(username: str) -> Response:
    return jsonify({"user": admin.user_json(admin.get_user(current_store(), username))})


@admin_api.patch("/admin/users/<username>")
@roles_required("admin")
def update_user(username: str) -> Response:
    body = json_body()
    unknown = sorted(set(body) - {"roles", "agencies", "mfa_required", "disabled"})
    if unknown:
        raise InvalidInput(unknown[0], "unknown field; give roles, agencies, mfa_required or disabled")
    user = admin.update_user(current_store(), require_user(), username, roles=_list_field(body, "roles"),
                             agencies=_list_field(body, "agencies"), mfa_required=_bool_field(body, "mfa_required"),
                             disabled=_bool_field(body, "disabled"))  # fmt: skip
    return jsonify({"user": admin.user_json(user)})


@admin_api.post("/admin/users/<username>/mfa-reset")
@roles_required("admin")
def reset_mfa(username: str) -> Response:
    return jsonify({"user": admin.user_json(admin.reset_mfa(current_store(), require_user(), username))})


@admin_api.post("/admin/users/<username>/unlock")
@roles_required("admin")
def unlock(username: str) -> Response:
    return jsonify({"user": admin.user_json(admin.unlock_user(current_store(), require_user(), username))})


# agencies and sources ------------------------------------------------------------------------------
@admin_api.get("/admin/agencies")
@roles_required("admin")
def agencies() -> Response:
    register, problem = admin.load_register(admin.register_path(current_app.config.get("ASSETS_PATH")))
    rows = admin.agencies(current_store(), register)
    return jsonify({"agencies": [{"name": a.name, "assets": a.assets, "users": list(a.users),
                                  "in_register": a.in_register} for a in rows],
                    "register_problem": problem})  # fmt: skip


@admin_api.get("/admin/sources")
@roles_required("admin")
def sources() -> Response:
    view = admin.source_health(current_store())
    return jsonify({
        "since": view.since.isoformat(),
        "sources": [{"dataset": s.dataset, "count": s.count, "last_seen": s.last_seen.isoformat(),
                     "quiet_seconds": s.quiet_for.total_seconds()} for s in view.sources],
        "silent_alerts": [{"id": a.id, "created": a.created.isoformat(), "description": a.description,
                           "source": a.entities.get("service.name"), "incident_id": a.incident_id}
                          for a in view.silent_alerts],
    })  # fmt: skip


# tokens ---------------------------------------------------------------------------------------------
@admin_api.get("/tokens")
@login_required
def list_tokens() -> Response:
    return jsonify({"tokens": [token_json(t) for t in tokens.visible_tokens(current_store(), require_user())]})


@admin_api.post("/tokens")
@login_required
@session_only
def create_token() -> tuple[Response, int]:
    actor = require_user()
    body = json_body()
    store = current_store()
    owner_name = body.get("owner", actor.username)
    if not isinstance(owner_name, str):
        raise InvalidInput("owner", "a user name is required")
    owner = admin.get_user(store, owner_name)
    days = body.get("days", tokens.DEFAULT_DAYS)
    new = tokens.create_token(store, actor, owner, str_field(body, "name"), _list_field(body, "roles") or [],
                              _list_field(body, "agencies") or [], days)  # fmt: skip
    return jsonify({"token": token_json(new.token), "secret": new.secret}), 201


@admin_api.delete("/tokens/<token_id>")
@login_required
def revoke_token(token_id: str) -> Response:
    return jsonify({"token": token_json(tokens.revoke_token(current_store(), require_user(), token_id))})

