"""Actions on the incident record itself: evidence, enrichment, status, comments."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from enrichment.assets import AssetRegister, RegisterError
from enrichment.intel.enricher import load_index
from playbooks.actions.base import ActionContext, ActionError, Impact, action
from playbooks.actions.support import already_done, need_incident, simulated
from store.errors import StoreError
from store.event import Event, format_ts
from store.intel import open_intel
from store.models import IncidentStatus
from store.schema import FIELDS

#: Entity fields whose values select the events to snapshot besides the alerts' own events.
EVIDENCE_FIELDS = (
    "source.ip", "destination.ip", "host.name", "user.name", "iot.device.id", "ot.plc.id", "iot.mqtt.client_id",
    "url.domain", "destination.domain",
)  # fmt: skip
#: Values per entity field queried (a correlation incident can hold hundreds of addresses).
MAX_VALUES = 20


@action("collect_evidence", Impact.READ, idempotent=True)
def collect_evidence(ctx: ActionContext, limit: int = 500, window_minutes: int = 60) -> dict[str, Any]:
    """Snapshot the incident's events onto its timeline: the alerts' events, then stored events of its entities.

    Entity events are searched from ``window_minutes`` before the first to
    ``window_minutes`` after the last event of the incident.  The snapshot holds
    every field of up to ``limit`` events, so it survives retention of the
    event store.  Re-running the step (same idempotency key) adds nothing.
    """
    incident_id = need_incident(ctx, "collect_evidence")
    if not 1 <= limit <= 5000:
        raise ActionError(f"collect_evidence: limit must be 1-5000, got {limit}")
    previous = already_done(ctx, incident_id, "evidence")
    if previous is not None:
        return {"events": previous["events"], "datasets": previous["datasets"], "already_collected": True}
    try:
        incident = ctx.store.get_incident(incident_id)
        alerts = ctx.store.list_alerts(incident_id=incident_id)
        seen: dict[str, Event] = {}
        for event in ctx.store.get_events([eid for alert in alerts for eid in alert.event_ids][:limit]):
            seen[event.id] = event
        start = incident.first_event_time - timedelta(minutes=window_minutes)
        end = incident.last_event_time + timedelta(minutes=window_minutes)
        queries = [
            (name, str(value))
            for name in EVIDENCE_FIELDS
            if name in FIELDS
            for value in list(incident.entities.get(name, ()))[:MAX_VALUES]
        ]
        for name, value in queries:
            if len(seen) >= limit:
                break
            for event in ctx.store.search_events(filters={name: value}, start=start, end=end, limit=limit - len(seen)):
                seen.setdefault(event.id, event)
    except StoreError as exc:
        raise ActionError(f"collect_evidence: {incident_id}: {exc}") from exc
    events = sorted(seen.values(), key=lambda e: (e.timestamp, e.id))[:limit]
    summary: dict[str, Any] = {
        "key": ctx.idempotency_key,
        "events": len(events),
        "first": format_ts(events[0].timestamp) if events else None,
        "last": format_ts(events[-1].timestamp) if events else None,
        "event_ids": [e.id for e in events],
        "datasets": sorted({str(e.get("event.dataset")) for e in events}),
        "queries": [f"{name}={value}" for name, value in queries],
    }
    if ctx.drill:
        return simulated(events=len(events), datasets=summary["datasets"], queries=summary["queries"])
    ctx.store.append_timeline(incident_id, "evidence", ctx.actor, {**summary, "snapshot": [e.flat() for e in events]})
    return {"events": len(events), "datasets": summary["datasets"]}


def _register(home: Path) -> AssetRegister:
    path = Path(os.environ.get("CITYSOC_ASSETS") or home / "assets.json")
    try:
        return AssetRegister.load(path) if path.exists() else AssetRegister()
    except RegisterError as exc:
        raise ActionError(f"enrich: asset register {path}: {exc}") from exc


#: entity field -> (register finder, indicator-matching event field)
_LOOKUPS = {
    "source.ip": ("ip", "source.ip"),
    "destination.ip": ("ip", "destination.ip"),
    "host.name": ("host", None),
    "iot.device.id": ("device", None),
    "ot.plc.id": ("device", None),
    "url.domain": (None, "url.domain"),
    "destination.domain": (None, "destination.domain"),
}


@action("enrich", Impact.READ, idempotent=True)
def enrich(ctx: ActionContext) -> dict[str, Any]:
    """Look the incident's entities up in the asset register and the threat-intel indicators; record the findings.

    Addresses, host names and device ids are matched against the system
    register (owner agency, sector, security level, criticality); addresses and
    domains against the stored STIX indicators.  The findings go on the
    timeline as one ``enrichment`` entry (once per step).
    """
    incident_id = need_incident(ctx, "enrich")
    previous = already_done(ctx, incident_id, "enrichment")
    if previous is not None:
        return {"assets": len(previous["assets"]), "indicators": len(previous["indicators"]), "already_done": True}
    register = _register(ctx.home)
    try:
        incident = ctx.store.get_incident(incident_id)
    except StoreError as exc:
        raise ActionError(f"enrich: {exc}") from exc
    try:
        intel = open_intel(ctx.store)
    except StoreError:
        index = None  # this backend keeps no intel: the register look-up still runs
    else:
        try:
            index = load_index(intel)
        finally:
            intel.close()
    assets: dict[str, dict[str, Any]] = {}
    indicators: list[dict[str, str]] = []
    unknown: list[str] = []
    finders = {"ip": register.by_ip, "host": register.by_host, "device": register.by_device}
    for name, (kind, intel_field) in _LOOKUPS.items():
        for value in list(incident.entities.get(name, ()))[:MAX_VALUES]:
            value = str(value)
            asset = finders[kind](value) if kind else None
            if asset is not None:
                assets[asset.id] = {"matched": f"{name}={value}", **asset.fields()}
            elif kind:
                unknown.append(f"{name}={value}")
            if index is not None and intel_field:
                try:
                    probe = Event(id="enrich-probe", timestamp=incident.last_event_time, fields={intel_field: value})
                except ValueError:
                    continue  # not a valid value for the field (e.g. not an address): no indicator can match it
                for match in index.match(probe):
                    indicators.append(
                        {"value": value, "indicator": match.indicator.id, "name": match.indicator.name,
                         "feed": match.indicator.feed}
                    )
    findings = {"key": ctx.idempotency_key, "assets": list(assets.values()), "indicators": indicators,
                "unknown": unknown, "register_size": len(register)}
    if ctx.drill:
        return simulated(assets=len(assets), indicators=len(indicators), unknown=len(unknown))
    ctx.store.append_timeline(incident_id, "enrichment", ctx.actor, findings)
    return {"assets": len(assets), "indicators": len(indicators), "unknown": len(unknown)}


@action("set_status", Impact.READ, idempotent=True)
def set_status(ctx: ActionContext, status: str, reason: str = "") -> dict[str, Any]:
    """Move the incident to a new status (new, triage, in_progress, contained, closed); no entry if unchanged."""
    incident_id = need_incident(ctx, "set_status")
    try:
        value = IncidentStatus(status).value
    except ValueError as exc:
        known = ", ".join(s.value for s in IncidentStatus)
        raise ActionError(f"set_status: unknown status {status!r} (known: {known})") from exc
    current = ctx.store.get_incident(incident_id).status.value
    if ctx.drill:
        return simulated(status=value, previous=current)
    if current == value:
        return {"status": value, "changed": False}
    ctx.store.append_timeline(incident_id, "status", ctx.actor, {"value": value, "reason": reason})
    return {"status": value, "changed": True}


@action("add_comment", Impact.READ, idempotent=True)
def add_comment(ctx: ActionContext, text: str) -> dict[str, Any]:
    """Write a comment on the incident timeline (once per step)."""
    incident_id = need_incident(ctx, "add_comment")
    if ctx.drill:
        return simulated(comment=text)
    if already_done(ctx, incident_id, "comment") is None:
        ctx.store.append_timeline(incident_id, "comment", ctx.actor, {"text": text, "key": ctx.idempotency_key})
    return {"commented": True}
