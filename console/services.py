"""The library functions behind the console's pages and API.

Views and API endpoints parse the request, call one function here and render
the result; what an incident page shows and how an analyst changes an incident
is decided here, once, for both.  Every change is a timeline entry on the
incident plus an entry in the audit log.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, current_app

from detections import triage
from enrichment.intel.attack import AttackCatalog, Technique
from store.base import Store
from store.errors import EventValidationError, NotFound, StoreError
from store.event import Event, parse_ts
from store.filters import (
    ENTITY_FILTER_FIELDS,
    INCIDENT_SORTS,
    SLA_KINDS,
    EventPage,
    IncidentFilter,
    IncidentPage,
    IncidentStats,
    bucket_start,
)
from store.models import Alert, DeadLetter, Incident, IncidentStatus, PlaybookRun, Severity, TimelineEntry
from store.query import And, Match, Node, Or, QueryError, fields_of
from store.query import parse as parse_event_query
from store.query import term as query_term

STORE_EXTENSION = "citysoc.store"
ATTACK_EXTENSION = "citysoc.attack"
ESCALATOR_EXTENSION = "citysoc.escalator"

#: Time to close an incident per severity, in minutes (``SLA_MINUTES`` in the config overrides).
DEFAULT_SLA_MINUTES: Mapping[str, float] = {
    "critical": 60,
    "high": 4 * 60,
    "medium": 24 * 60,
    "low": 3 * 24 * 60,
    "informational": 7 * 24 * 60,
}
QUEUE_PAGE_SIZE = 50
MAX_TEXT = 500
MAX_COLUMNS = 8
#: Time-range presets of the event search.
RANGES: Mapping[str, timedelta] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "365d": timedelta(days=365),
}
DEFAULT_RANGE = "24h"
MAX_RANGE = timedelta(days=400)
#: Title of the incidents opened by detections.source_health (their service.name entity is the source).
SOURCE_SILENT_TITLE = "Log source silent"
#: The event (and incident entity) field naming the agency that owns an asset.
AGENCY_FIELD = "asset.agency"

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
class IntelMatch:
    """One event that matched a threat-intel indicator (from the ``threat.*`` fields enrichment set)."""

    event_id: str
    indicator_ids: tuple[str, ...]
    name: str | None
    type: str | None
    field: str | None
    value: str | None
    feed: str | None


def intel_matches(events: Sequence[Event]) -> tuple[IntelMatch, ...]:
    out = []
    for e in events:
        ids = e.get("threat.indicator.id")
        if ids is None and e.get("threat.indicator.name") is None:
            continue
        out.append(IntelMatch(
            event_id=e.id,
            indicator_ids=tuple(ids) if isinstance(ids, tuple) else ((ids,) if ids else ()),
            name=e.get("threat.indicator.name"),
            type=e.get("threat.indicator.type"),
            field=e.get("threat.indicator.matched.field"),
            value=e.get("threat.indicator.matched.atomic"),
            feed=e.get("threat.feed.name"),
        ))  # fmt: skip
    return tuple(out)


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
    #: threat-intel indicator matches found on the incident's events
    intel: tuple[IntelMatch, ...] = ()


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
    with triage_errors():
        return triage.parse_status(value, field)


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
        intel=intel_matches(events),
    )


def change_status(store: Store, incident_id: str, status: str, actor: str) -> TimelineEntry | None:
    """Move the incident to ``status``; None when it is in that status already."""
    with triage_errors():
        return triage.set_status(store, incident_id, status, actor)


def add_comment(store: Store, incident_id: str, text: str, actor: str) -> TimelineEntry:
    with triage_errors():
        return triage.comment(store, incident_id, text, actor)


# events and dead letters ------------------------------------------------------------------
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


# triage (library functions in detections.triage; here their errors become request errors) -----------
@contextmanager
def triage_errors() -> Iterator[None]:
    try:
        yield
    except triage.TriageError as exc:
        raise InvalidInput(exc.field, exc.reason) from exc


def assign(store: Store, incident_id: str, assignee: str | None, actor: str) -> TimelineEntry | None:
    def known(username: str) -> bool:
        try:
            store.get_user(username)
        except NotFound:
            return False
        return True

    with triage_errors():
        return triage.assign(store, incident_id, assignee, actor, known_user=known)


def set_verdict(store: Store, incident_id: str, verdict: str, reason: str, actor: str) -> TimelineEntry:
    with triage_errors():
        return triage.set_verdict(store, incident_id, verdict, reason, actor)


def merge(store: Store, target_id: str, source_ids: Sequence[str], actor: str,
          visible: Callable[[Incident], Incident] | None = None) -> Incident:  # fmt: skip
    """Merge; ``visible`` (the agency-scope check) is applied to every incident named first."""
    if visible is not None:
        for incident_id in source_ids:
            if incident_id.strip():
                visible(store.get_incident(incident_id.strip()))
    with triage_errors():
        return triage.merge(store, target_id, source_ids, actor)


def split(store: Store, incident_id: str, alert_ids: Sequence[str], actor: str, title: str | None = None) -> Incident:
    with triage_errors():
        return triage.split(store, incident_id, alert_ids, actor, title)


def escalate(store: Store, incident_id: str, target: str, reason: str, actor: str) -> triage.Escalation:
    escalator: triage.Escalator | None = current_app.extensions.get(ESCALATOR_EXTENSION)
    with triage_errors():
        return triage.escalate(store, incident_id, target, reason, actor, escalator)


def bind_escalator(app: Flask, escalator: triage.Escalator) -> None:
    """Wired by the composition root when the playbooks layer provides escalation actions."""
    app.extensions[ESCALATOR_EXTENSION] = escalator


def split_ids(raw: str | Sequence[str] | None) -> list[str]:
    """Ids from a form field (comma, space or newline separated) or a JSON list."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return [part for part in re.split(r"[\s,]+", raw) if part]
    return [str(part) for part in raw]


# the incident queue -------------------------------------------------------------------------------
def current_scope() -> tuple[str, ...] | None:
    """The agency scope of the logged-in user (None: every agency)."""
    from console import auth  # auth imports this module: resolved at call time

    return auth.agency_scope(auth.require_user())


def sla_targets(config: Mapping[str, Any]) -> dict[Severity, timedelta]:
    """Time to close per severity: ``SLA_MINUTES`` (severity label -> minutes) over the defaults."""
    minutes = dict(DEFAULT_SLA_MINUTES)
    configured = config.get("SLA_MINUTES") or {}
    if not isinstance(configured, Mapping):
        raise ConfigError("SLA_MINUTES must map severity names to minutes")
    for label, value in configured.items():
        if label not in minutes or isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"SLA_MINUTES[{label!r}] = {value!r}: give minutes (> 0) for one of "
                              f"{', '.join(minutes)}")  # fmt: skip
        minutes[label] = value
    return {Severity.parse(label): timedelta(minutes=value) for label, value in minutes.items()}


def sla_deadline(incident: Incident, targets: Mapping[Severity, timedelta]) -> datetime:
    return incident.created + targets[incident.severity]


def sla_state(incident: Incident, targets: Mapping[Severity, timedelta], now: datetime) -> str:
    """``closed``, ``breached`` or ``due``."""
    if incident.status is IncidentStatus.CLOSED:
        return "closed"
    return "breached" if now >= sla_deadline(incident, targets) else "due"


def _many(args: Any, name: str) -> list[str]:
    values = args.getlist(name) if hasattr(args, "getlist") else [args.get(name)]
    out: list[str] = []
    for value in values:
        if value:
            out.extend(part.strip() for part in str(value).split(",") if part.strip())
    return out


def incident_filter(
    args: Mapping[str, Any],
    scope: tuple[str, ...] | None,
    targets: Mapping[Severity, timedelta],
    now: datetime,
    me: str | None = None,
) -> IncidentFilter:
    """The queue filter from request arguments (``status``, ``severity``, ``sector``, ``agency``, ``assignee``
    -- a user, ``me`` or ``none`` --, ``sla``, ``q``, ``entity`` as ``field:value``, ``sort`` as ``-created``)."""
    statuses = tuple(parse_status(s) for s in _many(args, "status"))
    severities = []
    for label in _many(args, "severity"):
        try:
            severities.append(Severity.parse(label))
        except ValueError:
            raise InvalidInput("severity", f"{label!r} is not a severity (one of "
                               f"{', '.join(s.label for s in Severity)})") from None  # fmt: skip
    assignee = (args.get("assignee") or "").strip() or None
    unassigned = assignee == "none"
    if assignee == "me":
        assignee = me
    entity = None
    raw_entity = (args.get("entity") or "").strip()
    if raw_entity:
        name, sep, value = raw_entity.partition(":")
        if not sep or not value:
            raise InvalidInput("entity", "give field:value, e.g. source.ip:10.0.0.5")
        if name not in ENTITY_FILTER_FIELDS:
            raise InvalidInput("entity", f"{name!r} is not an entity field (one of {', '.join(ENTITY_FILTER_FIELDS)})")
        entity = (name, value)
    sort = (args.get("sort") or "-created").strip()
    descending = sort.startswith("-")
    if sort.lstrip("-") not in INCIDENT_SORTS:
        raise InvalidInput("sort", f"{sort!r}: sort by one of {', '.join(INCIDENT_SORTS)} (prefix - for descending)")
    sla = (args.get("sla") or "").strip() or None
    if sla is not None and sla not in SLA_KINDS:
        raise InvalidInput("sla", f"{sla!r} is not an SLA state (one of {', '.join(SLA_KINDS)})")
    text = (args.get("q") or "").strip() or None
    if text is not None and len(text) > MAX_TEXT:
        raise InvalidInput("q", f"at most {MAX_TEXT} characters")
    return IncidentFilter(
        statuses=statuses,
        severities=tuple(severities),
        sectors=tuple(_many(args, "sector")),
        agencies=tuple(_many(args, "agency")),
        scope=scope,
        assignee=None if unassigned else assignee,
        unassigned=unassigned,
        text=text,
        entity=entity,
        sla=sla,
        sla_targets=dict(targets) if sla else {},
        now=now if sla else None,
        sort=sort.lstrip("-"),
        descending=descending,
    )


def incident_queue(store: Store, flt: IncidentFilter, limit: int = QUEUE_PAGE_SIZE, offset: int = 0) -> IncidentPage:
    return store.query_incidents(flt, limit=limit, offset=offset)


def visible_incident(store: Store, incident_id: str) -> Incident:
    """The incident when the logged-in user's agency scope covers it; NotFound otherwise."""
    from console import auth

    return auth.check_incident_scope(auth.require_user(), store.get_incident(incident_id))


# event search ----------------------------------------------------------------------------------------
def time_range(args: Mapping[str, Any], now: datetime) -> tuple[datetime, datetime, str]:
    """``range`` (15m, 1h, 24h, 7d, 30d, 365d) or ``start``/``end`` (ISO 8601) -> start, end and the preset."""
    start_raw = (args.get("start") or "").strip()
    end_raw = (args.get("end") or "").strip()
    if start_raw or end_raw:
        try:
            end = parse_ts(end_raw) if end_raw else now
            start = parse_ts(start_raw) if start_raw else end - RANGES["24h"]
        except EventValidationError as exc:
            raise InvalidInput("start" if start_raw else "end", str(exc)) from exc
        if start >= end:
            raise InvalidInput("start", "must be before end")
        if end - start > MAX_RANGE:
            raise InvalidInput("start", f"a search spans at most {MAX_RANGE.days} days")
        return start, end, ""
    preset = (args.get("range") or DEFAULT_RANGE).strip()
    if preset not in RANGES:
        raise InvalidInput("range", f"{preset!r}: one of {', '.join(RANGES)}")
    return now - RANGES[preset], now, preset


def parse_query(text: str | None) -> Node | None:
    try:
        return parse_event_query(text)
    except QueryError as exc:
        raise InvalidInput("q", str(exc)) from exc


def scoped_query(node: Node | None, scope: tuple[str, ...] | None) -> Node | None:
    """The query limited to events of the agencies in ``scope`` (None: unlimited)."""
    if scope is None:
        return node
    if scope:
        agencies: Node = Or(tuple(Match(AGENCY_FIELD, "=", agency) for agency in scope))
    else:
        agencies = Match("event.id", "=", "")  # scoped to no agency: no event (ids are never empty)
    return agencies if node is None else And((node, agencies))


def event_search(
    store: Store,
    text: str | None,
    start: datetime,
    end: datetime,
    limit: int = 100,
    offset: int = 0,
    histogram: bool = True,
    scope: tuple[str, ...] | None = None,
) -> EventPage:
    """Events matching the query in the range (and the agency scope), newest first, with the histogram and total."""
    node = scoped_query(parse_query(text), scope)
    try:
        return store.find_events(node, start, end, limit=limit, offset=offset, histogram=histogram)
    except QueryError as exc:
        raise InvalidInput("q", str(exc)) from exc


def columns_for(text: str | None, events: Sequence[Event]) -> list[str]:
    """Result columns: the fields the query names, then the key fields the events have."""
    node = parse_query(text)
    named = [f for f in sorted(fields_of(node)) if f not in ("@timestamp", "event.id")]
    present = [f for f in KEY_FIELDS if any(e.get(f) is not None for e in events)]
    return list(dict.fromkeys([*named, *present]))[:MAX_COLUMNS]


def pivot_query(name: str, value: Any) -> str:
    return query_term(name, value)


def csv_cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (= + - @ tab and CR lead: quoted)."""
    if value is None:
        return ""
    text = ", ".join(map(str, value)) if isinstance(value, tuple) else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def events_csv(events: Sequence[Event], columns: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    header = ["@timestamp", "event.id", *columns, "message"]
    writer.writerow(header)
    for e in events:
        writer.writerow([csv_cell(e.get(name)) for name in header])
    return out.getvalue()


# dashboards ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceHealth:
    """One source on the health map: its recent activity and whether a "source silent" alert is open."""

    name: str
    events: int
    last_seen: datetime | None
    state: str  # ok, quiet, silent


@dataclass(frozen=True)
class Dashboard:
    start: datetime
    end: datetime
    interval: timedelta
    stats: IncidentStats
    sources: tuple[SourceHealth, ...]
    open_incidents: int
    breached: int


def source_health(store: Store, now: datetime, scope: tuple[str, ...] | None) -> tuple[SourceHealth, ...]:
    """Datasets seen in the last day, and sources named by open "source silent" incidents (detections'
    source-health alerts): silent when such an incident is open, quiet when nothing came in the last hour."""
    recent = {a.dataset: a for a in store.source_activity(now - timedelta(days=1))}
    silent: set[str] = set()
    page = store.query_incidents(IncidentFilter(
        scope=scope, entity=None, statuses=tuple(s for s in IncidentStatus if s is not IncidentStatus.CLOSED),
        text=SOURCE_SILENT_TITLE), limit=200)  # fmt: skip
    for incident in page.items:
        silent.update(incident.entities.get("service.name", ()))
    out = []
    for name in sorted(set(recent) | silent):
        activity = recent.get(name)
        last = activity.last_seen if activity else None
        if name in silent:
            state = "silent"
        elif last is None or now - last > timedelta(hours=1):
            state = "quiet"
        else:
            state = "ok"
        out.append(SourceHealth(name, activity.count if activity else 0, last, state))
    return tuple(out)


def dashboard(store: Store, now: datetime, days: int, scope: tuple[str, ...] | None,
              targets: Mapping[Severity, timedelta]) -> Dashboard:  # fmt: skip
    if not 1 <= days <= 365:
        raise InvalidInput("days", "between 1 and 365")
    interval = timedelta(hours=1) if days <= 2 else timedelta(days=1)
    end = bucket_start(now, interval, datetime(1970, 1, 1, tzinfo=now.tzinfo)) + interval
    start = end - timedelta(days=days)
    stats = store.incident_stats(start, end, interval, scope)
    open_statuses = tuple(s for s in IncidentStatus if s is not IncidentStatus.CLOSED)
    open_count = store.query_incidents(IncidentFilter(scope=scope, statuses=open_statuses), limit=0).total
    breached = store.query_incidents(
        IncidentFilter(scope=scope, sla="breached", sla_targets=dict(targets), now=now), limit=0
    ).total
    return Dashboard(start, end, interval, stats, source_health(store, now, scope), open_count, breached)


def now_utc() -> datetime:
    clock: Callable[[], datetime] | None = current_app.config.get("CLOCK")
    return clock() if clock is not None else datetime.now(UTC)


@dataclass(frozen=True)
class LiveCounters:
    open_incidents: int
    breached: int
    new_last_hour: int
    events_last_5m: int
    sources: tuple[SourceHealth, ...]


def live_counters(store: Store, now: datetime, scope: tuple[str, ...] | None,
                  targets: Mapping[Severity, timedelta]) -> LiveCounters:  # fmt: skip
    """What the dashboard's live panel shows; cheap enough to poll every few seconds."""
    open_statuses = tuple(s for s in IncidentStatus if s is not IncidentStatus.CLOSED)
    return LiveCounters(
        open_incidents=store.query_incidents(IncidentFilter(scope=scope, statuses=open_statuses), limit=0).total,
        breached=store.query_incidents(
            IncidentFilter(scope=scope, sla="breached", sla_targets=dict(targets), now=now), limit=0
        ).total,
        new_last_hour=store.query_incidents(
            IncidentFilter(scope=scope, created_after=now - timedelta(hours=1)), limit=0
        ).total,
        events_last_5m=store.find_events(
            scoped_query(None, scope), now - timedelta(minutes=5), now, limit=0, histogram=True
        ).total,
        sources=source_health(store, now, scope),
    )
