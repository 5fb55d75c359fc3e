"""Detection-engineer pages and ``/api/v1`` endpoints: rule list, Sigma editor, exceptions, ATT&CK coverage.

Thin shells over :mod:`detections.rule_admin`: parse the request, call one library function, render
HTML (``web``) or JSON (``api``).  Reading rules needs the engineer, analyst or inspector role;
changing them (enable, disable, save, exceptions) the engineer role.  Every change is audited by the
library.  Rule text, sample events and stored events are attacker-influenced: templates escape them
and the editor's script only ever sets ``textContent``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from console import services
from console.api import json_body, str_field
from console.auth import check_incident_scope, has_role, require_user, roles_required
from console.services import InvalidInput, current_store
from detections import rule_admin
from detections.pack import LoadedRules, custom_rules_dir, default_rule_paths, load_rules
from detections.rule_admin import RuleAdminError, RuleInfo, TestResult, Unknown, Validation
from detections.rule_state import RuleException
from detections.sigma.loader import find_rule_files
from enrichment.intel.attack import AttackCatalog, Technique
from store.errors import NotFound
from store.event import format_ts

web = Blueprint("rules", __name__)
api = Blueprint("rules_api", __name__)

READ_ROLES: tuple[str, ...] = ("engineer", "analyst", "inspector")
WRITE_ROLES: tuple[str, ...] = ("engineer",)
COVERAGE_ROLES: tuple[str, ...] = ("engineer", "analyst", "inspector", "compliance")
RULES_EXTENSION = "citysoc.rules"
DEFAULT_TEST_HOURS = 24


# the loaded pack, cached per application until a rule file changes -----------------------------
def rule_paths(app: Flask) -> list[Path]:
    """``RULE_PATHS`` (default: the built-in pack) plus the custom rules directory once it exists."""
    configured = app.config.get("RULE_PATHS")
    if not configured:
        return default_rule_paths()
    custom = custom_rules_dir()
    return [Path(p) for p in configured] + ([custom] if custom.is_dir() else [])


def current_rules() -> LoadedRules:
    """The rule pack as the engine loads it; reloaded when a rule file is added, changed or removed."""
    paths = rule_paths(current_app)
    files = find_rule_files(paths)
    signature = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    cached: tuple[Any, LoadedRules] | None = current_app.extensions.get(RULES_EXTENSION)
    if cached is None or cached[0] != signature:
        cached = (signature, load_rules(paths))
        current_app.extensions[RULES_EXTENSION] = cached
    return cached[1]


def current_catalogue() -> list[RuleInfo]:
    return rule_admin.catalogue(current_rules(), rule_admin.alert_hits(current_store()))


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Library errors as the console's: bad input is a 400 naming the field, an unknown rule a 404."""
    try:
        yield
    except Unknown as exc:
        raise NotFound(exc.kind, exc.ident) from exc
    except RuleAdminError as exc:
        raise InvalidInput(exc.field, exc.reason) from exc


def _filter(rules: Sequence[RuleInfo], query: str, state: str) -> list[RuleInfo]:
    if state not in ("", "enabled", "disabled"):
        raise InvalidInput("state", "one of enabled, disabled or empty")
    text = query.strip().lower()
    out = []
    for info in rules:
        if (state == "enabled" and not info.enabled) or (state == "disabled" and info.enabled):
            continue
        haystack = " ".join((info.title, info.rule_id, info.logsource, info.level, *info.tags)).lower()
        if text and text not in haystack:
            continue
        out.append(info)
    return out


# ATT&CK coverage -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CoverageCell:
    technique: Technique
    rules: tuple[str, ...]

    @property
    def heat(self) -> int:
        """0 (no rule) to 3 (three or more enabled rules)."""
        return min(len(self.rules), 3)


@dataclass(frozen=True)
class CoverageDomain:
    name: str
    #: tactic -> its techniques, in catalog order; tactic "" when the catalog is not loaded
    tactics: tuple[tuple[str, tuple[CoverageCell, ...]], ...]
    covered: int
    total: int


def _domain_of(technique: Technique) -> str:
    if technique.domain:
        return technique.domain
    return "ics" if technique.id.startswith("T0") else "enterprise"  # ICS ids are T08xx, Enterprise T1xxx


def coverage(rules: Sequence[RuleInfo], catalog: AttackCatalog) -> list[CoverageDomain]:
    """Techniques (Enterprise and ICS) covered by enabled rules, grouped by domain and tactic."""
    matrix = catalog.coverage((info.rule_id, info.tags) for info in rules if info.enabled)
    domains: dict[str, dict[str, list[CoverageCell]]] = {}
    for tid, rule_ids in matrix.items():
        technique = catalog.technique(tid)
        cell = CoverageCell(technique, tuple(rule_ids))
        for tactic in technique.tactics or ("",):
            domains.setdefault(_domain_of(technique), {}).setdefault(tactic, []).append(cell)
    out = []
    for name in sorted(domains):
        tactics = domains[name]
        unique = {cell.technique.id: cell for cells in tactics.values() for cell in cells}
        out.append(
            CoverageDomain(
                name=name,
                tactics=tuple((t, tuple(tactics[t])) for t in sorted(tactics)),
                covered=sum(1 for cell in unique.values() if cell.rules),
                total=len(unique),
            )
        )
    return out


# JSON shapes ------------------------------------------------------------------------------------------------
def rule_json(info: RuleInfo) -> dict[str, Any]:
    return {
        "id": info.rule_id,
        "title": info.title,
        "kind": info.kind,
        "level": info.level,
        "status": info.status,
        "logsource": info.logsource,
        "tags": list(info.tags),
        "attack": list(info.attack),
        "path": info.path,
        "line": info.line,
        "custom": info.custom,
        "enabled": info.enabled,
        "disabled_by": info.disabled_by or None,
        "disabled_reason": info.disabled_reason or None,
        "description": info.description,
        "hits": {"24h": info.hits.day, "7d": info.hits.week, "total": info.hits.total,
                 "false_positives": info.hits.false_positives},
        "noise": info.hits.noise,
    }


def validation_json(validation: Validation) -> dict[str, Any]:
    return {
        "ok": validation.ok,
        "rule_ids": list(validation.rule_ids),
        "problems": [{"line": p.line, "severity": p.severity, "message": p.message} for p in validation.problems],
        "summary": validation.report.summary(),
    }


def test_json(result: TestResult) -> dict[str, Any]:
    return {
        "validation": validation_json(result.validation),
        "scanned": result.scanned,
        "matched": len(result.matches),
        "truncated": result.truncated,
        "scan_limited": result.scan_limited,
        "matches": [{"rule_ids": list(m.rule_ids), "event": m.event.to_document()} for m in result.matches],
    }


def exception_json(item: RuleException) -> dict[str, Any]:
    return {
        "id": item.id,
        "title": item.title,
        "rules": list(item.rules),
        "expires": format_ts(item.expires) if item.expires else None,
        "active": item.active(datetime.now(timezone.utc)),
        "reason": item.description,
        "created_by": item.created_by,
        "source": dict(item.source) if item.source else None,
    }


def coverage_json(domains: Sequence[CoverageDomain]) -> dict[str, Any]:
    return {
        "domains": [
            {
                "name": d.name,
                "covered": d.covered,
                "total": d.total,
                "tactics": [
                    {"tactic": tactic or None, "techniques": [
                        {"id": c.technique.id, "name": c.technique.name or None, "known": c.technique.known,
                         "rules": list(c.rules)} for c in cells]}
                    for tactic, cells in d.tactics
                ],
            }
            for d in domains
        ]
    }


# library calls shared by pages and API ---------------------------------------------------------------
def _test(text: str, hours: int | None, sample: str | None) -> TestResult:
    validation = rule_admin.validate(text)
    if sample is not None and sample.strip():
        return rule_admin.test_rule(validation, rule_admin.parse_sample(sample))
    window = DEFAULT_TEST_HOURS if hours is None else hours
    return rule_admin.test_rule(validation, rule_admin.stored_events(current_store(), window))


def _hours(raw: Any) -> int | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        return services.parse_int(raw, "hours", DEFAULT_TEST_HOURS, rule_admin.MAX_TEST_HOURS)
    raise InvalidInput("hours", "a whole number of hours is required")


def _set_enabled(rule_id: str, enabled: bool, reason: str) -> bool:
    user = require_user()
    ids = [info.rule_id for info in rule_admin.catalogue(current_rules())]
    return rule_admin.set_enabled(current_store(), ids, rule_id, enabled, user.username, reason)


def _create_exception(incident_id: str, rule_id: str, fields: Sequence[str], reason: str,
                      expires_hours: int | None) -> RuleException:
    user = require_user()
    store = current_store()
    check_incident_scope(user, store.get_incident(incident_id))  # no exceptions from incidents one cannot see
    expires = datetime.now(timezone.utc) + timedelta(hours=expires_hours) if expires_hours else None
    return rule_admin.create_exception(store, incident_id, rule_id, fields, user.username, reason, expires)


# pages ----------------------------------------------------------------------------------------------------
@web.get("/rules")
@roles_required(*READ_ROLES)
def rules() -> ResponseReturnValue:
    query, state = request.args.get("q", ""), request.args.get("state", "")
    catalogue = current_catalogue()
    return render_template("rules.html", rules=_filter(catalogue, query, state), total=len(catalogue), q=query,
                           state=state, can_edit=has_role(require_user(), WRITE_ROLES))


@web.get("/rules/<rule_id>")
@roles_required(*READ_ROLES)
def rule(rule_id: str) -> ResponseReturnValue:
    with _translated():
        info = rule_admin.find_rule(current_catalogue(), rule_id)
        source = rule_admin.rule_source(info)
    exceptions = [item for item in rule_admin.list_exceptions() if item.applies(rule_id)]
    return render_template("rule_detail.html", rule=info, source=source, exceptions=exceptions,
                           can_edit=has_role(require_user(), WRITE_ROLES), now=datetime.now(timezone.utc))


@web.post("/rules/<rule_id>/enabled")
@roles_required(*WRITE_ROLES)
def rule_enabled(rule_id: str) -> ResponseReturnValue:
    enabled = request.form.get("enabled") == "1"
    try:
        with _translated():
            changed = _set_enabled(rule_id, enabled, request.form.get("reason", ""))
    except InvalidInput as exc:
        flash(f"Rule not changed: {exc.reason}.", "error")
    else:
        word = "enabled" if enabled else "disabled"
        flash(f"Rule {word}." if changed else f"The rule was {word} already.", "success" if changed else "info")
    return redirect(url_for("rules.rule", rule_id=rule_id))


@web.route("/rules/editor", methods=["GET", "POST"])
@roles_required(*WRITE_ROLES)
def editor() -> ResponseReturnValue:
    text, sample, hours = "", "", str(DEFAULT_TEST_HOURS)
    validation: Validation | None = None
    result: TestResult | None = None
    status = 200
    if request.method == "GET":
        if request.args.get("rule"):
            with _translated():
                text = rule_admin.rule_source(rule_admin.find_rule(current_catalogue(), request.args["rule"]))
        return render_template("rule_editor.html", text=text, sample=sample, hours=hours)
    text, sample = request.form.get("text", ""), request.form.get("sample", "")
    hours = request.form.get("hours", "") or str(DEFAULT_TEST_HOURS)
    action = request.form.get("action", "validate")
    try:
        with _translated():
            validation = rule_admin.validate(text)
            if action == "test":
                source = request.form.get("source", "stored")
                if source == "sample" and not sample.strip():
                    raise InvalidInput("sample", "paste one or more sample events (JSON or NDJSON)")
                result = _test(text, _hours(hours) if source == "stored" else None,
                               sample if source == "sample" else None)
            elif action == "save":
                user = require_user()
                path = rule_admin.save_rule(current_store(), validation, text, user.username, current_catalogue())
                flash(f"Rule saved as {path.name} and enabled; the detection engine loads it when it restarts.",
                      "success")
                return redirect(url_for("rules.rule", rule_id=validation.rule_ids[0]))
            elif action != "validate":
                raise InvalidInput("action", "one of validate, test, save")
    except InvalidInput as exc:
        flash(f"{exc.field}: {exc.reason}", "error")
        status = 400
    return render_template("rule_editor.html", text=text, sample=sample, hours=hours, validation=validation,
                           result=result, source=request.form.get("source", "stored")), status


@web.get("/rules/exceptions")
@roles_required(*READ_ROLES)
def exceptions() -> ResponseReturnValue:
    return render_template("rule_exceptions.html", exceptions=rule_admin.list_exceptions(),
                           can_edit=has_role(require_user(), WRITE_ROLES), now=datetime.now(timezone.utc))


@web.route("/rules/exceptions/new", methods=["GET", "POST"])
@roles_required(*WRITE_ROLES)
def new_exception() -> ResponseReturnValue:
    incident_id = request.values.get("incident", "")
    if not incident_id:
        raise InvalidInput("incident", "open this page from an incident with a false-positive verdict")
    store = current_store()
    incident = check_incident_scope(require_user(), store.get_incident(incident_id))
    rule_ids = sorted({alert.rule_id for alert in store.list_alerts(incident_id=incident_id)})
    candidates = rule_admin.exception_candidates(incident)
    if request.method == "POST":
        try:
            with _translated():
                created = _create_exception(
                    incident_id, request.form.get("rule_id", ""), request.form.getlist("fields"),
                    request.form.get("reason", ""), _hours(request.form.get("expires_hours")),
                )
        except InvalidInput as exc:
            flash(f"Exception not created: {exc.field}: {exc.reason}.", "error")
        else:
            flash(f"Exception {created.id} created; the engines apply it within seconds.", "success")
            return redirect(url_for("rules.exceptions"))
    return render_template("rule_exception_new.html", incident=incident, rule_ids=rule_ids, candidates=candidates,
                           false_positive=rule_admin.is_false_positive(incident.verdict))


@web.post("/rules/exceptions/<exception_id>/remove")
@roles_required(*WRITE_ROLES)
def remove_exception(exception_id: str) -> ResponseReturnValue:
    try:
        with _translated():
            rule_admin.remove_exception(current_store(), exception_id, require_user().username)
    except InvalidInput as exc:
        flash(f"Exception not removed: {exc.reason}.", "error")
    else:
        flash(f"Exception {exception_id} removed.", "success")
    return redirect(url_for("rules.exceptions"))


@web.get("/coverage")
@roles_required(*COVERAGE_ROLES)
def coverage_page() -> ResponseReturnValue:
    catalog = services.current_attack()
    domains = coverage(current_catalogue(), catalog)
    return render_template("coverage.html", domains=domains, catalog_loaded=bool(catalog.techniques))


# API --------------------------------------------------------------------------------------------------------
@api.get("/rules")
@roles_required(*READ_ROLES)
def api_rules() -> Response:
    catalogue = current_catalogue()
    items = _filter(catalogue, request.args.get("q", ""), request.args.get("state", ""))
    return jsonify({"rules": [rule_json(info) for info in items], "total": len(catalogue)})


@api.get("/rules/<rule_id>")
@roles_required(*READ_ROLES)
def api_rule(rule_id: str) -> Response:
    with _translated():
        info = rule_admin.find_rule(current_catalogue(), rule_id)
        source = rule_admin.rule_source(info)
    exceptions = [exception_json(item) for item in rule_admin.list_exceptions() if item.applies(rule_id)]
    return jsonify({"rule": rule_json(info), "source": source, "exceptions": exceptions})


@api.post("/rules/validate")
@roles_required(*WRITE_ROLES)
def api_validate() -> Response:
    with _translated():
        validation = rule_admin.validate(str_field(json_body(), "text"))
    return jsonify(validation_json(validation))


@api.post("/rules/test")
@roles_required(*WRITE_ROLES)
def api_test() -> Response:
    body = json_body()
    sample = body.get("sample")
    if sample is not None and not isinstance(sample, str):
        raise InvalidInput("sample", "a string of JSON or NDJSON events is required")
    with _translated():
        result = _test(str_field(body, "text"), _hours(body.get("hours")), sample)
    return jsonify(test_json(result))


@api.post("/rules")
@roles_required(*WRITE_ROLES)
def api_save() -> tuple[Response, int]:
    text = str_field(json_body(), "text")
    with _translated():
        validation = rule_admin.validate(text)
        rule_admin.save_rule(current_store(), validation, text, require_user().username, current_catalogue())
        info = rule_admin.find_rule(current_catalogue(), validation.rule_ids[0])
    return jsonify({"rule": rule_json(info), "validation": validation_json(validation)}), 201


@api.put("/rules/<rule_id>/enabled")
@roles_required(*WRITE_ROLES)
def api_enabled(rule_id: str) -> Response:
    body = json_body()
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        raise InvalidInput("enabled", "true or false is required")
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise InvalidInput("reason", "a string is required")
    with _translated():
        changed = _set_enabled(rule_id, enabled, reason)
        info = rule_admin.find_rule(current_catalogue(), rule_id)
    return jsonify({"rule": rule_json(info), "changed": changed})


@api.get("/rules/exceptions")
@roles_required(*READ_ROLES)
def api_exceptions() -> Response:
    return jsonify({"exceptions": [exception_json(item) for item in rule_admin.list_exceptions()]})


@api.post("/rules/exceptions")
@roles_required(*WRITE_ROLES)
def api_create_exception() -> tuple[Response, int]:
    body = json_body()
    fields = body.get("fields")
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise InvalidInput("fields", "a list of entity field names is required")
    expires = body.get("expires_hours")
    if expires is not None and (not isinstance(expires, int) or isinstance(expires, bool) or expires <= 0):
        raise InvalidInput("expires_hours", "a positive whole number of hours, or null for no expiry")
    with _translated():
        created = _create_exception(str_field(body, "incident_id"), str_field(body, "rule_id"), fields,
                                    str_field(body, "reason"), expires)
    return jsonify({"exception": exception_json(created)}), 201


@api.delete("/rules/exceptions/<exception_id>")
@roles_required(*WRITE_ROLES)
def api_remove_exception(exception_id: str) -> tuple[str, int]:
    with _translated():
        rule_admin.remove_exception(current_store(), exception_id, require_user().username)
    return "", 204


@api.get("/coverage")
@roles_required(*COVERAGE_ROLES)
def api_coverage() -> Response:
    return jsonify(coverage_json(coverage(current_catalogue(), services.current_attack())))
