"""What the action modules share: connector look-up, error translation, the incident as plain data."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, TypeVar

from playbooks.actions.base import ActionContext, ActionError, NotConfigured, TransientActionError
from playbooks.connectors.config import HttpConfig, MqttConfig, SmtpConfig, load_connectors
from playbooks.connectors.errors import ConnectorError, TransientConnectorError
from playbooks.connectors.secrets import SecretStore
from store.errors import StoreError
from store.event import format_ts

C = TypeVar("C", HttpConfig, SmtpConfig, MqttConfig)


def connector(ctx: ActionContext, name: str, kind: type[C]) -> C:
    with translated(f"connector {name!r}"):
        connectors = load_connectors(ctx.home)
    if name not in connectors.names():
        raise NotConfigured(
            f"connector {name!r} is not configured in {connectors.source} "
            f"(configured: {', '.join(connectors.names()) or 'none'}); see docs/actions.md"
        )
    with translated(f"connector {name!r}"):
        return connectors.get(name, kind)


def secrets(ctx: ActionContext) -> SecretStore:
    return SecretStore(ctx.home)


@contextmanager
def translated(where: str) -> Iterator[None]:
    """Connector errors as action errors, keeping "worth retrying" apart from "wrong"."""
    try:
        yield
    except TransientConnectorError as exc:
        raise TransientActionError(f"{where}: {exc}") from exc
    except ConnectorError as exc:
        raise ActionError(f"{where}: {exc}") from exc


def simulated(**plan: Any) -> dict[str, Any]:
    """The output of a dry-run: what the action would have done, and that it did not."""
    return {"simulated": True, **plan}


def now() -> str:
    return format_ts(datetime.now(timezone.utc))


def need_incident(ctx: ActionContext, action_name: str) -> str:
    if ctx.incident_id is None:
        raise ActionError(f"{action_name} needs an incident (the run has none)")
    return ctx.incident_id


def incident_brief(ctx: ActionContext) -> dict[str, Any]:
    """The incident as plain data for payloads sent out (no event content beyond its entities)."""
    if ctx.incident_id is None:
        return {}
    try:
        incident = ctx.store.get_incident(ctx.incident_id)
    except StoreError as exc:
        raise ActionError(f"incident {ctx.incident_id}: {exc}") from exc
    entities = {k: list(v) for k, v in incident.entities.items()}
    return {
        "id": incident.id,
        "title": incident.title,
        "severity": incident.severity.label,
        "status": incident.status.value,
        "tags": list(incident.tags),
        "first_event_time": format_ts(incident.first_event_time),
        "last_event_time": format_ts(incident.last_event_time),
        "alert_count": incident.alert_count,
        "entities": entities,
    }


def already_done(ctx: ActionContext, incident_id: str, kind: str) -> dict[str, Any] | None:
    """The timeline entry this step wrote before (same idempotency key), if it did."""
    for entry in ctx.store.timeline(incident_id):
        if entry.kind == kind and entry.data.get("key") == ctx.idempotency_key:
            return dict(entry.data)
    return None
