"""Fuzzing the parsers with hypothesis: >= 10,000 malformed records each, no crash, every failure has a reason.

Each record is a real sample line mutated once (truncated, a span deleted or
replaced by drawn text, bytes duplicated, or -- for JSON -- one value replaced
by a drawn JSON value of another type).  A parser may accept a mutation that is
still valid; everything else must raise NotMyFormat or BadRecord (the
pipeline's dead-letter paths) with a non-empty reason.  Any other exception is
a crash and fails the test.  A slice goes through a real IngestPipeline +
SQLiteStore to check that the dead letters land with source, offset and reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.base import NESTED_TOO_DEEP, BadRecord, NotMyFormat, Parser, RawRecord, get_parser, parsers
from collectors.parsers.auditd import AuditdParser
from collectors.parsers.cef import CefParser
from collectors.parsers.iot_platform import IotPlatformParser
from collectors.parsers.scada_csv import ScadaCsvParser
from collectors.parsers.suricata import SuricataEveParser
from collectors.parsers.web import WebAccessParser
from collectors.parsers.zeek import ZeekParser
from collectors.pipeline import IngestPipeline
from store.sqlite import SQLiteStore
from tests.collectors.parsers.test_auditd import RAW as AUDIT_LINES
from tests.collectors.samples import DATA
from tests.helpers import T0

RECORDS_PER_EXAMPLE = 50
EXAMPLES = 200  # 200 x 50 = 10,000 records per parser


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass(frozen=True)
class Target:
    """A parser, the sample lines its malformed records are made from, and lines it must see first."""

    factory: Callable[[], Parser]
    lines: list[str]
    setup: list[str] = field(default_factory=list)


TARGETS: dict[str, Target] = {
    "auditd": Target(AuditdParser, AUDIT_LINES),
    "web.access": Target(WebAccessParser, _lines(DATA / "web" / "access.log")),
    "suricata.eve": Target(SuricataEveParser, _lines(DATA / "suricata" / "eve.json")),
    "cef": Target(CefParser, _lines(DATA / "cef" / "cef.log")),
    "iot.platform": Target(IotPlatformParser, _lines(DATA / "iot_platform" / "platform.jsonl")),
    "scada.csv": Target(
        ScadaCsvParser,
        _lines(DATA / "scada" / "pumping_station.csv")[1:],
        setup=_lines(DATA / "scada" / "pumping_station.csv")[:1],
    ),
    "zeek.ics": Target(ZeekParser, _lines(DATA / "zeek" / "ics.json")),
}

JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


@st.composite
def mutation(draw: st.DrawFn, lines: list[str]) -> str:
    line = draw(st.sampled_from(lines))
    op = draw(st.sampled_from(["truncate", "delete", "replace", "duplicate", "json"]))
    at = draw(st.integers(min_value=0, max_value=len(line)))
    if op == "truncate":
        return line[:at]
    if op == "delete":
        return line[:at] + line[at + draw(st.integers(min_value=1, max_value=40)) :]
    if op == "replace":
        junk = draw(st.text(alphabet=st.sampled_from('{}[]":,=|\\ \t0123456789.-xaZ\x00é'), max_size=12))
        return line[:at] + junk + line[at + len(junk) :]
    if op == "duplicate":
        return line[:at] + line[at : at + 30] + line[at:]
    try:
        obj: Any = json.loads(line)
    except ValueError:
        return line[::-1]  # not JSON: a reversed line is malformed in every format
    if not isinstance(obj, dict) or not obj:
        return line[::-1]
    key = draw(st.sampled_from(sorted(obj)))
    obj[key] = draw(JSON_VALUES)
    return json.dumps(obj)


def _fuzz(name: str) -> None:
    target = TARGETS[name]
    totals = {"records": 0, "accepted": 0, "rejected": 0}

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(mutation(target.lines), min_size=RECORDS_PER_EXAMPLE, max_size=RECORDS_PER_EXAMPLE))
    def run(batch: list[str]) -> None:
        parser = target.factory()
        for offset, line in enumerate(target.setup):
            parser.parse(RawRecord(line, f"fuzz:{name}", str(offset), received=T0))
        for offset, data in enumerate(batch, start=len(target.setup)):
            totals["records"] += 1
            try:
                parser.parse(RawRecord(data, f"fuzz:{name}", str(offset), received=T0))
            except (NotMyFormat, BadRecord) as exc:
                assert str(exc).strip(), f"{type(exc).__name__} without a reason for {data!r}"
                totals["rejected"] += 1
            else:
                totals["accepted"] += 1

    run()
    assert totals["records"] >= 10_000
    # the mutations must mostly break records, or the fuzzing says little
    assert totals["rejected"] > totals["records"] // 4, totals


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_ten_thousand_malformed_records_never_crash_the_parser(name: str) -> None:
    _fuzz(name)


def test_malformed_records_are_dead_lettered_with_source_offset_and_reason(
    pipeline: IngestPipeline, store: SQLiteStore
) -> None:
    bad = [
        RawRecord('{"timestamp":"2026-11-20T08:00:00Z","event_type":"alert","alert":[]}', "fuzz:eve", "17", T0),
        RawRecord("type=SYSCALL msg=audit(1.0:1): pid=x", "fuzz:audit", "42", T0),
        RawRecord("CEF:0|a|b|c|d|e|urgent|", "fuzz:cef", "7", T0),
    ]
    parsers: list[Parser] = [SuricataEveParser(), AuditdParser(), CefParser()]
    for raw, parser in zip(bad, parsers, strict=True):
        assert pipeline.parse(raw, parser) == []
    letters = store.list_dead_letters()
    assert {(d.source, d.offset) for d in letters} == {("fuzz:eve", "17"), ("fuzz:audit", "42"), ("fuzz:cef", "7")}
    reasons = sorted(d.reason for d in letters)
    assert reasons == [
        "[auditd] BadRecord: key 'pid': 'x' is not a number",
        "[cef] BadRecord: CEF severity 'urgent' is not 0-10 or Low/Medium/High/Very-High",
        "[suricata.eve] BadRecord: key 'alert' must be an object, not list",
    ]
    assert pipeline.stats.dead_lettered == 3


def test_json_nested_deeper_than_the_decoder_goes_is_a_dead_letter_not_a_crash(tmp_path: Path) -> None:
    deep = '{"timestamp": "2026-11-21T08:00:00Z", "x": ' + "[" * 50_000 + "]" * 50_000 + "}"
    store = SQLiteStore(tmp_path / "deep.db")
    try:
        pipeline = IngestPipeline(store, name="fuzz")
        readers = {"camera.platform", "ecs.json", "iot.mqtt", "iot.platform", "suricata.eve", "web.access",
                   "windows.evtx", "zeek"}  # the parsers that read a line starting with "{" as JSON  # fmt: skip
        for parser in parsers():
            with pytest.raises((BadRecord, NotMyFormat)) as refused:  # anything else would be a crash
                parser().parse(RawRecord(deep, "http:lgsp", "1", received=T0))
            assert (NESTED_TOO_DEEP in str(refused.value)) == (parser.name in readers), parser.name
        pipeline.ingest([RawRecord(deep, "http:lgsp", "7", received=T0)], get_parser("iot.platform"))
        (letter,) = store.list_dead_letters()
        assert (letter.source, letter.offset) == ("http:lgsp", "7") and NESTED_TOO_DEEP in letter.reason
    finally:
        store.close()
