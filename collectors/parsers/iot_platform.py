"""IoT-platform parser: the audit log of a city IoT platform (device registry, device auth, commands).

The format (CitySOC's documented export format for IoT platforms; platforms
that log otherwise are mapped to it by their connector) is one JSON object per
line::

    {"timestamp": "2026-11-20T08:00:00Z", "platform": "iot-hn-01", "event_type": "command_sent",
     "result": "success", "protocol": "mqtt", "reason": null,
     "device": {"id": "sl-0231", "type": "streetlight", "vendor": "Telensa", "model": "PLANet", "firmware": "4.2.1"},
     "actor": {"user": "operator7", "ip": "10.20.7.15", "client_id": "ops-console"},
     "command": "dim", "area": "hoan-kiem"}

Required: ``timestamp``, ``platform``, ``event_type`` (one of :data:`EVENTS`)
and ``device.id``; every other key is optional or ``null``.  ``result`` is
``success`` or ``failure``.  ``reason``, ``command`` and the actor come from
outside the platform and are copied verbatim, never interpreted.
"""

from __future__ import annotations

from typing import Any, ClassVar

from collectors.base import BadRecord, NotMyFormat, Parser, RawRecord, register_parser
from collectors.parsers.ecs_json import load_json_object
from store.errors import EventValidationError
from store.event import Event, Value, normal_ip, parse_ts, stable_id

#: event_type -> (event.category, event.type); every category list includes "iot"
EVENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "device_registered": (("iot", "configuration"), ("creation",)),
    "device_deregistered": (("iot", "configuration"), ("deletion",)),
    "device_updated": (("iot", "configuration"), ("change",)),
    "auth_success": (("iot", "authentication"), ("start",)),
    "auth_failure": (("iot", "authentication"), ("start",)),
    "command_sent": (("iot",), ("change",)),
    "command_result": (("iot",), ("info",)),
    "firmware_update": (("iot", "configuration"), ("change",)),
    "connected": (("iot", "network"), ("start",)),
    "disconnected": (("iot", "network"), ("end",)),
}
RESULTS: frozenset[str] = frozenset({"success", "failure"})
#: a JSON object with all these keys is an IoT-platform record
SIGNATURE: tuple[str, ...] = ("platform", "event_type", "device")
#: (object, key) -> event field; object "" is the top level
OPTIONAL: dict[tuple[str, str], str] = {
    ("device", "type"): "iot.device.type", ("device", "vendor"): "iot.device.vendor",
    ("device", "model"): "iot.device.model", ("device", "firmware"): "iot.device.firmware",
    ("actor", "user"): "user.name", ("actor", "client_id"): "iot.mqtt.client_id",
    ("", "command"): "iot.command", ("", "protocol"): "network.protocol", ("", "area"): "labels.area",
    ("", "reason"): "labels.reason",
}  # fmt: skip


def _string(obj: dict[str, Any], key: str, where: str, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise BadRecord(f"key '{where}{key}' is missing")
        return None
    if not isinstance(value, str):
        raise BadRecord(f"key '{where}{key}' must be a string, not {type(value).__name__}")
    if required and not value.strip():
        raise BadRecord(f"key '{where}{key}' is empty")
    return value or None


def _required(obj: dict[str, Any], key: str, where: str) -> str:
    value = _string(obj, key, where, required=True)
    if value is None:  # _string raised already; this keeps the type narrow
        raise BadRecord(f"key '{where}{key}' is missing")
    return value


def _object(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRecord(f"key {key!r} must be an object, not {type(value).__name__}")
    return value


class IotPlatformParser(Parser):
    """Device registration, device authentication and command events from a city IoT platform."""

    name: ClassVar[str] = "iot.platform"
    dataset: ClassVar[str] = "iot.platform"
    description: ClassVar[str] = "IoT-platform JSON audit lines: device registration, auth failures, commands."

    def parse(self, record: RawRecord) -> list[Event]:
        obj = load_json_object(record.data)
        if not all(key in obj for key in SIGNATURE):
            raise NotMyFormat("JSON object without 'platform', 'event_type' and 'device' is not an IoT-platform event")
        device = _object(obj, "device")
        actor = _object(obj, "actor")
        platform = _required(obj, "platform", "")
        action = _required(obj, "event_type", "")
        device_id = _required(device, "id", "device.")
        stamp = _required(obj, "timestamp", "")
        if action not in EVENTS:
            raise BadRecord(f"key 'event_type': {action!r} is not one of {', '.join(EVENTS)}")
        result = _string(obj, "result", "")
        if action == "auth_failure":
            result = result or "failure"
        if result is not None and result not in RESULTS:
            raise BadRecord(f"key 'result': {result!r} is not one of failure, success")
        try:
            timestamp = parse_ts(stamp)
        except EventValidationError as exc:
            raise BadRecord(f"key 'timestamp': {exc}") from exc
        category, types = EVENTS[action]
        fields: dict[str, Value] = {
            "event.kind": "event",
            "event.category": category,
            "event.type": types,
            "event.action": action.replace("_", "-"),
            "event.outcome": result or "unknown",
            "event.dataset": self.dataset,
            "event.original": record.data,
            "iot.platform": platform,
            "iot.device.id": device_id,
            "host.name": device_id,
            "related.hosts": (device_id,),
        }
        sources = {"": obj, "device": device, "actor": actor}
        for (where, key), target in OPTIONAL.items():
            value = _string(sources[where], key, f"{where}." if where else "")
            if value is not None:
                fields[target] = value.lower() if target == "network.protocol" else value
        ip = _string(actor, "ip", "actor.")
        if ip is not None:
            try:
                fields["source.ip"] = normal_ip(ip)
            except ValueError:
                raise BadRecord(f"key 'actor.ip': {ip!r} is not an IP address") from None
            fields["related.ip"] = (str(fields["source.ip"]),)
        if "user.name" in fields:
            fields["related.user"] = (str(fields["user.name"]),)
        text = f"{action} {result or ''} device {device_id} on {platform}".replace("  ", " ")
        if "iot.command" in fields:
            text += f" command {fields['iot.command']}"
        if "user.name" in fields:
            text += f" by {fields['user.name']}"
        if ip:
            text += f" from {fields['source.ip']}"
        if "labels.reason" in fields:
            text += f"; reason: {fields['labels.reason']}"
        fields["message"] = text
        try:
            return [Event(stable_id(self.name, record.source, record.offset, record.data), timestamp, fields)]
        except EventValidationError as exc:
            raise BadRecord(str(exc)) from exc


register_parser(IotPlatformParser)
