"""Grouping alerts into incidents.

Alerts that share their primary entity (attacker address, host, device, user)
within a time window land in one open incident; a new incident records its
MTTD (first malicious event -> incident creation).  Higher layers (playbooks)
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

from store.base import Store
from store.filters import EVENT_ENTITY_FIELDS
from store.models import Alert, Incident, IncidentStatus, Severity

log = logging.getLogger(__name__)

#: Entity fields that make the group key, strongest first.
GROUP_FIELDS: tuple[str, ...] = ("source.ip", "host.name", "iot.device.id", "user.name", "asset.id", "destination.ip")

#: Entity fields copied from events onto alerts and incidents (one list with the store's incident filters).
ENTITY_FIELDS: tuple[str, ...] = EVENT_ENTITY_FIELDS


class IncidentListener(Protocol):
    """Implemented by the playbooks layer to react to incidents."""

    def on_incident_alert(self, incident: Incident, alert: Alert, created: bool) -> None: ...


def group_key(alert: Alert) -> str:
    for name in GROUP_FIELDS:
        value = alert.entities.get(name)
        if value:
            return f"{name}={value}"
    return f"rule={alert.rule_id}"


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
            subject = key.split("=", 1)[1]
            incident = self.store.create_incident(
                Incident(
                    id="INC-" + uuid.uuid4().hex[:12].upper(),
                    title=f"{alert.rule_title} ({subject})",
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
