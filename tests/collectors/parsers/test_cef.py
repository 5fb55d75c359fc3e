"""The CEF parser: header escapes, extension mapping, times, bad records."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from collectors.base import BadRecord, NotMyFormat
from collectors.parsers import cef
from collectors.parsers.cef import CefParser, split_extension
from tests.collectors.samples import DATA, parse_file, record
from tests.helpers import T0

SAMPLE = DATA / "cef" / "cef.log"


def test_sample_events_and_bad_records() -> None:
    parsed = parse_file(CefParser(), SAMPLE)
    assert [e.get("rule.id") for e in parsed.events] == ["0000000013", "LOGIN_FAIL", "100"]
    assert [reason for _, reason in parsed.bad] == [
        "CEF header has 5 of 7 '|'-separated fields",
        "CEF severity 'urgent' is not 0-10 or Low/Medium/High/Very-High",
        "extension 'src': '10.0.0.999' is not an IP address",
        "extension 'spt': 'http' is not a non-negative integer",
    ]


def test_firewall_deny_in_syslog_maps_exact_fields() -> None:
    line = SAMPLE.read_text().splitlines()[0]
    [event] = CefParser().parse(record(line))
    assert event.timestamp == datetime(2026, 11, 20, 1, 0, 0, tzinfo=UTC)  # rt, epoch ms
    fields = dict(event.fields)
    assert fields.pop("event.original") == line
    assert fields == {
        "event.kind": "event",
        "event.category": ("host",),
        "event.type": ("info",),
        "event.module": "cef",
        "event.dataset": "cef",
        "event.code": "0000000013",
        "event.severity": 3,
        "event.action": "deny",
        "rule.id": "0000000013",
        "rule.name": "traffic:forward deny",
        "rule.category": "traffic",
        "observer.vendor": "Fortinet",
        "observer.product": "FortiGate-600E",
        "labels.cef_version": "0",
        "labels.device_version": "7.2.8",
        "message": "traffic:forward deny: Denied Modbus from Internet",
        "source.ip": "203.0.113.50",
        "source.port": 51432,
        "destination.ip": "10.20.1.42",
        "destination.port": 502,
        "network.transport": "tcp",
        "host.name": "fw-hn-01",
        "related.ip": ("203.0.113.50", "10.20.1.42"),
    }


def test_escapes_severity_words_text_time_and_unknown_keys() -> None:
    _, login, escaped = parse_file(CefParser(), SAMPLE).events
    assert login.timestamp == datetime(2026, 11, 20, 1, 0, 1, tzinfo=UTC)
    assert (login.get("event.severity"), login.get("event.kind")) == (8, "alert")
    assert login.get("message") == "User login failed: Wrong password = 3 attempts\nlocked"
    assert (login.get("user.name"), login.get("event.outcome")) == ("admin", "failure")
    assert (login.get("labels.cef_cs1Label"), login.get("labels.cef_cs1")) == ("site", "Hoan Kiem")
    assert escaped.get("rule.name") == "detected a | in message"
    assert escaped.get("event.action") == "blocked a \\"
    assert escaped.timestamp == T0  # no rt/end/start: the receive time


def test_extension_values_run_to_the_next_key() -> None:
    assert split_extension(r"msg=a b c\=d src=1.2.3.4 request=http://x/?a\=1") == {
        "msg": "a b c=d", "src": "1.2.3.4", "request": "http://x/?a=1",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("line", "error", "reason"),
    [
        ("<13>Nov 20 08:00:00 host app: hello", NotMyFormat, "no 'CEF:' payload"),
        ("CEF:x|a|b|c|d|e|1|", BadRecord, "CEF version 'x' is not a number"),
        ("CEF:0|a|b|c||e|1|", BadRecord, "Signature ID and Name must not be empty"),
        ("CEF:0|a|b|c|d|e|1|garbage without pairs", BadRecord, "does not start with key=value"),
        ("CEF:0|a|b|c|d|e|1|rt=Smarch 40", BadRecord, "extension 'rt'"),
    ],
)
def test_unusable_lines(line: str, error: type[Exception], reason: str) -> None:
    with pytest.raises(error, match=reason):
        CefParser().parse(record(line))



def _regex_extension(text: str, monkeypatch: pytest.MonkeyPatch) -> object:
    """What the marks' regex gives for ``text`` (or the error it raises), with the fast path off."""
    with monkeypatch.context() as patched:
        patched.setattr(cef, "_simple_extension", lambda _text: None)
        try:
            return split_extension(text)
        except BadRecord as exc:
            return str(exc)


def _regex_header(payload: str) -> object:
    """The seven header fields as the header regex reads them (the general path of split_header)."""
    fields: list[str] = []
    pos = 0
    for _ in range(7):
        match = cef._HEADER_FIELD.match(payload, pos)
        if match is None:
            return f"CEF header has {len(fields)} of 7 '|'-separated fields"
        fields.append(cef._HEADER_UNESCAPE.sub(r"\1", match[1]))
        pos = match.end()
    return fields, payload[pos:]


def test_the_fast_paths_for_plain_headers_and_extensions_give_what_the_regexes_give(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Extensions and headers built from tricky parts: the fast paths agree with the regexes wherever they answer."""
    rnd = random.Random(3)
    keys = ["a", "src", "a.b", "x[1]", "-", "", "a b", "\u00e9"]
    values = ["", "x", "1 2", "Denied flow 3", "a=b", " ", "\\=", "c\td", "x ", "=y"]
    answered = 0
    for _ in range(10_000):
        text = rnd.choice(["", "", "junk "]) + "".join(
            (rnd.choice([" ", " ", " ", "  "]) if n else "") + rnd.choice(keys) + "=" + rnd.choice(values)
            for n in range(rnd.randrange(0, 5))
        )
        fast = cef._simple_extension(text)
        if fast is not None:
            answered += 1
            assert fast == _regex_extension(text, monkeypatch), text
    assert answered > 500  # the fast path was exercised, not just refused
    parts = ["a", "", "b\\|c", "\\\\", "x|", "|"]
    for _ in range(5_000):
        payload = "|".join(rnd.choice(parts) for _ in range(rnd.randrange(5, 10)))
        try:
            got: object = cef.split_header(payload)
        except BadRecord as exc:
            got = str(exc)
        assert got == _regex_header(payload), payload
