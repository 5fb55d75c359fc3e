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

from typing import Any, ClassVar, cast

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
#: (object, key) -> event field, in the order parse() adds them (a test pins it); object "" is the top level
OPTIONAL: dict[tuple[str, str], str] = {
    ("device", "type"): "iot.device.type", ("device", "vendor"): "iot.device.vendor",
    ("device", "model"): "iot.device.model", ("device", "firmware"): "iot.device.firmware",
    ("actor", "user"): "user.name", ("actor", "client_id"): "iot.mqtt.client_id",
    ("", "command"): "iot.command", ("", "protocol"): "network.protocol", ("", "area"): "labels.area",
    ("", "reason"): "labels.reason",
}  # fmt: skip

#: event_type -> (event.category, event.type, event.action): what each action sets, worked out once
_ACTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    action: (category, types, action.replace("_", "-")) for action, (category, types) in EVENTS.items()
}
#: the OPTIONAL device keys, in OPTIONAL's order: plain copies
_DEVICE_FIELDS: tuple[tuple[str, str], ...] = tuple(
    (key, target) for (where, key), target in OPTIONAL.items() if where == "device"
)
#: the other OPTIONAL keys, in OPTIONAL's order: (in the actor object, key, field, the key as errors name it,
#: lower-cased) -- network.protocol is kept lower-case
_OTHER_FIELDS: tuple[tuple[bool, str, str, str, bool], ...] = tuple(
    (where == "actor", key, target, f"{where}.{key}" if where else key, target == "network.protocol")
    for (where, key), target in OPTIONAL.items()
    if where != "device"
)


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


_Required = tuple[dict[str, Any], dict[str, Any], str, str, str, str]


def _required_fast(obj: dict[str, Any]) -> _Required | None:
    """What :func:`_required_checked` returns, for a record it accepts without a doubt; None otherwise.

    Accepted here: "device" an object with a non-blank string "id", "actor" an object or absent/null,
    non-blank string "platform" and "timestamp", and "event_type" one of EVENTS -- exactly the records
    the checks pass, read with a few type tests instead of a helper call per key.
    """
    device = obj["device"]
    actor = obj.get("actor")
    if actor is None:
        actor = {}
    platform = obj["platform"]
    action = obj["event_type"]
    stamp = obj.get("timestamp")
    device_id = device.get("id") if type(device) is dict else None
    if (
        type(actor) is dict and type(platform) is str and type(action) is str and type(device_id) is str
        and type(stamp) is str and action in EVENTS and platform.strip() and device_id.strip() and stamp.strip()
    ):  # fmt: skip
        return device, actor, platform, action, device_id, stamp
    return None


def _required_checked(obj: dict[str, Any]) -> _Required:
    """The required keys (and the device and actor objects), checked one by one: the first problem is the error."""
    device = _object(obj, "device")
    actor = _object(obj, "actor")
    platform = _required(obj, "platform", "")
    action = _required(obj, "event_type", "")
    device_id = _required(device, "id", "device.")
    stamp = _required(obj, "timestamp", "")
    if action not in EVENTS:
        raise BadRecord(f"key 'event_type': {action!r} is not one of {', '.join(EVENTS)}")
    return device, actor, platform, action, device_id, stamp


def _result_checked(obj: dict[str, Any], action: str) -> str:
    """event.outcome's source ("" for none): "result", which auth_failure defaults to "failure"."""
    result = _string(obj, "result", "")
    if action == "auth_failure":
        result = result or "failure"
    if result is not None and result not in RESULTS:
        raise BadRecord(f"key 'result': {result!r} is not one of failure, success")
    return result or ""


def _not_a_string(name: str, value: object) -> BadRecord:
    """The error of an optional key whose value is neither a string nor null (as _string words it)."""
    return BadRecord(f"key '{name}' must be a string, not {type(value).__name__}")


class IotPlatformParser(Parser):
    """Device registration, device authentication and command events from a city IoT platform."""

    name: ClassVar[str] = "iot.platform"
    dataset: ClassVar[str] = "iot.platform"
    description: ClassVar[str] = "IoT-platform JSON audit lines: device registration, auth failures, commands."

    def parse(self, record: RawRecord) -> list[Event]:
        obj = load_json_object(record.data)
        if "platform" not in obj or "event_type" not in obj or "device" not in obj:  # SIGNATURE
            raise NotMyFormat("JSON object without 'platform', 'event_type' and 'device' is not an IoT-platform event")
        required = _required_fast(obj)
        device, actor, platform, action, device_id, stamp = required or _required_checked(obj)
        # "result": absent/null or one of RESULTS here; "" and anything to reject go the checked way
        result = obj.get("result")
        if result is None:
            result = "failure" if action == "auth_failure" else ""
        elif type(result) is not str or result not in RESULTS:
            result = _result_checked(obj, action)
        try:
            timestamp = parse_ts(stamp)
        except EventValidationError as exc:
            raise BadRecord(f"key 'timestamp': {exc}") from exc
        category, types, dashed = _ACTIONS[action]
        fields: dict[str, Value] = {
            "event.kind": "event",
            "event.category": category,
            "event.type": types,
            "event.action": dashed,
            "event.outcome": result or "unknown",
            "event.dataset": self.dataset,
            "event.original": record.data,
            "iot.platform": platform,
            "iot.device.id": device_id,
            "host.name": device_id,
            "related.hosts": (device_id,),
        }
        # The OPTIONAL keys in OPTIONAL's order (the field order): each is a non-empty string (kept),
        # null/absent or "" (left out), or anything else (BadRecord) -- what _string(..., required=False) does.
        for key, target in _DEVICE_FIELDS:
            value = device.get(key)
            if type(value) is str:
                if value:
                    fields[target] = value
            elif value is not None:
                raise _not_a_string(f"device.{key}", value)
        for in_actor, key, target, name, lower in _OTHER_FIELDS:
            value = (actor if in_actor else obj).get(key)
            if type(value) is str:
                if value:
                    fields[target] = value.lower() if lower else value
            elif value is not None:
                raise _not_a_string(name, value)
        ip = actor.get("ip")
        if type(ip) is str:
            if ip:
                try:
                    ip = normal_ip(ip)
                except ValueError:
                    raise BadRecord(f"key 'actor.ip': {ip!r} is not an IP address") from None
                fields["source.ip"] = ip
                fields["related.ip"] = (ip,)
        elif ip is not None:
            raise _not_a_string("actor.ip", ip)
        # the strings the loop above kept (None when left out)
        user, command, reason = cast(
            "tuple[str | None, str | None, str | None]",
            (fields.get("user.name"), fields.get("iot.command"), fields.get("labels.reason")),
        )
        if user:
            fields["related.user"] = (user,)
        # the .replace drops the double space an absent result leaves (and, as ever, any other in the three values)
        text = f"{action} {result} device {device_id} on {platform}".replace("  ", " ")
        if command:
            text += f" command {command}"
        if user:
            text += f" by {user}"
        if ip:
            text += f" from {ip}"
        if reason:
            text += f"; reason: {reason}"
        fields["message"] = text
        try:
            return [Event(stable_id(self.name, record.source, record.offset, record.data), timestamp, fields)]
        except EventValidationError as exc:
            raise BadRecord(str(exc)) from exc


register_parser(IotPlatformParser)
