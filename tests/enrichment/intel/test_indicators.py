from __future__ import annotations

from pathlib import Path

import pytest

from enrichment.intel.enricher import IndicatorEnricher
from enrichment.intel.errors import IntelError
from enrichment.intel.feeds import read_bundle, validate_objects
from enrichment.intel.indicators import IndicatorIndex
from tests.helpers import REPO, T0, event

FEED = REPO / "tests" / "data" / "intel" / "city-feed.json"


@pytest.fixture
def index() -> IndicatorIndex:
    errors: list[str] = []
    objects = validate_objects(read_bundle(FEED), str(FEED), errors)
    index = IndicatorIndex()
    index.add_all((o for o in objects if o["type"] == "indicator"), "file:city-feed.json")
    return index


def test_bundle_validation_reports_the_bad_object_with_its_position_and_keeps_the_rest() -> None:
    errors: list[str] = []
    objects = validate_objects(read_bundle(FEED), str(FEED), errors)
    assert len(objects) == 7
    assert len(errors) == 1
    assert "object #8 (indicator--bad00000" in errors[0] and "pattern" in errors[0]


def test_simple_complex_and_unsupported_patterns_are_counted(index: IndicatorIndex) -> None:
    assert (index.stats.simple, index.stats.complex) == (4, 1)
    [unsupported] = index.stats.unsupported
    assert unsupported.indicator_id == "indicator--9d4f0c1b-2e3a-4b5c-8d6e-7f8091a2b304"
    assert "snort" in unsupported.reason


def test_invalid_stix_pattern_is_reported_unsupported_not_dropped() -> None:
    index = IndicatorIndex()
    ok = index.add(
        {"type": "indicator", "id": "indicator--x", "pattern": "[ipv4-addr:value ~ 'x'", "pattern_type": "stix"}
    )
    assert not ok
    assert index.stats.unsupported[0].indicator_id == "indicator--x"
    assert index.stats.unsupported[0].reason


def test_not_an_indicator_is_an_error() -> None:
    with pytest.raises(IntelError, match="identity--1"):
        IndicatorIndex().add({"type": "identity", "id": "identity--1"})


@pytest.mark.parametrize(
    ("fields", "name", "field"),
    [
        ({"destination.ip": "203.0.113.45"}, "Mirai C2 server", "destination.ip"),
        ({"source.ip": "198.51.100.200"}, "Scanner range", "source.ip"),
        ({"dns.question.name": "Update-Camera-Firmware.example"}, "Phishing domain", "dns.question.name"),
        ({"url.original": "http://evil.example/fw.bin"}, "Phishing domain", "url.original"),
        (
            {"file.hash.sha256": "aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f"},
            "Dropper hash",
            "file.hash.sha256",
        ),
    ],
)
def test_simple_indicators_match_the_event_field(
    index: IndicatorIndex, fields: dict[str, str], name: str, field: str
) -> None:
    [match] = index.match(event(fields=fields))
    assert match.indicator.name == name
    assert match.field == field
    assert match.indicator.feed == "file:city-feed.json"


def test_complex_pattern_is_evaluated_by_the_stix_matcher(index: IndicatorIndex) -> None:
    hit = event(fields={"source.ip": "10.0.0.5", "destination.ip": "192.0.2.7", "destination.port": 23})
    miss = event(fields={"source.ip": "10.0.0.5", "destination.ip": "192.0.2.7", "destination.port": 22})
    assert [m.indicator.name for m in index.match(hit)] == ["Telnet to scanner"]
    assert index.match(miss) == []


def test_unrelated_events_do_not_match(index: IndicatorIndex) -> None:
    assert index.match(event(fields={"source.ip": "198.51.101.1", "dns.question.name": "example.org"})) == []


def test_enricher_adds_threat_fields(index: IndicatorIndex) -> None:
    enriched = IndicatorEnricher(index).enrich(event(fields={"destination.ip": "203.0.113.45"}))
    assert enriched.get("threat.indicator.id") == ("indicator--a932fcc6-e032-476c-826f-cb970a5a1ade",)
    assert enriched.get("threat.indicator.name") == "Mirai C2 server"
    assert enriched.get("threat.indicator.type") == "ip"
    assert enriched.get("threat.indicator.matched.atomic") == "203.0.113.45"
    assert enriched.get("threat.feed.name") == "file:city-feed.json"


def test_revoked_indicator_is_not_compiled(tmp_path: Path) -> None:
    index = IndicatorIndex()
    assert not index.add(
        {"type": "indicator", "id": "indicator--r", "pattern": "[ipv4-addr:value = '1.2.3.4']", "revoked": True}
    )
    assert index.match(event(fields={"source.ip": "1.2.3.4"})) == []


def test_expired_indicator_is_inactive() -> None:
    index = IndicatorIndex(now=T0)
    base = {"type": "indicator", "pattern": "[ipv4-addr:value = '1.2.3.4']"}
    assert not index.add({**base, "id": "indicator--old", "valid_until": "2026-11-01T00:00:00Z"})
    assert index.add({**base, "id": "indicator--live", "valid_until": "2026-12-01T00:00:00Z"})
    assert index.stats.inactive == 1
    assert [m.indicator.id for m in index.match(event(fields={"source.ip": "1.2.3.4"}))] == ["indicator--live"]
