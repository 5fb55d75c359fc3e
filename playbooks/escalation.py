"""Escalation from the console: an analyst hands an incident to a receiving party through its connector.

:class:`ConnectorEscalator` implements :class:`detections.triage.Escalator` with the
``escalate`` action, so a manual escalation sends the same versioned payload
(``citysoc.escalation/1``) to the same HTTP connector as a playbook step would.  The
target is the connector's name (e.g. ``ioc``, ``police-cyber``); the situation follows
the incident's severity (Decree 269 Điều 33.4: routine, special, emergency).  The
console's composition root wires it when ``$CITYSOC_HOME/connectors.yml`` exists.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from playbooks.actions import REGISTRY
from playbooks.actions.base import ActionContext
from store.base import Store
from store.models import Incident, Severity


def situation_for(severity: Severity) -> str:
    """Critical incidents are emergencies, high ones special situations, the rest routine."""
    if severity >= Severity.CRITICAL:
        return "emergency"
    if severity >= Severity.HIGH:
        return "special"
    return "routine"


class ConnectorEscalator:
    """Sends a manual escalation through the ``escalate`` action; returns the escalation id."""

    def __init__(self, store: Store, home: Path) -> None:
        self.store = store
        self.home = home

    def escalate(self, incident: Incident, target: str, reason: str, actor: str) -> str:
        key = uuid.uuid4().hex  # every manual escalation is a new one; the receiver dedupes on it
        ctx = ActionContext(
            store=self.store,
            run_id=f"manual-{key[:12]}",
            incident_id=incident.id,
            home=self.home,
            actor=actor,
            step="escalate",
            idempotency_key=key,
        )
        spec = REGISTRY.get("escalate")
        spec.func(ctx, **spec.coerce({"to": target, "situation": situation_for(incident.severity), "summary": reason,
                                      "responsible": actor}))  # fmt: skip
        return key
