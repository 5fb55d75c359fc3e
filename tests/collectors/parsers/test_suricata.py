"""The Suricata EVE parser: alert, http, dns, tls and flow records with exact fields."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from collectors.base import BadRecord, NotMyFormat
from collectors.parsers import suricata
from collectors.parsers.ecs_json import load_json_object
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


# Records for the shortcuts (_plain_common, _alert) and the general paths (_common, _alert_checked) to agree on:
# the samples plus the shapes they miss (IPv6, one address, the same address twice, no ports, "failed" app_proto,
# a blocked alert without a signature and with dns/tls context, an event type without a mapper).
SHAPES = [
    *SAMPLE.read_text().splitlines()[:6],
    '{"timestamp":"2026-11-20T01:00:00Z","event_type":"alert","src_ip":"2001:DB8::1","dest_ip":"2001:db8::1",'
    '"proto":"","app_proto":"failed","alert":{"signature_id":5,"signature":"","action":"blocked","rev":0},'
    '"dns":{"queries":[{"rrname":"c2.example"}]},"tls":{"version":"TLSv1.3","ja3":{"hash":"ab"}}}',
    '{"timestamp":"2026-11-20T08:00:00","event_type":"alert","dest_ip":"10.20.1.5","dest_port":0,"flow_id":0,'
    '"app_proto":"FAILED","host":"","community_id":"1:x","alert":{"signature_id":7,"severity":3,"category":""}}',
    '{"timestamp":"2026-11-20T08:00:00+01:00","event_type":"anomaly","src_ip":"10.20.1.5","src_port":1,'
    '"dest_ip":"10.20.1.5","dest_port":null}',
]


@pytest.mark.parametrize("line", SHAPES)
def test_shortcuts_give_the_general_paths_fields_in_order(line: str) -> None:
    row = load_json_object(line)
    plain = suricata._plain_common(row, line)
    assert plain is not None
    timestamp, etype, fields = plain
    general = suricata._common(row, line)
    assert (timestamp, etype, list(fields.items())) == (general[0], general[1], list(general[2].items()))
    if etype == "alert":
        shortcut, checked = dict(fields), dict(fields)
        suricata._alert(row, shortcut)
        suricata._alert_checked(row, checked)
        assert list(shortcut.items()) == list(checked.items())


# (record, the general path's message): values the shortcuts decline, each of them an error
DECLINED = [
    ('{"timestamp":"2026-11-20T08:00:00Z","event_type":5}', "key 'event_type' must be a string, not int"),
    ('{"timestamp":"","event_type":"flow"}', "keys 'event_type' and 'timestamp' must be non-empty strings"),
    ('{"timestamp":"2026-11-20T08:00:00Z","event_type":"flow","src_port":true}',
     "key 'src_port' must be a non-negative integer, not True"),
    ('{"timestamp":"2026-11-20T08:00:00Z","event_type":"flow","dest_ip":"10.0.0.256"}',
     "key 'dest_ip': '10.0.0.256' is not an IP address"),
    ('{"timestamp":"2026-11-20T08:00:00Z","event_type":"flow","dest_ip":167772161}',
     "key 'dest_ip' must be a string, not int"),
    ('{"timestamp":"2026-11-20T08:00:00Z","event_type":"flow","flow_id":-1}',
     "key 'flow_id' must be a non-negative integer, not -1"),
    ('{"timestamp":"2026-11-20T08:00:00Z","event_type":"flow","host":["a"]}', "key 'host' must be a string, not list"),
    ('{"timestamp":"2026-11-20T08:00:00Z","event_type":"alert"}', "key 'alert.signature_id' is missing"),
    ('{"timestamp":"2026-11-20T08:00:00Z","event_type":"alert","alert":[]}', "key 'alert' must be an object, not list"),
    ('{"timestamp":"2026-11-20T08:00:00Z","event_type":"alert","alert":{"signature_id":"7"}}',
     "key 'alert.signature_id' must be a non-negative integer, not '7'"),
    ('{"timestamp":"2026-11-20T08:00:00Z","event_type":"alert","alert":{"signature_id":7,"severity":false}}',
     "key 'alert.severity' must be a non-negative integer, not False"),
    ('{"timestamp":"2026-11-20T08:00:00Z","event_type":"alert","alert":{"signature_id":7,"category":1}}',
     "key 'alert.category' must be a string, not int"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "reason"), DECLINED)
def test_records_the_shortcuts_decline_get_the_general_paths_error(line: str, reason: str) -> None:
    with pytest.raises(BadRecord) as caught:
        SuricataEveParser().parse(record(line))
    assert str(caught.value) == reason
    row = load_json_object(line)
    if row["event_type"] != "alert":
        assert suricata._plain_common(row, line) is None
