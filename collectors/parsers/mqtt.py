"""MQTT telemetry parser: city sensor messages, as JSON lines or straight from a subscriber.

The city's devices publish on ``city/<area>/<device_type>/<device_id>/telemetry``.
A bridge (or the lab) writes each message as one JSON line::

    {"ts": "2026-11-20T08:00:00Z", "topic": "city/ba-dinh/air-quality/aq-001/telemetry",
     "client_id": "aq-001", "payload": {"pm25": 41.5, "no2": 22.0, "gps": {"lat": 21.03, "lon": 105.83}}}

Scalar payload values become ``iot.telemetry.<key>``; an object one level down
is joined with ``_`` (``iot.telemetry.gps_lat``); lists of scalars are kept as
lists.  Anything nested deeper is a bad record: telemetry is a flat set of
readings, and a deeper structure means the device speaks another format.

:func:`parse_message` is the same mapping for a live MQTT subscriber, which has
the topic, the payload bytes, the client id and the receive time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from collectors.base import BadRecord, NotMyFormat, Parser, RawRecord, register_parser
from collectors.parsers.ecs_json import load_json_object
from store.errors import EventValidationError
from store.event import Event, Value, format_ts, parse_ts, stable_id, utc

DATASET = "iot.mqtt"
#: the city topic scheme; the named groups fill the device fields
TOPIC_PATTERN = re.compile(r"city/(?P<area>[^/#+]+)/(?P<device_type>[^/#+]+)/(?P<device_id>[^/#+]+)/telemetry")


def telemetry_fields(payload: Mapping[str, Any]) -> dict[str, Value]:
    """``iot.telemetry.*`` from a payload object, flattened one level with ``_``."""
    out: dict[str, Value] = {}

    def put(key: str, value: Any) -> None:
        if not key:
            raise BadRecord("payload: empty key")
        name = f"iot.telemetry.{key}"
        if name in out:
            raise BadRecord(f"payload: key {key!r} occurs twice once nested objects are joined with '_'")
        if value is None:
            return
        if isinstance(value, list):
            if any(isinstance(v, (dict, list)) or v is None for v in value):
                raise BadRecord(f"payload: list {key!r} holds objects, lists or nulls (only numbers and strings)")
            if value:
                out[name] = tuple(value)
            return
        out[name] = value

    for key, value in payload.items():
        if isinstance(value, dict):
            for sub, inner in value.items():
                if isinstance(inner, dict):
                    raise BadRecord(f"payload: {key}.{sub} is nested more than one level deep")
                put(f"{key}_{sub}", inner)
        else:
            put(key, value)
    return out


def build_event(
    event_id: str, timestamp: datetime, topic: str, client_id: str | None, payload: Mapping[str, Any], original: str
) -> Event:
    """The telemetry event of one message."""
    match = TOPIC_PATTERN.fullmatch(topic)
    if match is None:
        raise BadRecord(f"topic {topic!r} does not match city/<area>/<device_type>/<device_id>/telemetry")
    area, device_type, device_id = match["area"], match["device_type"], match["device_id"]
    fields: dict[str, Value] = {
        "event.kind": "metric",
        "event.category": ("iot",),
        "event.type": ("info",),
        "event.action": "telemetry",
        "event.dataset": DATASET,
        "event.original": original,
        "message": f"telemetry from {device_type} {device_id} in {area}",
        "iot.mqtt.topic": topic,
        "iot.device.id": device_id,
        "iot.device.type": device_type,
        "labels.area": area,
    }
    if client_id:
        fields["iot.mqtt.client_id"] = client_id
    fields.update(telemetry_fields(payload))
    try:
        return Event(event_id, timestamp, fields)
    except EventValidationError as exc:
        raise BadRecord(str(exc)) from exc


def parse_message(topic: str, payload: bytes, client_id: str | None, received: datetime) -> Event:
    """The event of one MQTT message as a subscriber receives it; the receive time is its time."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRecord(f"payload is not UTF-8 (byte {exc.start})") from exc
    try:
        obj = load_json_object(text)
    except NotMyFormat as exc:
        raise BadRecord(f"payload is not a JSON object: {exc}") from exc
    event_id = stable_id(DATASET, topic, client_id or "", format_ts(received), text)
    return build_event(event_id, utc(received), topic, client_id, obj, text)


def _timestamp(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            return parse_ts(value)
        except EventValidationError as exc:
            raise BadRecord(f"key 'ts': {exc}") from exc
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(float(value), tz=UTC)  # epoch seconds, as many devices send
        except (OverflowError, OSError, ValueError) as exc:
            raise BadRecord(f"key 'ts': {value!r} is not a usable epoch time") from exc
    raise BadRecord("key 'ts' is missing" if value is None else f"key 'ts' must be a string or a number, "
                    f"not {type(value).__name__}")


class MqttTelemetryParser(Parser):
    """JSON lines of MQTT telemetry messages on the city topic scheme."""

    name: ClassVar[str] = "iot.mqtt"
    dataset: ClassVar[str] = DATASET
    description: ClassVar[str] = "MQTT telemetry as JSON lines (ts, topic, client_id, payload) on city/.../telemetry."

    def parse(self, record: RawRecord) -> list[Event]:
        obj = load_json_object(record.data)
        if "topic" not in obj:
            raise NotMyFormat("JSON object without 'topic' is not an MQTT message")
        topic, client_id, payload = obj.get("topic"), obj.get("client_id"), obj.get("payload")
        if not isinstance(topic, str):
            raise BadRecord(f"key 'topic' must be a string, not {type(topic).__name__}")
        if client_id is not None and not isinstance(client_id, str):
            raise BadRecord(f"key 'client_id' must be a string, not {type(client_id).__name__}")
        if not isinstance(payload, dict):
            raise BadRecord("key 'payload' is missing" if payload is None
                            else f"key 'payload' must be an object, not {type(payload).__name__}")
        timestamp = _timestamp(obj.get("ts"))
        event_id = stable_id(self.name, record.source, record.offset, record.data)
        return [build_event(event_id, timestamp, topic, client_id, payload, record.data)]


register_parser(MqttTelemetryParser)
