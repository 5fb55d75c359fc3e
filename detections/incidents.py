"""Grouping alerts into incidents.

Alerts that share their primary entity (attacker address, host, device, user)
within a time window land in one open incident; a new incident records its
MTTD (first malicious event -> incident creation).

A rule may instead say how its alerts group, with the custom attribute
``incident-group-by: [asset.id]`` (entity fields, or the literal ``rule``): a
distributed attack -- thirty bots flooding one API -- then raises one incident
per rule and target rather than one per bot.  The loader validates the attribute
(:func:`parse_group_by`), the engine copies it onto :attr:`Alert.group_by`.  Higher layers (playbooks)
learn about incidents through the :class:`IncidentListener` protocol, wired in
the composition root.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Protocol

from detections.errors import DetectionError
from store.base import Store
from store.filters import EVENT_ENTITY_FIELDS
from store.models import Alert, Incident, IncidentStatus, Severity

log = logging.getLogger(__name__)

#: Entity fields that make the group key, strongest first.
GROUP_FIELDS: tuple[str, ...] = ("source.ip", "host.name", "iot.device.id", "user.name", "asset.id", "destination.ip")

#: Entity fields copied from events onto alerts and incidents (one list with the store's incident filters).
ENTITY_FIELDS: tuple[str, ...] = EVENT_ENTITY_FIELDS

#: The rule custom attribute that overrides :data:`GROUP_FIELDS` for the rule's alerts.
GROUP_BY_ATTRIBUTE = "incident-group-by"
#: The ``incident-group-by`` item that stands for the rule itself (every alert of the rule, one incident).
RULE_GROUP = "rule"


class GroupByError(DetectionError, ValueError):
    """An ``incident-group-by`` value that cannot group alerts (the loader adds file, line and rule)."""


def parse_group_by(value: object) -> tuple[str, ...]:
    """The validated ``incident-group-by`` list: entity fields (:data:`ENTITY_FIELDS`) or ``rule``.

    Only entity fields are allowed because they are what an alert carries; a field the
    alert cannot carry would silently fall back to per-attacker grouping.
    """
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(item, str) for item in items):
        raise GroupByError(f"{GROUP_BY_ATTRIBUTE} must be a non-empty list of field names, got {value!r}")
    unknown = [item for item in items if item != RULE_GROUP and item not in ENTITY_FIELDS]
    if unknown:
        raise GroupByError(
            f"{GROUP_BY_ATTRIBUTE}: {', '.join(map(repr, unknown))} not an entity field; use {RULE_GROUP!r} or one of "
            + ", ".join(ENTITY_FIELDS)
        )
    return tuple(dict.fromkeys(items))


class IncidentListener(Protocol):
    """Implemented by the playbooks layer to react to incidents."""

    def on_incident_alert(self, incident: Incident, alert: Alert, created: bool) -> None: ...


def group_key(alert: Alert) -> str:
    """The incident group of an alert: its rule's ``incident-group-by``, else its strongest entity."""
    if alert.group_by:
        fields = [name for name in alert.group_by if name != RULE_GROUP]
        values = [alert.entities.get(name) for name in fields]
        # An alert lacking a grouping field cannot join its target's incident: group it as before.
        if all(values):
            return f"{RULE_GROUP}={alert.rule_id}" + "".join(f"|{n}={v}" for n, v in zip(fields, values, strict=True))
    for name in GROUP_FIELDS:
        value = alert.entities.get(name)
        if value:
            return f"{name}={value}"
    return f"rule={alert.rule_id}"


def _title(alert: Alert, key: str) -> str:
    """``Rule title (subject)``: the grouping values, none when the rule alone groups (its title says it all)."""
    if alert.group_by and key.startswith(f"{RULE_GROUP}="):
        values = [part.split("=", 1)[1] for part in key.split("|")[1:]]
        return f"{alert.rule_title} ({', '.join(values)})" if values else alert.rule_title
    return f"{alert.rule_title} ({key.split('=', 1)[1]})"


def severity_for(alert: Alert) -> Severity:
    """Rule level, raised one step for a critical asset or security level 4-5."""
    bump = 0
    level = alert.entities.get("asset.security_level")
    if alert.entities.get("asset.criticality") == "critical" or (level and level.isdigit() and int(level) >= 4):
        bump = 1
    return Severity(min(int(alert.severity) + bump, int(Severity.CRITICAL)))


class IncidentManager:
    """Attach each alert to an open incident of its group or open a new one."""

    def __init__(
        self,
        store: Store,
        window: timedelta = timedelta(hours=1),
        listeners: Sequence[IncidentListener] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.store = store
        self.window = window
        self.listeners = list(listeners)
        self.clock = clock

    def handle(self, alert: Alert) -> Incident:
        key = group_key(alert)
        incident = self.store.find_open_incident(key, alert.event_time - self.window)
        created = incident is None
        if incident is None:
            now = self.clock()
            incident = self.store.create_incident(
                Incident(
                    id="INC-" + uuid.uuid4().hex[:12].upper(),
                    title=_title(alert, key),
                    severity=severity_for(alert),
                    status=IncidentStatus.NEW,
                    created=now,
                    updated=now,
                    first_event_time=alert.event_time,
                    last_event_time=alert.event_time,
                    group_key=key,
                    mttd_seconds=max((now - alert.event_time).total_seconds(), 0.0),
                ),
                actor="detections",
            )
        incident = self.store.attach_alert(
            incident.id, replace(alert, severity=severity_for(alert)), actor="detections"
        )
        for listener in self.listeners:
            try:
                listener.on_incident_alert(incident, alert, created)
            except Exception:  # a failing listener must not lose the alert; it is logged with its cause
                log.exception("incident listener %r failed on %s", listener, incident.id)
        return incident
