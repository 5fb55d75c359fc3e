"""The Suricata EVE parser: alert, http, dns, tls and flow records with exact fields."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from collectors.base import NotMyFormat
from collectors.parsers.suricata import SuricataEveParser
from tests.collectors.samples import DATA, parse_file, record

SAMPLE = DATA / "suricata" / "eve.json"


def test_sample_types_and_bad_records() -> None:
    parsed = parse_file(SuricataEveParser(), SAMPLE)
    assert [e.get("event.dataset") for e in parsed.events] == [
        "suricata.alert", "suricata.http", "suricata.dns", "suricata.tls", "suricata.flow", "suricata.stats",
    ]  # fmt: skip
    assert [reason for _, reason in parsed.bad] == [
        "key 'alert.signature_id' is missing",
        "key 'timestamp': not an ISO 8601 timestamp: 'yesterday'",
        "key 'src_ip': '10.20.5.666' is not an IP address",
        "key 'src_port' must be a non-negative integer, not -1",
    ]


def test_alert_maps_rule_severity_and_http_context() -> None:
    line = SAMPLE.read_text().splitlines()[0]
    [alert] = SuricataEveParser().parse(record(line))
    assert alert.timestamp == datetime(2026, 11, 20, 1, 0, 0, 123456, tzinfo=UTC)
    fields = dict(alert.fields)
    assert fields.pop("event.original") == line
    assert fields == {
        "event.kind": "alert",
        "event.category": ("network", "intrusion_detection"),
        "event.type": ("allowed",),
        "event.action": "allowed",
        "event.module": "suricata",
        "event.dataset": "suricata.alert",
        "event.severity": 1,
        "rule.id": "2024897",
        "rule.name": "ET WEB_SPECIFIC_APPS Dahua Camera Authentication Bypass Attempt",
        "rule.category": "Attempted Administrator Privilege Gain",
        "rule.ruleset": "rev 3",
        "message": "ET WEB_SPECIFIC_APPS Dahua Camera Authentication Bypass Attempt",
        "source.ip": "203.0.113.50",
        "source.port": 51432,
        "destination.ip": "10.20.1.42",
        "destination.port": 80,
        "network.transport": "tcp",
        "network.protocol": "http",
        "network.community_id": "1:Lr+pYxTc3mNXMmPsTDVPzJCV2oQ=",
        "labels.flow_id": "1184263729371842",
        "labels.sensor": "sensor-hn-01",
        "observer.product": "suricata",
        "related.ip": ("203.0.113.50", "10.20.1.42"),
        "url.domain": "10.20.1.42",
        "url.original": "/current_config/passwd",
        "url.path": "/current_config/passwd",
        "http.request.method": "GET",
        "http.response.status_code": 200,
        "http.response.bytes": 431,
        "http.version": "1.1",
        "user_agent.original": "python-requests/2.31.0",
    }


def test_dns_tls_and_flow_fields() -> None:
    _, http, dns, tls, flow, _ = parse_file(SuricataEveParser(), SAMPLE).events
    assert (http.get("url.query"), http.get("event.outcome")) == ("x=1", "success")
    assert (dns.get("dns.question.name"), dns.get("event.action"), dns.get("network.transport")) == (
        "c2.badcam.example", "dns_query", "udp",
    )  # fmt: skip
    names = ("tls.version", "tls.client.server_name", "tls.client.ja3", "tls.server.issuer")
    assert {k: tls.get(k) for k in names} == {
        "tls.version": "1.2", "tls.client.server_name": "update.vendor.example",
        "tls.client.ja3": "e7d705a3286e19ea42f587b344ee6865", "tls.server.issuer": "C=US, O=Let's Encrypt, CN=R11",
    }  # fmt: skip
    assert {k: flow.get(k) for k in ("source.bytes", "destination.bytes", "network.bytes", "network.packets",
                                    "event.duration", "labels.flow_state")} == {
        "source.bytes": 612, "destination.bytes": 1203, "network.bytes": 1815, "network.packets": 11,
        "event.duration": 1_250_000_000, "labels.flow_state": "closed",
    }  # fmt: skip


@pytest.mark.parametrize("line", ['{"_path": "conn", "ts": 1}', "CEF:0|a|b|c|d|e|1|", '{"timestamp": "x"}'])
def test_other_formats_are_not_mine(line: str) -> None:
    with pytest.raises(NotMyFormat):
        SuricataEveParser().parse(record(line))
