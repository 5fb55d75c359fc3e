"""The admin pages under ``/admin``: users, roles and agencies, MFA, API tokens, sources and their health.

Thin shells over :mod:`console.admin` and :mod:`console.tokens`; every page
needs the admin role, every change is a CSRF-protected POST and is audited by
the library function it calls.  The dead-letter browser stays at
``/dead-letters`` (linked from here).
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from console import admin, auth, tokens
from console.auth import require_user, roles_required
from console.services import InvalidInput, current_store
from store.errors import Conflict

admin_web = Blueprint("admin", __name__, url_prefix="/admin")


@admin_web.get("/")
@roles_required("admin")
def index() -> ResponseReturnValue:
    return redirect(url_for("admin.users"))


# users ------------------------------------------------------------------------------------------
@admin_web.get("/users")
@roles_required("admin")
def users() -> ResponseReturnValue:
    return render_template("admin_users.html", users=current_store().list_users(), roles=auth.ROLES)


@admin_web.post("/users")
@roles_required("admin")
def create_user() -> ResponseReturnValue:
    form = request.form
    username = form.get("username", "").strip()
    try:
        admin.add_user(current_store(), require_user(), username, form.get("password", ""), form.getlist("roles"),
                       admin.form_lines(form.get("agencies", "")),
                       mfa_required=form.get("mfa_required") == "on")  # fmt: skip
    except (InvalidInput, Conflict) as exc:
        flash(f"User not created: {exc}.", "error")
        return redirect(url_for("admin.users"))
    flash(f"User {username} created; they must change the password at first login.", "success")
    return redirect(url_for("admin.user", username=username))


@admin_web.get("/users/<username>")
@roles_required("admin")
def user(username: str) -> ResponseReturnValue:
    store = current_store()
    shown = admin.get_user(store, username)
    return render_template("admin_user.html", user=shown, roles=auth.ROLES,
                           tokens=store.list_api_tokens(username))  # fmt: skip


@admin_web.post("/users/<username>")
@roles_required("admin")
def update_user(username: str) -> ResponseReturnValue:
    form = request.form
    try:
        admin.update_user(current_store(), require_user(), username, roles=form.getlist("roles"),
                          agencies=admin.form_lines(form.get("agencies", "")),
                          mfa_required=form.get("mfa_required") == "on",
                          disabled=form.get("disabled") == "on")  # fmt: skip
    except InvalidInput as exc:
        flash(f"User not changed: {exc}.", "error")
    else:
        flash(f"User {username} saved.", "success")
    return redirect(url_for("admin.user", username=username))


@admin_web.post("/users/<username>/mfa-reset")
@roles_required("admin")
def reset_mfa(username: str) -> ResponseReturnValue:
    admin.reset_mfa(current_store(), require_user(), username)
    flash(f"Two-factor authentication of {username} reset; they enrol again at the next login if required.", "success")
    return redirect(url_for("admin.user", username=username))


@admin_web.post("/users/<username>/unlock")
@roles_required("admin")
def unlock(username: str) -> ResponseReturnValue:
    admin.unlock_user(current_store(), require_user(), username)
    flash(f"User {username} unlocked.", "success")
    return redirect(url_for("admin.user", username=username))


@admin_web.post("/mfa-role")
@roles_required("admin")
def require_mfa_for_role() -> ResponseReturnValue:
    role = request.form.get("role", "")
    try:
        changed = admin.require_mfa_for_role(current_store(), require_user(), role)
    except InvalidInput as exc:
        flash(f"Nothing changed: {exc}.", "error")
    else:
        flash(f"MFA now required for {len(changed)} more user(s) with the role {role}.", "success")
    return redirect(url_for("admin.users"))


# agencies -----------------------------------------------------------------------------------------
@admin_web.get("/agencies")
@roles_required("admin")
def agencies() -> ResponseReturnValue:
    register, problem = admin.load_register(admin.register_path(current_app.config.get("ASSETS_PATH")))
    return render_template("admin_agencies.html", agencies=admin.agencies(current_store(), register),
                           problem=problem)  # fmt: skip


# API tokens ---------------------------------------------------------------------------------------
def _tokens_page(created: tokens.NewToken | None = None) -> ResponseReturnValue:
    store = current_store()
    return render_template("admin_tokens.html", tokens=store.list_api_tokens(), admin_view=True, roles=auth.ROLES,
                           users=[u.username for u in store.list_users()], created=created)  # fmt: skip


@admin_web.get("/tokens")
@roles_required("admin")
def api_tokens() -> ResponseReturnValue:
    return _tokens_page()


@admin_web.post("/tokens")
@roles_required("admin")
def create_token() -> ResponseReturnValue:
    store = current_store()
    form = request.form
    try:
        owner = admin.get_user(store, form.get("owner", ""))
        new = tokens.create_token(store, require_user(), owner, form.get("name", "").strip(), form.getlist("roles"),
                                  admin.form_lines(form.get("agencies", "")),
                                  admin.form_days(form.get("days")))  # fmt: skip
    except InvalidInput as exc:
        flash(f"Token not created: {exc}.", "error")
        return redirect(url_for("admin.api_tokens"))
    return _tokens_page(new)


@admin_web.post("/tokens/<token_id>/revoke")
@roles_required("admin")
def revoke_token(token_id: str) -> ResponseReturnValue:
    tokens.revoke_token(current_store(), require_user(), token_id)
    flash(f"Token {token_id} revoked.", "success")
    return redirect(url_for("admin.api_tokens"))


# sources ------------------------------------------------------------------------------------------
@admin_web.get("/sources")
@roles_required("admin")
def sources() -> ResponseReturnValue:
    return render_template("admin_sources.html", health=admin.source_health(current_store()))
