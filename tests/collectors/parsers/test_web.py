"""The web/API-gateway access-log parser on combined-format and JSON samples."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from collectors.base import NotMyFormat
from collectors.parsers.web import _CLF_USUAL, _CLF_ZONES, CLF_EXTRAS, WebAccessParser
from store.event import Event
from tests.collectors.samples import DATA, parse_file, record

SAMPLE = DATA / "web" / "access.log"


def test_sample_gives_one_event_per_good_line_and_names_the_bad_value() -> None:
    parsed = parse_file(WebAccessParser(), SAMPLE)
    assert [e.get("http.response.status_code") for e in parsed.events] == [200, 401, 404, 400, 200, 204, 429]
    assert [reason for _, reason in parsed.bad] == [
        "time [32/Nov/2026:08:00:07 +0700] is not dd/Mon/yyyy:HH:MM:SS +zzzz",
        "status: 999 is not an HTTP status code",
        "client: '10.20.7.300' is not an IP address",
        "request_time: 'fast' is not a number",
    ]
    assert parsed.not_mine == []


def test_combined_line_with_latency_request_id_and_api_key() -> None:
    line = SAMPLE.read_text().splitlines()[0]
    [event] = WebAccessParser().parse(record(line))
    assert event.timestamp == datetime(2026, 11, 20, 1, 0, 0, tzinfo=UTC)  # +0700 normalised to UTC
    assert dict(event.fields) == {
        "event.kind": "event",
        "event.category": ("web", "network"),
        "event.type": ("access",),
        "event.action": "http_request",
        "event.outcome": "success",
        "event.dataset": "web.access",
        "event.duration": 12_000_000,
        "event.original": line,
        "network.protocol": "http",
        "source.ip": "10.20.7.15",
        "client.ip": "10.20.7.15",
        "http.request.method": "GET",
        "http.version": "1.1",
        "http.response.status_code": 200,
        "http.response.bytes": 512,
        "http.request.id": "7f3a9c01",
        "api.key.id": "key-traffic-01",
        "url.original": "/api/v1/lights?zone=4",
        "url.path": "/api/v1/lights",
        "url.query": "zone=4",
        "user_agent.original": "curl/8.5.0",
        "related.ip": ("10.20.7.15",),
        "message": "10.20.7.15 GET /api/v1/lights?zone=4 200",
    }


def test_failed_login_keeps_user_and_referrer_and_garbage_request_lines_are_kept() -> None:
    events = parse_file(WebAccessParser(), SAMPLE).events
    login, _, tls_probe = events[1], events[2], events[3]
    assert login.get("user.name") == "operator1"
    assert login.get("event.outcome") == "failure"
    assert login.get("http.request.referrer") == "https://ioc.hanoi.example/login"
    assert login.get("event.duration") == 250_000_000
    assert tls_probe.get("http.request.method") is None
    assert tls_probe.get("url.original") == r"\x16\x03\x01\x00\xc8\x01"


def test_nginx_json_and_api_gateway_json_dialects() -> None:
    events = parse_file(WebAccessParser(), SAMPLE).events
    nginx, gateway = events[5], events[6]
    assert nginx.timestamp == datetime(2026, 11, 20, 1, 0, 5, tzinfo=UTC)
    assert {k: nginx.get(k) for k in ("api.key.id", "api.consumer", "server.ip", "url.domain", "http.version",
                                     "http.request.bytes", "event.duration", "http.request.method")} == {
        "api.key.id": "key-water-hmi", "api.consumer": "water-hmi", "server.ip": "10.20.1.5",
        "url.domain": "api.water.example", "http.version": "2.0", "http.request.bytes": 312,
        "event.duration": 31_000_000, "http.request.method": "PUT",
    }  # fmt: skip
    assert gateway.timestamp == datetime(2026, 11, 20, 1, 0, 6, tzinfo=UTC)
    assert {k: gateway.get(k) for k in ("api.key.id", "http.request.id", "event.duration", "event.outcome")} == {
        "api.key.id": "k7x2abcd", "http.request.id": "c0ffee12-0000-4000-8000-000000000001",
        "event.duration": 3_000_000, "event.outcome": "failure",
    }  # fmt: skip


@pytest.mark.parametrize("line", ["Nov 20 08:00:00 host sshd[1]: hi", '{"event_type": "flow"}', ""])
def test_other_formats_are_not_mine(line: str) -> None:
    with pytest.raises(NotMyFormat):
        WebAccessParser().parse(record(line))


def _outcome(parser: WebAccessParser, make: Callable[[], list[Event]]) -> object:
    """What a parse gives: the events as plain values (fields in order), or the exception's type and message."""
    try:
        return [(e.id, e.timestamp, list(e.fields.items())) for e in make()]
    except Exception as exc:  # the exception is the outcome compared
        return type(exc), str(exc)


_USUAL = (
    '10.20.{n}.7 - {user} [20/Nov/2026:01:00:0{n} {zone}] "GET /api/v1/lights/{n}?zone=3 HTTP/1.1" {status} {bytes} '
    '"{referrer}" "curl/8.5.0"{extras}'
)
#: lines of the usual form (``_CLF_USUAL`` matches them): the fast path gives their events, or the same error
USUAL_LINES = [
    _USUAL.format(n=n, user=user, zone="+0000", status=status, bytes=size, referrer=referrer, extras=extras)
    for n, (user, status, size, referrer, extras) in enumerate([
        ("-", 200, 512, "-", " rt=0.012 request_id=0000002a api_key_id=key-1"),
        ("operator1", 401, "-", "https://ioc.example/login", " rt=0.250 host=api.example consumer=hmi"),
        ("-", 599, 0, "", ""),
        ("-", 100, 7, "-", " rt= request_id=- api_key_id= unknown=1 rt=1.5 a=b=c api_key_id=k2"),  # last one wins
        ("-", 204, 1, "-", "".join(f" {key}={n}" for n, key in enumerate(CLF_EXTRAS) if key != "request_time")),
        ("-", 204, 1, "-", " request_time=0.003"),
        ("-", 500, 1, "-", " rt=-"),
        ("-", 200, 1, "-", " rt=fast"),  # BadRecord, as the general path words it
        ("-", 200, 1, "-", " rt=99999999"),  # implausible latency
        ("-", 200, 1, "-", " rt=0.1234567890123456789012345678901"),  # more digits than Decimal keeps
    ])
]  # fmt: skip
#: lines the fast pattern matches but the fast path declines (the general path words the error), or that it
#: does not match at all
DECLINED_LINES = [
    '10.20.7.300 - - [20/Nov/2026:01:00:00 +0000] "GET / HTTP/1.1" 200 2 "-" "curl/8.5.0"',
    '10.20.7.3 - - [32/Nov/2026:01:00:00 +0000] "GET / HTTP/1.1" 200 2 "-" "curl/8.5.0"',
    '10.20.7.3 - - [20/Foo/2026:01:00:00 +0000] "GET / HTTP/1.1" 200 2 "-" "curl/8.5.0"',
    '2001:db8::1 - - [20/Nov/2026:01:00:00 +0000] "GET / HTTP/1.1" 200 2 "-" "curl/8.5.0"',
    '10.20.7.3 - - [20/Nov/2026:01:00:00 +0000] "GET / HTTP/1.1" 200 2 "-" "curl/8.5.0" rt="0.5"',
    '10.20.7.3 - - [20/Nov/2026:01:00:00 +0000] "GET / HTTP/1.1" 200 2 "-" "curl/8.5.0"  rt=0.5',
    '10.20.7.3 - - [20/Nov/2026:01:00:00 +0000] "GET /\\"x HTTP/1.1" 200 2 "-" "curl/8.5.0"',
    '10.20.7.3 - - [20/Nov/2026:01:00:00 +0000] "GET - HTTP/1.1" 999 2 "-" "curl/8.5.0"',
    '10.20.7.3, 10.0.0.1 - - [20/Nov/2026:01:00:00 +0000] "GET / HTTP/1.1" 200 2',
    '10.20.7.3 - - [20/Nov/2026:01:00:00 +0000] "GET / HTTP/1.1" 200 2 "-" "-" rt=0.5 request_time=0.6',
    '10.20.7.3 - - [20/Nov/2026:01:00:00 +0000] "GET / HTTP/1.1" 200 2 "-" "-" request_time=0.5 rt=0.6',
]


@pytest.mark.parametrize("line", USUAL_LINES + DECLINED_LINES)
def test_the_usual_line_fast_path_gives_what_the_general_path_gives(line: str) -> None:
    parser = WebAccessParser()
    rec = record(line, offset="42")
    general = _outcome(parser, lambda: [parser._event(parser._clf(line), rec)])
    assert _outcome(parser, lambda: parser.parse(rec)) == general
    if line in USUAL_LINES:  # ... and it is the fast path that gave it
        match = _CLF_USUAL.fullmatch(line)
        assert match is not None
        assert _outcome(parser, lambda: [parser._usual_clf(match, rec)]) == general  # type: ignore[list-item]


def test_a_zone_not_seen_yet_takes_the_general_path_once() -> None:
    line = _USUAL.format(n=1, user="-", zone="-0945", status=200, bytes=1, referrer="-", extras="")
    match = _CLF_USUAL.fullmatch(line)
    assert match is not None
    parser, rec = WebAccessParser(), record(line)
    _CLF_ZONES.pop("-0945", None)
    assert parser._usual_clf(match, rec) is None  # declined: _clf_time makes the zone
    [event] = parser.parse(rec)
    assert event.timestamp == datetime(2026, 11, 20, 10, 45, 1, tzinfo=UTC)
    fast = parser._usual_clf(match, rec)
    assert fast is not None and list(fast.fields.items()) == list(event.fields.items())
