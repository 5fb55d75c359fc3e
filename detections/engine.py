"""The streaming detection engine: stored events -> rule matches -> alerts -> incidents.

Implements :class:`store.StoredEventListener`; the composition root adds it to
the ingest pipeline.  Each new event is routed to the rules of its logsource;
single-event matches become alerts (one per rule and event, deduplicated by a
stable id), base-rule matches feed the correlation rules, and every new alert
goes to the incident manager.

A rule may declare a suppression window (``suppression: {timespan: 1h, group-by:
[source.ip]}``): after it alerts for a group, its further matches for that group within
the window are counted (``stats.suppressed``) but raise no alert, so one noisy source does not
bury the queue.  Suppression state is bounded (:data:`MAX_SUPPRESSIONS`, oldest dropped first).

A rule (or correlation) may declare how its alerts group into incidents (``incident-group-by:
[rule]`` or entity fields, see :mod:`detections.incidents`); the alert carries it as ``group_by``.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Protocol

from detections.correlation import CorrelationHit, Correlator
from detections.incidents import ENTITY_FIELDS, GROUP_BY_ATTRIBUTE, IncidentManager, parse_group_by
from store.base import Store
from store.event import Event, stable_id
from store.models import Alert, Severity

log = logging.getLogger(__name__)


class MatchingRule(Protocol):
    """What the engine needs of a compiled rule."""

    @property
    def rule_id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def level(self) -> str: ...
    @property
    def tags(self) -> Sequence[str]: ...


#: bound on remembered suppression windows (rule, group) pairs
MAX_SUPPRESSIONS = 100_000


class RuleIndex(Protocol):
    def match(self, event: Event) -> Sequence[MatchingRule]: ...


class RuleGate(Protocol):
    """Run-time say over rules (disabled rules, exceptions); implemented by :class:`detections.rule_state.RuleGate`."""

    def allows(self, rule_id: str, event: Event) -> bool: ...


@dataclass
class EngineStats:
    events: int = 0
    matches: int = 0
    alerts: int = 0
    suppressed: int = 0


def level_to_severity(level: str | None) -> Severity:
    try:
        return Severity.parse(level or "medium")
    except ValueError:
        return Severity.MEDIUM


def entities_of(events: Sequence[Event]) -> dict[str, str]:
    """Entity fields of the alert's events; the latest event wins on conflicts."""
    out: dict[str, str] = {}
    for event in events:
        for name in ENTITY_FIELDS:
            value = event.get(name)
            if isinstance(value, tuple):
                value = value[0] if value else None
            if value is not None:
                out[name] = str(value)
    return out


class DetectionEngine:
    def __init__(
        self,
        store: Store,
        rules: RuleIndex,
        incidents: IncidentManager,
        correlator: Correlator | None = None,
        rule_names: dict[str, str] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        gate: RuleGate | None = None,
    ) -> None:
        self.store = store
        self.rules = rules
        self.incidents = incidents
        self.correlator = correlator or Correlator(())
        self._suppressed = self.correlator.suppressed_bases()
        self.rule_names = rule_names or {}  # rule id -> Sigma ``name`` (correlations may reference either)
        self.clock = clock
        #: a rule the gate refuses for an event neither alerts nor feeds correlations (it is off, or excepted)
        self.gate = gate
        self.stats = EngineStats()
        self._suppress_until: OrderedDict[tuple[str, tuple[str, ...]], datetime] = OrderedDict()

    def on_events_stored(self, events: Sequence[Event]) -> None:
        for event in events:
            self.evaluate(event)

    def evaluate(self, event: Event) -> list[Alert]:
        self.stats.events += 1
        alerts: list[Alert] = []
        matched_names: list[str] = []
        for rule in self.rules.match(event):
            if self.gate is not None and not self.gate.allows(rule.rule_id, event):
                continue
            self.stats.matches += 1
            names = [rule.rule_id]
            if rule.rule_id in self.rule_names:
                names.append(self.rule_names[rule.rule_id])
            matched_names.extend(names)
            if any(n in self._suppressed for n in names):
                continue  # only its correlation alerts
            if self._in_suppression(rule, event):
                self.stats.suppressed += 1
                continue
            alert = self._raise(
                rule.rule_id, rule.title, rule.level, list(rule.tags), [event],
                group_by=getattr(rule, "incident_group_by", ()),
            )
            if alert is not None:
                alerts.append(alert)
        if matched_names:
            for hit in self.correlator.observe(matched_names, event):
                alert = self._raise_correlation(hit, event)
                if alert is not None:
                    alerts.append(alert)
        return alerts

    def _in_suppression(self, rule: MatchingRule, event: Event) -> bool:
        """Whether the rule alerted for this event's group within its window; opens a window if not."""
        seconds = getattr(rule, "suppress_seconds", 0)
        if not seconds:
            return False
        group = tuple(str(event.get(name)) for name in getattr(rule, "suppress_by", ()))
        key = (rule.rule_id, group)
        until = self._suppress_until.get(key)
        if until is not None and event.timestamp < until:
            return True
        self._suppress_until[key] = event.timestamp + timedelta(seconds=seconds)
        self._suppress_until.move_to_end(key)
        if len(self._suppress_until) > MAX_SUPPRESSIONS:
            self._suppress_until.popitem(last=False)
        return False

    def _raise_correlation(self, hit: CorrelationHit, last: Event) -> Alert | None:
        rule = hit.rule
        if self.gate is not None and not self.gate.allows(str(rule.id or rule.title), last):
            return None
        tags = [f"{t.namespace}.{t.name}" for t in rule.tags]
        level = rule.level.name.lower() if rule.level else "medium"
        return self._raise(
            str(rule.id or rule.title),
            rule.title,
            level,
            tags,
            hit.events,
            last=last,
            description=f"correlation {rule.type.name.lower()} on " + ", ".join(f"{k}={v}" for k, v in hit.group),
            # validated when the rule was loaded (detections.sigma.loader reports a bad one with its line)
            group_by=parse_group_by(rule.custom_attributes[GROUP_BY_ATTRIBUTE])
            if GROUP_BY_ATTRIBUTE in rule.custom_attributes
            else (),
        )

    def _raise(
        self,
        rule_id: str,
        title: str,
        level: str,
        tags: list[str],
        events: Sequence[Event] | list[str],
        last: Event | None = None,
        description: str = "",
        group_by: tuple[str, ...] = (),
    ) -> Alert | None:
        event_ids = [e if isinstance(e, str) else e.id for e in events]
        stored = [e for e in events if isinstance(e, Event)]
        if not stored:
            stored = self.store.get_events(event_ids)
            if last is not None and last.id not in {e.id for e in stored}:
                stored.append(last)  # the triggering event may still be in this batch
        first_time = min(e.timestamp for e in stored) if stored else (last.timestamp if last else self.clock())
        alert = Alert(
            id="ALR-" + stable_id(rule_id, *event_ids)[:20].upper(),
            rule_id=rule_id,
            rule_title=title,
            severity=level_to_severity(level),
            created=self.clock(),
            event_time=first_time,
            event_ids=tuple(event_ids),
            entities=entities_of(stored),
            tags=tuple(tags),
            source="sigma",
            description=description,
            group_by=group_by,
        )
        if not self.store.add_alert(alert):
            return None  # the same rule on the same events alerted before (redelivery, restart)
        self.stats.alerts += 1
        self.incidents.handle(alert)
        return alert
