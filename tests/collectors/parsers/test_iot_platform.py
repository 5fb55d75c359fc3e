"""The IoT-platform parser: registration, device auth and command events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from collectors.base import BadRecord, NotMyFormat
from collectors.parsers.iot_platform import OPTIONAL, IotPlatformParser, _required_checked, _required_fast
from tests.collectors.samples import DATA, parse_file, record

SAMPLE = DATA / "iot_platform" / "platform.jsonl"


def test_sample_actions_and_bad_records() -> None:
    parsed = parse_file(IotPlatformParser(), SAMPLE)
    assert [e.get("event.action") for e in parsed.events] == [
        "device-registered", "auth-failure", "command-sent", "command-result", "device-deregistered",
    ]  # fmt: skip
    assert [reason for _, reason in parsed.bad] == [
        "key 'event_type': 'reboot' is not one of device_registered, device_deregistered, device_updated, "
        "auth_success, auth_failure, command_sent, command_result, firmware_update, connected, disconnected",
        "key 'device.id' is missing",
        "key 'actor.ip': '10.0.0.300' is not an IP address",
        "key 'device' must be an object, not str",
        "key 'result': 'ok' is not one of failure, success",
    ]


def test_registration_maps_every_field() -> None:
    line = SAMPLE.read_text().splitlines()[0]
    [event] = IotPlatformParser().parse(record(line))
    assert event.timestamp == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    assert dict(event.fields) == {
        "event.kind": "event",
        "event.category": ("iot", "configuration"),
        "event.type": ("creation",),
        "event.action": "device-registered",
        "event.outcome": "success",
        "event.dataset": "iot.platform",
        "event.original": line,
        "iot.platform": "iot-hn-01",
        "iot.device.id": "sl-0231",
        "iot.device.type": "streetlight",
        "iot.device.vendor": "Telensa",
        "iot.device.model": "PLANet",
        "iot.device.firmware": "4.2.1",
        "iot.mqtt.client_id": "field-app",
        "host.name": "sl-0231",
        "user.name": "installer3",
        "source.ip": "10.20.7.30",
        "network.protocol": "lwm2m",
        "labels.area": "hoan-kiem",
        "related.hosts": ("sl-0231",),
        "related.ip": ("10.20.7.30",),
        "related.user": ("installer3",),
        "message": "device_registered success device sl-0231 on iot-hn-01 by installer3 from 10.20.7.30",
    }


def test_auth_failure_defaults_to_failure_and_keeps_reason_verbatim() -> None:
    _, failure, command, result, _ = parse_file(IotPlatformParser(), SAMPLE).events
    assert failure.get("event.outcome") == "failure"
    assert failure.get("labels.reason") == "bad client certificate; CN=<script>alert(1)</script>"
    assert failure.get("event.category") == ("iot", "authentication")
    assert command.timestamp == datetime(2026, 11, 20, 1, 1, tzinfo=UTC)
    assert (command.get("iot.command"), command.get("user.name")) == ("dim 20%", "operator7")
    assert (result.get("event.outcome"), result.get("labels.reason")) == ("failure", "device timeout")


@pytest.mark.parametrize(
    "line", ['{"platform": "vms", "device_id": "cam-1", "event": "login"}', "plain text", '{"event_type": "x"}']
)
def test_other_formats_are_not_mine(line: str) -> None:
    with pytest.raises(NotMyFormat):
        IotPlatformParser().parse(record(line))


GOOD: dict[str, Any] = {
    "timestamp": "2026-11-20T08:00:00Z", "platform": "iot-hn-01", "event_type": "connected",
    "device": {"id": "sl-1"}, "actor": {"ip": "10.0.0.1"},
}  # fmt: skip


@pytest.mark.parametrize(
    "changes",
    [
        {}, {"actor": None}, {"actor": {}}, {"actor": "x"}, {"actor": []}, {"device": None}, {"device": "sl-1"},
        {"device": {}}, {"device": {"id": None}}, {"device": {"id": " "}}, {"device": {"id": 7}}, {"platform": ""},
        {"platform": " \t"}, {"platform": ["a"]}, {"event_type": "reboot"}, {"event_type": ["connected"]},
        {"event_type": ""}, {"timestamp": None}, {"timestamp": "\u3000"}, {"timestamp": 1}, {"platform": " x "},
        {"device": {"id": "sl-1"}, "actor": 0, "platform": None},
    ],
)  # fmt: skip
def test_fast_required_check_agrees_with_the_checked_one(changes: dict[str, Any]) -> None:
    # the fast path either accepts (and reads the very values the key-by-key checks return) or leaves
    # the record to those checks, which then raise the error the first bad key gives
    obj = {**GOOD, **changes}  # null is as good as absent, except for the SIGNATURE keys parse() checks first
    fast = _required_fast(obj)
    if fast is None:
        with pytest.raises(BadRecord):
            _required_checked(obj)
    else:
        assert fast == _required_checked(obj)


@pytest.mark.parametrize(
    ("action", "result", "outcome"),
    [
        ("connected", None, "unknown"), ("connected", "", "unknown"), ("connected", "success", "success"),
        ("auth_failure", None, "failure"), ("auth_failure", "", "failure"), ("auth_failure", "success", "success"),
    ],
)  # fmt: skip
def test_result_fast_and_checked_paths_agree(action: str, result: str | None, outcome: str) -> None:
    # null/absent and RESULTS are read inline; "" goes the checked way and must come out as absent does
    obj = {**GOOD, "event_type": action, "result": result}
    [event] = IotPlatformParser().parse(record(json.dumps(obj)))
    assert event.get("event.outcome") == outcome
    shown = "" if outcome == "unknown" else f" {outcome}"
    assert event.get("message") == f"{action}{shown} device sl-1 on iot-hn-01 from 10.0.0.1"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"result": "ok"}, "key 'result': 'ok' is not one of failure, success"),
        ({"result": 1}, "key 'result' must be a string, not int"),
        ({"result": 1, "event_type": "reboot"}, "key 'event_type': 'reboot' is not one of"),
        ({"device": {"id": "sl-1", "vendor": 5, "model": []}}, "key 'device.vendor' must be a string, not int"),
        ({"actor": {"user": False, "ip": 3}, "area": 1}, "key 'actor.user' must be a string, not bool"),
        ({"actor": {"ip": 3}, "reason": {}}, "key 'reason' must be a string, not dict"),
        ({"actor": {"ip": 3}}, "key 'actor.ip' must be a string, not int"),
        ({"protocol": 0.5}, "key 'protocol' must be a string, not float"),
    ],
)  # fmt: skip
def test_bad_values_report_the_first_bad_key(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(BadRecord) as caught:
        IotPlatformParser().parse(record(json.dumps({**GOOD, **changes})))
    assert str(caught.value).startswith(reason)


def test_empty_optional_strings_are_absent() -> None:
    obj = {**GOOD, "protocol": "", "command": "", "device": {"id": "sl-1", "type": ""}, "actor": {"ip": "", "user": ""}}
    [event] = IotPlatformParser().parse(record(json.dumps(obj)))
    assert [name for name in event.fields if name not in ("event.original", "message")] == [
        "event.kind", "event.category", "event.type", "event.action", "event.outcome", "event.dataset",
        "iot.platform", "iot.device.id", "host.name", "related.hosts",
    ]  # fmt: skip
    assert event.get("message") == "connected device sl-1 on iot-hn-01"


def test_optional_fields_come_in_optional_order() -> None:
    # parse() spells the actor and top-level keys out; the field order (part of the output) must stay OPTIONAL's
    line = SAMPLE.read_text().splitlines()[0]
    obj = json.loads(line)
    obj.update(command="dim", reason="test")
    [event] = IotPlatformParser().parse(record(json.dumps(obj)))
    assert [name for name in event.fields if name in OPTIONAL.values()] == list(OPTIONAL.values())
