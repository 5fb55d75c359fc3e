from __future__ import annotations

from datetime import UTC, datetime

import pytest

from collectors.base import BadRecord, NotMyFormat
from collectors.parsers.ecs_json import EcsJsonParser, load_json_object
from tests.collectors.samples import DATA, parse_file, record
from tests.helpers import event

SAMPLE = DATA / "ecs.jsonl"


def test_sample_file_gives_exact_events_and_bad_records() -> None:
    parsed = parse_file(EcsJsonParser(), SAMPLE)
    assert [e.get("event.action") for e in parsed.events] == ["login", "process_start"]
    assert [reason for _, reason in parsed.bad] == [
        "not a valid CitySOC event document: unknown field 'no_such.field' (not in the CitySOC event schema)",
        "not a valid CitySOC event document: schema version '0.9' is not supported (this build reads 1.0)",
        "not a valid CitySOC event document: field 'source.ip': 'not-an-ip' is not an IP address",
    ]


def test_nested_and_dotted_documents_become_events() -> None:
    lines = SAMPLE.read_text().splitlines()
    parsed = parse_file(EcsJsonParser(), SAMPLE)
    vpn, edr = parsed.events
    assert vpn.id == "vpn-000001"
    assert vpn.get("source.ip") == "203.0.113.9" and vpn.get("event.category") == ("authentication",)
    assert vpn.get("event.original") == lines[0]
    assert edr.timestamp == datetime(2026, 11, 20, 8, 0, 1, tzinfo=UTC)
    assert edr.get("process.command_line") == "sh -c '$(rm -rf /)'"
    assert parse_file(EcsJsonParser(), SAMPLE).events[1].id == edr.id  # content id when the document has none


def test_an_exported_event_reads_back_equal() -> None:
    original = event(5, {"message": "<script>alert(1)</script>", "source.ip": "10.0.0.1",
                         "iot.telemetry.pm25": 41.5, "event.original": "raw"})
    [back] = EcsJsonParser().parse(record(original.to_json()))
    assert back == original


@pytest.mark.parametrize(
    ("line", "error", "reason"),
    [
        ("plain text", NotMyFormat, "not a JSON object"),
        ('{"message": "no timestamp"}', NotMyFormat, "without '@timestamp'"),
        ('{"@timestamp": "2026-11-20T08:00:00Z", "message": ', BadRecord, "invalid JSON at column"),
        ('{"@timestamp": "2026-11-20T08:00:00Z", "event": {"risk_score": Infinity}}', BadRecord, "Infinity"),
        ('{"@timestamp": "yesterday"}', BadRecord, "not an ISO 8601 timestamp"),
    ],
)
def test_bad_lines(line: str, error: type[Exception], reason: str) -> None:
    with pytest.raises(error, match=reason):
        EcsJsonParser().parse(record(line))


def test_loader_keeps_exact_decimals_when_asked() -> None:
    assert str(load_json_object('{"ts": 1795161600.123456}', exact_numbers=True)["ts"]) == "1795161600.123456"
