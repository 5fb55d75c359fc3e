from __future__ import annotations

import collections
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from collectors.base import BadRecord, NotMyFormat
from collectors.parsers import zeek
from collectors.parsers.zeek import ZeekParser, logtype_from_name
from tests.collectors.samples import DATA, parse_file, record, records
from tests.helpers import shared

ZEEK = DATA / "zeek"


# the public Stratosphere corpus (TSV and JSON Zeek logs) --------------------------------
@pytest.mark.parametrize(
    ("relative", "events", "silent", "dataset"),
    [
        ("001-zeek-scenario-malicious/labeled-conn.log", 992, 8, "zeek.conn"),
        ("002-zeek-scenario-port-scanning/conn.log", 4504, 0, "zeek.conn"),  # JSON lines
        ("003-zeek-scenario-malicious/conn.log", 361, 9, "zeek.conn"),
        ("003-zeek-scenario-malicious/dns.log", 1, 9, "zeek.dns"),
        ("004-zeek-scenario-ssh/ssh.log", 396, 0, "zeek.ssh"),  # JSON lines
        ("005-zeek-scenario-malicious/dns.log", 992, 8, "zeek.dns"),
        ("005-zeek-scenario-malicious/http.log", 992, 8, "zeek.http"),
        ("006-zeek-scenario-ssh/conn.log", 18, 9, "zeek.conn"),
        ("008-zeek-mixed/data/conn.log.labeled", 5663, 8, "zeek.conn"),
        ("010-zeek-mixed/data/files.log.labeled", 0, 8, None),
    ],
)
def test_public_zeek_logs_parse_completely(relative: str, events: int, silent: int, dataset: str | None) -> None:
    path = shared("zeek-labelled", relative)
    parsed = parse_file(ZeekParser(), path)
    assert (len(parsed.events), parsed.silent, parsed.bad, parsed.not_mine) == (events, silent, [], [])
    assert {e.get("event.dataset") for e in parsed.events} == ({dataset} if dataset else set())
    assert len({e.id for e in parsed.events}) == events


def test_conn_row_maps_to_exact_fields() -> None:
    path = shared("zeek-labelled", "003-zeek-scenario-malicious", "conn.log")
    first = parse_file(ZeekParser(), path).events[0]
    assert first.timestamp == datetime(2020, 8, 7, 8, 49, 24, 509987, tzinfo=UTC)
    line = path.read_text().splitlines()[8]
    assert dict(first.fields) == {
        "event.kind": "event",
        "event.category": ("network",),
        "event.type": ("connection",),
        "event.action": "connection",
        "event.outcome": "success",
        "event.module": "zeek",
        "event.dataset": "zeek.conn",
        "event.duration": 17912000,
        "event.original": line,
        "message": "zeek conn 10.8.0.61:35740 -> 8.8.8.8:53 dns SF",
        "source.ip": "10.8.0.61",
        "source.port": 35740,
        "source.bytes": 48,
        "destination.ip": "8.8.8.8",
        "destination.port": 53,
        "destination.bytes": 64,
        "network.transport": "udp",
        "network.protocol": "dns",
        "network.bytes": 112,
        "network.packets": 2,
        "labels.zeek_uid": "Cr01B21ezPdgDs60pb",
        "related.ip": ("10.8.0.61", "8.8.8.8"),
    }


def test_conn_outcomes_and_directions_over_a_labelled_capture() -> None:
    parsed = parse_file(ZeekParser(), shared("zeek-labelled", "006-zeek-scenario-ssh", "conn.log"))
    outcomes = collections.Counter(e.get("event.outcome") for e in parsed.events)
    assert sum(outcomes.values()) == 18
    icmp = next(e for e in parsed.events if e.get("network.transport") == "icmp")
    assert "event.outcome" not in icmp.fields  # OTH: neither established nor refused
    unanswered = next(e for e in parsed.events if e.get("labels.zeek_uid") == "CC8Rrd2H1rhzdCXb9h")
    assert unanswered.get("event.outcome") == "failure"
    assert not {"event.duration", "source.bytes", "network.protocol"} & unanswered.fields.keys()  # '-' is unset
    labelled = parse_file(ZeekParser(), shared("zeek-labelled", "001-zeek-scenario-malicious", "labeled-conn.log"))
    assert labelled.events[0].get("network.direction") == "external"  # local_orig F, local_resp F


def test_dns_and_http_rows() -> None:
    [dns] = parse_file(ZeekParser(), shared("zeek-labelled", "003-zeek-scenario-malicious", "dns.log")).events
    assert dns.get("dns.question.name") == "infinitedata-pa.googleapis.com"
    assert dns.get("event.outcome") == "success"
    assert dns.get("related.ip") == ("10.8.0.61", "8.8.8.8", "172.217.23.202")  # the answer is related too
    http = parse_file(ZeekParser(), shared("zeek-labelled", "005-zeek-scenario-malicious", "http.log")).events[0]
    expected = {
        "http.request.method": "GET",
        "url.domain": "gatyfus.com",
        "url.original": "/login.php",
        "url.path": "/login.php",
        "http.response.status_code": 302,
        "http.request.bytes": 6,
        "http.response.bytes": 154,
        "event.outcome": "success",
        "event.category": ("network", "web"),
    }
    assert {k: http.get(k) for k in expected} == expected
    assert http.get("user_agent.original").startswith("Mozilla/4.0 (compatible; MSIE 2.0;")


# our Modbus samples in the real Zeek layouts ------------------------------------------------
def test_builtin_modbus_log_with_two_header_blocks() -> None:
    parsed = parse_file(ZeekParser(), ZEEK / "modbus.log")
    assert (len(parsed.events), parsed.silent, parsed.bad) == (6, 18, [])
    got = [(e.get("ot.function"), e.get("ot.function_code"), e.get("ot.request"), e.get("ot.exception"),
            e.get("event.outcome"), e.get("ot.unit_id")) for e in parsed.events]
    assert got == [
        ("read_holding_registers", 3, True, None, "success", 1),
        ("read_holding_registers", 3, False, None, "success", 1),
        ("write_single_register", 6, True, None, "success", 1),
        ("write_single_register", 6, False, "ILLEGAL_DATA_ADDRESS", "failure", 1),
        ("write_multiple_coils", 15, None, None, "success", None),  # older layout: no tid/unit/pdu_type
        ("unknown_100", 100, None, None, "success", None),
    ]
    write = parsed.events[2]
    assert write.timestamp == datetime(2026, 11, 20, 8, 0, 1, 500000, tzinfo=UTC)
    expected = {
        "event.dataset": "zeek.modbus",
        "event.action": "write_single_register",
        "event.category": ("network",),
        "ot.protocol": "modbus",
        "network.protocol": "modbus",
        "network.transport": "tcp",
        "source.ip": "10.20.5.66",
        "destination.ip": "10.30.1.10",
        "destination.port": 502,
    }
    assert {k: write.get(k) for k in expected} == expected


def test_icsnpp_modbus_detailed_registers_values_and_direction() -> None:
    parsed = parse_file(ZeekParser(), ZEEK / "modbus_detailed.log")
    assert (len(parsed.events), parsed.silent, parsed.bad) == (6, 9, [])
    got = [(e.get("ot.function"), e.get("ot.request"), e.get("ot.register.address"), e.get("ot.register.count"),
            e.get("ot.register.value"), e.get("ot.exception"), e.get("event.outcome")) for e in parsed.events]
    assert got == [
        ("read_holding_registers", True, 0, 2, None, None, "success"),
        ("read_holding_registers", False, None, 2, 3200.0, None, "success"),
        ("write_single_register", True, 9, 1, 4500.0, None, "success"),
        ("write_single_register", False, None, None, None, "ILLEGAL_DATA_ADDRESS", "failure"),
        ("read_coils", False, None, 3, 1.0, None, "success"),
        ("mask_write_register", False, None, None, None, None, "success"),  # values is a note, not a number
    ]
    response = parsed.events[1]
    # the connection's originator stays the source, also for the PLC's response
    assert (response.get("source.ip"), response.get("destination.ip")) == ("10.30.9.10", "10.30.1.10")
    assert {e.get("event.dataset") for e in parsed.events} == {"zeek.modbus_detailed"}


def test_json_modbus_detailed_as_the_lab_writes_it() -> None:
    parsed = parse_file(ZeekParser(), ZEEK / "json" / "modbus_detailed.log")
    assert parsed.bad == []
    write, read = parsed.events
    assert (write.get("ot.function"), write.get("ot.register.address"), write.get("ot.register.value")) == (
        "write_single_register", 9, 4500.0)
    assert write.get("source.ip") == "10.20.5.66" and write.get("ot.request") is True
    assert "ot.register.value" not in read.fields  # "" for a read request
    assert read.timestamp == datetime(2026, 11, 20, 8, 0, 0, 123456, tzinfo=UTC)


def test_json_conn_with_path_iso_time_nulls_and_a_bad_key() -> None:
    parsed = parse_file(ZeekParser(), ZEEK / "json" / "conn.log")
    first, refused = parsed.events
    assert first.timestamp == datetime(2026, 11, 20, 8, 0, 0, 123456, tzinfo=UTC)
    assert first.get("event.duration") == 1167384000
    assert first.get("network.community_id") == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
    assert first.get("network.direction") == "internal"
    assert first.get("network.packets") == 58
    assert refused.get("event.outcome") == "failure" and "network.protocol" not in refused.fields
    assert [reason for _, reason in parsed.bad] == ["key 'id.orig_p': 'fifty' is not a number"]


# header state ------------------------------------------------------------------------------
def test_resuming_mid_file_reads_the_header_block_back_from_the_file() -> None:
    rows = [r for r in records(ZEEK / "modbus.log") if not r.data.startswith("#")]
    fresh = ZeekParser()  # has seen no header line, like a collector restarted at a saved offset
    [late] = fresh.parse(rows[4])  # a row of the second block, in the older layout
    assert late.get("ot.function") == "write_multiple_coils" and "ot.unit_id" not in late.fields
    [early] = ZeekParser().parse(rows[0])
    assert early.get("ot.unit_id") == 1


def test_rows_without_a_header_and_broken_rows() -> None:
    row = (ZEEK / "modbus.log").read_text().splitlines()[8]
    with pytest.raises(BadRecord, match="no '#fields' header was seen for syslog:udp:x"):
        ZeekParser().parse(record(row, source="syslog:udp:x"))
    parser = ZeekParser()
    for line in (ZEEK / "modbus.log").read_text().splitlines()[:8]:
        assert parser.parse(record(line)) == []
    with pytest.raises(BadRecord, match="10 columns, but the #fields header names 11"):
        parser.parse(record(row.rsplit("\t", 1)[0]))
    with pytest.raises(BadRecord, match=re.escape("column 'id.orig_p': 'x' is not a Zeek port")):
        parser.parse(record(row.replace("\t50840\t", "\tx\t")))
    with pytest.raises(BadRecord, match=re.escape("key 'id.orig_h': '10.30.9.300' is not an IP address")):
        parser.parse(record(row.replace("10.30.9.10", "10.30.9.300")))


@pytest.mark.parametrize(
    ("line", "error", "reason"),
    [
        ("", BadRecord, "empty line"),
        ("just some words", NotMyFormat, "neither a Zeek JSON object nor a Zeek TSV row"),
        ('{"ts": "2026-11-20T08:00:00Z", "platform": "vms"}', NotMyFormat, "is not a Zeek log line"),
        ('{"ts": 1.5, "uid": "C1", "id.orig_h": "10.0.0.1"}', BadRecord, "cannot tell the Zeek log type"),
        ('{"_path": "conn", "uid": "C1"}', BadRecord, "key 'ts' is missing"),
        ('{"_path": "conn", "ts": 1e400}', BadRecord, "out of range"),
    ],
)
def test_lines_that_are_not_usable(line: str, error: type[Exception], reason: str) -> None:
    with pytest.raises(error, match=reason):
        ZeekParser().parse(record(line))


@pytest.mark.parametrize(
    ("name", "logtype"),
    [
        ("/var/log/zeek/conn.log", "conn"),
        ("conn.04:00:00-05:00:00.log", "conn"),
        ("conn.log.labeled", "conn"),
        ("labeled-conn.log", "conn"),
        ("modbus_detailed.log", "modbus_detailed"),
        ("2026-11-20.log", None),
        (None, None),
    ],
)
def test_log_type_from_the_file_name(name: str | None, logtype: str | None) -> None:
    assert logtype_from_name(name) == logtype


def test_reading_a_file_again_gives_the_same_ids() -> None:
    a = parse_file(ZeekParser(), ZEEK / "modbus_detailed.log")
    b = parse_file(ZeekParser(), ZEEK / "modbus_detailed.log")
    assert [e.id for e in a.events] == [e.id for e in b.events]


# fast paths: the same results as the general code they stand in for ------------------------
S7 = (
    '{"_path": "s7comm", "ts": 1795161600.123457, "uid": "C1", "id.orig_h": "10.30.1.7", "id.orig_p": 50100, '
    '"id.resp_h": "10.30.3.5", "id.resp_p": 102, "is_orig": true, "rosctr_name": "Job", "function_code": "0x04", '
    '"function_name": "Read Var", "error_class": null, "error_code": null}'
)
FAST_PATH_LINES = [
    S7,
    S7 + "\r\n",  # a line ending: not the whole-line JSON fast path
    " " + S7,
    S7 + " x",
    S7.replace('"10.30.1.7"', '"FE80::1"'),  # an address that is not its own canonical text
    S7.replace('"10.30.1.7"', '"10.30.1.07"'),
    S7.replace('"10.30.1.7"', '"10.30.3.5"'),  # source = destination: related.ip once
    S7.replace('"10.30.1.7"', "null").replace('"10.30.3.5"', "null"),
    S7.replace('"10.30.1.7"', "7"),
    S7.replace("50100", '"50100"'),
    S7.replace("50100", "50100.0"),
    S7.replace("50100", "50100.5"),
    S7.replace("50100", "true"),
    S7.replace('"uid": "C1"', '"uid": 1, "proto": ["tcp"]'),
    S7.replace('"uid": "C1"', '"uid": "C1", "proto": "tcp", "community_id": "1:abc"'),
    S7.replace("1795161600.123457", '"2026-11-20T08:00:00.5Z"'),
    S7.replace("1795161600.123457", "1795161600"),
    S7.replace("1795161600.123457", "NaN"),
    S7.replace("1795161600.123457", "1e400"),
    S7.replace('"_path": "s7comm"', '"_path": ""'),
    S7.replace('"_path": "s7comm"', '"_path": 3'),
    S7.replace('"_path": "s7comm"', '"_path": "conn", "conn_state": "SF", "duration": 1.5'),
    S7.replace('"_path": "s7comm", ', ""),
    # s7comm rows its fast path takes, and declines
    S7.replace('"Read Var"', '"", "subfunction_name": "PLC Stop"'),
    S7.replace('"Read Var"', '"Read Var", "subfunction_name": "Read SZL"'),
    S7.replace('"error_class": null', '"error_class": "0x81"'),
    S7.replace('"error_code": null', '"error_code": "0x00"'),
    S7.replace('"error_code": null', '"error_code": 5'),
    S7.replace('"Read Var"', "5"),
    S7.replace('"Job"', '["Job"]').replace('"is_orig": true', '"is_orig": "yes"'),
    S7.replace('"is_orig": true', '"is_orig": "yes"').replace('"0x04"', '"0xZZ"'),
    S7.replace('"is_orig": true', '"is_orig": null').replace('"Job"', '"Ack_Data"'),
    S7.replace('"0x04"', '"0xZZ"'),
    S7.replace('"0x04"', "4"),
    S7.replace('"0x04"', "4.5"),
    S7.replace('"0x04"', "null"),
    S7.replace('"0x04"', "[4]"),
    '["_path", "conn"]',
    '{"_path": "conn", "ts": 1.5, "x": 1} {}',
    '{"_path": "conn", "ts": 1.5, "x": "\\u00e9\\udcff"}',
    '{"_path": "conn", "ts": 1.5, "n": 1' + "0" * 5000 + "}",
]


def _outcome(parser: ZeekParser, line: str) -> object:
    try:
        events = parser.parse(record(line, source="file:/var/log/zeek/conn.log"))
    except (BadRecord, NotMyFormat) as exc:
        return type(exc), str(exc)
    return [(e.id, e.timestamp, list(e.fields.items())) for e in events]


class _NothingKnown(set[str]):
    def add(self, item: str) -> None:
        """Remembers nothing: every address goes through _ip."""


def test_fast_paths_give_what_the_general_paths_give(monkeypatch: pytest.MonkeyPatch) -> None:
    assert zeek._json_line(S7) is not None and zeek._json_line(S7 + "\r\n") is None
    fast = [_outcome(ZeekParser(), line) for line in FAST_PATH_LINES]
    assert [_outcome(ZeekParser(), line) for line in FAST_PATH_LINES] == fast  # now with the addresses known
    monkeypatch.setattr(zeek, "_json_line", lambda data: None)  # every JSON line through load_json_object
    monkeypatch.setattr(zeek, "_CANONICAL_IPS", _NothingKnown())
    monkeypatch.setitem(zeek.MAPPERS, "s7comm", zeek._s7comm_checked)
    assert [_outcome(ZeekParser(), line) for line in FAST_PATH_LINES] == fast


@pytest.mark.parametrize("seconds", ["0", "0.0", "1795161600.1234565", "1795161600.1234575", "0.0000005", "1.5"])
def test_epoch_seconds_as_json_numbers_and_as_text_give_the_same_time(seconds: str) -> None:
    assert zeek._timestamp({"ts": Decimal(seconds)}) == zeek._timestamp({"ts": seconds})
