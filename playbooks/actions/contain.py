"""Containment: block lists, firewall rules, accounts, and taking devices or OT processes to a safe state.

``block_ip``/``block_domain`` append to managed block-list files under
``$CITYSOC_HOME/blocklists/`` that firewalls and DNS resolvers consume;
``firewall_block`` calls a firewall's HTTP API; ``disable_account`` an
identity system's.  ``isolate_device`` and ``ot_safe_state`` publish commands
to the IoT platform and the OT gateway over MQTT: the first takes a device
that delivers a public service off line, the second writes to OT, so both
need an approval step and a dry-run before them.  Every value that names a
target is validated (an address, a domain, an identifier) before anything
is sent, so event content cannot reach a command as anything but data.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Any

from playbooks.actions import support
from playbooks.actions.base import ActionContext, ActionError, Impact, action
from playbooks.actions.support import now, secrets, simulated, translated
from playbooks.actions.ticket import mapped
from playbooks.connectors import http, mqtt
from playbooks.connectors.config import HttpConfig, MqttConfig

DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$")
ACCOUNT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@\\-]{0,127}$")
LIST_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SAFE_MODES = ("manual", "hold", "local")


def ip_address(value: str, action_name: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError as exc:
        raise ActionError(f"{action_name}: {value!r} is not an IP address") from exc


def domain_name(value: str, action_name: str) -> str:
    name = value.strip().rstrip(".").lower()
    if not DOMAIN.match(name):
        raise ActionError(f"{action_name}: {value!r} is not a domain name")
    return name


def _append_once(ctx: ActionContext, blocklist: str, value: str, reason: str, action_name: str) -> dict[str, Any]:
    if not LIST_NAME.match(blocklist):
        raise ActionError(f"{action_name}: block-list name {blocklist!r} must be letters, digits, - or _")
    path = ctx.home / "blocklists" / f"{blocklist}.txt"
    if ctx.drill:
        return simulated(blocked=value, file=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    present = path.exists() and value in {line.split("#", 1)[0].strip() for line in path.read_text().splitlines()}
    if not present:
        # the note is one line of printable text: the file is line-oriented and read by other tools
        note = " ".join("".join(c if c.isprintable() else " " for c in reason).split())[:200]
        with path.open("a", encoding="utf-8") as fh:
            fh.write(f"{value}  # {ctx.incident_id or ''} {note}\n")
            fh.flush()
            os.fsync(fh.fileno())
    return {"blocked": value, "file": str(path), "already_listed": present}


@action("block_ip", Impact.CONTAIN, idempotent=True)
def block_ip(ctx: ActionContext, ip: str, reason: str = "", blocklist: str = "ip-blocklist") -> dict[str, Any]:
    """Add an address to a managed block-list file that firewalls consume (one address per line)."""
    return _append_once(ctx, blocklist, ip_address(ip, "block_ip"), reason, "block_ip")


@action("block_domain", Impact.CONTAIN, idempotent=True)
def block_domain(
    ctx: ActionContext, domain: str, reason: str = "", blocklist: str = "domain-blocklist"
) -> dict[str, Any]:
    """Add a domain to a managed block-list file that DNS resolvers and proxies consume (one name per line)."""
    return _append_once(ctx, blocklist, domain_name(domain, "block_domain"), reason, "block_domain")


@action("firewall_block", Impact.CONTAIN, idempotent=True)
def firewall_block(
    ctx: ActionContext, value: str, kind: str = "ip", reason: str = "", duration_minutes: int = 0,
    connector: str = "firewall",
) -> dict[str, Any]:
    """Ask a firewall's HTTP API to block an address or domain (POST to the connector's URL).

    Body fields before mapping: ``action`` (``block``), ``type`` (``ip`` or
    ``domain``), ``value``, ``reason``, ``duration_minutes`` (0 = until
    removed), ``incident_id``, ``requested_at``.
    """
    if kind not in ("ip", "domain"):
        raise ActionError(f"firewall_block: kind must be 'ip' or 'domain', got {kind!r}")
    if not 0 <= duration_minutes <= 525600:
        raise ActionError("firewall_block: duration_minutes must be 0-525600")
    target = ip_address(value, "firewall_block") if kind == "ip" else domain_name(value, "firewall_block")
    config = support.connector(ctx, connector, HttpConfig)
    body = mapped(config, {
        "action": "block", "type": kind, "value": target, "reason": reason, "duration_minutes": duration_minutes,
        "incident_id": ctx.incident_id, "requested_at": now(),
    })
    if ctx.drill:
        return simulated(method="POST", url=config.url, body=body)
    with translated("firewall_block"):
        response = http.request_json(config, secrets(ctx), "POST", body, ctx.idempotency_key)
    return {"blocked": target, "type": kind, "status": response.status}


@action("disable_account", Impact.CONTAIN, idempotent=True)
def disable_account(
    ctx: ActionContext, account: str, reason: str = "", connector: str = "identity"
) -> dict[str, Any]:
    """Disable an account in an identity system (POST to the connector's URL); reversible by its administrators.

    Body fields before mapping: ``action`` (``disable``), ``account``, ``reason``, ``incident_id``, ``requested_at``.
    """
    if not ACCOUNT.match(account):
        raise ActionError(f"disable_account: {account!r} is not an account name (letters, digits, . _ @ -)")
    config = support.connector(ctx, connector, HttpConfig)
    body = mapped(config, {
        "action": "disable", "account": account, "reason": reason, "incident_id": ctx.incident_id,
        "requested_at": now(),
    })
    if ctx.drill:
        return simulated(method="POST", url=config.url, body=body)
    with translated("disable_account"):
        response = http.request_json(config, secrets(ctx), "POST", body, ctx.idempotency_key)
    return {"disabled": account, "status": response.status}


def _command(ctx: ActionContext, connector: str, target: str, command: dict[str, Any], name: str) -> dict[str, Any]:
    if not mqtt.TARGET.match(target):
        raise ActionError(f"{name}: {target!r} is not a device or asset id (letters, digits, '.', '_', ':', '-')")
    config = support.connector(ctx, connector, MqttConfig)
    with translated(name):
        topic = mqtt.command_topic(config, target)
    payload = {**command, "incident_id": ctx.incident_id, "request_id": ctx.idempotency_key, "issued_at": now()}
    if ctx.drill:
        return simulated(topic=topic, payload=payload)
    with translated(name):
        return mqtt.publish_json(config, secrets(ctx), topic, payload)


@action("isolate_device", Impact.PUBLIC_SERVICE_CUT, idempotent=True)
def isolate_device(
    ctx: ActionContext, device_id: str, reason: str = "", connector: str = "iot-platform"
) -> dict[str, Any]:
    """Quarantine an IoT device or camera: the IoT platform cuts it off the network except its management channel.

    Publishes ``{"command": "quarantine", "device_id", "reason", "incident_id",
    "request_id", "issued_at"}`` to ``<topic_prefix>/<device_id>/command``.
    The device stops serving the public (a camera stops streaming), hence the impact tier.
    """
    out = _command(ctx, connector, device_id, {"command": "quarantine", "device_id": device_id, "reason": reason},
                   "isolate_device")
    return {"device_id": device_id, **out}


@action("release_device", Impact.CONTAIN, idempotent=True)
def release_device(
    ctx: ActionContext, device_id: str, reason: str = "", connector: str = "iot-platform"
) -> dict[str, Any]:
    """Undo ``isolate_device`` (the compensation step): publishes ``{"command": "release", ...}`` the same way."""
    out = _command(ctx, connector, device_id, {"command": "release", "device_id": device_id, "reason": reason},
                   "release_device")
    return {"device_id": device_id, **out}


@action("ot_safe_state", Impact.OT_WRITE, idempotent=True)
def ot_safe_state(
    ctx: ActionContext, asset_id: str, mode: str = "manual", reason: str = "", connector: str = "ot-gateway"
) -> dict[str, Any]:
    """Ask the OT gateway to put a station in a safe state: ``manual`` (operators take over from remote control),
    ``hold`` (keep current setpoints, refuse remote writes) or ``local`` (control from the local panel only).

    Publishes ``{"command": "safe-state", "asset_id", "mode", "reason", ...}`` to
    ``<topic_prefix>/<asset_id>/command``.  Writes to OT: approval and a dry-run first, always.
    """
    if mode not in SAFE_MODES:
        raise ActionError(f"ot_safe_state: mode must be one of {', '.join(SAFE_MODES)}, got {mode!r}")
    out = _command(ctx, connector, asset_id,
                   {"command": "safe-state", "asset_id": asset_id, "mode": mode, "reason": reason}, "ot_safe_state")
    return {"asset_id": asset_id, "mode": mode, **out}

