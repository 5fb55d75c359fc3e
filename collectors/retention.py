"""Retention per data class: delete stored events older than their source's policy allows.

The privacy policy of a source (:class:`collectors.privacy.PrivacyPolicy`) gives the days
each data class may be kept (``public``, ``personal``, ``sensitive``).  An event's class is
the most restrictive class of the fields it carries (schema classification): an event with
a pseudonymised ``user.name`` is personal data, one with ``event.original`` is sensitive.
It expires ``retention_days[class]`` days after its ``@timestamp``; :func:`prune` deletes
the expired ones.  Sources are matched by ``labels.source`` exactly as the ingest filter
matches them (first policy whose pattern fits, else the default policy).

Run it from cron (``citysoc retention prune``); it is idempotent.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from collectors.privacy import PrivacyPolicy
from store.base import Store
from store.event import Event, utc
from store.schema import Classification, lookup

#: most restrictive last
_ORDER = (Classification.PUBLIC, Classification.PERSONAL, Classification.SENSITIVE)


def event_class(event: Event) -> Classification:
    """The most restrictive data class among the event's fields."""
    rank = 0
    for name in event.fields:
        spec = lookup(name)
        if spec is not None:
            rank = max(rank, _ORDER.index(spec.classification))
            if rank == len(_ORDER) - 1:
                break
    return _ORDER[rank]


@dataclass
class PruneReport:
    """What a pruning run found and deleted, per data class."""

    scanned: int = 0
    deleted: dict[str, int] = field(default_factory=lambda: {c.value: 0 for c in _ORDER})
    dry_run: bool = False

    @property
    def total_deleted(self) -> int:
        return sum(self.deleted.values())


class RetentionPolicy:
    """Which policy holds for which source, and when an event of it expires."""

    def __init__(self, policies: Sequence[PrivacyPolicy], default: PrivacyPolicy | None = None) -> None:
        self.policies = list(policies)
        self.default = default or PrivacyPolicy()

    def policy_for(self, source: str) -> PrivacyPolicy:
        for policy in self.policies:
            if fnmatch.fnmatchcase(source, policy.source):
                return policy
        return self.default

    def days_for(self, event: Event) -> int | None:
        """Days the event may be kept; None when its policy sets no limit for its class."""
        policy = self.policy_for(str(event.fields.get("labels.source", "")))
        return policy.retention_days.get(event_class(event).value)

    def shortest_days(self) -> int | None:
        """The shortest retention of any class and policy (events younger than that never expire)."""
        days = [d for p in (*self.policies, self.default) for d in p.retention_days.values()]
        return min(days) if days else None


def prune(store: Store, retention: RetentionPolicy, now: datetime, dry_run: bool = False,
          batch: int = 1000) -> PruneReport:
    """Delete (or with ``dry_run`` only count) every stored event past its retention at ``now``."""
    report = PruneReport(dry_run=dry_run)
    shortest = retention.shortest_days()
    if shortest is None:
        return report
    now = utc(now)
    doomed: list[str] = []
    # only events older than the shortest retention can have expired: the scan stops there
    for event in store.iter_events(end=now - timedelta(days=shortest)):
        report.scanned += 1
        days = retention.days_for(event)
        if days is None or event.timestamp >= now - timedelta(days=days):
            continue
        report.deleted[event_class(event).value] += 1
        doomed.append(event.id)
        if len(doomed) >= batch and not dry_run:
            # deleting behind the iterator is safe: it pages by (ts, id) after the last row read
            store.delete_events(doomed)
            doomed = []
    if doomed and not dry_run:
        store.delete_events(doomed)
    return report
