"""Value objects of the analyst queries every backend answers: incident filters, pages, chart data.

The console builds an :class:`IncidentFilter` from the request (and the user's agency
scope) and hands it to ``Store.query_incidents``; event searches return an
:class:`EventPage` with a time histogram.  The objects validate themselves, so a
backend can trust them (sort keys and SLA kinds come from fixed tables here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from store.errors import StoreError
from store.event import Event
from store.models import Incident, IncidentStatus, Severity

#: Sort keys of the incident queue and the column each one orders by.
INCIDENT_SORTS: Mapping[str, str] = {
    "created": "created",
    "updated": "updated",
    "severity": "severity",
    "last_event": "last_event_time",
    "alerts": "alert_count",
}

#: ``sla`` filter values: ``breached`` -- open past its deadline; ``due`` -- open, deadline not yet passed.
SLA_KINDS: tuple[str, ...] = ("breached", "due")

#: Entity fields the detections copy from events onto alerts and incidents.
EVENT_ENTITY_FIELDS: tuple[str, ...] = (
    "source.ip",
    "destination.ip",
    "host.name",
    "user.name",
    "iot.device.id",
    "ot.plc.id",
    "asset.id",
    "asset.name",
    "asset.agency",
    "asset.sector",
    "asset.security_level",
    "asset.criticality",
)

#: Entity fields an incident can be filtered (and pivoted) on; the embedded store indexes them.
#: ``service.name`` is the source named by "log source silent" alerts.
ENTITY_FILTER_FIELDS: tuple[str, ...] = (*EVENT_ENTITY_FIELDS, "service.name")


class FilterError(StoreError, ValueError):
    """A filter that no backend can answer (unknown sort key, SLA kind or entity field)."""


@dataclass(frozen=True)
class IncidentFilter:
    """What the incident queue shows.  Empty tuples and None mean "any".

    ``scope`` is the agency scope of the user asking: None sees every incident, a tuple
    only incidents with one of those agencies among their ``asset.agency`` entities.
    ``sla`` needs ``sla_targets`` (time to close per severity) and ``now``.
    """

    statuses: tuple[IncidentStatus, ...] = ()
    severities: tuple[Severity, ...] = ()
    sectors: tuple[str, ...] = ()
    agencies: tuple[str, ...] = ()
    scope: tuple[str, ...] | None = None
    assignee: str | None = None
    unassigned: bool = False
    text: str | None = None
    entity: tuple[str, str] | None = None
    created_after: datetime | None = None
    sla: str | None = None
    sla_targets: Mapping[Severity, timedelta] = field(default_factory=dict)
    now: datetime | None = None
    sort: str = "created"
    descending: bool = True

    def __post_init__(self) -> None:
        if self.sort not in INCIDENT_SORTS:
            raise FilterError(f"unknown sort key {self.sort!r}; one of {', '.join(INCIDENT_SORTS)}")
        if self.sla is not None:
            if self.sla not in SLA_KINDS:
                raise FilterError(f"unknown SLA filter {self.sla!r}; one of {', '.join(SLA_KINDS)}")
            missing = [s.label for s in Severity if s not in self.sla_targets]
            if missing or self.now is None:
                raise FilterError(f"an SLA filter needs a target for every severity (missing {missing}) and now")
        if self.entity is not None and self.entity[0] not in ENTITY_FILTER_FIELDS:
            raise FilterError(f"incidents cannot be filtered on {self.entity[0]!r}; one of "
                              f"{', '.join(ENTITY_FILTER_FIELDS)}")  # fmt: skip

    def deadlines(self) -> dict[Severity, datetime]:
        """Per severity, the creation time before which an open incident is past its SLA."""
        assert self.now is not None  # checked in __post_init__ when sla is set
        return {severity: self.now - target for severity, target in self.sla_targets.items()}


@dataclass(frozen=True)
class IncidentPage:
    items: tuple[Incident, ...]
    total: int


@dataclass(frozen=True)
class Bucket:
    """One bar of a time histogram: events (or incidents) from ``start`` for one interval."""

    start: datetime
    count: int


@dataclass(frozen=True)
class EventPage:
    """One page of an event search, the total in the time range and its histogram."""

    items: tuple[Event, ...]
    total: int
    histogram: tuple[Bucket, ...] = ()
    interval: timedelta | None = None


@dataclass(frozen=True)
class TrendPoint:
    """Per interval: incidents created, mean MTTD, incidents closed and their mean time to close."""

    start: datetime
    created: int
    mttd_seconds: float | None
    closed: int
    mttr_seconds: float | None


@dataclass(frozen=True)
class IncidentStats:
    """What the dashboards chart: a trend per interval and counts per sector and status."""

    trend: tuple[TrendPoint, ...]
    by_sector: tuple[tuple[str, int], ...]
    by_status: tuple[tuple[str, int], ...]
    by_severity: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class SourceActivity:
    """Events of one dataset (source) in a window, and when the last one arrived."""

    dataset: str
    count: int
    last_seen: datetime


#: Longest histogram a search computes (the interval grows to keep below it).
MAX_BUCKETS = 120
#: Histogram intervals to choose from, shortest first.
INTERVALS: tuple[timedelta, ...] = tuple(
    timedelta(seconds=s)
    for s in (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400, 30 * 86400)
)


def choose_interval(start: datetime, end: datetime) -> timedelta:
    """The shortest interval that cuts ``start``..``end`` into at most MAX_BUCKETS bars (every backend the same)."""
    span = max((end - start).total_seconds(), 1.0)
    for interval in INTERVALS:
        if span / interval.total_seconds() <= MAX_BUCKETS:
            return interval
    return INTERVALS[-1]


def bucket_start(ts: datetime, interval: timedelta, origin: datetime) -> datetime:
    """The start of the histogram bucket that holds ``ts``."""
    step = int(interval.total_seconds())
    offset = int((ts - origin).total_seconds()) // step * step
    return origin + timedelta(seconds=offset)
