"""The web pages of the console: parse the request, call a service, render a template.

Every page needs a login except the login page and ``/healthz``.  Forms that
change something are POSTs carrying the session's CSRF token; after a change
the browser is redirected (post/redirect/get) with a flash message.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from console import auth, services
from console.auth import WRITE_ROLES, login_required, require_user, roles_required
from console.services import InvalidInput, current_store
from store.event import utc
from store.models import IncidentStatus

web = Blueprint("web", __name__)

PAGE_SIZE = 100


# template filters ------------------------------------------------------------------------
@web.app_template_filter("ts")
def format_time(value: datetime | None) -> str:
    return utc(value).strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "–"


@web.app_template_filter("iso")
def format_iso(value: datetime) -> str:
    return utc(value).isoformat()


@web.app_template_filter("duration")
def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    total = round(seconds)
    sign = "-" if total < 0 else ""
    hours, rest = divmod(abs(total), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{sign}{minutes}m {secs:02d}s"
    return f"{sign}{secs}s"


@web.app_template_filter("pretty")
def format_json(value: Any) -> str:
    """Indented JSON as plain text (escaped by the template like any other text)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@web.app_template_filter("key_fields")
def event_key_fields(event: Any) -> list[tuple[str, Any]]:
    return services.key_fields(event)


@web.app_template_filter("attack_ids")
def alert_attack_ids(tags: Any) -> list[str]:
    return services.attack_ids(tags)


def _safe_next(target: str | None) -> str:
    """Only redirect to a path on this site after login (no open redirect)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return url_for("web.incidents")


def _page() -> tuple[int, int]:
    offset = services.parse_int(request.args.get("offset"), "offset", 0, services.MAX_OFFSET)
    return PAGE_SIZE, offset


# health and login ---------------------------------------------------------------------------
@web.get("/healthz")
def healthz() -> ResponseReturnValue:
    ok, body = services.health(current_store())
    return jsonify(body), 200 if ok else 503


@web.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    target = request.values.get("next")
    if request.method == "GET":
        if auth.current_user() is not None:
            return redirect(_safe_next(target))
        return render_template("login.html", next=target or "")
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    user = auth.attempt_login(current_store(), username, password, request.remote_addr)
    if user is None:
        flash("Wrong user name or password.", "error")
        return render_template("login.html", next=target or "", username=username), 401
    auth.login_user(user)
    if user.must_change_password:
        return redirect(url_for("web.change_password"))
    return redirect(_safe_next(target))


@web.post("/logout")
def logout() -> ResponseReturnValue:
    auth.logout_user()
    flash("You have logged out.", "info")
    return redirect(url_for("web.login"))


@web.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password() -> ResponseReturnValue:
    user = require_user()
    if request.method == "GET":
        return render_template("password.html")
    try:
        changed = auth.change_password(
            current_store(),
            user.username,
            request.form.get("current_password", ""),
            request.form.get("new_password", ""),
            request.form.get("confirm_password", ""),
        )
    except InvalidInput as exc:
        flash(f"Password not changed: {exc.reason}.", "error")
        return render_template("password.html"), 400
    auth.login_user(changed)  # the new password hash ends other sessions; keep this one
    flash("Your password has been changed.", "success")
    return redirect(url_for("web.incidents"))


# incidents ------------------------------------------------------------------------------------
@web.get("/")
@login_required
def index() -> ResponseReturnValue:
    return redirect(url_for("web.incidents"))


@web.get("/incidents")
@login_required
def incidents() -> ResponseReturnValue:
    status = request.args.get("status") or None
    limit, offset = _page()
    items = services.list_incidents(current_store(), status, limit=limit, offset=offset)
    return render_template(
        "incidents.html",
        incidents=items,
        status=status,
        statuses=list(IncidentStatus),
        limit=limit,
        offset=offset,
    )


@web.get("/incidents/<incident_id>")
@login_required
def incident(incident_id: str) -> ResponseReturnValue:
    detail = services.incident_detail(current_store(), incident_id, attack=services.current_attack())
    return render_template("incident.html", d=detail, statuses=list(IncidentStatus))


@web.post("/incidents/<incident_id>/comments")
@roles_required(*WRITE_ROLES)
def comment(incident_id: str) -> ResponseReturnValue:
    user = require_user()
    try:
        services.add_comment(current_store(), incident_id, request.form.get("text", ""), user.username)
    except InvalidInput as exc:
        flash(f"Comment not added: {exc.reason}.", "error")
    else:
        flash("Comment added.", "success")
    return redirect(url_for("web.incident", incident_id=incident_id, _anchor="timeline"))


@web.post("/incidents/<incident_id>/status")
@roles_required(*WRITE_ROLES)
def status(incident_id: str) -> ResponseReturnValue:
    user = require_user()
    try:
        entry = services.change_status(current_store(), incident_id, request.form.get("status", ""), user.username)
    except InvalidInput as exc:
        flash(f"Status not changed: {exc.reason}.", "error")
    else:
        if entry is None:
            flash("The incident already has that status.", "info")
        else:
            flash(f"Status set to {entry.data['value']}.", "success")
    return redirect(url_for("web.incident", incident_id=incident_id))


# events and dead letters -------------------------------------------------------------------------
@web.get("/events")
@login_required
def events() -> ResponseReturnValue:
    query = request.args.get("q", "")
    limit, offset = _page()
    found = services.search_events(current_store(), query, limit=limit, offset=offset)
    return render_template("events.html", events=found, q=query, limit=limit, offset=offset)


@web.get("/dead-letters")
@login_required
def dead_letters() -> ResponseReturnValue:
    limit, offset = _page()
    page = services.dead_letters(current_store(), limit=limit, offset=offset)
    return render_template("dead_letters.html", page=page, limit=limit, offset=offset)
