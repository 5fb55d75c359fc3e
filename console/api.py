"""The REST API under ``/api/v1``: JSON in, JSON out, the same services as the web pages.

Authentication is the console session for now, so every non-GET call must
send the session's CSRF token in the ``X-CSRF-Token`` header (``GET /me``
returns it).  Errors are ``{"error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from console import services
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
def page_args() -> tuple[int, int]:
    limit = services.parse_int(request.args.get("limit"), "limit", 100, services.MAX_PAGE_SIZE)
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


@bp.get("/incidents")
@login_required
def list_incidents() -> Response:
    limit, offset = page_args()
    incidents = services.list_incidents(current_store(), request.args.get("status"), limit=limit, offset=offset)
    return jsonify({"incidents": [incident_json(i) for i in incidents], "limit": limit, "offset": offset})


@bp.get("/incidents/<incident_id>")
@login_required
def get_incident(incident_id: str) -> Response:
    detail = services.incident_detail(current_store(), incident_id, attack=services.current_attack())
    return jsonify(
        {
            "incident": incident_json(detail.incident),
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
        }
    )


@bp.post("/incidents/<incident_id>/comments")
@roles_required(*WRITE_ROLES)
def add_comment(incident_id: str) -> tuple[Response, int]:
    user = require_user()
    entry = services.add_comment(current_store(), incident_id, str_field(json_body(), "text"), user.username)
    return jsonify({"entry": timeline_json(entry)}), 201


@bp.post("/incidents/<incident_id>/status")
@roles_required(*WRITE_ROLES)
def change_status(incident_id: str) -> Response:
    user = require_user()
    entry = services.change_status(current_store(), incident_id, str_field(json_body(), "status"), user.username)
    incident = current_store().get_incident(incident_id)
    return jsonify({"incident": incident_json(incident), "entry": timeline_json(entry) if entry else None})


@bp.get("/events")
@login_required
def search_events() -> Response:
    limit, offset = page_args()
    events = services.search_events(current_store(), request.args.get("q"), limit=limit, offset=offset)
    return jsonify({"events": [e.to_document() for e in events], "limit": limit, "offset": offset})


@bp.get("/dead-letters")
@login_required
def dead_letters() -> Response:
    limit, offset = page_args()
    page = services.dead_letters(current_store(), limit=limit, offset=offset)
    return jsonify(
        {"dead_letters": [dead_letter_json(d) for d in page.items], "total": page.total, "limit": limit,
         "offset": offset}
    )
