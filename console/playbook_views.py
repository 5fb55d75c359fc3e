"""Responder pages and ``/api/v1`` endpoints: playbook runs with live step status, approvals inbox, drills.

Thin shells over the playbooks package: :func:`playbooks.approvals.pending_approvals` and
:func:`playbooks.approvals.decide` for the inbox, :func:`playbooks.drill.run_drill` for the drill
launcher.  Runs are read by responders, analysts and inspectors; approvals are decided by whoever
holds a role the step requires (the playbooks package checks it, and records the decision in the
audit log); drills are launched by responders.  Every list is cut to the user's agencies: a run is
visible when its incident is (a run without an incident only to the city SOC).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from console import services
from console.api import json_body, run_json, str_field
from console.auth import has_role, in_scope, incident_agencies, login_required, require_user, roles_required
from console.services import InvalidInput, PermissionDenied, current_store
from playbooks.actions import REGISTRY
from playbooks.approvals import ApprovalError, PendingApproval, decide, pending_approvals
from playbooks.drill import DrillReport, approve_all, run_drill
from playbooks.engine import FINAL_RUN
from playbooks.model import PlaybookError, PlaybookLibrary
from playbooks.worker import library_paths
from store.base import Store
from store.errors import NotFound
from store.models import PlaybookRun, RunStatus, User
from store.registry import home

web = Blueprint("playbooks", __name__)
api = Blueprint("playbooks_api", __name__)

RUN_READ_ROLES: tuple[str, ...] = ("responder", "analyst", "inspector")
DRILL_ROLES: tuple[str, ...] = ("responder",)
LIBRARY_EXTENSION = "citysoc.playbooks"
MAX_RUNS = 500
#: how often the run page asks for the run while it is not finished (milliseconds)
POLL_MS = 2000


# scope ---------------------------------------------------------------------------------------------------
def _visible(store: Store, user: User, incident_id: str | None, cache: dict[str, bool] | None = None) -> bool:
    """Whether the user may see a run or approval of this incident (agency scope)."""
    if incident_id is None:
        return in_scope(user, ())
    if cache is not None and incident_id in cache:
        return cache[incident_id]
    try:
        visible = in_scope(user, incident_agencies(store.get_incident(incident_id)))
    except NotFound:
        visible = in_scope(user, ())  # its incident is gone: city SOC only
    if cache is not None:
        cache[incident_id] = visible
    return visible


def visible_runs(store: Store, user: User, limit: int, drill: bool | None = None,
                 status: RunStatus | None = None) -> list[PlaybookRun]:
    cache: dict[str, bool] = {}
    out = []
    for run in store.list_runs(limit=MAX_RUNS):
        if (drill is not None and run.drill != drill) or (status is not None and run.status is not status):
            continue
        if _visible(store, user, run.incident_id, cache):
            out.append(run)
        if len(out) >= limit:
            break
    return out


def visible_run(store: Store, user: User, run_id: str) -> PlaybookRun:
    run = store.get_run(run_id)
    if not _visible(store, user, run.incident_id):
        raise NotFound("run", run_id)  # as if it did not exist: no id probing across agencies
    return run


def inbox(store: Store, user: User) -> list[PendingApproval]:
    """Approvals waiting for a decision the user may make, within the user's agencies."""
    cache: dict[str, bool] = {}
    return [p for p in pending_approvals(store, user.roles) if _visible(store, user, p.incident_id, cache)]


def decide_as(
    store: Store, user: User, run_id: str, step_ref: str, approve: bool, reason: str
) -> PendingApproval | None:
    """One decision by ``user``; refused with 403 without a required role, 400 for anything else."""
    if not reason.strip():
        raise InvalidInput("reason", "a reason is required for every approval decision")
    run = visible_run(store, user, run_id)
    waiting = {p.step_ref: p for p in pending_approvals(store, ("admin",)) if p.run_id == run.id}
    pending = waiting.get(step_ref)
    if pending is not None and not has_role(user, pending.required_roles):
        raise PermissionDenied(f"this approval needs the role {' or '.join(pending.required_roles)}")
    try:
        return decide(store, run.id, step_ref, user.username, user.roles, approve, reason)
    except ApprovalError as exc:
        raise InvalidInput("decision", str(exc)) from exc


# the playbook library, for drills -------------------------------------------------------------------------
def playbook_library(app: Flask) -> PlaybookLibrary:
    """The playbooks of ``PLAYBOOK_DIRS`` (default: the library and ``CITYSOC_PLAYBOOKS``), loaded once."""
    library: PlaybookLibrary | None = app.extensions.get(LIBRARY_EXTENSION)
    if library is None:
        dirs = app.config.get("PLAYBOOK_DIRS")
        paths = [Path(p) for p in dirs] if dirs else library_paths()
        library = PlaybookLibrary.load(paths, REGISTRY)
        app.extensions[LIBRARY_EXTENSION] = library
    return library


def launch_drill(
    store: Store, user: User, playbook_id: str, incident_id: str | None, decide_as_me: bool
) -> DrillReport:
    """A drill of a library playbook, on one of the user's incidents or on none; approvals optionally by the user."""
    try:
        playbook = playbook_library(current_app).get(playbook_id)
    except PlaybookError as exc:
        raise InvalidInput("playbook", str(exc)) from exc
    if incident_id:
        if not _visible(store, user, incident_id):
            raise NotFound("incident", incident_id)
        store.get_incident(incident_id)
    elif not in_scope(user, ()):
        raise InvalidInput("incident_id", "choose one of your agency's incidents for the drill")
    script = approve_all((user.username, tuple(user.roles))) if decide_as_me else None
    report = run_drill(store, playbook, incident_id or None, approver_script=script, home=home())
    store.audit(user.username, "drill.launch", report.run_id,
                {"playbook": playbook.id, "incident": incident_id or None, "status": report.status})
    return report


# JSON shapes ------------------------------------------------------------------------------------------------
def approval_json(p: PendingApproval) -> dict[str, Any]:
    return {
        "run_id": p.run_id,
        "step_ref": p.step_ref,
        "playbook": p.playbook,
        "incident_id": p.incident_id,
        "required_roles": list(p.required_roles),
        "quorum": p.quorum,
        "remaining": p.remaining,
        "deadline": p.deadline.isoformat(),
        "description": p.description,
        "impact": p.impact,
        "decisions": [d.as_dict() for d in p.approvals],
    }


def _status(raw: str | None) -> RunStatus | None:
    if not raw:
        return None
    try:
        return RunStatus(raw)
    except ValueError:
        raise InvalidInput("status", f"one of {', '.join(s.value for s in RunStatus)}") from None


def _drill_flag(raw: str | None) -> bool | None:
    if raw in (None, ""):
        return None
    if raw in ("true", "1", "false", "0"):
        return raw in ("true", "1")
    raise InvalidInput("drill", "true or false")


@dataclass(frozen=True)
class _Decision:
    run_id: str
    step_ref: str
    approve: bool
    reason: str


def _decision_from(values: dict[str, Any], choice: Any) -> _Decision:
    if choice not in (True, False):
        raise InvalidInput("approve", "true (approve) or false (reject) is required")
    return _Decision(str_field(values, "run_id"), str_field(values, "step_ref"), bool(choice),
                     str_field(values, "reason"))


def _final(runs: Iterable[PlaybookRun]) -> bool:
    return all(run.status in FINAL_RUN for run in runs)


# pages ----------------------------------------------------------------------------------------------------
@web.get("/runs")
@roles_required(*RUN_READ_ROLES)
def runs() -> ResponseReturnValue:
    status, drill = _status(request.args.get("status")), _drill_flag(request.args.get("drill"))
    items = visible_runs(current_store(), require_user(), services.parse_int(
        request.args.get("limit"), "limit", 100, MAX_RUNS), drill=drill, status=status)
    return render_template("runs.html", runs=items, statuses=list(RunStatus), status=status.value if status else "",
                           drill=request.args.get("drill", ""))


@web.get("/runs/<run_id>")
@roles_required(*RUN_READ_ROLES)
def run(run_id: str) -> ResponseReturnValue:
    item = visible_run(current_store(), require_user(), run_id)
    return render_template("run.html", run=item, final=_final([item]), poll_ms=POLL_MS)


@web.get("/approvals")
@login_required
def approvals() -> ResponseReturnValue:
    return render_template("approvals.html", pending=inbox(current_store(), require_user()))


@web.post("/approvals")
@login_required
def approvals_decide() -> ResponseReturnValue:
    form = request.form
    choice = {"approve": True, "reject": False}.get(form.get("decision", ""))
    try:
        decision = _decision_from(dict(form.items()), choice)
        left = decide_as(current_store(), require_user(), decision.run_id, decision.step_ref, decision.approve,
                         decision.reason)
    except InvalidInput as exc:
        flash(f"Decision not recorded: {exc.reason}.", "error")
        return redirect(url_for("playbooks.approvals"))
    verb = "Approved" if choice else "Rejected"
    if left is None:
        flash(f"{verb}: step {decision.step_ref} of run {decision.run_id} is settled.", "success")
    else:
        flash(f"{verb}: {left.remaining} more approval(s) needed for step {decision.step_ref}.", "success")
    return redirect(url_for("playbooks.approvals"))


@web.route("/drills", methods=["GET", "POST"])
@roles_required(*DRILL_ROLES)
def drills() -> ResponseReturnValue:
    library = playbook_library(current_app)
    report: DrillReport | None = None
    status = 200
    if request.method == "POST":
        try:
            report = launch_drill(current_store(), require_user(), request.form.get("playbook", ""),
                                  request.form.get("incident_id", "").strip() or None,
                                  request.form.get("decide_as_me") == "1")
        except InvalidInput as exc:
            flash(f"Drill not started: {exc.reason}.", "error")
            status = 400
    return render_template("drills.html", playbooks=sorted(library, key=lambda p: p.id), report=report,
                           form=request.form), status


# API --------------------------------------------------------------------------------------------------------
@api.get("/runs")
@roles_required(*RUN_READ_ROLES)
def api_runs() -> Response:
    limit = services.parse_int(request.args.get("limit"), "limit", 100, MAX_RUNS)
    items = visible_runs(current_store(), require_user(), limit, drill=_drill_flag(request.args.get("drill")),
                         status=_status(request.args.get("status")))
    return jsonify({"runs": [run_json(r) for r in items], "limit": limit})


@api.get("/runs/<run_id>")
@roles_required(*RUN_READ_ROLES)
def api_run(run_id: str) -> Response:
    item = visible_run(current_store(), require_user(), run_id)
    return jsonify({"run": run_json(item), "final": item.status in FINAL_RUN})


@api.get("/approvals")
@login_required
def api_approvals() -> Response:
    return jsonify({"approvals": [approval_json(p) for p in inbox(current_store(), require_user())]})


@api.post("/approvals")
@login_required
def api_decide() -> Response:
    body = json_body()
    decision = _decision_from(body, body.get("approve"))
    left = decide_as(current_store(), require_user(), decision.run_id, decision.step_ref, decision.approve,
                     decision.reason)
    item = current_store().get_run(decision.run_id)
    return jsonify({"settled": left is None, "approval": approval_json(left) if left else None,
                    "run": run_json(item)})


@api.get("/drills/playbooks")
@roles_required(*DRILL_ROLES)
def api_drill_playbooks() -> Response:
    library = playbook_library(current_app)
    return jsonify({"playbooks": [
        {"id": p.id, "name": p.name, "version": p.version, "description": p.description, "steps": len(p.steps)}
        for p in sorted(library, key=lambda p: p.id)
    ]})


@api.post("/drills")
@roles_required(*DRILL_ROLES)
def api_drill() -> tuple[Response, int]:
    body = json_body()
    incident_id = body.get("incident_id")
    if incident_id is not None and not isinstance(incident_id, str):
        raise InvalidInput("incident_id", "a string or null is required")
    decide_as_me = body.get("decide_approvals", False)
    if not isinstance(decide_as_me, bool):
        raise InvalidInput("decide_approvals", "true or false")
    report = launch_drill(current_store(), require_user(), str_field(body, "playbook"), incident_id, decide_as_me)
    return jsonify({"report": report.to_dict(), "markdown": report.to_markdown()}), 201
