"""Escalation to the operations centre and to emergency agencies: a versioned JSON payload over HTTP.

Decree 269 Điều 33.4 asks for response scenarios directly connected to the
emergency agencies.  An escalation goes to an HTTP connector per receiving
party (e.g. ``ioc``, ``police-cyber``, ``fire-rescue``, ``health-emergency``,
``water-utility``).  The payload follows the JSON schema in
``escalation.schema.json`` beside this module (``schema``:
``citysoc.escalation/1``); a receiver dedupes on ``escalation_id``, which is
also sent as the ``Idempotency-Key`` header.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from playbooks.actions import support
from playbooks.actions.base import ActionContext, ActionError, Impact, action
from playbooks.actions.support import incident_brief, need_incident, now, secrets, simulated, translated
from playbooks.connectors import http
from playbooks.connectors.config import HttpConfig

SCHEMA_ID = "citysoc.escalation/1"
SCHEMA_FILE = Path(__file__).with_name("escalation.schema.json")
#: Điều 33.4: routine, special (đặc biệt) and emergency (khẩn cấp) situations.
SITUATIONS = ("routine", "special", "emergency")
#: entity fields passed on: who and what is affected; personal-data fields (user.*) are not sent out
SHARED_ENTITIES = (
    "asset.id", "asset.name", "asset.agency", "asset.sector", "asset.domain", "asset.security_level",
    "asset.criticality", "asset.area", "source.ip", "destination.ip", "host.name", "iot.device.id", "ot.plc.id",
    "destination.domain", "url.domain", "service.name",
)  # fmt: skip


@cache
def escalation_schema() -> dict[str, Any]:
    """The JSON schema (draft 2020-12) of the escalation payload."""
    data: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return data


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace(";", "\n").splitlines() if line.strip()]


@action("escalate", Impact.NOTIFY)
def escalate(
    ctx: ActionContext,
    to: str,
    situation: str,
    summary: str,
    requested_actions: str = "",
    responsible: str = "",
    contact: str = "",
) -> dict[str, Any]:
    """Escalate the incident to a receiving party (an HTTP connector named ``to``) with the versioned payload.

    ``situation`` is ``routine``, ``special`` or ``emergency``;
    ``requested_actions`` lists what the receiver is asked to do (one per line
    or separated by ``;``); ``responsible`` names who leads the response.
    """
    incident_id = need_incident(ctx, "escalate")
    if situation not in SITUATIONS:
        raise ActionError(f"escalate: situation must be one of {', '.join(SITUATIONS)}, got {situation!r}")
    config = support.connector(ctx, to, HttpConfig)
    brief = incident_brief(ctx)
    entities = {k: v for k, v in brief["entities"].items() if k in SHARED_ENTITIES}
    payload = {
        "schema": SCHEMA_ID,
        "escalation_id": ctx.idempotency_key,
        "sent_at": now(),
        "to": to,
        "situation": situation,
        "summary": summary,
        "requested_actions": _lines(requested_actions),
        "responsible": responsible,
        "contact": contact,
        "incident": {
            "id": incident_id,
            "title": brief["title"],
            "severity": brief["severity"],
            "status": brief["status"],
            "tags": brief["tags"],
            "first_event_time": brief["first_event_time"],
            "last_event_time": brief["last_event_time"],
            "alert_count": brief["alert_count"],
            "agencies": entities.get("asset.agency", []),
            "sectors": entities.get("asset.sector", []),
            "areas": entities.get("asset.area", []),
            "entities": entities,
        },
        "run_id": ctx.run_id,
        "sender": "citysoc",
    }
    if ctx.drill:
        return simulated(method="POST", url=config.url, payload=payload)
    with translated("escalate"):
        response = http.request_json(config, secrets(ctx), "POST", payload, ctx.idempotency_key)
    ctx.store.append_timeline(
        incident_id, "escalation", ctx.actor,
        {"to": to, "situation": situation, "escalation_id": ctx.idempotency_key, "status": response.status},
    )
    return {"to": to, "situation": situation, "escalation_id": ctx.idempotency_key, "status": response.status}
