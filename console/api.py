"""The REST API under ``/api/v1``: JSON in, JSON out, the same services as the web pages.

Authentication is an API token (``Authorization: Bearer``) or the console session;
with the session every non-GET call sends its CSRF token in ``X-CSRF-Token``
(``GET /me`` returns it).  Lists are paginated (``limit``, ``offset``, ``total``),
errors are ``{"error": {"code": ..., "message": ...}}``, and every route is in the
OpenAPI document merged from ``console/openapi/*.yml`` (served at ``/openapi.json``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from console import auth, openapi, services
from console.auth import WRITE_ROLES, login_required, require_user, roles_required
from console.security import csrf_token
from console.services import InvalidInput, current_store
from store.event import format_ts
from store.models import Alert, DeadLetter, Incident, PlaybookRun, StepRecord, TimelineEntry

PREFIX = "/api/v1"

bp = Blueprint("api", __name__)


def error_response(status: int, code: str, message: str) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


# request arguments ----------------------------------------------------------------------
def page_args(default_limit: int = 100) -> tuple[int, int]:
    limit = services.parse_int(request.args.get("limit"), "limit", default_limit, services.MAX_PAGE_SIZE)
    offset = services.parse_int(request.args.get("offset"), "offset", 0, services.MAX_OFFSET)
    return limit, offset


def json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput("body", "send a JSON object with Content-Type: application/json")
    return body


def str_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise InvalidInput(name, "a string is required")
    return value


# JSON shapes --------------------------------------------------------------------------------
def _ts(value: Any) -> str | None:
    return format_ts(value) if value is not None else None


def incident_json(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "title": incident.title,
        "severity": incident.severity.label,
        "status": incident.status.value,
        "created": format_ts(incident.created),
        "updated": format_ts(incident.updated),
        "first_event_time": format_ts(incident.first_event_time),
        "last_event_time": format_ts(incident.last_event_time),
        "group_key": incident.group_key,
        "entities": {key: list(values) for key, values in incident.entities.items()},
        "tags": list(incident.tags),
        "alert_count": incident.alert_count,
        "mttd_seconds": incident.mttd_seconds,
        "assignee": incident.assignee,
        "verdict": incident.verdict,
    }


def alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "rule_id": alert.rule_id,
        "rule_title": alert.rule_title,
        "severity": alert.severity.label,
        "created": format_ts(alert.created),
        "event_time": format_ts(alert.event_time),
        "event_ids": list(alert.event_ids),
        "entities": dict(alert.entities),
        "tags": list(alert.tags),
        "attack": services.attack_ids(alert.tags),
        "source": alert.source,
        "description": alert.description,
        "incident_id": alert.incident_id,
    }


def timeline_json(entry: TimelineEntry) -> dict[str, Any]:
    return {
        "incident_id": entry.incident_id,
        "seq": entry.seq,
        "at": format_ts(entry.at),
        "kind": entry.kind,
        "actor": entry.actor,
        "data": dict(entry.data),
    }


def step_json(step: StepRecord) -> dict[str, Any]:
    return {
        "ref": step.ref,
        "action": step.action,
        "status": step.status.value,
        "attempt": step.attempt,
        "started": _ts(step.started),
        "finished": _ts(step.finished),
        "inputs": dict(step.inputs),
        "output": step.output,
        "error": step.error,
    }


def run_json(run: PlaybookRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "playbook": run.playbook,
        "playbook_version": run.playbook_version,
        "incident_id": run.incident_id,
        "status": run.status.value,
        "created": format_ts(run.created),
        "updated": format_ts(run.updated),
        "drill": run.drill,
        "error": run.error,
        "steps": [step_json(step) for step in run.steps],
    }


def dead_letter_json(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "at": format_ts(letter.at),
        "source": letter.source,
        "offset": letter.offset,
        "reason": letter.reason,
        "raw": letter.raw,
    }


# endpoints ------------------------------------------------------------------------------------
@bp.get("/me")
@login_required
def me() -> Response:
    user = require_user()
    return jsonify(
        {
            "username": user.username,
            "roles": list(user.roles),
            "must_change_password": user.must_change_password,
            "csrf_token": csrf_token(),
        }
    )


def _scope() -> tuple[str, ...] | None:
    return services.current_scope()


def _page_json(items: list[dict[str, Any]], total: int, limit: int, offset: int, name: str) -> dict[str, Any]:
    return {name: items, "total": total, "limit": limit, "offset": offset}


@bp.get("/incidents")
@login_required
def list_incidents() -> Response:
    limit, offset = page_args(services.QUEUE_PAGE_SIZE)
    now = services.now_utc()
    targets = services.sla_targets(current_app.config)
    flt = services.incident_filter(request.args, _scope(), targets, now, me=require_user().username)
    page = services.incident_queue(current_store(), flt, limit=limit, offset=offset)
    items = [dict(incident_json(i), sla=services.sla_state(i, targets, now),
                  sla_deadline=format_ts(services.sla_deadline(i, targets))) for i in page.items]  # fmt: skip
    return jsonify(_page_json(items, page.total, limit, offset, "incidents"))


@bp.get("/incidents/<incident_id>")
@login_required
def get_incident(incident_id: str) -> Response:
    services.visible_incident(current_store(), incident_id)
    detail = services.incident_detail(current_store(), incident_id, attack=services.current_attack())
    targets = services.sla_targets(current_app.config)
    return jsonify(
        {
            "incident": dict(incident_json(detail.incident),
                             sla=services.sla_state(detail.incident, targets, services.now_utc()),
                             sla_deadline=format_ts(services.sla_deadline(detail.incident, targets))),
            "alerts": [alert_json(a) for a in detail.alerts],
            "events": [e.to_document() for e in detail.events],
            "events_truncated": detail.events_truncated,
            "timeline": [timeline_json(t) for t in detail.timeline],
            "runs": [run_json(r) for r in detail.runs],
            "attack": [
                {"id": t.id, "name": t.name, "domain": t.domain, "tactics": list(t.tactics),
                 "mitigations": list(t.mitigations), "known": t.known}
                for t in detail.attack
            ],
            "intel": [
                {"event_id": m.event_id, "indicator_ids": list(m.indicator_ids), "name": m.name, "type": m.type,
                 "field": m.field, "value": m.value, "feed": m.feed}
                for m in detail.intel
            ],
        }
    )  # fmt: skip


def _changed(incident_id: str, entry: TimelineEntry | None, status: int = 200) -> tuple[Response, int]:
    incident = current_store().get_incident(incident_id)
    return jsonify({"incident": incident_json(incident), "entry": timeline_json(entry) if entry else None}), status


@bp.post("/incidents/<incident_id>/comments")
@roles_required(*WRITE_ROLES)
def add_comment(incident_id: str) -> tuple[Response, int]:
    user = require_user()
    services.visible_incident(current_store(), incident_id)
    entry = services.add_comment(current_store(), incident_id, str_field(json_body(), "text"), user.username)
    return jsonify({"entry": timeline_json(entry)}), 201


@bp.post("/incidents/<incident_id>/status")
@roles_required(*WRITE_ROLES)
def change_status(incident_id: str) -> tuple[Response, int]:
    user = require_user()
    services.visible_incident(current_store(), incident_id)
    entry = services.change_status(current_store(), incident_id, str_field(json_body(), "status"), user.username)
    return _changed(incident_id, entry)


@bp.post("/incidents/<incident_id>/assign")
@roles_required(*WRITE_ROLES)
def assign(incident_id: str) -> tuple[Response, int]:
    user = require_user()
    services.visible_incident(current_store(), incident_id)
    body = json_body()
    assignee = body.get("assignee")
    if assignee is not None and not isinstance(assignee, str):
        raise InvalidInput("assignee", "a user name, or null to unassign")
    entry = services.assign(current_store(), incident_id, assignee, user.username)
    return _changed(incident_id, entry)


@bp.post("/incidents/<incident_id>/verdict")
@roles_required(*WRITE_ROLES)
def verdict(incident_id: str) -> tuple[Response, int]:
    user = require_user()
    services.visible_incident(current_store(), incident_id)
    body = json_body()
    entry = services.set_verdict(current_store(), incident_id, str_field(body, "verdict"), str_field(body, "reason"),
                                 user.username)  # fmt: skip
    return _changed(incident_id, entry)


@bp.post("/incidents/<incident_id>/escalate")
@roles_required(*WRITE_ROLES)
def escalate(incident_id: str) -> tuple[Response, int]:
    user = require_user()
    services.visible_incident(current_store(), incident_id)
    body = json_body()
    done = services.escalate(current_store(), incident_id, str_field(body, "target"), str_field(body, "reason"),
                             user.username)  # fmt: skip
    response, status = _changed(incident_id, done.entry)
    payload = response.get_json()
    payload.update(delivered=done.delivered, reference=done.reference)
    return jsonify(payload), status


def _str_list(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InvalidInput(name, "a non-empty list of strings is required")
    return [str(v) for v in value]


@bp.post("/incidents/<incident_id>/merge")
@roles_required(*WRITE_ROLES)
def merge(incident_id: str) -> Response:
    user = require_user()
    services.visible_incident(current_store(), incident_id)
    merged = services.merge(current_store(), incident_id, _str_list(json_body(), "incidents"), user.username,
                            visible=lambda i: auth.check_incident_scope(user, i))  # fmt: skip
    return jsonify({"incident": incident_json(merged)})


@bp.post("/incidents/<incident_id>/split")
@roles_required(*WRITE_ROLES)
def split(incident_id: str) -> tuple[Response, int]:
    user = require_user()
    services.visible_incident(current_store(), incident_id)
    body = json_body()
    title = body.get("title")
    if title is not None and not isinstance(title, str):
        raise InvalidInput("title", "a string or null")
    created = services.split(current_store(), incident_id, _str_list(body, "alert_ids"), user.username, title)
    return jsonify({"incident": incident_json(created)}), 201


@bp.get("/events")
@login_required
def search_events() -> Response:
    limit, offset = page_args(100)
    start, end, _ = services.time_range(request.args, services.now_utc())
    histogram = request.args.get("histogram", "true").lower() not in ("false", "0", "no")
    page = services.event_search(current_store(), request.args.get("q"), start, end, limit=limit, offset=offset,
                                 histogram=histogram, scope=_scope())  # fmt: skip
    body = _page_json([e.to_document() for e in page.items], page.total, limit, offset, "events")
    body.update(
        start=format_ts(start),
        end=format_ts(end),
        interval_seconds=page.interval.total_seconds() if page.interval else None,
        histogram=[{"start": format_ts(b.start), "count": b.count} for b in page.histogram],
    )
    return jsonify(body)


@bp.get("/dashboard")
@login_required
def dashboard() -> Response:
    days = services.parse_int(request.args.get("days"), "days", 30, 365)
    targets = services.sla_targets(current_app.config)
    b = services.dashboard(current_store(), services.now_utc(), days, _scope(), targets)
    return jsonify(
        {
            "start": format_ts(b.start),
            "end": format_ts(b.end),
            "interval_seconds": b.interval.total_seconds(),
            "open_incidents": b.open_incidents,
            "sla_breached": b.breached,
            "trend": [
                {"start": format_ts(p.start), "created": p.created, "mttd_seconds": p.mttd_seconds,
                 "closed": p.closed, "mttr_seconds": p.mttr_seconds}
                for p in b.stats.trend
            ],
            "by_sector": [{"sector": k, "count": n} for k, n in b.stats.by_sector],
            "by_status": [{"status": k, "count": n} for k, n in b.stats.by_status],
            "by_severity": [{"severity": k, "count": n} for k, n in b.stats.by_severity],
            "sources": [_source_json(s) for s in b.sources],
        }
    )  # fmt: skip


def _source_json(s: services.SourceHealth) -> dict[str, Any]:
    return {"name": s.name, "events": s.events, "last_seen": _ts(s.last_seen), "state": s.state}


@bp.get("/live")
@login_required
def live() -> Response:
    """The dashboard's live panel (polled by console.js every few seconds)."""
    now = services.now_utc()
    live = services.live_counters(current_store(), now, _scope(), services.sla_targets(current_app.config))
    return jsonify(
        {
            "now": format_ts(now),
            "open_incidents": live.open_incidents,
            "sla_breached": live.breached,
            "new_last_hour": live.new_last_hour,
            "events_last_5m": live.events_last_5m,
            "sources": [_source_json(s) for s in live.sources],
        }
    )


@bp.get("/openapi.json")
@login_required
def openapi_document() -> Response:
    return jsonify(openapi.document())


@bp.get("/dead-letters")
@login_required
def dead_letters() -> Response:
    limit, offset = page_args()
    page = services.dead_letters(current_store(), limit=limit, offset=offset)
    return jsonify(
        {"dead_letters": [dead_letter_json(d) for d in page.items], "total": page.total, "limit": limit,
         "offset": offset}
    )
