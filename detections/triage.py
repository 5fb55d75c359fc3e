"""Analyst triage of incidents: status, assignment, verdict, comments, merge, split and escalation.

Every change is an entry appended to the incident's timeline plus an entry in the
hash-chained audit log; the console's pages and its REST API call these functions
and nothing else, so both behave the same.  Escalation goes to an
:class:`Escalator` (implemented by the playbooks layer and wired in the composition
root); without one, the escalation is recorded on the timeline and in the audit log
as *not delivered*, which the incident page shows.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from detections.errors import DetectionError
from store.base import Store
from store.models import Incident, IncidentStatus, TimelineEntry

MAX_COMMENT_LENGTH = 10_000
MAX_REASON_LENGTH = 2_000
MAX_TITLE_LENGTH = 300
MAX_MERGE = 50

#: Verdicts an analyst can give and what they mean.
VERDICTS: dict[str, str] = {
    "true_positive": "a real attack or policy violation",
    "benign_true_positive": "the rule matched real activity that is allowed (e.g. a test)",
    "false_positive": "the rule matched something it should not have",
}


class TriageError(DetectionError, ValueError):
    """A triage request that cannot be carried out; ``field`` names the input at fault."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class Escalator(Protocol):
    """Implemented by the playbooks layer: hand an incident to the next tier (CERT, agency, vendor)."""

    def escalate(self, incident: Incident, target: str, reason: str, actor: str) -> str:
        """Deliver the escalation; returns a reference (ticket, run id) or raises with the cause."""
        ...


@dataclass(frozen=True)
class Escalation:
    entry: TimelineEntry
    delivered: bool
    reference: str | None


def _text(value: str, field: str, maximum: int, required: bool = True) -> str:
    body = (value or "").strip()
    if required and not body:
        raise TriageError(field, "this cannot be empty")
    if len(body) > maximum:
        raise TriageError(field, f"at most {maximum} characters (got {len(body)})")
    return body


def parse_status(value: str, field: str = "status") -> IncidentStatus:
    try:
        return IncidentStatus((value or "").strip())
    except ValueError:
        allowed = ", ".join(s.value for s in IncidentStatus)
        raise TriageError(field, f"{value!r} is not an incident status (one of {allowed})") from None


def set_status(store: Store, incident_id: str, status: str, actor: str) -> TimelineEntry | None:
    """Move the incident to ``status``; None when it is in that status already."""
    wanted = parse_status(status)
    current = store.get_incident(incident_id)
    if current.status is wanted:
        return None
    entry = store.append_timeline(incident_id, "status", actor, {"value": wanted.value})
    store.audit(actor, "incident.status", f"incident:{incident_id}",
                {"from": current.status.value, "to": wanted.value, "timeline_seq": entry.seq})  # fmt: skip
    return entry


def comment(store: Store, incident_id: str, text: str, actor: str) -> TimelineEntry:
    body = _text(text, "text", MAX_COMMENT_LENGTH)
    entry = store.append_timeline(incident_id, "comment", actor, {"text": body})
    store.audit(actor, "incident.comment", f"incident:{incident_id}", {"timeline_seq": entry.seq})
    return entry


def assign(store: Store, incident_id: str, assignee: str | None, actor: str,
           known_user: Callable[[str], bool] | None = None) -> TimelineEntry | None:  # fmt: skip
    """Assign to ``assignee`` (None or empty: unassign); None when nothing changes.

    ``known_user`` checks that the assignee exists (the console passes its user lookup).
    """
    who = (assignee or "").strip() or None
    if who is not None and known_user is not None and not known_user(who):
        raise TriageError("assignee", f"there is no user {who!r}")
    current = store.get_incident(incident_id)
    if current.assignee == who:
        return None
    entry = store.append_timeline(incident_id, "assign", actor, {"value": who})
    store.audit(actor, "incident.assign", f"incident:{incident_id}",
                {"from": current.assignee, "to": who, "timeline_seq": entry.seq})  # fmt: skip
    return entry


def set_verdict(store: Store, incident_id: str, verdict: str, reason: str, actor: str) -> TimelineEntry:
    """Record a verdict with the analyst's reason (required: the reason is what a later review reads)."""
    value = (verdict or "").strip()
    if value not in VERDICTS:
        raise TriageError("verdict", f"{verdict!r} is not a verdict (one of {', '.join(VERDICTS)})")
    why = _text(reason, "reason", MAX_REASON_LENGTH)
    current = store.get_incident(incident_id)
    entry = store.append_timeline(incident_id, "verdict", actor, {"value": value, "reason": why})
    store.audit(actor, "incident.verdict", f"incident:{incident_id}",
                {"from": current.verdict, "to": value, "reason": why, "timeline_seq": entry.seq})  # fmt: skip
    return entry


def merge(store: Store, target_id: str, source_ids: Sequence[str], actor: str) -> Incident:
    """Move every alert of the sources into the target; each source is closed with a note pointing to it."""
    sources = [s for s in dict.fromkeys(i.strip() for i in source_ids) if s]
    if not sources:
        raise TriageError("incidents", "name at least one incident to merge into this one")
    if target_id in sources:
        raise TriageError("incidents", f"incident {target_id!r} cannot be merged into itself")
    if len(sources) > MAX_MERGE:
        raise TriageError("incidents", f"at most {MAX_MERGE} incidents at once")
    store.get_incident(target_id)
    for source_id in sources:
        store.get_incident(source_id)  # all must exist before anything moves
    for source_id in sources:
        alert_ids = [a.id for a in store.list_alerts(incident_id=source_id, limit=100_000)]
        moved = store.move_alerts(alert_ids, source_id, target_id, actor) if alert_ids else []
        store.append_timeline(source_id, "merged_into", actor, {"incident_id": target_id, "alerts": len(moved)})
        if store.get_incident(source_id).status is not IncidentStatus.CLOSED:
            store.append_timeline(source_id, "status", actor, {"value": IncidentStatus.CLOSED.value})
        store.append_timeline(target_id, "merged", actor, {"incident_id": source_id, "alerts": len(moved)})
    store.audit(actor, "incident.merge", f"incident:{target_id}", {"merged": sources})
    return store.get_incident(target_id)


def split(store: Store, incident_id: str, alert_ids: Sequence[str], actor: str, title: str | None = None,
          clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Incident:  # fmt: skip
    """Move some alerts of an incident into a new incident; returns the new one."""
    wanted = [a for a in dict.fromkeys(i.strip() for i in alert_ids) if a]
    source = store.get_incident(incident_id)
    alerts = {a.id: a for a in store.list_alerts(incident_id=incident_id, limit=100_000)}
    if not wanted:
        raise TriageError("alert_ids", "choose the alerts to move to a new incident")
    unknown = [a for a in wanted if a not in alerts]
    if unknown:
        raise TriageError("alert_ids", f"not alerts of incident {incident_id}: {', '.join(unknown)}")
    if len(wanted) == len(alerts):
        raise TriageError("alert_ids", "leave at least one alert on the incident (or change its status instead)")
    chosen = [alerts[a] for a in wanted]
    name = _text(title or "", "title", MAX_TITLE_LENGTH, required=False) or f"{chosen[0].rule_title} (split from " \
        f"{incident_id})"
    now = clock()
    created = store.create_incident(
        Incident(
            id="INC-" + uuid.uuid4().hex[:12].upper(),
            title=name,
            severity=max(a.severity for a in chosen),
            status=IncidentStatus.TRIAGE,
            created=now,
            updated=now,
            first_event_time=min(a.event_time for a in chosen),
            last_event_time=max(a.event_time for a in chosen),
            group_key=f"split={incident_id}",
            mttd_seconds=source.mttd_seconds,
        ),
        actor=actor,
    )
    store.move_alerts(wanted, incident_id, created.id, actor)
    store.append_timeline(created.id, "split_from", actor, {"incident_id": incident_id, "alerts": len(wanted)})
    store.append_timeline(incident_id, "split", actor, {"incident_id": created.id, "alerts": len(wanted)})
    store.audit(actor, "incident.split", f"incident:{incident_id}", {"new_incident": created.id, "alert_ids": wanted})
    return store.get_incident(created.id)


def escalate(store: Store, incident_id: str, target: str, reason: str, actor: str,
             escalator: Escalator | None = None) -> Escalation:  # fmt: skip
    """Escalate to ``target`` (e.g. ``national-cert``, an agency) through the escalator, or record it undelivered."""
    to = _text(target, "target", 200)
    why = _text(reason, "reason", MAX_REASON_LENGTH)
    incident = store.get_incident(incident_id)
    data: dict[str, Any] = {"target": to, "reason": why}
    reference: str | None = None
    if escalator is None:
        data.update(delivered=False, note="no escalation action is configured: notify the target by hand")
    else:
        try:
            reference = escalator.escalate(incident, to, why, actor)
        except Exception as exc:  # the failure is recorded on the incident with its cause, then re-raised
            store.append_timeline(incident_id, "escalation", actor, {**data, "delivered": False, "error": str(exc)})
            store.audit(actor, "incident.escalate", f"incident:{incident_id}", {**data, "delivered": False,
                                                                               "error": str(exc)})  # fmt: skip
            raise
        data.update(delivered=True, reference=reference)
    entry = store.append_timeline(incident_id, "escalation", actor, data)
    store.audit(actor, "incident.escalate", f"incident:{incident_id}", {**data, "timeline_seq": entry.seq})
    return Escalation(entry, bool(data["delivered"]), reference)
