"""The CEF parser: header escapes, extension mapping, times, bad records."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from collectors.base import BadRecord, NotMyFormat
from collectors.parsers import cef
from collectors.parsers.cef import CefParser, split_extension
from store.errors import EventValidationError
from store.event import Event, Value
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


_Outcome = list[tuple[str, datetime, list[tuple[str, Value]]]] | tuple[str, str]


def _outcome(parser: CefParser, line: str) -> _Outcome:
    """What parse() gives for ``line``: the events (id, time, fields in order) or the exception's type and text."""
    try:
        events = parser.parse(record(line))
    except Exception as exc:
        return type(exc).__name__, str(exc)
    return [(e.id, e.timestamp, list(e.fields.items())) for e in events]


#: records the fast paths decline, or answer with something unusual, beside the samples
_TRICKY = [
    "CEF:0|V|P|1|sig|name|3|src=10.0.0.1  dst=10.0.0.2",  # doubled space
    "CEF:0|V|P|1|sig|name|3|src=10.0.0.1\tdst=10.0.0.2",  # tab
    "CEF:0|V|P|1|sig|name|3|src=10.0.0.1 dst=10.0.0.2 ",  # trailing space
    "CEF:0|V|P|1|sig|name|3| src=10.0.0.1",  # leading space
    "CEF:0|V|P|1|sig|name|3|msg=a=b c=d",  # '=' inside a value
    "CEF:0|V|P|1|sig|name|3|src=10.0.0.1 src=10.0.0.2 dst=10.0.0.2",  # a key twice, related.ip once
    "CEF:0|V|P|1|sig|name|3|src=bad src=10.0.0.1",  # the last value counts
    "CEF:0|V|P|1|sig|name|3|msg= act=",  # empty values
    "CEF:0|V|P|1|sig|name|3|",  # no extension
    "CEF:0|V|P|1|sig|name|3|=x",  # no key
    "CEF:0|V|P|1|sig|name|3|a?b=1 c=2",  # not a key
    "CEF:0|V|P|1|sig|name| Low |proto=UDP outcome=Success dvc=2001:DB8::1",  # severity word in blanks, v6
    "CEF:0|V|P|1|sig|name|very-HIGH|outcome=maybe dvc=10.0.0.9 in=12 out=0 cnt=7",
    "CEF:0|V|P|1|sig|name|03|spt=\u0663 dpt=5",  # Arabic-Indic digit: int() reads it
    "CEF:0|V|P|1|sig|name|3|spt=\u00b2",  # a digit int() refuses: Event's error
    "CEF:0|V|P|1|sig|name|3|spt=" + "9" * 5000,  # beyond int()'s digit limit: Event's error
    "CEF:0|V|P|1|sig|name|3|spt=" + "9" * 5000 + " src=x",  # the bad address is reported first
    "CEF:0|V|P|1|sig|name|3|src=010.0.0.1",
    "CEF:0|V|P|1|sig|name|11|src=10.0.0.1",
    "CEF:0|V|P|1|sig|name|\u00b2|src=10.0.0.1",
    "CEF:0|V|P|1|sig|name|3|end=1795136400000 start=1 rt=Nov 20 2026 01:00:01 x.y[0]=z version=9",
    "CEF:0|V|P|1|sig|name|3|custom key=1",  # text before the first key
    "CEF:0|V|P|1|sig|name|3|k=caf\u00e9 \u00e9=1 k2=\udcff",
]


def test_fast_paths_give_what_the_general_paths_give(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whole records through parse(), with the fast paths on and then off: the same events, or the same error.

    Off: no plain-extension split (the marks' regex), no severity table (the 0-10/word rule), no address
    and key caches (normal_ip and _key_spec on every value); the ints parse() converts are checked
    against Event's own conversion by the records above (digits int() reads, refuses, or finds too long).
    """
    lines = [line for line in SAMPLE.read_text().splitlines() if line.strip()] + _TRICKY
    rnd = random.Random(7)
    for line in list(lines):  # and each line cut, doubled at a point, and with a character dropped
        cut = rnd.randrange(len(line) + 1)
        lines += [line[:cut], line[:cut] + line[cut - 1 : cut] + line[cut:], line[:cut] + line[cut + 1 :]]
    parser = CefParser()
    fast = [_outcome(parser, line) for line in lines]
    fast_again = [_outcome(parser, line) for line in lines]  # with the caches filled
    with monkeypatch.context() as patched:
        patched.setattr(cef, "_simple_extension", lambda _text: None)
        patched.setattr(cef, "_SEVERITIES", {})
        patched.setattr(cef, "_ADDRESSES", {})
        patched.setattr(cef, "_ADDRESSES_SIZE", 0)
        patched.setattr(cef, "_KEY_SPECS", {})
        patched.setattr(cef, "_KEY_SPECS_SIZE", 0)
        general = [_outcome(parser, line) for line in lines]
    for line, one, two, three in zip(lines, fast, fast_again, general, strict=True):
        assert one == two == three, line


def test_converted_ports_are_what_event_makes_of_the_digits() -> None:
    """parse() hands Event an int for digits: the int Event makes of them, or the same error when it makes none."""
    for digits in ["502", "0", "007", "\u0663", "\u00b2", "9" * 5000]:
        expected: object
        try:
            expected = Event("x", T0, {"source.port": digits}).fields["source.port"]
        except EventValidationError as exc:
            expected = ("BadRecord", str(exc))  # parse() words Event's refusals as bad records
        except ValueError as exc:
            expected = ("ValueError", str(exc))  # int()'s digit limit: Event lets it through, and parse() too
        got = _outcome(CefParser(), f"CEF:0|V|P|1|sig|name|3|spt={digits}")
        if isinstance(got, list):
            assert dict(got[0][2])["source.port"] == expected, digits
        else:
            assert got == expected, digits
