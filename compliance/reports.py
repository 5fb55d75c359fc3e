"""Report content: the per-system security-level report, the city SOC report and the maturity evidence pack.

Each builder turns an :class:`compliance.engine.Assessment` into plain JSON-ready data in one
language (labels from :mod:`compliance.i18n`); the renderers (:mod:`compliance.render`) only lay it
out, as HTML or PDF.  Keeping the content in data lets the archive hash exactly what was reported.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from compliance.engine import CITY, Assessment, ControlResult
from compliance.errors import ComplianceError
from compliance.i18n import Translator
from store.event import format_ts

KINDS = ("system", "city", "maturity")
MATURITY_GROUPS = ("maturity", "kpi", "obligation")


def _row(result: ControlResult, t: Translator) -> dict[str, Any]:
    control = result.control
    sources = result.citations()
    if not control.source_verified:
        sources.append(t("source.unverified"))
    return {
        "control": control.id,
        "title": control.title(t.lang),
        "sources": sources,
        "evidence": t(f"evidence.{control.evidence.type.value}"),
        "evidence_data": control.evidence.data,
        "status": result.status.value,
        "status_label": t(f"status.{result.status.value}"),
        "finding": t(result.result.reason, **dict(result.result.args)),
        "value": result.result.value,
        "target": result.result.facts.get("target_percent"),
        "failing": list(result.result.failing),
        "facts": dict(result.result.facts),
    }


def _status_counts(results: list[ControlResult]) -> dict[str, int]:
    counts = Counter(r.status.value for r in results)
    return {s: counts.get(s, 0) for s in ("pass", "fail", "manual", "not-covered")}


def _header(assessment: Assessment, t: Translator, kind: str, title: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "lang": t.lang,
        "title": title,
        "period": {"start": format_ts(assessment.period.start), "end": format_ts(assessment.period.end)},
        "generated": format_ts(assessment.generated),
        "catalogue_version": assessment.catalogue_version,
    }


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


def system_report(assessment: Assessment, system_id: str, lang: str) -> dict[str, Any]:
    t = Translator(lang)
    system = assessment.system(system_id)
    results = assessment.system_results.get(system_id)
    if results is None:
        raise ComplianceError(f"system {system_id!r} was not assessed")
    incidents = [
        {
            "id": f.incident.id,
            "severity": f.incident.severity.label,
            "status": f.incident.status.value,
            "mttd_min": _minutes(f.mttd_seconds),
            "mttr_min": _minutes(f.mttr_seconds),
        }
        for f in assessment.incidents
        if system.asset_ids & set(f.incident.entities.get("asset.id", ()))
    ]
    return {
        **_header(assessment, t, "system", t("report.system.title", name=system.name)),
        "subject": system.id,
        "system": {
            "id": system.id,
            "name": system.name,
            "agency": system.agency,
            "sector": system.sector,
            "domain": system.domain,
            "level": system.level,
            "assets": [a.id for a in system.assets],
        },
        "counts": _status_counts(results),
        "rows": [_row(r, t) for r in results],
        "incidents": incidents,
    }


def _weekly_trend(assessment: Assessment) -> list[dict[str, Any]]:
    weeks: dict[str, list[Any]] = {}
    start = assessment.period.start
    for f in assessment.incidents:
        index = int((f.incident.created - start) / timedelta(days=7))
        label = format_ts(start + timedelta(days=7 * index))[:10]
        weeks.setdefault(label, []).append(f)
    out = []
    for label, items in sorted(weeks.items()):
        mttd = [f.mttd_seconds for f in items if f.mttd_seconds is not None]
        mttr = [f.mttr_seconds for f in items if f.mttr_seconds is not None]
        out.append(
            {
                "week": label,
                "count": len(items),
                "mttd_min": _minutes(sum(mttd) / len(mttd)) if mttd else None,
                "mttr_min": _minutes(sum(mttr) / len(mttr)) if mttr else None,
            }
        )
    return out


def city_report(assessment: Assessment, lang: str) -> dict[str, Any]:
    t = Translator(lang)
    by_level = Counter(s.level for s in assessment.systems)
    coverage: dict[str, list[int]] = {}
    for system in assessment.systems:
        for asset in system.assets:
            bucket = coverage.setdefault(asset.domain, [0, 0])
            bucket[0] += 1
            bucket[1] += 1 if assessment.activity.get(asset.id) else 0
    gaps = []
    for system in assessment.systems:
        failing = [r.control.id for r in assessment.system_results.get(system.id, []) if r.status.value == "fail"]
        if failing:
            gaps.append({"system": system.id, "level": system.level, "controls": failing})
    all_results = assessment.all_results()
    open_count = sum(1 for f in assessment.incidents if not f.resolved)
    return {
        **_header(assessment, t, "city", t("report.city.title")),
        "subject": CITY,
        "counts": _status_counts(all_results),
        "by_level": [{"level": level, "count": by_level.get(level, 0)} for level in range(1, 6)],
        "coverage": [
            {"domain": d, "registered": c[0], "reporting": c[1], "percent": round(100 * c[1] / c[0], 1) if c[0] else 0}
            for d, c in sorted(coverage.items())
        ],
        "incident_totals": t("city.incident_totals", count=len(assessment.incidents), open=open_count),
        "trend": _weekly_trend(assessment),
        "drills": [
            {"id": r.id, "playbook": r.playbook, "status": r.status.value, "created": format_ts(r.created)}
            for r in assessment.drill_runs
        ],
        "gaps": gaps,
        "rows": [_row(r, t) for r in assessment.city_results],
    }


def maturity_pack(assessment: Assessment, lang: str, indicator: str | None = None) -> dict[str, Any]:
    """Every indicator, KPI and obligation; or one (``indicator``), as the pack for that indicator."""
    t = Translator(lang)
    results = [r for r in assessment.city_results if r.control.group in MATURITY_GROUPS]
    if indicator is not None:
        results = [r for r in results if r.control.id == indicator]
        if not results:
            raise ComplianceError(f"no indicator {indicator!r} in the catalogue")
    return {
        **_header(assessment, t, "maturity", t("report.maturity.title")),
        "subject": indicator or CITY,
        "rule": t("maturity.rule"),
        "counts": _status_counts(results),
        "rows": [_row(r, t) for r in results],
    }


def build(kind: str, assessment: Assessment, lang: str, subject: str | None = None) -> dict[str, Any]:
    """Report data; ``subject`` is the system of a system report, or one indicator for a maturity pack."""
    if kind == "system":
        if not subject:
            raise ComplianceError("a system report needs the system id")
        return system_report(assessment, subject, lang)
    if kind == "city":
        return city_report(assessment, lang)
    if kind == "maturity":
        return maturity_pack(assessment, lang, subject)
    raise ComplianceError(f"report kind {kind!r} is not one of {', '.join(KINDS)}")
