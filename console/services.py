"""The library functions behind the console's pages and API.

Views and API endpoints parse the request, call one function here and render
the result; what an incident page shows and how an analyst changes an incident
is decided here, once, for both.  Every change is a timeline entry on the
incident plus an entry in the audit log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app

from enrichment.intel.attack import AttackCatalog, Technique
from store.base import Store
from store.errors import StoreError
from store.event import Event
from store.models import Alert, DeadLetter, Incident, IncidentStatus, PlaybookRun, TimelineEntry

STORE_EXTENSION = "citysoc.store"
ATTACK_EXTENSION = "citysoc.attack"

#: Fields shown for each event in tables, in this order, when the event has them.
KEY_FIELDS: tuple[str, ...] = (
    "event.dataset",
    "event.action",
    "event.outcome",
    "host.name",
    "asset.name",
    "user.name",
    "source.ip",
    "source.port",
    "destination.ip",
    "destination.port",
    "process.command_line",
    "url.original",
    "ot.protocol",
    "ot.function",
    "ot.unit_id",
    "iot.device.id",
    "iot.command",
)

MAX_COMMENT_LENGTH = 10_000
MAX_PAGE_SIZE = 500
MAX_OFFSET = 1_000_000
INCIDENT_EVENT_LIMIT = 500


class ConsoleError(Exception):
    """Root of all console errors."""


class ConfigError(ConsoleError):
    """The console configuration cannot be used; the message names the key."""


class InvalidInput(ConsoleError, ValueError):
    """A request value that cannot be accepted; says which one and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotAuthenticated(ConsoleError):
    """The request needs a logged-in user."""


class PermissionDenied(ConsoleError):
    """The logged-in user lacks the role the request needs."""


class CSRFError(ConsoleError):
    """A state-changing request without the session's CSRF token."""


# the store bound to the application ------------------------------------------------
def bind_store(app: Flask, store: Store) -> None:
    app.extensions[STORE_EXTENSION] = store


def store_of(app: Flask) -> Store:
    store: Store = app.extensions[STORE_EXTENSION]
    return store


def current_store() -> Store:
    """The store of the application handling the current request."""
    return store_of(current_app)


def bind_attack(app: Flask, catalog: AttackCatalog) -> None:
    app.extensions[ATTACK_EXTENSION] = catalog


def current_attack() -> AttackCatalog:
    """The ATT&CK catalog loaded at start-up (empty: technique ids from rule tags only)."""
    catalog: AttackCatalog = current_app.extensions.get(ATTACK_EXTENSION) or AttackCatalog()
    return catalog


# incidents ---------------------------------------------------------------------------
@dataclass(frozen=True)
class IncidentDetail:
    """Everything the incident page and ``GET /api/v1/incidents/<id>`` show."""

    incident: Incident
    alerts: tuple[Alert, ...]
    events: tuple[Event, ...]
    events_truncated: bool
    timeline: tuple[TimelineEntry, ...]
    runs: tuple[PlaybookRun, ...]
    #: ATT&CK techniques of the incident's tags, with names, tactics and mitigations when a bundle is loaded
    attack: tuple[Technique, ...] = ()


def parse_int(raw: str | None, field: str, default: int, maximum: int) -> int:
    """A whole number from a request argument, between 0 and ``maximum``."""
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(field, f"{raw!r} is not a whole number") from None
    if not 0 <= value <= maximum:
        raise InvalidInput(field, f"must be between 0 and {maximum}")
    return value


def parse_status(value: str, field: str = "status") -> IncidentStatus:
    try:
        return IncidentStatus(value.strip())
    except ValueError:
        allowed = ", ".join(s.value for s in IncidentStatus)
        raise InvalidInput(field, f"{value!r} is not an incident status (one of {allowed})") from None


def list_incidents(store: Store, status: str | None = None, limit: int = 100, offset: int = 0) -> list[Incident]:
    wanted = parse_status(status) if status else None
    return store.list_incidents(status=wanted, limit=limit, offset=offset)


def incident_detail(
    store: Store, incident_id: str, event_limit: int = INCIDENT_EVENT_LIMIT, attack: AttackCatalog | None = None
) -> IncidentDetail:
    """The incident with its alerts, their events, its timeline, its playbook runs and its ATT&CK techniques."""
    incident = store.get_incident(incident_id)
    alerts = store.list_alerts(incident_id=incident_id)
    event_ids = list(dict.fromkeys(eid for alert in alerts for eid in alert.event_ids))
    events = store.get_events(event_ids[:event_limit])
    return IncidentDetail(
        incident=incident,
        alerts=tuple(alerts),
        events=tuple(events),
        events_truncated=len(event_ids) > event_limit,
        timeline=tuple(store.timeline(incident_id)),
        runs=tuple(store.list_runs(incident_id=incident_id)),
        attack=tuple((attack or AttackCatalog()).for_tags([*incident.tags, *(t for a in alerts for t in a.tags)])),
    )


def change_status(store: Store, incident_id: str, status: str, actor: str) -> TimelineEntry | None:
    """Move the incident to ``status``; None when it is in that status already."""
    wanted = parse_status(status)
    current = store.get_incident(incident_id)
    if current.status is wanted:
        return None
    entry = store.append_timeline(incident_id, "status", actor, {"value": wanted.value})
    store.audit(
        actor,
        "incident.status",
        f"incident:{incident_id}",
        {"from": current.status.value, "to": wanted.value, "timeline_seq": entry.seq},
    )
    return entry


def add_comment(store: Store, incident_id: str, text: str, actor: str) -> TimelineEntry:
    body = text.strip()
    if not body:
        raise InvalidInput("text", "a comment cannot be empty")
    if len(body) > MAX_COMMENT_LENGTH:
        raise InvalidInput("text", f"a comment is at most {MAX_COMMENT_LENGTH} characters (got {len(body)})")
    entry = store.append_timeline(incident_id, "comment", actor, {"text": body})
    store.audit(actor, "incident.comment", f"incident:{incident_id}", {"timeline_seq": entry.seq})
    return entry


# events and dead letters ------------------------------------------------------------------
def search_events(store: Store, text: str | None, limit: int = 100, offset: int = 0) -> list[Event]:
    """Newest first; without text, the newest events."""
    query = (text or "").strip() or None
    return store.search_events(text=query, limit=limit, offset=offset)


@dataclass(frozen=True)
class DeadLetterPage:
    items: tuple[DeadLetter, ...]
    total: int


def dead_letters(store: Store, limit: int = 100, offset: int = 0) -> DeadLetterPage:
    return DeadLetterPage(tuple(store.list_dead_letters(limit=limit, offset=offset)), store.count_dead_letters())


def key_fields(event: Event, names: Sequence[str] = KEY_FIELDS) -> list[tuple[str, Any]]:
    """The event's values of the key fields it has, in display order."""
    out: list[tuple[str, Any]] = []
    for name in names:
        value = event.get(name)
        if value is not None:
            out.append((name, ", ".join(map(str, value)) if isinstance(value, tuple) else value))
    return out


def attack_ids(tags: Sequence[str]) -> list[str]:
    """ATT&CK technique ids (``T1059.001``) from Sigma tags (``attack.t1059.001``)."""
    ids = []
    for tag in tags:
        prefix, _, rest = tag.partition(".")
        if prefix.lower() == "attack" and rest[:1].lower() == "t" and rest[1:2].isdigit():
            ids.append(rest.upper())
    return ids


# health -------------------------------------------------------------------------------------
def health(store: Store) -> tuple[bool, dict[str, str]]:
    """Whether the console can serve: the store answers a query."""
    try:
        store.count_incidents()
    except StoreError:
        return False, {"status": "unavailable", "store": "error"}
    return True, {"status": "ok", "store": "ok"}
