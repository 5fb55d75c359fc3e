"""The web pages of the console: parse the request, call a service, render a template.

Every page needs a login except the login page and ``/healthz``.  Forms that
change something are POSTs carrying the session's CSRF token; after a change
the browser is redirected (post/redirect/get) with a flash message.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from console import auth, charts, services
from console.auth import WRITE_ROLES, login_required, require_user, roles_required
from console.services import InvalidInput, current_store
from detections import triage
from store.errors import NotFound
from store.event import format_ts, utc
from store.filters import ENTITY_FILTER_FIELDS, INCIDENT_SORTS, EventPage, IncidentFilter
from store.models import IncidentStatus, Severity
from store.query import term as query_term

web = Blueprint("web", __name__)

PAGE_SIZE = 100
EXPORT_LIMIT = 10_000


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


@web.app_template_filter("pivot")
def pivot(value: Any, name: str) -> str:
    """The event query matching this field value (links from any value to the event search)."""
    return query_term(name, value)


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
    # the TOTP step when MFA is on; else logged in (then MFA set-up or password change when due)
    return auth.after_password(user, _safe_next(target))


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


def _queue_filter() -> IncidentFilter:
    return services.incident_filter(
        request.args, services.current_scope(), services.sla_targets(current_app.config), services.now_utc(),
        me=require_user().username,
    )


@web.get("/incidents")
@login_required
def incidents() -> ResponseReturnValue:
    flt = _queue_filter()
    offset = services.parse_int(request.args.get("offset"), "offset", 0, services.MAX_OFFSET)
    limit = services.QUEUE_PAGE_SIZE
    page = services.incident_queue(current_store(), flt, limit=limit, offset=offset)
    targets = services.sla_targets(current_app.config)
    now = services.now_utc()
    # repeated arguments (status=new&status=triage) stay lists, so the pager keeps every filter
    args = {k: [v for v in vs if v] for k, vs in request.args.lists() if k != "offset" and any(vs)}
    return render_template(
        "incidents.html",
        page=page,
        flt=flt,
        args=args,
        statuses=list(IncidentStatus),
        severities=sorted(Severity, reverse=True),
        sorts=list(INCIDENT_SORTS),
        sla={i.id: services.sla_state(i, targets, now) for i in page.items},
        deadline={i.id: services.sla_deadline(i, targets) for i in page.items},
        limit=limit,
        offset=offset,
    )


@web.get("/incidents/<incident_id>")
@login_required
def incident(incident_id: str) -> ResponseReturnValue:
    services.visible_incident(current_store(), incident_id)
    detail = services.incident_detail(current_store(), incident_id, attack=services.current_attack())
    targets = services.sla_targets(current_app.config)
    return render_template(
        "incident.html",
        d=detail,
        statuses=list(IncidentStatus),
        verdicts=triage.VERDICTS,
        users=[u.username for u in current_store().list_users()],
        sla=services.sla_state(detail.incident, targets, services.now_utc()),
        deadline=services.sla_deadline(detail.incident, targets),
        entity_fields=ENTITY_FILTER_FIELDS,
    )


def _change(incident_id: str, what: str, change: Callable[[str], str], anchor: str | None = None
            ) -> ResponseReturnValue:
    """Run one triage change for the logged-in user; flash the outcome; back to the incident (post/redirect/get)."""
    user = require_user()
    services.visible_incident(current_store(), incident_id)
    try:
        message = change(user.username)
    except InvalidInput as exc:
        flash(f"{what} failed: {exc.reason}.", "error")
    else:
        flash(message, "success")
    return redirect(url_for("web.incident", incident_id=incident_id, _anchor=anchor))


@web.post("/incidents/<incident_id>/comments")
@roles_required(*WRITE_ROLES)
def comment(incident_id: str) -> ResponseReturnValue:
    def change(actor: str) -> str:
        services.add_comment(current_store(), incident_id, request.form.get("text", ""), actor)
        return "Comment added."

    return _change(incident_id, "Comment", change, "timeline")


@web.post("/incidents/<incident_id>/status")
@roles_required(*WRITE_ROLES)
def status(incident_id: str) -> ResponseReturnValue:
    def change(actor: str) -> str:
        entry = services.change_status(current_store(), incident_id, request.form.get("status", ""), actor)
        return "The incident already has that status." if entry is None else f"Status set to {entry.data['value']}."

    return _change(incident_id, "Status change", change)


@web.post("/incidents/<incident_id>/assign")
@roles_required(*WRITE_ROLES)
def assign(incident_id: str) -> ResponseReturnValue:
    def change(actor: str) -> str:
        wanted = request.form.get("assignee", "")
        entry = services.assign(current_store(), incident_id, actor if wanted == "me" else wanted, actor)
        if entry is None:
            return "The assignee is unchanged."
        return f"Assigned to {entry.data['value']}." if entry.data["value"] else "Unassigned."

    return _change(incident_id, "Assignment", change)


@web.post("/incidents/<incident_id>/verdict")
@roles_required(*WRITE_ROLES)
def verdict(incident_id: str) -> ResponseReturnValue:
    def change(actor: str) -> str:
        entry = services.set_verdict(current_store(), incident_id, request.form.get("verdict", ""),
                                     request.form.get("reason", ""), actor)  # fmt: skip
        return f"Verdict recorded: {entry.data['value'].replace('_', ' ')}."

    return _change(incident_id, "Verdict", change)


@web.post("/incidents/<incident_id>/escalate")
@roles_required(*WRITE_ROLES)
def escalate(incident_id: str) -> ResponseReturnValue:
    def change(actor: str) -> str:
        done = services.escalate(current_store(), incident_id, request.form.get("target", ""),
                                 request.form.get("reason", ""), actor)  # fmt: skip
        if done.delivered:
            return f"Escalated (reference {done.reference})."
        return "Escalation recorded; no escalation action is configured, so notify the target by hand."

    return _change(incident_id, "Escalation", change, "timeline")


@web.post("/incidents/<incident_id>/merge")
@roles_required(*WRITE_ROLES)
def merge(incident_id: str) -> ResponseReturnValue:
    user = require_user()

    def change(actor: str) -> str:
        sources = services.split_ids(request.form.get("incidents", ""))
        services.merge(current_store(), incident_id, sources, actor,
                       visible=lambda i: auth.check_incident_scope(user, i))  # fmt: skip
        return f"Merged {len(sources)} incident(s) into this one."

    return _change(incident_id, "Merge", change)


@web.post("/incidents/<incident_id>/split")
@roles_required(*WRITE_ROLES)
def split(incident_id: str) -> ResponseReturnValue:
    user = require_user()
    services.visible_incident(current_store(), incident_id)
    try:
        created = services.split(current_store(), incident_id, request.form.getlist("alert_id"), user.username,
                                 request.form.get("title") or None)  # fmt: skip
    except InvalidInput as exc:
        flash(f"Split failed: {exc.reason}.", "error")
        return redirect(url_for("web.incident", incident_id=incident_id, _anchor="alerts"))
    flash(f"The chosen alerts now form incident {created.id}.", "success")
    return redirect(url_for("web.incident", incident_id=created.id))


# events ----------------------------------------------------------------------------------------------
@web.get("/events")
@login_required
def events() -> ResponseReturnValue:
    query = request.args.get("q", "")
    offset = services.parse_int(request.args.get("offset"), "offset", 0, services.MAX_OFFSET)
    start, end, preset = services.time_range(request.args, services.now_utc())
    error = None
    try:
        page = services.event_search(current_store(), query, start, end, limit=PAGE_SIZE, offset=offset,
                                     scope=services.current_scope())  # fmt: skip
    except InvalidInput as exc:
        error = exc.reason
        page = EventPage((), 0)
    columns = services.columns_for(query, page.items) if error is None else []
    args = {k: v for k, v in request.args.items() if k != "offset" and v}
    chart = None
    if page.histogram:
        step = page.interval or timedelta()
        bars = []
        for b in page.histogram:
            narrowed: dict[str, Any] = {k: v for k, v in args.items() if k != "range"}
            narrowed.update(start=format_ts(b.start), end=format_ts(min(b.start + step, end)))
            tip = f"{b.start.strftime('%Y-%m-%d %H:%M:%S')} UTC: {b.count:,} events"
            bars.append(charts.Bar(b.start.strftime("%m-%d %H:%M"), b.count, tip, url_for("web.events", **narrowed)))
        chart = charts.bar_chart(f"Events per {step}", bars, css="histogram",
                                 label_every=max(len(bars) // 8, 1))  # fmt: skip
    return render_template(
        "events.html", page=page, q=query, error=error, columns=columns, chart=chart, args=args, preset=preset,
        ranges=list(services.RANGES), start=start, end=end, limit=PAGE_SIZE, offset=offset,
        pivot=services.pivot_query,
    )  # fmt: skip


@web.get("/events/export.<fmt>")
@login_required
def export_events(fmt: str) -> ResponseReturnValue:
    if fmt not in ("csv", "json"):
        raise InvalidInput("format", "csv or json")
    query = request.args.get("q", "")
    start, end, _ = services.time_range(request.args, services.now_utc())
    limit = services.parse_int(request.args.get("limit"), "limit", EXPORT_LIMIT, EXPORT_LIMIT)
    page = services.event_search(current_store(), query, start, end, limit=limit, histogram=False,
                                 scope=services.current_scope())  # fmt: skip
    current_store().audit(require_user().username, "events.export", "events",
                          {"q": query, "start": format_ts(start), "end": format_ts(end), "format": fmt,
                           "count": len(page.items)})  # fmt: skip
    name = f"citysoc-events-{start.strftime('%Y%m%dT%H%M%S')}.{fmt}"
    disposition = {"Content-Disposition": f'attachment; filename="{name}"', "X-Content-Type-Options": "nosniff"}
    if fmt == "csv":
        body = services.events_csv(page.items, services.columns_for(query, page.items))
        return Response(body, mimetype="text/csv", headers=disposition)
    return Response(json.dumps([e.to_document() for e in page.items], ensure_ascii=False),
                    mimetype="application/json", headers=disposition)  # fmt: skip


# dashboards --------------------------------------------------------------------------------------------
def _dashboard() -> services.Dashboard:
    days = services.parse_int(request.args.get("days"), "days", 30, 365)
    return services.dashboard(current_store(), services.now_utc(), days, services.current_scope(),
                              services.sla_targets(current_app.config))  # fmt: skip


def _charts(board: services.Dashboard) -> dict[str, Any]:
    return charts.dashboard_charts(
        board,
        sector_href=lambda name: url_for("web.incidents", sector=name) if not name.startswith("(") else None,
        severity_href=lambda label: url_for("web.incidents", severity=label),
    )


@web.get("/dashboards")
@login_required
def dashboards() -> ResponseReturnValue:
    board = _dashboard()
    return render_template("dashboards.html", b=board, charts=_charts(board),
                           days=request.args.get("days", "30"))  # fmt: skip


@web.get("/dashboards/chart/<name>.svg")
@login_required
def dashboard_chart(name: str) -> ResponseReturnValue:
    drawn = _charts(_dashboard())
    if name not in drawn:
        raise NotFound("chart", name)
    return Response(str(drawn[name]), mimetype="image/svg+xml")


# dead letters -------------------------------------------------------------------------------------------
@web.get("/dead-letters")
@login_required
def dead_letters() -> ResponseReturnValue:
    limit, offset = _page()
    page = services.dead_letters(current_store(), limit=limit, offset=offset)
    return render_template("dead_letters.html", page=page, limit=limit, offset=offset)
