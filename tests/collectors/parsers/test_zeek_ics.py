"""The Zeek parser on the ICS protocol logs (Zeek dnp3, ICSNPP dnp3/s7comm/bacnet/enip/cip), JSON and TSV."""

from __future__ import annotations

from collectors.parsers.zeek import ZeekParser
from tests.collectors.samples import DATA, parse_file, record

SAMPLE = DATA / "zeek" / "ics.json"


def test_ics_sample_datasets_functions_and_the_bad_code() -> None:
    parsed = parse_file(ZeekParser(), SAMPLE)
    assert [(e.get("event.dataset"), e.get("ot.function"), e.get("ot.function_code")) for e in parsed.events] == [
        ("zeek.dnp3", "direct_operate", 5),
        ("zeek.dnp3", "response", 0x81),
        ("zeek.dnp3_control", "direct_operate", 5),
        ("zeek.dnp3_objects", "read", 1),
        ("zeek.s7comm", "plc_stop", 0x29),
        ("zeek.s7comm", "plc_stop", 0x29),
        ("zeek.s7comm_plus", "set_variable", 0x04F2),
        ("zeek.bacnet", "write_property", None),
        ("zeek.bacnet", "write_property", None),
        ("zeek.enip", "send_rr_data", 0x6F),
        ("zeek.cip", "set_attribute_single", 0x90),
    ]
    assert [reason for _, reason in parsed.bad] == ["key 'function_code': '0xZZ' is not a decimal or 0x-hex code"]
    assert {e.get("ot.protocol") for e in parsed.events} == {"dnp3", "s7comm", "bacnet", "enip"}


def test_dnp3_control_maps_exact_fields() -> None:
    line = SAMPLE.read_text().splitlines()[2]
    [event] = ZeekParser().parse(record(line))
    fields = dict(event.fields)
    assert fields.pop("event.original") == line
    assert fields == {
        "event.kind": "event",
        "event.category": ("network",),
        "event.type": ("protocol",),
        "event.action": "direct_operate",
        "event.module": "zeek",
        "event.dataset": "zeek.dnp3_control",
        "event.outcome": "success",
        "message": "zeek dnp3_control 10.30.1.10:50123 -> 10.30.2.21:20000 dnp3 direct_operate",
        "source.ip": "10.30.1.10",
        "source.port": 50123,
        "destination.ip": "10.30.2.21",
        "destination.port": 20000,
        "related.ip": ("10.30.1.10", "10.30.2.21"),
        "labels.zeek_uid": "CHhAvVGS1DHFjwGM9",
        "network.protocol": "dnp3",
        "ot.protocol": "dnp3",
        "ot.function": "direct_operate",
        "ot.function_code": 5,
        "ot.register.address": 3,
        "labels.dnp3_block_type": "Control Relay Output Block",
        "labels.dnp3_operation": "Pulse On",
        "labels.dnp3_trip_control": "Trip",
    }


def test_directions_outcomes_and_exceptions() -> None:
    events = parse_file(ZeekParser(), SAMPLE).events
    request, reply = events[0], events[1]
    assert (request.get("ot.request"), reply.get("ot.request"), reply.get("labels.dnp3_iin")) == (True, False, "36864")
    stop, denied = events[4], events[5]
    assert (stop.get("ot.request"), stop.get("event.outcome"), stop.get("labels.s7_rosctr")) == (True, None, "Job")
    assert (denied.get("ot.request"), denied.get("event.outcome"), denied.get("ot.exception")) == (
        False, "failure", "Access Error 0x85",
    )  # fmt: skip
    bacnet_error = events[8]
    assert (bacnet_error.get("event.outcome"), bacnet_error.get("ot.exception")) == ("failure", "write-access-denied")
    assert bacnet_error.get("network.transport") == "udp"
    enip, cip = events[9], events[10]
    assert enip.get("event.outcome") == "success"
    assert (cip.get("ot.request"), cip.get("ot.exception"), cip.get("labels.cip_class")) == (
        False, "Privilege Violation", "Identity",
    )  # fmt: skip


def test_tsv_s7comm_log_with_its_header() -> None:
    header = [
        "#separator \\x09",
        "#set_separator\t,",
        "#empty_field\t(empty)",
        "#unset_field\t-",
        "#path\ts7comm",
        "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tis_orig\trosctr_code\trosctr_name\t"
        "pdu_reference\tfunction_code\tfunction_name\tsubfunction_code\tsubfunction_name\terror_class\terror_code",
        "#types\ttime\tstring\taddr\tport\taddr\tport\tbool\tcount\tstring\tcount\tstring\tstring\tstring\tstring\t"
        "string\tstring",
    ]
    row = "1795136402.500000\tC4J4\t10.30.1.11\t49152\t10.30.3.5\t102\tT\t7\tUserdata\t9\t0x00\t-\t0x01\tRead SZL\t-\t-"
    parser = ZeekParser()
    for line in header:
        assert parser.parse(record(line, "file:s7comm.log")) == []
    [event] = parser.parse(record(row, "file:s7comm.log"))
    assert (event.get("event.dataset"), event.get("ot.function"), event.get("labels.s7_subfunction")) == (
        "zeek.s7comm", "read_szl", "Read SZL",
    )  # fmt: skip
    assert (event.get("ot.function_code"), event.get("ot.request")) == (0, True)
