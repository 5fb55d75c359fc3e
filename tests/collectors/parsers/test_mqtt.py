from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from collectors.base import BadRecord, NotMyFormat
from collectors.parsers.mqtt import MqttTelemetryParser, parse_message, telemetry_fields
from tests.collectors.samples import DATA, parse_file, record

SAMPLE = DATA / "mqtt.jsonl"


def test_sample_file_gives_exact_events_and_bad_records() -> None:
    parsed = parse_file(MqttTelemetryParser(), SAMPLE)
    assert [e.get("iot.device.id") for e in parsed.events] == ["aq-001", "sl-0107", "wm-3301"]
    assert [reason for _, reason in parsed.bad] == [
        "payload: sensor.pm is nested more than one level deep",
        "topic 'vendor/aq-003/up' does not match city/<area>/<device_type>/<device_id>/telemetry",
        "invalid JSON: NaN is not allowed in a number field",
    ]


def test_telemetry_event_fields_are_exact() -> None:
    line = SAMPLE.read_text().splitlines()[0]
    [event] = MqttTelemetryParser().parse(record(line))
    assert event.timestamp == datetime(2026, 11, 20, 8, 0, 0, 250000, tzinfo=UTC)
    assert dict(event.fields) == {
        "event.kind": "metric",
        "event.category": ("iot",),
        "event.type": ("info",),
        "event.action": "telemetry",
        "event.dataset": "iot.mqtt",
        "event.original": line,
        "message": "telemetry from air-quality aq-001 in ba-dinh",
        "iot.mqtt.topic": "city/ba-dinh/air-quality/aq-001/telemetry",
        "iot.mqtt.client_id": "aq-001",
        "iot.device.id": "aq-001",
        "iot.device.type": "air-quality",
        "labels.area": "ba-dinh",
        "iot.telemetry.battery": 3.87,
        "iot.telemetry.no2": 22.0,
        "iot.telemetry.pm25": 41.5,
    }


def test_nested_objects_flatten_one_level_lists_stay_and_nulls_drop() -> None:
    parsed = parse_file(MqttTelemetryParser(), SAMPLE)
    light, meter = parsed.events[1], parsed.events[2]
    assert light.timestamp == datetime(2026, 11, 20, 8, 0, 1, 500000, tzinfo=UTC)  # epoch seconds
    telemetry = {k: v for k, v in light.fields.items() if k.startswith("iot.telemetry.")}
    assert telemetry == {"iot.telemetry.gps_lat": 21.0285, "iot.telemetry.gps_lon": 105.8542,
                         "iot.telemetry.lamp_on": True, "iot.telemetry.power_w": 118, "iot.telemetry.status": "ok"}
    assert meter.get("iot.telemetry.flow_lpm") == (12.5, 12.75, 13.0)
    assert "iot.telemetry.alarm" not in meter.fields
    assert meter.timestamp == datetime(2026, 11, 20, 8, 0, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"a_b": 1, "a": {"b": 2}}, "key 'a_b' occurs twice"),
        ({"": 1}, "empty key"),
        ({"v": [{"x": 1}]}, "list 'v' holds objects"),
    ],
)
def test_payload_shapes_that_are_not_telemetry(payload: dict[str, object], reason: str) -> None:
    with pytest.raises(BadRecord, match=reason):
        telemetry_fields(payload)


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ({"topic": 7, "payload": {}, "ts": "2026-11-20T08:00:00Z"}, "key 'topic' must be a string"),
        ({"topic": "city/a/b/c/telemetry", "payload": [1], "ts": "2026-11-20T08:00:00Z"}, "key 'payload' must be"),
        ({"topic": "city/a/b/c/telemetry", "ts": "2026-11-20T08:00:00Z"}, "key 'payload' is missing"),
        ({"topic": "city/a/b/c/telemetry", "payload": {}}, "key 'ts' is missing"),
        ({"topic": "city/a/b/c/telemetry", "payload": {}, "ts": True}, "key 'ts' must be a string or a number"),
        ({"topic": "city/a/b/c/telemetry", "payload": {}, "ts": 1e300}, "not a usable epoch time"),
        ({"topic": "city/a/b/c/telemetry", "payload": {}, "ts": "now", "client_id": 1}, "key 'client_id'"),
    ],
)
def test_bad_messages_name_the_key(obj: dict[str, object], reason: str) -> None:
    with pytest.raises(BadRecord, match=reason):
        MqttTelemetryParser().parse(record(json.dumps(obj)))


def test_json_without_topic_is_not_mine() -> None:
    with pytest.raises(NotMyFormat):
        MqttTelemetryParser().parse(record('{"ts": "2026-11-20T08:00:00Z", "platform": "vms"}'))


def test_parse_message_serves_a_live_subscriber() -> None:
    received = datetime(2026, 11, 20, 8, 0, 0, tzinfo=UTC)
    payload = b'{"pm25": 41.5, "gps": {"lat": 21.0}}'
    event = parse_message("city/ba-dinh/air-quality/aq-001/telemetry", payload, "aq-001", received)
    assert event.timestamp == received
    assert event.get("iot.telemetry.pm25") == 41.5 and event.get("iot.telemetry.gps_lat") == 21.0
    assert event.get("event.original") == payload.decode()
    assert parse_message("city/ba-dinh/air-quality/aq-001/telemetry", payload, "aq-001", received).id == event.id
    with pytest.raises(BadRecord, match="payload is not UTF-8"):
        parse_message("city/a/b/c/telemetry", b"\xff\xfe", None, received)
    with pytest.raises(BadRecord, match="payload is not a JSON object"):
        parse_message("city/a/b/c/telemetry", b"41.5", None, received)
