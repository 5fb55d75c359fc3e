"""Evidence queries: one registered function per kind of proof, computed from live data for one period.

Each function answers for one system (or, for city controls, for the whole city) with an
:class:`EvidenceResult`: a status, a reason (a translation key with its arguments), the facts it
found, the queries it ran (for the report's manifest) and, for KPIs, the value and the failing
systems or assets to drill down to.  A function registers with ``@evidence("name")``; a name is
registered once.  An item without evidence FAILS — no function ever assumes compliance.

The data every function reads is gathered once per period by :class:`EvidenceData` (the events of
the period are read in one pass), so a city report costs one scan of the period's events.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from pathlib import Path
from typing import Any

from compliance.errors import EvidenceError
from compliance.systems import System
from enrichment.assets import AssetRegister
from store.base import Store
from store.compliance import ComplianceRecords
from store.errors import AuditChainBroken
from store.event import format_ts, utc
from store.models import Incident, IncidentStatus, PlaybookRun, TimelineEntry, User

#: rule pack directory -> system domain
RULE_DIR_DOMAIN = {"iot": "IoT", "ot": "OT", "linux": "IT", "web": "IT", "windows": "IT", "network": "IT"}
#: User fields the console-security work may add to record MFA enrolment (the first one present is used)
MFA_FIELDS = ("mfa_enabled", "totp_secret", "mfa_secret")
RESOLVED = (IncidentStatus.CONTAINED.value, IncidentStatus.CLOSED.value)
#: newest playbook runs read (a search engine's default result window): an older drill is missed, so its
#: control fails rather than passing on data it did not read
MAX_RUNS = 10_000


class Status(enum.StrEnum):
    PASS = "pass"  # noqa: S105 - a result, not a password
    FAIL = "fail"
    MANUAL = "manual"
    NOT_COVERED = "not-covered"


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", utc(self.start))
        object.__setattr__(self, "end", utc(self.end))
        if self.end <= self.start:
            raise EvidenceError(f"period end {format_ts(self.end)} is not after its start {format_ts(self.start)}")

    def contains(self, moment: datetime) -> bool:
        return self.start <= utc(moment) < self.end

    def contains_day(self, day: date) -> bool:
        return self.start.date() <= day <= self.end.date()

    def as_dict(self) -> dict[str, str]:
        return {"start": format_ts(self.start), "end": format_ts(self.end)}


@dataclass(frozen=True)
class EvidenceResult:
    status: Status
    reason: str
    args: Mapping[str, Any] = field(default_factory=dict)
    facts: Mapping[str, Any] = field(default_factory=dict)
    queries: tuple[Mapping[str, Any], ...] = ()
    value: float | None = None
    failing: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "reason": self.reason,
            "args": dict(self.args),
            "facts": dict(self.facts),
            "queries": [dict(q) for q in self.queries],
            "value": self.value,
            "failing": list(self.failing),
        }


@dataclass
class AssetActivity:
    count: int = 0
    first: datetime | None = None
    last: datetime | None = None
    max_gap_seconds: float = 0.0


@dataclass(frozen=True)
class IncidentFacts:
    incident: Incident
    mttd_seconds: float | None
    mttr_seconds: float | None
    resolved: bool


def rule_inventory(rule_files: Iterable[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    """Domain -> active rule ids, from (rule file path, rule id) pairs of the loaded pack."""
    out: dict[str, list[str]] = {}
    for path, rule_id in rule_files:
        domain = RULE_DIR_DOMAIN.get(Path(path).parent.name.lower())
        if domain is not None:
            out.setdefault(domain, []).append(rule_id)
    return {domain: tuple(sorted(ids)) for domain, ids in out.items()}


class EvidenceData:
    """Everything the evidence queries read for one period, gathered lazily and once."""

    def __init__(
        self,
        store: Store,
        register: AssetRegister,
        records: ComplianceRecords,
        period: Period,
        rules: Mapping[str, tuple[str, ...]] | None,
        now: datetime,
    ) -> None:
        self.store = store
        self.register = register
        self.records = records
        self.period = period
        self.rules = rules
        self.now = utc(now)
        #: filled by the engine before city controls run: system id -> control id -> result
        self.system_results: dict[str, dict[str, EvidenceResult]] = {}
        self.systems: list[System] = []
        self._activity: dict[str, AssetActivity] | None = None
        self._events_read = 0
        self._incidents: list[IncidentFacts] | None = None
        self._runs: list[PlaybookRun] | None = None

    # the period's events, one pass --------------------------------------------------------
    @property
    def horizon(self) -> datetime:
        """Where the period's data ends: its end, or now for a period still running."""
        return min(self.period.end, self.now)

    def activity(self) -> dict[str, AssetActivity]:
        if self._activity is None:
            acts: dict[str, AssetActivity] = {}
            count = 0
            for event in self.store.iter_events(self.period.start, self.period.end):
                count += 1
                asset_id = event.fields.get("asset.id")
                if not isinstance(asset_id, str):
                    continue
                act = acts.setdefault(asset_id, AssetActivity())
                ts = utc(event.timestamp)
                gap = (ts - (act.last or self.period.start)).total_seconds()
                act.max_gap_seconds = max(act.max_gap_seconds, gap)
                act.first = act.first or ts
                act.last = ts
                act.count += 1
            for act in acts.values():
                if act.last is not None:
                    tail = (self.horizon - act.last).total_seconds()
                    act.max_gap_seconds = max(act.max_gap_seconds, tail)
            self._events_read = count
            self._activity = acts
        return self._activity

    def events_query(self, what: str, count: int) -> dict[str, Any]:
        return {
            "query": what,
            "source": "store.iter_events",
            "window": self.period.as_dict(),
            "filter": "events carrying asset.id",
            "events_read": self._events_read,
            "count": count,
        }

    # incidents and runs ------------------------------------------------------------------------
    def _all_incidents(self) -> Iterable[Incident]:
        offset = 0
        while True:
            page = self.store.list_incidents(limit=500, offset=offset)
            yield from page
            if len(page) < 500:
                return
            offset += 500

    def incidents(self) -> list[IncidentFacts]:
        if self._incidents is None:
            out = []
            for incident in self._all_incidents():
                if not self.period.contains(incident.created):
                    continue
                resolved_at = _resolved_at(self.store.timeline(incident.id), self.horizon)
                mttr = (resolved_at - utc(incident.created)).total_seconds() if resolved_at else None
                out.append(IncidentFacts(incident, incident.mttd_seconds, mttr, resolved_at is not None))
            self._incidents = sorted(out, key=lambda f: f.incident.created)
        return self._incidents

    def runs(self) -> list[PlaybookRun]:
        if self._runs is None:
            self._runs = [r for r in self.store.list_runs(limit=MAX_RUNS) if self.period.contains(r.created)]
        return self._runs

    def incident_assets(self, incident_id: str | None) -> frozenset[str]:
        if incident_id is None:
            return frozenset()
        for facts in self.incidents():
            if facts.incident.id == incident_id:
                return frozenset(facts.incident.entities.get("asset.id", ()))
        try:
            return frozenset(self.store.get_incident(incident_id).entities.get("asset.id", ()))
        except LookupError:
            return frozenset()


def _resolved_at(timeline: Iterable[TimelineEntry], horizon: datetime) -> datetime | None:
    for entry in timeline:
        if entry.kind == "status" and entry.data.get("value") in RESOLVED and utc(entry.at) <= horizon:
            return utc(entry.at)
    return None


EvidenceFunc = Callable[[EvidenceData, System | None, Mapping[str, Any]], EvidenceResult]


@dataclass(frozen=True)
class Registered:
    name: str
    scope: str
    func: EvidenceFunc


REGISTRY: dict[str, Registered] = {}


def evidence(name: str, scope: str = "system") -> Callable[[EvidenceFunc], EvidenceFunc]:
    """Register an evidence query under ``name`` for ``scope`` (``system`` or ``city``)."""

    def decorator(func: EvidenceFunc) -> EvidenceFunc:
        if name in REGISTRY:
            raise EvidenceError(f"evidence query {name!r} is registered twice")
        REGISTRY[name] = Registered(name, scope, func)
        return func

    return decorator


def run(name: str, data: EvidenceData, subject: System | None, params: Mapping[str, Any]) -> EvidenceResult:
    registered = REGISTRY.get(name)
    if registered is None:
        raise EvidenceError(f"no evidence query {name!r} (known: {', '.join(sorted(REGISTRY))})")
    if (registered.scope == "system") != (subject is not None):
        raise EvidenceError(f"evidence query {name!r} is for scope {registered.scope}")
    return registered.func(data, subject, params)


def _system(subject: System | None) -> System:
    if subject is None:
        raise EvidenceError("this evidence query needs a system")
    return subject


def _fail(reason: str, queries: Iterable[Mapping[str, Any]] = (), **args: Any) -> EvidenceResult:
    return EvidenceResult(Status.FAIL, reason, args, {}, tuple(queries))


def _register_query(system: System, fields_used: str) -> dict[str, Any]:
    return {
        "query": "register",
        "source": "system register",
        "filter": f"assets of {system.id}",
        "fields": fields_used,
        "count": len(system.assets),
    }


# system controls -----------------------------------------------------------------------------------
@evidence("level_approved")
def level_approved(data: EvidenceData, subject: System | None, params: Mapping[str, Any]) -> EvidenceResult:
    system = _system(subject)
    query = _register_query(system, "level_approved_on, level_decision")
    approved, decision = system.latest("level_approved_on"), system.first_text("level_decision")
    if approved is None or not decision:
        return _fail("reason.level_not_approved", [query], system=system.id)
    if approved > data.period.end.date():
        return _fail("reason.after_period", [query], what="level_approved_on", date=approved.isoformat())
    return EvidenceResult(
        Status.PASS,
        "reason.level_approved",
        {"date": approved.isoformat(), "decision": decision},
        {"level": system.level, "approved_on": approved.isoformat(), "decision": decision},
        (query,),
    )


@evidence("log_sources_fresh")
def log_sources_fresh(data: EvidenceData, subject: System | None, params: Mapping[str, Any]) -> EvidenceResult:
    """Every asset of the system sent events in the period, with no gap longer than ``max_gap_hours``."""
    system = _system(subject)
    max_gap = float(params.get("max_gap_hours", 24)) * 3600
    acts = data.activity()
    per_asset: dict[str, dict[str, Any]] = {}
    silent: list[str] = []
    stale: list[str] = []
    for asset in system.assets:
        act = acts.get(asset.id)
        if act is None or act.count == 0:
            silent.append(asset.id)
            per_asset[asset.id] = {"events": 0}
            continue
        assert act.last is not None and act.first is not None
        per_asset[asset.id] = {
            "events": act.count,
            "first": format_ts(act.first),
            "last": format_ts(act.last),
            "max_gap_hours": round(act.max_gap_seconds / 3600, 2),
        }
        if act.max_gap_seconds > max_gap:
            stale.append(asset.id)
    query = data.events_query(
        f"events of the assets of {system.id}", sum(a.get("events", 0) for a in per_asset.values())
    )
    facts = {"assets": per_asset, "max_gap_hours": max_gap / 3600}
    if silent:
        return EvidenceResult(
            Status.FAIL, "reason.no_events", {"assets": ", ".join(silent)}, facts, (query,), failing=tuple(silent)
        )
    if stale:
        return EvidenceResult(
            Status.FAIL,
            "reason.logs_stopped",
            {"assets": ", ".join(stale), "hours": max_gap / 3600},
            facts,
            (query,),
            failing=tuple(stale),
        )
    return EvidenceResult(Status.PASS, "reason.logs_fresh", {"count": len(per_asset)}, facts, (query,))


@evidence("detection_rules_active")
def detection_rules_active(data: EvidenceData, subject: System | None, params: Mapping[str, Any]) -> EvidenceResult:
    system = _system(subject)
    query: dict[str, Any] = {
        "query": "loaded rule pack",
        "source": "detections.pack",
        "filter": f"domain {system.domain}",
    }
    if data.rules is None:
        return _fail("reason.rules_unknown", [query])
    ids = data.rules.get(system.domain, ())
    query["count"] = len(ids)
    if not ids:
        return _fail("reason.no_rules", [query], domain=system.domain)
    return EvidenceResult(
        Status.PASS, "reason.rules_active", {"count": len(ids), "domain": system.domain}, {"rules": list(ids)}, (query,)
    )


@evidence("incident_response")
def incident_response(data: EvidenceData, subject: System | None, params: Mapping[str, Any]) -> EvidenceResult:
    """Incidents on the system's assets in the period were all contained or closed; MTTD and MTTR."""
    system = _system(subject)
    mine = [f for f in data.incidents() if system.asset_ids & set(f.incident.entities.get("asset.id", ()))]
    query = {
        "query": f"incidents on the assets of {system.id}",
        "source": "store.list_incidents + timeline",
        "window": data.period.as_dict(),
        "count": len(mine),
    }
    facts: dict[str, Any] = {
        "incidents": [
            {
                "id": f.incident.id,
                "severity": f.incident.severity.label,
                "status": f.incident.status.value,
                "mttd_seconds": f.mttd_seconds,
                "mttr_seconds": f.mttr_seconds,
            }
            for f in mine
        ],
        "mttd_seconds": _mean(f.mttd_seconds for f in mine),
        "mttr_seconds": _mean(f.mttr_seconds for f in mine),
    }
    open_ids = [f.incident.id for f in mine if not f.resolved]
    if open_ids:
        return EvidenceResult(
            Status.FAIL, "reason.incidents_open", {"ids": ", ".join(open_ids)}, facts, (query,), failing=tuple(open_ids)
        )
    if not mine:
        # no incident is evidence only when the system was watched: silence without logs proves nothing
        monitored = any(data.activity().get(a) for a in system.asset_ids)
        if not monitored:
            return EvidenceResult(Status.FAIL, "reason.no_monitoring", {}, facts, (query,))
        return EvidenceResult(Status.PASS, "reason.no_incidents_monitored", {}, facts, (query,))
    return EvidenceResult(Status.PASS, "reason.incidents_resolved", {"count": len(mine)}, facts, (query,))


def _mean(values: Iterable[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return round(sum(found) / len(found), 1) if found else None


def _dated(system: System, name: str, data: EvidenceData, max_age_days: int) -> tuple[date | None, str | None]:
    """The latest register date and why it does not count (None if it counts)."""
    value = system.latest(name)
    if value is None:
        return None, "reason.not_recorded"
    end = data.period.end.date()
    if value > end:
        return value, "reason.after_period"
    if (end - value).days > max_age_days:
        return value, "reason.too_old"
    return value, None


@evidence("backup_restore")
def backup_restore(data: EvidenceData, subject: System | None, params: Mapping[str, Any]) -> EvidenceResult:
    system = _system(subject)
    query = _register_query(system, "last_backup, last_restore_test")
    facts: dict[str, Any] = {}
    for name, age in (
        ("last_backup", int(params.get("backup_max_age_days", 31))),
        ("last_restore_test", int(params.get("restore_max_age_days", 365))),
    ):
        value, problem = _dated(system, name, data, age)
        facts[name] = value.isoformat() if value else None
        if problem is not None:
            return EvidenceResult(
                Status.FAIL, problem, {"what": name, "date": facts[name] or "-", "days": age}, facts, (query,)
            )
    return EvidenceResult(Status.PASS, "reason.backup_ok", dict(facts), facts, (query,))


@evidence("risk_assessment")
def risk_assessment(data: EvidenceData, subject: System | None, params: Mapping[str, Any]) -> EvidenceResult:
    system = _system(subject)
    query = _register_query(system, "last_risk_assessment")
    age = int(params.get("max_age_days", 365))
    value, problem = _dated(system, "last_risk_assessment", data, age)
    facts = {"last_risk_assessment": value.isoformat() if value else None}
    if problem is not None:
        return EvidenceResult(
            Status.FAIL,
            problem,
            {"what": "last_risk_assessment", "date": facts["last_risk_assessment"] or "-", "days": age},
            facts,
            (query,),
        )
    return EvidenceResult(Status.PASS, "reason.risk_ok", {"date": facts["last_risk_assessment"]}, facts, (query,))


@evidence("vulnerabilities")
def vulnerabilities(data: EvidenceData, subject: System | None, params: Mapping[str, Any]) -> EvidenceResult:
    system = _system(subject)
    scans = [s for s in data.records.scans(system.id) if data.period.contains(s.scanned_at)]
    query = {
        "query": f"vulnerability scans of {system.id}",
        "source": "compliance records",
        "window": data.period.as_dict(),
        "count": len(scans),
    }
    if not scans:
        return _fail("reason.no_scan", [query])
    last = scans[-1]
    facts = {
        "scanned_at": format_ts(last.scanned_at),
        "tool": last.tool,
        "open_critical": last.open_critical,
        "open_high": last.open_high,
        "open_total": last.open_total,
        "scans": len(scans),
    }
    if last.open_critical or last.open_high:
        return EvidenceResult(
            Status.FAIL, "reason.vulns_open", {"critical": last.open_critical, "high": last.open_high}, facts, (query,)
        )
    return EvidenceResult(Status.PASS, "reason.vulns_ok", {"total": last.open_total}, facts, (query,))


@evidence("drills")
def drills(data: EvidenceData, subject: System | None, params: Mapping[str, Any]) -> EvidenceResult:
    system = _system(subject)
    runs = [r for r in data.runs() if r.drill and system.asset_ids & data.incident_assets(r.incident_id)]
    recorded = system.latest("last_drill")
    query = {
        "query": f"drill runs touching {system.id}",
        "source": "store.list_runs (drill=True) + register last_drill",
        "window": data.period.as_dict(),
        "count": len(runs),
    }
    facts = {
        "runs": [{"id": r.id, "playbook": r.playbook, "status": r.status.value} for r in runs],
        "last_drill": recorded.isoformat() if recorded else None,
    }
    if runs:
        return EvidenceResult(Status.PASS, "reason.drill_runs", {"count": len(runs)}, facts, (query,))
    if recorded is not None and data.period.contains_day(recorded):
        return EvidenceResult(Status.PASS, "reason.drill_recorded", {"date": recorded.isoformat()}, facts, (query,))
    return EvidenceResult(Status.FAIL, "reason.no_drill", {}, facts, (query,))


def _mfa_field(user: User) -> str | None:
    names = {f.name for f in fields(user)}
    return next((name for name in MFA_FIELDS if name in names), None)


@evidence("console_mfa")
def console_mfa(data: EvidenceData, subject: System | None, params: Mapping[str, Any]) -> EvidenceResult:
    """Every active console user who can see the system (all agencies, or the system's) is enrolled in MFA."""
    system = _system(subject)
    users = [
        u
        for u in data.store.list_users()
        if not getattr(u, "disabled", False)
        and (not getattr(u, "agencies", ()) or system.agency in getattr(u, "agencies", ()))
    ]
    query = {
        "query": f"active console users who see {system.agency}",
        "source": "store.list_users",
        "count": len(users),
    }
    if not users:
        return _fail("reason.no_users", [query])
    name = _mfa_field(users[0])
    if name is None:
        return _fail("reason.mfa_not_recorded", [query])
    without = sorted(u.username for u in users if not getattr(u, name))
    facts = {"users": len(users), "without_mfa": without}
    if without:
        return EvidenceResult(
            Status.FAIL, "reason.mfa_missing", {"users": ", ".join(without)}, facts, (query,), failing=tuple(without)
        )
    return EvidenceResult(Status.PASS, "reason.mfa_ok", {"count": len(users)}, facts, (query,))


@evidence("audit_chain")
def audit_chain(data: EvidenceData, subject: System | None, params: Mapping[str, Any]) -> EvidenceResult:
    query: dict[str, Any] = {"query": "audit chain", "source": "store.verify_audit"}
    try:
        count = data.store.verify_audit()
    except AuditChainBroken as exc:
        return EvidenceResult(Status.FAIL, "reason.audit_broken", {"error": str(exc)}, {}, (query,))
    query["count"] = count
    return EvidenceResult(Status.PASS, "reason.audit_ok", {"count": count}, {"entries": count}, (query,))


# city controls -----------------------------------------------------------------------------------
def _control_over_systems(data: EvidenceData, control_id: str, systems: list[System]) -> tuple[list[str], list[str]]:
    """Systems passing and failing a system control (a system without the result fails)."""
    passing: list[str] = []
    failing: list[str] = []
    for system in systems:
        result = data.system_results.get(system.id, {}).get(control_id)
        (passing if result is not None and result.status is Status.PASS else failing).append(system.id)
    return passing, failing


def _share(passing: int, total: int) -> float:
    return round(100.0 * passing / total, 1) if total else 0.0


@evidence("city_risk_assessments", scope="city")
def city_risk_assessments(data: EvidenceData, subject: System | None, params: Mapping[str, Any]) -> EvidenceResult:
    if not data.systems:
        return _fail("reason.no_systems")
    failing = [s.id for s in data.systems if risk_assessment(data, s, params).status is not Status.PASS]
    query = {"query": "risk assessments of every system", "source": "system register", "count": len(data.systems)}
    value = _share(len(data.systems) - len(failing), len(data.systems))
    facts = {"systems": len(data.systems), "failing": failing}
    status = Status.FAIL if failing else Status.PASS
    reason = "reason.systems_failing" if failing else "reason.all_systems_pass"
    return EvidenceResult(status, reason, {"count": len(failing)}, facts, (query,), value, tuple(failing))


@evidence("city_monitoring", scope="city")
def city_monitoring(data: EvidenceData, subject: System | None, params: Mapping[str, Any]) -> EvidenceResult:
    scope = [s for s in data.systems if s.level >= 3]
    if not scope:
        return _fail("reason.no_systems")
    passing, failing = _control_over_systems(data, "SL.OPS.MONITORING", scope)
    query = data.events_query("events of level 3-5 systems", len(scope))
    value = _share(len(passing), len(scope))
    status = Status.FAIL if failing else Status.PASS
    reason = "reason.systems_failing" if failing else "reason.all_systems_pass"
    return EvidenceResult(
        status, reason, {"count": len(failing)}, {"systems": len(scope)}, (query,), value, tuple(failing)
    )


def _coverage(data: EvidenceData, assets: list[Any], params: Mapping[str, Any], what: str) -> EvidenceResult:
    """Share of ``assets`` whose last event in the period is within ``recent_hours`` of its end (connected now)."""
    acts = data.activity()
    target = float(params.get("target_percent", 90))
    recent = float(params.get("recent_hours", 24))
    if not assets:
        return _fail("reason.no_assets", [data.events_query(what, 0)])

    def connected(asset_id: str) -> bool:
        act = acts.get(asset_id)
        return act is not None and act.last is not None and (data.horizon - act.last).total_seconds() <= recent * 3600

    silent = sorted(a.id for a in assets if not connected(a.id))
    value = _share(len(assets) - len(silent), len(assets))
    facts = {
        "registered": len(assets),
        "reporting": len(assets) - len(silent),
        "target_percent": target,
        "recent_hours": recent,
    }
    query = data.events_query(what, len(assets) - len(silent))
    if value < target:
        return EvidenceResult(
            Status.FAIL,
            "reason.below_target",
            {"value": value, "target": target},
            facts,
            (query,),
            value,
            tuple(silent),
        )
    return EvidenceResult(
        Status.PASS, "reason.meets_target", {"value": value, "target": target}, facts, (query,), value, tuple(silent)
    )


@evidence("city_device_coverage", scope="city")
def city_device_coverage(data: EvidenceData, subject: System | None, params: Mapping[str, Any]) -> EvidenceResult:
    return _coverage(data, list(data.register), params, "registered assets reporting")


@evidence("kpi_device_coverage", scope="city")
def kpi_device_coverage(data: EvidenceData, subject: System | None, params: Mapping[str, Any]) -> EvidenceResult:
    """Share of the matching registered assets (sector, domain, device_type register column) that reported."""
    wanted = {k: str(params[k]) for k in ("sector", "domain", "device_type") if k in params}

    def matches(asset: Any) -> bool:
        values = {
            "sector": asset.sector,
            "domain": asset.domain,
            "device_type": str(asset.extra.get("device_type", "")),
        }
        return all(values[k] == v for k, v in wanted.items())

    assets = [a for a in data.register if matches(a)]
    label = ", ".join(f"{k}={v}" for k, v in sorted(wanted.items()))
    return _coverage(data, assets, params, f"assets reporting ({label})")


@evidence("kpi_level_compliance", scope="city")
def kpi_level_compliance(data: EvidenceData, subject: System | None, params: Mapping[str, Any]) -> EvidenceResult:
    """Share of the systems at the given levels whose every applicable control passed or is attested."""
    levels = {int(v) for v in params.get("levels", (1, 2, 3))}
    scope = [s for s in data.systems if s.level in levels]
    if not scope:
        return _fail("reason.no_systems")
    failing: list[str] = []
    gaps: dict[str, list[str]] = {}
    for system in scope:
        results = data.system_results.get(system.id, {})
        bad = sorted(cid for cid, r in results.items() if r.status not in (Status.PASS, Status.MANUAL))
        if bad or not results:
            failing.append(system.id)
            gaps[system.id] = bad
    value = _share(len(scope) - len(failing), len(scope))
    target = float(params.get("target_percent", 100))
    query = {"query": "per-system control results", "source": "compliance engine", "count": len(scope)}
    facts = {
        "systems": len(scope),
        "fully_compliant": len(scope) - len(failing),
        "gaps": gaps,
        "target_percent": target,
    }
    status = Status.PASS if value >= target else Status.FAIL
    reason = "reason.meets_target" if status is Status.PASS else "reason.below_target"
    return EvidenceResult(status, reason, {"value": value, "target": target}, facts, (query,), value, tuple(failing))


@evidence("city_soc_operational", scope="city")
def city_soc_operational(data: EvidenceData, subject: System | None, params: Mapping[str, Any]) -> EvidenceResult:
    """V.NS.20.01: monitoring and incident handling pass on every level-3+ system and a drill ran."""
    scope = [s for s in data.systems if s.level >= 3] or list(data.systems)
    if not scope:
        return _fail("reason.no_systems")
    _, mon_failing = _control_over_systems(data, "SL.OPS.MONITORING", scope)
    _, inc_failing = _control_over_systems(data, "SL.OPS.INCIDENTS", scope)
    drill_runs = [r for r in data.runs() if r.drill]
    failing = tuple(sorted(set(mon_failing) | set(inc_failing)))
    facts = {
        "systems": len(scope),
        "monitoring_failing": mon_failing,
        "incidents_failing": inc_failing,
        "drill_runs": len(drill_runs),
    }
    query = {
        "query": "monitoring, incident handling and drills",
        "source": "compliance engine + store.list_runs",
        "window": data.period.as_dict(),
        "count": len(scope),
    }
    if failing:
        return EvidenceResult(
            Status.FAIL, "reason.systems_failing", {"count": len(failing)}, facts, (query,), failing=failing
        )
    if not drill_runs:
        return EvidenceResult(Status.FAIL, "reason.no_drill", {}, facts, (query,))
    return EvidenceResult(Status.PASS, "reason.soc_operational", {"count": len(scope)}, facts, (query,))


@evidence("open_data_export", scope="city")
def open_data_export(data: EvidenceData, subject: System | None, params: Mapping[str, Any]) -> EvidenceResult:
    found: list[Any] = []
    offset = 0
    while True:
        page = data.store.audit_entries(limit=1000, offset=offset)
        found.extend(e for e in page if e.action == "compliance.export" and data.period.contains(e.at))
        if len(page) < 1000:
            break
        offset += 1000
    kinds = sorted({str(e.details.get("what")) for e in found})
    query = {
        "query": "open-format exports",
        "source": "store.audit_entries (compliance.export)",
        "window": data.period.as_dict(),
        "count": len(found),
    }
    if not found:
        return _fail("reason.no_export", [query])
    return EvidenceResult(Status.PASS, "reason.exported", {"what": ", ".join(kinds)}, {"exports": len(found)}, (query,))
