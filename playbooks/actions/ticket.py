"""Tickets in the city's ticketing system: a generic REST API reached through an HTTP connector.

The connector's ``url`` is the collection (``POST`` creates, ``PATCH
<url>/<ticket id>`` updates); ``field_map`` renames CitySOC's fields to the
receiver's (e.g. ``title: summary``); ``id_field`` is where the answer holds
the new ticket's id (dotted for nested, e.g. ``data.key``).  The ticket id is
recorded on the incident timeline, so ``update_ticket`` finds it and a
repeated create step does not open a second ticket.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from playbooks.actions import support
from playbooks.actions.base import ActionContext, ActionError, Impact, action
from playbooks.actions.support import incident_brief, need_incident, secrets, simulated, translated
from playbooks.connectors import http
from playbooks.connectors.config import HttpConfig


def mapped(config: HttpConfig, body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` with keys renamed by the connector's field map (unmapped keys keep their name)."""
    return {config.field_map.get(k, k): v for k, v in body.items()}


def _dig(doc: Any, path: str) -> Any:
    for part in path.split("."):
        doc = doc.get(part) if isinstance(doc, Mapping) else None
    return doc


def _recorded(ctx: ActionContext, incident_id: str, connector: str) -> list[dict[str, Any]]:
    entries = ctx.store.timeline(incident_id)
    return [dict(e.data) for e in entries if e.kind == "ticket" and e.data.get("connector") == connector]


@action("create_ticket", Impact.NOTIFY)
def create_ticket(
    ctx: ActionContext, title: str, description: str = "", priority: str = "", queue: str = "",
    connector: str = "ticketing",
) -> dict[str, Any]:
    """Open a ticket for the incident (POST to the connector's URL) and record its id on the timeline.

    Body fields before mapping: ``title``, ``description``, ``priority``,
    ``queue``, ``incident_id``, ``severity``, ``source`` (``citysoc``).
    """
    incident_id = need_incident(ctx, "create_ticket")
    config = support.connector(ctx, connector, HttpConfig)
    for done in _recorded(ctx, incident_id, connector):
        if done.get("key") == ctx.idempotency_key:
            return {"ticket_id": done["ticket_id"], "already_created": True}
    brief = incident_brief(ctx)
    body = mapped(config, {
        "title": title,
        "description": description,
        "priority": priority or brief["severity"],
        "queue": queue,
        "incident_id": incident_id,
        "severity": brief["severity"],
        "source": "citysoc",
    })
    if ctx.drill:
        return simulated(method="POST", url=config.url, body=body)
    with translated("create_ticket"):
        answer = http.request_json(config, secrets(ctx), "POST", body, ctx.idempotency_key).json()
    ticket_id = _dig(answer, config.id_field)
    if not isinstance(ticket_id, str | int) or isinstance(ticket_id, bool) or str(ticket_id) == "":
        raise ActionError(f"create_ticket: {config.url} answered without a ticket id at {config.id_field!r}")
    record = {"connector": connector, "ticket_id": str(ticket_id), "key": ctx.idempotency_key}
    ctx.store.append_timeline(incident_id, "ticket", ctx.actor, record)
    return {"ticket_id": str(ticket_id)}


@action("update_ticket", Impact.NOTIFY, idempotent=True)
def update_ticket(
    ctx: ActionContext, status: str = "", comment: str = "", ticket_id: str = "", connector: str = "ticketing"
) -> dict[str, Any]:
    """Update a ticket (PATCH ``<url>/<ticket_id>``); without ``ticket_id``, the incident's ticket on this connector.

    Body fields before mapping: ``status``, ``comment`` (only those given), ``incident_id``.
    """
    if not ticket_id:
        incident_id = need_incident(ctx, "update_ticket")
        recorded = _recorded(ctx, incident_id, connector)
        if not recorded and ctx.drill:
            # in a drill create_ticket opened nothing: say what would be updated
            return simulated(method="PATCH", ticket="the ticket create_ticket opens on " + connector,
                             status=status, comment=comment)
        if not recorded:
            raise ActionError(f"update_ticket: incident {incident_id} has no ticket on {connector!r}; create it first")
        ticket_id = recorded[-1]["ticket_id"]
    if not status and not comment:
        raise ActionError("update_ticket: give 'status' or 'comment'")
    config = support.connector(ctx, connector, HttpConfig)
    body = mapped(config, {
        **({"status": status} if status else {}),
        **({"comment": comment} if comment else {}),
        "incident_id": ctx.incident_id,
    })
    with translated("update_ticket"):
        url = f"{config.url.rstrip('/')}/{http.path_segment(ticket_id)}"
    if ctx.drill:
        return simulated(method="PATCH", url=url, body=body)
    with translated("update_ticket"):
        response = http.request_json(config, secrets(ctx), "PATCH", body, ctx.idempotency_key, url=url)
    return {"ticket_id": ticket_id, "status": response.status}
