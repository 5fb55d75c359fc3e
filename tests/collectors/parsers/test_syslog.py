from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collectors.base import BadRecord, RawRecord
from collectors.parsers.syslog import SyslogParser, parse_structured_data
from store.event import Event
from store.sqlite import SQLiteStore
from tests.collectors.samples import DATA, parse_file, record

RFC5424_EXAMPLE = (
    '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" '
    'eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] An application event log entry...'
)


def parse_one(text: str, source: str = "test:unit", offset: str = "0") -> Event:
    [event] = SyslogParser().parse(record(text, source=source, offset=offset))
    return event


def test_sample_file_gives_exact_events_and_bad_records() -> None:
    parsed = parse_file(SyslogParser(), DATA / "syslog.log")
    assert len(parsed.events) == 6
    assert [e.get("event.dataset") for e in parsed.events] == [
        "syslog", "linux.auth", "linux.auth", "linux.auth", "syslog", "syslog"
    ]
    offsets = [offset for offset, _ in parsed.bad]
    lines = (DATA / "syslog.log").read_bytes().splitlines(keepends=True)
    assert offsets == [str(sum(len(line) for line in lines[:i])) for i in (6, 7, 8)]
    reasons = [reason for _, reason in parsed.bad]
    assert reasons[0].startswith("no syslog PRI")
    assert reasons[1] == "syslog PRI 200 is out of range (0-191)"
    assert reasons[2] == "structured data: value of origin.ip is not closed with '\"'"


def test_rfc5424_header_and_structured_data_fill_exact_fields() -> None:
    event = parse_one(RFC5424_EXAMPLE)
    assert event.timestamp == datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC)
    assert dict(event.fields) == {
        "event.kind": "event",
        "event.type": ("info",),
        "event.dataset": "syslog",
        "event.original": RFC5424_EXAMPLE,
        "event.severity": 5,
        "event.provider": "evntslog",
        "log.level": "notice",
        "log.syslog.priority": 165,
        "log.syslog.facility.code": 20,
        "log.syslog.facility.name": "local4",
        "log.syslog.severity.code": 5,
        "log.syslog.severity.name": "notice",
        "log.syslog.version": "1",
        "log.syslog.hostname": "mymachine.example.com",
        "log.syslog.appname": "evntslog",
        "log.syslog.msgid": "ID47",
        "log.syslog.structured_data.exampleSDID@32473.iut": "3",
        "log.syslog.structured_data.exampleSDID@32473.eventSource": "Application",
        "log.syslog.structured_data.exampleSDID@32473.eventID": "1011",
        "log.syslog.structured_data.examplePriority@32473.class": "high",
        "host.hostname": "mymachine.example.com",
        "host.name": "mymachine.example.com",
        "process.name": "evntslog",
        "message": "An application event log entry...",
    }


def test_structured_data_survives_the_store_and_nests_one_level(tmp_path: Path) -> None:
    event = parse_one(RFC5424_EXAMPLE)
    doc = event.to_document()
    assert doc["log"]["syslog"]["structured_data"] == {
        "exampleSDID@32473.iut": "3",
        "exampleSDID@32473.eventSource": "Application",
        "exampleSDID@32473.eventID": "1011",
        "examplePriority@32473.class": "high",
    }
    with SQLiteStore(tmp_path / "s.db") as store:
        assert store.put_events([event]) == [event]
        assert store.get_event(event.id) == event


def test_structured_data_escapes_repeats_and_empty_values() -> None:
    elements, message = parse_structured_data(r'[a@1 p="x\"y\\z\]w" p="2" q=""][b c="\n"] msg')
    assert elements == {"a@1": {"p": ['x"y\\z]w', "2"], "q": [""]}, "b": {"c": ["\\n"]}}
    assert message == "msg"
    event = parse_one(r'<14>1 2026-11-20T08:00:00Z h a - - [a@1 p="1" p="2"]')
    assert event.get("log.syslog.structured_data.a@1.p") == ("1", "2")
    assert "message" not in event.fields


def test_rfc5424_nil_values_and_bom() -> None:
    received = datetime(2026, 11, 20, 8, 0, 0, tzinfo=UTC)
    [event] = SyslogParser().parse(RawRecord("<14>1 - - - - - - \ufeffhello", "test", "1", received=received))
    assert event.timestamp == received
    assert event.get("message") == "hello"
    assert not {"host.name", "log.syslog.appname", "log.syslog.procid", "log.syslog.msgid"} & event.fields.keys()


def test_rfc3164_fills_header_and_infers_the_year_from_the_receive_time() -> None:
    text = "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8"
    event = parse_one(text)  # received 2026-11-21
    assert event.timestamp == datetime(2026, 10, 11, 22, 14, 15, tzinfo=UTC)
    assert event.get("log.syslog.facility.name") == "auth"
    assert event.get("log.syslog.severity.name") == "critical"
    assert event.get("host.hostname") == "mymachine"
    assert event.get("process.name") == "su"
    assert event.get("message") == "'su root' failed for lonvick on /dev/pts/8"
    assert event.get("event.timezone") == "UTC"
    assert "log.syslog.version" not in event.fields


@pytest.mark.parametrize(
    ("stamp", "received", "expected"),
    [
        ("Dec 31 23:59:59", datetime(2027, 1, 1, 0, 0, 5, tzinfo=UTC), datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("Jan  1 00:00:01", datetime(2026, 12, 31, 23, 59, 58, tzinfo=UTC), datetime(2027, 1, 1, 0, 0, 1, tzinfo=UTC)),
        ("Feb 29 12:00:00", datetime(2025, 3, 1, tzinfo=UTC), datetime(2024, 2, 29, 12, 0, tzinfo=UTC)),
        ("Nov 21  8:00:00", datetime(2026, 11, 21, 8, 0, 1, tzinfo=UTC), datetime(2026, 11, 21, 8, 0, tzinfo=UTC)),
    ],
)
def test_rfc3164_year_is_the_one_nearest_the_receive_time(stamp: str, received: datetime, expected: datetime) -> None:
    [event] = SyslogParser().parse(RawRecord(f"<13>{stamp} host app: x", "test", "0", received=received))
    assert event.timestamp == expected


def test_rfc3164_device_time_zone_is_configurable() -> None:
    parser = SyslogParser(bsd_timezone="Asia/Ho_Chi_Minh")
    [event] = parser.parse(record("<13>Nov 20 15:00:00 cam-gw app[7]: local clock"))
    assert event.timestamp == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    assert event.get("event.timezone") == "Asia/Ho_Chi_Minh"
    assert event.get("process.pid") == 7


def test_rfc3164_without_hostname_and_with_iso_timestamp() -> None:
    event = parse_one("<13>Nov 20 08:00:00 sshd[99]: Server listening on 0.0.0.0 port 22.")
    assert "host.name" not in event.fields
    assert event.get("process.name") == "sshd" and event.get("process.pid") == 99
    event = parse_one("<13>2026-11-20T15:00:00.5+07:00 gw-01 app: rsyslog forward format")
    assert event.timestamp == datetime(2026, 11, 20, 8, 0, 0, 500000, tzinfo=UTC)
    assert event.get("host.name") == "gw-01"


def test_sshd_failed_password_for_invalid_user() -> None:
    text = "<38>1 2026-11-20T08:00:00Z ioc-web-01 sshd 4242 - - Failed password for invalid user admin " \
           "from 203.0.113.9 port 52144 ssh2"
    event = parse_one(text)
    expected = {
        "event.category": ("authentication",),
        "event.type": ("info",),
        "event.action": "ssh_login",
        "event.outcome": "failure",
        "event.dataset": "linux.auth",
        "user.name": "admin",
        "related.user": ("admin",),
        "source.ip": "203.0.113.9",
        "source.port": 52144,
        "related.ip": ("203.0.113.9",),
        "network.protocol": "ssh",
        "process.name": "sshd",
        "process.pid": 4242,
    }
    assert {k: event.get(k) for k in expected} == expected
    assert "invalid user" in event.get("message")


@pytest.mark.parametrize(
    ("message", "user", "ip", "port", "outcome"),
    [
        ("Failed password for root from 198.51.100.7 port 40022 ssh2", "root", "198.51.100.7", 40022, "failure"),
        ("Accepted password for deploy from 10.30.9.20 port 45890 ssh2", "deploy", "10.30.9.20", 45890, "success"),
        ("Accepted publickey for deploy from 2001:db8::7 port 2222 ssh2: ED25519 SHA256:kq9dV0", "deploy",
         "2001:db8::7", 2222, "success"),
        ("Failed publickey for git from 10.0.0.9 port 1 ssh2: RSA SHA256:x", "git", "10.0.0.9", 1, "failure"),
    ],
)
def test_sshd_login_lines(message: str, user: str, ip: str, port: int, outcome: str) -> None:
    event = parse_one(f"<86>Nov 20 08:01:00 db-01 sshd[4244]: {message}")
    assert (event.get("user.name"), event.get("source.ip"), event.get("source.port")) == (user, ip, port)
    assert event.get("event.outcome") == outcome
    assert event.get("event.type") == (("start",) if outcome == "success" else ("info",))


def test_other_sshd_and_non_sshd_lines_are_plain_syslog() -> None:
    event = parse_one("<86>Nov 20 08:01:00 db-01 sshd[1]: Connection closed by 10.0.0.1 port 22 [preauth]")
    assert event.get("event.dataset") == "linux.auth"
    assert not {"event.action", "event.outcome", "user.name", "source.ip"} & event.fields.keys()
    event = parse_one("<86>Nov 20 08:01:00 db-01 su[1]: Failed password for root from 10.0.0.1 port 22 ssh2")
    assert event.get("event.dataset") == "syslog" and "event.action" not in event.fields


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no syslog PRI"),
        ("Nov 20 08:01:00 host app: no pri", "no syslog PRI"),
        ("<abc>1 2026-11-20T08:00:00Z h a - - -", "no syslog PRI"),
        ("<192>1 2026-11-20T08:00:00Z h a - - -", "syslog PRI 192 is out of range"),
        ("<34>garbage", "neither an RFC 5424 header"),
        ("<34>", "neither an RFC 5424 header"),
        ("<34>2 2026-11-20T08:00:00Z h a - - -", "version 2 is not supported"),
        ("<34>1 yesterday h a - - -", "TIMESTAMP 'yesterday' is not RFC 3339"),
        ("<34>1 2026-11-20T08:00:00Z h a - -", "structured data must be '-' or start with '['"),
        ("<34>1 2026-11-20T08:00:00Z h a - - [x", "element 'x' is not closed"),
        ("<34>1 2026-11-20T08:00:00Z h a - - [x a=1]", "parameter without '=\"'"),
        ("<34>1 2026-11-20T08:00:00Z h a - - -msg", "expected ' ' before the message"),
        ("<34>Feb 30 08:00:00 host app: x", "is not a valid date"),
    ],
)
def test_malformed_messages_are_bad_records_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(BadRecord, match=re.escape(reason)):
        SyslogParser().parse(record(text))


def test_ids_are_stable_per_source_offset_and_content() -> None:
    a = parse_one(RFC5424_EXAMPLE, offset="10")
    assert parse_one(RFC5424_EXAMPLE, offset="10").id == a.id
    assert parse_one(RFC5424_EXAMPLE, offset="11").id != a.id
    assert parse_one(RFC5424_EXAMPLE, source="other", offset="10").id != a.id


def test_attacker_controlled_text_is_kept_verbatim() -> None:
    text = "<38>1 2026-11-20T08:00:00Z h app - - - <script>alert(1)</script> $(rm -rf /) '; DROP TABLE events;--"
    event = parse_one(text)
    assert event.get("message") == "<script>alert(1)</script> $(rm -rf /) '; DROP TABLE events;--"
    assert json.loads(event.to_json())["event"]["original"] == text
