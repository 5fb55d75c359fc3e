"""The IoT-platform parser: registration, device auth and command events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from collectors.base import NotMyFormat
from collectors.parsers.iot_platform import IotPlatformParser
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
