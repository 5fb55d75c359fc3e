from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from collectors.base import BadRecord, NotMyFormat
from collectors.parsers.camera import EVENTS, CameraPlatformParser
from tests.collectors.samples import DATA, parse_file, record

SAMPLE = DATA / "camera.jsonl"


def test_sample_file_gives_one_event_per_good_line_and_names_the_bad_key() -> None:
    parsed = parse_file(CameraPlatformParser(), SAMPLE)
    assert [e.get("event.action") for e in parsed.events] == [
        "login", "login", "logout", "config_change", "firmware_update", "stream_access", "tamper", "offline", "online"
    ]
    assert [reason for _, reason in parsed.bad] == [
        "invalid JSON at column 90: Expecting value",
        "key 'device_id' is missing",
        "key 'src_ip': '10.20.5.300' is not an IP address",
        "key 'event': 'reboot' is not one of login, logout, config_change, firmware_update, stream_access, "
        "tamper, offline, online",
        "key 'user' must be a string, not int",
    ]
    lines = SAMPLE.read_bytes().splitlines(keepends=True)
    assert [offset for offset, _ in parsed.bad] == [str(sum(len(x) for x in lines[:i])) for i in range(9, 14)]


def test_failed_login_maps_every_field_and_keeps_detail_verbatim() -> None:
    line = SAMPLE.read_text().splitlines()[0]
    [event] = CameraPlatformParser().parse(record(line))
    assert event.timestamp == datetime(2026, 11, 20, 8, 0, 0, 123000, tzinfo=UTC)
    assert dict(event.fields) == {
        "event.kind": "event",
        "event.category": ("authentication", "iot"),
        "event.type": ("start",),
        "event.action": "login",
        "event.outcome": "failure",
        "event.dataset": "camera.platform",
        "event.original": line,
        "message": "login failure on camera cam-0042 (Dahua IPC-HFW5442E, firmware V2.840.0) reported by "
        "vms-hn-01: user admin from 10.20.5.66 to 10.20.1.42; "
        "detail: web login rejected; UA=<script>alert(1)</script> $(rm -rf /)",
        "iot.platform": "vms-hn-01",
        "iot.device.id": "cam-0042",
        "iot.device.type": "camera",
        "iot.device.vendor": "Dahua",
        "iot.device.model": "IPC-HFW5442E",
        "iot.device.firmware": "V2.840.0",
        "host.name": "cam-0042",
        "host.type": "camera",
        "user.name": "admin",
        "source.ip": "10.20.5.66",
        "destination.ip": "10.20.1.42",
        "related.hosts": ("cam-0042",),
        "related.user": ("admin",),
        "related.ip": ("10.20.5.66", "10.20.1.42"),
    }


@pytest.mark.parametrize("action", sorted(EVENTS))
def test_every_action_is_an_iot_event_with_its_category(action: str) -> None:
    line = json.dumps({"ts": "2026-11-20T08:00:00Z", "platform": "p", "device_id": "cam-1", "event": action,
                       "result": "success"})
    [event] = CameraPlatformParser().parse(record(line))
    category = event.get("event.category")
    assert "iot" in category
    if action in ("login", "logout"):
        assert category == ("authentication", "iot")
    elif action in ("config_change", "firmware_update"):
        assert category == ("configuration", "iot")
    else:
        assert category == ("iot",)


def test_optional_keys_may_be_absent_or_null_and_offsets_are_normalised() -> None:
    parsed = parse_file(CameraPlatformParser(), SAMPLE)
    tamper = parsed.events[6]
    assert tamper.get("event.outcome") == "unknown"
    assert tamper.get("message") == "tamper on camera cam-0043 reported by vms-hn-01; detail: lens covered"
    assert not {"user.name", "source.ip", "destination.ip", "iot.camera.stream"} & tamper.fields.keys()
    config = parsed.events[3]
    assert config.timestamp == datetime(2026, 11, 20, 8, 0, 3, tzinfo=UTC)  # +07:00 in the source
    assert parsed.events[5].get("iot.camera.stream") == "main"


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ({"platform": "p", "device_id": "c", "event": "login"}, "key 'ts' is missing"),
        ({"ts": "x", "platform": "p", "device_id": "c", "event": "login"}, "key 'ts': not an ISO 8601 timestamp"),
        ({"ts": 1795161600, "platform": "p", "device_id": "c", "event": "login"}, "key 'ts' must be a string"),
        ({"ts": "2026-11-20T08:00:00Z", "platform": "p", "device_id": " ", "event": "login"},
         "key 'device_id' is empty"),
        ({"ts": "2026-11-20T08:00:00Z", "platform": "p", "device_id": "c", "event": "login", "result": "ok"},
         "key 'result': 'ok' is not one of failure, success"),
        ({"ts": "2026-11-20T08:00:00Z", "platform": "p", "device_id": "c", "event": "login", "dst_ip": "cam.local"},
         "key 'dst_ip': 'cam.local' is not an IP address"),
        ({"ts": "2026-11-20T08:00:00Z", "platform": ["p"], "device_id": "c", "event": "login"},
         "key 'platform' must be a string, not list"),
    ],
)
def test_bad_records_name_the_key(obj: dict[str, object], reason: str) -> None:
    with pytest.raises(BadRecord, match=re.escape(reason)):
        CameraPlatformParser().parse(record(json.dumps(obj)))


def test_other_formats_are_not_mine() -> None:
    mqtt = (DATA / "mqtt.jsonl").read_text().splitlines()[0]
    with pytest.raises(NotMyFormat):
        CameraPlatformParser().parse(record(mqtt))
    with pytest.raises(NotMyFormat):
        CameraPlatformParser().parse(record("<34>Nov 20 08:00:00 host app: syslog"))


def test_nan_and_infinity_are_refused_before_they_reach_the_store() -> None:
    with pytest.raises(BadRecord, match="NaN is not allowed"):
        CameraPlatformParser().parse(record('{"platform": "p", "device_id": "c", "x": NaN}'))
    with pytest.raises(BadRecord, match="out of range"):
        CameraPlatformParser().parse(record('{"platform": "p", "device_id": "c", "x": 1e999}'))
