"""Compliance pages and ``/api/v1/compliance`` endpoints: live control results, report generation, the archive.

Thin shells over :mod:`compliance.service`.  Compliance officers, inspectors (read-only) and admins
see the pages; only compliance officers (and admins) generate reports.  Agency scope applies: a user
limited to some agencies sees only their systems and reports, and the city-wide report and maturity
pack only when scoped to the whole city.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Flask, Response, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from compliance import archive, service
from compliance.catalogue import load_catalogue
from compliance.errors import ComplianceError
from compliance.evidence import Period
from compliance.i18n import LANGUAGES, Translator
from compliance.reports import KINDS, build
from compliance.systems import systems as register_systems
from console.api import json_body
from console.auth import agency_scope, require_user, roles_required
from console.runtime import assets_path
from console.services import InvalidInput, PermissionDenied, current_store
from enrichment.assets import AssetRegister, RegisterError
from store.compliance import ComplianceRecords
from store.errors import NotFound
from store.models import User

web = Blueprint("compliance", __name__)
api = Blueprint("compliance_api", __name__)

READ_ROLES: tuple[str, ...] = ("compliance", "inspector")
WRITE_ROLES: tuple[str, ...] = ("compliance",)
#: the rule inventory is re-read at most this often (rules change through the rules admin)
RULES_TTL_SECONDS = 600
_FILES = ("report.pdf", "report.html", "data.json", "manifest.json")
_MIME = {
    "report.pdf": "application/pdf",
    "report.html": "text/html",
    "data.json": "application/json",
    "manifest.json": "application/json",
}


def _rules(app: Flask) -> Mapping[str, tuple[str, ...]]:
    configured = app.config.get("COMPLIANCE_RULES")
    if configured is not None:
        return dict(configured)
    cached = app.extensions.get("compliance_rules")
    if cached is None or time.monotonic() - cached[0] > RULES_TTL_SECONDS:
        cached = (time.monotonic(), service.rules_from_pack())
        app.extensions["compliance_rules"] = cached
    return dict(cached[1])


@contextmanager
def _context() -> Iterator[service.Context]:
    path = assets_path()
    try:
        register = AssetRegister.load(path) if path.exists() else AssetRegister()
    except RegisterError as exc:
        raise InvalidInput("register", str(exc)) from exc
    store = current_store()
    records = ComplianceRecords(service.records_path(store))
    try:
        yield service.Context(store, register, records, load_catalogue(), _rules(current_app), path)
    except ComplianceError as exc:
        raise InvalidInput("compliance", str(exc)) from exc
    finally:
        records.close()


def _lang(value: str | None) -> str:
    return value if value in LANGUAGES else "vi"


def _period(start: str | None, end: str | None) -> Period:
    try:
        return service.parse_period(start or None, end or None, datetime.now(timezone.utc))
    except ComplianceError as exc:
        raise InvalidInput("period", str(exc)) from exc


def _visible_system(user: User, agency: str) -> bool:
    scope = agency_scope(user)
    return scope is None or agency in scope


def _city_user(user: User) -> None:
    if agency_scope(user) is not None:
        raise PermissionDenied("city-wide reports need a user scoped to the whole city")


def _visible_report(user: User, ctx: service.Context, item: Mapping[str, Any]) -> bool:
    if item.get("subject") == "city" or item.get("kind") != "system":
        return agency_scope(user) is None
    agencies = {a.agency for a in ctx.register if (a.system or a.id) == item.get("subject")}
    return any(_visible_system(user, agency) for agency in agencies) if agencies else agency_scope(user) is None


def _overview(ctx: service.Context, user: User, period: Period) -> dict[str, Any]:
    result = service.assessment(ctx, period)
    systems = []
    for system in result.systems:
        if not _visible_system(user, system.agency):
            continue
        counts = {s: 0 for s in ("pass", "fail", "manual", "not-covered")}
        for r in result.system_results.get(system.id, []):
            counts[r.status.value] += 1
        systems.append(
            {
                "id": system.id,
                "name": system.name,
                "agency": system.agency,
                "level": system.level,
                "domain": system.domain,
                "counts": counts,
            }
        )
    city = [r.as_dict() for r in result.city_results] if agency_scope(user) is None else []
    reports = [item for item in archive.list_reports(service.reports_root()) if _visible_report(user, ctx, item)]
    return {"period": period.as_dict(), "systems": systems, "city": city, "reports": reports}


# pages ------------------------------------------------------------------------------------------------
@web.get("/compliance")
@roles_required(*READ_ROLES)
def index() -> ResponseReturnValue:
    user = require_user()
    lang = _lang(request.args.get("lang"))
    period = _period(request.args.get("start"), request.args.get("end"))
    with _context() as ctx:
        overview = _overview(ctx, user, period)
    return render_template(
        "compliance_index.html",
        o=overview,
        t=Translator(lang),
        lang=lang,
        can_generate="admin" in user.roles or "compliance" in user.roles,
        city_user=agency_scope(user) is None,
        kinds=KINDS,
        languages=LANGUAGES,
    )


@web.get("/compliance/systems/<system_id>")
@roles_required(*READ_ROLES)
def system(system_id: str) -> ResponseReturnValue:
    user = require_user()
    lang = _lang(request.args.get("lang"))
    period = _period(request.args.get("start"), request.args.get("end"))
    with _context() as ctx:
        known = {s.id: s for s in register_systems(ctx.register)}
        if system_id not in known or not _visible_system(user, known[system_id].agency):
            raise NotFound("system", system_id)
        data = build("system", service.assessment(ctx, period, system=system_id), lang, system_id)
    return render_template("compliance_system.html", d=data, t=Translator(lang), lang=lang)


@web.post("/compliance/reports")
@roles_required(*WRITE_ROLES)
def generate() -> ResponseReturnValue:
    user = require_user()
    report = _generate(user, request.form)
    flash(f"Report {report.id} generated and archived.", "success")
    return redirect(url_for("compliance.report", report_id=report.id))


def _generate(user: User, form: Mapping[str, Any]) -> archive.Archived:
    kind = str(form.get("kind") or "")
    if kind not in KINDS:
        raise InvalidInput("kind", f"choose one of {', '.join(KINDS)}")
    period = _period(form.get("start"), form.get("end"))
    subject = str(form.get("system") or "") or None
    with _context() as ctx:
        if kind == "system":
            known = {s.id: s for s in register_systems(ctx.register)}
            if subject not in known or not _visible_system(user, known[subject].agency):
                raise InvalidInput("system", f"{subject!r} is not a system you may report on")
        else:
            _city_user(user)
            subject = (str(form.get("indicator") or "") or None) if kind == "maturity" else None
        return service.generate(ctx, kind, _lang(form.get("lang")), period, user.username, subject)


def _archived(user: User, report_id: str) -> tuple[dict[str, Any], archive.Verification]:
    root = service.reports_root()
    try:
        directory = archive.find_archive(root, report_id) if archive.is_report_id(report_id) else None
    except ComplianceError:
        directory = None
    if directory is None:
        raise NotFound("report", report_id)
    manifest = archive.read_manifest(directory)
    with _context() as ctx:
        if not _visible_report(user, ctx, manifest):
            raise NotFound("report", report_id)
    return manifest, archive.verify(current_store(), root, report_id)


@web.get("/compliance/reports/<report_id>")
@roles_required(*READ_ROLES)
def report(report_id: str) -> ResponseReturnValue:
    manifest, verification = _archived(require_user(), report_id)
    files = [name for name in _FILES if name in manifest.get("files", {}) or name == "manifest.json"]
    return render_template(
        "compliance_report.html",
        m=manifest,
        v=verification,
        files=files,
        t=Translator(_lang(str(manifest.get("lang")))),
    )


@web.get("/compliance/reports/<report_id>/<name>")
@roles_required(*READ_ROLES)
def report_file(report_id: str, name: str) -> ResponseReturnValue:
    if name not in _FILES:
        raise NotFound("report file", name)
    _archived(require_user(), report_id)
    path = service.reports_root() / report_id / name
    # a download, never rendered inside the console's origin
    return Response(
        path.read_bytes(),
        mimetype=_MIME[name],
        headers={"Content-Disposition": f'attachment; filename="{report_id}-{name}"'},
    )


# API --------------------------------------------------------------------------------------------------
@api.get("/compliance/assessment")
@roles_required(*READ_ROLES)
def api_assessment() -> Response:
    user = require_user()
    period = _period(request.args.get("start"), request.args.get("end"))
    with _context() as ctx:
        result = service.assessment(ctx, period)
        visible = {s.id for s in result.systems if _visible_system(user, s.agency)}
        items = [r.as_dict() for sid, rs in result.system_results.items() if sid in visible for r in rs]
        if agency_scope(user) is None:
            items += [r.as_dict() for r in result.city_results]
    return jsonify({"period": period.as_dict(), "catalogue_version": result.catalogue_version, "results": items})


@api.get("/compliance/reports")
@roles_required(*READ_ROLES)
def api_reports() -> Response:
    user = require_user()
    with _context() as ctx:
        items = [i for i in archive.list_reports(service.reports_root()) if _visible_report(user, ctx, i)]
    return jsonify({"reports": items})


@api.post("/compliance/reports")
@roles_required(*WRITE_ROLES)
def api_generate() -> tuple[Response, int]:
    report = _generate(require_user(), json_body())
    return jsonify(
        {
            "id": report.id,
            "manifest_sha256": report.manifest_sha256,
            "audit_seq": report.audit_seq,
            "retain_until": report.manifest["retain_until"],
        }
    ), 201


@api.get("/compliance/reports/<report_id>/verify")
@roles_required(*READ_ROLES)
def api_verify(report_id: str) -> Response:
    _, verification = _archived(require_user(), report_id)
    return jsonify(verification.as_dict())
