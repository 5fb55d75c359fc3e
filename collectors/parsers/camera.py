"""Camera-platform parser: the JSON lines a video-management system (VMS) writes about its cameras.

One object per line::

    {"ts": "2026-11-20T08:00:00.123Z", "platform": "vms-hn-01", "device_id": "cam-0042",
     "device_type": "camera", "vendor": "Dahua", "model": "IPC-HFW5442E", "firmware": "V2.840.0",
     "event": "login", "result": "failure", "user": "admin", "src_ip": "10.20.5.66",
     "dst_ip": "10.20.1.42", "stream": "main", "detail": "web login rejected"}

``ts``, ``platform``, ``device_id`` and ``event`` are required; the other keys
may be absent or ``null``.  Keys not listed here are ignored (they stay in
``event.original``).  ``detail`` and ``user`` come from whoever talks to the
camera, so they are copied verbatim and never interpreted.
"""

from __future__ import annotations

from typing import Any, ClassVar

from collectors.base import BadRecord, NotMyFormat, Parser, RawRecord, register_parser
from collectors.parsers.ecs_json import load_json_object
from store.errors import EventValidationError
from store.event import Event, Value, normal_ip, parse_ts, stable_id

#: camera event -> (event.category, event.type); every category list includes "iot"
EVENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "login": (("authentication", "iot"), ("start",)),
    "logout": (("authentication", "iot"), ("end",)),
    "config_change": (("configuration", "iot"), ("change",)),
    "firmware_update": (("configuration", "iot"), ("change",)),
    "stream_access": (("iot",), ("access",)),
    "tamper": (("iot",), ("info",)),
    "offline": (("iot",), ("end",)),
    "online": (("iot",), ("start",)),
}
RESULTS: frozenset[str] = frozenset({"success", "failure"})
REQUIRED: tuple[str, ...] = ("ts", "platform", "device_id", "event")
OPTIONAL: tuple[str, ...] = (
    "device_type", "vendor", "model", "firmware", "result", "user", "src_ip", "dst_ip", "stream", "detail",
)  # fmt: skip
#: a JSON object with neither of these keys is some other format
SIGNATURE: frozenset[str] = frozenset({"platform", "device_id"})


def _strings(obj: dict[str, Any]) -> dict[str, str]:
    """The known keys as strings; a wrong type or a missing required key is a BadRecord naming the key."""
    out: dict[str, str] = {}
    for key in REQUIRED + OPTIONAL:
        value = obj.get(key)
        if value is None:
            if key in REQUIRED:
                raise BadRecord(f"key {key!r} is missing")
            continue
        if not isinstance(value, str):
            raise BadRecord(f"key {key!r} must be a string, not {type(value).__name__}")
        if key in REQUIRED and not value.strip():
            raise BadRecord(f"key {key!r} is empty")
        out[key] = value
    return out


def _ip(values: dict[str, str], key: str) -> str | None:
    value = values.get(key)
    if value is None or value == "":
        return None
    try:
        return normal_ip(value)
    except ValueError:
        raise BadRecord(f"key {key!r}: {value!r} is not an IP address") from None


def sentence(values: dict[str, str], src: str | None, dst: str | None) -> str:
    """A readable line for the console and full-text search; ``detail`` is appended verbatim."""
    device = values.get("device_type", "device")
    what = " ".join(filter(None, (values["event"], values.get("result"))))
    text = f"{what} on {device} {values['device_id']}"
    make = " ".join(filter(None, (values.get("vendor"), values.get("model"))))
    if values.get("firmware"):
        make = f"{make}, firmware {values['firmware']}" if make else f"firmware {values['firmware']}"
    if make:
        text += f" ({make})"
    text += f" reported by {values['platform']}"
    if values.get("user"):
        text += f": user {values['user']}"
    if src:
        text += f" from {src}"
    if dst:
        text += f" to {dst}"
    if values.get("stream"):
        text += f", stream {values['stream']}"
    if values.get("detail"):
        text += f"; detail: {values['detail']}"
    return text


class CameraPlatformParser(Parser):
    """Camera events (logins, configuration and firmware changes, streams, tamper, online state) from a VMS."""

    name: ClassVar[str] = "camera.platform"
    dataset: ClassVar[str] = "camera.platform"
    description: ClassVar[str] = "Camera-platform (VMS) JSON lines: logins, config/firmware changes, streams, tamper."

    def parse(self, record: RawRecord) -> list[Event]:
        obj = load_json_object(record.data)
        if not SIGNATURE & obj.keys():
            raise NotMyFormat("JSON object without 'platform' or 'device_id' is not a camera-platform event")
        values = _strings(obj)
        action = values["event"]
        if action not in EVENTS:
            raise BadRecord(f"key 'event': {action!r} is not one of {', '.join(EVENTS)}")
        result = values.get("result")
        if result is not None and result not in RESULTS:
            raise BadRecord(f"key 'result': {result!r} is not one of failure, success")
        try:
            timestamp = parse_ts(values["ts"])
        except EventValidationError as exc:
            raise BadRecord(f"key 'ts': {exc}") from exc
        src, dst = _ip(values, "src_ip"), _ip(values, "dst_ip")
        category, types = EVENTS[action]
        device = values["device_id"]
        fields: dict[str, Value] = {
            "event.kind": "event",
            "event.category": category,
            "event.type": types,
            "event.action": action,
            "event.outcome": result or "unknown",
            "event.dataset": self.dataset,
            "event.original": record.data,
            "message": sentence(values, src, dst),
            "iot.platform": values["platform"],
            "iot.device.id": device,
            "host.name": device,
            "related.hosts": (device,),
        }
        optional = {
            "iot.device.type": values.get("device_type"),
            "host.type": values.get("device_type"),
            "iot.device.vendor": values.get("vendor"),
            "iot.device.model": values.get("model"),
            "iot.device.firmware": values.get("firmware"),
            "iot.camera.stream": values.get("stream"),
            "user.name": values.get("user") or None,
            "source.ip": src,
            "destination.ip": dst,
        }
        fields.update({k: v for k, v in optional.items() if v is not None})
        if values.get("user"):
            fields["related.user"] = (values["user"],)
        ips = tuple(dict.fromkeys(ip for ip in (src, dst) if ip))
        if ips:
            fields["related.ip"] = ips
        try:
            event = Event(stable_id(self.name, record.source, record.offset, record.data), timestamp, fields)
        except EventValidationError as exc:
            raise BadRecord(str(exc)) from exc
        return [event]


register_parser(CameraPlatformParser)
