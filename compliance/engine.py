"""The evidence engine: every control of the catalogue evaluated for every system and the city, for one period.

Automatic controls run their registered evidence query; manual controls look for an attestation
(an uploaded document recorded with who, when and its SHA-256) valid at the period's end; controls
CitySOC cannot evidence are reported as *not covered*.  A control without evidence fails.  System
controls are evaluated first, because city controls and KPIs aggregate them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from compliance import evidence as ev
from compliance.catalogue import Catalogue, Control, EvidenceType
from compliance.evidence import AssetActivity, EvidenceData, EvidenceResult, IncidentFacts, Period, Status
from compliance.systems import System, systems
from enrichment.assets import AssetRegister
from store.base import Store
from store.compliance import ComplianceRecords
from store.event import format_ts, utc
from store.models import PlaybookRun

CITY = "city"


@dataclass(frozen=True)
class ControlResult:
    control: Control
    subject: str
    level: int | None
    result: EvidenceResult

    @property
    def status(self) -> Status:
        return self.result.status

    def citations(self) -> list[str]:
        return [source.cite(self.level) for source in self.control.sources]

    def as_dict(self) -> dict[str, Any]:
        return {
            "control": self.control.id,
            "subject": self.subject,
            "level": self.level,
            "evidence_type": self.control.evidence.type.value,
            "sources": self.citations(),
            "source_verified": self.control.source_verified,
            **self.result.as_dict(),
        }


@dataclass
class Assessment:
    """All results of one period."""

    period: Period
    catalogue_version: str
    generated: datetime
    systems: list[System]
    system_results: dict[str, list[ControlResult]] = field(default_factory=dict)
    city_results: list[ControlResult] = field(default_factory=list)
    queries: list[Mapping[str, Any]] = field(default_factory=list)
    incidents: list[IncidentFacts] = field(default_factory=list)
    drill_runs: list[PlaybookRun] = field(default_factory=list)
    activity: dict[str, AssetActivity] = field(default_factory=dict)

    def system(self, system_id: str) -> System:
        for system in self.systems:
            if system.id == system_id:
                return system
        raise ev.EvidenceError(f"no system {system_id!r} in the register")

    def result(self, subject: str, control_id: str) -> ControlResult:
        items = self.city_results if subject == CITY else self.system_results.get(subject, [])
        for item in items:
            if item.control.id == control_id:
                return item
        raise ev.EvidenceError(f"no result for control {control_id!r} on {subject!r}")

    def all_results(self) -> list[ControlResult]:
        return [r for rs in self.system_results.values() for r in rs] + list(self.city_results)

    def counts(self) -> dict[str, int]:
        out = {status.value: 0 for status in Status}
        for r in self.all_results():
            out[r.status.value] += 1
        return out


def _manual(control: Control, subject: str, data: EvidenceData) -> EvidenceResult:
    found = [
        a
        for a in data.records.attestations(subject=subject, control_id=control.id)
        if utc(a.at) <= data.period.end and utc(a.valid_until) >= data.period.end
    ]
    query = {
        "query": f"attestations of {control.id} for {subject}",
        "source": "compliance records",
        "window": data.period.as_dict(),
        "count": len(found),
    }
    if not found:
        return EvidenceResult(Status.FAIL, "reason.no_attestation", {}, {}, (query,))
    last = found[-1]
    facts = {
        "actor": last.actor,
        "at": format_ts(last.at),
        "filename": last.filename,
        "sha256": last.sha256,
        "valid_until": format_ts(last.valid_until),
        "note": last.note,
    }
    return EvidenceResult(
        Status.MANUAL, "reason.attested", {"actor": last.actor, "at": format_ts(last.at)[:10]}, facts, (query,)
    )


def evaluate_control(control: Control, data: EvidenceData, system: System | None) -> ControlResult:
    subject = system.id if system is not None else CITY
    kind = control.evidence.type
    if kind is EvidenceType.NOT_COVERED:
        result = EvidenceResult(Status.NOT_COVERED, "reason.not_covered")
    elif kind is EvidenceType.MANUAL:
        result = _manual(control, subject, data)
    else:
        assert control.evidence.query is not None
        result = ev.run(control.evidence.query, data, system, control.evidence.params)
    return ControlResult(control, subject, system.level if system is not None else None, result)


def assess(
    store: Store,
    register: AssetRegister,
    records: ComplianceRecords,
    catalogue: Catalogue,
    period: Period,
    rules: Mapping[str, tuple[str, ...]] | None,
    now: datetime,
    only_system: str | None = None,
) -> Assessment:
    """Evaluate the catalogue for the period (one system only with ``only_system``, then no city controls)."""
    data = EvidenceData(store, register, records, period, rules, now)
    data.systems = systems(register)
    assessment = Assessment(period, catalogue.version, utc(now), data.systems)
    targets = [assessment.system(only_system)] if only_system else data.systems
    for system in targets:
        results = [evaluate_control(c, data, system) for c in catalogue.for_level(system.level)]
        assessment.system_results[system.id] = results
        data.system_results[system.id] = {r.control.id: r.result for r in results}
    if only_system is None:
        assessment.city_results = [evaluate_control(c, data, None) for c in catalogue.city()]
    assessment.queries = [q for r in assessment.all_results() for q in r.result.queries]
    assessment.incidents = data.incidents()
    assessment.drill_runs = [r for r in data.runs() if r.drill]
    assessment.activity = data.activity()
    return assessment
